"""The steps of tests/compose/run: the compose cluster built, started and checked from the host.

Standard library only (it runs before or without the project's virtualenv). Every step is named; the
first that fails stops the run, which then tears the cluster down and exits 1 naming it. Traffic goes only
to the containers (through ports published on 127.0.0.1) and to loopback (the host's Prometheus).
The commands are docs/deploy.md's: deploy/offline-images.sh, `docker-compose up -d`, `--scale`, `down -v`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = os.environ.get("COMPOSE_PROJECT_NAME", "shardmonci")
IMAGES = {"PYTHON_IMAGE": "shardmon-python:3.11", "REDIS_IMAGE": "shardmon-redis:7"}
PORT_VARS = ("SHARDMON_HTTP_PORT", "SHARDMON_GRPC_PORT", "SHARDMON_RECEIVER_PORT", "SHARDMON_PUSHGATEWAY_PORT",
             "SHARDMON_INGEST_PORT", "SHARDMON_RULER_PORT")
DEMO_INTERVAL_S = 5.0  # deploy/shardmon.yml's demo job


class StepFailed(Exception):
    pass


def check(ok: bool, what: str) -> None:
    if not ok:
        raise StepFailed(what)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout_s: float, what: str, interval_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    last_exc = None
    while time.monotonic() < deadline:
        try:
            got = pred()
            if got:
                return got
        except (OSError, ValueError, KeyError, ArithmeticError) as exc:  # not answering yet
            last_exc = exc
        time.sleep(interval_s)
    raise StepFailed(f"timed out after {timeout_s:g} s waiting for {what}" + (f" (last error: {last_exc})" if last_exc else ""))


def get_json(url: str, params: dict | None = None, timeout: float = 30):
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.loads(r.read())


class Compose:
    """docker-compose on the repository's compose.yaml, project PROJECT, ports on free loopback ports."""

    def __init__(self) -> None:
        self.env = dict(os.environ, COMPOSE_PROJECT_NAME=PROJECT, **IMAGES)
        self.ports = {}
        for var in PORT_VARS:
            self.ports[var] = free_port()
            self.env[var] = f"127.0.0.1:{self.ports[var]}"

    def url(self, var: str) -> str:
        return f"http://127.0.0.1:{self.ports[var]}"

    def run(self, *args: str, timeout: float = 600) -> str:
        proc = subprocess.run(args, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise StepFailed(f"`{' '.join(args)}` exited {proc.returncode}: {(proc.stderr or proc.stdout)[-2000:]}")
        return proc.stdout

    def compose(self, *args: str, timeout: float = 600) -> str:
        return self.run("docker-compose", *args, timeout=timeout)

    def containers(self, service: str | None = None) -> list[dict]:
        """docker inspect of the project's containers (of one service)."""
        ids = self.compose("ps", "-q", *([service] if service else [])).split()
        return json.loads(self.run("docker", "inspect", *ids)) if ids else []

    def unhealthy(self) -> list[str]:
        out = []
        for c in self.containers():
            health = (c["State"].get("Health") or {}).get("Status", c["State"]["Status"])
            if c["State"]["Status"] != "running" or health != "healthy":
                out.append(f"{c['Name'].lstrip('/')} ({c['State']['Status']}, {health})")
        return out

    def query(self, promql: str, at: float | None = None) -> list[dict]:
        params = {"query": promql, **({"time": f"{at:.3f}"} if at is not None else {})}
        body = get_json(self.url("SHARDMON_HTTP_PORT") + "/api/v1/query", params, timeout=60)
        check(body["status"] == "success", f"query {promql!r}: {body}")
        return body["data"]["result"]

    def targets(self) -> list[dict]:
        return get_json(self.url("SHARDMON_INGEST_PORT") + "/api/v1/targets")["data"]["activeTargets"]

    def scrapers(self) -> list[dict]:
        return get_json(self.url("SHARDMON_INGEST_PORT") + "/api/v1/scrapers")["data"]

    def ip(self, container: dict) -> str:
        return next(iter(container["NetworkSettings"]["Networks"].values()))["IPAddress"]


def _parse_time(rfc3339: str) -> float:
    from datetime import datetime
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


def _duration_s(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for u in ("ms", "s", "m", "h"):
        if text.endswith(u) and text[: -len(u)].replace(".", "").isdigit():
            return float(text[: -len(u)]) * units[u]
    raise ValueError(text)


def _raw(result: list[dict]) -> dict[tuple, list[tuple[float, str]]]:
    """labels -> [(timestamp, value as repr of the float: NaN equals NaN)] of a range query's result."""
    return {tuple(sorted(r["metric"].items())): [(float(t), repr(float(v))) for t, v in r["values"]] for r in result}


class Run:
    def __init__(self) -> None:
        self.c = Compose()
        self.summary: list[str] = []
        self.prometheus: subprocess.Popen | None = None
        self.tmp = Path(tempfile.mkdtemp(prefix="shardmon-compose-"))

    def note(self, line: str) -> None:
        print(f"compose:   {line}", flush=True)
        self.summary.append(line)

    # --- steps ---------------------------------------------------------------------------------------

    def build(self) -> None:
        t0 = time.monotonic()
        proc = subprocess.run([str(ROOT / "deploy/offline-images.sh")], cwd=ROOT, env=self.c.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        print(proc.stdout, end="")
        check(proc.returncode == 0, f"deploy/offline-images.sh exited {proc.returncode}")
        sizes = []
        for image in ("shardmon-debian:bookworm", *IMAGES.values(), "shardmon:latest"):
            size = int(self.c.run("docker", "image", "inspect", "-f", "{{.Size}}", image))
            sizes.append(f"{image} {size / 1e6:.0f} MB")
        self.note(f"images built in {time.monotonic() - t0:.0f} s: " + ", ".join(sizes))

    def up(self) -> None:
        t0 = time.monotonic()
        self.c.compose("up", "-d", timeout=900)
        wait_until(lambda: not self.c.unhealthy(), 300, "every container healthy", interval_s=2)
        n = len(self.c.containers())
        self.note(f"`docker-compose up -d`: {n} containers healthy {time.monotonic() - t0:.0f} s after the command")

    def targets_up(self) -> None:
        demo = lambda: [t for t in self.c.targets() if t["labels"]["job"] == "demo"]  # noqa: E731
        wait_until(lambda: len(demo()) == 3 and all(t["health"] == "up" for t in demo()), 120, "3 demo targets up")
        series = wait_until(lambda: (r := self.c.query('count by (instance) ({job="demo"})')) and len(r) == 3 and r,
                            60, "the demo targets' series in the querier")
        up = self.c.query('up{job="demo"}')
        check(sorted(float(r["value"][1]) for r in up) == [1.0] * 3, f"up of the demo targets: {up}")
        counts = {r["metric"]["instance"]: int(r["value"][1]) for r in series}
        self.note(f"every demo target up, its series queryable: {counts}")

    def remote_write(self) -> None:
        port = free_port()
        cfg = self.tmp / "prometheus.yml"
        cfg.write_text(json.dumps({  # JSON is YAML
            "global": {"scrape_interval": "2s", "scrape_timeout": "1s"},
            "scrape_configs": [{"job_name": "host-prometheus", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
            "remote_write": [{"url": self.c.url("SHARDMON_RECEIVER_PORT") + "/api/v1/write",
                              "queue_config": {"batch_send_deadline": "1s", "min_backoff": "100ms", "max_backoff": "2s"}}],
        }))
        self.prom_url = f"http://127.0.0.1:{port}"
        log = open(ROOT / ".cache/compose-test/prometheus.log", "w")
        self.prometheus = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={self.tmp / 'prom-data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT)
        t0 = time.monotonic()
        wait_until(lambda: self.c.query('count({job="host-prometheus"})'), 90,
                   "the host Prometheus's samples, remote-written to the receiver, in the querier")
        n = int(self.c.query('count({job="host-prometheus"})')[0]["value"][1])
        self.note(f"host Prometheus 2.42 remote-writes into the receiver: {n} series queryable "
                  f"{time.monotonic() - t0:.0f} s after its start")

    def kill_shard(self) -> None:
        window_start = time.time() - 3 * DEMO_INTERVAL_S
        time.sleep(DEMO_INTERVAL_S)
        shard = self.c.containers("shard-0")[0]
        t_kill = time.time()
        self.c.run("docker", "kill", "-s", "KILL", shard["Id"])
        time.sleep(2 * DEMO_INTERVAL_S)  # scrapes and remote writes go on; what is for shard 0 is retried
        self.c.run("docker", "start", shard["Id"])
        wait_until(lambda: not self.c.unhealthy(), 120, "shard-0 healthy again", interval_s=1)
        t_back = time.time()
        time.sleep(4 * DEMO_INTERVAL_S)  # the retried writes land
        t_end = time.time() - DEMO_INTERVAL_S
        window = f"{math.ceil(t_end - window_start)}s"

        # Every scrape of every demo target stored once, in every series of the target: its scrape
        # counter goes up by one from sample to sample, and every other series has the same timestamps.
        # (The rules' output of job "demo" has no instance label: scraped series only.)
        raw = _raw(self.c.query(f'{{job="demo",instance!=""}}[{window}]', at=t_end))
        by_instance: dict[str, dict[tuple, list]] = {}
        for key, samples in raw.items():
            by_instance.setdefault(dict(key)["instance"], {})[key] = samples
        check(len(by_instance) == 3, f"demo instances in the window: {sorted(by_instance)}")
        scrapes = during = 0
        for instance, series in by_instance.items():
            counter = next(s for k, s in series.items() if dict(k)["__name__"] == "demo_scrapes_total")
            values = [float(v) for _, v in counter]
            steps = {b - a for a, b in zip(values, values[1:])}
            check(steps == {1.0}, f"{instance}: demo_scrapes_total steps {sorted(steps)} (a scrape lost or doubled)")
            stamps = [t for t, _ in counter]
            for key, samples in series.items():
                check([t for t, _ in samples] == stamps,
                      f"{instance}: {dict(key)['__name__']} lacks or doubles samples of the counted scrapes")
            scrapes += len(stamps)
            during += sum(1 for t in stamps if t_kill < t < t_back)
        check(during > 0, "no scrape stored from while shard-0 was down")
        dropped = self.c.query("sum(shardmon_scraper_samples_dropped_total)")
        n_dropped = float(dropped[0]["value"][1]) if dropped else 0.0
        check(n_dropped == 0, f"the scrapers dropped {n_dropped:g} samples")
        self.note(f"shard-0 SIGKILLed during ingest, down {t_back - t_kill:.0f} s until healthy again: "
                  f"{scrapes} demo scrapes in {window} ({len(raw)} series), every one stored once in every "
                  f"series, {during} of them scraped while shard-0 was down; 0 samples dropped")

        # The host Prometheus's remote-written samples: the same, sample for sample, as its own TSDB.
        t_cmp = t_end - 10
        want = _raw(get_json(self.prom_url + "/api/v1/query",
                             {"query": f'{{job="host-prometheus"}}[{window}]', "time": f"{t_cmp:.3f}"})["data"]["result"])
        got = _raw(self.c.query(f'{{job="host-prometheus"}}[{window}]', at=t_cmp))
        missing = [k for k in want if k not in got]
        check(not missing, f"{len(missing)} remote-written series missing, e.g. {missing[:2]}")
        differ = [k for k in want if got[k] != want[k]]
        check(not differ, f"{len(differ)} remote-written series differ, e.g. {differ[:1]}: "
                          f"{want[differ[0]][:3] if differ else ''} vs {got[differ[0]][:3] if differ else ''}")
        n = sum(len(v) for v in want.values())
        self.note(f"remote write across the kill: all {n} samples of {len(want)} series in the window equal "
                  f"to the host Prometheus's own")

    def _placement(self) -> dict[str, list[str]]:
        """worker container name -> its running scrapers."""
        workers = {self.c.ip(w): w["Name"].lstrip("/") for w in self.c.containers("ray-worker")}
        out = {name: [] for name in workers.values()}
        for s in self.c.scrapers():
            if s["state"] == "running" and s["node_ip"] in workers:
                out[workers[s["node_ip"]]].append(s["scraper_id"])
        return out

    def _all_scraped_within_two_intervals(self, since: float, what: str) -> None:
        """Every target (still listed) scraped after ``since`` and within two of its intervals."""
        stale: list[str] = []

        def fresh() -> bool:
            now = time.time()
            stale[:] = [t["scrapeUrl"] for t in self.c.targets()
                        if not (_parse_time(t["lastScrape"]) > since
                                and now - _parse_time(t["lastScrape"]) <= 2 * _duration_s(t["scrapeInterval"]))]
            return not stale
        try:
            wait_until(fresh, 60, f"every target scraped within two intervals {what}", interval_s=1)
        except StepFailed as exc:
            raise StepFailed(f"{exc}: not scraped: {stale[:5]}") from None

    def scale(self) -> None:
        self.c.compose("up", "-d", "--scale", "ray-worker=3", timeout=600)
        wait_until(lambda: not self.c.unhealthy(), 180, "every container healthy with 3 workers", interval_s=2)
        # docs/deploy.md: running scrapers are not moved; the ingest service places them anew at its start.
        self.c.compose("restart", "ingest", timeout=300)
        t_restart = time.time()
        wait_until(lambda: not self.c.unhealthy(), 180, "ingest healthy after its restart", interval_s=2)
        placement = wait_until(lambda: (p := self._placement()) and all(p.values()) and len(p) == 3 and p, 120,
                               "scrapers running on all 3 workers")
        self._all_scraped_within_two_intervals(t_restart, "with 3 workers")
        n = len(self.c.targets())
        self.note("`docker-compose up -d --scale ray-worker=3` and `restart ingest`: scrapers "
                  + ", ".join(f"{w}: {sorted(s)}" for w, s in sorted(placement.items()))
                  + f"; all {n} targets scraped within two intervals")

    def lose_worker(self) -> None:
        placement = self._placement()
        victim = max(placement, key=lambda w: len(placement[w]))
        lost = set(placement[victim])
        moved = [t["scrapeUrl"] for t in self.c.targets() if t.get("scraper") in lost]
        t_stop = time.time()
        self.c.run("docker", "stop", victim)
        stop_s = time.time() - t_stop
        # Its targets go to the scrapers on the other workers at once (and back to its scrapers once Ray
        # has restarted them there): each scraped again; then every target within two intervals.
        wait_until(lambda: all(_parse_time(t["lastScrape"]) > t_stop for t in self.c.targets()
                               if t["scrapeUrl"] in moved), 60, f"the targets of {victim}'s scrapers scraped again")
        t_moved = time.time() - t_stop
        self._all_scraped_within_two_intervals(t_stop, f"after `docker stop {victim}`")
        after = wait_until(lambda: (p := self._placement()) and not p[victim] and sum(map(len, p.values())) == 4 and p,
                           120, f"the scrapers of {victim} running on the other workers")
        # The demo targets' largest gap between stored scrapes across the stop (their interval: 5 s).
        t_end = time.time()
        raw = _raw(self.c.query(f"demo_scrapes_total[{math.ceil(t_end - t_stop) + 10}s]", at=t_end))
        gaps = {dict(k)["instance"]: max((b[0] - a[0] for a, b in zip(v, v[1:])), default=0) for k, v in raw.items()}
        # Reported, not bounded beyond the requirement (its targets move, checked above): how long they
        # go unscraped depends on how fast Ray declares the stopped node dead, 5 to 15 s in CI runs.
        check(bool(gaps) and all(g > 0 for g in gaps.values()), f"demo targets' stored scrapes across the stop: {gaps}")
        self.note(f"`docker stop {victim}` (returned after {stop_s:.0f} s; scrapers {sorted(lost)}, {len(moved)} "
                  f"targets): its targets scraped again {t_moved:.0f} s after the command, every target within two "
                  f"intervals; largest gap between a demo target's stored scrapes: {max(gaps.values()):.1f} s "
                  f"(interval {DEMO_INTERVAL_S:g} s); scrapers now "
                  + ", ".join(f"{w}: {sorted(s)}" for w, s in sorted(after.items()) if w != victim))

    def down(self) -> None:
        self.c.compose("down", "-v", timeout=300)
        label = f"label=com.docker.compose.project={PROJECT}"
        left = {kind: self.c.run("docker", kind, "ls", "-q", "--filter", label).split()
                for kind in ("container", "network", "volume")}
        left["container"] = self.c.run("docker", "ps", "-aq", "--filter", label).split()
        left["volume"] += [v for v in self.c.run("docker", "volume", "ls", "-q").split() if v.startswith(f"{PROJECT}_")]
        check(not any(left.values()), f"`docker-compose down -v` left {left}")
        self.note("`docker-compose down -v`: no container, network or volume of the project left")

    # --- the run -------------------------------------------------------------------------------------

    def cleanup(self, failed: bool) -> None:
        if self.prometheus is not None:
            self.prometheus.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.prometheus.wait(30)
        shutil.rmtree(self.tmp, ignore_errors=True)
        if failed:
            with contextlib.suppress(Exception):
                print(self.c.compose("ps"))
                for name in self.c.unhealthy():
                    print(f"--- logs of {name}")
                    print(self.c.run("docker", "logs", "--tail", "40", name.split()[0]))
            if os.environ.get("COMPOSE_KEEP") != "1":
                with contextlib.suppress(Exception):
                    self.c.compose("down", "-v", timeout=300)


STEPS = [("build the images (deploy/offline-images.sh)", Run.build),
         ("docker-compose up -d, every health check passing", Run.up),
         ("every demo target up and its series arriving", Run.targets_up),
         ("host Prometheus remote-writing into the receiver", Run.remote_write),
         ("docker kill -s KILL of shard-0 during ingest: no acknowledged sample lost", Run.kill_shard),
         ("--scale ray-worker=3 spreading the scrapers", Run.scale),
         ("a stopped worker's targets moving", Run.lose_worker),
         ("docker-compose down -v leaving nothing", Run.down)]


def main() -> int:
    (ROOT / ".cache/compose-test").mkdir(parents=True, exist_ok=True)
    run = Run()
    t0 = time.monotonic()
    failed = None
    try:
        run.c.compose("down", "-v", timeout=300)  # whatever an interrupted run left
        for name, fn in STEPS:
            print(f"compose: step: {name}", flush=True)
            try:
                fn(run)
            except (StepFailed, OSError, subprocess.TimeoutExpired, KeyError, ValueError) as exc:
                if not isinstance(exc, StepFailed):
                    traceback.print_exc()
                failed = (name, exc)
                break
    finally:
        run.cleanup(failed is not None)
    print(f"\ncompose: summary ({time.monotonic() - t0:.0f} s in all)")
    for line in run.summary:
        print(f"  - {line}")
    if failed:
        print(f"compose: FAILED at step '{failed[0]}': {failed[1]}")
        return 1
    print("compose: every step passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
