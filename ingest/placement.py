"""Where the coordinator puts its scrapers on a Ray cluster: pure logic over ``ray.nodes()``'s records.

Scrapers go round-robin over the alive nodes that have the CPUs a scraper reserves, worker nodes
first, so a head started with ``--num-cpus 0`` gets none. The coordinator pins each scraper to its node
with a *soft* affinity (:mod:`shardmon.ingest.coordinator`), so Ray runs it elsewhere should the node be gone.
"""

from __future__ import annotations


def is_head(node: dict) -> bool:
    """Whether a ``ray.nodes()`` record is the head node's."""
    return "node:__internal_head__" in node.get("Resources", {})


def scraper_nodes(nodes: list[dict], num_cpus: float) -> list[dict]:
    """The nodes scrapers may go to, in placement order: alive, with at least ``num_cpus`` CPUs; worker
    nodes before the head, then by address and id (so the order does not depend on ``ray.nodes()``'s).
    ``nodes`` are as ``ray.nodes()`` returns them."""
    ok = [n for n in nodes if n.get("Alive") and n.get("Resources", {}).get("CPU", 0) >= num_cpus]
    return sorted(ok, key=lambda n: (is_head(n), n.get("NodeManagerAddress", ""), n.get("NodeManagerPort", 0),
                                     n["NodeID"]))


def place_scrapers(scraper_ids: list[str], node_ids: list[str]) -> dict[str, str | None]:
    """Scraper id -> the node it should start on: round-robin over ``node_ids`` in order, so N nodes
    each get ``len(scraper_ids) / N`` scrapers, give or take one. ``None`` (no eligible node) leaves
    the choice to Ray."""
    if not node_ids:
        return {sid: None for sid in scraper_ids}
    return {sid: node_ids[i % len(node_ids)] for i, sid in enumerate(scraper_ids)}
