"""Series and label lookups over any number of selectors, shared by the HTTP and gRPC APIs.

As Prometheus's ``/api/v1/series``, ``/labels`` and ``/label/<name>/values``: the union over the
selectors (``match[]``), sorted; without selectors, label names and values cover every series.
Selectors are parsed with promql-parser; each needs one matcher that does not match the empty string.
"""

from __future__ import annotations

from collections.abc import Sequence

import promql_parser

from model.errors import BadQueryError
from model.labels import Labels, Matcher
from model.storage import Querier
from querier.selector import selector_matchers


def parse_matchers(text: str) -> list[Matcher]:
    """A series selector, e.g. ``up{job="a"}``, as matchers."""
    try:
        expr = promql_parser.parse(text)
    except ValueError as exc:
        raise BadQueryError(f'invalid parameter "match[]": {exc}') from None
    if not isinstance(expr, promql_parser.VectorSelector):
        raise BadQueryError(f'invalid parameter "match[]": {text!r} is not a series selector')
    matchers = selector_matchers(expr)
    if all(m.matches("") for m in matchers):
        raise BadQueryError('invalid parameter "match[]": match[] must contain at least one non-empty matcher')
    return matchers


def find_series(querier: Querier, selectors: Sequence[str], start_ms: int, end_ms: int) -> tuple[list[Labels], list[str]]:
    if not selectors:
        raise BadQueryError("no match[] parameter provided")
    sets = [parse_matchers(s) for s in selectors]
    seen: dict[Labels, None] = {}
    warnings: list[str] = []
    for ms in sets:
        res = querier.select(ms, start_ms, end_ms, skip_samples=True)
        warnings.extend(w for w in res.warnings if w not in warnings)
        for s in res.series:
            seen[s.labels] = None
    return sorted(seen), warnings


def label_names(querier: Querier, selectors: Sequence[str], start_ms: int, end_ms: int) -> tuple[list[str], list[str]]:
    return _union([parse_matchers(s) for s in selectors] or [[]],
                  lambda ms: querier.label_names(ms, start_ms, end_ms))


def label_values(querier: Querier, name: str, selectors: Sequence[str], start_ms: int,
                 end_ms: int) -> tuple[list[str], list[str]]:
    return _union([parse_matchers(s) for s in selectors] or [[]],
                  lambda ms: querier.label_values(name, ms, start_ms, end_ms))


def _union(sets, lookup) -> tuple[list[str], list[str]]:
    found: set[str] = set()
    warnings: list[str] = []
    for ms in sets:
        names, w = lookup(ms)
        found.update(names)
        warnings.extend(x for x in w if x not in warnings)
    return sorted(found), warnings
