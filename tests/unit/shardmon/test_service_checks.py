"""`--check` on the service subcommands: a one-line OK, or exit 2 naming the field, and nothing started."""

from __future__ import annotations

import pytest

from shardmon.cli import main, parser
from shardmon.cli_services import ray_node_argv

GOOD = """
scrape_configs: [{job_name: a, static_configs: [{targets: ["t:9100"]}]}]
shards:
  nodes:
    - {id: 3, address: "shard-3:9301", redis_url: "redis://redis-3:6379/0", metrics_address: "shard-3:9311"}
ingest: {scrapers: 2, ray_address: "ray://ray-head:10001", scraper_num_cpus: 0.5}
querier: {http_address: "0.0.0.0:9090", grpc_address: "0.0.0.0:9191"}
receiver: {http_address: "receiver:9192", pushgateway_address: "receiver:9091"}
local: {demo_targets: ["0.0.0.0:9401"]}
"""


@pytest.fixture
def cfg(tmp_path):
    def write(text: str = GOOD, name: str = "c.yml") -> str:
        p = tmp_path / name
        p.write_text(text)
        return str(p)

    return write


@pytest.mark.parametrize("argv, summary", [
    (["shard", "--id", "3"], "shard 3 of 1 on shard-3:9301, Redis redis://redis-3:6379/0, /metrics on shard-3:9311"),
    (["querier"], "querier: HTTP on 0.0.0.0:9090, gRPC on 0.0.0.0:9191, over 1 shards"),
    (["ingest"], "ingest: 1 targets in 1 scrape configs, 2 scrapers on the Ray cluster at ray://ray-head:10001"),
    (["ingest", "--ray-address", "10.0.0.1:6379"], "2 scrapers on the Ray cluster at 10.0.0.1:6379"),
    (["receiver"], "receiver: remote_write on receiver:9192, push API on receiver:9091"),
    (["demo-targets"], "demo-targets: 1 targets on 0.0.0.0:9401"),
    (["ray-node", "--head", "--num-cpus", "0"], "ray-node: head; would run: ray start --block"),
    (["ray-node", "--address", "ray-head:6379", "--num-cpus", "2"], "ray-node: worker of ray-head:6379"),
])
def test_check_prints_one_ok_line_and_exits_0(cfg, capsys, argv, summary):
    path = cfg()
    assert main([*argv, "--config", path, "--check"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: OK: ") and summary in out and out.count("\n") == 1, out


@pytest.mark.parametrize("argv, text, error", [
    (["shard", "--id", "0"], GOOD, "shards.nodes: no shard with id 0 (the ids are [3])"),
    (["shard", "--id", "3"], GOOD.replace('"shard-3:9301"', '"shard-3"'),
     "shards.nodes[0].address: not a host:port address: 'shard-3'"),
    (["querier"], GOOD.replace('"redis://redis-3:6379/0"', '"redis-3:6379"'),
     "shards.nodes[0].redis_url: not a redis:// URL"),
    (["querier"], GOOD.replace('"0.0.0.0:9191"', '"0.0.0.0:91910"'), "querier.grpc_address: not a host:port address"),
    (["ingest"], GOOD.replace("scrapers: 2", "scrapers: 0"), "ingest.scrapers: Input should be greater than or equal to 1"),
    (["ingest"], GOOD.replace('"ray://ray-head:10001"', '"ray-head"'), "ingest.ray_address: not a host:port address"),
    (["ingest", "--ray-address", "ray://"], GOOD, "--ray-address: not a host:port address"),
    (["receiver"], GOOD.replace('receiver: {http_address: "receiver:9192", pushgateway_address: "receiver:9091"}', ""),
     "receiver: the section is missing"),
    (["demo-targets"], GOOD.replace('["0.0.0.0:9401"]', "[]"), "local.demo_targets: empty"),
    (["ray-node", "--address", "ray-head:6379", "--num-cpus", "0"], GOOD,
     "ingest.scraper_num_cpus: 0.5 is more than this worker's --num-cpus 0"),
    (["ray-node"], GOOD, "ray-node: give either --head or --address"),
    (["ray-node", "--head", "--address", "h:1"], GOOD, "ray-node: give either --head or --address"),
    (["querier"], "querier: {http_addres: x}", "querier.http_addres: field not supported"),
])
def test_check_names_the_field_at_fault_and_exits_2(cfg, capsys, argv, text, error):
    assert main([*argv, "--config", cfg(text), "--check"]) == 2
    captured = capsys.readouterr()
    assert error in captured.err and not captured.out, captured


def test_ray_node_runs_ray_start_blocking_with_the_extra_options_last():
    args = parser().parse_args(["ray-node", "--head", "--port", "7000", "--client-port", "7001", "--num-cpus", "0",
                                "--node-ip-address", "10.0.0.5", "--", "--object-store-memory", "1000"])
    argv = ray_node_argv(args)
    assert argv[1:5] == ["-m", "ray.scripts.scripts", "start", "--block"]
    start = argv[4:]
    for opt, value in (("--port", "7000"), ("--ray-client-server-port", "7001"), ("--num-cpus", "0"),
                       ("--node-ip-address", "10.0.0.5")):
        assert start[start.index(opt) + 1] == value
    assert "--head" in start and start[-2:] == ["--object-store-memory", "1000"]
    worker = ray_node_argv(parser().parse_args(["ray-node", "--address", "h:6379"]))
    assert worker[worker.index("--address") + 1] == "h:6379" and "--head" not in worker


@pytest.mark.parametrize("old, new, error", [
    ('"shard-3:9301"', '"shard-3"', "shards.nodes[0].address: not a host:port address: 'shard-3'"),
    ('"redis://redis-3:6379/0"', '"redis-3:6379"', "shards.nodes[0].redis_url: not a redis:// URL"),
    ('"0.0.0.0:9191"', '"0.0.0.0:91910"', "querier.grpc_address: not a host:port address"),
    ('"ray://ray-head:10001"', '"ray-head"', "ingest.ray_address: not a host:port address"),
    ('"receiver:9091"', '"receiver"', "receiver.pushgateway_address: not a host:port address"),
    ('["0.0.0.0:9401"]', '["demo"]', "local.demo_targets[0]: not a host:port address"),
])
def test_check_config_and_every_services_check_refuse_the_same_bad_address(cfg, capsys, old, new, error):
    path = cfg(GOOD.replace(old, new))
    for argv in (["check-config"], ["shard", "--id", "3", "--check"], ["querier", "--check"], ["ingest", "--check"],
                 ["receiver", "--check"], ["demo-targets", "--check"], ["ray-node", "--head", "--check"]):
        assert main([*argv, "--config", path]) == 2, argv
        captured = capsys.readouterr()
        assert error in captured.err and not captured.out, (argv, captured)
