"""The ``shardmon`` command.

    shardmon up [--config FILE]                 a whole local cluster (the embedded default without --config)
    shardmon query [--config FILE] [--json] [--time T] EXPR
    shardmon shard --id N [--config FILE]       one storage shard server
    shardmon querier [--config FILE]            the querier (HTTP and gRPC APIs)
    shardmon ingest [--config FILE]             the ingest service (Ray coordinator and scrapers)
    shardmon receiver [--config FILE]           remote_write and the Pushgateway-compatible push API
    shardmon demo-targets [--config FILE]       the built-in demo targets of ``local.demo_targets``
    shardmon import openmetrics [--config FILE] FILE   backfill an OpenMetrics file with timestamps
    shardmon promqltest [--shards N] FILE...    run PromQL test scripts, in memory or over N real shards
    shardmon check-config [--config FILE]       load and check a configuration, then exit

Every service subcommand also takes ``--check``: load and check the configuration, then exit.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
from importlib import resources

from model.config import Config, load_config, parse_config
from model.errors import ConfigError, QueryError

DEFAULT_CONFIG = "default.yml"


def default_config_text() -> str:
    return resources.files("shardmon").joinpath(DEFAULT_CONFIG).read_text()


def load(path: str | None) -> Config:
    """The configuration at ``path``, or the embedded default."""
    if path:
        return load_config(path)
    return parse_config(default_config_text(), "<embedded default config>")


def _logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def cmd_up(args, config: Config) -> int:
    from shardmon.launcher import LocalCluster

    cluster = LocalCluster(config, args.config)
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        stopping = True

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
            f"  curl 'http://{q.http_address}/api/v1/query?query=up'   (Prometheus HTTP API; Grafana: http://{q.http_address})\n"
            f"  gRPC Query API on {q.grpc_address}\n"
            f"Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stopping:
            time.sleep(0.5)
            cluster.supervise_once()
    except RuntimeError as exc:
        print(f"shardmon up: {exc}", file=sys.stderr)
        return_code = 1
    else:
        return_code = 0
    finally:
        print("\nStopping Shardmon...", flush=True)
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

    try:
        t = parse_time_ms(args.time, "time") if args.time else None
        with QueryClient(config.querier.grpc_address, timeout_s=config.querier.query_timeout / 1000) as client:
            res = client.instant(args.expr, t)
    except QueryError as exc:
        if args.json:
            import json

            print(json.dumps({"status": "error", "errorType": exc.error_type, "error": str(exc)}))
        else:
            print(f"shardmon query: {exc.error_type}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        import json

        body = f'{{"status":"success","data":{result_json(res)}'
        if res.warnings:
            body += f',"warnings":{json.dumps(res.warnings)}'
        print(body + "}")
    else:
        for w in res.warnings:
            print(f"warning: {w}", file=sys.stderr)
        print(_format_table(res))
    return 0


def cmd_shard(args, config: Config) -> int:
    from shards.server import serve

    config.shards.node(args.id)
    if args.check:
        return 0
    _logging(args.verbose)
    asyncio.run(serve(config, args.id))
    return 0


def cmd_querier(args, config: Config) -> int:
    from querier.server import serve

    if args.check:
        return 0
    _logging(args.verbose)
    asyncio.run(serve(config))
    return 0


def cmd_ingest(args, config: Config) -> int:
    from ingest.target import targets_from_config

    targets_from_config(config)  # Target-level checks (label overrides) fail here, before Ray starts.
    if args.check:
        return 0
    from ingest.service import run

    _logging(args.verbose)
    run(config, ready_file=args.ready_file)
    return 0


def cmd_receiver(args, config: Config) -> int:
    if config.receiver is None:
        raise ConfigError("receiver: the section is missing, so there is no receiver to run")
    if args.check:
        return 0
    from ingest.receiver import serve

    _logging(args.verbose)
    asyncio.run(serve(config))
    return 0


def cmd_demo_targets(args, config: Config) -> int:
    from shardmon.demo import serve

    if args.check:
        return 0
    asyncio.run(serve(list(config.local.demo_targets)))
    return 0


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


def cmd_check_config(args, config: Config) -> int:
    from ingest.target import targets_from_config

    n = len(targets_from_config(config))
    print(f"{args.config or '<embedded default config>'}: OK ({len(config.scrape_configs)} scrape configs, "
          f"{n} targets, {len(config.shards.nodes)} shards)")
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
    s = add("shard", cmd_shard, "run one shard server", service=True)
    s.add_argument("--id", type=int, required=True, help="the shard id (shards.nodes[].id)")
    add("querier", cmd_querier, "run the querier", service=True)
    i = add("ingest", cmd_ingest, "run the ingest service (Ray)", service=True)
    i.add_argument("--ready-file", help="create this file once the scrapers are running")
    add("receiver", cmd_receiver, "run the receiver (remote_write, Pushgateway API)", service=True)
    add("demo-targets", cmd_demo_targets, "serve the demo targets", service=True)
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
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
