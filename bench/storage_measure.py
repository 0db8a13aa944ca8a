"""The storage benchmark's measurements (bench/storagebench.py), each on Shardmon's shard and on Debian's
Prometheus: bytes per sample on disk after compaction (:func:`shardmon_disk`, :func:`prometheus_disk`),
and head memory per series, ingest CPU per million samples and restart time per million WAL samples
(:func:`shardmon_head`, :func:`prometheus_head`). The processes run on the project's process harness
(shardmon/procs.py): a shard with its own redis-server (:class:`ShardProcs`), and Prometheus
(:class:`PrometheusProc`).
"""

from __future__ import annotations

import http.client
import json
import math
import re
import subprocess
import time
from pathlib import Path

import numpy as np
import yaml

from bench.procstat import _stat
from bench.storage_workload import HeadData, RemoteWriteBodies, host_labels, sample_batches
from bench.systems import dir_bytes, http_get, http_ok, metric_sum, prometheus_binary
from shardmon.procs import Child, ChildFailed, free_port, redis_server_argv, redis_server_path, shardmon_argv

ROOT = Path(__file__).resolve().parents[1]


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    st = _stat(pid)
    return st[1] if st else 0.0


class ShardProcs:
    """One shard (``python -m shardmon shard``) and its own redis-server (appendonly yes), on free ports."""

    def __init__(self, folder: Path, block_duration: str) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.redis_dir = folder / "redis"
        self.redis_port = free_port()
        self.address = f"127.0.0.1:{free_port()}"
        self.config_path = folder / "shardmon.yml"
        self.config_path.write_text(yaml.safe_dump({
            "scrape_configs": [],
            "shards": {"nodes": [{"id": 0, "address": self.address,
                                  "redis_url": f"redis://127.0.0.1:{self.redis_port}/0"}],
                       "block_duration": block_duration},
            "web": {"enable_admin_api": True},  # the benchmark calls Flush, an admin RPC
        }, sort_keys=False))
        self.log_path = folder / "shard.log"
        if not redis_server_path():
            raise RuntimeError("redis-server is not installed (scripts/setup.sh installs it)")
        self.redis = Child("redis-server", redis_server_argv(self.redis_port, self.redis_dir), folder / "redis.log",
                           ("127.0.0.1", self.redis_port))
        host, port = self.address.rsplit(":", 1)
        self.shard = Child("shard", shardmon_argv("shard", "--id", "0", config=self.config_path), self.log_path,
                           (host, int(port)), cwd=ROOT)

    def start_redis(self) -> None:
        self.redis.up(600, interval_s=0.05)

    def start_shard(self) -> float:
        """Start the shard; seconds until it listens (it listens only once recovered)."""
        t0 = time.monotonic()
        self.shard.up(600, interval_s=0.01)
        return time.monotonic() - t0

    def kill_shard(self) -> None:
        self.shard.kill()

    def redis_cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.redis_port), *args], capture_output=True, text=True,
                              check=True).stdout

    def redis_info(self, section: str) -> dict[str, str]:
        out = {}
        for line in self.redis_cli("INFO", section).splitlines():
            if ":" in line:
                k, v = line.strip().split(":", 1)
                out[k] = v
        return out

    def rewrite_aof(self) -> float:
        """BGREWRITEAOF and wait until it is done; seconds taken."""
        t0 = time.monotonic()
        self.redis_cli("BGREWRITEAOF")
        time.sleep(0.2)
        for _ in range(6000):
            info = self.redis_info("persistence")
            if info.get("aof_rewrite_in_progress") == "0" and info.get("aof_rewrite_scheduled") == "0":
                break
            time.sleep(0.1)
        return time.monotonic() - t0

    def stop(self) -> None:
        self.shard.stop(30)
        self.redis.stop(30)


class PrometheusProc:
    """Debian's ``prometheus`` on a data folder, scraping nothing."""

    def __init__(self, folder: Path, data: Path, remote_write_receiver: bool = False,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.data = data
        self.address = f"127.0.0.1:{free_port()}"
        self.config_path = folder / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump({"global": {"scrape_interval": "15s"}, "scrape_configs": []}))
        self.log_path = folder / "prometheus.log"
        argv = [prometheus_binary(), f"--config.file={self.config_path}", f"--storage.tsdb.path={self.data}",
                f"--web.listen-address={self.address}", "--log.level=info"]
        if remote_write_receiver:
            argv.append("--web.enable-remote-write-receiver")
        argv += extra_args
        self.child = Child("prometheus", argv, self.log_path, lambda: http_ok(f"http://{self.address}/-/ready"))

    def start(self) -> float:
        """Start it; seconds until ``/-/ready`` answers."""
        t0 = time.monotonic()
        try:
            self.child.up(600, interval_s=0.01)
        except ChildFailed as exc:
            raise RuntimeError(f"prometheus failed: {exc.log_tail[-2000:]}") from None
        return time.monotonic() - t0

    @property
    def pid(self) -> int:
        return self.child.pid

    def metric(self, name: str) -> float:
        return metric_sum(http_get(f"http://{self.address}/metrics").decode(), name)

    def kill(self) -> None:
        self.child.kill()

    def stop(self) -> None:
        self.child.stop(120)


def prometheus_blocks(data: Path) -> list[dict]:
    out = []
    for meta_path in sorted(data.glob("*/meta.json")):
        meta = json.loads(meta_path.read_text())
        block = meta_path.parent
        out.append({
            "ulid": meta["ulid"], "mint_ms": meta["minTime"], "maxt_ms": meta["maxTime"],
            "hours": round((meta["maxTime"] - meta["minTime"]) / 3.6e6, 2),
            "level": meta["compaction"]["level"], "sources": len(meta["compaction"].get("sources", [])),
            "series": meta["stats"]["numSeries"], "samples": meta["stats"]["numSamples"],
            "chunks": meta["stats"].get("numChunks"),
            "chunk_bytes": dir_bytes(block / "chunks"), "index_bytes": (block / "index").stat().st_size,
            "bytes": dir_bytes(block),
        })
    return out


# -- 1. bytes per sample on disk after compaction ------------------------------------------------------


def prometheus_disk(work: Path, om_path: Path, workload: dict, compaction_wait_s: float, during=None, log=print) -> dict:
    """promtool's blocks, Prometheus started on them for ``compaction_wait_s`` (its compactor's first run
    is a minute after start), then stopped and measured. ``during()`` runs while Prometheus waits."""
    folder = work / "prometheus-disk"
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    t0 = time.monotonic()
    out = subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om_path), str(data)],
                         capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"promtool failed: {out.stderr[-2000:]}")
    promtool_s = time.monotonic() - t0
    before = prometheus_blocks(data)
    log(f"[prometheus] promtool wrote {len(before)} blocks in {promtool_s:.1f}s; starting Prometheus on them "
        f"for {compaction_wait_s:.0f}s")
    prom = PrometheusProc(folder, data)
    started = time.monotonic()
    prom.start()
    during_result = None
    try:
        if during is not None:
            during_result = during()
        check = check_prometheus(prom, workload)
        time.sleep(max(0.0, compaction_wait_s - (time.monotonic() - started)))
        compactions = prom.metric("prometheus_tsdb_compactions_total")
        compaction_runs = prom.metric("prometheus_tsdb_compactions_triggered_total")
    finally:
        prom.stop()
    after = prometheus_blocks(data)
    compacted = [ln for ln in prom.log_path.read_text().splitlines() if "compact blocks" in ln.lower()]
    total = dir_bytes(data)
    blocks_bytes = sum(b["bytes"] for b in after)
    chunk_bytes = sum(b["chunk_bytes"] for b in after)
    n = workload["samples"]
    stored = sum(b["samples"] for b in after)
    return {
        "promtool_s": promtool_s, "blocks_before": before, "blocks_after": after,
        "compactions": compactions, "compactor_runs": compaction_runs, "compaction_log": compacted[-5:],
        "ran_for_s": time.monotonic() - started, "samples_stored": stored,
        "disk_bytes": total, "blocks_bytes": blocks_bytes, "chunk_bytes": chunk_bytes,
        "index_bytes": sum(b["index_bytes"] for b in after),
        "wal_bytes": dir_bytes(data / "wal") if (data / "wal").exists() else 0,
        "disk_bytes_per_sample": total / n, "blocks_bytes_per_sample": blocks_bytes / n,
        "chunk_bytes_per_sample": chunk_bytes / n, "check": check, "during": during_result,
    }


def shardmon_disk(work: Path, om_path: Path, workload: dict, log=print) -> dict:
    """``shardmon import openmetrics`` into one shard, Flush (with compaction), BGREWRITEAOF, measure."""
    from shardmon.shards.client import ShardClient

    sp = ShardProcs(work / "shardmon-disk", block_duration="2h")
    sp.start_redis()
    sp.start_shard()
    client = ShardClient(0, sp.address)
    try:
        cpu0, rcpu0, t0 = cpu_seconds(sp.shard.pid), cpu_seconds(sp.redis.pid), time.monotonic()
        out = subprocess.run(shardmon_argv("import", "openmetrics", str(om_path), config=sp.config_path),
                             capture_output=True, text=True, cwd=ROOT)
        if out.returncode:
            raise RuntimeError(f"shardmon import failed: {out.stderr[-2000:]}")
        import_s = time.monotonic() - t0
        import_cpu, import_redis_cpu = cpu_seconds(sp.shard.pid) - cpu0, cpu_seconds(sp.redis.pid) - rcpu0
        blocks_before = _shard_blocks(sp)
        log(f"[shardmon] imported in {import_s:.1f}s ({out.stdout.strip()}); {len(blocks_before)} blocks; flushing")
        t1 = time.monotonic()
        flushed = client.flush(timeout_s=1800)
        flush_s = time.monotonic() - t1
        blocks = _shard_blocks(sp)
        compaction_log = [ln.split(": ", 1)[-1] for ln in sp.log_path.read_text().splitlines() if "compacted" in ln]
        rewrite_s = sp.rewrite_aof()
        check = check_shardmon(client, workload)
        mem = sp.redis_info("memory")
        labels_bytes = _hash_value_bytes(sp, "shardmon:0:series")
        disk = dir_bytes(sp.redis_dir)
        n = workload["samples"]
        chunk_bytes = sum(b["size_bytes"] for b in blocks)
        return {
            "import_s": import_s, "import_output": out.stdout.strip(),
            "import_cpu_s": import_cpu, "import_redis_cpu_s": import_redis_cpu,
            "blocks_before_flush": len(blocks_before), "flush_blocks_written": flushed, "flush_s": flush_s,
            "compaction_log": compaction_log[-6:], "compactions": len(compaction_log), "blocks_after": blocks,
            "aof_rewrite_s": rewrite_s, "samples_stored": sum(b["num_samples"] for b in blocks),
            "disk_bytes": disk, "chunk_bytes": chunk_bytes, "series_labels_bytes": labels_bytes,
            "redis_used_memory": int(mem["used_memory"]), "redis_used_memory_dataset": int(mem.get("used_memory_dataset", 0)),
            "disk_bytes_per_sample": disk / n, "chunk_bytes_per_sample": chunk_bytes / n,
            "redis_used_memory_per_sample": int(mem["used_memory"]) / n,
            "aof_files": {p.name: p.stat().st_size for p in sp.redis_dir.rglob("*") if p.is_file()},
            "check": check,
        }
    finally:
        client.close()
        sp.stop()


def _shard_blocks(sp: ShardProcs) -> list[dict]:
    raw = sp.redis_cli("HGETALL", "shardmon:0:blocks").splitlines()
    metas = [json.loads(v) for v in raw[1::2]]
    for m in metas:
        m["hours"] = round((m["maxt_ms"] - m["mint_ms"]) / 3.6e6, 2)
        m.pop("backfill", None)
    return sorted(metas, key=lambda m: (m["mint_ms"], m["block_id"]))


def _hash_value_bytes(sp: ShardProcs, key: str) -> int:
    import redis

    r = redis.Redis(port=sp.redis_port)
    try:
        return sum(len(k) + len(v) for k, v in r.hscan_iter(key, count=10_000))
    finally:
        r.close()


def check_shardmon(client, workload: dict) -> dict:
    """Host 0's series read back from the shard: equal to the generated ones, bit for bit?"""
    from shardmon.model.labels import Matcher, MatchType

    want = {tuple(sorted(lb.items())): (ts, v) for lb, ts, v in workload["check"]}
    got = client.series([Matcher(MatchType.EQ, "instance", host_labels(0)["instance"])],
                        workload["mint_ms"], workload["maxt_ms"] + 1)
    bad = 0
    for s in got:
        w = want.get(tuple(sorted(s.labels.to_dict().items())))
        if w is None or not (np.array_equal(w[0], s.timestamps_ms) and np.array_equal(w[1].view(np.uint64), s.values.view(np.uint64))):
            bad += 1
    return {"series_checked": len(want), "series_read": len(got), "series_differing": bad,
            "equal": bad == 0 and len(got) == len(want)}


def check_prometheus(prom: PrometheusProc, workload: dict) -> dict:
    """Host 0's series read back from Prometheus (a range selector over the whole span)."""
    import urllib.parse

    span_s = math.ceil((workload["maxt_ms"] - workload["mint_ms"]) / 1000) + 60
    q = f'{{instance="{host_labels(0)["instance"]}"}}[{span_s}s]'
    at = (workload["maxt_ms"] + 1) / 1000
    body = json.loads(http_get(f"http://{prom.address}/api/v1/query?"
                               + urllib.parse.urlencode({"query": q, "time": f"{at:.3f}"}), 120))
    want = {tuple(sorted(lb.items())): (ts, v) for lb, ts, v in workload["check"]}
    got = body["data"]["result"] if body.get("status") == "success" else []
    bad = 0
    for s in got:
        w = want.get(tuple(sorted(s["metric"].items())))
        ts = np.array([round(float(t) * 1000) for t, _ in s["values"]], np.int64)
        vals = np.array([float(v) for _, v in s["values"]])
        if w is None or not (np.array_equal(w[0], ts) and np.array_equal(w[1].view(np.uint64), vals.view(np.uint64))):
            bad += 1
    return {"series_checked": len(want), "series_read": len(got), "series_differing": bad,
            "equal": bad == 0 and len(got) == len(want)}


# -- 2, 3, 4. head memory, ingest CPU, restart -----------------------------------------------------------


def shardmon_head(work: Path, data: HeadData, few: int, log=print) -> dict:
    """Head memory per series, ingest CPU per million samples, then restart time after SIGKILL."""
    from shardmon.shards.client import ShardClient

    sp = ShardProcs(work / "shardmon-head", block_duration="24h")  # nothing is cut from the head
    sp.start_redis()
    first_start_s = sp.start_shard()
    client = ShardClient(0, sp.address)
    batch = sample_batches(data)
    pid, rpid = sp.shard.pid, sp.redis.pid
    try:
        time.sleep(1.0)
        rss0, redis0 = rss_bytes(pid), int(sp.redis_info("memory")["used_memory"])
        cpu0, rcpu0, t0 = cpu_seconds(pid), cpu_seconds(rpid), time.monotonic()
        n_batches = len(data.batches())
        samples = 0
        marks = {}
        for r in range(data.rounds):
            for k in range(n_batches):
                resp = client.write(f"bench-{r}-{k}", batch(r, k), timeout_s=120)
                samples += resp.samples_appended
            if r + 1 == few:
                marks["few"] = (samples, cpu_seconds(pid), cpu_seconds(rpid), time.monotonic(), rss_bytes(pid),
                                int(sp.redis_info("memory")["used_memory"]))
                log(f"[shardmon] {data.n_series:,} series x {few} samples: RSS +{(marks['few'][4] - rss0) / 2**20:.0f} MiB")
        cpu1, rcpu1, t1 = cpu_seconds(pid), cpu_seconds(rpid), time.monotonic()
        rss1, redis1 = rss_bytes(pid), int(sp.redis_info("memory")["used_memory"])
        hwm_ingest = rss_bytes(pid, "VmHWM")
        expected = data.n_series * data.rounds
        log(f"[shardmon] {samples:,} samples in {t1 - t0:.1f}s: {(cpu1 - cpu0) / (samples / 1e6):.2f} CPU-s/M "
            f"(Redis {(rcpu1 - rcpu0) / (samples / 1e6):.2f}); RSS +{(rss1 - rss0) / 2**20:.0f} MiB")
        f = marks["few"]
        steady = samples - f[0]
        result = {
            "series": data.n_series, "samples_per_series": data.rounds, "samples_written": samples,
            "samples_expected": expected, "batches_per_round": n_batches, "batch_series": data.bounds[1],
            "fresh_start_s": first_start_s,
            "rss_before": rss0, "rss_after_few": f[4], "rss_after_all": rss1, "vmhwm_during_ingest": hwm_ingest,
            "few_samples_per_series": few,
            "head_bytes_per_series": (f[4] - rss0) / data.n_series,
            "head_bytes_per_series_full": (rss1 - rss0) / data.n_series,
            "head_bytes_per_sample_held": (rss1 - f[4]) / (data.n_series * (data.rounds - few)) if data.rounds > few else None,
            "redis_bytes_per_series": (f[5] - redis0) / data.n_series,
            "redis_bytes_per_series_full": (redis1 - redis0) / data.n_series,
            "redis_used_memory_before": redis0, "redis_used_memory_after": redis1,
            "ingest_s": t1 - t0, "samples_per_s": samples / (t1 - t0),
            "cpu_s": cpu1 - cpu0, "cpu_s_per_million": (cpu1 - cpu0) / (samples / 1e6),
            "redis_cpu_s_per_million": (rcpu1 - rcpu0) / (samples / 1e6),
            "cpu_s_per_million_steady": (cpu1 - f[1]) / (steady / 1e6) if steady else None,
            "redis_cpu_s_per_million_steady": (rcpu1 - f[2]) / (steady / 1e6) if steady else None,
            "cpu_s_per_million_new_series": (f[1] - cpu0) / (f[0] / 1e6),
        }
        # Restart: kill the shard with everything in the head (and in the WAL), start it again.
        client.close()
        sp.kill_shard()
        log_before = sp.log_path.read_text()
        restart_s = sp.start_shard()
        new_pid = sp.shard.pid
        restart_cpu = cpu_seconds(new_pid)
        hwm = rss_bytes(new_pid, "VmHWM")
        rss_ready = rss_bytes(new_pid)
        tail = sp.log_path.read_text()[len(log_before):]
        m = re.search(r"recovered (\d+) series, (\d+) blocks, (\d+) WAL entries \((\d+) samples\) in ([\d.]+)s", tail)
        wal_samples = int(m.group(4)) if m else expected
        time.sleep(1.0)
        result.update({
            "restart_s": restart_s, "restart_replay_s": float(m.group(5)) if m else None,
            "recovery_log": m.group(0) if m else None, "wal_samples": wal_samples,
            "restart_s_per_million": restart_s / (wal_samples / 1e6),
            "replay_s_per_million": float(m.group(5)) / (wal_samples / 1e6) if m else None,
            "restart_cpu_s": restart_cpu, "restart_cpu_s_per_million": restart_cpu / (wal_samples / 1e6),
            "rss_before_kill": rss1, "peak_rss_replay": hwm, "rss_when_listening": rss_ready,
            "rss_after_restart": rss_bytes(new_pid),
            "replay_peak_over_before": hwm / rss1 if rss1 else None,
        })
        log(f"[shardmon] restart: listening after {restart_s:.2f}s ({result['restart_s_per_million']:.2f} s per M "
            f"WAL samples); peak RSS {hwm / 2**20:.0f} MiB vs {rss1 / 2**20:.0f} MiB before the kill")
        return result
    finally:
        sp.stop()


def prometheus_head(work: Path, data: HeadData, few: int, log=print) -> dict:
    """The same series and samples remote-written to Prometheus; then SIGKILL and restart."""
    folder = work / "prometheus-head"
    prom = PrometheusProc(folder, folder / "data", remote_write_receiver=True)
    first_start_s = prom.start()
    bodies = [RemoteWriteBodies(data.labels[a:b]) for a, b in data.batches()]
    host, port = prom.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    headers = {"Content-Encoding": "snappy", "Content-Type": "application/x-protobuf",
               "X-Prometheus-Remote-Write-Version": "0.1.0"}
    try:
        # Check the hand-made body once with Shardmon's own remote-write decoder.
        from shardmon.ingest.remote_write import decode

        a, b = data.batches()[0]
        dec = decode(bodies[0].body(data.ts[a:b, 0], data.vals[a:b, 0])).batch
        assert dec.num_samples == b - a and np.array_equal(dec.values.view(np.uint64), data.vals[a:b, 0].view(np.uint64))
        time.sleep(1.0)
        pid = prom.pid
        rss0 = rss_bytes(pid)
        heap0 = prom.metric("go_memstats_heap_inuse_bytes")
        appended0 = prom.metric("prometheus_tsdb_head_samples_appended_total")
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        marks = {}
        for r in range(data.rounds):
            for k, (a, b) in enumerate(data.batches()):
                conn.request("POST", "/api/v1/write", bodies[k].body(data.ts[a:b, r], data.vals[a:b, r]), headers)
                resp = conn.getresponse()
                text = resp.read()
                if resp.status // 100 != 2:
                    raise RuntimeError(f"prometheus remote write: {resp.status} {text[:300]!r}")
            if r + 1 == few:
                marks["few"] = (cpu_seconds(pid), rss_bytes(pid), prom.metric("go_memstats_heap_inuse_bytes"),
                                prom.metric("prometheus_tsdb_head_samples_appended_total"))
        cpu1, t1 = cpu_seconds(pid), time.monotonic()
        rss1, heap1 = rss_bytes(pid), prom.metric("go_memstats_heap_inuse_bytes")
        samples = prom.metric("prometheus_tsdb_head_samples_appended_total") - appended0
        series = prom.metric("prometheus_tsdb_head_series")
        f = marks["few"]
        steady = samples - (f[3] - appended0)
        result = {
            "series": series, "samples_written": samples, "fresh_start_s": first_start_s,
            "rss_before": rss0, "rss_after_few": f[1], "rss_after_all": rss1,
            "head_bytes_per_series": (f[1] - rss0) / data.n_series,
            "head_bytes_per_series_full": (rss1 - rss0) / data.n_series,
            "head_bytes_per_sample_held": (rss1 - f[1]) / (data.n_series * (data.rounds - few)) if data.rounds > few else None,
            "heap_inuse_bytes_per_series": (f[2] - heap0) / data.n_series,
            "heap_inuse_bytes_per_series_full": (heap1 - heap0) / data.n_series,
            "ingest_s": t1 - t0, "samples_per_s": samples / (t1 - t0), "cpu_s": cpu1 - cpu0,
            "cpu_s_per_million": (cpu1 - cpu0) / (samples / 1e6),
            "cpu_s_per_million_steady": (cpu1 - f[0]) / (steady / 1e6) if steady else None,
            "cpu_s_per_million_new_series": (f[0] - cpu0) / ((f[3] - appended0) / 1e6),
        }
        log(f"[prometheus] {samples:,.0f} samples in {t1 - t0:.1f}s: {result['cpu_s_per_million']:.2f} CPU-s/M; "
            f"RSS +{(rss1 - rss0) / 2**20:.0f} MiB")
        conn.close()
        prom.kill()
        log_len = len(prom.log_path.read_text())
        restart_s = prom.start()
        restart_cpu = cpu_seconds(prom.pid)
        hwm = rss_bytes(prom.pid, "VmHWM")
        rss_ready = rss_bytes(prom.pid)
        tail = prom.log_path.read_text()[log_len:]
        m = re.search(r"total_replay_duration=(\S+)", tail)
        replay_s = _go_duration_s(m.group(1)) if m else None
        result.update({
            "restart_s": restart_s, "restart_replay": m.group(1) if m else None, "wal_samples": samples,
            "restart_s_per_million": restart_s / (samples / 1e6), "restart_replay_s": replay_s,
            "restart_cpu_s": restart_cpu, "restart_cpu_s_per_million": restart_cpu / (samples / 1e6),
            "replay_s_per_million": replay_s / (samples / 1e6) if replay_s is not None else None, "rss_before_kill": rss1,
            "peak_rss_replay": hwm, "rss_when_listening": rss_ready,
            "replay_peak_over_before": hwm / rss1 if rss1 else None,
        })
        log(f"[prometheus] restart: ready after {restart_s:.2f}s; peak RSS {hwm / 2**20:.0f} MiB vs "
            f"{rss1 / 2**20:.0f} MiB before the kill")
        return result
    finally:
        conn.close()
        prom.stop()


def _go_duration_s(text: str) -> float:
    """Seconds of a Go duration string as Prometheus logs it (``2.62s``, ``411.99µs``, ``1m3.5s``)."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}
    return sum(float(v) * units[u] for v, u in re.findall(r"([\d.]+)(h|ms|m|µs|us|ns|s)", text))

