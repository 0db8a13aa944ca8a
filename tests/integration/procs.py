"""Real processes for integration tests, on the project's one process harness (shardmon/procs.py):
redis-server, shard, querier and receiver servers, the ingest service, ``shardmon up`` and Debian's
Prometheus as :class:`~shardmon.procs.Child` processes; a :class:`Cluster` of them from a generated
configuration; HTTP targets serving counters; and :func:`wait_until`.

Every service listens on a free loopback port and is stopped by the test that started it. A child that
exits during start-up fails the test with the end of its log (tests/integration/conftest.py shows it).
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import yaml
from aiohttp import web

from shardmon.procs import Child, free_port, redis_server_argv, shardmon_argv

__all__ = ["Child", "Cluster", "CounterTargets", "free_port", "ingest_proc", "proc", "prometheus_proc",
           "redis_proc", "run_shardmon", "shardmon_proc", "shardmon_up", "up_config", "wait_until"]


def wait_until(pred, timeout_s: float, what: str, interval_s: float = 0.1):
    """Call ``pred`` until it returns something true, and return that; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


def proc(name: str, argv: list[str], log_dir: Path, ready_port: int | None = None, *,
         env: dict[str, str] | None = None) -> Child:
    """A test's child process, its output in ``log_dir/<name>.log``, ready once ``127.0.0.1:ready_port``
    accepts connections (or at once). ``.up()`` starts it and waits."""
    return Child(name, argv, log_dir / f"{name}.log", ("127.0.0.1", ready_port) if ready_port else None, env=env)


def redis_proc(port: int, data_dir: Path, log_dir: Path, *, appendfsync: str = "everysec",
               extra: tuple[str, ...] = ()) -> Child:
    """redis-server as ``shardmon up`` starts it for a shard (append-only file, fsync every second)."""
    assert shutil.which("redis-server"), "redis-server is not installed (scripts/setup.sh installs it)"
    return proc(f"redis-{port}", redis_server_argv(port, data_dir, appendfsync=appendfsync, extra=extra), log_dir, port)


def shardmon_proc(name: str, args: list[str], config_path: Path, log_dir: Path, ready_port: int | None) -> Child:
    """``shardmon ARGS --config CONFIG_PATH``."""
    return proc(name, shardmon_argv(*args, config=config_path), log_dir, ready_port)


def run_shardmon(*args: str, config: Path, timeout: float = 120,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``shardmon ARGS --config CONFIG`` run to its end: its exit code, stdout and stderr (text)."""
    return subprocess.run(shardmon_argv(*args, config=config), capture_output=True, text=True, timeout=timeout, env=env)


def ingest_proc(config_path: Path, log_dir: Path, *, env: dict[str, str] | None = None) -> Child:
    """The ingest service (``shardmon ingest``), ready once it writes its ready file (its coordinator
    and scrapers are running): give ``.up()`` two minutes, starting Ray takes a while."""
    ready = log_dir / "ingest.ready"
    return Child("ingest", shardmon_argv("ingest", "--ready-file", str(ready), config=config_path),
                 log_dir / "ingest.log", ready, env=env)


def shardmon_up(config_path: Path, log_path: Path) -> Child:
    """``shardmon up`` as a user runs it, ready once it says "Shardmon is up"."""
    return Child("shardmon-up", shardmon_argv("up", config=config_path), log_path,
                 lambda: "Shardmon is up" in log_path.read_text(errors="replace"))


def up_config(tmp: Path, interval_s: float, scrape_timeout: str = "1s", *, n_shards: int | None = None,
              shard_metrics: bool = True) -> dict:
    """The embedded default configuration (what ``shardmon up`` runs without --config), moved onto free
    loopback ports and ``tmp/data``: three demo targets, the shards (``n_shards`` of them, or the
    default's), the querier, the receiver and the ingest service. The caller sets ``scrape_configs``."""
    from shardmon.cli_common import default_config_text

    raw = yaml.safe_load(default_config_text())
    demo = [f"127.0.0.1:{free_port()}" for _ in range(3)]
    raw["global"] = {"scrape_interval": f"{interval_s}s", "scrape_timeout": scrape_timeout}
    raw["local"] = {"data_dir": str(tmp / "data"), "start_redis": True, "demo_targets": demo}
    if n_shards is not None:
        raw["shards"]["nodes"] = [{"id": i} for i in range(n_shards)]
    for node in raw["shards"]["nodes"]:
        node["address"] = f"127.0.0.1:{free_port()}"
        node["redis_url"] = f"redis://127.0.0.1:{free_port()}/0"
        if shard_metrics:
            node["metrics_address"] = f"127.0.0.1:{free_port()}"
        else:
            node.pop("metrics_address", None)
    raw["querier"].update(http_address=f"127.0.0.1:{free_port()}", grpc_address=f"127.0.0.1:{free_port()}")
    raw["receiver"].update(http_address=f"127.0.0.1:{free_port()}", pushgateway_address=f"127.0.0.1:{free_port()}",
                           persistence_file=str(tmp / "data" / "pushgateway.json"))
    raw["ingest"].update(scraper_num_cpus=0.1, http_address=f"127.0.0.1:{free_port()}")
    return raw


def prometheus_proc(name: str, config_file: Path, data: Path, port: int, log_dir: Path, *flags: str) -> Child:
    """Debian's ``prometheus`` on ``127.0.0.1:port`` with its data in ``data``."""
    exe = shutil.which("prometheus")
    assert exe, "prometheus is not installed (scripts/setup.sh installs Debian's package)"
    return proc(name, [exe, f"--config.file={config_file}", f"--storage.tsdb.path={data}",
                       f"--web.listen-address=127.0.0.1:{port}", *flags], log_dir, port)


def native_histogram_prometheus(tmp: Path, job: str, target: str, receiver_port: int) -> tuple[Child, int]:
    """Debian's Prometheus with native histograms on, scraping ``target`` every second as ``job`` and remote-writing
    what it scraped (histograms included) to a Shardmon receiver; not started. Returns it and its port."""
    port = free_port()
    cfg = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [target]}]}],
        "remote_write": [{
            "url": f"http://127.0.0.1:{receiver_port}/api/v1/write",
            "send_native_histograms": True,
            "queue_config": {"batch_send_deadline": "500ms", "min_backoff": "100ms", "max_backoff": "1s"},
        }],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    return prometheus_proc("prometheus", tmp / "prometheus.yml", tmp / "prom-data", port, tmp,
                           "--log.level=warn", "--enable-feature=native-histograms"), port


class Cluster:
    """Redis + shard servers + querier on free ports, from a generated config file."""

    def __init__(self, tmp: Path, n_shards: int, scrape_configs: list[dict], *, global_: dict | None = None,
                 ingest: dict | None = None, shards_extra: dict | None = None, receiver: dict | None = None,
                 web: dict | None = None) -> None:
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.redis_ports = [free_port() for _ in range(n_shards)]
        self.shard_ports = [free_port() for _ in range(n_shards)]
        self.http_port, self.grpc_port = free_port(), free_port()
        self.raw = {
            "global": global_ or {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": scrape_configs,
            "shards": {
                "nodes": [
                    {"id": i, "address": f"127.0.0.1:{self.shard_ports[i]}",
                     "redis_url": f"redis://127.0.0.1:{self.redis_ports[i]}/0"}
                    for i in range(n_shards)
                ],
                **(shards_extra or {}),
            },
            "ingest": {"scrapers": 2, "scraper_num_cpus": 0.1, "flush_interval": "100ms",
                       "retry_backoff_max": "500ms", "http_address": f"127.0.0.1:{free_port()}",
                       "discovery_update_interval": "200ms", **(ingest or {})},
            "querier": {"http_address": f"127.0.0.1:{self.http_port}", "grpc_address": f"127.0.0.1:{self.grpc_port}"},
        }
        if web is not None:  # web.enable_lifecycle, web.enable_admin_api
            self.raw["web"] = web
        self.receiver_port = self.pushgateway_port = 0
        if receiver is not None:
            self.receiver_port, self.pushgateway_port = free_port(), free_port()
            self.raw["receiver"] = {"http_address": f"127.0.0.1:{self.receiver_port}",
                                    "pushgateway_address": f"127.0.0.1:{self.pushgateway_port}",
                                    "persistence_file": str(tmp / "pushgateway.json"), **receiver}
        self.config_path = tmp / "shardmon.yml"
        self.config_path.write_text(yaml.safe_dump(self.raw, sort_keys=False))
        self.redis = [redis_proc(p, tmp / f"redis-{i}", self.logs) for i, p in enumerate(self.redis_ports)]
        self.shards = [self._shard(i) for i in range(n_shards)]
        self.querier = shardmon_proc("querier", ["querier"], self.config_path, self.logs, self.http_port)
        self.receiver = self._receiver() if receiver is not None else None

    @property
    def ingest_url(self) -> str:
        """The ingest service's HTTP API (targets, scrapers, reload)."""
        return f"http://{self.raw['ingest']['http_address']}"

    def config(self):
        from shardmon.model.config import load_config

        return load_config(self.config_path)

    def _shard(self, i: int) -> Child:
        return shardmon_proc(f"shard-{i}", ["shard", "--id", str(i)], self.config_path, self.logs, self.shard_ports[i])

    def _receiver(self) -> Child:
        return shardmon_proc("receiver", ["receiver"], self.config_path, self.logs, self.receiver_port)

    def ingest(self, *, env: dict[str, str] | None = None) -> Child:
        """The ingest service on this cluster's configuration, not started (``.up(120)`` starts it)."""
        return ingest_proc(self.config_path, self.logs, env=env)

    def services(self) -> list[Child]:
        return self.redis + self.shards + [self.querier] + ([self.receiver] if self.receiver else [])

    def start(self) -> Cluster:
        try:
            for p in self.services():
                p.up()
        except BaseException:
            self.stop()
            raise
        return self

    def restart_receiver(self) -> None:
        self.receiver = self._receiver().up()

    def restart_shard(self, i: int) -> None:
        self.shards[i] = self._shard(i).up()

    def stop(self) -> None:
        for p in reversed(self.services()):
            p.stop()


class CounterTargets:
    """N HTTP targets in a background thread; each serves a counter that goes up by one per scrape
    and records (serve time in ms, value) so tests can compare what was stored with what was served."""

    def __init__(self, n: int, metric: str = "test_scrapes_total") -> None:
        # Bound now (port 0: the kernel's choice), so the ports are distinct and stay ours.
        self._socks = []
        for _ in range(n):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            self._socks.append(sock)
        self.ports = [sock.getsockname()[1] for sock in self._socks]
        self.metric = metric
        self.served: dict[int, list[tuple[int, float]]] = {p: [] for p in self.ports}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._runners: list[web.AppRunner] = []
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def addresses(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.ports]

    async def _start(self) -> None:
        for port, sock in zip(self.ports, self._socks):
            async def handler(request, port=port):
                with self._lock:
                    n = len(self.served[port]) + 1
                    self.served[port].append((int(time.time() * 1000), float(n)))
                body = (
                    f"# HELP {self.metric} Scrapes served.\n# TYPE {self.metric} counter\n"
                    f'{self.metric}{{path="/metrics"}} {n}\n'
                    "# TYPE test_gauge gauge\n"
                    f"test_gauge {port % 7}.5\n"
                )
                return web.Response(text=body, content_type="text/plain")

            app = web.Application()
            app.router.add_get("/metrics", handler)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.SockSite(runner, sock).start()
            self._runners.append(runner)

    def start(self) -> CounterTargets:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def snapshot(self, before_ms: int | None = None) -> dict[int, list[tuple[int, float]]]:
        with self._lock:
            return {p: [r for r in rs if before_ms is None or r[0] < before_ms] for p, rs in self.served.items()}

    def stop(self) -> None:
        async def _stop():
            for r in self._runners:
                await r.cleanup()

        asyncio.run_coroutine_threadsafe(_stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
