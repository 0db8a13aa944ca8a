"""The native histogram benchmark's report (bench/histbench.py): ``report.md``, bytes per histogram sample and
ingest CPU of Shardmon and Prometheus, native and classic, with their ratios, then the details."""

from __future__ import annotations


def _fmt(v, digits: int = 2) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.{digits}f}"


def _row(title: str, s, p) -> str:
    ratio = f"{s / p:.2f}" if s is not None and p else "-"
    return f"| {title} | {_fmt(s)} | {_fmt(p)} | {ratio} |"


def figures(res: dict) -> dict:
    """Per system: chunk bytes, on-disk bytes and ingest CPU per histogram sample of one kind."""
    n = res["workload"]["histogram_samples"]
    out = {}
    for name in ("shardmon", "prometheus"):
        r = res.get(name)
        if not r:
            continue
        disk = r["disk_bytes"] if name == "shardmon" else r["block_bytes"]
        out[name] = {"chunk_bytes_per_hist_sample": r["chunk_bytes"] / n, "disk_bytes_per_hist_sample": disk / n,
                     "chunk_bytes_per_sample": r["chunk_bytes"] / res["workload"]["samples"],
                     "ingest_cpu_s_per_1k_hist_samples": r["ingest_cpu_s"] / (n / 1000),
                     "block_cpu_s": r.get("flush_cpu_s", r.get("snapshot_cpu_s"))}
    return out


def markdown(run: dict) -> str:
    res = run["results"]
    m = run["machine"]
    lines = [
        f"# Native histogram benchmark {run['label']}", "",
        f"Run {run['date']} on {m['cpus']} CPUs, {m['memory_gib']} GiB, {m.get('prometheus', '')}; "
        f"{run['seconds']:.0f} s in all; load average {run['load_average']['start'][0]:.1f} at the start, "
        f"{run['load_average']['end'][0]:.1f} at the end (CPU-seconds are the processes' own).", "",
    ]
    w = next(iter(res.values()))["workload"]
    nat = res.get("native", {}).get("workload")
    lines.append(
        f"- **Data**: {w['services']} services' request latencies, {w['observations']:,} log-normal observations "
        f"over {w['scrapes']} scrapes 15 s apart (one 2-hour block window): {w['histogram_samples']:,} histogram "
        "samples of each kind. "
        + (f"Native: schema {nat['schema']}, integer counts, {nat['mean_buckets_per_sample']:.1f} buckets per sample "
           f"on average, {nat['series']} series. " if nat else "")
        + (f"Classic: 10 buckets and `+Inf`, `_sum`, `_count`: {res['classic']['workload']['series']:,} float series, "
           f"{res['classic']['workload']['samples']:,} float samples (13 per histogram sample). " if "classic" in res else "")
        + f"Sent as the same snappy remote-write bodies to both ({run['rounds_per_body']} scrapes of every series "
        "per body, in time order), each system fresh for each kind.")
    lines.append(
        "- **Prometheus 2.42** (`--enable-feature=native-histograms --web.enable-remote-write-receiver "
        "--web.enable-admin-api`): after the writes, `POST /api/v1/admin/tsdb/snapshot` writes its head as a "
        "block; bytes are the snapshot block's `chunks/` (and the whole block: chunks, index, meta.json).")
    lines.append(
        "- **Shardmon**: `shardmon receiver` in front of one shard on its own `redis-server --appendonly yes`; "
        "after the writes, the shard's `Flush` cuts its head into a block; bytes are the block's chunk bytes "
        "(`size_bytes` of its metadata; chunk formats 2 and 3 of shards/FORMAT.md), and on disk the Redis "
        "folder after `BGREWRITEAOF` (blocks, series labels and index, AOF framing).")
    lines += ["", "| metric | Shardmon | Prometheus | Shardmon / Prometheus |", "| --- | ---: | ---: | ---: |"]
    figs = {kind: figures(r) for kind, r in res.items()}
    for kind in res:
        f = figs[kind]
        s, p = f.get("shardmon", {}), f.get("prometheus", {})
        what = "native (schema 3)" if kind == "native" else "classic (10 buckets = 13 float series)"
        lines.append(_row(f"{what}: chunk bytes per histogram sample", s.get("chunk_bytes_per_hist_sample"),
                          p.get("chunk_bytes_per_hist_sample")))
        lines.append(_row(f"{what}: bytes per histogram sample on disk (Redis folder / snapshot block)",
                          s.get("disk_bytes_per_hist_sample"), p.get("disk_bytes_per_hist_sample")))
        if kind == "classic":
            lines.append(_row(f"{what}: chunk bytes per float sample", s.get("chunk_bytes_per_sample"),
                              p.get("chunk_bytes_per_sample")))
        lines.append(_row(f"{what}: ingest CPU-seconds per 1,000 histogram samples (shard + receiver / Prometheus)",
                          s.get("ingest_cpu_s_per_1k_hist_samples"), p.get("ingest_cpu_s_per_1k_hist_samples")))
    if "native" in figs and "classic" in figs:
        for name in ("shardmon", "prometheus"):
            a, b = figs["native"].get(name), figs["classic"].get(name)
            if a and b:
                lines.append(f"| {name}: native / classic chunk bytes per histogram sample | "
                             f"{a['chunk_bytes_per_hist_sample'] / b['chunk_bytes_per_hist_sample']:.2f} | | |")
    lines += ["", "## Details", ""]
    for kind, r in res.items():
        if "prometheus" in r:
            p = r["prometheus"]
            lines.append(
                f"- Prometheus, {kind}: {p['samples_appended']:,.0f} samples appended in {p['ingest_s']:.1f} s, "
                f"{p['ingest_cpu_s']:.2f} CPU-s; the snapshot took {p['snapshot_cpu_s']:.2f} CPU-s: "
                + "; ".join(f"block {b['hours']} h, {b['series']:,} series, {b['samples']:,} samples, {b['chunks']:,} "
                            f"chunks, chunks/ {b['chunk_bytes']:,} bytes, index {b['index_bytes']:,}, all {b['bytes']:,}"
                            for b in p["blocks"])
                + f". Service 0 read back through the HTTP API: {'equal' if p['check']['equal'] else 'DIFFERENT ' + str(p['check'])}"
                + (" (count, sum and every non-empty bucket of every sample)." if kind == "native" else
                   " (every bucket series, value for value)."))
        if "shardmon" in r:
            s = r["shardmon"]
            c = s["ingest_cpu_by_process"]
            lines.append(
                f"- Shardmon, {kind}: written in {s['ingest_s']:.1f} s, {s['ingest_cpu_s']:.2f} CPU-s (shard "
                f"{c['shard']:.2f}, receiver {c['receiver']:.2f}; Redis {c['redis']:.2f} apart); `Flush` "
                f"{s['flush_cpu_s']:.2f} CPU-s of the shard: "
                + "; ".join(f"block {b['hours']} h, {b['num_series']:,} series, {b['num_samples']:,} samples, "
                            f"{b['size_bytes']:,} chunk bytes" for b in s["blocks"])
                + f"; Redis `MEMORY USAGE` of the chunks hash {s['chunks_hash_memory']:,} bytes, Redis folder "
                f"{s['disk_bytes']:,} bytes, `used_memory` {s['redis_used_memory']:,}. Service 0 read back with the "
                f"shard's `Series`: {'equal, bit for bit' if s['check']['equal'] else 'DIFFERENT ' + str(s['check'])}.")
    lines += [
        "- Not measured alike: Prometheus's CPU includes its head's in-memory chunk encoding; Shardmon's shard "
        "keeps the head uncompressed (its WAL in Redis) and encodes chunks at `Flush`, whose CPU is given apart. "
        "Prometheus's on-disk figure is the snapshot block alone (its WAL is not counted); Shardmon's is the "
        "whole Redis folder after the WAL was trimmed by the flush.",
    ]
    return "\n".join(lines) + "\n"
