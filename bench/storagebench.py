"""Storage benchmark: Shardmon's shard against Debian's Prometheus on the same generated data.

    bench/run --storage                       # 10 node_exporter-like hosts over 2h15m; 100k series in the head
    bench/run --storage --smoke               # a tiny run of the same steps (about 90 s)

Four figures, each measured on both systems in the same run:

1. **Bytes per sample on disk after compaction.** node_exporter-like series of a few dozen hosts over
   2h15m at a 15 s interval (counters with two decimals, byte and packet counters, memory gauges in
   pages, filesystem sizes, load averages, temperatures, Go durations, a classic histogram, the scrape's
   own series; scrape timestamps 0-3 ms late, now and then more) are written once as an OpenMetrics
   file with timestamps. Prometheus gets it with ``promtool tsdb create-blocks-from openmetrics``, is
   started on the blocks and left running long enough for its compactor to run once, then stopped;
   Shardmon gets it with ``shardmon import openmetrics`` into one shard on its own Redis, then a
   ``Flush`` (which runs the shard's retention and compaction) and a ``BGREWRITEAOF``. Bytes are those
   of the whole Prometheus data folder and of the Redis data folder, over the samples in the file.
   A few series are read back from both and compared with the generated ones, bit for bit.
2. **Head memory per active series.** A fresh shard (and a fresh Prometheus with its remote-write
   receiver) gets ``--head-series`` series, a few samples each, in batches of a few thousand samples;
   the process's RSS growth over the series count. Redis's ``used_memory`` growth is reported apart.
3. **Ingest CPU-seconds per million samples.** The same series written on for ``--head-samples``
   samples each: user + system CPU of the shard process (Redis apart), and of Prometheus, over the
   samples written.
4. **Restart time per million WAL samples.** With all those samples in the head and the WAL, the
   process is killed (SIGKILL) and started again: the time until it listens (Shardmon) or answers
   ``/-/ready`` (Prometheus), over the millions of samples replayed; and the peak RSS of the restarted
   process (VmHWM) against the RSS before the kill.

Results go to ``bench/results/<date>/storage-<label>/`` (``result.json``, ``report.md``).
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import yaml

from bench import report
from bench.procstat import _stat
from bench.systems import dir_bytes, free_port, http_get

ROOT = Path(__file__).resolve().parents[1]
INTERVAL_MS = 15_000
SIX_HOURS_MS = 6 * 3_600_000

# Published figures for node_exporter-like data backfilled over 2 hours (the storage issue's reference).
REFERENCE_BYTES_PER_SAMPLE = {"prometheus 2.42": 2.1, "victoriametrics 1.79": 0.7}
TARGETS = {
    "disk_bytes_per_sample": ("< Prometheus and < 0.7 (VictoriaMetrics)", None),
    "head_bytes_per_series": ("< 1 KiB", 1024.0),
}


# -- the workload ------------------------------------------------------------------------------------


class Family(NamedTuple):
    """One metric family of one host: its name, OpenMetrics type, and series (sample name, labels, values)."""

    name: str
    type: str
    series: list[tuple[str, dict[str, str], np.ndarray]]


CPU_MODES = (("idle", 0.82), ("user", 0.09), ("system", 0.04), ("iowait", 0.01), ("irq", 0.0),
             ("softirq", 0.004), ("steal", 0.0), ("nice", 0.0005))
NET_DEVICES = (("eth0", 2e5), ("eth1", 3e3), ("lo", 4e4), ("docker0", 0.0))
DISKS = (("sda", 4e4), ("nvme0n1", 3e5))
FILESYSTEMS = (("/dev/sda1", "/", "ext4"), ("/dev/nvme0n1p1", "/var/lib", "xfs"), ("tmpfs", "/run", "tmpfs"))
HIST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _cents_counter(rng, n: int, per_s: float, sec: float) -> np.ndarray:
    """A CPU-seconds-like counter: increments in hundredths with noise, 2 decimals."""
    mean = per_s * sec * 100
    inc = np.maximum(0, np.round(rng.normal(mean, 0.15 * mean + 0.6, n))).astype(np.int64)
    inc[0] = 0
    return (int(rng.integers(10_000, 10**9)) + np.cumsum(inc)) / 100.0


def _int_counter(rng, n: int, per_scrape: float, start_max: float = 1e12, unit: int = 1) -> np.ndarray:
    """Bytes, packets, operations: random integer increments (Poisson), in multiples of ``unit``."""
    inc = rng.poisson(per_scrape, n).astype(np.int64) * unit if per_scrape > 0 else np.zeros(n, np.int64)
    inc[0] = 0
    return ((int(rng.integers(0, start_max)) // unit) * unit + np.cumsum(inc)).astype(np.float64)


def _rare_counter(rng, n: int, p: float) -> np.ndarray:
    """Errors and drops: mostly flat, up by one now and then."""
    inc = (rng.random(n) < p).astype(np.int64)
    inc[0] = 0
    return (int(rng.integers(0, 50)) + np.cumsum(inc)).astype(np.float64)


def _stepping(rng, n: int, base: int, unit: int, p: float, max_step: int) -> np.ndarray:
    """A gauge in multiples of ``unit`` that changes by a random step with probability ``p`` per scrape."""
    steps = np.where(rng.random(n) < p, rng.integers(-max_step, max_step + 1, n), 0)
    steps[0] = 0
    return (np.maximum(1, base + np.cumsum(steps)) * unit).astype(np.float64)


def _walk(rng, n: int, start: int, step: int, decimals: int, lo: int = 0) -> np.ndarray:
    """A random walk of integers shown with ``decimals`` decimals (load averages, temperatures)."""
    x = np.maximum(lo, start + np.cumsum(rng.integers(-step, step + 1, n)))
    return x / 10.0**decimals


def _durations(rng, n: int, lo_ns: int, hi_ns: int) -> np.ndarray:
    """Go durations in seconds: nanoseconds / 1e9."""
    return rng.integers(lo_ns, hi_ns, n) / 1e9


def scrape_timestamps(rng, n: int, start_ms: int) -> np.ndarray:
    """A host's scrape times: a fixed offset in the interval, then 0-3 ms late, 2% of scrapes 5-60 ms."""
    grid = start_ms + int(rng.integers(0, INTERVAL_MS)) + np.arange(n, dtype=np.int64) * INTERVAL_MS
    late = rng.choice(np.array([0, 1, 2, 3]), size=n, p=[0.25, 0.45, 0.2, 0.1])
    late = late + (rng.random(n) < 0.02) * rng.integers(5, 60, n)
    return grid + late


def node_host(seed: int, host: int, n: int, start_ms: int) -> tuple[np.ndarray, list[Family]]:
    """``n`` scrapes of one node_exporter-like host: (timestamps ms, families), about 180 series."""
    rng = np.random.default_rng([seed, host])
    ts = scrape_timestamps(rng, n, start_ms)
    sec = INTERVAL_MS / 1000
    fams: list[Family] = []
    cpus = 8
    fams.append(Family("node_cpu_seconds", "counter", [
        ("node_cpu_seconds_total", {"cpu": str(c), "mode": m}, _cents_counter(rng, n, share * rng.uniform(0.5, 1.5), sec))
        for c in range(cpus) for m, share in CPU_MODES]))
    for name, kind in (("receive_bytes", "bytes"), ("transmit_bytes", "bytes"), ("receive_packets", "packets"),
                       ("transmit_packets", "packets"), ("receive_errs", "errs"), ("receive_drop", "errs")):
        series = []
        for dev, rate in NET_DEVICES:
            if kind == "bytes":
                v = _int_counter(rng, n, rate * sec * rng.uniform(0.3, 2))
            elif kind == "packets":
                v = _int_counter(rng, n, rate * sec / 700 * rng.uniform(0.3, 2), 1e9)
            else:
                v = _rare_counter(rng, n, 0.01 if rate else 0.0)
            series.append((f"node_network_{name}_total", {"device": dev}, v))
        fams.append(Family(f"node_network_{name}", "counter", series))
    for name, kind in (("read_bytes", "bytes"), ("written_bytes", "bytes"), ("reads_completed", "ops"),
                       ("writes_completed", "ops"), ("io_time_seconds", "ms")):
        series = []
        for dev, rate in DISKS:
            if kind == "bytes":
                v = _int_counter(rng, n, rate * sec / 512 * rng.uniform(0.2, 3), 1e12, unit=512)
            elif kind == "ops":
                v = _int_counter(rng, n, rate * sec / 16_384 * rng.uniform(0.2, 3), 1e9)
            else:
                v = _int_counter(rng, n, 0.02 * sec * 1000 * rng.uniform(0.2, 3), 1e10) / 1000.0
            series.append((f"node_disk_{name}_total", {"device": dev}, v))
        fams.append(Family(f"node_disk_{name}", "counter", series))
    total_kb = int(rng.choice([16, 32, 64])) * 1024 * 1024 - int(rng.integers(100_000, 300_000))
    for name, frac, unit, p, step in (
        ("MemTotal", 1.0, 1024, 0.0, 0), ("MemFree", 0.3, 1024, 0.6, 3000), ("MemAvailable", 0.6, 1024, 0.6, 3000),
        ("Buffers", 0.02, 1024, 0.2, 40), ("Cached", 0.3, 1024, 0.5, 2000), ("Active", 0.25, 1024, 0.4, 1500),
        ("Inactive", 0.2, 1024, 0.3, 800), ("Dirty", 0.001, 4096, 0.9, 200), ("Slab", 0.03, 1024, 0.2, 50),
        ("SwapTotal", 0.1, 1024, 0.0, 0), ("SwapFree", 0.1, 1024, 0.02, 10), ("Shmem", 0.01, 4096, 0.1, 20),
    ):
        base = int(total_kb * frac * 1024 / unit)
        v = _stepping(rng, n, base, unit, p, step)
        fams.append(Family(f"node_memory_{name}_bytes", "gauge", [(f"node_memory_{name}_bytes", {}, v)]))
    fs_sizes = [int(rng.integers(5e6, 5e8)) for _ in FILESYSTEMS]  # in 4096-byte blocks
    for name, kind in (("size_bytes", "size"), ("avail_bytes", "free"), ("free_bytes", "free"),
                       ("files", "files"), ("files_free", "files_free")):
        series = []
        for (dev, mnt, fstype), blocks in zip(FILESYSTEMS, fs_sizes):
            labels = {"device": dev, "mountpoint": mnt, "fstype": fstype}
            if kind == "size":
                v = np.full(n, blocks * 4096.0)
            elif kind == "free":
                v = _stepping(rng, n, int(blocks * rng.uniform(0.2, 0.8)), 4096, 0.3, 300)
            elif kind == "files":
                v = np.full(n, float(blocks // 4))
            else:
                v = _stepping(rng, n, int(blocks // 4 * rng.uniform(0.5, 0.95)), 1, 0.1, 20)
            series.append((f"node_filesystem_{name}", labels, v))
        fams.append(Family(f"node_filesystem_{name}", "gauge", series))
    load = int(rng.integers(10, 400))
    for name, step in (("load1", 12), ("load5", 4), ("load15", 2)):
        fams.append(Family(f"node_{name}", "gauge", [(f"node_{name}", {}, _walk(rng, n, load, step, 2))]))
    fams.append(Family("node_hwmon_temp_celsius", "gauge", [
        ("node_hwmon_temp_celsius", {"chip": "platform_coretemp_0", "sensor": f"temp{i}"}, _walk(rng, n, 45, 1, 0, 20))
        for i in range(1, 4)] + [
        ("node_hwmon_temp_celsius", {"chip": "acpitz", "sensor": "temp1"}, _walk(rng, n, 420, 2, 1, 200)),
        ("node_hwmon_temp_celsius", {"chip": "nvme_nvme0", "sensor": "temp1"}, _walk(rng, n, 38_850, 250, 3, 20_000)),
    ]))
    for name, rate in (("context_switches", 4000.0), ("intr", 2500.0), ("forks", 3.0)):
        fams.append(Family(f"node_{name}", "counter",
                           [(f"node_{name}_total", {}, _int_counter(rng, n, rate * sec * rng.uniform(0.3, 2), 1e10))]))
    fams.append(Family("node_procs_running", "gauge",
                       [("node_procs_running", {}, rng.poisson(2, n).astype(np.float64) + 1)]))
    fams.append(Family("node_procs_blocked", "gauge",
                       [("node_procs_blocked", {}, (rng.random(n) < 0.05).astype(np.float64))]))
    # The host's clock when scraped: float seconds from nanoseconds, a value that never repeats.
    ns = ts * 1_000_000 + rng.integers(200_000, 3_000_000, n)
    fams.append(Family("node_time_seconds", "gauge", [("node_time_seconds", {}, ns.astype(np.float64) / 1e9)]))
    fams.append(Family("node_scrape_collector_duration_seconds", "gauge", [
        ("node_scrape_collector_duration_seconds", {"collector": c}, _durations(rng, n, 20_000, 3_000_000))
        for c in ("cpu", "diskstats", "filesystem", "hwmon", "loadavg", "meminfo", "netdev", "time")]))
    # go_gc_duration_seconds (a summary): quantiles that change when a GC ran, and its sum and count.
    gcs = (rng.random(n) < 0.3).astype(np.int64)
    gcs[0] = 0
    q_series = []
    for q in ("0", "0.25", "0.5", "0.75", "1"):
        fresh = _durations(rng, n, 20_000 + int(float(q) * 80_000), 40_000 + int(float(q) * 400_000))
        held = fresh[np.maximum.accumulate(np.where(gcs > 0, np.arange(n), 0))]
        q_series.append(("go_gc_duration_seconds", {"quantile": q}, held))
    gc_count = int(rng.integers(100, 10_000)) + np.cumsum(gcs)
    gc_sum = float(gc_count[0]) * 8.1e-5 + np.cumsum(gcs * _durations(rng, n, 30_000, 200_000))
    q_series += [("go_gc_duration_seconds_sum", {}, gc_sum), ("go_gc_duration_seconds_count", {}, gc_count.astype(float))]
    fams.append(Family("go_gc_duration_seconds", "summary", q_series))
    fams.append(Family("go_goroutines", "gauge", [("go_goroutines", {}, _walk(rng, n, 9, 1, 0, 6))]))
    fams.append(Family("go_memstats_alloc_bytes", "gauge",
                       [("go_memstats_alloc_bytes", {}, rng.integers(2_000_000, 9_000_000, n).astype(np.float64))]))
    fams.append(Family("go_memstats_heap_inuse_bytes", "gauge",
                       [("go_memstats_heap_inuse_bytes", {}, _stepping(rng, n, 600, 8192, 0.7, 40))]))
    fams.append(Family("process_resident_memory_bytes", "gauge",
                       [("process_resident_memory_bytes", {}, _stepping(rng, n, 5000, 4096, 0.8, 30))]))
    fams.append(Family("process_cpu_seconds", "counter",
                       [("process_cpu_seconds_total", {}, _cents_counter(rng, n, 0.002, sec))]))
    fams.append(Family("process_open_fds", "gauge", [("process_open_fds", {}, _stepping(rng, n, 10, 1, 0.05, 1))]))
    # A classic histogram of the exporter's own HTTP requests (the scrapes).
    reqs = rng.poisson(1.2, n)
    reqs[0] = 0
    obs = rng.lognormal(math.log(0.012), 0.9, int(reqs.sum()))
    which = np.repeat(np.arange(n), reqs)
    per = np.zeros((n, len(HIST_BUCKETS) + 1), np.int64)
    np.add.at(per, (which, np.searchsorted(np.array(HIST_BUCKETS), obs)), 1)
    cum = np.cumsum(np.cumsum(per, axis=0), axis=1)
    start = int(rng.integers(1000, 100_000))
    hist = []
    for i, le in enumerate((*HIST_BUCKETS, math.inf)):
        base = int(start * min(1.0, 0.2 + 0.4 * i))
        le_s = "+Inf" if le == math.inf else repr(le)
        hist.append(("promhttp_request_duration_seconds_bucket", {"handler": "/metrics", "le": le_s},
                     (base + cum[:, i]).astype(np.float64)))
    obs_sum = np.zeros(n)
    np.add.at(obs_sum, which, obs)
    hist.append(("promhttp_request_duration_seconds_sum", {"handler": "/metrics"}, start * 0.012 + np.cumsum(obs_sum)))
    hist.append(("promhttp_request_duration_seconds_count", {"handler": "/metrics"}, (start + cum[:, -1]).astype(float)))
    fams.append(Family("promhttp_request_duration_seconds", "histogram", hist))
    fams += _quiet_families(rng, n, sec, cpus, int(ts[0]) // 1000)
    # The series a Prometheus scrape adds by itself.
    n_series = sum(len(f.series) for f in fams)
    added = np.zeros(n)
    added[0] = n_series
    fams += [
        Family("up", "gauge", [("up", {}, np.ones(n))]),
        Family("scrape_duration_seconds", "gauge", [("scrape_duration_seconds", {}, _durations(rng, n, 3_000_000, 25_000_000))]),
        Family("scrape_samples_scraped", "gauge", [("scrape_samples_scraped", {}, np.full(n, float(n_series)))]),
        Family("scrape_samples_post_metric_relabeling", "gauge",
               [("scrape_samples_post_metric_relabeling", {}, np.full(n, float(n_series)))]),
        Family("scrape_series_added", "gauge", [("scrape_series_added", {}, added)]),
    ]
    return ts, fams


def _quiet_families(rng, n: int, sec: float, cpus: int, now_s: int) -> list[Family]:
    """The rest of a node_exporter's output, much of it constant or changing now and then: info series,
    link settings, zero counters of features not in use, kernel tables, netstat and sockstat, softnet
    and schedstat per CPU, timex, vmstat, pressure, Go runtime and process series. About half of a real
    node_exporter's series are of this kind."""
    const = lambda v: np.full(n, float(v))  # noqa: E731
    fams = [Family("node_cpu_guest_seconds", "counter", [
        ("node_cpu_guest_seconds_total", {"cpu": str(c), "mode": m}, const(0)) for c in range(cpus) for m in ("nice", "user")])]
    link = (("up", 1), ("mtu_bytes", 1500), ("speed_bytes", 1.25e9), ("carrier", 1), ("transmit_queue_length", 1000),
            ("flags", 4099), ("iface_id", 2), ("dormant", 0), ("protocol_type", 1), ("net_dev_group", 0))
    for name, v in link:
        fams.append(Family(f"node_network_{name}", "gauge", [
            (f"node_network_{name}", {"device": dev}, const(v if dev != "lo" or name != "speed_bytes" else 0))
            for dev, _ in NET_DEVICES]))
    fams.append(Family("node_network_info", "gauge", [
        ("node_network_info", {"device": dev, "operstate": "up", "address": f"02:42:ac:11:00:{i:02x}",
                               "broadcast": "ff:ff:ff:ff:ff:ff", "duplex": "full"}, const(1))
        for i, (dev, _) in enumerate(NET_DEVICES)]))
    for name in ("transmit_errs", "transmit_drop", "receive_fifo", "transmit_fifo", "receive_frame",
                 "receive_compressed", "transmit_colls", "receive_multicast"):
        p = 0.02 if name in ("receive_multicast", "transmit_drop") else 0.0
        fams.append(Family(f"node_network_{name}", "counter", [
            (f"node_network_{name}_total", {"device": dev}, _rare_counter(rng, n, p if rate else 0.0))
            for dev, rate in NET_DEVICES]))
    for name, kind in (("read_time_seconds", "ms"), ("write_time_seconds", "ms"), ("discards_completed", "zero"),
                       ("discarded_sectors", "zero"), ("flush_requests", "ops"), ("io_now", "now")):
        series = []
        for dev, _ in DISKS:
            if kind == "ms":
                v = _int_counter(rng, n, 0.01 * sec * 1000 * rng.uniform(0.2, 3), 1e10) / 1000.0
            elif kind == "ops":
                v = _int_counter(rng, n, 0.3 * sec, 1e7)
            elif kind == "now":
                v = (rng.random(n) < 0.08).astype(np.float64)
            else:
                v = const(0)
            series.append((f"node_disk_{name}" + ("" if kind == "now" else "_total"), {"device": dev}, v))
        fams.append(Family(f"node_disk_{name}", "gauge" if kind == "now" else "counter", series))
    for name in ("readonly", "device_error"):
        fams.append(Family(f"node_filesystem_{name}", "gauge", [
            (f"node_filesystem_{name}", {"device": d, "mountpoint": m, "fstype": f}, const(0)) for d, m, f in FILESYSTEMS]))
    for name, v in (("HugePages_Total", 0), ("HugePages_Free", 0), ("HugePages_Rsvd", 0), ("HugePages_Surp", 0),
                    ("Hugepagesize_bytes", 2097152), ("VmallocTotal_bytes", 35184372087808), ("CommitLimit_bytes", None),
                    ("Mlocked_bytes", 0), ("Writeback_bytes", None)):
        v = const(v) if v is not None else _stepping(rng, n, int(rng.integers(1e6, 4e6)), 4096, 0.02, 3)
        fams.append(Family(f"node_memory_{name}", "gauge", [(f"node_memory_{name}", {}, v)]))
    for name, p, step in (("Committed_AS_bytes", 0.7, 2000), ("VmallocUsed_bytes", 0.1, 20), ("PageTables_bytes", 0.5, 30),
                          ("KernelStack_bytes", 0.3, 8), ("Mapped_bytes", 0.4, 200), ("AnonPages_bytes", 0.8, 2000)):
        fams.append(Family(f"node_memory_{name}", "gauge",
                           [(f"node_memory_{name}", {}, _stepping(rng, n, int(rng.integers(1e4, 1e6)), 4096, p, step))]))
    for name, rate in (("Tcp_InSegs", 80.0), ("Tcp_OutSegs", 75.0), ("Tcp_ActiveOpens", 0.5), ("Tcp_PassiveOpens", 0.3),
                       ("Tcp_RetransSegs", 0.05), ("Udp_InDatagrams", 6.0), ("Udp_OutDatagrams", 6.0), ("Udp_NoPorts", 0.01),
                       ("Udp_InErrors", 0.0), ("Icmp_InMsgs", 0.02), ("Icmp_OutMsgs", 0.02), ("TcpExt_ListenDrops", 0.0),
                       ("TcpExt_ListenOverflows", 0.0), ("TcpExt_SyncookiesFailed", 0.0), ("TcpExt_SyncookiesRecv", 0.0),
                       ("TcpExt_TCPTimeouts", 0.01), ("Ip_Forwarding", None), ("Tcp_CurrEstab", None)):
        if name == "Ip_Forwarding":
            v = const(1)
        elif name == "Tcp_CurrEstab":
            v = _stepping(rng, n, int(rng.integers(10, 200)), 1, 0.3, 3)
        else:
            v = _int_counter(rng, n, rate * sec, 1e8) if rate else const(int(rng.integers(0, 3)))
        fams.append(Family(f"node_netstat_{name}", "gauge" if name in ("Ip_Forwarding", "Tcp_CurrEstab") else "counter",
                           [(f"node_netstat_{name}", {}, v)]))
    for name, base, p in (("TCP_alloc", 120, 0.3), ("TCP_inuse", 60, 0.3), ("TCP_orphan", 0, 0.02), ("TCP_tw", 40, 0.5),
                          ("TCP_mem", 8, 0.2), ("UDP_inuse", 6, 0.05), ("UDP_mem", 4, 0.1), ("sockets_used", 400, 0.4),
                          ("FRAG_inuse", 0, 0.0), ("RAW_inuse", 0, 0.0), ("TCP6_inuse", 5, 0.05)):
        fams.append(Family(f"node_sockstat_{name}", "gauge",
                           [(f"node_sockstat_{name}", {}, _stepping(rng, n, base, 1, p, 3) if p else const(base))]))
    fams.append(Family("node_sockstat_TCP_mem_bytes", "gauge",
                       [("node_sockstat_TCP_mem_bytes", {}, _stepping(rng, n, 8, 4096, 0.2, 3))]))
    for name, rate in (("processed", 60.0), ("dropped", 0.0), ("times_squeezed", 0.001)):
        fams.append(Family(f"node_softnet_{name}", "counter", [
            (f"node_softnet_{name}_total", {"cpu": str(c)},
             _int_counter(rng, n, rate * sec, 1e8) if rate >= 1 else _rare_counter(rng, n, rate * sec))
            for c in range(cpus)]))
    for name in ("running_seconds", "waiting_seconds", "timeslices"):
        series = []
        for c in range(cpus):
            if name == "timeslices":
                v = _int_counter(rng, n, 300 * sec, 1e9)
            else:  # nanoseconds counters shown in seconds
                v = _int_counter(rng, n, (0.15 if name == "running_seconds" else 0.01) * sec * 1e9, 1e15) / 1e9
            series.append((f"node_schedstat_{name}_total", {"cpu": str(c)}, v))
        fams.append(Family(f"node_schedstat_{name}", "counter", series))
    for name, v in (("offset_seconds", "offset"), ("frequency_adjustment_ratio", "freq"), ("maxerror_seconds", "err"),
                    ("estimated_error_seconds", 0.0005), ("status", 8193), ("sync_status", 1), ("tai_offset_seconds", 0),
                    ("tick_seconds", 0.01), ("loop_time_constant", 7), ("pps_frequency_hertz", 0),
                    ("pps_jitter_seconds", 0), ("pps_shift_seconds", 0), ("pps_stability_hertz", 0)):
        if v == "offset":
            vals = rng.integers(-900_000, 900_000, n) / 1e9
        elif v == "freq":
            vals = 1.0 + _stepping(rng, n, int(rng.integers(-2000, 2000)), 1, 0.05, 3) * 1.52587890625e-11
        elif v == "err":
            vals = _stepping(rng, n, 200_000, 1, 0.9, 2000) / 1e6
        else:
            vals = const(v)
        fams.append(Family(f"node_timex_{name}", "gauge", [(f"node_timex_{name}", {}, vals)]))
    for name, rate in (("pgfault", 3000.0), ("pgmajfault", 0.2), ("pgpgin", 40.0), ("pgpgout", 300.0), ("pswpin", 0.0),
                       ("pswpout", 0.0), ("oom_kill", 0.0)):
        fams.append(Family(f"node_vmstat_{name}", "counter",
                           [(f"node_vmstat_{name}", {}, _int_counter(rng, n, rate * sec, 1e10) if rate else const(0))]))
    for name, rate in (("cpu_waiting", 0.02), ("io_waiting", 0.005), ("io_stalled", 0.004), ("memory_waiting", 0.0),
                       ("memory_stalled", 0.0)):  # microsecond counters shown in seconds
        v = _int_counter(rng, n, rate * sec * 1e6, 1e9) / 1e6 if rate else const(0)
        fams.append(Family(f"node_pressure_{name}_seconds", "counter", [(f"node_pressure_{name}_seconds_total", {}, v)]))
    boot = float(now_s - int(rng.integers(86_400, 200 * 86_400)))
    for name, v in (("node_boot_time_seconds", boot), ("node_entropy_pool_size_bits", 256), ("node_filefd_maximum", 9.2e18),
                    ("node_nf_conntrack_entries_limit", 262144), ("node_time_zone_offset_seconds", 0),
                    ("node_textfile_scrape_error", 0), ("process_max_fds", 1048576), ("process_start_time_seconds", boot + 41.37),
                    ("process_virtual_memory_max_bytes", 1.8446744073709552e19), ("go_memstats_lookups_total", 0),
                    ("promhttp_metric_handler_requests_in_flight", 1)):
        fams.append(Family(name.removesuffix("_total"), "counter" if name.endswith("_total") else "gauge",
                           [(name, {}, const(v))]))
    for name, labels in (("node_uname_info", {"machine": "x86_64", "release": "6.1.0-13-amd64", "sysname": "Linux"}),
                         ("node_os_info", {"id": "debian", "version_id": "12", "name": "Debian GNU/Linux"}),
                         ("node_exporter_build_info", {"version": "1.5.0", "goversion": "go1.19.8"}),
                         ("go_info", {"version": "go1.19.8"}), ("node_time_clocksource_current_info", {"clocksource": "kvm-clock"})):
        fams.append(Family(name, "gauge", [(name, labels, const(1))]))
    fams.append(Family("node_scrape_collector_success", "gauge", [
        ("node_scrape_collector_success", {"collector": c}, const(1))
        for c in ("cpu", "diskstats", "filesystem", "hwmon", "loadavg", "meminfo", "netdev", "time")]))
    for name, p, step, unit in (("node_entropy_available_bits", 0.05, 2, 1), ("node_filefd_allocated", 0.4, 8, 1),
                                ("node_nf_conntrack_entries", 0.6, 10, 1), ("go_threads", 0.01, 1, 1),
                                ("go_memstats_sys_bytes", 0.02, 20, 65536), ("go_memstats_heap_idle_bytes", 0.6, 100, 8192),
                                ("go_memstats_heap_released_bytes", 0.3, 50, 8192), ("go_memstats_stack_inuse_bytes", 0.05, 2, 32768),
                                ("go_memstats_mspan_inuse_bytes", 0.3, 10, 136), ("process_virtual_memory_bytes", 0.02, 5, 4096)):
        fams.append(Family(name, "gauge", [(name, {}, _stepping(rng, n, int(rng.integers(200, 5000)), unit, p, step))]))
    for name, rate in (("go_memstats_mallocs_total", 900.0), ("go_memstats_frees_total", 880.0)):
        fams.append(Family(name.removesuffix("_total"), "counter", [(name, {}, _int_counter(rng, n, rate * sec, 1e8))]))
    fams.append(Family("promhttp_metric_handler_requests", "counter", [
        ("promhttp_metric_handler_requests_total", {"code": "200"}, _int_counter(rng, n, 1.0, 1e5)),
        ("promhttp_metric_handler_requests_total", {"code": "500"}, const(0)),
        ("promhttp_metric_handler_requests_total", {"code": "503"}, const(0))]))
    fams.append(Family("promhttp_metric_handler_errors", "counter", [
        ("promhttp_metric_handler_errors_total", {"cause": c}, const(0)) for c in ("encoding", "gathering")]))
    return fams


def host_labels(host: int) -> dict[str, str]:
    return {"instance": f"node-{host:03d}:9100", "job": "node"}


def om_seconds(ts_ms: np.ndarray) -> list[str]:
    """Timestamps as OpenMetrics seconds that both readers turn back into exactly ``ts_ms``: Prometheus
    truncates ``seconds * 1000`` to an integer, Shardmon rounds it, so each is the shortest decimal of
    the smallest double whose product by 1000 is not below the millisecond."""
    x = ts_ms / 1000.0
    for _ in range(8):
        low = x * 1000.0 < ts_ms
        if not low.any():
            break
        x[low] = np.nextafter(x[low], np.inf)
    out = [repr(v) for v in x.tolist()]
    back = np.array([float(s) for s in out]) * 1000.0
    assert (back.astype(np.int64) == ts_ms).all() and (np.round(back).astype(np.int64) == ts_ms).all()
    return out


def _label_text(labels: dict[str, str]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in labels.items())


def write_openmetrics(path: Path, hosts: int, duration_ms: int, start_ms: int, seed: int = 1) -> dict:
    """Write the storage workload to ``path`` (families grouped, each series' samples in time order,
    ``# EOF`` at the end). Returns its summary and, for checking read-backs, host 0's series."""
    n = duration_ms // INTERVAL_MS
    per_host = [node_host(seed, h, n, start_ms) for h in range(hosts)]
    stamps = [om_seconds(ts) for ts, _ in per_host]
    series = samples = changing = constant = 0
    kinds: dict[str, int] = {}
    check: list[tuple[dict[str, str], np.ndarray, np.ndarray]] = []
    with open(path, "w") as fh:
        for f_idx, fam in enumerate(per_host[0][1]):
            fh.write(f"# TYPE {fam.name} {fam.type}\n")
            for h, (ts, fams) in enumerate(per_host):
                hl = host_labels(h)
                for sample_name, labels, values in fams[f_idx].series:
                    prefix = f"{sample_name}{{{_label_text({**labels, **hl})}}} "
                    fh.write("".join([f"{prefix}{v!r} {t}\n" for v, t in zip(values.tolist(), stamps[h])]))
                    series += 1
                    samples += n
                    moved = int(np.count_nonzero(values[1:] != values[:-1]))
                    changing += moved
                    constant += moved == 0
                    kinds[fam.type] = kinds.get(fam.type, 0) + 1
                    if h == 0:
                        check.append(({"__name__": sample_name, **labels, **hl}, ts, values))
        fh.write("# EOF\n")
    mint = min(int(ts[0]) for ts, _ in per_host)
    maxt = max(int(ts[-1]) for ts, _ in per_host)
    return {"hosts": hosts, "series": series, "samples": samples, "samples_per_series": n,
            "interval_s": INTERVAL_MS / 1000, "mint_ms": mint, "maxt_ms": maxt, "file_bytes": path.stat().st_size,
            "series_by_type": kinds, "constant_series": constant,
            "changing_samples_fraction": changing / max(1, series * (n - 1)), "check": check}


# -- processes -----------------------------------------------------------------------------------------


def port_open(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=0.2):
            return True
    except OSError:
        return False


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
        self.redis_dir.mkdir(exist_ok=True)
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
        self.redis: subprocess.Popen | None = None
        self.shard: subprocess.Popen | None = None

    def start_redis(self) -> None:
        exe = shutil.which("redis-server")
        if not exe:
            raise RuntimeError("redis-server is not installed (scripts/setup.sh installs it)")
        log = open(self.folder / "redis.log", "ab")
        self.redis = subprocess.Popen(
            [exe, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir", str(self.redis_dir),
             "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self._wait(lambda: port_open(f"127.0.0.1:{self.redis_port}"), self.redis, "redis-server")

    def start_shard(self) -> float:
        """Start the shard; seconds until it listens (it listens only once recovered)."""
        log = open(self.log_path, "ab")
        t0 = time.monotonic()
        self.shard = subprocess.Popen([sys.executable, "-m", "shardmon", "shard", "--id", "0", "--config",
                                       str(self.config_path)], stdout=log, stderr=subprocess.STDOUT,
                                      start_new_session=True, cwd=ROOT)
        log.close()
        self._wait(lambda: port_open(self.address), self.shard, "shard", interval_s=0.01)
        return time.monotonic() - t0

    def _wait(self, pred, proc: subprocess.Popen, what: str, timeout_s: float = 600, interval_s: float = 0.05) -> None:
        deadline = time.monotonic() + timeout_s
        while not pred():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start; see {self.folder}")
            time.sleep(interval_s)

    def kill_shard(self) -> None:
        assert self.shard is not None
        os.kill(self.shard.pid, signal.SIGKILL)
        self.shard.wait(30)

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
        for p in (self.shard, self.redis):
            if p is not None and p.poll() is None:
                p.terminate()
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)


class PrometheusProc:
    """Debian's ``prometheus`` on a data folder, scraping nothing."""

    def __init__(self, folder: Path, data: Path, remote_write_receiver: bool = False) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.data = data
        self.address = f"127.0.0.1:{free_port()}"
        self.config_path = folder / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump({"global": {"scrape_interval": "15s"}, "scrape_configs": []}))
        self.log_path = folder / "prometheus.log"
        self.receiver = remote_write_receiver
        self.proc: subprocess.Popen | None = None

    def start(self) -> float:
        """Start it; seconds until ``/-/ready`` answers."""
        exe = shutil.which("prometheus")
        if not exe:
            raise RuntimeError("prometheus is not installed: apt-get install prometheus (bench/run does it)")
        argv = [exe, f"--config.file={self.config_path}", f"--storage.tsdb.path={self.data}",
                f"--web.listen-address={self.address}", "--log.level=info"]
        if self.receiver:
            argv.append("--web.enable-remote-write-receiver")
        log = open(self.log_path, "ab")
        t0 = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + 600
        while True:
            try:
                http_get(f"http://{self.address}/-/ready", 2)
                return time.monotonic() - t0
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"prometheus failed: {self.log_path.read_text()[-2000:]}") from None
                time.sleep(0.01)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def metric(self, name: str) -> float:
        from bench.systems import metric_sum

        return metric_sum(http_get(f"http://{self.address}/metrics").decode(), name)

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


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
    from shards.client import ShardClient

    sp = ShardProcs(work / "shardmon-disk", block_duration="2h")
    sp.start_redis()
    sp.start_shard()
    client = ShardClient(0, sp.address)
    try:
        cpu0, rcpu0, t0 = cpu_seconds(sp.shard.pid), cpu_seconds(sp.redis.pid), time.monotonic()
        out = subprocess.run([sys.executable, "-m", "shardmon", "import", "openmetrics", str(om_path), "--config",
                              str(sp.config_path)], capture_output=True, text=True, cwd=ROOT)
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
    from model.labels import Matcher, MatchType

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


class HeadData:
    """``n_series`` node_exporter-like series (whole hosts) with ``rounds`` scrapes each, ending about now,
    cut into batches of about ``batch_samples`` series (one sample each per round)."""

    def __init__(self, n_series: int, rounds: int, batch_samples: int, seed: int = 2) -> None:
        start = int(time.time() * 1000) - (rounds + 4) * INTERVAL_MS
        labels: list[dict[str, str]] = []
        ts_rows, val_rows = [], []
        host = 0
        while len(labels) < n_series:
            ts, fams = node_host(seed, host, rounds, start)
            for fam in fams:
                for sample_name, lb, values in fam.series:
                    labels.append({"__name__": sample_name, **lb, **host_labels(host)})
                    ts_rows.append(ts)
                    val_rows.append(values)
            host += 1
        self.labels = labels[:n_series]
        self.ts = np.array(ts_rows[:n_series], np.int64)  # series x rounds
        self.vals = np.array(val_rows[:n_series], np.float64)
        self.n_series, self.rounds = n_series, rounds
        self.hosts = host
        self.bounds = list(range(0, n_series, batch_samples)) + [n_series]

    def batches(self) -> list[tuple[int, int]]:
        return list(zip(self.bounds[:-1], self.bounds[1:]))


def _sample_batches(data: HeadData):
    from model.labels import Labels
    from model.samples import U32, SampleBatch, SeriesTable

    tables = []
    for a, b in data.batches():
        lbls = [Labels.from_dict(d) for d in data.labels[a:b]]
        tables.append(SeriesTable.from_keys(np.array([x.series_id() for x in lbls], np.uint64),
                                            [x.canonical() for x in lbls]))

    def batch(r: int, k: int) -> SampleBatch:
        a, b = data.batches()[k]
        return SampleBatch(tables[k], np.arange(b - a, dtype=U32), np.ascontiguousarray(data.ts[a:b, r]),
                           np.ascontiguousarray(data.vals[a:b, r]))

    return batch


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _pb_bytes(field: int, payload: bytes) -> bytes:
    return bytes([field << 3 | 2]) + _varint(len(payload)) + payload


class RemoteWriteBodies:
    """Remote-write bodies with one sample per series, from a template whose value and timestamp bytes
    are overwritten per round (every timestamp of the run has a 6-byte varint), snappy-compressed."""

    def __init__(self, label_sets: list[dict[str, str]]) -> None:
        parts, val_off, ts_off = [], [], []
        pos = 0
        for labels in label_sets:
            lb = b"".join(_pb_bytes(1, _pb_bytes(1, k.encode()) + _pb_bytes(2, v.encode()))
                          for k, v in sorted(labels.items()))
            sample = b"\x09" + b"\x00" * 8 + b"\x10" + b"\x80" * 5 + b"\x01"
            body = lb + _pb_bytes(2, sample)
            head = b"\x0a" + _varint(len(body))
            val_off.append(pos + len(head) + len(lb) + 3)
            ts_off.append(pos + len(head) + len(lb) + 12)
            parts.append(head + body)
            pos += len(head) + len(body)
        self.template = np.frombuffer(b"".join(parts), np.uint8).copy()
        self.val_idx = np.array(val_off, np.int64)[:, None] + np.arange(8)
        self.ts_off = np.array(ts_off, np.int64)

    def body(self, ts: np.ndarray, vals: np.ndarray) -> bytes:
        import cramjam

        t = ts.astype(np.uint64)
        assert ((t >= 1 << 35) & (t < 1 << 42)).all()
        buf = self.template
        buf[self.val_idx] = np.ascontiguousarray(vals, np.float64).view(np.uint8).reshape(-1, 8)
        for k in range(6):
            byte = (t >> np.uint64(7 * k)) & np.uint64(0x7F)
            buf[self.ts_off + k] = (byte | np.uint64(0x80 if k < 5 else 0)).astype(np.uint8)
        return bytes(cramjam.snappy.compress_raw(buf.tobytes()))


def shardmon_head(work: Path, data: HeadData, few: int, log=print) -> dict:
    """Head memory per series, ingest CPU per million samples, then restart time after SIGKILL."""
    from shards.client import ShardClient

    sp = ShardProcs(work / "shardmon-head", block_duration="24h")  # nothing is cut from the head
    sp.start_redis()
    first_start_s = sp.start_shard()
    client = ShardClient(0, sp.address)
    batch = _sample_batches(data)
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
        from ingest.remote_write import decode

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


# -- the run ---------------------------------------------------------------------------------------------


def run_storage_bench(out: Path, *, hosts: int = 10, duration: str = "2h15m", head_series: int = 100_000,
                      head_samples: int = 60, few: int = 4, batch_samples: int = 2500, compaction_wait_s: float = 75.0,
                      systems: tuple[str, ...] = ("shardmon", "prometheus"), label: str | None = None,
                      keep_data: bool = False, log=print) -> dict:
    from model.units import parse_duration_ms

    duration_ms = parse_duration_ms(duration)
    label = label or f"storage-{hosts}hosts-{duration}-{head_series // 1000}k"
    folder = out / label
    folder.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="shardmon-storagebench-"))
    started = time.monotonic()
    load_before = os.getloadavg()
    try:
        # Blocks start 7 minutes into a 6-hour window (so compaction ranges are not straddled), about a day ago.
        now = int(time.time() * 1000)
        start_ms = (now - 86_400_000) // SIX_HOURS_MS * SIX_HOURS_MS + 7 * 60_000
        om_path = work / "workload.om"
        t0 = time.monotonic()
        workload = write_openmetrics(om_path, hosts, duration_ms, start_ms)
        log(f"workload: {workload['series']:,} series x {workload['samples_per_series']} samples = "
            f"{workload['samples']:,} samples, {workload['file_bytes'] / 2**20:.0f} MiB of OpenMetrics "
            f"({time.monotonic() - t0:.1f}s)")
        disk: dict[str, dict] = {}
        if "prometheus" in systems:
            during = (lambda: shardmon_disk(work, om_path, workload, log)) if "shardmon" in systems else None
            disk["prometheus"] = prometheus_disk(work, om_path, workload, compaction_wait_s, during, log)
            if during is not None:
                disk["shardmon"] = disk["prometheus"].pop("during")
        elif "shardmon" in systems:
            disk["shardmon"] = shardmon_disk(work, om_path, workload, log)
        for name, d in disk.items():
            log(f"[{name}] {d['disk_bytes_per_sample']:.3f} bytes/sample on disk, {d['chunk_bytes_per_sample']:.3f} "
                f"in chunks; read-back equal: {d['check']['equal']}")
        om_path.unlink()
        t0 = time.monotonic()
        data = HeadData(head_series, head_samples, batch_samples)
        log(f"head data: {data.n_series:,} series of {data.hosts} hosts x {data.rounds} samples "
            f"({time.monotonic() - t0:.1f}s)")
        head: dict[str, dict] = {}
        if "shardmon" in systems:
            head["shardmon"] = shardmon_head(work, data, few, log)
        if "prometheus" in systems:
            head["prometheus"] = prometheus_head(work, data, few, log)
    finally:
        if keep_data:
            log(f"data and logs kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    workload.pop("check")
    run = {
        "label": label, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": report.machine(), "seconds": time.monotonic() - started,
        "load_average": {"start": [round(x, 2) for x in load_before], "end": [round(x, 2) for x in os.getloadavg()]},
        "workload": workload,
        "head_workload": {"series": data.n_series, "hosts": data.hosts, "samples_per_series": data.rounds,
                          "few_samples": few, "batch_series": batch_samples},
        "disk": disk, "head": head, "references": REFERENCE_BYTES_PER_SAMPLE,
    }
    (folder / "result.json").write_text(json.dumps(run, indent=1, default=_json_default))
    (folder / "report.md").write_text(markdown(run))
    return run


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o))


# -- the report ------------------------------------------------------------------------------------------


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def _row(title: str, s, p, target: str, met) -> str:
    ratio = f"{s / p:.2f}" if s is not None and p else "-"
    met_s = "-" if met is None else ("yes" if met else "**no**")
    return f"| {title} | {_fmt(s, 3 if s is not None and abs(s) < 10 else 2)} | {_fmt(p, 3 if p is not None and abs(p) < 10 else 2)} | {ratio} | {target} | {met_s} |"


def markdown(run: dict) -> str:
    w, hw = run["workload"], run["head_workload"]
    ds, dp = run["disk"].get("shardmon", {}), run["disk"].get("prometheus", {})
    hs, hp = run["head"].get("shardmon", {}), run["head"].get("prometheus", {})
    g = lambda d, k: d.get(k)  # noqa: E731
    lines = [
        f"# Storage benchmark {run['label']}",
        "",
        f"Run {run['date']} on {run['machine']['cpus']} CPUs, {run['machine']['memory_gib']} GiB, "
        f"{run['machine'].get('prometheus', '')}; {run['seconds']:.0f} s in all"
        + (f"; load average {run['load_average']['start'][0]:.1f} at the start, {run['load_average']['end'][0]:.1f} at "
           "the end (CPU-seconds are the processes' own; wall-clock times stretch on a busy machine)"
           if "load_average" in run else "") + ".",
        "",
        f"- **Disk workload**: {w['series']:,} node_exporter-like series of {w['hosts']} hosts, one sample every "
        f"{w['interval_s']:g} s for {(w['maxt_ms'] - w['mint_ms']) / 3.6e6:.2f} h = {w['samples']:,} samples "
        f"({w['file_bytes'] / 2**20:.0f} MiB of OpenMetrics with timestamps); {w['constant_series']:,} series are "
        f"constant and {w['changing_samples_fraction']:.0%} of samples differ from the one before. Prometheus: `promtool tsdb "
        f"create-blocks-from openmetrics`, then Prometheus run on the blocks for {dp.get('ran_for_s', 0):.0f} s "
        "(its compactor runs a minute after start) and stopped; bytes = the whole data folder. Shardmon: `shardmon "
        "import openmetrics` into one shard, `Flush` (which runs the shard's compaction), Redis `BGREWRITEAOF`; "
        "bytes = the Redis data folder. Bytes per sample = bytes / samples in the file.",
        f"- **Head workload**: {hw['series']:,} series ({hw['hosts']} hosts' worth), written in batches of "
        f"{hw['batch_series']:,} series x 1 sample, {hw['samples_per_series']} rounds (scrapes) = "
        f"{hw['series'] * hw['samples_per_series']:,} samples; Shardmon through the shard's `Write` RPC, Prometheus "
        "through its remote-write receiver. Head memory per series = RSS growth after "
        f"{hw['few_samples']} samples per series / series. Then SIGKILL and restart.",
        "",
        "| metric | Shardmon | Prometheus | Shardmon / Prometheus | target | met? |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    s_disk, p_disk = g(ds, "disk_bytes_per_sample"), g(dp, "disk_bytes_per_sample")
    met = None
    if s_disk is not None:
        met = s_disk < 0.7 and (p_disk is None or s_disk < p_disk)
    lines.append(_row("bytes per sample on disk after compaction", s_disk, p_disk,
                      "below Prometheus and below 0.7 (VictoriaMetrics 1.79)", met))
    lines.append(_row("bytes per sample in chunks alone", g(ds, "chunk_bytes_per_sample"), g(dp, "chunk_bytes_per_sample"),
                      "", None))
    s_head = g(hs, "head_bytes_per_series")
    lines.append(_row(f"head memory per active series, bytes (RSS, {hw['few_samples']} samples each)", s_head,
                      g(hp, "head_bytes_per_series"), "< 1,024", None if s_head is None else s_head < 1024))
    lines.append(_row(f"head memory per series, bytes (RSS, {hw['samples_per_series']} samples each)",
                      g(hs, "head_bytes_per_series_full"), g(hp, "head_bytes_per_series_full"), "", None))
    lines.append(_row("head memory growth per sample held, bytes (RSS, between the two)", g(hs, "head_bytes_per_sample_held"),
                      g(hp, "head_bytes_per_sample_held"), "", None))
    lines.append(_row("ingest CPU-seconds per million samples (shard / Prometheus process)", g(hs, "cpu_s_per_million"),
                      g(hp, "cpu_s_per_million"), "", None))
    lines.append(_row("restart time per million WAL samples, s (until listening / ready)",
                      g(hs, "restart_s_per_million"), g(hp, "restart_s_per_million"), "", None))
    lines.append(_row("restart CPU-seconds per million WAL samples (until listening / ready)",
                      g(hs, "restart_cpu_s_per_million"), g(hp, "restart_cpu_s_per_million"), "", None))
    lines.append(_row("WAL replay per million samples, s (by the process's own log)", g(hs, "replay_s_per_million"),
                      g(hp, "replay_s_per_million"), "", None))
    lines.append(_row("peak RSS while replaying / RSS before the kill", g(hs, "replay_peak_over_before"),
                      g(hp, "replay_peak_over_before"), "no memory spike (about 1)", None))
    lines += ["", "## Details", ""]
    if ds:
        lines += [
            f"- Shardmon disk: Redis folder {ds['disk_bytes']:,} bytes ({ds['disk_bytes_per_sample']:.3f} B/sample); "
            f"block chunks (`size_bytes`) {ds['chunk_bytes']:,} ({ds['chunk_bytes_per_sample']:.3f} B/sample); series "
            f"labels hash {ds['series_labels_bytes']:,} bytes; Redis `used_memory` {ds['redis_used_memory']:,} "
            f"({ds['redis_used_memory_per_sample']:.3f} B/sample). Import {ds['import_s']:.1f} s "
            f"(shard {ds['import_cpu_s']:.1f} CPU-s, Redis {ds['import_redis_cpu_s']:.1f}); {ds['blocks_before_flush']} "
            f"backfill blocks before the Flush, {ds['compactions']} compactions in {ds['flush_s']:.1f} s, "
            f"{len(ds['blocks_after'])} block(s) after: "
            + "; ".join(f"`{b['block_id'][:40]}` {b['hours']} h, {b['num_series']:,} series, {b['num_samples']:,} samples, "
                        f"{b['size_bytes']:,} bytes" for b in ds["blocks_after"]) + ".",
            f"- Shardmon read-back of host 0's {ds['check']['series_checked']} series: "
            f"{'equal, bit for bit' if ds['check']['equal'] else 'DIFFERENT: ' + json.dumps(ds['check'])}.",
        ]
    if dp:
        lines += [
            f"- Prometheus disk: data folder {dp['disk_bytes']:,} bytes ({dp['disk_bytes_per_sample']:.3f} B/sample); "
            f"blocks {dp['blocks_bytes']:,} ({dp['blocks_bytes_per_sample']:.3f}), of which chunks {dp['chunk_bytes']:,} "
            f"({dp['chunk_bytes_per_sample']:.3f}) and index {dp['index_bytes']:,}; WAL {dp['wal_bytes']:,}. promtool "
            f"took {dp['promtool_s']:.1f} s and wrote {len(dp['blocks_before'])} blocks; compactions while Prometheus "
            f"ran: {dp['compactions']:.0f} (compactor runs triggered: {dp['compactor_runs']:.0f}"
            + ("; it merged nothing: it never compacts the newest block, which leaves one 2-hour block as a candidate"
               if not dp["compactions"] and dp["compactor_runs"] and len(dp["blocks_after"]) <= 2 else "")
            + ("; its compactor did not run in the wait" if not dp["compactor_runs"] else "") + "). Blocks after: "
            + "; ".join(f"{b['hours']} h (level {b['level']}), {b['series']:,} series, {b['samples']:,} samples, "
                        f"{b['chunks']:,} chunks, {b['bytes']:,} bytes" for b in dp["blocks_after"]) + ".",
            f"- Prometheus read-back of host 0's {dp['check']['series_checked']} series: "
            f"{'equal, bit for bit' if dp['check']['equal'] else 'DIFFERENT: ' + json.dumps(dp['check'])}.",
        ]
    for name, h in (("Shardmon", hs), ("Prometheus", hp)):
        if not h:
            continue
        extra = (f" Redis `used_memory` per series: {h['redis_bytes_per_series']:,.0f} bytes after "
                 f"{hw['few_samples']} samples, {h['redis_bytes_per_series_full']:,.0f} after all (the WAL stream); "
                 f"Redis CPU {h['redis_cpu_s_per_million']:.2f} s per million samples."
                 if name == "Shardmon" else
                 f" Go heap in use per series: {h['heap_inuse_bytes_per_series']:,.0f} bytes after "
                 f"{hw['few_samples']} samples, {h['heap_inuse_bytes_per_series_full']:,.0f} after all.")
        lines.append(
            f"- {name} head: RSS {h['rss_before'] / 2**20:.0f} MiB at start, {h['rss_after_few'] / 2**20:.0f} after "
            f"{hw['few_samples']} samples per series, {h['rss_after_all'] / 2**20:.0f} after all; {h['samples_written']:,.0f} "
            f"samples in {h['ingest_s']:.1f} s ({h['samples_per_s']:,.0f}/s), {h['cpu_s']:.1f} CPU-s: "
            f"{h['cpu_s_per_million']:.2f} per million ({h['cpu_s_per_million_new_series']:.2f} while the series were "
            f"new, {h['cpu_s_per_million_steady']:.2f} after).{extra}")
        lines.append(
            f"- {name} restart after SIGKILL with {h['wal_samples']:,.0f} samples in the WAL: "
            f"{h['restart_s']:.2f} s until {'listening' if name == 'Shardmon' else 'ready'} (a fresh start took "
            f"{h['fresh_start_s']:.2f} s)"
            + (f", replay {h['restart_replay_s']:.2f} s by its log" if h.get("restart_replay_s") is not None else "")
            + (f" (`{h['recovery_log']}`)" if h.get("recovery_log") else "")
            + (f"; {h['restart_cpu_s']:.1f} CPU-s until then" if h.get("restart_cpu_s") is not None else "")
            + f"; peak RSS {h['peak_rss_replay'] / 2**20:.0f} MiB vs {h['rss_before_kill'] / 2**20:.0f} MiB before the kill.")
    lines += [
        "- Not the same path: Shardmon's samples arrive through the shard's own `Write` RPC (columns, as its scrapers "
        "send them), Prometheus's through its remote-write receiver (snappy protobuf, labels with every series); "
        "Prometheus's scrape path is not measured here. Head memory grows with the samples held (the row 'per sample "
        "held'), so the per-series figure is for the few samples named.",
    ]
    refs = run["references"]
    lines += ["", "VictoriaMetrics is not run here (it is not a Debian package): its 0.7 bytes per sample is the storage "
              "issue's reference figure for node_exporter-like data backfilled over 2 hours, on which Prometheus 2.42 "
              f"stores about {refs['prometheus 2.42']}; the target row compares with that figure as it is."]
    if p_disk:
        ratio = refs["victoriametrics 1.79"] / refs["prometheus 2.42"]
        lines[-1] += (f" This data is harder than that reference (Prometheus needs {p_disk:.2f} bytes per sample on it, "
                      f"not {refs['prometheus 2.42']}); at the reference's VictoriaMetrics / Prometheus ratio "
                      f"({ratio:.2f}), VictoriaMetrics would need about {p_disk * ratio:.2f} on it (an estimate, not a "
                      "measurement)." if p_disk > refs["prometheus 2.42"] else "")
    return "\n".join(lines) + "\n"
