"""The storage benchmark's report (bench/storagebench.py): ``report.md``, a table of metric, Shardmon,
Prometheus, their ratio, the storage issue's target and whether it is met, then the details of each
measurement."""

from __future__ import annotations

import json


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
