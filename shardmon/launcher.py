"""The local-cluster launcher behind ``shardmon up``: the composition root of a one-machine cluster.

From one configuration it starts, as separate processes: a ``redis-server`` per shard (AOF on, data
under ``local.data_dir``), the demo targets, one shard server per shard, the querier, the ingest
service (which starts a local Ray with the coordinator and the scrapers), and the Kubernetes metrics API
service (``shardmon k8s-api``) when ``kubernetes_metrics`` is set. It waits until each is
ready, restarts a service that dies, and on Ctrl-C or SIGTERM stops them in stages, leaving no process
behind: the ingest service, the receiver and the ruler service (``shardmon ruler``, started when
``rule_files`` is not empty) first (they flush what they queued to the shards), then
the querier, the Kubernetes metrics API service, the shards and the demo targets, then Redis. Each
stage's children get SIGTERM at once and ``local.stop_grace_period`` to exit; one that has not (a shard whose event loop is stuck, a
stopped process) is killed with SIGKILL, with its whole process group. So stopping ends within three
grace periods, and a second Ctrl-C kills whatever is left at once. SIGHUP, as to Prometheus, makes the
services that read the configuration again do so: it is passed on to the ingest service and the ruler
service (their rule files too); the other children take their configuration at start only.
"""

from __future__ import annotations

import shutil
import signal
import time
import urllib.parse
from pathlib import Path

from shardmon.model.config import Config
from shardmon.model.errors import ConfigError
from shardmon.procs import (
    Child,
    Interrupted,
    port_open,
    redis_password_file,
    redis_server_argv,
    shardmon_argv,
    stop_children,
)

__all__ = ["Interrupted", "LocalCluster"]

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def _host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host, int(port)


class LocalCluster:
    """Every process of a one-machine cluster, started and stopped together."""

    def __init__(self, config: Config, config_path: str | None) -> None:
        self.config = config
        #: Set (from a signal handler) to cut start-up short; see :meth:`request_stop`.
        self.stop_requested = False
        #: Set by a second request: stop without waiting for anyone.
        self.kill_requested = False
        #: Set (from a SIGHUP handler) to pass a reload on; see :meth:`reload`.
        self.reload_requested = False
        self.data_dir = Path(config.local.data_dir).expanduser().resolve()
        cfg = str(Path(config_path).resolve()) if config_path else None
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
                argv = redis_server_argv(url.port or 6379, d, appendfsync=config.shards.wal_appendfsync, exe=redis_bin,
                                         config_file=redis_password_file(d, node.redis_password_value()))
                self.redis.append(Child(f"redis-{node.id}", argv, logs / f"redis-{node.id}.log", ("127.0.0.1", url.port or 6379)))
        self.demo = (
            [Child("demo-targets", shardmon_argv("demo-targets", config=cfg), logs / "demo-targets.log",
                   _host_port(config.local.demo_targets[0]))]
            if config.local.demo_targets else []
        )
        self.shards = [
            Child(f"shard-{n.id}", shardmon_argv("shard", "--id", str(n.id), config=cfg), logs / f"shard-{n.id}.log",
                  _host_port(n.address))
            for n in config.shards.nodes
        ]
        self.querier = Child("querier", shardmon_argv("querier", config=cfg), logs / "querier.log",
                             _host_port(config.querier.http_address))
        self.receiver = (
            [Child("receiver", shardmon_argv("receiver", config=cfg), logs / "receiver.log",
                   _host_port(config.receiver.http_address))]
            if config.receiver else []
        )
        self.k8s_api = (
            [Child("k8s-api", shardmon_argv("k8s-api", config=cfg), logs / "k8s-api.log",
                   _host_port(str(config.kubernetes_metrics.listen_address)))]
            if config.kubernetes_metrics else []
        )
        ready_file = self.data_dir / "ingest.ready"
        self.ingest = Child("ingest", shardmon_argv("ingest", "--ready-file", str(ready_file), config=cfg),
                            logs / "ingest.log", ready_file)
        ruler_ready = self.data_dir / "ruler.ready"
        self.ruler = (
            [Child("ruler", shardmon_argv("ruler", "--ready-file", str(ruler_ready), config=cfg),
                   logs / "ruler.log", ruler_ready)]
            if config.rule_files else []
        )

    def children(self) -> list[Child]:
        """Start order."""
        return (self.redis + self.demo + self.shards + [self.querier] + self.k8s_api + self.receiver + [self.ingest]
                + self.ruler)

    def stop_stages(self) -> list[list[Child]]:
        """Stop order: those that send to the shards (they flush first), then the shards and the rest
        that need only Redis or nothing, then Redis. Within a stage the order does not matter."""
        return [[self.ingest] + self.receiver + self.ruler, [self.querier] + self.k8s_api + self.shards + self.demo,
                self.redis]

    def request_stop(self) -> None:
        """What Ctrl-C (or SIGTERM) does: the first asks to stop (start-up is cut short, then every child
        stops in stages); the next kills every child still running at once."""
        if self.stop_requested:
            self.kill_requested = True
        self.stop_requested = True

    def reload(self, say=print) -> None:
        """Pass SIGHUP on to the children that reload their configuration (the ingest and ruler services)."""
        self.reload_requested = False
        told = [c for c in [self.ingest] + self.ruler if c.alive()]
        for child in told:  # the child alone: Ray's processes in the ingest service's group must not see it
            child.send_signal(signal.SIGHUP)
        say(f"  reload: SIGHUP passed to {', '.join(c.name for c in told) or 'no running service'}")

    def start(self, say=print) -> None:
        for child in self.children():
            if isinstance(child.ready, tuple) and port_open(*child.ready):
                raise RuntimeError(f"{child.name}: {child.ready[0]}:{child.ready[1]} is already in use "
                                   "(another Shardmon running?)")
        for child in self.children():
            if self.stop_requested:
                raise Interrupted("stopped during start-up")
            child.start().wait_ready(120, lambda: self.stop_requested)
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
