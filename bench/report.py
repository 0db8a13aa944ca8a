"""Benchmark reports: a Markdown table with the Shardmon / Prometheus ratios, the raw JSON, a PNG chart."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path


def machine() -> dict:
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    prom = ""
    try:
        prom = subprocess.run(["prometheus", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        pass
    return {"cpus": os.cpu_count(), "memory_gib": round(mem / 2**30, 1), "python": platform.python_version(),
            "kernel": platform.release(), "prometheus": prom}


def _by_system(run: dict) -> dict[str, dict]:
    return {r["system"]: r for r in run["results"]}


def _ratio(a, b) -> str:
    if a is None or b in (None, 0):
        return "-"
    return f"{a / b:.2f}"


def _fmt(v, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:,.0f}{unit}"
        return f"{v:.2f}{unit}"
    return f"{v}{unit}"


ROWS = [
    ("samples ingested per second", "samples_per_s", 1),
    ("CPU-seconds per million samples (all processes)", "cpu_s_per_million", 1),
    ("CPU cores used", "cpu_cores", 1),
    ("peak memory, MiB (PSS, all processes)", "peak_memory_bytes", 2**20),
    ("bytes per sample in blocks (chunks)", "block_bytes_per_sample", 1),
    ("bytes per sample on disk after flush", "disk_bytes_per_sample", 1),
    ("max gap between scrapes of a target, s", "max_scrape_gap_s", 1),
]


def markdown(run: dict) -> str:
    w = run["workload"]
    by = _by_system(run)
    s, p = by.get("shardmon"), by.get("prometheus")
    lines = [
        f"# Benchmark {run['label']}",
        "",
        f"{w['targets']} targets x {w['series_per_target']} series, scraped every {w['interval_s']:g} s; "
        f"measured over {w['window_s']:.0f} s after warm-up. Shardmon: {w['shards']} shards, {w['scrapers']} scrapers. "
        f"Run {run['date']} on {run['machine']['cpus']} CPUs, {run['machine']['memory_gib']} GiB, "
        f"{run['machine'].get('prometheus', '')}. Both systems scrape the same farm, one after the other.",
        "",
        "| metric | Shardmon | Prometheus | Shardmon / Prometheus |",
        "| --- | ---: | ---: | ---: |",
    ]
    for title, key, div in ROWS:
        sv = s.get(key) / div if s and s.get(key) is not None else None
        pv = p.get(key) / div if p and p.get(key) is not None else None
        lines.append(f"| {title} | {_fmt(sv)} | {_fmt(pv)} | {_ratio(sv, pv)} |")
    if s and p and "queries" in s and "queries" in p:
        lines += ["", "Query latency (HTTP API, median of the repeats, ms):", "",
                  "| query | Shardmon | Prometheus | ratio | series (S / P) |", "| --- | ---: | ---: | ---: | ---: |"]
        for name, q in s["queries"].items():
            pq = p["queries"].get(name, {})
            lines.append(f"| `{q['query']}` ({q['kind']}) | {q['median_ms']:.1f} | {pq.get('median_ms', 0):.1f} | "
                         f"{_ratio(q['median_ms'], pq.get('median_ms'))} | {q['series']} / {pq.get('series', '-')} |")
    for r in run["results"]:
        lines += ["", f"Falling behind ({r['system']}): {'YES' if r['behind'] else 'no'} "
                  f"({r['late_targets']} targets with a gap over 1.5 intervals; {r['samples_per_s']:.0f} of "
                  f"{r['expected_samples_per_s']:.0f} expected samples/s). Farm CPU: {r['farm_cpu_cores']:.2f} cores."]
        lines += _by_component(r)
        lines += ["", f"CPU seconds by process in the measurement window ({r['system']}):", ""]
        lines += [f"- {v:.1f} s: `{k}`" for k, v in r["cpu_by_process_s"].items()]
    return "\n".join(lines) + "\n"


def _by_component(r: dict) -> list[str]:
    """Where the CPU and the memory go, per component (results written before 2026-12-06 lack it)."""
    if "pss_at_peak_by_component" not in r:
        return []
    series = r.get("active_series") or 0
    cpu = r.get("cpu_by_component_s", {})
    at_ingest = r.get("ingest_pss_at_peak_by_component", {})
    at_peak = r["pss_at_peak_by_component"]
    names = sorted(set(cpu) | set(at_ingest) | set(at_peak), key=lambda c: -at_ingest.get(c, 0))
    total_cpu = sum(cpu.values()) or 1.0
    lines = ["", f"By component ({r['system']}): CPU in the measurement window; memory (PSS) at the peak of "
             f"warm-up and ingest ({series:,} active series), and at the whole run's peak (queries and flush "
             "included):", "",
             "| component | CPU-s | share | MiB at ingest peak | bytes per series | MiB at run peak |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for c in names + ["all"]:
        c_cpu = sum(cpu.values()) if c == "all" else cpu.get(c, 0.0)
        mem = r.get("ingest_peak_memory_bytes", 0) if c == "all" else at_ingest.get(c, 0)
        peak = r["peak_memory_bytes"] if c == "all" else at_peak.get(c, 0)
        per = f"{mem / series:,.0f}" if series else "-"
        lines.append(f"| {c} | {c_cpu:.1f} | {c_cpu / total_cpu:.0%} | {mem / 2**20:,.0f} | {per} | {peak / 2**20:,.0f} |")
    return lines


def chart(run: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = _by_system(run)
    names = [n for n in ("shardmon", "prometheus") if n in by]
    metrics = [("CPU-s per M samples", "cpu_s_per_million", 1), ("peak memory, MiB", "peak_memory_bytes", 2**20),
               ("bytes/sample in blocks", "block_bytes_per_sample", 1), ("bytes/sample on disk", "disk_bytes_per_sample", 1)]
    fig, axes = plt.subplots(1, len(metrics) + 1, figsize=(4 * (len(metrics) + 1), 3.6))
    colors = {"shardmon": "#3b7dd8", "prometheus": "#e6522c"}
    for ax, (title, key, div) in zip(axes, metrics):
        vals = [(by[n].get(key) or 0) / div for n in names]
        ax.bar(names, vals, color=[colors[n] for n in names])
        ax.set_title(title, fontsize=10)
        for i, v in enumerate(vals):
            ax.text(i, v, f"{v:.2f}" if v < 100 else f"{v:,.0f}", ha="center", va="bottom", fontsize=8)
    ax = axes[-1]
    if all("queries" in by[n] for n in names):
        qnames = list(by[names[0]]["queries"])
        width = 0.8 / len(names)
        for j, n in enumerate(names):
            ax.bar([i + j * width for i in range(len(qnames))], [by[n]["queries"][q]["median_ms"] for q in qnames],
                   width, label=n, color=colors[n])
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(qnames))], qnames, rotation=60, fontsize=7)
        ax.set_title("query latency, ms (median, log scale)", fontsize=10)
        ax.set_yscale("log")
        ax.legend(fontsize=8)
    fig.suptitle(f"{run['label']}: Shardmon vs Prometheus", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_run(folder: Path, run: dict) -> None:
    (folder / "result.json").write_text(json.dumps(run, indent=1))
    (folder / "report.md").write_text(markdown(run))
    try:
        chart(run, folder / "chart.png")
    except ImportError:
        pass


def summary(run: dict) -> str:
    return markdown(run)


def sweep_markdown(sweep: dict) -> str:
    lines = [
        f"# Scale sweep: {sweep['series_per_target']} series per target, every {sweep['interval_s']:g} s",
        "",
        f"Run {sweep['date']} on {sweep['machine']['cpus']} CPUs. Each row is measured over {sweep['window_s']:.0f} s. "
        "Behind = some target's scrapes were more than 1.5 intervals apart, or fewer than 95% of the expected "
        "samples were ingested.",
        "",
        "| system | shards | targets | expected samples/s | ingested samples/s | CPU cores | CPU-s per M | max gap, s | behind |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in sweep["rows"]:
        lines.append(
            f"| {r['system']} | {r['shards'] or '-'} | {r['targets']} | {r['expected_samples_per_s']:,.0f} | "
            f"{r['samples_per_s']:,.0f} | {r['cpu_cores']:.2f} | {r['cpu_s_per_million']:.2f} | "
            f"{r['max_scrape_gap_s']:.1f} | {'YES' if r['behind'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def sweep_chart(sweep: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    groups: dict[str, list[dict]] = {}
    for r in sweep["rows"]:
        key = "prometheus" if r["system"] == "prometheus" else f"shardmon, {r['shards']} shards"
        groups.setdefault(key, []).append(r)
    for key, rows in groups.items():
        rows.sort(key=lambda r: r["targets"])
        xs = [r["targets"] for r in rows]
        ax1.plot(xs, [r["samples_per_s"] for r in rows], marker="o", label=key)
        for r in rows:
            if r["behind"]:
                ax1.plot([r["targets"]], [r["samples_per_s"]], "rx", markersize=10)
        ax2.plot(xs, [r["cpu_s_per_million"] for r in rows], marker="o", label=key)
    exp = sorted({(r["targets"], r["expected_samples_per_s"]) for r in sweep["rows"]})
    ax1.plot([e[0] for e in exp], [e[1] for e in exp], "k--", label="expected")
    ax1.set(xscale="log", yscale="log", xlabel="targets", ylabel="samples/s ingested", title="throughput (x = behind)")
    ax2.set(xscale="log", xlabel="targets", ylabel="CPU-s per million samples", title="ingest cost")
    ax1.legend(fontsize=8)
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_sweep(folder: Path, sweep: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sweep.json").write_text(json.dumps(sweep, indent=1))
    (folder / "sweep.md").write_text(sweep_markdown(sweep))
    try:
        sweep_chart(sweep, folder / "sweep.png")
    except ImportError:
        pass


def sweep_summary(sweep: dict) -> str:
    return sweep_markdown(sweep)
