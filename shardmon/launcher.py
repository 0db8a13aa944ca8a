"""The local-cluster launcher behind ``shardmon up``: the composition root of a one-machine cluster.

From one configuration it starts, as separate processes: a ``redis-server`` per shard (AOF on, data
under ``local.data_dir``), the demo targets, one shard server per shard, the querier, and the ingest
service (which starts a local Ray with the coordinator and the scrapers). It waits until each is
ready, restarts a service that dies, and on Ctrl-C or SIGTERM stops them in order (ingest first, so
queued samples are flushed; Redis last), leaving no process behind.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from model.config import Config
from model.errors import ConfigError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass
class Child:
    """A supervised child process."""

    name: str
    argv: list[str]
    log_path: Path
    ready: tuple[str, int] | Path | None = None  # a TCP port that accepts connections, or a file made, once up
    restart: bool = True
    proc: subprocess.Popen | None = None
    restarts: int = 0
    started_at: float = field(default=0.0)

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(self.ready, Path):
            self.ready.unlink(missing_ok=True)
        log = open(self.log_path, "ab")
        # A session of its own: the terminal's Ctrl-C reaches the launcher only, which then stops
        # the children in order.
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s: float = 15.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        # Whatever the child left in its process group (e.g. Ray's own processes) goes too.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if self.proc.poll() is None:
            self.proc.wait(5)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_ready(child: Child, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not child.alive():
            raise RuntimeError(f"{child.name} exited during start-up; see {child.log_path}")
        if child.ready is None:
            return
        if isinstance(child.ready, Path) and child.ready.exists():
            return
        if isinstance(child.ready, tuple) and port_open(*child.ready):
            return
        time.sleep(0.1)
    raise RuntimeError(f"{child.name} not ready after {timeout_s:.0f}s; see {child.log_path}")


def _host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


def _password_conf(node, folder: Path) -> list[str]:
    """For a node with a Redis password: a config file (mode 0600, not the command line, which any
    local user can read) with ``requirepass``, as redis-server's first argument; else nothing."""
    password = node.redis_password_value()
    path = folder / "redis-auth.conf"
    if password is None:
        path.unlink(missing_ok=True)
        return []
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f'requirepass "{quoted}"\n')
    os.chmod(path, 0o600)
    return [str(path)]


class LocalCluster:
    """Every process of a one-machine cluster, started and stopped together."""

    def __init__(self, config: Config, config_path: str | None) -> None:
        self.config = config
        self.data_dir = Path(config.local.data_dir).expanduser().resolve()
        base = [sys.executable, "-m", "shardmon"]
        cfg = ["--config", str(Path(config_path).resolve())] if config_path else []
        logs = self.data_dir / "logs"
        self.redis: list[Child] = []
        if config.local.start_redis:
            redis_bin = shutil.which("redis-server")
            for node in config.shards.nodes:
                url = urllib.parse.urlparse(node.redis_url)
                if url.hostname not in LOOPBACK:
                    continue
                if redis_bin is None:
                    raise ConfigError("local.start_redis: redis-server is not installed (apt-get install redis-server)")
                if url.scheme == "rediss":
                    raise ConfigError(f"local.start_redis: shard {node.id}'s redis_url is rediss://, and shardmon up "
                                      "does not start Redis with TLS: start that Redis yourself and set "
                                      "local.start_redis: false")
                d = self.data_dir / f"redis-{node.id}"
                d.mkdir(parents=True, exist_ok=True)
                fsync = config.shards.wal_appendfsync
                aof = ["--appendonly", "no"] if fsync == "off" else ["--appendonly", "yes", "--appendfsync", fsync]
                argv = [
                    redis_bin, *_password_conf(node, d), "--port", str(url.port or 6379), "--bind", "127.0.0.1",
                    "--dir", str(d), *aof, "--save", "", "--daemonize", "no", "--protected-mode", "yes",
                ]
                self.redis.append(Child(f"redis-{node.id}", argv, logs / f"redis-{node.id}.log", ("127.0.0.1", url.port or 6379)))
        self.demo = (
            [Child("demo-targets", base + ["demo-targets"] + cfg, logs / "demo-targets.log",
                   _host_port(config.local.demo_targets[0]))]
            if config.local.demo_targets else []
        )
        self.shards = [
            Child(f"shard-{n.id}", base + ["shard", "--id", str(n.id)] + cfg, logs / f"shard-{n.id}.log", _host_port(n.address))
            for n in config.shards.nodes
        ]
        self.querier = Child("querier", base + ["querier"] + cfg, logs / "querier.log", _host_port(config.querier.http_address))
        self.receiver = (
            [Child("receiver", base + ["receiver"] + cfg, logs / "receiver.log", _host_port(config.receiver.http_address))]
            if config.receiver else []
        )
        ready_file = self.data_dir / "ingest.ready"
        self.ingest = Child("ingest", base + ["ingest", "--ready-file", str(ready_file)] + cfg, logs / "ingest.log", ready_file)

    def children(self) -> list[Child]:
        """Start order; stop order is the reverse."""
        return self.redis + self.demo + self.shards + [self.querier] + self.receiver + [self.ingest]

    def start(self, say=print) -> None:
        for child in self.children():
            if isinstance(child.ready, tuple) and port_open(*child.ready):
                raise RuntimeError(f"{child.name}: {child.ready[0]}:{child.ready[1]} is already in use "
                                   "(another Shardmon running?)")
        for child in self.children():
            child.start()
            wait_ready(child, 120)
            say(f"  started {child.name:<13} pid {child.proc.pid:<7} log {child.log_path}")

    def supervise_once(self, say=print) -> None:
        """Restart any child that died (at most once per second each)."""
        for child in self.children():
            if not child.alive() and child.restart and time.monotonic() - child.started_at > 1.0:
                code = child.proc.returncode if child.proc else None
                say(f"  {child.name} exited with code {code}; restarting (see {child.log_path})")
                child.restarts += 1
                child.start()

    def stop(self, say=print) -> None:
        for child in reversed(self.children()):
            if child.proc is not None:
                child.stop()
                say(f"  stopped {child.name}")
