"""The native histogram benchmark's data (bench/histbench.py): request latencies observed by many services,
as native histograms and as the same observations in a classic histogram, generated once and sent to both
systems as the same remote-write bodies.

- :func:`latency_workload`: ``n_series`` services (one series each), a scrape every 15 s (timestamps 0-3 ms
  late, as the storage benchmark's), a few random observations between scrapes (Poisson, a mean of 1 to 12
  per service), each a log-normal latency (a median of 5 to 200 ms per service) with nanosecond resolution.
- :func:`native_series`: each service's cumulative counts as integer native histograms of a schema (3:
  buckets growing by 2^(1/8)), whose spans cover the buckets populated so far, gaps of up to two empty
  buckets filled with zeros as client_golang does.
- :func:`classic_series`: the same counts as a classic histogram (``_bucket`` per ``le`` of
  :data:`CLASSIC_BOUNDS` and ``+Inf``, ``_sum``, ``_count``): 13 float series per service.
- :func:`remote_write_bodies`: snappy-compressed remote-write bodies of ``rounds_per_body`` scrapes of
  every series each, in time order (the order Prometheus's own remote-write sends them in).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from bench.storage_workload import scrape_timestamps

CLASSIC_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
"""The classic histogram's finite upper bounds (client_golang's DefBuckets without 0.075 and 0.75)."""

ZERO_THRESHOLD = 2.0**-128  # client_golang's default NativeHistogramZeroThreshold
HANDLERS = ("/api/users", "/api/orders", "/api/search", "/api/cart", "/login", "/static", "/health", "/metrics")


class Service(NamedTuple):
    """One service's observations: scrape times, and per scrape interval the latencies observed in it."""

    labels: dict[str, str]
    timestamps_ms: np.ndarray  # [n] int64
    observations: list[np.ndarray]  # [n] arrays of seconds, those observed before each scrape


def latency_workload(n_series: int, n_scrapes: int, start_ms: int, seed: int = 3) -> list[Service]:
    out = []
    for i in range(n_series):
        rng = np.random.default_rng([seed, i])
        ts = scrape_timestamps(rng, n_scrapes, start_ms)
        rate = rng.uniform(1, 12)
        median, sigma = math.exp(rng.uniform(math.log(0.005), math.log(0.2))), rng.uniform(0.5, 1.2)
        counts = rng.poisson(rate, n_scrapes)
        counts[0] = 0  # the first scrape sees a fresh histogram
        lat = np.round(rng.lognormal(math.log(median), sigma, int(counts.sum())) * 1e9) / 1e9
        labels = {"job": "api", "instance": f"10.1.{i // 200}.{i % 200 + 10}:8080",
                  "handler": HANDLERS[i % len(HANDLERS)], "method": "GET" if i % 3 else "POST"}
        out.append(Service(labels, ts, np.split(lat, np.cumsum(counts)[:-1])))
    return out


def bucket_index(v: np.ndarray, schema: int) -> np.ndarray:
    """The native histogram bucket of each positive value: i with base^(i-1) < v <= base^i,
    base = 2^(2^-schema) (exact at powers of two, as Prometheus's frexp-based lookup)."""
    frac, exp = np.frexp(v)  # v = frac * 2^exp, frac in [0.5, 1)
    scale = 1 << schema
    idx = np.ceil(np.log2(frac) * scale).astype(np.int64) + exp.astype(np.int64) * scale
    return np.where(frac == 0.5, (exp.astype(np.int64) - 1) * scale, idx)


def _spans(indices: np.ndarray) -> tuple[list[tuple[int, int]], np.ndarray]:
    """Spans covering sorted bucket ``indices``, gaps of up to 2 filled; and the covered indices."""
    spans: list[tuple[int, int]] = []
    covered = []
    prev_end = None
    start = None
    for i in indices.tolist():
        if start is None:
            start, end = i, i + 1
        elif i - end <= 2:
            end = i + 1
        else:
            spans.append((start - (prev_end if prev_end is not None else 0), end - start))
            covered.append(np.arange(start, end))
            prev_end, start, end = end, i, i + 1
    if start is not None:
        spans.append((start - (prev_end if prev_end is not None else 0), end - start))
        covered.append(np.arange(start, end))
    return spans, (np.concatenate(covered) if covered else np.empty(0, np.int64))


def native_series(svc: Service, schema: int = 3) -> list:
    """The service's native histograms (integer ones, cumulative), one per scrape."""
    from shardmon.model.histogram import Histogram

    all_obs = np.concatenate(svc.observations)
    idx = bucket_index(all_obs, schema) if len(all_obs) else np.empty(0, np.int64)
    lo = int(idx.min()) if len(idx) else 0
    width = (int(idx.max()) - lo + 1) if len(idx) else 1
    n = len(svc.observations)
    per_scrape = np.zeros((n, width), np.int64)
    which = np.repeat(np.arange(n), [len(o) for o in svc.observations])
    np.add.at(per_scrape, (which, idx - lo), 1)
    cum = np.cumsum(per_scrape, axis=0)
    sums = np.cumsum([float(o.sum()) for o in svc.observations])
    out = []
    for k in range(n):
        spans, covered = _spans(np.flatnonzero(cum[k]) + lo)
        buckets = cum[k][covered - lo] if len(covered) else np.empty(0, np.int64)
        out.append(Histogram(schema, ZERO_THRESHOLD, 0.0, float(cum[k].sum()), float(sums[k]), tuple(spans),
                             tuple(float(x) for x in buckets.tolist()), (), (), 0, True))
    return out


def classic_series(svc: Service) -> list[tuple[dict[str, str], np.ndarray]]:
    """The same observations as a classic histogram: (labels, values per scrape) for its 13 series."""
    bounds = np.array(CLASSIC_BOUNDS)
    n = len(svc.observations)
    le_counts = np.array([[int(np.count_nonzero(o <= b)) for b in bounds] + [len(o)] for o in svc.observations],
                         np.int64).reshape(n, len(bounds) + 1)
    cum = np.cumsum(le_counts, axis=0).astype(np.float64)
    sums = np.cumsum([float(o.sum()) for o in svc.observations])
    name = "http_request_duration_classic_seconds"
    out = [({"__name__": f"{name}_bucket", **svc.labels, "le": le}, cum[:, j])
           for j, le in enumerate([repr(b) for b in CLASSIC_BOUNDS] + ["+Inf"])]
    out.append(({"__name__": f"{name}_sum", **svc.labels}, sums))
    out.append(({"__name__": f"{name}_count", **svc.labels}, cum[:, -1].copy()))
    return out


NATIVE_NAME = "http_request_duration_seconds"


def remote_write_bodies(services: list[Service], kind: str, rounds_per_body: int, schema: int = 3
                        ) -> tuple[list[bytes], dict]:
    """The remote-write bodies of ``kind`` ("native" or "classic") and a summary: series, samples (float
    samples, or histogram samples), and the histogram samples they stand for."""
    import cramjam

    from shardmon.ingest.remote_write import histogram_to_pb
    from shardmon.model.pb import remote_pb2

    n = len(services[0].timestamps_ms)
    per_series: list[tuple[list[tuple[str, str]], np.ndarray, object]] = []
    buckets = []
    for svc in services:
        if kind == "native":
            hs = native_series(svc, schema)
            buckets.append(np.mean([len(h.positive_buckets) for h in hs]))
            labels = sorted({"__name__": NATIVE_NAME, **svc.labels}.items())
            per_series.append((labels, svc.timestamps_ms, [histogram_to_pb(h, int(t)) for h, t in
                                                            zip(hs, svc.timestamps_ms.tolist())]))
        else:
            for lb, vals in classic_series(svc):
                per_series.append((sorted(lb.items()), svc.timestamps_ms, vals))
    bodies = []
    for a in range(0, n, rounds_per_body):
        b = min(n, a + rounds_per_body)
        req = remote_pb2.WriteRequest()
        for labels, ts, data in per_series:
            t = req.timeseries.add()
            for k, v in labels:
                t.labels.add(name=k, value=v)
            if kind == "native":
                t.histograms.extend(data[a:b])
            else:
                for tt, vv in zip(ts[a:b].tolist(), data[a:b].tolist()):
                    t.samples.add(timestamp=tt, value=vv)
        bodies.append(bytes(cramjam.snappy.compress_raw(req.SerializeToString())))
    summary = {"kind": kind, "services": len(services), "series": len(per_series), "scrapes": n,
               "samples": len(per_series) * n, "histogram_samples": len(services) * n,
               "observations": int(sum(sum(len(o) for o in s.observations) for s in services)),
               "bodies": len(bodies), "body_bytes": sum(len(x) for x in bodies)}
    if kind == "native":
        summary["schema"] = schema
        summary["mean_buckets_per_sample"] = float(np.mean(buckets))
    return bodies, summary
