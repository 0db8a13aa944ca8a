"""The ``shardmon`` subcommands that run a Shardmon process, or check its configuration: ``up`` (a whole
local cluster), ``shard``, ``querier``, ``ingest``, ``ruler``, ``receiver``, ``k8s-api``, ``demo-targets``, ``ray-node`` and
``check-config``.

The configuration's own checks (field types, addresses, Redis URLs, Ray addresses) run when it loads,
the same for every subcommand; each service then checks what only it needs (its shard id, a
``receiver`` section, demo targets, its flags) before it starts anything. With ``--check`` a service
prints one line (:func:`shardmon.cli_common.check_ok`) and exits instead of starting.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import sys
import time
from pathlib import Path

from shardmon.cli_common import UsageError, check_ok, load, security_summary, setup_logging
from shardmon.model.addresses import check_host_port, check_ray_address, redacted_url
from shardmon.model.config import Config
from shardmon.model.errors import ConfigError
from shardmon.model.rule_config import parse_rule_text


def _node_index(config: Config, shard_id: int) -> int:
    for i, n in enumerate(config.shards.nodes):
        if n.id == shard_id:
            return i
    ids = [n.id for n in config.shards.nodes]
    raise ConfigError(f"shards.nodes: no shard with id {shard_id} (the ids are {ids})")


def cmd_up(args, config: Config) -> int:
    from shardmon.launcher import Interrupted, LocalCluster

    web = config.web_config()  # a bad web config stops us here, before anything starts
    scheme = "https" if web is not None and web.tls else "http"
    curl = "curl" + (" --cacert CA" if scheme == "https" else "") + (" -u USER" if web is not None and web.auth else "")
    cluster = LocalCluster(config, args.config)

    def on_signal(signum, frame):  # no I/O here: the main thread may be printing
        cluster.request_stop()  # the first: stop in stages; the next: kill the rest at once

    def on_hup(signum, frame):
        cluster.reload_requested = True  # passed on by the main loop, once started

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_hup)
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
            + (f"  Kubernetes metrics APIs (metrics.k8s.io, custom.metrics.k8s.io, external.metrics.k8s.io) on "
               f"https://{config.kubernetes_metrics.listen_address}\n" if config.kubernetes_metrics else "")
            + "Ctrl-C stops everything (a second Ctrl-C kills at once); SIGHUP reloads the configuration.\n",
            flush=True,
        )
        while not cluster.stop_requested:
            time.sleep(0.5)
            cluster.supervise_once()
            if cluster.reload_requested:
                cluster.reload()
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


def cmd_shard(args, config: Config) -> int:
    from shardmon.shards.server import serve

    i = _node_index(config, args.id)
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
        return check_ok(args, f"shard {n.id} of {len(config.shards.nodes)} on {n.address}, Redis "
                         f"{redacted_url(n.redis_url)}{auth}{tls}"
                         + (f", /metrics on {n.metrics_address}" if n.metrics_address else ""), config)
    setup_logging(args.verbose)
    asyncio.run(serve(config, args.id, accept_data_loss=args.accept_data_loss,
                      rebuild_from_replicas=args.rebuild_from_replicas))
    return 0


def cmd_querier(args, config: Config) -> int:
    from shardmon.querier.server import serve

    q = config.querier
    if args.check:
        return check_ok(args, f"querier: HTTP on {q.http_address}, gRPC on {q.grpc_address}, "
                         f"over {len(config.shards.nodes)} shards", config)
    setup_logging(args.verbose)
    asyncio.run(serve(config, config_file=args.config))
    return 0


def _with_ray_address(config: Config, address: str | None) -> Config:
    """``config`` with ``--ray-address`` in place of ``ingest.ray_address``; a ConfigError naming the flag
    when it is not a Ray address."""
    if not address:
        return config
    try:
        check_ray_address(address)
    except ValueError as exc:
        raise ConfigError(f"--ray-address: {exc}") from None
    return config.model_copy(update={"ingest": config.ingest.model_copy(update={"ray_address": address})})


def cmd_ingest(args, config: Config) -> int:
    from shardmon.ingest.target import targets_from_config

    config = _with_ray_address(config, args.ray_address)
    targets = targets_from_config(config)  # Target-level checks (label overrides) fail here, before Ray starts.
    config.web_config()  # and a bad web config (the coordinator's and scrapers' /metrics use it)
    if args.status:
        return _ingest_status(config)
    if args.check:
        ray_at = "a local Ray" if config.ingest.ray_address == "local" else f"the Ray cluster at {config.ingest.ray_address}"
        return check_ok(args, f"ingest: {len(targets)} targets in {len(config.scrape_configs)} scrape configs, "
                         f"{config.ingest.scrapers} scrapers on {ray_at}, writing to {len(config.shards.nodes)} shards",
                   config)
    from shardmon.ingest.service import run

    return _run_ray_service(run, args, config)


def _run_ray_service(run, args, config: Config) -> int:
    """Run ``shardmon ingest`` or ``shardmon ruler`` (``run``: its service's ``run``): ready file, logging, and
    reloads reading the configuration file again with ``--ray-address`` applied."""
    if args.ready_file:
        # A container restarted keeps its files: "ready" must mean this run's service.
        Path(args.ready_file).unlink(missing_ok=True)
    setup_logging(args.verbose)
    run(config, ready_file=args.ready_file,
        reload_config=lambda: _with_ray_address(load(args.config), args.ray_address))
    return 0


def _ingest_status(config: Config) -> int:
    """Print, as JSON, the running coordinator's scrapers (with their nodes) and the cluster's nodes."""
    import json

    from shardmon.ingest.coordinator import cluster_status

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


def cmd_ruler(args, config: Config) -> int:
    from shardmon.rules.service import check_rule_files

    config = _with_ray_address(config, args.ray_address)
    texts = check_rule_files(config)  # a bad rule file: exit 2 naming it, before Ray starts
    config.web_config()
    if args.check:
        groups = sum(len(parse_rule_text(text, path).groups) for path, text in texts.items())
        return check_ok(args, f"ruler: {groups} groups in {len(texts)} rule files, {config.rules.rulers} rulers, "
                              f"writing to {len(config.shards.nodes)} shards", config)
    from shardmon.rules.service import run

    return _run_ray_service(run, args, config)


def cmd_receiver(args, config: Config) -> int:
    if config.receiver is None:
        raise ConfigError("receiver: the section is missing, so there is no receiver to run")
    rc = config.receiver
    if args.check:
        return check_ok(args, f"receiver: remote_write on {rc.http_address}, "
                         f"push API on {rc.pushgateway_address or '(off)'}, writing to {len(config.shards.nodes)} shards",
                   config)
    from shardmon.ingest.receiver import serve

    setup_logging(args.verbose)
    asyncio.run(serve(config))
    return 0


def cmd_k8s_api(args, config: Config) -> int:
    from shardmon.k8sapi.service import section

    cfg = section(config)
    if args.check:
        from shardmon.k8sapi.auth import Authenticator
        from shardmon.k8sapi.service import kube_connection
        from shardmon.k8sapi.tls import server_context

        server_context(cfg)  # certificates and CA bundles load, or exit 2 naming the field
        reachable = cfg.authentication_token_webhook and kube_connection(cfg) is not None

        async def no_review(token: str) -> None:
            return None

        Authenticator(cfg, no_review if reachable else None)  # the CA bundles and token file read
        tls = f"certificate {cfg.tls_cert_file}" if cfg.tls_cert_file else "a self-signed certificate"
        ways = [w for w, on in (("front-proxy certificates", cfg.requestheader_client_ca_file),
                                ("client certificates", cfg.client_ca_file), ("token file", cfg.token_auth_file),
                                ("TokenReview", cfg.authentication_token_webhook),
                                ("anonymous", cfg.anonymous_auth)) if on]
        return check_ok(args, f"k8s-api: HTTPS on {cfg.listen_address} with {tls}; authentication: "
                              f"{', '.join(ways) or 'none (every request is refused)'}; over "
                              f"{len(config.shards.nodes)} shards", config)
    from shardmon.k8sapi.service import serve

    setup_logging(args.verbose)
    asyncio.run(serve(config))
    return 0


def cmd_demo_targets(args, config: Config) -> int:
    from shardmon.demo import serve

    addresses = list(config.local.demo_targets)
    if not addresses:
        raise ConfigError("local.demo_targets: empty, so there are no demo targets to serve")
    if args.check:
        return check_ok(args, f"demo-targets: {len(addresses)} targets on {', '.join(addresses)}")
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
        try:
            check_host_port(args.address)
        except ValueError as exc:
            raise ConfigError(f"--address: {exc}") from None
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
    from shardmon.ingest.rayauth import token_auth_env

    if args.check:  # the token is looked for (and a head's written) when the node starts, not when checked
        role = "head" if args.head else f"worker of {args.address}"
        token = config.ingest.ray_auth_token_file or env.get("RAY_AUTH_TOKEN_PATH") or "Ray's default"
        return check_ok(args, f"ray-node: {role}; would run: ray {shlex.join(argv[3:])}; "
                         f"with Ray token authentication (token: {token})")
    env.update(token_auth_env(config.ingest.ray_auth_token_file, create=args.head, environ=env))
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)
    return 0  # not reached


def cmd_check_config(args, config: Config) -> int:
    from shardmon.ingest.target import targets_from_config

    n = len(targets_from_config(config))
    print(f"{args.config or '<embedded default config>'}: OK ({len(config.scrape_configs)} scrape configs, "
          f"{n} targets, {len(config.shards.nodes)} shards; {security_summary(config)})")
    return 0
