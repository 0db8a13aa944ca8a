"""The PromQL engine: Prometheus 2.x's query language, parsed by promql-parser and evaluated with numpy
over a :class:`~shardmon.model.storage.Querier` (the shard fan-out, or a memory store in tests).

What the rest of Shardmon uses is exported here: :class:`Engine` (``instant``, ``range``), its
:class:`QueryResult` of :class:`ResultSeries`, :class:`UnsupportedQueryError`, and for the series and
label lookups the text guard (:class:`QueryGuard`, with the limits' defaults) and
:func:`selector_matchers`; :func:`instant_selects` and :func:`operands` for the rules' prefetch. The modules behind them (see ``querier/README.md``):

- ``engine``: the evaluator's entry and its walk of the syntax tree;
- ``value``: the values over the step grid (scalar, instant vector, range vector) and the
  evaluation context;
- ``selector``: instant and range selectors, ``offset`` and ``@``;
- ``window``: the (series, step) windows of a range vector and the sums and folds over them;
- ``functions``, ``functions_range``, ``functions_label``, ``histogram``: the functions;
- ``aggregation`` and ``ranking``: the aggregation operators (``topk``, ``bottomk``, ``quantile``);
- ``binary``: operators and vector matching; ``labelset``: series whose labels become equal;
- ``gosort``: Go's heap and sort, replayed where Prometheus's answer depends on their swaps;
- ``guard``: the length and nesting limits on a query's text, checked before it is parsed.
"""

from shardmon.model.promql.value import UnsupportedQueryError
from shardmon.querier.promql.engine import Engine, QueryResult, ResultSeries
from shardmon.querier.promql.guard import (
    DEFAULT_MAX_QUERY_DEPTH,
    DEFAULT_MAX_QUERY_LENGTH,
    MAX_QUERY_DEPTH_CEILING,
    QueryGuard,
)
from shardmon.querier.promql.selector import instant_selects, operands, selector_matchers

__all__ = [
    "DEFAULT_MAX_QUERY_DEPTH",
    "DEFAULT_MAX_QUERY_LENGTH",
    "MAX_QUERY_DEPTH_CEILING",
    "Engine",
    "QueryGuard",
    "QueryResult",
    "ResultSeries",
    "UnsupportedQueryError",
    "instant_selects",
    "operands",
    "selector_matchers",
]
