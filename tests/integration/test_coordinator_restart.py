"""The coordinator keeps runtime scaling and the reloaded configuration across its own restart.

A real ingest service (local Ray) scrapes counter targets; the test scales it from 2 to 3 scrapers and
reloads a configuration that replaces the targets, then SIGKILLs the coordinator actor's process. Ray
restarts the actor with the arguments of the service's start (2 scrapers, the first targets); the
coordinator must come back with 3 scrapers and the reloaded targets, and never scrape the first
targets again.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.httpapi import get_json, scrape_owners
from tests.integration.procs import Child, Cluster, CounterTargets, wait_until

INTERVAL_S = 1.0


def _owners(cluster) -> dict[str, str]:
    try:
        return scrape_owners(cluster.ingest_url, "restart")
    except OSError:  # the coordinator is restarting
        return {}


def _descendants(root: int) -> list[tuple[int, str]]:
    """(pid, command line) of every process under ``root``, from /proc."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [root]
    while todo:
        for pid in children.get(todo.pop(), []):
            try:
                cmd = (Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip())
            except OSError:
                continue
            out.append((pid, cmd))
            todo.append(pid)
    return out


def _actors(ingest: Child, name: str) -> list[int]:
    return [pid for pid, cmd in _descendants(ingest.pid) if cmd.split(" ")[0] in (f"ray::{name}",)
            or cmd.startswith(f"ray::{name}.")]


@pytest.fixture()
def setup(tmp_path):
    targets = CounterTargets(6).start()
    addresses = targets.addresses()
    scrape = {"job_name": "restart", "scrape_interval": f"{INTERVAL_S:g}s", "scrape_timeout": "1s",
              "static_configs": [{"targets": addresses[:3]}]}
    cluster = Cluster(tmp_path, n_shards=1, scrape_configs=[scrape],
                      ingest={"scrapers": 2, "self_monitoring": False, "scraper_num_cpus": 0.01},
                      web={"enable_lifecycle": True}).start()
    ingest = cluster.ingest()
    try:
        ingest.up(120)
        yield cluster, targets, ingest
    finally:
        ingest.stop()
        cluster.stop()
        targets.stop()


def test_a_restarted_coordinator_resumes_with_its_scaling_and_reloaded_configuration(setup):
    cluster, targets, ingest = setup
    addresses = targets.addresses()
    first, reloaded = set(addresses[:3]), set(addresses[3:])
    urls = lambda hosts: {f"http://{h}/metrics" for h in hosts}  # noqa: E731

    wait_until(lambda: set(_owners(cluster)) == urls(first), 60, "the first targets assigned")
    assert get_json(f"{cluster.ingest_url}/api/v1/scrapers", data={"count": 3}, timeout=120)["data"]["scrapers"] == 3
    raw = yaml.safe_load(cluster.config_path.read_text())
    raw["scrape_configs"][0]["static_configs"] = [{"targets": sorted(reloaded)}]
    cluster.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    get_json(f"{cluster.ingest_url}/-/reload", data={}, timeout=120)
    wait_until(lambda: set(_owners(cluster)) == urls(reloaded), 30, "the reloaded targets assigned")
    wait_until(lambda: len(_actors(ingest, "Scraper")) == 3, 30, "three scraper processes")

    (coordinator,) = wait_until(lambda: _actors(ingest, "ScrapeCoordinator"), 10, "the coordinator's process")
    killed_ms = int(time.time() * 1000)
    os.kill(coordinator, signal.SIGKILL)

    # Ray restarts it; it resumes at once (not at the service's next nudge) with what it had.
    def back():
        pids = _actors(ingest, "ScrapeCoordinator")
        return pids and pids != [coordinator] and pids
    wait_until(back, 60, "the coordinator to be restarted")
    restarted_s = time.monotonic()

    def resumed():
        try:
            scrapers = get_json(f"{cluster.ingest_url}/api/v1/scrapers", timeout=120)["data"]
        except OSError:
            return None
        running = [s for s in scrapers if s.get("state") == "running"]
        return len(scrapers) == 3 and len(running) == 3 and set(_owners(cluster)) == urls(reloaded) and scrapers
    scrapers = wait_until(resumed, 60, "3 running scrapers and the reloaded targets")
    print(f"\nresumed {time.monotonic() - restarted_s:.1f}s after the restart: {[s['scraper_id'] for s in scrapers]}")
    wait_until(lambda: len(_actors(ingest, "Scraper")) == 3, 30, "three scraper processes again")

    # The reloaded targets are scraped again after the restart ...
    def scraped_since(host: str) -> int:
        port = int(host.rsplit(":", 1)[1])
        return sum(1 for ms, _ in targets.served[port] if ms > killed_ms)
    wait_until(lambda: all(scraped_since(h) >= 2 for h in reloaded), 30, "the reloaded targets to be scraped")
    # ... and the first ones, which the configuration of the service's start lists, never again.
    time.sleep(2 * INTERVAL_S)
    assert {h: scraped_since(h) for h in first} == {h: 0 for h in first}
