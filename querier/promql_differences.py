"""Where Prometheus 2.42 and 2.53 answer PromQL differently, in one place, with the reason for each.

Shardmon follows 2.53. Two things still compare against 2.42: Prometheus 2.42's own test scripts
(``../shared/promqltest``, run by ``shardmon promqltest``) and the live comparisons against Debian's
Prometheus 2.42 (``tests/integration/test_promql_vs_prometheus.py``). Both skip exactly the cases
listed here (the scripts' cases count as ``different`` in the report). docs/promql.md describes the
differences for people.
"""

from __future__ import annotations

import re
from typing import NamedTuple


class Difference(NamedTuple):
    """One PromQL case 2.53 answers differently from 2.42."""

    #: The script file (for a 2.42 script case), or "" for a live comparison query.
    script: str
    #: The expression, exactly as written in the script or the query set.
    expr: str
    #: The evaluation time of a script case (ms), or None for any.
    time_ms: int | None
    #: Why 2.53's answer differs.
    reason: str
    #: For a script case: an expected line of 2.42's script that 2.53's does not have (2.53's scripts hold
    #: the same cases, under the same file names, with 2.53's answers: those are run).
    expects: str = ""


_ZERO_CUTOFF = ("rate/increase extrapolation: 2.53 cuts the extrapolation towards the window start at half an "
                "average interval before it cuts at the counter's zero point (prometheus#13725); 2.42 extrapolated "
                "to the zero point even when it was further than that")
_ATAN2 = "atan2 drops the metric name in 2.53, as the other arithmetic operators (2.42 kept it)"

#: Cases of Prometheus 2.42's test scripts that 2.53 answers differently.
SCRIPT_CASES: tuple[Difference, ...] = (
    Difference("functions.test", "rate(testcounter_zero_cutoff[20m])", 600_000, _ZERO_CUTOFF,
               '{start="3m"} 0.65'),
    Difference("operators.test", "trigy atan2 trigx", 300_000, _ATAN2, "trigy{} 0.4636476090008061"),
    Difference("operators.test", "trigy atan2 trigNaN", 300_000, _ATAN2, "trigy{} NaN"),
)

#: Queries of the live comparison against Prometheus 2.42 whose answers differ in 2.53.
LIVE_QUERIES: tuple[Difference, ...] = (
    Difference("", "app_temperature_celsius atan2 10", None, _ATAN2),
)


def skipped_script_case(script: str, expr: str, time_ms: int, expected: list[str]) -> str | None:
    """The reason a 2.42 script case is not run (it is in :data:`SCRIPT_CASES`), or None; ``expected``
    are the case's expected lines."""
    for d in SCRIPT_CASES:
        if (d.script == script and _same(d.expr, expr) and (d.time_ms is None or d.time_ms == time_ms)
                and any(_same(d.expects, line) for line in expected)):
            return d.reason
    return None


def skipped_live_query(expr: str) -> str | None:
    """The reason a live comparison query is not compared with Prometheus 2.42, or None."""
    for d in LIVE_QUERIES:
        if _same(d.expr, expr):
            return d.reason
    return None


def _same(a: str, b: str) -> bool:
    return re.sub(r"\s+", " ", a.strip()) == re.sub(r"\s+", " ", b.strip())


__all__ = ["Difference", "LIVE_QUERIES", "SCRIPT_CASES", "skipped_live_query", "skipped_script_case"]
