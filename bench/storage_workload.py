"""The storage benchmark's data (bench/storagebench.py): node_exporter-like hosts, generated the same way
for both systems.

- :func:`node_host`: ``n`` scrapes of one host, about 450 series as a real node_exporter has them
  (counters with two decimals and noise, byte and packet counters, memory gauges in pages, filesystem
  sizes, load averages, temperatures, Go durations, a classic histogram, a summary, many constant info,
  link and zero-counter series, and the scrape's own series); scrape timestamps 0-3 ms late, now and
  then more.
- :func:`write_openmetrics`: many hosts over hours as one OpenMetrics file with timestamps that
  Prometheus and Shardmon read back as the same milliseconds (the disk workload).
- :class:`HeadData`, :func:`sample_batches` and :class:`RemoteWriteBodies`: the head workload, as the
  shard's ``Write`` batches and as Prometheus remote-write bodies of the same samples.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

INTERVAL_MS = 15_000


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


def sample_batches(data: HeadData):
    from shardmon.model.labels import Labels
    from shardmon.model.samples import U32, SampleBatch, SeriesTable

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

