"""Native histogram benchmark: bytes per histogram sample kept by Shardmon and by Debian's Prometheus, on the
same remote-written data, and the CPU of ingesting it.

    bench/run --histograms                    # 200 services, schema 3, 2 h at 15 s; the classic histogram too
    bench/run --histograms --smoke            # 20 services over 20 minutes (about a minute)

The data (``hist_workload.py``): request latencies of ``--hist-series`` services, a few log-normal
observations between scrapes, one scrape every 15 s over ``--hist-duration`` (2 h), inside one 2-hour block
window in the past. Written twice, as native histograms (schema 3, integer counts, one series per service) and
as a classic histogram with 10 buckets (13 float series per service: ``le`` buckets with ``+Inf``, ``_sum``,
``_count``); each kind as the same snappy remote-write bodies (5 scrapes of every series per body, in time
order) to both systems, each system fresh for each kind:

- **Prometheus 2.42** with ``--enable-feature=native-histograms --web.enable-remote-write-receiver
  --web.enable-admin-api``: the bodies to ``/api/v1/write``, then ``POST /api/v1/admin/tsdb/snapshot``, which
  writes its head as a block; the snapshot's block is measured (``chunks/``, ``index``, ``meta.json``'s
  stats).
- **Shardmon**: one shard on its own ``redis-server --appendonly yes`` behind ``shardmon receiver``: the bodies to
  the receiver's ``/api/v1/write`` (answered once the shard acknowledged), then the shard's ``Flush`` (which
  cuts the head into a block), ``BGREWRITEAOF``; the block's metadata (``size_bytes``, ``num_samples``),
  Redis ``MEMORY USAGE`` of its chunks hash, and the Redis folder.

Bytes per histogram sample = chunk bytes / histogram samples (a classic histogram's sample is its 13 float
samples). Ingest CPU = user + system CPU of Prometheus's process, or of the shard and the receiver (Redis
apart), from the first body sent to the last one answered. Service 0's series are read back from both and
compared with the generated ones. Results: ``bench/results/<date>/histograms-<label>/`` (``result.json``,
``report.md``).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import math
import os
import shutil
import tempfile
import time
import urllib.parse
from pathlib import Path

import yaml

from bench import report
from bench.hist_report import markdown
from bench.hist_workload import NATIVE_NAME, latency_workload, native_series, remote_write_bodies
from bench.storage_measure import PrometheusProc, ShardProcs, _shard_blocks, cpu_seconds, prometheus_blocks
from bench.storage_workload import INTERVAL_MS
from bench.systems import dir_bytes, http_get, http_post
from shardmon.procs import Child, free_port, shardmon_argv

ROOT = Path(__file__).resolve().parents[1]
BLOCK_MS = 2 * 3_600_000
HEADERS = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
           "X-Prometheus-Remote-Write-Version": "0.1.0"}


def send(address: str, bodies: list[bytes]) -> None:
    host, port = address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=300)
    try:
        for body in bodies:
            conn.request("POST", "/api/v1/write", body, HEADERS)
            resp = conn.getresponse()
            text = resp.read()
            if resp.status // 100 != 2:
                raise RuntimeError(f"remote write to {address}: {resp.status} {text[:300]!r}")
    finally:
        conn.close()


def prometheus_run(work: Path, kind: str, bodies: list[bytes], check, log=print) -> dict:
    folder = work / f"prometheus-{kind}"
    prom = PrometheusProc(folder, folder / "data", remote_write_receiver=True,
                          extra_args=("--enable-feature=native-histograms", "--web.enable-admin-api"))
    prom.start()
    try:
        time.sleep(1.0)
        cpu0, t0 = cpu_seconds(prom.pid), time.monotonic()
        send(prom.address, bodies)
        cpu1, t1 = cpu_seconds(prom.pid), time.monotonic()
        appended = prom.metric("prometheus_tsdb_head_samples_appended_total")
        snap = json.loads(http_post(f"http://{prom.address}/api/v1/admin/tsdb/snapshot"))
        cpu2 = cpu_seconds(prom.pid)
        snap_dir = folder / "data" / "snapshots" / snap["data"]["name"]
        blocks = prometheus_blocks(snap_dir)
        got = check(prom)
        log(f"[prometheus {kind}] {t1 - t0:.2f}s, {cpu1 - cpu0:.2f} CPU-s; snapshot: "
            + "; ".join(f"{b['samples']:,} samples, {b['chunks']:,} chunks, {b['chunk_bytes']:,} chunk bytes"
                        for b in blocks) + f"; read-back equal: {got['equal']}")
        return {"ingest_s": t1 - t0, "ingest_cpu_s": cpu1 - cpu0, "samples_appended": appended,
                "snapshot_cpu_s": cpu2 - cpu1, "blocks": blocks,
                "chunk_bytes": sum(b["chunk_bytes"] for b in blocks),
                "index_bytes": sum(b["index_bytes"] for b in blocks),
                "block_bytes": sum(b["bytes"] for b in blocks),
                "samples_stored": sum(b["samples"] for b in blocks), "check": got}
    finally:
        prom.stop()


def shardmon_run(work: Path, kind: str, bodies: list[bytes], check, log=print) -> dict:
    from shardmon.shards.client import ShardClient

    sp = ShardProcs(work / f"shardmon-{kind}", block_duration="2h")
    recv_port = free_port()
    cfg = yaml.safe_load(sp.config_path.read_text())
    cfg["receiver"] = {"http_address": f"127.0.0.1:{recv_port}", "pushgateway_address": None}
    sp.config_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    receiver = Child("receiver", shardmon_argv("receiver", config=sp.config_path), sp.folder / "receiver.log",
                     ("127.0.0.1", recv_port), cwd=ROOT)
    sp.start_redis()
    sp.start_shard()
    receiver.up(600, interval_s=0.05)
    client = ShardClient(0, sp.address)
    try:
        time.sleep(1.0)
        pids = {"shard": sp.shard.pid, "receiver": receiver.pid, "redis": sp.redis.pid}
        cpu0, t0 = {k: cpu_seconds(p) for k, p in pids.items()}, time.monotonic()
        send(f"127.0.0.1:{recv_port}", bodies)
        cpu1, t1 = {k: cpu_seconds(p) for k, p in pids.items()}, time.monotonic()
        flushed = client.flush(timeout_s=1800)
        cpu2 = {k: cpu_seconds(p) for k, p in pids.items()}
        blocks = _shard_blocks(sp)
        chunk_mem = sum(int(sp.redis_cli("MEMORY", "USAGE", f"shardmon:0:block:{b['block_id']}:chunks",
                                         "SAMPLES", "0").strip() or 0) for b in blocks)
        sp.rewrite_aof()
        got = check(client)
        mem = sp.redis_info("memory")
        disk = dir_bytes(sp.redis_dir)
        ingest = {k: cpu1[k] - cpu0[k] for k in pids}
        log(f"[shardmon {kind}] {t1 - t0:.2f}s, {ingest['shard'] + ingest['receiver']:.2f} CPU-s (shard "
            f"{ingest['shard']:.1f}, receiver {ingest['receiver']:.1f}, Redis {ingest['redis']:.1f}); flush: "
            + "; ".join(f"{b['num_samples']:,} samples, {b['size_bytes']:,} chunk bytes" for b in blocks)
            + f"; read-back equal: {got['equal']}")
        return {"ingest_s": t1 - t0, "ingest_cpu_s": ingest["shard"] + ingest["receiver"], "ingest_cpu_by_process": ingest,
                "flush_cpu_s": cpu2["shard"] - cpu1["shard"], "flush_blocks_written": flushed, "blocks": blocks,
                "chunk_bytes": sum(b["size_bytes"] for b in blocks), "chunks_hash_memory": chunk_mem,
                "samples_stored": sum(b["num_samples"] for b in blocks), "disk_bytes": disk,
                "redis_used_memory": int(mem["used_memory"]), "check": got}
    finally:
        client.close()
        receiver.stop(30)
        sp.stop()


# -- read-back checks of service 0 ------------------------------------------------------------------------


def _selector(kind: str, labels: dict[str, str]) -> str:
    name = NATIVE_NAME if kind == "native" else "http_request_duration_classic_seconds_bucket"
    return f'{name}{{instance="{labels["instance"]}"}}'


def checks(kind: str, svc, window: tuple[int, int]):
    """(check of Prometheus, check of the shard) for service ``svc``'s series."""
    from bench.hist_workload import classic_series
    from shardmon.model.labels import Matcher, MatchType

    if kind == "native":
        want_h = native_series(svc)
    else:
        want_c = {lb["le"]: vals for lb, vals in classic_series(svc) if "le" in lb}
    ts = svc.timestamps_ms

    def prom_check(prom) -> dict:
        span_s = math.ceil((window[1] - window[0]) / 1000)
        q = f"{_selector(kind, svc.labels)}[{span_s}s]"
        body = json.loads(http_get(f"http://{prom.address}/api/v1/query?" + urllib.parse.urlencode(
            {"query": q, "time": f"{window[1] / 1000:.3f}"}), 120))
        res = body["data"]["result"]
        bad = 0
        for s in res:
            if kind == "native":
                pts = s.get("histograms", [])
                ok = len(pts) == len(want_h) and all(
                    round(float(t) * 1000) == int(tt) and float(h["count"]) == w.count and float(h["sum"]) == w.sum
                    and [float(b[3]) for b in h.get("buckets", [])] == [c for c in w.positive_buckets if c]
                    for (t, h), w, tt in zip(pts, want_h, ts.tolist()))
            else:
                vals = [float(v) for _, v in s["values"]]
                ok = vals == want_c[s["metric"]["le"]].tolist()
            bad += not ok
        n_want = 1 if kind == "native" else len(want_c)
        return {"series_read": len(res), "series_differing": bad, "equal": bad == 0 and len(res) == n_want}

    def shard_check(client) -> dict:
        got = client.series([Matcher(MatchType.EQ, "instance", svc.labels["instance"]),
                             Matcher(MatchType.EQ, "__name__", _selector(kind, svc.labels).split("{")[0])],
                            window[0], window[1])
        bad = 0
        for s in got:
            if kind == "native":
                hs = list(s.histograms) if s.histograms is not None else []
                ok = s.timestamps_ms.tolist() == ts.tolist() and hs == want_h
            else:
                ok = s.values.tolist() == want_c[s.labels.to_dict()["le"]].tolist()
            bad += not ok
        n_want = 1 if kind == "native" else len(want_c)
        return {"series_read": len(got), "series_differing": bad, "equal": bad == 0 and len(got) == n_want}

    return prom_check, shard_check


def run_hist_bench(out: Path, *, series: int = 200, duration: str = "2h", schema: int = 3, rounds_per_body: int = 5,
                   kinds: tuple[str, ...] = ("native", "classic"), systems: tuple[str, ...] = ("shardmon", "prometheus"),
                   label: str | None = None, keep_data: bool = False, log=print) -> dict:
    from shardmon.model.units import parse_duration_ms

    duration_ms = parse_duration_ms(duration)
    if duration_ms > BLOCK_MS:
        raise ValueError("--hist-duration: at most 2h (the data stays in one 2-hour block window)")
    n_scrapes = duration_ms // INTERVAL_MS
    label = label or f"histograms-{series}x{duration}"
    folder = out / label
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="shardmon-histbench-"))
    started, load_before = time.monotonic(), os.getloadavg()
    # One 2-hour block window, wholly in the past (Prometheus's snapshot and Shardmon's Flush each make one block).
    start_ms = (int(time.time() * 1000) - BLOCK_MS - 600_000) // BLOCK_MS * BLOCK_MS
    services = latency_workload(series, n_scrapes, start_ms)
    window = (start_ms, start_ms + BLOCK_MS)
    results: dict[str, dict] = {}
    try:
        for kind in kinds:
            t0 = time.monotonic()
            bodies, summary = remote_write_bodies(services, kind, rounds_per_body, schema)
            log(f"{kind}: {summary['series']:,} series x {summary['scrapes']} scrapes = {summary['samples']:,} samples "
                f"in {summary['bodies']} bodies of {summary['body_bytes'] / summary['bodies'] / 1024:.0f} KiB "
                f"({time.monotonic() - t0:.1f}s)")
            prom_check, shard_check = checks(kind, services[0], window)
            res = {"workload": summary}
            if "prometheus" in systems:
                res["prometheus"] = prometheus_run(work, kind, bodies, prom_check, log)
            if "shardmon" in systems:
                res["shardmon"] = shardmon_run(work, kind, bodies, shard_check, log)
            results[kind] = res
    finally:
        if keep_data:
            log(f"data and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    run = {"label": label, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
           "machine": report.machine(), "seconds": time.monotonic() - started,
           "load_average": {"start": [round(x, 2) for x in load_before], "end": [round(x, 2) for x in os.getloadavg()]},
           "window_ms": list(window), "rounds_per_body": rounds_per_body, "results": results}
    (folder / "result.json").write_text(json.dumps(run, indent=1))
    (folder / "report.md").write_text(markdown(run))
    return run
