"""The ``shardmon`` command.

    shardmon up [--config FILE]                 a whole local cluster (the embedded default without --config)
    shardmon query [--config FILE] [--json] [--time T] EXPR
    shardmon shard --id N [--config FILE]       one storage shard server
               [--accept-data-loss | --rebuild-from-replicas]   after its Redis lost data (README)
    shardmon querier [--config FILE]            the querier (HTTP and gRPC APIs)
    shardmon ingest [--config FILE] [--ray-address ADDR]   the ingest service (Ray coordinator and scrapers)
    shardmon ingest --status [--config FILE]    where the running scrapers are (asks the Ray cluster), then exit
    shardmon ruler [--config FILE] [--ray-address ADDR]    the ruler service (Ray actors evaluating rule_files)
    shardmon receiver [--config FILE]           remote_write and the Pushgateway-compatible push API
    shardmon k8s-api [--config FILE]            the Kubernetes metrics APIs (kubernetes_metrics: metrics.k8s.io, custom, external)
    shardmon demo-targets [--config FILE]       the built-in demo targets of ``local.demo_targets``
    shardmon ray-node (--head | --address H:P)  a Ray node for the scrapers (``ray start --block``)
    shardmon import openmetrics [--config FILE] FILE   backfill an OpenMetrics file with timestamps
    shardmon promqltest [--shards N] FILE...    run PromQL test scripts, in memory or over N real shards
    shardmon targets [--config FILE] [--json] [--dropped]   the scrape targets of the running ingest service
    shardmon scale --scrapers N [--config FILE]  change the number of scrapers of the running ingest service
    shardmon scale --rulers N [--config FILE]    change the number of rulers of the running ruler service
    shardmon reload [--config FILE]             make the running ingest (and ruler) service read the configuration again
    shardmon check-config [--config FILE]       load and check a configuration, then exit
    shardmon check rules FILE...                check rule files, as ``promtool check rules``
    shardmon test rules FILE...                 run rule unit-test files, as ``promtool test rules``

``query``, ``targets``, ``scale`` and ``reload`` also take the options of how to reach Shardmon's listeners
(``--http.config.file``, ``--tls``, ``--ca-file``, ``--username``/``--password-file``...; see ``--help``).

Every service subcommand also takes ``--check``: load and check the configuration and the subcommand's
own arguments, print a one-line summary, and exit (0 when all is well, 2 with the field at fault when
not) without starting anything.

The subcommands are in :mod:`shardmon.cli_services` (those that run or check a process) and
:mod:`shardmon.cli_clients` (those that start none); :mod:`shardmon.cli_common` holds what they share.
This module builds the argument parser and dispatches.
"""

from __future__ import annotations

import argparse
import sys

from shardmon.cli_clients import (
    add_client_options,
    cmd_import,
    cmd_promqltest,
    cmd_query,
    cmd_reload,
    cmd_scale,
    cmd_targets,
)
from shardmon.cli_common import UsageError, load
from shardmon.cli_rules import cmd_check_rules, cmd_test_rules
from shardmon.cli_services import (
    cmd_check_config,
    cmd_demo_targets,
    cmd_ingest,
    cmd_k8s_api,
    cmd_querier,
    cmd_ray_node,
    cmd_receiver,
    cmd_ruler,
    cmd_shard,
    cmd_up,
)
from shardmon.model.errors import ConfigError


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
    ru = add("ruler", cmd_ruler, "run the ruler service (Ray actors evaluating the rule files)", service=True)
    ru.add_argument("--ready-file", help="create this file once the rulers evaluate their groups")
    ru.add_argument("--ray-address", help="the Ray cluster to run on, instead of ingest.ray_address")
    add("receiver", cmd_receiver, "run the receiver (remote_write, Pushgateway API)", service=True)
    add("k8s-api", cmd_k8s_api, "serve the Kubernetes metrics APIs (kubernetes_metrics section)", service=True)
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
    sc = add("scale", cmd_scale, "change the number of scrapers (ingest service) or rulers (ruler service)")
    how_many = sc.add_mutually_exclusive_group(required=True)
    how_many.add_argument("--scrapers", type=int, help="how many scrapers to run from now on")
    how_many.add_argument("--rulers", type=int, help="how many rulers to run from now on")
    add_client_options(sc)
    rl = add("reload", cmd_reload, "make the running ingest service (and ruler service) read the configuration again (as SIGHUP)")
    add_client_options(rl)
    add("check-config", cmd_check_config, "check a configuration and exit")
    ck = sub.add_parser("check", help="check files, as promtool check")
    ck_sub = ck.add_subparsers(dest="what", required=True)
    cr = ck_sub.add_parser("rules", help="check rule files (as promtool check rules)")
    cr.add_argument("files", nargs="+", help="rule files")
    cr.add_argument("--lint", default="duplicate-rules", choices=["all", "duplicate-rules", "none"],
                    help="linting checks to apply (default duplicate-rules)")
    cr.add_argument("--lint-fatal", action="store_true", help="make lint errors exit with exit code 3")
    cr.add_argument("--config", help=argparse.SUPPRESS)
    cr.set_defaults(fn=cmd_check_rules)
    ts = sub.add_parser("test", help="run unit tests, as promtool test")
    ts_sub = ts.add_subparsers(dest="what", required=True)
    tr = ts_sub.add_parser("rules", help="run rule unit-test files (as promtool test rules)")
    tr.add_argument("files", nargs="+", help="test files")
    tr.add_argument("--config", help=argparse.SUPPRESS)
    tr.set_defaults(fn=cmd_test_rules)
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
