"""Scrape targets: what to scrape, how often, and with which labels, as Prometheus derives them.

From a ``static_configs`` target group, each address gets the group's labels, then the scrape
config's defaults where the group did not set them (``job``, ``__metrics_path__``, ``__scheme__``,
``__scrape_interval__``, ``__scrape_timeout__``, ``__param_<name>``), so a group label overrides the
config, exactly as in Prometheus. ``instance`` defaults to ``__address__``. Labels starting with
``__`` shape the scrape and are then dropped from the target's labels.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Sequence
from typing import NamedTuple

from model.config import Config, ScrapeConfig, format_duration_ms, parse_duration_ms
from model.errors import ConfigError
from model.hashing import rendezvous_owner
from model.labels import Labels

ADDRESS = "__address__"
SCHEME = "__scheme__"
METRICS_PATH = "__metrics_path__"
SCRAPE_INTERVAL = "__scrape_interval__"
SCRAPE_TIMEOUT = "__scrape_timeout__"
PARAM_PREFIX = "__param_"


class Target(NamedTuple):
    """One scrape target, everything a scrape loop needs (picklable, for Ray)."""

    job: str
    url: str
    labels: Labels  # the labels every sample of the target gets (job, instance, group labels)
    interval_ms: int
    timeout_ms: int
    honor_labels: bool
    honor_timestamps: bool

    @property
    def key(self) -> bytes:
        """Stable identity of the target: its labels and URL (what rendezvous hashing hashes)."""
        return self.labels.canonical() + b"\x00" + self.url.encode()

    @property
    def instance(self) -> str:
        return self.labels.get("instance")


def _target(sc: ScrapeConfig, address: str, group_labels: dict[str, str], where: str) -> Target:
    lb = dict(group_labels)
    lb[ADDRESS] = address
    defaults = {
        "job": sc.job_name,
        SCRAPE_INTERVAL: format_duration_ms(sc.scrape_interval),  # type: ignore[arg-type]
        SCRAPE_TIMEOUT: format_duration_ms(sc.scrape_timeout),  # type: ignore[arg-type]
        METRICS_PATH: sc.metrics_path,
        SCHEME: sc.scheme,
    }
    for name, values in sc.params.items():
        if values:
            defaults[PARAM_PREFIX + name] = values[0]
    for name, value in defaults.items():
        if not lb.get(name):
            lb[name] = value
    if not lb.get("instance"):
        lb["instance"] = lb[ADDRESS]
    try:
        interval = parse_duration_ms(lb[SCRAPE_INTERVAL])
        timeout = parse_duration_ms(lb[SCRAPE_TIMEOUT])
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    if timeout > interval:
        raise ConfigError(f"{where}: scrape timeout {lb[SCRAPE_TIMEOUT]} greater than interval {lb[SCRAPE_INTERVAL]}")
    scheme = lb[SCHEME]
    if scheme not in ("http", "https"):
        raise ConfigError(f"{where}: invalid scheme {scheme!r}")
    params: dict[str, list[str]] = {k: list(v) for k, v in sc.params.items()}
    for name, value in lb.items():
        if name.startswith(PARAM_PREFIX):
            pname = name[len(PARAM_PREFIX) :]
            params[pname] = [value] + params.get(pname, [])[1:]
    query = urllib.parse.urlencode([(k, v) for k, vs in params.items() for v in vs])
    path = lb[METRICS_PATH]
    url = f"{scheme}://{lb[ADDRESS]}{path}" + (f"?{query}" if query else "")
    public = Labels.from_pairs((n, v) for n, v in lb.items() if not n.startswith("__"))
    return Target(lb["job"], url, public, interval, timeout, sc.honor_labels, sc.honor_timestamps)


def targets_from_config(config: Config) -> list[Target]:
    """Every target of every scrape config, in configuration order, without duplicates."""
    out: list[Target] = []
    seen: set[bytes] = set()
    for i, sc in enumerate(config.scrape_configs):
        for j, group in enumerate(sc.static_configs):
            for k, address in enumerate(group.targets):
                t = _target(sc, address, group.labels, f"scrape_configs[{i}].static_configs[{j}].targets[{k}]")
                if t.key not in seen:
                    seen.add(t.key)
                    out.append(t)
    return out


def assign_targets(targets: Sequence[Target], scraper_ids: Sequence[str]) -> dict[str, list[Target]]:
    """Rendezvous assignment: each target to the scraper with the highest weight for its key."""
    out: dict[str, list[Target]] = {s: [] for s in scraper_ids}
    for t in targets:
        out[rendezvous_owner(t.key, scraper_ids)].append(t)
    return out


SELF_JOB = "shardmon"


def self_targets(config: Config, components: Sequence[tuple[str, str, str]]) -> list[Target]:
    """Targets for Shardmon's own components: ``(component, host:port, metrics path)`` each, scraped
    as job ``shardmon`` with a ``component`` label, at the global interval."""
    g = config.global_
    out = []
    for component, address, path in components:
        labels = Labels.from_dict({"job": SELF_JOB, "instance": address, "component": component})
        out.append(Target(SELF_JOB, f"http://{address}{path}", labels, g.scrape_interval, g.scrape_timeout or g.scrape_interval,
                          False, True))
    return out


def static_components(config: Config) -> list[tuple[str, str, str]]:
    """The components whose metrics addresses the configuration gives."""
    out = [("shard", n.metrics_address, "/metrics") for n in config.shards.nodes if n.metrics_address]
    out.append(("querier", config.querier.http_address, "/metrics"))
    if config.receiver is not None:
        out.append(("receiver", config.receiver.http_address, "/metrics"))
    return out
