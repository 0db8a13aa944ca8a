"""Prometheus's alert template expansion (template/template.go and rules/alerting.go of 2.42).

The entry points the rule evaluator calls::

    text = expand_template("__alert_" + alertname, annotation_text, labels, value,
                           external_labels, external_url, query=query_fn, time_ms=eval_ms)
    # raises TemplateExpansionError: the annotation is then expansion_error_text(err)
    err = check_template(text, "__alert_" + alertname)   # None or a TemplateParseError

``query_fn(expr, time_ms)`` runs an instant query and returns samples: objects with ``labels``
(a mapping, ``__name__`` included) and ``value``, or ``(labels, value)`` pairs. The text gets the prelude
``{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}
{{$value := .Value}}``, so error columns count from the start of the prelude, as Prometheus's do.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote_plus, unquote, urlsplit

from shardmon.model.errors import RegexError, TemplateError, TemplateExpansionError, TemplateParseError
from shardmon.model.gotemplate.executor import Template
from shardmon.model.gotemplate.functions import IFACE, GoCallError, GoFunc
from shardmon.model.gotemplate.gofmt import format_float, go_quote
from shardmon.model.gotemplate.values import HTML, GoPointer, GoStringer, GoStruct, GoTime, StrMap, go_type
from shardmon.model.histogram import Histogram
from shardmon.model.histogram_notation import go_string
from shardmon.model.regex import compile_search_regex
from shardmon.model.units import parse_duration_ms

__all__ = ["PRELUDE", "QueryFunc", "expand_template", "check_template", "expansion_error_text",
           "prometheus_funcs", "alert_data", "sample_value"]

PRELUDE = ("{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}"
           "{{$externalURL := .ExternalURL}}{{$value := .Value}}")

QueryFunc = Callable[[str, int], Iterable[Any]]

_SAMPLE = "template.sample"
_QUERY_RESULT = "template.queryResult"
_DATA_TYPE = ("struct { Labels map[string]string; ExternalLabels map[string]string; ExternalURL string; "
              "Value float64 }")


class QueryResult(list):
    """Prometheus's ``queryResult``: a slice of ``*sample``."""

    go_type_name = _QUERY_RESULT


def go_value(value: float | Histogram) -> float | GoStringer:
    """A sample's value as a template sees it (Prometheus 2.53): a float64, or a native histogram as the
    ``*histogram.FloatHistogram`` Go prints with its ``String()`` (no function converts it to a float)."""
    if isinstance(value, Histogram):
        return GoStringer("*histogram.FloatHistogram", go_string(value))
    return float(value)


def sample_value(labels: Mapping[str, str], value: float | Histogram) -> GoPointer:
    """A ``*sample`` with ``.Labels`` and ``.Value``."""
    return GoPointer(GoStruct(_SAMPLE, [("Labels", "map[string]string"), ("Value", "float64")],
                              {"Labels": StrMap(labels), "Value": go_value(value)}))


def alert_data(labels: Mapping[str, str], value: float | Histogram, external_labels: Mapping[str, str],
               external_url: str) -> GoStruct:
    """``template.AlertTemplateData``: the dot of an alert's label and annotation templates (``.Value`` a
    native histogram when the alert's sample is one, as 2.53)."""
    return GoStruct(_DATA_TYPE, [("Labels", "map[string]string"), ("ExternalLabels", "map[string]string"),
                                 ("ExternalURL", "string"), ("Value", "float64")],
                    {"Labels": StrMap(labels), "ExternalLabels": StrMap(external_labels),
                     "ExternalURL": external_url, "Value": go_value(value)})


# --- conversions ----------------------------------------------------------------------------------

_GO_FLOAT = re.compile(r"[+-]?(?:(?:\d(?:_?\d)*)?\.?\d(?:_?\d)*(?:[eE][+-]?\d+)?|\d+\.(?:[eE][+-]?\d+)?|"
                       r"0[xX][0-9a-fA-F_.]+[pP][+-]?\d+|inf|infinity|nan)", re.IGNORECASE)


def _parse_float(s: str) -> float:
    """Go's ``strconv.ParseFloat(s, 64)``."""
    if not _GO_FLOAT.fullmatch(s) or ("_" in s and not s.lstrip("+-").lower().startswith("0x")):
        raise GoCallError(f"strconv.ParseFloat: parsing {go_quote(s)}: invalid syntax")
    body = s.replace("_", "")
    v = float.fromhex(body) if "x" in body.lower() else float(body)
    if math.isinf(v) and "inf" not in body.lower():
        raise GoCallError(f"strconv.ParseFloat: parsing {go_quote(s)}: value out of range")
    return v


def _to_float(v: Any) -> float:
    if isinstance(v, float):
        return v
    if isinstance(v, HTML):
        raise GoCallError("can't convert template.HTML to float")
    if isinstance(v, str):
        return _parse_float(v)
    if isinstance(v, int) and not isinstance(v, bool):
        return float(v)
    raise GoCallError(f"can't convert {go_type(v)} to float")


def _g4(v: float) -> str:
    return format_float(v, "g", 4)


def _scaled(v: float, prefixes: tuple[str, ...], base: float, up: bool) -> str:
    prefix = ""
    for p in prefixes:
        if (abs(v) < base) if up else (abs(v) >= 1):
            break
        prefix = p
        v = v / base if up else v * base
    return _g4(v) + prefix


def humanize(i: Any) -> str:
    v = _to_float(i)
    if v == 0 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    if abs(v) >= 1:
        return _scaled(v, ("k", "M", "G", "T", "P", "E", "Z", "Y"), 1000.0, True)
    return _scaled(v, ("m", "u", "n", "p", "f", "a", "z", "y"), 1000.0, False)


def humanize1024(i: Any) -> str:
    v = _to_float(i)
    if abs(v) <= 1 or math.isnan(v) or math.isinf(v):
        return _g4(v)
    return _scaled(v, ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"), 1024.0, True)


def humanize_duration(i: Any) -> str:
    v = _to_float(i)
    if math.isnan(v) or math.isinf(v):
        return _g4(v)
    if v == 0:
        return _g4(v) + "s"
    if abs(v) >= 1:
        sign = ""
        if v < 0:
            sign, v = "-", -v
        d = int(v) if v < 2**63 else -(2**63)  # Go's int64(v) of a too large float is MinInt64 on amd64
        seconds, minutes, hours, days = d % 60, (d // 60) % 60, (d // 3600) % 24, d // 86400
        if d < 0:  # the amd64 conversion result: Go's truncated division and remainder
            seconds, minutes = -((-d) % 60), -(((-d) // 60) % 60)
            hours, days = -(((-d) // 3600) % 24), -((-d) // 86400)
        if days != 0:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours != 0:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes != 0:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(v)}s"
    return _scaled(v, ("m", "u", "n", "p", "f", "a", "z", "y"), 1000.0, False) + "s"


def humanize_percentage(i: Any) -> str:
    return _g4(_to_float(i) * 100) + "%"


class _NaNOrInf(Exception):
    pass


def _float_to_time(v: float) -> GoTime:
    if math.isnan(v) or math.isinf(v):
        raise _NaNOrInf
    ts = v * 1e9
    if ts > 9.223372036854775807e18 or ts < -9.223372036854775808e18:
        raise GoCallError(f"{format_float(v)} cannot be represented as a nanoseconds timestamp since it "
                          "overflows int64")
    ns = int(ts)
    ms = ns // 1_000_000 if ns >= 0 else -((-ns) // 1_000_000)  # model.TimeFromUnixNano truncates
    return GoTime(ms * 1_000_000)


def humanize_timestamp(i: Any) -> str:
    v = _to_float(i)
    try:
        return _float_to_time(v).string()
    except _NaNOrInf:
        return _g4(v)


def to_time(i: Any) -> GoTime:
    try:
        return _float_to_time(_to_float(i))
    except _NaNOrInf:
        raise GoCallError("value is NaN or Inf") from None


def _split_host_port(hp: str) -> tuple[str, str]:
    """Go's ``net.SplitHostPort``; GoCallError when it fails."""
    i = hp.rfind(":")
    if i < 0:
        raise GoCallError("missing port in address")
    if hp.startswith("["):
        end = hp.find("]")
        if end < 0:
            raise GoCallError("missing ']' in address")
        if end + 1 == len(hp):
            raise GoCallError("missing port in address")
        if end + 1 != i:
            raise GoCallError("too many colons in address" if hp[end + 1] == ":" else "missing port in address")
        host = hp[1:end]
        if "[" in hp[1:] or "]" in hp[end + 1:]:
            raise GoCallError("unexpected '[' in address")
        return host, hp[i + 1:]
    host = hp[:i]
    if ":" in host:
        raise GoCallError("too many colons in address")
    if "[" in hp or "]" in hp:
        raise GoCallError("unexpected '[' in address")
    return host, hp[i + 1:]


def strip_port(hp: str) -> str:
    try:
        return _split_host_port(hp)[0]
    except GoCallError:
        return hp


def _is_ip(host: str) -> bool:
    if "%" in host:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def strip_domain(hp: str) -> str:
    try:
        host, port = _split_host_port(hp)
    except GoCallError:
        host, port = hp, ""
    if _is_ip(host):
        return hp
    host = host.split(".")[0]
    if port:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return host


def _case(s: str, fn: Callable[[str], str]) -> str:
    out = []
    for c in s:
        m = fn(c)
        out.append(m if len(m) == 1 else (m[0] if c == "\u0130" else c))
    return "".join(out)


def _is_separator(c: str) -> bool:
    if ord(c) < 0x80:
        return not (c.isalnum() or c == "_")
    if c.isalpha() or c.isdigit():
        return False
    return c.isspace()


def title(s: str) -> str:
    """Go's deprecated ``strings.Title``: the first letter of each word in title case."""
    out, prev = [], " "
    for c in s:
        if _is_separator(prev):
            t = c.title()
            out.append(t if len(t) == 1 else c)
        else:
            out.append(c)
        prev = c
    return "".join(out)


def _regex(pattern: str):
    try:
        return compile_search_regex(pattern)
    except RegexError as e:
        reason = e.reason if "`" in e.reason else f"{e.reason}: `{pattern}`"
        raise GoCallError(f"error parsing regexp: {reason}") from None


def _must_compile(pattern: str):
    try:
        return _regex(pattern)
    except GoCallError as e:  # MustCompile panics; the template's safeCall recovers the panic
        q = f"`{pattern}`" if "`" not in pattern and all(c.isprintable() or c == "\t" for c in pattern) \
            else go_quote(pattern)
        raise GoCallError(f"regexp: Compile({q}): {e}") from None


def parse_duration(d: str) -> float:
    try:
        return parse_duration_ms(d) / 1000.0
    except ValueError as e:
        if "out of range" in str(e):
            raise GoCallError("duration out of range") from None
        raise GoCallError(f"not a valid duration string: {go_quote(d)}") from None


def _first(v: list) -> Any:
    if v:
        return v[0]
    raise GoCallError("first() called on vector with no elements")


def _fields(s: Any) -> dict[str, Any]:
    if s is None:
        raise GoCallError("runtime error: invalid memory address or nil pointer dereference")
    return s.target.values


def _sort_by_label(label: str, v: list) -> list:
    v.sort(key=lambda s: _fields(s)["Labels"].get(label, "").encode("utf-8", "surrogatepass"))
    return v


def _args(*a: Any) -> dict[str, Any]:
    return {f"arg{i}": x for i, x in enumerate(a)}


def _static_funcs() -> dict[str, GoFunc]:
    """The functions of Prometheus's map that depend on nothing of one expansion (built once)."""
    s, q, smp, i = "string", _QUERY_RESULT, "*" + _SAMPLE, IFACE
    return {
        "first": GoFunc(_first, (q,)),
        "label": GoFunc(lambda name, x: _fields(x)["Labels"].get(name, ""), (s, smp)),
        "value": GoFunc(lambda x: _fields(x)["Value"], (smp,)),
        "strvalue": GoFunc(lambda x: _fields(x)["Labels"].get("__value__", ""), (smp,)),
        "args": GoFunc(_args, (), i),
        "reReplaceAll": GoFunc(lambda p, r, t: _must_compile(p).replace_all(t, r), (s, s, s)),
        "safeHtml": GoFunc(HTML, (s,)),
        "match": GoFunc(lambda p, t: _regex(p).search(t), (s, s)),
        "title": GoFunc(title, (s,)),
        "toUpper": GoFunc(lambda x: _case(x, str.upper), (s,)),
        "toLower": GoFunc(lambda x: _case(x, str.lower), (s,)),
        "graphLink": GoFunc(lambda e: f"/graph?g0.expr={quote_plus(e, safe='')}&g0.tab=0", (s,)),
        "tableLink": GoFunc(lambda e: f"/graph?g0.expr={quote_plus(e, safe='')}&g0.tab=1", (s,)),
        "sortByLabel": GoFunc(_sort_by_label, (s, q)),
        "stripPort": GoFunc(strip_port, (s,)),
        "stripDomain": GoFunc(strip_domain, (s,)),
        "humanize": GoFunc(humanize, (i,)),
        "humanize1024": GoFunc(humanize1024, (i,)),
        "humanizeDuration": GoFunc(humanize_duration, (i,)),
        "humanizePercentage": GoFunc(humanize_percentage, (i,)),
        "humanizeTimestamp": GoFunc(humanize_timestamp, (i,)),
        "toTime": GoFunc(to_time, (i,)),
        "parseDuration": GoFunc(parse_duration, (s,)),
    }


_STATIC_FUNCS = _static_funcs()


def prometheus_funcs(query: QueryFunc | None, time_ms: int, external_url: str) -> dict[str, GoFunc]:
    """Prometheus's template function map (``NewTemplateExpander``)."""

    def run_query(q: str) -> QueryResult:
        if query is None:
            raise GoCallError("no query function: queries are not available here")
        out = QueryResult()
        for s in query(q, time_ms):
            labels, value = (s.labels, s.value) if hasattr(s, "labels") else s
            out.append(sample_value(labels, value))
        return out

    return {
        "query": GoFunc(run_query, ("string",)),
        **_STATIC_FUNCS,
        "pathPrefix": GoFunc(lambda: unquote(urlsplit(external_url).path)),
        "externalURL": GoFunc(lambda: external_url),
    }


def expand_template(name: str, text: str, labels: Mapping[str, str], value: float | Histogram,
                    external_labels: Mapping[str, str] | None = None, external_url: str = "",
                    query: QueryFunc | None = None, time_ms: int = 0) -> str:
    """An alert label or annotation template expanded as Prometheus's rule manager does.

    ``name`` is the template's name (Prometheus uses ``"__alert_" + alertname``). Raises
    :class:`TemplateExpansionError` whose message is Prometheus's error text.
    """
    funcs = prometheus_funcs(query, time_ms, external_url)
    try:
        tmpl = Template(name, PRELUDE + text, funcs)
    except TemplateError as e:
        raise TemplateExpansionError(f"error parsing template {name}: {e}") from e
    data = alert_data(labels, value, external_labels or {}, external_url)
    try:
        return tmpl.execute(data)
    except TemplateError as e:
        raise TemplateExpansionError(f"error executing template {name}: {e}") from e
    except RecursionError:
        raise TemplateExpansionError(f"error executing template {name}: template: {name}: "
                                     "nesting too deep") from None


def expansion_error_text(err: TemplateExpansionError) -> str:
    """What an alert's label or annotation becomes when its template fails (rules/alerting.go)."""
    return f"<error expanding template: {err}>"


def check_template(text: str, name: str = "__alert_") -> TemplateParseError | None:
    """Parse ``text`` as ``promtool check rules`` does (with the prelude); its error or None."""
    try:
        Template(name, PRELUDE + text, prometheus_funcs(None, 0, ""))
    except TemplateParseError as e:
        return e
    return None

