"""Real processes for integration tests: redis-server, shard and querier servers, HTTP targets.

Every service listens on a free loopback port and is stopped by the test that started it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import yaml
from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.3):
            return True
    except OSError:
        return False


def wait_until(pred, timeout_s: float, what: str, interval_s: float = 0.1):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what} (last: {last!r})")


class Proc:
    """A child process with its output in a log file; stop() is SIGTERM, kill() is SIGKILL."""

    def __init__(self, name: str, argv: list[str], log_dir: Path, ready_port: int | None = None) -> None:
        self.name, self.argv, self.ready_port = name, argv, ready_port
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout_s: float = 30) -> Proc:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        if self.ready_port is not None:
            wait_until(lambda: port_open(self.ready_port) or self._dead(), timeout_s, f"{self.name} to listen")
            if self._dead():
                raise AssertionError(f"{self.name} exited: {self.log_path.read_text()[-3000:]}")
        return self

    def _dead(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


def redis_proc(port: int, data_dir: Path, log_dir: Path) -> Proc:
    data_dir.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("redis-server")
    assert exe, "redis-server is not installed (scripts/setup.sh installs it)"
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir), "--appendonly", "yes",
            "--appendfsync", "everysec", "--save", "", "--daemonize", "no"]
    return Proc(f"redis-{port}", argv, log_dir, port)


def shardmon_proc(name: str, args: list[str], config_path: Path, log_dir: Path, ready_port: int | None) -> Proc:
    return Proc(name, [sys.executable, "-m", "shardmon", *args, "--config", str(config_path)], log_dir, ready_port)


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
        self.shards = [
            shardmon_proc(f"shard-{i}", ["shard", "--id", str(i)], self.config_path, self.logs, p)
            for i, p in enumerate(self.shard_ports)
        ]
        self.querier = shardmon_proc("querier", ["querier"], self.config_path, self.logs, self.http_port)
        self.receiver = (shardmon_proc("receiver", ["receiver"], self.config_path, self.logs, self.receiver_port)
                         if receiver is not None else None)

    def config(self):
        from model.config import load_config

        return load_config(self.config_path)

    def services(self) -> list[Proc]:
        return self.redis + self.shards + [self.querier] + ([self.receiver] if self.receiver else [])

    def start(self) -> Cluster:
        for p in self.services():
            p.start()
        return self

    def restart_receiver(self) -> None:
        self.receiver = shardmon_proc("receiver", ["receiver"], self.config_path, self.logs, self.receiver_port).start()

    def restart_shard(self, i: int) -> None:
        self.shards[i] = shardmon_proc(f"shard-{i}", ["shard", "--id", str(i)], self.config_path, self.logs,
                                       self.shard_ports[i]).start()

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
