"""The target farm: one process serving many scrape targets, ``/t/<i>/metrics``, cheaply.

Every target exposes a realistic mix, repeated until it has the configured number of series:
node_exporter-like CPU, memory, network and filesystem series; HTTP request counters by method, code
and handler; classic histograms; gauges that drift; counters that reset now and then. Values are
functions of time (so two systems scraping the same farm see the same data) rounded as exporters
round them.

Cheap enough to serve 100k series every few seconds on one core: each target's body is one
pre-built ``%``-format string filled from a numpy array per request, served by a minimal asyncio
HTTP/1.1 server (keep-alive, no framework). ``/stats`` reports, per target, how regularly it was
scraped, which is how the harness sees a scraper falling behind.

    python -m bench.farm --port 9500 --targets 200 --series 500 --interval 5s
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from typing import NamedTuple

import numpy as np

ORIGIN_S = 1_790_000_000.0

# Value kinds.
COUNTER, COUNTER_RESET, GAUGE, GAUGE_INT, BUCKET = range(5)

_MODES = ("idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice")
_MODE_SHARE = (0.85, 0.08, 0.04, 0.01, 0.002, 0.005, 0.0005, 0.001)
_HANDLERS = ("/", "/api/v1/users", "/api/v1/orders", "/api/v1/search", "/healthz", "/metrics", "/login", "/static")
_CODES = (("GET", "200", 20.0), ("GET", "404", 0.4), ("POST", "200", 3.0), ("POST", "500", 0.05), ("PUT", "201", 1.0))
_LE = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf")


class Series(NamedTuple):
    family: str
    labels: str  # '{a="b",...}' or ''
    kind: int
    rate: float  # counters: per second; gauges: amplitude
    base: float  # gauges: centre; counters: offset; buckets: share of the count
    period: float  # gauge drift period or counter reset period, seconds


def _families(k: int) -> list[list[Series]]:
    """Block k of series families (k makes labels unique when a target needs many series)."""
    out: list[list[Series]] = []
    cpus = [
        Series("node_cpu_seconds_total", f'{{cpu="{8 * k + c}",mode="{m}"}}', COUNTER, share, 1000.0 * share, 0)
        for c in range(8)
        for m, share in zip(_MODES, _MODE_SHARE)
    ]
    out.append(cpus)
    mem = [
        Series(f"node_memory_{n}_bytes", f'{{numa="{k}"}}' if k else "", GAUGE_INT, amp, base, 600 + 97 * i)
        for i, (n, base, amp) in enumerate(
            (("MemFree", 4e9, 5e8), ("Cached", 8e9, 2e8), ("Buffers", 3e8, 1e7), ("Active", 6e9, 4e8),
             ("MemAvailable", 1.1e10, 6e8), ("SwapFree", 2e9, 0.0))
        )
    ]
    out.append(mem)
    net = [
        Series(f"node_network_{d}_{u}_total", f'{{device="eth{4 * k + e}"}}', COUNTER, r, 0.0, 0)
        for e in range(4)
        for d in ("receive", "transmit")
        for u, r in (("bytes", 125000.0 * (e + 1)), ("packets", 180.0 * (e + 1)), ("errs", 0.001))
    ]
    out.append(net)
    fs = [
        Series(f"node_filesystem_{m}_bytes", f'{{device="/dev/sd{chr(97 + f)}{k}",fstype="ext4",mountpoint="/mnt/d{k}_{f}"}}',
               GAUGE_INT if m != "size" else GAUGE_INT, amp, base, 3600)
        for f in range(4)
        for m, base, amp in (("avail", 2e11, 1e9), ("size", 5e11, 0.0), ("free", 2.1e11, 1e9))
    ]
    out.append(fs)
    http = [
        Series("http_requests_total", f'{{code="{code}",handler="{h}{k or ""}",method="{meth}"}}', COUNTER_RESET,
               rate * (1 + i % 3), 0.0, 1800.0 + 600 * (i % 5))
        for i, h in enumerate(_HANDLERS)
        for meth, code, rate in _CODES
    ]
    out.append(http)
    hist = []
    for i, h in enumerate(_HANDLERS[:4]):
        hl = f'handler="{h}{k or ""}"'
        for j, le in enumerate(_LE):
            share = 1.0 if le == "+Inf" else 1 - math.exp(-(j + 1) / 3)
            hist.append(Series("http_request_duration_seconds_bucket", f'{{{hl},le="{le}"}}', BUCKET, 15.0 + i, share, 0))
        hist.append(Series("http_request_duration_seconds_sum", f"{{{hl}}}", COUNTER, (15.0 + i) * 0.087, 0.0, 0))
        hist.append(Series("http_request_duration_seconds_count", f"{{{hl}}}", BUCKET, 15.0 + i, 1.0, 0))
    out.append(hist)
    app = [
        Series("app_queue_depth", f'{{queue="q{k}_{q}"}}', GAUGE, 40.0, 50.0, 120 + 13 * q) for q in range(6)
    ] + [Series("app_temperature_celsius", f'{{sensor="s{k}_{s}"}}', GAUGE, 3.0, 21.0, 900 + 7 * s) for s in range(4)]
    out.append(app)
    return out


def target_series(n: int) -> list[Series]:
    """The first ``n`` series of the catalogue (the same for every target)."""
    out: list[Series] = []
    k = 0
    while len(out) < n:
        for fam in _families(k):
            out.extend(fam)
        k += 1
    return out[:n]


class Target:
    """One target: its body's format string and the parameters its values are computed from."""

    def __init__(self, index: int, series: list[Series]) -> None:
        rng = np.random.default_rng(index)
        lines = []
        seen_help = set()
        for s in series:
            fam = s.family
            if fam.startswith("http_request_duration_seconds_"):
                fam = "http_request_duration_seconds"
            if fam not in seen_help:
                seen_help.add(fam)
                typ = "histogram" if fam != s.family else ("counter" if s.kind in (COUNTER, COUNTER_RESET) else "gauge")
                lines.append(f"# HELP {fam} Benchmark series {fam}.\n# TYPE {fam} {typ}\n")
            lines.append(f"{s.family}{s.labels} %.15g\n")
        self.template = "".join(lines).replace("%", "%%").replace("%%.15g", "%.15g")
        self.kind = np.array([s.kind for s in series])
        scale = rng.uniform(0.5, 2.0)
        self.rate = np.array([s.rate for s in series]) * scale
        self.base = np.array([s.base for s in series])
        self.period = np.array([s.period for s in series])
        self.phase = rng.uniform(0, 10_000, len(series))

    def render(self, now: float) -> bytes:
        return (self.template % tuple(self.values(now).tolist())).encode()

    def values(self, now: float) -> np.ndarray:
        """Every series' value at ``now`` (seconds), in the catalogue's order."""
        # Time since a fixed origin: counters count from there (plus a per-series phase), and two
        # systems scraping the farm at the same moment get the same values.
        t = now - ORIGIN_S
        k, r, b, p, ph = self.kind, self.rate, self.base, self.period, self.phase
        with np.errstate(divide="ignore", invalid="ignore"):
            counter = np.round(b + r * (t + ph), 2)
            reset = np.floor(r * np.mod(t + ph, np.where(p > 0, p, 1)))
            gauge = np.round(b + r * np.sin((t + ph) / np.where(p > 0, p, 1)), 2)
            bucket = np.floor(r * (t + ph) * b)
        v = np.where(k == COUNTER, counter, np.where(k == COUNTER_RESET, reset, np.where(k == BUCKET, bucket, gauge)))
        return np.where(k == GAUGE_INT, np.floor(v), v)


class Farm:
    """All targets, and what the HTTP server tells the harness about scrape regularity."""

    def __init__(self, n_targets: int, n_series: int) -> None:
        series = target_series(n_series)
        self.targets = [Target(i, series) for i in range(n_targets)]
        self.n_series = n_series
        self.reset_stats()

    def reset_stats(self) -> None:
        n = len(self.targets)
        self.last = np.zeros(n)
        self.max_gap = np.zeros(n)
        self.requests = np.zeros(n, dtype=np.int64)
        self.since = time.time()

    def serve(self, i: int) -> bytes:
        now = time.time()
        if self.last[i]:
            self.max_gap[i] = max(self.max_gap[i], now - self.last[i])
        self.last[i] = now
        self.requests[i] += 1
        return self.targets[i].render(now)

    def stats(self) -> dict:
        now = time.time()
        scraped = self.last > 0
        # A target not scraped for a while is behind too, even if its past gaps were fine.
        gaps = np.where(scraped, np.maximum(self.max_gap, now - self.last), np.inf)
        return {
            "targets": len(self.targets),
            "series_per_target": self.n_series,
            "window_s": now - self.since,
            "requests": int(self.requests.sum()),
            "targets_scraped": int(scraped.sum()),
            "max_gap_s": float(gaps.max()) if len(gaps) else 0.0,
            "gaps_s": gaps.tolist(),
        }


class _HTTP(asyncio.Protocol):
    """A minimal HTTP/1.1 server: GET only, keep-alive, Content-Length responses."""

    def __init__(self, farm: Farm) -> None:
        self.farm = farm
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            parts = line.split(" ")
            path = parts[1] if len(parts) > 1 else "/"
            self._answer(path)

    def _answer(self, path: str) -> None:
        status, ctype, body = "404 Not Found", "text/plain", b"not found\n"
        if path.startswith("/t/") and path.endswith("/metrics"):
            try:
                i = int(path[3:-8])
                body = self.farm.serve(i)
                status, ctype = "200 OK", "text/plain; version=0.0.4; charset=utf-8"
            except (ValueError, IndexError):
                pass
        elif path.startswith("/stats"):
            body = json.dumps(self.farm.stats()).encode()
            if "reset=1" in path:
                self.farm.reset_stats()
            status, ctype = "200 OK", "application/json"
        head = f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        assert self.transport is not None
        self.transport.write(head + body)


async def serve(farm: Farm, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _HTTP(farm), host, port, backlog=4096)
    async with server:
        await server.serve_forever()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--targets", type=int, required=True)
    p.add_argument("--series", type=int, required=True, help="series per target")
    args = p.parse_args()
    farm = Farm(args.targets, args.series)
    print(f"farm: {args.targets} targets x {args.series} series on {args.host}:{args.port}", flush=True)
    asyncio.run(serve(farm, args.host, args.port))


if __name__ == "__main__":
    main()
