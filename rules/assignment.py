"""Which ruler evaluates which rule group: the hash ring of the group key (``FILE;NAME``, Prometheus's
``GroupKey``) over the ruler ids
(:func:`shardmon.model.hashing.ring_owners`), as the scrape coordinator spreads targets over scrapers.

Ruler ids are ``ruler-0`` ... ``ruler-{N-1}``; a group's owner depends only on its key and N, so any ruler
(also one Ray restarted) computes its own groups from the rule files and N, and changing N moves only the
groups whose winner changed (about 1/N of them going from N-1 to N).
"""

from __future__ import annotations

from collections.abc import Iterable

from shardmon.model.hashing import key_hashes, ring_owners


def ruler_ids(n: int) -> list[str]:
    """The ids of ``n`` rulers."""
    return [f"ruler-{i}" for i in range(n)]


def owners(keys: Iterable[str], n: int) -> list[str]:
    """The ruler of ``n`` that evaluates each group key, in the order given (one ring for all)."""
    keys = list(keys)
    if not keys:
        return []
    ids = ruler_ids(n)
    return [ids[i] for i in ring_owners(key_hashes(k.encode() for k in keys), ids).tolist()]


def owner(key: str, n: int) -> str:
    """The ruler of ``n`` that evaluates the group ``key``."""
    return owners([key], n)[0]


def assign(keys: Iterable[str], n: int) -> dict[str, list[str]]:
    """Every ruler id of ``n`` -> the group keys it evaluates (in the order given)."""
    keys = list(keys)
    out: dict[str, list[str]] = {rid: [] for rid in ruler_ids(n)}
    for key, rid in zip(keys, owners(keys, n)):
        out[rid].append(key)
    return out


def owned(keys: Iterable[str], ruler_id: str, n: int) -> set[str]:
    """The group keys the ruler ``ruler_id`` evaluates when there are ``n`` rulers."""
    keys = list(keys)
    return {k for k, rid in zip(keys, owners(keys, n)) if rid == ruler_id}


def moves(keys: Iterable[str], old_n: int, new_n: int) -> dict[str, tuple[str, str]]:
    """The groups that change owner going from ``old_n`` to ``new_n`` rulers: key -> (old, new owner)."""
    keys = list(keys)
    return {k: (a, b) for k, a, b in zip(keys, owners(keys, old_n), owners(keys, new_n)) if a != b}
