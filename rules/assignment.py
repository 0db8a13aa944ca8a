"""Which ruler evaluates which rule group: rendezvous hashing of the group key (``FILE;NAME``, Prometheus's
``GroupKey``) over the ruler ids, as the scrape coordinator spreads targets over scrapers.

Ruler ids are ``ruler-0`` ... ``ruler-{N-1}``; a group's owner depends only on its key and N, so any ruler
(also one Ray restarted) computes its own groups from the rule files and N, and changing N moves only the
groups whose winner changed (about 1/N of them going from N-1 to N).
"""

from __future__ import annotations

from collections.abc import Iterable

from shardmon.model.hashing import rendezvous_owner


def ruler_ids(n: int) -> list[str]:
    """The ids of ``n`` rulers."""
    return [f"ruler-{i}" for i in range(n)]


def owner(key: str, n: int) -> str:
    """The ruler of ``n`` that evaluates the group ``key``."""
    return rendezvous_owner(key.encode(), ruler_ids(n))


def assign(keys: Iterable[str], n: int) -> dict[str, list[str]]:
    """Every ruler id of ``n`` -> the group keys it evaluates (in the order given)."""
    out: dict[str, list[str]] = {rid: [] for rid in ruler_ids(n)}
    for key in keys:
        out[owner(key, n)].append(key)
    return out


def owned(keys: Iterable[str], ruler_id: str, n: int) -> set[str]:
    """The group keys the ruler ``ruler_id`` evaluates when there are ``n`` rulers."""
    return {k for k in keys if owner(k, n) == ruler_id}


def moves(keys: Iterable[str], old_n: int, new_n: int) -> dict[str, tuple[str, str]]:
    """The groups that change owner going from ``old_n`` to ``new_n`` rulers: key -> (old, new owner)."""
    out = {}
    for key in keys:
        before, after = owner(key, old_n), owner(key, new_n)
        if before != after:
            out[key] = (before, after)
    return out
