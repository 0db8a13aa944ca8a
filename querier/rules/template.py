"""The seam to Go text/template: how alerting rules expand their labels and annotations.

:func:`expand` is the one function the rules call. For now it substitutes only ``{{ $labels.NAME }}``,
``{{ $value }}`` and ``{{ $externalLabels.NAME }}`` (and ``{{ $externalURL }}``), with Go's formatting of the
value; at merge the lead replaces its body with ``shardmon.model.gotemplate.expand_template``, which takes
the same arguments. An error expands as Prometheus's does: ``<error expanding template: ...>``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping

#: What a template's ``query`` function calls: a PromQL text at a time (ms) -> (labels dict, value) pairs.
TemplateQuery = Callable[[str, int], list[tuple[dict[str, str], float]]]

_ACTION = re.compile(r"\{\{-?\s*(.*?)\s*-?\}\}")
_REF = re.compile(r"^\$(labels|externalLabels)\.([a-zA-Z_][a-zA-Z0-9_]*)$|^\$(value|externalURL)$")


def go_float(value: float) -> str:
    """A float as Go's ``%v`` prints it (``strconv.FormatFloat(v, 'g', -1, 64)``): ``1``, ``0.5``, ``1e+21``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        sign = "-" if exp.startswith("-") else "+"
        text = f"{mantissa}e{sign}{abs(int(exp)):02d}"
    return text


def expand(name: str, text: str, labels: Mapping[str, str], value: float, external_labels: Mapping[str, str],
           external_url: str, query: TemplateQuery | None = None, time_ms: int = 0) -> str:
    """Expand ``text``, the template of alert ``name``, for one alert (see the module's docstring)."""
    if "{{" not in text:
        return text

    def action(m: re.Match) -> str:
        ref = _REF.match(m.group(1))
        if ref is None:
            raise ValueError(f"template: __alert_{name}: unsupported action {{{{{m.group(1)}}}}} "
                             "(only $labels.x, $value, $externalLabels.x, $externalURL until gotemplate is merged)")
        if ref.group(1) == "labels":
            return labels.get(ref.group(2), "<no value>")
        if ref.group(1) == "externalLabels":
            return external_labels.get(ref.group(2), "<no value>")
        return go_float(value) if ref.group(3) == "value" else external_url

    try:
        return _ACTION.sub(action, text)
    except ValueError as exc:
        return f"<error expanding template: {exc}>"
