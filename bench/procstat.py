"""CPU time and memory of a whole system: a process and all its descendants, read from /proc.

A :class:`TreeSampler` re-reads the process tree every second (new processes appear: Ray starts its
workers late), keeps each process's latest CPU time (so one that exits still counts up to its last
reading), and tracks the peak of the tree's total proportional set size (PSS: shared pages divided
among the processes sharing them, so summing does not count them twice), both in all and per
component (:func:`component`: scrapers, shards, Redis, Ray's own processes, ...), so a report can say
where the memory and the CPU go.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds in user and system mode) of a process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def pss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(root: int) -> set[int]:
    """``root`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st:
                children.setdefault(st[0], []).append(int(entry))
    out, todo = set(), [root]
    while todo:
        p = todo.pop()
        if p not in out:
            out.add(p)
            todo.extend(children.get(p, ()))
    return out


def process_name(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        return " ".join(c.decode(errors="replace") for c in cmd[:4] if c)[:80]
    except OSError:
        return "?"


#: (substring of a process's command line, component), the first match wins.
_COMPONENTS = (
    ("ray::Scraper", "scrapers"), ("ray::ScrapeCoordinator", "coordinator"), ("ray::Ruler", "rulers"),
    ("ray::IDLE", "Ray idle workers"), ("ray::DashboardAgent", "Ray system processes"),
    ("ray::RuntimeEnvAgent", "Ray system processes"), ("ray::", "other Ray actors"),
    ("shardmon shard", "shards"), ("redis-aof-rewrite", "Redis (AOF rewrite)"), ("redis-server", "Redis"),
    ("shardmon querier", "querier"), ("shardmon receiver", "receiver"), ("shardmon ingest", "ingest service"),
    ("shardmon ruler", "ruler service"), ("shardmon up", "launcher"), ("site-packages/ray", "Ray system processes"),
    ("prometheus", "prometheus"),
)


def component(name: str) -> str:
    """The component a process belongs to, from its command line (``other`` when unknown)."""
    for needle, comp in _COMPONENTS:
        if needle in name:
            return comp
    return "other"


class TreeSampler:
    """Samples the CPU seconds and PSS of the trees under ``roots`` every ``interval_s``."""

    def __init__(self, roots: list[int], interval_s: float = 1.0) -> None:
        self.roots = roots
        self.interval_s = interval_s
        self.cpu: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self.peak_pss = 0
        #: PSS per component at the moment of the tree's peak, and each component's own peak.
        self.pss_at_peak: dict[str, int] = {}
        self.peak_by_component: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._lock = threading.Lock()

    def _sample(self) -> None:
        pids: set[int] = set()
        for r in self.roots:
            pids |= descendants(r)
        total, by = 0, {}
        with self._lock:
            for p in pids:
                st = _stat(p)
                if st is None:
                    continue
                self.cpu[p] = st[1]
                if p not in self.names:
                    self.names[p] = process_name(p)
                pss = pss_bytes(p)
                total += pss
                comp = component(self.names[p])
                by[comp] = by.get(comp, 0) + pss
            if total > self.peak_pss:
                self.peak_pss, self.pss_at_peak = total, by
            for comp, v in by.items():
                self.peak_by_component[comp] = max(self.peak_by_component.get(comp, 0), v)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def start(self) -> TreeSampler:
        self._sample()
        self._thread.start()
        return self

    def cpu_seconds(self) -> float:
        """Total CPU seconds of every process seen so far (take differences for a window)."""
        self._sample()
        with self._lock:
            return sum(self.cpu.values())

    def cpu_by_process(self) -> dict[str, float]:
        with self._lock:
            out: dict[str, float] = {}
            for p, c in self.cpu.items():
                out[f"{p} {self.names.get(p, '?')}"] = c
            return out

    def cpu_by_component(self) -> dict[str, float]:
        """Total CPU seconds so far per component (take differences for a window)."""
        with self._lock:
            out: dict[str, float] = {}
            for p, c in self.cpu.items():
                comp = component(self.names.get(p, "?"))
                out[comp] = out.get(comp, 0.0) + c
            return out

    def reset_peak(self) -> None:
        with self._lock:
            self.peak_pss, self.pss_at_peak, self.peak_by_component = 0, {}, {}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


def wall() -> float:
    return time.monotonic()
