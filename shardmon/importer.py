"""``shardmon import openmetrics FILE``: backfill a file of timestamped samples into the shards.

Batches are routed by series hash like scraped samples and written with ``backfill`` (straight into
blocks, any age), with a batch id derived from the file and the batch's place in it, so running the
same import again adds nothing twice. Retryable failures (a shard restarting) are retried with
backoff; a progress line goes to stderr and a summary to stdout.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

from shardmon.ingest.backfill import read_batches
from shardmon.model.config import Config
from shardmon.model.errors import ShardmonError
from shardmon.model.hashing import shards_for_series
from shardmon.shards.client import ShardClient, ShardConnection


def _progress(done: int, total: int, samples: int, t0: float, out) -> None:
    frac = done / total if total else 1.0
    width = 30
    bar = "#" * int(frac * width) + "." * (width - int(frac * width))
    rate = samples / max(time.monotonic() - t0, 1e-9)
    out.write(f"\r[{bar}] {frac:6.1%}  {samples:,} samples  {rate:,.0f}/s ")
    out.flush()


def _write(client: ShardClient, batch_id: str, batch, tries: int = 30):
    delay = 0.2
    for attempt in range(tries):
        try:
            return client.write(batch_id, batch, timeout_s=120, backfill=True)
        except ShardmonError as exc:
            if not exc.retryable or attempt == tries - 1:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


def import_openmetrics(config: Config, path: str | Path, *, batch_samples: int = 200_000, progress=sys.stderr) -> dict:
    """Backfill ``path``; returns the summary (samples, series, time range, seconds)."""
    path = Path(path)
    size = os.path.getsize(path)
    tag = hashlib.sha1(f"{path.resolve()}:{size}:{os.path.getmtime(path)}".encode()).hexdigest()[:12]
    nodes = config.shards.nodes
    shard_ids = [n.id for n in nodes]
    clients = [ShardClient(n.id, n.address, ShardConnection.of(config)) for n in nodes]
    t0 = time.monotonic()
    samples = 0
    series: set[int] = set()
    refused: dict[str, int] = {}
    mint, maxt = None, None
    last_draw = 0.0
    try:
        with open(path, "rb") as fh:
            for n, (batch, prog) in enumerate(read_batches(fh, batch_samples)):
                owners = shards_for_series(batch.series_ids, shard_ids, config.shards.replication_factor)
                for pos, client in enumerate(clients):
                    mask = (owners == pos).any(axis=1)
                    if mask.any():
                        resp = _write(client, f"import-{tag}-{n}-{shard_ids[pos]}", batch.select_series(mask))
                        for reason, count in resp.samples_rejected.items():
                            refused[reason] = refused.get(reason, 0) + count
                samples += batch.num_samples
                series.update(batch.series_ids.tolist())
                lo, hi = int(batch.timestamps_ms.min()), int(batch.timestamps_ms.max())
                mint = lo if mint is None else min(mint, lo)
                maxt = hi if maxt is None else max(maxt, hi)
                if progress is not None and time.monotonic() - last_draw > 0.1:
                    _progress(prog.bytes_read, size, samples, t0, progress)
                    last_draw = time.monotonic()
    finally:
        for c in clients:
            c.close()
    if progress is not None:
        _progress(size, size, samples, t0, progress)
        progress.write("\n")
    elapsed = time.monotonic() - t0
    return {"samples": samples, "series": len(series), "mint_ms": mint, "maxt_ms": maxt, "seconds": elapsed,
            "shards": len(nodes), "refused": refused, "replicas": config.shards.replication_factor}


def summary_line(s: dict) -> str:
    if not s["samples"]:
        return "imported nothing: the file has no samples"
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    lo = time.strftime(fmt, time.gmtime(s["mint_ms"] / 1000))
    hi = time.strftime(fmt, time.gmtime(s["maxt_ms"] / 1000))
    rate = s["samples"] / max(s["seconds"], 1e-9)
    line = (f"imported {s['samples']:,} samples of {s['series']:,} series from {lo} to {hi} into {s['shards']} "
            f"shards in {s['seconds']:.1f}s ({rate:,.0f} samples/s)")
    if s.get("refused"):
        each = " (each replica's refusal counted)" if s.get("replicas", 1) > 1 else ""
        line += "; refused by the shards" + each + ": " + ", ".join(
            f"{n:,} {r.replace('_', ' ')}" for r, n in sorted(s["refused"].items()))
    return line

