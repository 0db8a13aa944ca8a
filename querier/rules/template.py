"""How alerting rules expand their labels and annotations: Go text/template with Prometheus's functions
(:mod:`shardmon.model.gotemplate`), named ``__alert_<alertname>`` as Prometheus names them. A template
that fails expands to Prometheus's text, ``<error expanding template: ...>``, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from shardmon.model.errors import TemplateExpansionError
from shardmon.model.gotemplate.prometheus import expand_template, expansion_error_text
from shardmon.model.histogram import Histogram
from shardmon.model.labels import Labels

#: What a template's ``query`` function calls: a PromQL text at a time (ms) -> (labels, value) pairs, a value a
#: float or a native histogram.
TemplateQuery = Callable[[str, int], list[tuple[Labels, float | Histogram]]]


def expand(name: str, text: str, labels: Mapping[str, str], value: float | Histogram,
           external_labels: Mapping[str, str],
           external_url: str, query: TemplateQuery | None = None, time_ms: int = 0) -> str:
    """Expand ``text``, a label or annotation template of alert ``name``, for one alert."""
    if "{{" not in text:
        return text
    as_pairs = None
    if query is not None:
        def as_pairs(expr: str, t: int) -> list[tuple[dict[str, str], float | Histogram]]:
            return [(lbls.to_dict(), v) for lbls, v in query(expr, t)]
    try:
        return expand_template(f"__alert_{name}", text, labels, value, external_labels, external_url,
                               query=as_pairs, time_ms=time_ms)
    except TemplateExpansionError as exc:
        return expansion_error_text(exc)
