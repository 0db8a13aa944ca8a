"""The two systems under test, behind one small interface: Shardmon's local cluster and Prometheus.

Both scrape the same farm with the same ``scrape_configs`` (one target group per farm target, its
``__metrics_path__`` and ``instance`` set by group labels, as Prometheus users write them), listen
on free loopback ports and keep their data in the run's folder.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

from shardmon.procs import Child, ChildFailed, free_port, shardmon_argv

__all__ = ["Prometheus", "Shardmon", "System", "dir_bytes", "free_port", "http_get", "http_ok", "http_post",
           "metric_sum", "prometheus_binary", "query_once", "scrape_configs"]


def http_get(url: str, timeout_s: float = 60) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:
        return resp.read()


def http_ok(url: str, timeout_s: float = 2) -> bool:
    """Whether a GET of ``url`` answers 2xx (a readiness check)."""
    try:
        http_get(url, timeout_s)
        return True
    except OSError:
        return False


def http_post(url: str, timeout_s: float = 300) -> bytes:
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=timeout_s) as resp:
        return resp.read()


def metric_sum(text: str, name: str) -> float:
    """The sum of every sample of metric ``name`` in an exposition body."""
    total = 0.0
    pattern = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)", re.M)
    for m in pattern.finditer(text):
        total += float(m.group(1))
    return total


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def scrape_configs(farm_port: int, n_targets: int) -> list[dict]:
    return [
        {
            "job_name": "farm",
            "static_configs": [
                {"targets": [f"127.0.0.1:{farm_port}"], "labels": {"__metrics_path__": f"/t/{i}/metrics", "instance": f"t{i}"}}
                for i in range(n_targets)
            ],
        }
    ]


def _global(interval_s: float) -> dict:
    timeout = min(10.0, interval_s)
    return {"scrape_interval": f"{int(interval_s * 1000)}ms", "scrape_timeout": f"{int(timeout * 1000)}ms"}


def prometheus_binary() -> str:
    exe = shutil.which("prometheus")
    if not exe:
        raise RuntimeError("prometheus is not installed: apt-get install prometheus (bench/run does it)")
    return exe


class System:
    """What the harness needs of a system under test."""

    name = "?"
    child: Child

    def start(self) -> None: ...
    def samples_appended(self) -> float: ...
    def query_url(self) -> str: ...
    def flush_and_measure_storage(self) -> dict: ...
    def stop(self) -> None: ...

    @property
    def pid(self) -> int:
        return self.child.pid

    def alive(self) -> bool:
        return self.child.alive()


class Shardmon(System):
    """``shardmon up`` with a generated config: Redis, shards, querier, Ray and the scrapers."""

    name = "shardmon"

    def __init__(self, folder: Path, farm_port: int, n_targets: int, interval_s: float, *, shards: int = 2,
                 scrapers: int = 2, scrape: bool = True, receiver: bool = False) -> None:
        self.folder = folder
        self.shard_metrics = [f"127.0.0.1:{free_port()}" for _ in range(shards)]
        self.redis_ports = [free_port() for _ in range(shards)]
        self.http = f"127.0.0.1:{free_port()}"
        self.config = {
            "global": _global(interval_s),
            "scrape_configs": scrape_configs(farm_port, n_targets) if scrape else [],
            "shards": {
                "nodes": [
                    {"id": i, "address": f"127.0.0.1:{free_port()}", "redis_url": f"redis://127.0.0.1:{self.redis_ports[i]}/0",
                     "metrics_address": self.shard_metrics[i]}
                    for i in range(shards)
                ]
            },
            "ingest": {"scrapers": scrapers, "scraper_num_cpus": 0.1, "self_monitoring": scrape},
            "querier": {"http_address": self.http, "grpc_address": f"127.0.0.1:{free_port()}"},
            "local": {"data_dir": str(folder / "data"), "start_redis": True, "demo_targets": []},
            # flush_and_measure_storage calls the shards' Flush, an admin RPC.
            "web": {"enable_admin_api": True},
        }
        self.remote_write_url = None
        if receiver:
            address = f"127.0.0.1:{free_port()}"
            self.config["receiver"] = {"http_address": address, "pushgateway_address": None}
            self.remote_write_url = f"http://{address}/api/v1/write"
        self.config_path = folder / "shardmon.yml"
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        log = folder / "shardmon-up.log"
        self.child = Child("shardmon-up", shardmon_argv("up", config=self.config_path), log,
                           lambda: "Shardmon is up" in log.read_text())

    def start(self) -> None:
        try:
            self.child.up(180, interval_s=0.2)
        except ChildFailed as exc:
            raise RuntimeError(f"shardmon up failed: {exc.log_tail[-2000:]}") from None

    def samples_appended(self) -> float:
        return sum(metric_sum(http_get(f"http://{a}/metrics").decode(), "shardmon_shard_samples_appended_total")
                   for a in self.shard_metrics)

    def query_url(self) -> str:
        return f"http://{self.http}"

    def flush_and_measure_storage(self) -> dict:
        from shardmon.shards.client import ShardClient

        for node in self.config["shards"]["nodes"]:
            c = ShardClient(node["id"], node["address"])
            c.flush()
            c.close()
        block_bytes = block_samples = 0.0
        for a in self.shard_metrics:
            text = http_get(f"http://{a}/metrics").decode()
            block_bytes += metric_sum(text, "shardmon_shard_block_bytes")
            block_samples += metric_sum(text, "shardmon_shard_block_samples")
        # Rewrite each Redis's append-only file so it holds the data once (blocks, series labels,
        # what is left of the WAL), then measure it.
        for port in self.redis_ports:
            subprocess.run(["redis-cli", "-p", str(port), "BGREWRITEAOF"], capture_output=True, check=True)
        for port in self.redis_ports:
            for _ in range(600):
                info = subprocess.run(["redis-cli", "-p", str(port), "INFO", "persistence"], capture_output=True,
                                      text=True).stdout
                if "aof_rewrite_in_progress:0" in info and "aof_rewrite_scheduled:0" in info:
                    break
                time.sleep(0.1)
        disk = sum(dir_bytes(p) for p in (self.folder / "data").glob("redis-*"))
        return {"samples_stored": block_samples, "block_bytes": block_bytes, "disk_bytes": disk}

    def stop(self) -> None:
        self.child.stop(90)


class Prometheus(System):
    """Debian's ``prometheus`` with the same scrape configuration."""

    name = "prometheus"

    def __init__(self, folder: Path, farm_port: int, n_targets: int, interval_s: float,
                 remote_write_url: str | None = None, *, rule_files: list[str] | None = None,
                 evaluation_interval_s: float | None = None, remote_write_drop: str | None = None) -> None:
        """``rule_files`` and ``evaluation_interval_s`` make it evaluate rules (and enable ``/-/reload``, see
        :meth:`drop_rules`); ``remote_write_drop`` is a regex of metric names not remote-written."""
        self.folder = folder
        self.address = f"127.0.0.1:{free_port()}"
        self.data = folder / "prometheus-data"
        config: dict = {"global": _global(interval_s), "scrape_configs": scrape_configs(farm_port, n_targets)}
        if evaluation_interval_s:
            config["global"]["evaluation_interval"] = f"{int(evaluation_interval_s * 1000)}ms"
        if rule_files:
            config["rule_files"] = list(rule_files)
        self.lifecycle = bool(rule_files)
        if remote_write_url:
            config["remote_write"] = [{"url": remote_write_url, "queue_config": {
                "batch_send_deadline": "1s", "max_samples_per_send": 5000, "capacity": 20000,
                "min_backoff": "100ms", "max_backoff": "2s"}}]
            if remote_write_drop:
                config["remote_write"][0]["write_relabel_configs"] = [
                    {"source_labels": ["__name__"], "regex": remote_write_drop, "action": "drop"}]
        self.config = config
        self.config_path = folder / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def drop_rules(self) -> None:
        """Stop evaluating rules: the config again without ``rule_files``, reloaded (``POST /-/reload``)."""
        self.config.pop("rule_files", None)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        http_post(f"http://{self.address}/-/reload", 60)

    def start(self) -> None:
        self.child = Child("prometheus", [
            prometheus_binary(), f"--config.file={self.config_path}", f"--storage.tsdb.path={self.data}",
            f"--web.listen-address={self.address}", "--web.enable-admin-api", "--log.level=warn",
            *(["--web.enable-lifecycle"] if self.lifecycle else []),
        ], self.folder / "prometheus.log", lambda: http_ok(f"http://{self.address}/-/ready"))
        try:
            self.child.up(60, interval_s=0.2)
        except ChildFailed as exc:
            raise RuntimeError(f"prometheus failed: {exc.log_tail[-2000:]}") from None

    def samples_appended(self) -> float:
        return metric_sum(http_get(f"http://{self.address}/metrics").decode(), "prometheus_tsdb_head_samples_appended_total")

    def query_url(self) -> str:
        return f"http://{self.address}"

    def flush_and_measure_storage(self) -> dict:
        # A snapshot writes the head as a block too: the on-disk form of everything ingested.
        name = json.loads(http_post(f"http://{self.address}/api/v1/admin/tsdb/snapshot"))["data"]["name"]
        snap = self.data / "snapshots" / name
        samples = chunk_bytes = 0
        for meta in snap.glob("*/meta.json"):
            samples += json.loads(meta.read_text())["stats"]["numSamples"]
            chunk_bytes += dir_bytes(meta.parent / "chunks")
        return {"samples_stored": samples, "block_bytes": chunk_bytes, "disk_bytes": dir_bytes(snap)}

    def stop(self) -> None:
        self.child.stop(60)


def query_once(base_url: str, path: str, params: dict) -> tuple[float, dict]:
    url = f"{base_url}{path}?{urllib.parse.urlencode(params)}"
    t0 = time.perf_counter()
    body = json.loads(http_get(url, 120))
    return time.perf_counter() - t0, body
