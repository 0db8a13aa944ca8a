"""What ``/api/v1/targets`` answers: Prometheus's JSON of the active and dropped targets, built from what
the coordinator holds (the discovered label sets of each job, the current targets and their assignment)
and the health the scrapers report, plus each active target's ``scraper``.

Shardmon's own components (job ``shardmon``, with ``ingest.self_monitoring``) are a scrape pool of their
own, after the configured jobs, as they would be in a ``prometheus.yml`` listing them last.
"""

from __future__ import annotations

import datetime as dt

from shardmon.ingest.scrape_loop import TargetHealth
from shardmon.ingest.target import SELF_JOB, Target, target_key, with_defaults
from shardmon.model.config import Config
from shardmon.model.labels import Labels
from shardmon.model.units import format_duration_ms


def targets_data(config: Config, discovered: dict[str, list[tuple[dict[str, str], Target | None]]],
                 targets: list[Target], assignment: dict[str, list[Target]], healths: list[TargetHealth],
                 state: str = "any", scrape_pool: str = "") -> dict:
    """``/api/v1/targets``'s ``data``. ``discovered``: per job, each discovered label set with its target
    (None: relabeling dropped it); ``targets``: the targets scraped now; ``assignment``: scraper id ->
    its targets; ``state`` (``active``, ``dropped``, ``any``) and ``scrape_pool`` filter as Prometheus's
    query parameters do."""
    health = {}
    owner = {t.key: sid for sid, ts in assignment.items() for t in ts}
    for h in healths:
        health[target_key(Labels.from_dict(h.labels), h.url)] = h
    active, dropped = [], []
    # As Prometheus, discoveredLabels are what relabeling started from: the scrape config's defaults added.
    pools = [(c.job_name, discovered.get(c.job_name, []), c) for c in config.scrape_configs]
    own = [t for t in targets if t.job == SELF_JOB]
    pools.append((SELF_JOB, [(dict(t.labels), t) for t in own], None))
    current = {t.key: t for t in targets}
    for pool, found, sc in pools:
        if scrape_pool and pool != scrape_pool:
            continue
        for labels, target in found:
            if sc is not None:
                labels = with_defaults(sc, labels)
            if target is None:
                dropped.append({"discoveredLabels": labels})
                continue
            target = current.get(target.key, target)
            h = health.get(target.key)
            last_ms = h.last_scrape_ms if h else 0
            active.append({
                "discoveredLabels": labels,
                "labels": target.labels.to_dict(),
                "scrapePool": pool,
                "scrapeUrl": target.url,
                "globalUrl": target.url,
                "lastError": (h.last_error if h else "") or target.error,
                "lastScrape": _rfc3339(last_ms),
                "lastScrapeDuration": h.last_duration_s if h else 0,
                "health": h.health if h else "unknown",
                "scrapeInterval": format_duration_ms(target.interval_ms),
                "scrapeTimeout": format_duration_ms(target.timeout_ms),
                "scraper": owner.get(target.key, ""),
            })
    data: dict = {}
    if state in ("any", "active"):
        data["activeTargets"] = active
    if state in ("any", "dropped"):
        data["droppedTargets"] = dropped
    return data


def _rfc3339(ms: int) -> str:
    """A time as Prometheus's API writes it; Go's zero time when there is none yet."""
    if ms <= 0:
        return "0001-01-01T00:00:00Z"
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
