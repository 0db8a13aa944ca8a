"""`shardmon up`: a whole local cluster from one config, queried by `shardmon query`, stopped cleanly.

Its configuration has a rule file, so the ruler service runs too: its recording rule's output is queried,
self-monitoring scrapes the ruler service and its ruler, and SIGHUP to `shardmon up` reloads a changed
rule file (passed on to the ingest and ruler services)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import yaml

from tests.integration.httpapi import get_json
from tests.integration.procs import free_port, run_shardmon, shardmon_up, up_config, wait_until

INTERVAL_S = 2


def _ray_pids(groups: set[int]) -> set[int]:
    """Ray's processes (raylet, GCS, workers) in these process groups: those of this test's services (the
    machine may run other Rays)."""
    out = subprocess.run(["pgrep", "-f", "raylet|gcs_server|ray::"], capture_output=True, text=True).stdout
    return {int(p) for p in out.split() if _pgid(int(p)) in groups}


def _pgid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:200]
    except OSError:
        return ""


def _config(tmp_path: Path) -> Path:
    """The embedded default config, moved onto free ports and a temporary data folder."""
    raw = up_config(tmp_path, INTERVAL_S)
    raw["scrape_configs"] = [
        {"job_name": "demo", "static_configs": [{"targets": raw["local"]["demo_targets"], "labels": {"env": "demo"}}]},
        {"job_name": "pushgateway", "honor_labels": True,
         "static_configs": [{"targets": [raw["receiver"]["pushgateway_address"]]}]},
    ]
    raw["global"]["evaluation_interval"] = f"{INTERVAL_S}s"
    raw["rule_files"] = [str(tmp_path / "rules.yml")]
    raw["rules"] = {"http_address": f"127.0.0.1:{free_port()}"}
    _rules(tmp_path, {"demo:up:count": 'count(up{job="demo"} == 1)'})
    path = tmp_path / "shardmon.yml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _rules(tmp_path: Path, records: dict[str, str]) -> None:
    rules = [{"record": name, "expr": expr} for name, expr in records.items()]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [{"name": "demo", "rules": rules}]}))


def test_shardmon_up_serves_every_target_and_stops_leaving_no_process(tmp_path):
    cfg = _config(tmp_path)
    up = shardmon_up(cfg, tmp_path / "up.log")
    try:
        t0 = time.monotonic()
        up.up(90)
        print(f"\n`shardmon up` ready after {time.monotonic() - t0:.1f}s")
        text = up.log_text()
        ready_at = time.monotonic()
        child_pids = [int(p) for p in re.findall(r"pid (\d+)", text)]
        assert len(child_pids) == 9, text  # 2 redis, demo targets, 2 shards, querier, receiver, ingest, ruler
        ray_pids = _ray_pids(set(child_pids))  # the local Rays of the ingest and ruler services
        assert ray_pids, "no Ray process found in the services' process groups"

        def query(expr):
            return run_shardmon("query", expr, config=cfg).stdout.splitlines()

        def query_up():
            lines = [ln for ln in query("up") if ln.startswith("up{") and 'job="demo"' in ln]
            return len(lines) == 3 and all(ln.split()[-1] == "1" for ln in lines) and lines

        lines = wait_until(query_up, 30, "`shardmon query up` to list 3 targets with value 1", interval_s=0.5)
        took = time.monotonic() - ready_at
        print(f"\nevery target up {took:.1f}s after `shardmon up` reported ready")
        # The first scrape of a target waits for its offset in the interval; then a query sees it (usually
        # within two intervals: printed, not asserted).
        assert all('job="demo"' in ln for ln in lines)

        # Self-monitoring: every component is scraped (scrapers once their metrics ports are known).
        want = {"shard": 2, "querier": 1, "receiver": 1, "coordinator": 1, "scraper": 2, "ingest": 1,
                "rules": 1, "ruler": 1}

        def components():
            rows = query('sum by (component) (up{job=~"shardmon.*"})')
            got = {}
            for row in rows:
                if row.startswith("{component="):
                    got[row.split('"')[1]] = float(row.split()[-1])
            return got == want and got

        t0 = time.monotonic()
        got = wait_until(components, 30, "every component to be up", interval_s=1)
        print(f"self-monitoring: {got} after {time.monotonic() - t0:.1f}s more")
        # The pipeline's own metrics are queryable like any other.
        assert any(ln.split()[-1] != "0" for ln in query("sum(shardmon_shard_samples_appended_total)") if ln.startswith("{}"))

        # The ruler's recording rule, queried like any series; then a changed rule file and SIGHUP.
        def value(expr):
            rows = [ln for ln in query(expr) if ln.strip() and ln != "(empty result)"]
            return rows[0].split()[-1] if len(rows) == 1 else None

        t0 = time.monotonic()
        assert wait_until(lambda: value("demo:up:count"), 30, "the recording rule's output") == "3"
        print(f"recording rule output queried after {time.monotonic() - t0:.1f}s more")
        assert value('sum(shardmon_rule_group_rules{component="ruler"})') == "1"
        # A new rule, and two rulers instead of one, in one reload.
        _rules(tmp_path, {"demo:up:count": 'count(up{job="demo"} == 1)', "demo:reloaded": "vector(7)"})
        raw = yaml.safe_load(cfg.read_text())
        raw["rules"]["rulers"] = 2
        cfg.write_text(yaml.safe_dump(raw))
        up.proc.send_signal(signal.SIGHUP)
        t0 = time.monotonic()
        assert wait_until(lambda: value("demo:reloaded"), 30, "the reloaded rule's output") == "7"
        print(f"reloaded rule's output queried {time.monotonic() - t0:.1f}s after SIGHUP")
        assert "reload: SIGHUP passed to ingest, ruler" in up.log_text()
        rulers_api = f"http://{raw['rules']['http_address']}/api/v1/rulers"

        def two_rulers():  # while the rescale runs, the new ruler may list the group before the old one let it go
            rulers = get_json(rulers_api)["data"]
            groups = [g for r in rulers for g in r["groups"]]
            return len(rulers) == 2 and len(groups) == 1 and groups

        assert wait_until(two_rulers, 30, "two rulers after the reload") == [f"{tmp_path / 'rules.yml'};demo"]
    finally:
        up.stop(60)  # SIGTERM, as a service manager stops it; SIGKILL only after 60 s
    assert up.proc.returncode == 0, (tmp_path / "up.log").read_text()
    assert "stopped redis-0" in (tmp_path / "up.log").read_text()
    # The services that run Ray actors stopped them themselves (not cut short by Ray's own SIGTERM handler).
    logs = tmp_path / "data" / "logs"
    assert "ingest stopped" in (logs / "ingest.log").read_text(), (logs / "ingest.log").read_text()[-3000:]
    assert "ruler service stopped" in (logs / "ruler.log").read_text(), (logs / "ruler.log").read_text()[-3000:]
    leftover = [p for p in child_pids if _alive(p)]
    assert not leftover, leftover
    # Ray's own processes notice their driver is gone and exit within seconds.
    def ray_left():
        return {p: _cmdline(p) for p in ray_pids | _ray_pids(set(child_pids)) if _alive(p)}

    try:
        wait_until(lambda: not ray_left(), 20, "Ray's processes to exit")
    except AssertionError:
        raise AssertionError(f"Ray's processes left: {ray_left()}") from None
