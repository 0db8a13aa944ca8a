"""The local-cluster launcher behind ``shardmon up``: the composition root of a one-machine cluster.

From one configuration it starts, as separate processes: a ``redis-server`` per shard (AOF on, data
under ``local.data_dir``), the demo targets, one shard server per shard, the querier, and the ingest
service (which starts a local Ray with the coordinator and the scrapers). It waits until each is
ready, restarts a service that dies, and on Ctrl-C or SIGTERM stops them in stages, leaving no process
behind: the ingest service and the receiver first (they flush what they queued to the shards), then
the querier, the shards and the demo targets, then Redis. Each stage's children get SIGTERM at once
and ``local.stop_grace_period`` to exit; one that has not (a shard whose event loop is stuck, a
stopped process) is killed with SIGKILL, with its whole process group. So stopping ends within three
grace periods, and a second Ctrl-C kills whatever is left at once.
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from model.config import Config
from model.errors import ConfigError

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class Interrupted(RuntimeError):
    """Start-up was cut short by a request to stop (Ctrl-C, SIGTERM)."""


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

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def terminate(self) -> None:
        """Ask the child (its process group) to stop: SIGTERM."""
        if self.alive():
            self._signal_group(signal.SIGTERM)

    def kill(self) -> bool:
        """SIGKILL the child's process group (whatever it left there too, e.g. Ray's own processes) and
        reap the child. True when the child itself was still running, i.e. it had to be killed."""
        if self.proc is None:
            return False
        was_alive = self.proc.poll() is None
        self._signal_group(signal.SIGKILL)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:  # uninterruptible sleep: the kernel will finish it
            pass
        return was_alive

    def stop(self, timeout_s: float = 15.0) -> bool:
        """SIGTERM, up to ``timeout_s`` to exit, then SIGKILL. True when it had to be killed."""
        return stop_children([self], timeout_s)[0] if self.proc is not None else False


def stop_children(children: list[Child], grace_s: float, kill_now: Callable[[], bool] = lambda: False) -> list[bool]:
    """Stop ``children`` together: SIGTERM to each, then wait until all have exited, ``grace_s`` have
    passed or ``kill_now()`` is true, then SIGKILL each one's process group. Returns, per child,
    whether it had to be killed."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace_s
    while any(c.alive() for c in children) and time.monotonic() < deadline and not kill_now():
        time.sleep(0.05)
    return [child.kill() for child in children]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_ready(child: Child, timeout_s: float, cancelled: Callable[[], bool] = lambda: False) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if cancelled():
            raise Interrupted(f"stopped while {child.name} was starting")
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
        #: Set (from a signal handler) to cut start-up short; see :meth:`request_stop`.
        self.stop_requested = False
        #: Set by a second request: stop without waiting for anyone.
        self.kill_requested = False
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
        """Start order."""
        return self.redis + self.demo + self.shards + [self.querier] + self.receiver + [self.ingest]

    def stop_stages(self) -> list[list[Child]]:
        """Stop order: those that send to the shards (they flush first), then the shards and the rest
        that need only Redis or nothing, then Redis. Within a stage the order does not matter."""
        return [[self.ingest] + self.receiver, [self.querier] + self.shards + self.demo, self.redis]

    def request_stop(self) -> None:
        """What Ctrl-C (or SIGTERM) does: the first asks to stop (start-up is cut short, then every child
        stops in stages); the next kills every child still running at once."""
        if self.stop_requested:
            self.kill_requested = True
        self.stop_requested = True

    def start(self, say=print) -> None:
        for child in self.children():
            if isinstance(child.ready, tuple) and port_open(*child.ready):
                raise RuntimeError(f"{child.name}: {child.ready[0]}:{child.ready[1]} is already in use "
                                   "(another Shardmon running?)")
        for child in self.children():
            if self.stop_requested:
                raise Interrupted("stopped during start-up")
            child.start()
            wait_ready(child, 120, lambda: self.stop_requested)
            say(f"  started {child.name:<13} pid {child.proc.pid:<7} log {child.log_path}")

    def supervise_once(self, say=print) -> None:
        """Restart any child that died (at most once per second each)."""
        for child in self.children():
            if not child.alive() and child.restart and time.monotonic() - child.started_at > 1.0:
                code = child.proc.returncode if child.proc else None
                say(f"  {child.name} exited with code {code}; restarting (see {child.log_path})")
                child.restarts += 1
                child.start()

    def stop(self, say=print, grace_s: float | None = None) -> None:
        """Stop every child in stages (see the module docstring); at most one grace period per stage."""
        grace = self.config.local.stop_grace_period / 1000 if grace_s is None else grace_s
        told = False
        for stage in self.stop_stages():
            started = [c for c in stage if c.proc is not None]
            if not started:
                continue
            killed = stop_children(started, 0 if self.kill_requested else grace, lambda: self.kill_requested)
            if self.kill_requested and not told:
                say("  stop requested again: killing every child left (SIGKILL)")
                told = True
            for child, was_killed in zip(started, killed):
                how = "killed (SIGKILL)" if was_killed else "stopped"
                say(f"  {how} {child.name}" + (f": no exit within {grace:g}s of SIGTERM" if was_killed and
                                               not self.kill_requested else ""))
