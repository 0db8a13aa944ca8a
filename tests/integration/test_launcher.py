"""`shardmon up` always ends everything: a child that ignores SIGTERM (here a shard process stopped with
SIGSTOP, as a shard whose event loop is stuck would ignore it) is killed after `local.stop_grace_period`,
children of one stop stage stop together, a second Ctrl-C kills what is left at once, and Ctrl-C during
start-up stops what was started. No process of the cluster (nor of their process groups: Ray's) stays."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import yaml

from tests.integration.procs import free_port, shardmon_up, wait_until


def _config(tmp_path: Path, grace: str, shards: int = 2) -> Path:
    raw = {
        "global": {"scrape_interval": "2s", "scrape_timeout": "1s"},
        "scrape_configs": [],
        "shards": {"nodes": [{"id": i, "address": f"127.0.0.1:{free_port()}",
                              "redis_url": f"redis://127.0.0.1:{free_port()}/0"} for i in range(shards)]},
        "ingest": {"scrapers": 1, "scraper_num_cpus": 0.1, "self_monitoring": False,
                   "http_address": f"127.0.0.1:{free_port()}"},
        "querier": {"http_address": f"127.0.0.1:{free_port()}", "grpc_address": f"127.0.0.1:{free_port()}"},
        "local": {"data_dir": str(tmp_path / "data"), "start_redis": True, "demo_targets": [],
                  "stop_grace_period": grace},
    }
    path = tmp_path / "shardmon.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] != "Z"


def _group_members(pgids: set[int]) -> list[int]:
    """Live processes in any of these process groups (each child leads one; Ray's processes join the
    ingest service's)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            st = _stat(int(d.name))
            if st is not None and st[0] != "Z" and int(st[2]) in pgids:
                out.append(int(d.name))
    return out


class Up:
    """`shardmon up` as a user runs it, its output in a file."""

    def __init__(self, tmp_path: Path, config: Path) -> None:
        self.child = shardmon_up(config, tmp_path / "up.log").start()
        self.proc = self.child.proc

    def text(self) -> str:
        return self.child.log_text()

    def pids(self) -> dict[str, int]:
        return {name: int(pid) for name, pid in re.findall(r"started (\S+)\s+pid (\d+)", self.text())}

    def wait_up(self) -> None:
        self.child.wait_ready(120)

    def close(self) -> None:
        self.child.kill()
        for pid in self.pids().values():  # never leave a stopped process behind, whatever happened
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period_and_stages_stop_together(tmp_path):
    grace_s = 4
    up = Up(tmp_path, _config(tmp_path, f"{grace_s}s"))
    try:
        up.wait_up()
        pids = up.pids()
        assert set(pids) >= {"redis-0", "redis-1", "shard-0", "shard-1", "querier", "ingest"}, pids
        for shard in ("shard-0", "shard-1"):  # both shards stuck: SIGTERM stays pending
            os.kill(pids[shard], signal.SIGSTOP)
        t0 = time.monotonic()
        up.proc.send_signal(signal.SIGTERM)
        up.proc.wait(120)
        took = time.monotonic() - t0
        text = up.text()
        print(f"\nstopped in {took:.1f}s with both shards stuck (grace {grace_s}s):\n{text[text.index('Stopping'):]}")
        assert up.proc.returncode == 0, text
        for shard in ("shard-0", "shard-1"):
            assert f"killed (SIGKILL) {shard}: no exit within {grace_s}s of SIGTERM" in text
        assert "stopped redis-0" in text and "stopped redis-1" in text
        # The shards were waited for together: one grace period for their stage, not one each. The
        # bound is the documented one, three grace periods, with room for a loaded machine.
        assert took < 3 * grace_s + 15, took
        assert not [p for p in pids.values() if _alive(p)]
        wait_until(lambda: not _group_members(set(pids.values())), 20, "every process of the children's groups to exit")
    finally:
        up.close()


def test_a_second_ctrl_c_kills_what_is_left_at_once(tmp_path):
    grace_s = 300  # far longer than the test may take: only the second Ctrl-C can end the wait
    up = Up(tmp_path, _config(tmp_path, f"{grace_s}s", shards=1))
    try:
        up.wait_up()
        pids = up.pids()
        os.kill(pids["shard-0"], signal.SIGSTOP)
        up.proc.send_signal(signal.SIGINT)
        # The first stage (the ingest service) ends; then the stuck shard holds the second.
        wait_until(lambda: re.search(r"(stopped|killed \(SIGKILL\)) ingest", up.text()), 60, "the first stage")
        time.sleep(1)
        assert up.proc.poll() is None
        t0 = time.monotonic()
        up.proc.send_signal(signal.SIGINT)
        up.proc.wait(60)
        took = time.monotonic() - t0
        text = up.text()
        print(f"\nended {took:.1f}s after the second Ctrl-C:\n{text[text.index('Stopping'):]}")
        assert "stop requested again: killing every child left (SIGKILL)" in text
        assert "killed (SIGKILL) shard-0" in text
        assert took < 30
        assert not [p for p in pids.values() if _alive(p)]
        wait_until(lambda: not _group_members(set(pids.values())), 20, "every process of the children's groups to exit")
    finally:
        up.close()


def test_ctrl_c_during_start_up_stops_what_was_started(tmp_path):
    up = Up(tmp_path, _config(tmp_path, "5s", shards=1))
    try:
        wait_until(lambda: "started shard-0" in up.text(), 60, "the first children to start")
        up.proc.send_signal(signal.SIGINT)
        up.proc.wait(60)
        text = up.text()
        assert up.proc.returncode == 130, text
        assert "Shardmon is up" not in text
        assert re.search(r"shardmon up: stopped (during start-up|while \S+ was starting)", text), text
        pids = up.pids()
        assert pids and not [p for p in pids.values() if _alive(p)], text
        wait_until(lambda: not _group_members(set(pids.values())), 20, "every process of the children's groups to exit")
    finally:
        up.close()
