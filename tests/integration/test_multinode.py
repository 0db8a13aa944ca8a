"""The ingest service on a two-node Ray cluster: scrapers on both nodes, and a node that leaves.

Two Ray nodes run on this machine, each a ``shardmon ray-node`` (``ray start --block``) of its own on
loopback: the head on 127.0.0.2 and a worker on 127.0.0.3, each with its own ports and temp folder.
(Not 127.0.0.1: Ray replaces that address with the machine's outward one, unless told it is a
one-host Ray, which then refuses a second node. Every 127.x.y.z address is loopback on Linux.)
``shardmon ingest`` runs against the head's address (as the compose file's ingest service runs
against its Ray head), with real Redis-backed shards, the querier and HTTP targets served by the test.
The test shows the scrapers spread over both nodes, stops the worker node, and shows every target
scraped again, and the samples stored, within two scrape intervals. The cluster runs with Ray's token
authentication, as every Ray that `shardmon ray-node` starts: the head writes the token file, the worker
and the ingest service read it, and a driver with another token is refused.

Only the processes this test started are stopped (never ``ray stop``, which ends every Ray on the
machine): each node is stopped by SIGTERM to its ``ray start``, then SIGKILL to its process group.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest
import yaml

from tests.integration.procs import Cluster, CounterTargets, free_port, proc, run_shardmon, wait_until

N_TARGETS = 12
SCRAPERS = 4
INTERVAL_S = 5
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


def _env(**extra: str) -> dict[str, str]:
    """This process's environment without what a local Ray of an earlier test left in it (a local Ray
    turns Ray's authentication off)."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "RAY_ADDRESS")
           and not k.startswith("RAY_AUTH")}
    env.update(RAY_USAGE_STATS_ENABLED="0", **extra)
    return env


class RayNode:
    """One Ray node as ``shardmon ray-node`` runs it, on its own ports, temp folder and session."""

    def __init__(self, name: str, log_dir: Path, temp_dir: Path, ip: str, *, token_file: Path,
                 head_port: int | None = None, join: str | None = None, num_cpus: int = 2) -> None:
        self.name, self.ip, self.temp_dir = name, ip, temp_dir
        ports = ["--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
                 "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port"]
        extra = [a for p in ports for a in (p, str(free_port()))]
        extra += ["--min-worker-port", "0", "--max-worker-port", "0", "--temp-dir", str(temp_dir),
                  "--object-store-memory", str(96 * 1024 * 1024)]
        argv = [sys.executable, "-m", "shardmon", "ray-node", "--num-cpus", str(num_cpus), "--node-ip-address", ip]
        if head_port is not None:
            self.client_port = free_port()
            argv += ["--head", "--port", str(head_port), "--client-port", str(self.client_port)]
        else:
            argv += ["--address", join]
        # As ingest.ray_auth_token_file would say (these nodes run without --config).
        self.proc = proc(name, argv + ["--", *extra], log_dir, env=_env(RAY_AUTH_TOKEN_PATH=str(token_file)))
        self.proc.ready = lambda: "Ray runtime started" in self.proc.log_text()

    def start(self) -> RayNode:
        self.proc.up(60, interval_s=0.3)
        return self

    def stop(self, timeout_s: float = 20) -> None:
        """SIGTERM to ``ray start --block`` (it stops its node's processes), then SIGKILL to whatever of
        its process group is left."""
        p = self.proc
        if p.proc is None:
            return
        p.send_signal(signal.SIGTERM)
        try:
            p.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            pass
        p.kill()


def _status(config_path: Path, **env: str) -> subprocess.CompletedProcess:
    return run_shardmon("ingest", "--status", config=config_path, timeout=90, env=_env(**env))


def ingest_status(config_path: Path) -> dict:
    """``shardmon ingest --status``: the coordinator's scrapers, nodes and assignments, from a driver
    process of its own (this test process may already be the driver of another test's local Ray)."""
    proc = _status(config_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def running_by_node(status: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in status["scrapers"]:
        if s.get("state") == "running":
            out.setdefault(s["node_id"], []).append(s["scraper_id"])
    return out


@pytest.fixture(scope="module")
def targets():
    t = CounterTargets(N_TARGETS).start()
    yield t
    t.stop()


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("multinode-ray")
    # Short: Ray's socket paths live under it and must fit in 107 characters.
    temp = Path(tempfile.mkdtemp(prefix="shm-ray-", dir="/tmp"))
    gcs_port = free_port()
    token = temp / "ray_auth_token"  # written by the head, read by the worker and the ingest service
    head = RayNode("ray-head", logs, temp / "head", HEAD_IP, head_port=gcs_port, token_file=token)
    worker = RayNode("ray-worker", logs, temp / "worker", WORKER_IP, join=f"{HEAD_IP}:{gcs_port}", token_file=token)
    try:
        head.start()
        assert len(token.read_text()) == 64 and token.stat().st_mode & 0o777 == 0o600
        worker.start()
        yield {"address": f"{HEAD_IP}:{gcs_port}", "head": head, "worker": worker, "token": token}
    finally:
        worker.stop()
        head.stop()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, targets, ray_cluster):
    c = Cluster(
        tmp_path_factory.mktemp("multinode"),
        n_shards=2,
        scrape_configs=[{"job_name": "test", "static_configs": [{"targets": targets.addresses()}]}],
        global_={"scrape_interval": f"{INTERVAL_S}s", "scrape_timeout": "2s"},
        ingest={"scrapers": SCRAPERS, "ray_address": ray_cluster["address"],
                "ray_auth_token_file": str(ray_cluster["token"])},
    ).start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def ingest(cluster):
    p = cluster.ingest(env=_env())
    try:
        p.up(90)
        yield p
    finally:
        p.stop()


def test_scrapers_spread_over_both_nodes_and_a_leaving_node_loses_no_target(
    ray_cluster, cluster, targets, ingest
):
    from shardmon.client import QueryClient

    # Placement: the scrapers are on both nodes, half on each (round-robin over the nodes with CPUs).
    status = wait_until(lambda: (s := ingest_status(cluster.config_path))
                        and sum(map(len, running_by_node(s).values())) == SCRAPERS and s,
                        30, "every scraper running")
    nodes = status["nodes"]
    ip_of = {nid: n["node_ip"] for nid, n in nodes.items()}
    assert sorted(ip_of.values()) == [HEAD_IP, WORKER_IP], nodes
    head_id = next(nid for nid, n in nodes.items() if n["head"])
    worker_id = next(nid for nid, n in nodes.items() if not n["head"])
    assert nodes[head_id]["coordinator"] and not nodes[worker_id]["coordinator"], "the coordinator is not on the head"
    by_node = running_by_node(status)
    assert sorted(by_node) == sorted([head_id, worker_id]), by_node
    assert len(by_node[head_id]) == len(by_node[worker_id]) == SCRAPERS // 2, by_node
    assert all(s["node_ip"] == ip_of[s["node_id"]] for s in status["scrapers"])
    print(f"\nscrapers on the head ({HEAD_IP}): {sorted(by_node[head_id])}; "
          f"on the worker ({WORKER_IP}): {sorted(by_node[worker_id])}")

    # Every target is scraped (and stored) while both nodes are up.
    with QueryClient(f"127.0.0.1:{cluster.grpc_port}") as client:
        def all_up():
            res = client.instant('up{job="test"}')
            return len(res.series) == N_TARGETS and all(s.values[0] == 1 for s in res.series)

        wait_until(all_up, 6 * INTERVAL_S, "up == 1 for every target")

        # The targets whose scrapers run on the worker node.
        on_worker = {sid for sid in by_node[worker_id]}
        worker_ports = {urllib.parse.urlparse(u).port for sid, urls in status["assignments"].items()
                        if sid in on_worker for u in urls} & set(targets.served)
        assert worker_ports, "no test target on the worker node's scrapers"

        # The worker node leaves.
        stopped_at = int(time.time() * 1000)
        t0 = time.monotonic()
        ray_cluster["worker"].stop()
        stop_s = time.monotonic() - t0

        def rescraped():
            snap = targets.snapshot()
            return all(any(t > stopped_at for t, _ in snap[p]) for p in snap)

        # Usually within two intervals: printed below, not asserted (a loaded machine stretches it); the
        # bound only keeps a broken move from hanging the test.
        wait_until(rescraped, 60, "every target scraped again after the node left", interval_s=0.05)
        snap = targets.snapshot()
        first = {p: min(t for t, _ in snap[p] if t > stopped_at) for p in snap}
        worker_back = max(first[p] for p in worker_ports) - stopped_at
        # The longest wait between two scrapes of a moved target (a scrape missed makes it two intervals).
        gap = max(first[p] - max(t for t, _ in snap[p] if t <= stopped_at) for p in worker_ports)
        print(f"worker node stopped in {stop_s:.1f}s; its {len(worker_ports)} targets scraped again "
              f"{worker_back / 1000:.1f}s after the stop began (longest gap between two scrapes of one "
              f"{gap / 1000:.1f}s); every target within {(max(first.values()) - stopped_at) / 1000:.1f}s "
              f"(interval {INTERVAL_S}s)")

        # ...and what they served then is stored: a new sample of every target, after the stop.
        def stored_after_stop():
            res = client.instant(f"test_scrapes_total[{4 * INTERVAL_S}s]")
            latest = {s.labels.get("instance"): int(s.timestamps_ms[-1]) for s in res.series}
            return all(latest.get(a, 0) > stopped_at for a in targets.addresses()) and latest

        wait_until(stored_after_stop, 3 * INTERVAL_S, "a sample of every target stored after the stop")

    # The coordinator saw the node go, and every scraper now runs on the head.
    status = wait_until(lambda: (s := ingest_status(cluster.config_path))
                        and list(running_by_node(s)) == [head_id]
                        and len(running_by_node(s)[head_id]) == SCRAPERS and s,
                        30, "every scraper running on the head")
    assert list(status["nodes"]) == [head_id]
    moved = [s for s in status["scrapers"] if s["placed_on"] == worker_id]
    assert len(moved) == SCRAPERS // 2 and all(s["node_id"] == head_id for s in moved)


def test_a_driver_with_another_token_is_refused(ray_cluster, cluster, ingest, tmp_path):
    wrong = tmp_path / "wrong_token"
    wrong.write_text("0" * 64)
    raw = yaml.safe_load(cluster.config_path.read_text())
    raw["ingest"]["ray_auth_token_file"] = str(wrong)
    path = tmp_path / "wrong.yml"
    path.write_text(yaml.safe_dump(raw))
    # Ray retries a refused connection for about 20 s (one try a second) before it gives up; Ray's own
    # knob for that budget makes it give up after 3 tries here (the refusal is the same).
    proc = _status(path, RAY_gcs_server_port_wait_time_s="3")
    assert proc.returncode != 0 and "scrapers" not in proc.stdout
    assert "auth" in (proc.stdout + proc.stderr).lower(), proc.stderr[-2000:]
