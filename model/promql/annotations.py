"""The texts of Prometheus 2.53's PromQL annotations on floats (``util/annotations/annotations.go``).

An annotation is a warning (``PromQL warning: ...``, added with ``EvalContext.warn``) or an info
(``PromQL info: ...``, ``EvalContext.info``); each text is added once per query. Prometheus's API
appends the position of the expression in the query (`` (1:10)``); Shardmon's parser keeps no
positions, so the texts here are position-free, as Prometheus's ``Annotations.AsStrings`` gives them
without a query. Values print as Go's ``%g`` and names as Go's ``%q``.

The annotations on native histograms (mixed floats and histograms, not a counter/gauge, mixed classic
and native) are the engine's histogram part's.
"""

from __future__ import annotations

from shardmon.model.gotemplate.gofmt import format_float, go_quote

WARNING = "PromQL warning"
INFO = "PromQL info"

#: The suffixes of the metric names ``rate`` and ``increase`` take for counters without a word.
COUNTER_SUFFIXES = ("_total", "_sum", "_count", "_bucket")


def invalid_quantile(q: float) -> str:
    """``quantile``, ``quantile_over_time`` or ``histogram_quantile`` with q NaN or outside [0, 1]."""
    return f"{WARNING}: quantile value should be between 0 and 1, got {format_float(float(q), 'g')}"


def bad_bucket_label(metric_name: str, le: str) -> str:
    """``histogram_quantile`` over a series whose ``le`` is missing or not a number (the series is ignored)."""
    return (f'{WARNING}: bucket label "le" is missing or has a malformed value of {go_quote(le)} '
            f"for metric name {go_quote(metric_name)}")


def possible_non_counter(metric_name: str) -> str:
    """``rate``/``increase`` of a selector whose metric name does not look like a counter's."""
    return (f"{INFO}: metric might not be a counter, name does not end in _total/_sum/_count/_bucket: "
            f"{go_quote(metric_name)}")


def looks_like_counter(metric_name: str) -> bool:
    """Whether ``rate``/``increase`` of ``metric_name`` goes without :func:`possible_non_counter`."""
    return not metric_name or metric_name.endswith(COUNTER_SUFFIXES)


def forced_monotonicity(metric_name: str) -> str:
    """``histogram_quantile`` had to raise a classic bucket's count to the one below it."""
    return (f"{INFO}: input to histogram_quantile needed to be fixed for monotonicity (see "
            "https://prometheus.io/docs/prometheus/latest/querying/functions/#histogram_quantile) "
            f"for metric name {go_quote(metric_name)}")


__all__ = ["COUNTER_SUFFIXES", "bad_bucket_label", "forced_monotonicity", "invalid_quantile",
           "looks_like_counter", "possible_non_counter"]
