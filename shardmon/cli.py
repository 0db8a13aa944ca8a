"""The ``shardmon`` command.

    shardmon up [--config FILE]                 a whole local cluster (the embedded default without --config)
    shardmon query [--config FILE] [--json] [--time T] EXPR
    shardmon shard --id N [--config FILE]       one storage shard server
               [--accept-data-loss | --rebuild-from-replicas]   after its Redis lost data (README)
    shardmon querier [--config FILE]            the querier (HTTP and gRPC APIs)
    shardmon ingest [--config FILE] [--ray-address ADDR]   the ingest service (Ray coordinator and scrapers)
    shardmon ingest --status [--config FILE]    where the running scrapers are (asks the Ray cluster), then exit
    shardmon receiver [--config FILE]           remote_write and the Pushgateway-compatible push API
    shardmon demo-targets [--config FILE]       the built-in demo targets of ``local.demo_targets``
    shardmon ray-node (--head | --address H:P)  a Ray node for the scrapers (``ray start --block``)
    shardmon import openmetrics [--config FILE] FILE   backfill an OpenMetrics file with timestamps
    shardmon promqltest [--shards N] FILE...    run PromQL test scripts, in memory or over N real shards
    shardmon check-config [--config FILE]       load and check a configuration, then exit

Every service subcommand also takes ``--check``: load and check the configuration and the subcommand's
own arguments, print a one-line summary, and exit (0 when all is well, 2 with the field at fault when
not) without starting anything.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shlex
import signal
import sys
import time
import urllib.parse
from importlib import resources
from pathlib import Path

from model.addresses import redacted_url
from model.config import Config, load_config, parse_config
from model.errors import ConfigError, ShardmonError, UnauthenticatedError

DEFAULT_CONFIG = "default.yml"


def default_config_text() -> str:
    return resources.files("shardmon").joinpath(DEFAULT_CONFIG).read_text()


def load(path: str | None) -> Config:
    """The configuration at ``path``, or the embedded default."""
    if path:
        return load_config(path)
    return parse_config(default_config_text(), "<embedded default config>")


class UsageError(Exception):
    """A subcommand's arguments do not fit together or with the configuration (exit code 2)."""


def _source(args) -> str:
    return args.config or "<embedded default config>"


def _ok(args, summary: str, config: Config | None = None) -> int:
    """What ``--check`` prints when all is well (with how the listeners are secured, given ``config``)."""
    print(f"{_source(args)}: OK: {summary}" + (f"; {security_summary(config)}" if config is not None else ""))
    return 0


def security_summary(config: Config) -> str:
    """How the listeners are secured, checking the web config file (never printing a secret)."""
    web = config.web_config()
    if web is None:
        return "listeners: plain HTTP/gRPC, no authentication (no web_config_file)"
    parts = []
    if web.tls:
        policy = web.tls_server_config.client_auth_type or "NoClientCert"
        parts.append(f"TLS ({policy})")
    else:
        parts.append("no TLS")
    parts.append(f"basic auth ({len(web.basic_auth_users)} users)" if web.auth else "no authentication")
    return "listeners: " + ", ".join(parts) + f" (web_config_file {config.web_config_file})"


_HOST_PORT = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def check_address(field: str, value: str) -> str:
    """``value`` as a ``host:port`` to listen on or connect to; a ConfigError naming ``field`` if not."""
    m = _HOST_PORT.match(value or "")
    if m is None or not 0 < int(m.group(1)) < 65536:
        raise ConfigError(f"{field}: not a host:port address: {value!r}")
    return value


def check_redis_url(field: str, value: str) -> str:
    url = urllib.parse.urlparse(value)
    if url.scheme not in ("redis", "rediss", "unix") or (url.scheme != "unix" and not url.hostname):
        raise ConfigError(f"{field}: not a redis:// URL: {redacted_url(value)!r}")
    return value


def check_ray_address(field: str, value: str) -> str:
    """``local``, a head's GCS ``host:port``, or a Ray Client ``ray://host:port``."""
    if value != "local":
        check_address(field, value.removeprefix("ray://"))
    return value


def _node_index(config: Config, shard_id: int) -> int:
    for i, n in enumerate(config.shards.nodes):
        if n.id == shard_id:
            return i
    ids = [n.id for n in config.shards.nodes]
    raise ConfigError(f"shards.nodes: no shard with id {shard_id} (the ids are {ids})")


def check_shards(config: Config) -> None:
    for i, n in enumerate(config.shards.nodes):
        check_address(f"shards.nodes[{i}].address", n.address)
        check_redis_url(f"shards.nodes[{i}].redis_url", n.redis_url)
        if n.metrics_address:
            check_address(f"shards.nodes[{i}].metrics_address", n.metrics_address)


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def cmd_up(args, config: Config) -> int:
    from shardmon.launcher import Interrupted, LocalCluster

    web = config.web_config()  # a bad web config stops us here, before anything starts
    scheme = "https" if web is not None and web.tls else "http"
    curl = "curl" + (" --cacert CA" if scheme == "https" else "") + (" -u USER" if web is not None and web.auth else "")
    cluster = LocalCluster(config, args.config)

    def on_signal(signum, frame):  # no I/O here: the main thread may be printing
        cluster.request_stop()  # the first: stop in stages; the next: kill the rest at once

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    print(f"Starting Shardmon ({'config ' + args.config if args.config else 'embedded default config'}),"
          f" data in {cluster.data_dir}")
    try:
        cluster.start()
        q = config.querier
        print(
            f"\nShardmon is up. Query it:\n"
            f"  shardmon query up\n"
            f"  {curl} '{scheme}://{q.http_address}/api/v1/query?query=up'   (Prometheus HTTP API; "
            f"Grafana: {scheme}://{q.http_address})\n"
            f"  gRPC Query API on {q.grpc_address}\n"
            f"Ctrl-C stops everything (a second Ctrl-C kills at once).\n",
            flush=True,
        )
        while not cluster.stop_requested:
            time.sleep(0.5)
            cluster.supervise_once()
    except Interrupted as exc:
        print(f"shardmon up: {exc}", file=sys.stderr)
        return_code = 130
    except RuntimeError as exc:
        print(f"shardmon up: {exc}", file=sys.stderr)
        return_code = 1
    else:
        return_code = 0
    finally:
        print(f"\nStopping Shardmon (children that do not exit within "
              f"{config.local.stop_grace_period / 1000:g}s of SIGTERM are killed)...", flush=True)
        cluster.stop()
    return return_code


def _format_table(res) -> str:
    from querier.http_api import format_ts, format_value

    if res.result_type == "scalar":
        return f"scalar  {format_value(res.scalar)}  @{format_ts(res.time_ms)}"
    if res.result_type == "string":
        return f"string  {res.scalar}"
    rows = []
    for s in res.series:
        name = str(s.labels) if s.labels else "{}"
        if res.result_type == "vector":
            rows.append((name, format_value(float(s.values[0]))))
        else:
            pts = " ".join(f"{format_value(v)}@{format_ts(t)}" for t, v in zip(s.timestamps_ms.tolist(), s.values.tolist()))
            rows.append((name, pts))
    if not rows:
        return "(empty result)"
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{n:<{width}}  {v}" for n, v in rows)


def cmd_query(args, config: Config) -> int:
    from querier.http_api import parse_time_ms, result_json
    from shardmon.client import QueryClient

    conn = client_of(args, config)
    try:
        t = parse_time_ms(args.time, "time") if args.time else None
        with QueryClient(config.querier.grpc_address, timeout_s=config.querier.query_timeout / 1000,
                         tls=conn.tls, basic_auth=conn.basic_auth) as client:
            res = client.instant(args.expr, t)
    except ShardmonError as exc:  # a QueryError, or the querier refusing the caller
        error_type = getattr(exc, "error_type", "unavailable" if exc.retryable else "error")
        if isinstance(exc, UnauthenticatedError):
            exc = UnauthenticatedError(f"{exc} (give the querier's credentials: internal_client.basic_auth in the "
                                       "configuration, --username/--password-file or --http.config.file)")
        if args.json:
            import json

            print(json.dumps({"status": "error", "errorType": error_type, "error": str(exc)}))
        else:
            print(f"shardmon query: {error_type}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        import json

        body = f'{{"status":"success","data":{result_json(res)}'
        if res.warnings:
            body += f',"warnings":{json.dumps(res.warnings)}'
        if res.partial:
            body += ',"isPartial":true'
        print(body + "}")
    else:
        for w in res.warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(_format_table(res))
    return 0


def cmd_shard(args, config: Config) -> int:
    from shards.server import serve

    i = _node_index(config, args.id)
    check_shards(config)
    if args.accept_data_loss and args.rebuild_from_replicas:
        raise UsageError("shard: give --accept-data-loss or --rebuild-from-replicas, not both "
                         "(a rebuild accepts the loss first)")
    if args.rebuild_from_replicas and config.shards.replication_factor < 2:
        raise ConfigError("shards.replication_factor: 1, so no other shard holds a copy of this shard's series: "
                          "--rebuild-from-replicas has nothing to copy from (use --accept-data-loss)")
    if args.check:
        n = config.shards.nodes[i]
        auth = (", password from " + n.redis_password_file if n.redis_password_file
                else ", password set" if n.redis_password is not None else "")
        tls = ", TLS" if n.redis_url.startswith("rediss://") else ""
        return _ok(args, f"shard {n.id} of {len(config.shards.nodes)} on {n.address}, Redis "
                         f"{redacted_url(n.redis_url)}{auth}{tls}"
                         + (f", /metrics on {n.metrics_address}" if n.metrics_address else ""), config)
    _logging(args.verbose)
    asyncio.run(serve(config, args.id, accept_data_loss=args.accept_data_loss,
                      rebuild_from_replicas=args.rebuild_from_replicas))
    return 0


def cmd_querier(args, config: Config) -> int:
    from querier.server import serve

    q = config.querier
    check_address("querier.http_address", q.http_address)
    check_address("querier.grpc_address", q.grpc_address)
    check_shards(config)
    if args.check:
        return _ok(args, f"querier: HTTP on {q.http_address}, gRPC on {q.grpc_address}, "
                         f"over {len(config.shards.nodes)} shards", config)
    _logging(args.verbose)
    asyncio.run(serve(config))
    return 0


def _with_ray_address(config: Config, address: str | None) -> Config:
    if not address:
        return config
    return config.model_copy(update={"ingest": config.ingest.model_copy(update={"ray_address": address})})


def cmd_ingest(args, config: Config) -> int:
    from ingest.target import targets_from_config

    config = _with_ray_address(config, args.ray_address)
    field = "--ray-address" if args.ray_address else "ingest.ray_address"
    check_ray_address(field, config.ingest.ray_address)
    check_shards(config)
    targets = targets_from_config(config)  # Target-level checks (label overrides) fail here, before Ray starts.
    config.web_config()  # and a bad web config (the coordinator's and scrapers' /metrics use it)
    if args.status:
        return _ingest_status(config)
    if args.check:
        ray_at = "a local Ray" if config.ingest.ray_address == "local" else f"the Ray cluster at {config.ingest.ray_address}"
        return _ok(args, f"ingest: {len(targets)} targets in {len(config.scrape_configs)} scrape configs, "
                         f"{config.ingest.scrapers} scrapers on {ray_at}, writing to {len(config.shards.nodes)} shards",
                   config)
    from ingest.service import run

    if args.ready_file:
        # A container restarted keeps its files: "ready" must mean this run's scrapers.
        Path(args.ready_file).unlink(missing_ok=True)
    _logging(args.verbose)
    run(config, ready_file=args.ready_file,
        reload_config=lambda: _with_ray_address(load(args.config), args.ray_address))
    return 0


def _ingest_status(config: Config) -> int:
    """Print, as JSON, the running coordinator's scrapers (with their nodes) and the cluster's nodes."""
    import json

    from ingest.coordinator import cluster_status

    if config.ingest.ray_address == "local":
        raise UsageError("ingest --status: ingest.ray_address is \"local\": there is no shared Ray cluster to ask "
                         "(give --ray-address)")
    try:
        status = cluster_status(config.ingest.ray_address, token_file=config.ingest.ray_auth_token_file)
    except LookupError as exc:
        print(f"shardmon ingest --status: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(status, indent=2, sort_keys=True))
    return 0


def cmd_receiver(args, config: Config) -> int:
    if config.receiver is None:
        raise ConfigError("receiver: the section is missing, so there is no receiver to run")
    rc = config.receiver
    check_address("receiver.http_address", rc.http_address)
    if rc.pushgateway_address:
        check_address("receiver.pushgateway_address", rc.pushgateway_address)
    check_shards(config)
    if args.check:
        return _ok(args, f"receiver: remote_write on {rc.http_address}, "
                         f"push API on {rc.pushgateway_address or '(off)'}, writing to {len(config.shards.nodes)} shards",
                   config)
    from ingest.receiver import serve

    _logging(args.verbose)
    asyncio.run(serve(config))
    return 0


def cmd_demo_targets(args, config: Config) -> int:
    from shardmon.demo import serve

    addresses = list(config.local.demo_targets)
    if not addresses:
        raise ConfigError("local.demo_targets: empty, so there are no demo targets to serve")
    for i, a in enumerate(addresses):
        check_address(f"local.demo_targets[{i}]", a)
    if args.check:
        return _ok(args, f"demo-targets: {len(addresses)} targets on {', '.join(addresses)}")
    asyncio.run(serve(addresses))
    return 0


def ray_node_argv(args) -> list[str]:
    """The ``ray start`` command line of ``shardmon ray-node``."""
    argv = [sys.executable, "-m", "ray.scripts.scripts", "start", "--block", "--disable-usage-stats"]
    if args.head:
        argv += ["--head", "--port", str(args.port), "--ray-client-server-port", str(args.client_port),
                 "--include-dashboard", "false"]
    else:
        argv += ["--address", args.address]
    if args.node_ip_address:
        argv += ["--node-ip-address", args.node_ip_address]
    if args.num_cpus is not None:
        argv += ["--num-cpus", str(args.num_cpus)]
    extra = list(args.ray_args)
    if extra[:1] == ["--"]:
        extra = extra[1:]
    return argv + extra


def cmd_ray_node(args, config: Config) -> int:
    if args.head == bool(args.address):
        raise UsageError("ray-node: give either --head or --address HOST:PORT (the head's GCS address)")
    if args.address:
        check_address("--address", args.address)
    for name in ("port", "client_port"):
        if not 0 < getattr(args, name) < 65536:
            raise UsageError(f"ray-node: --{name.replace('_', '-')}: not a port: {getattr(args, name)}")
    need = config.ingest.scraper_num_cpus
    if not args.head and args.num_cpus is not None and args.num_cpus < need:
        raise ConfigError(f"ingest.scraper_num_cpus: {need} is more than this worker's --num-cpus {args.num_cpus}, "
                          "so no scraper could run on it")
    argv = ray_node_argv(args)
    env = dict(os.environ)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # A node told to stop (docker stop, scale down, Ctrl-C) leaves at once: Ray's default drain waits
    # up to 30 s for work that never ends here (scrapers run forever), and a container is killed
    # before that, which the cluster only sees at its next health checks. Leaving cleanly, the
    # node's scrapers restart on the remaining nodes right away.
    env.setdefault("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0")
    # Every node of a cluster authenticates with Ray's token; the head writes one if there is none.
    from ingest.rayauth import token_auth_env

    if args.check:  # the token is looked for (and a head's written) when the node starts, not when checked
        role = "head" if args.head else f"worker of {args.address}"
        token = config.ingest.ray_auth_token_file or env.get("RAY_AUTH_TOKEN_PATH") or "Ray's default"
        return _ok(args, f"ray-node: {role}; would run: ray {shlex.join(argv[3:])}; "
                         f"with Ray token authentication (token: {token})")
    env.update(token_auth_env(config.ingest.ray_auth_token_file, create=args.head, environ=env))
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def cmd_import(args, config: Config) -> int:
    from model.errors import ExpositionError
    from shardmon.importer import import_openmetrics, summary_line

    try:
        summary = import_openmetrics(config, args.file, batch_samples=args.batch_samples)
    except ExpositionError as exc:
        print(f"\nshardmon import: {args.file}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"shardmon import: {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    print(summary_line(summary))
    return 0


def cmd_promqltest(args, config: Config) -> int:
    from pathlib import Path

    from querier.promqltest import ScriptError, ScriptReport, memory_storage, run_file, sharded_storage

    paths: list[Path] = []
    for arg in args.files:
        p = Path(arg)
        paths.extend(sorted(p.glob("*.test")) if p.is_dir() else [p])
    shards = None
    make = memory_storage
    if args.shards:
        from shardmon.localshards import LocalShards

        shards = LocalShards(args.shards).start()
        make = sharded_storage(shards.clients())
    total = ScriptReport()
    try:
        for path in paths:
            try:
                report = run_file(path, make)
            except ScriptError as exc:
                print(f"{path}: {exc}", file=sys.stderr)
                return 2
            for failure in report.failures:
                print(f"FAIL {failure}")
            for case in report.unsupported_cases:
                print(f"FAIL (not supported yet) {case}")
            total.add(report)
    finally:
        if shards is not None:
            shards.stop()
    failed = total.failed + total.unsupported
    if total.skipped:
        print(f"{total.skipped} skipped (native histograms)")
    print(f"{total.passed} passed, {failed} failed")
    return 1 if failed else 0


def _ingest_api(args, config: Config, path: str, data: dict | None = None) -> dict:
    """Call the running ingest service's API (``ingest.http_address``); its JSON answer."""
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    if not config.ingest.http_address:
        raise UsageError("ingest.http_address is not set: the ingest service serves no API")
    conn = client_of(args, config)
    url = f"{conn.scheme}://{config.ingest.http_address}{path}"
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    req = urllib.request.Request(url, data=body)
    auth = conn.authorization()
    if auth:
        req.add_header("Authorization", auth)
    try:
        with urllib.request.urlopen(req, timeout=120, context=conn.ssl_context()) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise UsageError(f"{url}: 401 Unauthorized (give the listeners' credentials: internal_client.basic_auth "
                             "in the configuration, --username/--password-file or --http.config.file)") from None
        text = exc.read().decode("utf-8", "replace").strip()
        try:
            message = json.loads(text).get("error", text)
        except (ValueError, AttributeError):
            message = text  # /-/reload answers plain text, as Prometheus's
        if exc.code == 403 and "web.enable_lifecycle" not in message:
            message += " (the ingest service runs with web.enable_lifecycle: false)"
        raise UsageError(f"{url}: refused with HTTP {exc.code}: {message or exc.reason}") from None
    except OSError as exc:
        raise UsageError(f"the ingest service does not answer at {url}: {exc}") from None


def client_of(args, config: Config):
    """How the command calls Shardmon's listeners: the configuration's ``internal_client``, replaced by
    ``--http.config.file`` (Prometheus's HTTP client file: ``basic_auth``, ``tls_config``), then by the
    flags (any TLS flag means TLS)."""
    import yaml

    from model.http_config import BasicAuth, HTTPClientConfig, TLSConfig
    from model.httpclient import InternalClient

    basic, tls = config.internal_client.basic_auth, config.internal_client.tls_config
    if args.http_config_file:
        try:
            raw = yaml.safe_load(Path(args.http_config_file).read_text()) or {}
            if not isinstance(raw, dict):
                raise ValueError("the top level must be a mapping")
            cfg = HTTPClientConfig.model_validate(raw)
        except OSError as exc:
            raise UsageError(f"--http.config.file {args.http_config_file}: {exc.strerror}") from None
        except (ValueError, yaml.YAMLError) as exc:
            from model.config import yaml_error

            msg = yaml_error(exc) if isinstance(exc, yaml.YAMLError) else str(exc).splitlines()[0]
            raise UsageError(f"--http.config.file {args.http_config_file}: {msg}") from None
        if cfg.authorization is not None or cfg.bearer_token or cfg.bearer_token_file:
            raise UsageError(f"--http.config.file {args.http_config_file}: Shardmon's listeners take basic_auth "
                             "only (authorization and bearer tokens are not checked by them)")
        basic = cfg.basic_auth
        tls = cfg.tls_config if "tls_config" in raw else None
    flags = {"ca_file": args.ca_file, "cert_file": args.cert_file, "key_file": args.key_file,
             "server_name": args.server_name}
    if args.tls or args.insecure_skip_verify or any(flags.values()):
        base = (tls or TLSConfig()).model_dump()
        base.update({k: v for k, v in flags.items() if v})
        if args.insecure_skip_verify:
            base["insecure_skip_verify"] = True
        try:
            tls = TLSConfig.model_validate(base)
        except ValueError as exc:
            raise UsageError(f"TLS flags: {str(exc).splitlines()[-1].strip()}") from None
    if args.username is not None or args.password_file:
        if not (args.username and args.password_file):
            raise UsageError("--username and --password-file go together")
        basic = BasicAuth(username=args.username, password_file=args.password_file)
    return InternalClient(basic, tls)


def add_client_options(sp: argparse.ArgumentParser) -> None:
    g = sp.add_argument_group("how to reach Shardmon's listeners (default: internal_client in the configuration)")
    g.add_argument("--http.config.file", dest="http_config_file", metavar="FILE",
                   help="an HTTP client configuration file, as Prometheus's tools take (basic_auth, tls_config)")
    g.add_argument("--tls", action="store_true", help="speak TLS (the system's CAs unless --ca-file)")
    g.add_argument("--ca-file", help="CA certificate(s) the listeners' certificates are signed by (implies --tls)")
    g.add_argument("--cert-file", help="client certificate, for listeners that require one (mTLS)")
    g.add_argument("--key-file", help="the client certificate's key")
    g.add_argument("--server-name", help="the name the listeners' certificates must carry")
    g.add_argument("--insecure-skip-verify", action="store_true",
                   help="do not verify the listeners' certificates (HTTP only; not for shardmon query)")
    g.add_argument("--username", help="basic auth user (with --password-file)")
    g.add_argument("--password-file", help="a file holding the basic auth password")


def cmd_targets(args, config: Config) -> int:
    """Print the targets (as /api/v1/targets, with each target's scraper): a table, or the JSON."""
    import json

    answer = _ingest_api(args, config, "/api/v1/targets?state=" + ("any" if args.dropped else "active"))
    if args.json:
        print(json.dumps(answer["data"], indent=2))
        return 0
    rows = [("POOL", "URL", "HEALTH", "SCRAPER", "LAST SCRAPE", "DURATION", "ERROR")]
    for t in answer["data"].get("activeTargets", []):
        rows.append((t["scrapePool"], t["scrapeUrl"], t["health"], t["scraper"], t["lastScrape"][:23],
                     f"{t['lastScrapeDuration']:.3f}s", t["lastError"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])
    if args.dropped:
        print(f"{len(answer['data'].get('droppedTargets', []))} dropped by relabeling")
    return 0


def cmd_scale(args, config: Config) -> int:
    """Change the number of scrapers of the running ingest service."""
    answer = _ingest_api(args, config, "/api/v1/scrapers", {"count": args.scrapers})
    d = answer["data"]
    print(f"{d['scrapers']} scrapers; {d['moved']} of {d['targets']} targets moved")
    return 0


def cmd_reload(args, config: Config) -> int:
    """Ask the running ingest service to read its configuration again."""
    answer = _ingest_api(args, config, "/-/reload", {})
    print(f"reloaded: {answer['data']}")
    return 0


def cmd_check_config(args, config: Config) -> int:
    from ingest.target import targets_from_config

    n = len(targets_from_config(config))
    print(f"{args.config or '<embedded default config>'}: OK ({len(config.scrape_configs)} scrape configs, "
          f"{n} targets, {len(config.shards.nodes)} shards; {security_summary(config)})")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="shardmon", description="A sharded, Prometheus-compatible metrics pipeline.")
    sub = p.add_subparsers(dest="command", required=True)

    def add(name: str, fn, help_: str, service: bool = False) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", help="configuration file (default: the embedded default)")
        if service:
            sp.add_argument("--check", action="store_true", help="check the configuration and exit")
            sp.add_argument("-v", "--verbose", action="store_true")
        sp.set_defaults(fn=fn)
        return sp

    add("up", cmd_up, "start a whole local cluster")
    q = add("query", cmd_query, "run an instant PromQL query")
    q.add_argument("--json", action="store_true", help="print Prometheus's JSON")
    q.add_argument("--time", help="evaluation time (Unix seconds or RFC 3339; default now)")
    q.add_argument("expr", help="PromQL expression")
    add_client_options(q)
    s = add("shard", cmd_shard, "run one shard server", service=True)
    s.add_argument("--id", type=int, required=True, help="the shard id (shards.nodes[].id)")
    s.add_argument("--accept-data-loss", action="store_true",
                   help="its Redis lost data: accept the loss and start anew over what the Redis still holds")
    s.add_argument("--rebuild-from-replicas", action="store_true",
                   help="its Redis lost data: start anew, then copy this shard's series back from their other "
                        "replicas (shards.replication_factor > 1) while serving")
    add("querier", cmd_querier, "run the querier", service=True)
    i = add("ingest", cmd_ingest, "run the ingest service (Ray)", service=True)
    i.add_argument("--ready-file", help="create this file once the scrapers are running")
    i.add_argument("--ray-address", help="the Ray cluster to run on, instead of ingest.ray_address: "
                                         "local, the head's host:port, or ray://host:port (Ray Client)")
    i.add_argument("--status", action="store_true",
                   help="print the running scrapers and the nodes they are on (JSON), then exit")
    add("receiver", cmd_receiver, "run the receiver (remote_write, Pushgateway API)", service=True)
    add("demo-targets", cmd_demo_targets, "serve the demo targets", service=True)
    rn = add("ray-node", cmd_ray_node, "run a Ray node for the scrapers (ray start --block)", service=True)
    rn.add_argument("--head", action="store_true", help="start the cluster's head node")
    rn.add_argument("--address", help="join the cluster whose head's GCS is at host:port")
    rn.add_argument("--port", type=int, default=6379, help="the head's GCS port (default 6379)")
    rn.add_argument("--client-port", type=int, default=10001,
                    help="the head's Ray Client port, for ray://host:port drivers (default 10001)")
    rn.add_argument("--num-cpus", type=int, help="CPUs this node offers (default: all of the machine's)")
    rn.add_argument("--node-ip-address", help="the address other nodes reach this one at")
    rn.add_argument("ray_args", nargs=argparse.REMAINDER, help="after --: more `ray start` options")
    imp = sub.add_parser("import", help="backfill historical data into the shards")
    imp_sub = imp.add_subparsers(dest="format", required=True)
    om = imp_sub.add_parser("openmetrics", help="an OpenMetrics text file with timestamps (as promtool)")
    om.add_argument("file")
    om.add_argument("--config", help="configuration file (default: the embedded default)")
    om.add_argument("--batch-samples", type=int, default=200_000, help="samples per write")
    om.set_defaults(fn=cmd_import)
    pt = sub.add_parser("promqltest", help="run PromQL test scripts (Prometheus's format)")
    pt.add_argument("files", nargs="+", help="*.test files or folders of them")
    pt.add_argument("--shards", type=int, default=0, help="run over N real shards instead of in memory")
    pt.add_argument("--config", help=argparse.SUPPRESS)
    pt.set_defaults(fn=cmd_promqltest)
    tg = add("targets", cmd_targets, "print the scrape targets of the running ingest service")
    tg.add_argument("--json", action="store_true", help="print /api/v1/targets's data as JSON")
    tg.add_argument("--dropped", action="store_true", help="also count the targets relabeling dropped")
    add_client_options(tg)
    sc = add("scale", cmd_scale, "change the number of scrapers of the running ingest service")
    sc.add_argument("--scrapers", type=int, required=True, help="how many scrapers to run from now on")
    add_client_options(sc)
    rl = add("reload", cmd_reload, "make the running ingest service read its configuration again (as SIGHUP)")
    add_client_options(rl)
    add("check-config", cmd_check_config, "check a configuration and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        config = load(args.config)
        return args.fn(args, config)
    except ConfigError as exc:
        print(f"shardmon: config error: {exc}", file=sys.stderr)
        return 2
    except UsageError as exc:
        print(f"shardmon: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
