"""The ``shardmon`` subcommands that start no service: the clients of a running cluster (``query``,
``targets``, ``scale``, ``reload``), the backfill ``import``, and ``promqltest`` (PromQL test scripts,
in memory or over shards it starts for the run).

The clients reach secured listeners as :func:`client_of` says: the configuration's
``internal_client``, replaced by ``--http.config.file`` (Prometheus's HTTP client file), then by the
flags (:func:`add_client_options`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shardmon.cli_common import UsageError
from shardmon.model.config import Config
from shardmon.model.errors import ShardmonError, UnauthenticatedError


def _format_table(res) -> str:
    """A query result as ``shardmon query`` prints it without ``--json``: one line per series (a native
    histogram point in the test scripts' notation, ``{{schema:3 count:12 sum:0.5 buckets:[...]}}``)."""
    from shardmon.model.histogram_notation import format_histogram
    from shardmon.querier.http_api import format_ts, format_value

    if res.result_type == "scalar":
        return f"scalar  {format_value(res.scalar)}  @{format_ts(res.time_ms)}"
    if res.result_type == "string":
        return f"string  {res.scalar}"
    rows = []
    for s in res.series:
        name = str(s.labels) if s.labels else "{}"
        hists = s.histograms.tolist() if s.histograms is not None else [None] * len(s.values)
        texts = [format_value(v) if h is None else format_histogram(h) for v, h in zip(s.values.tolist(), hists)]
        if res.result_type == "vector":
            rows.append((name, texts[0]))
        else:
            rows.append((name, " ".join(f"{v}@{format_ts(t)}" for t, v in zip(s.timestamps_ms.tolist(), texts))))
    if not rows:
        return "(empty result)"
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{n:<{width}}  {v}" for n, v in rows)


def cmd_query(args, config: Config) -> int:
    from shardmon.client import QueryClient
    from shardmon.querier.http_api import parse_time_ms, result_json

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


def client_of(args, config: Config):
    """How the command calls Shardmon's listeners: the configuration's ``internal_client``, replaced by
    ``--http.config.file`` (Prometheus's HTTP client file: ``basic_auth``, ``tls_config``), then by the
    flags (any TLS flag means TLS)."""
    import yaml

    from shardmon.model.http_config import BasicAuth, HTTPClientConfig, TLSConfig
    from shardmon.model.httpclient import InternalClient

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
            from shardmon.model.config import yaml_error

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
    """The options of the subcommands that call Shardmon's listeners (read by :func:`client_of`)."""
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


def _ingest_api(args, config: Config, path: str, data: dict | None = None) -> dict:
    """Call the running ingest service's API (``ingest.http_address``); its JSON answer."""
    if not config.ingest.http_address:
        raise UsageError("ingest.http_address is not set: the ingest service serves no API")
    return _service_api(args, config, config.ingest.http_address, "ingest service", path, data)


def _rules_api(args, config: Config, path: str, data: dict | None = None) -> dict:
    """Call the running ruler service's API (``rules.http_address``); its JSON answer."""
    if not config.rules.http_address:
        raise UsageError("rules.http_address is not set: the ruler service serves no API")
    return _service_api(args, config, config.rules.http_address, "ruler service", path, data)


def _service_api(args, config: Config, address: str, service: str, path: str, data: dict | None) -> dict:
    import json
    import urllib.error
    import urllib.parse
    import urllib.request

    conn = client_of(args, config)
    url = f"{conn.scheme}://{address}{path}"
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
            message += f" (the {service} runs with web.enable_lifecycle: false)"
        raise UsageError(f"{url}: refused with HTTP {exc.code}: {message or exc.reason}") from None
    except OSError as exc:
        raise UsageError(f"the ingest service does not answer at {url}: {exc}") from None


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
    """Change the number of scrapers of the running ingest service, or of rulers of the ruler service."""
    if args.rulers is not None:
        d = _rules_api(args, config, "/api/v1/rulers", {"count": args.rulers})["data"]
        print(f"{d['rulers']} rulers; {len(d['moved'])} groups moved")
        return 0
    answer = _ingest_api(args, config, "/api/v1/scrapers", {"count": args.scrapers})
    d = answer["data"]
    print(f"{d['scrapers']} scrapers; {d['moved']} of {d['targets']} targets moved")
    return 0


def cmd_reload(args, config: Config) -> int:
    """Ask the running ingest service, and with rule files the ruler service, to read their configuration
    (and rule files) again."""
    answer = _ingest_api(args, config, "/-/reload", {})
    print(f"reloaded: {answer['data']}")
    if config.rule_files and config.rules.http_address:
        answer = _rules_api(args, config, "/-/reload", {})
        print(f"rules reloaded: {answer['data']}")
    return 0


def cmd_import(args, config: Config) -> int:
    from shardmon.importer import import_openmetrics, summary_line
    from shardmon.model.errors import ExpositionError

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
    from shardmon.querier.promqltest import ScriptError, ScriptReport, memory_storage, run_file, sharded_storage

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
    if total.different:
        print(f"{total.different} skipped (Prometheus 2.42's cases that 2.53 answers differently)")
    print(f"{total.passed} passed, {failed} failed")
    return 1 if failed else 0
