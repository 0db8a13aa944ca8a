"""Series and label lookups over any number of selectors, shared by the HTTP and gRPC APIs.

As Prometheus's ``/api/v1/series``, ``/labels`` and ``/label/<name>/values``: the union over the
selectors (``match[]``), sorted; without selectors, label names and values cover every series.
Selectors are parsed with promql-parser; each needs one matcher that does not match the empty string.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import promql_parser

from shardmon.model.errors import BadQueryError
from shardmon.model.labels import Labels, Matcher
from shardmon.model.storage import LabelsResult, Querier, QueryBudget
from shardmon.querier.promql import QueryGuard, selector_matchers

_DEFAULT_GUARD = QueryGuard()


def parse_matchers(text: str, guard: QueryGuard = _DEFAULT_GUARD) -> list[Matcher]:
    """A series selector, e.g. ``up{job="a"}``, as matchers (its text within ``guard``'s limits)."""
    try:
        expr = guard.parse(text, what="match[] selector")
    except BadQueryError as exc:
        raise BadQueryError(f'invalid parameter "match[]": {exc}') from None
    if not isinstance(expr, promql_parser.VectorSelector):
        raise BadQueryError(f'invalid parameter "match[]": {text!r} is not a series selector')
    matchers = selector_matchers(expr)
    if all(m.matches("") for m in matchers):
        raise BadQueryError('invalid parameter "match[]": match[] must contain at least one non-empty matcher')
    return matchers


class Found(NamedTuple):
    """What a lookup found, its warnings, and whether it may lack what a shard that did not answer has."""

    items: list
    warnings: list[str]
    partial: bool = False


def find_series(querier: Querier, selectors: Sequence[str], start_ms: int, end_ms: int, *,
                guard: QueryGuard = _DEFAULT_GUARD, budget: QueryBudget | None = None) -> Found:
    """The label sets of the series matching any selector, sorted. With a budget, its series limit and
    deadline apply (the series of every selector count)."""
    if not selectors:
        raise BadQueryError("no match[] parameter provided")
    sets = [parse_matchers(s, guard) for s in selectors]
    seen: dict[Labels, None] = {}
    warnings: list[str] = []
    partial = False
    for ms in sets:
        res = querier.select(ms, start_ms, end_ms, skip_samples=True, budget=budget)
        if budget is not None:
            budget.charge(len(res.series), 0)
        warnings.extend(w for w in res.warnings if w not in warnings)
        partial = partial or res.partial
        for s in res.series:
            seen[s.labels] = None
    return Found(sorted(seen), warnings, partial)


def label_names(querier: Querier, selectors: Sequence[str], start_ms: int, end_ms: int, *,
                guard: QueryGuard = _DEFAULT_GUARD, budget: QueryBudget | None = None) -> Found:
    return _union([parse_matchers(s, guard) for s in selectors] or [[]],
                  lambda ms: querier.label_names(ms, start_ms, end_ms, budget=budget))


def label_values(querier: Querier, name: str, selectors: Sequence[str], start_ms: int, end_ms: int, *,
                 guard: QueryGuard = _DEFAULT_GUARD, budget: QueryBudget | None = None) -> Found:
    return _union([parse_matchers(s, guard) for s in selectors] or [[]],
                  lambda ms: querier.label_values(name, ms, start_ms, end_ms, budget=budget))


def _union(sets, lookup: Callable[[list[Matcher]], LabelsResult]) -> Found:
    found: set[str] = set()
    warnings: list[str] = []
    partial = False
    for ms in sets:
        res = lookup(ms)
        found.update(res.values)
        warnings.extend(x for x in res.warnings if x not in warnings)
        partial = partial or res.partial
    return Found(sorted(found), warnings, partial)
