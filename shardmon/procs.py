"""Child processes on this machine: the one harness that ``shardmon up`` (the launcher), LocalShards,
the integration tests and bench/ start, watch and stop processes with.

- :func:`free_port` and :func:`port_open`: loopback ports.
- :class:`Child`: a process started in a session of its own (a terminal's Ctrl-C reaches only its
  parent, which stops it in order; its whole process group can be killed), its output appended to a
  log file. It is ready when a TCP port accepts connections, a file exists, or a check says so; it is
  stopped with SIGTERM, a grace period, then SIGKILL of its process group.
- :func:`stop_children`: several children stopped together, within one grace period.
- :func:`redis_server_argv` and :func:`redis_password_file`: the redis-server command line a shard's
  Redis runs with (port, loopback bind, data folder, append-only file and its fsync policy, password).
- :func:`shardmon_argv`: the command line of a ``shardmon`` subcommand in this Python.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: When a child is ready: a (host, port) that accepts TCP connections, a file it makes, a check
#: returning true, or None (as soon as it runs).
Ready = tuple[str, int] | Path | Callable[[], bool] | None


class Interrupted(RuntimeError):
    """Start-up was cut short by a request to stop (Ctrl-C, SIGTERM)."""


class ChildFailed(RuntimeError):
    """A child exited during start-up or was not ready in time; the message names its log."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        #: The end of the child's log, for a test's failure message.
        self.log_tail = log_tail


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    """Whether ``host:port`` accepts a TCP connection."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def shardmon_argv(*args: str, config: str | Path | None = None) -> list[str]:
    """``python -m shardmon ARGS [--config CONFIG]`` with this interpreter."""
    return [sys.executable, "-m", "shardmon", *args, *(["--config", str(config)] if config else [])]


@dataclass
class Child:
    """A child process, its log file and when it counts as ready. ``restart`` and ``restarts`` are for
    a supervisor (the launcher restarts a child that died)."""

    name: str
    argv: list[str]
    log_path: Path
    ready: Ready = None
    restart: bool = True
    env: dict[str, str] | None = field(default=None, repr=False)  # may hold secrets
    cwd: str | Path | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)
    restarts: int = 0
    started_at: float = field(default=0.0)

    def start(self) -> Child:
        """Start it (a ready file left from a previous run is removed first); does not wait."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(self.ready, Path):
            self.ready.unlink(missing_ok=True)
        log = open(self.log_path, "ab")
        # A session of its own: the terminal's Ctrl-C reaches the parent only, which then stops the
        # children in order; and its process group is its own to kill.
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env=self.env, cwd=self.cwd)
        log.close()
        self.started_at = time.monotonic()
        return self

    def up(self, timeout_s: float = 30, interval_s: float = 0.1) -> Child:
        """Start it and wait until it is ready (see :meth:`wait_ready`)."""
        return self.start().wait_ready(timeout_s, interval_s=interval_s)

    @property
    def pid(self) -> int:
        assert self.proc is not None, f"{self.name} was not started"
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def is_ready(self) -> bool:
        if self.ready is None:
            return True
        if isinstance(self.ready, Path):
            return self.ready.exists()
        if isinstance(self.ready, tuple):
            return port_open(*self.ready)
        return bool(self.ready())

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, timeout_s: float, cancelled: Callable[[], bool] = lambda: False,
                   interval_s: float = 0.1) -> Child:
        """Wait until it is ready. Raises :class:`Interrupted` once ``cancelled()`` is true, and
        :class:`ChildFailed` when it exits first or is not ready within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if cancelled():
                raise Interrupted(f"stopped while {self.name} was starting")
            if not self.alive():
                raise ChildFailed(f"{self.name} exited during start-up; see {self.log_path}", self.log_text()[-3000:])
            if self.is_ready():
                return self
            time.sleep(interval_s)
        raise ChildFailed(f"{self.name} not ready after {timeout_s:.0f}s; see {self.log_path}", self.log_text()[-3000:])

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child alone (not its process group), if it runs."""
        if self.alive():
            os.kill(self.proc.pid, sig)

    def _signal_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def terminate(self) -> None:
        """Ask the child to stop: SIGTERM to it alone. Its process group is left to it (the ingest and ruler
        services stop their actors, then their local Ray), and SIGKILLed by :meth:`kill` once it has exited
        or its grace period has run out."""
        self.send_signal(signal.SIGTERM)

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


# -- redis-server ----------------------------------------------------------------------------------------


def redis_server_path() -> str | None:
    return shutil.which("redis-server")


def redis_password_file(folder: Path, password: str | None) -> Path | None:
    """For a Redis with a password: a config file (mode 0600; not the command line, which any local
    user can read) with ``requirepass``, to give redis-server as its first argument. Without a
    password: none (a file left from an earlier run is removed)."""
    path = folder / "redis-auth.conf"
    if password is None:
        path.unlink(missing_ok=True)
        return None
    quoted = password.replace("\\", "\\\\").replace('"', '\\"')
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(f'requirepass "{quoted}"\n')
    os.chmod(path, 0o600)
    return path


def redis_server_argv(port: int, folder: Path, *, appendfsync: str = "everysec", config_file: Path | None = None,
                      exe: str | None = None, extra: tuple[str, ...] | list[str] = ()) -> list[str]:
    """redis-server on ``127.0.0.1:port`` keeping its data in ``folder`` (made if missing), in the
    foreground. ``appendfsync`` is ``shards.wal_appendfsync``: ``always`` or ``everysec`` keep an
    append-only file fsynced so; ``off`` keeps none. No RDB snapshots: the append-only file is the
    durability. ``config_file`` is a redis.conf read first (see :func:`redis_password_file`); ``extra``
    are more redis-server options, last."""
    exe = exe or redis_server_path()
    if exe is None:
        raise FileNotFoundError("redis-server is not installed (apt-get install redis-server; scripts/setup.sh does it)")
    folder.mkdir(parents=True, exist_ok=True)
    aof = ["--appendonly", "no"] if appendfsync == "off" else ["--appendonly", "yes", "--appendfsync", appendfsync]
    return [exe, *([str(config_file)] if config_file else []), "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(folder), *aof, "--save", "", "--daemonize", "no", "--protected-mode", "yes", *extra]
