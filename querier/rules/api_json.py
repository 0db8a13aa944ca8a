"""Rule groups and alerts as Prometheus 2.42's ``/api/v1/rules`` and ``/api/v1/alerts`` write them
(``web/api/v1/api.go``: ``RuleGroup``, ``AlertingRule``, ``RecordingRule``, ``Alert``). Pure functions.

A ruler renders its own groups with :func:`group_json` (and :func:`group_alerts`); the rules API merges
the dicts of every ruler with :func:`rules_document` and :func:`alerts_document`. The dicts keep Go's
field order and its choices of empty against omitted: an alerting rule always has ``labels``,
``annotations`` (``{}`` when empty) and ``alerts`` (``[]``); a recording rule omits empty ``labels``;
``lastError`` is omitted when empty; an alert's ``keepFiringSince`` only while it keeps firing. Alert
values are strings as ``strconv.FormatFloat(v, 'e', -1, 64)`` writes them (``"3e+00"``), times RFC 3339
in UTC with Go's trailing zeros trimmed (``time.RFC3339Nano``), Go's zero time before any evaluation,
and durations float seconds. 2.42 knows ``type=alert|record`` only (no ``rule_name[]``, ``rule_group[]``,
``file[]``: they arrived in 2.44), and keeps a group whose rules were all filtered out, with ``"rules": []``.
The dicts hold plain floats; :func:`dumps` writes a document as Go's encoder does (``<``, ``>``, ``&``
escaped, floats with Go's digits: ``0.000054864``, ``1``).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from shardmon.model.errors import BadRequestError
from shardmon.model.gotemplate.gofmt import format_float
from shardmon.model.labels import Labels
from shardmon.querier.rules.alerting import Alert, AlertingRule
from shardmon.querier.rules.group import Group
from shardmon.querier.rules.promql_text import go_string
from shardmon.querier.rules.recording import RuleState

__all__ = ["GO_ZERO_TIME", "alert_json", "alerts_document", "dumps", "go_json_float", "group_alerts", "group_json",
           "rfc3339_nano", "rule_json", "rules_document", "rules_type"]

#: Go's zero ``time.Time`` in JSON: a group or rule not evaluated yet.
GO_ZERO_TIME = "0001-01-01T00:00:00Z"
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def rfc3339_nano(ms: int | None) -> str:
    """Unix milliseconds as Go's ``time.Time`` marshals to JSON in UTC (``RFC3339Nano``: the fraction's
    trailing zeros dropped, ``...:05Z`` for a whole second); None is Go's zero time."""
    if ms is None:
        return GO_ZERO_TIME
    t = _EPOCH + dt.timedelta(milliseconds=ms)
    frac = f"{ms % 1000:03d}".rstrip("0")
    return t.strftime("%Y-%m-%dT%H:%M:%S") + (f".{frac}" if frac else "") + "Z"


def go_json_float(v: float) -> str:
    """A float64 as Go's ``encoding/json`` writes it: ``'f'`` format (``1``, ``0.000054864``), ``'e'`` below
    1e-6 or from 1e21 on, its exponent's leading zero dropped (``1e-7``, ``1e+21``)."""
    if math.isnan(v) or math.isinf(v):
        raise ValueError(f"json: unsupported value: {format_float(v)}")  # Go's encoder refuses them too
    a = abs(v)
    if a != 0 and (a < 1e-6 or a >= 1e21):
        s = format_float(v, "e")
        if s[-4:-2] == "e-" and s[-2] == "0":
            s = s[:-2] + s[-1]
        return s
    return format_float(v, "f")


def _labels(labels: Labels | dict[str, str]) -> dict[str, str]:
    items = labels.items() if isinstance(labels, dict) else iter(labels)
    return dict(sorted(items))


def alert_json(alert: Alert) -> dict[str, Any]:
    """One alert as 2.42's ``Alert``: ``labels``, ``annotations``, ``state``, ``activeAt``,
    ``keepFiringSince`` (only while it keeps firing), ``value`` (``FormatFloat(v, 'e', -1, 64)``)."""
    out: dict[str, Any] = {
        "labels": _labels(alert.labels),
        "annotations": _labels(alert.annotations),
        "state": str(alert.state),
        "activeAt": rfc3339_nano(alert.active_at_ms),
    }
    if alert.keep_firing_since_ms is not None:
        out["keepFiringSince"] = rfc3339_nano(alert.keep_firing_since_ms)
    out["value"] = format_float(alert.value, "e")
    return out


def _timing(rule_or_group: RuleState | Group) -> tuple[float, str]:
    return float(rule_or_group.evaluation_time_s), rfc3339_nano(rule_or_group.last_evaluation_ms)


def rule_json(rule: RuleState) -> dict[str, Any]:
    """One rule as 2.42's ``AlertingRule`` (with its alerts not resolved, sorted by labels where Prometheus
    lists them in its map's random order) or ``RecordingRule``."""
    evaluation_time, last_evaluation = _timing(rule)
    if isinstance(rule, AlertingRule):
        out: dict[str, Any] = {
            "state": str(rule.state),
            "name": rule.name,
            "query": go_string(rule.expr),
            "duration": rule.for_ms / 1000,
            "keepFiringFor": rule.keep_firing_for_ms / 1000,
            "labels": _labels(rule.labels),
            "annotations": _labels(rule.annotations),
            "alerts": _sorted_alerts(alert_json(a) for a in rule.active_alerts()),
            "health": rule.health,
        }
        kind = "alerting"
    else:
        out = {"name": rule.name, "query": go_string(rule.expr)}
        if len(rule.labels):
            out["labels"] = _labels(rule.labels)
        out["health"] = rule.health
        kind = "recording"
    if rule.last_error:
        out["lastError"] = rule.last_error
    out["evaluationTime"] = evaluation_time
    out["lastEvaluation"] = last_evaluation
    out["type"] = kind
    return out


def group_json(group: Group, now_ms: int | None = None) -> dict[str, Any]:
    """One group as 2.42's ``RuleGroup``: ``name``, ``file``, ``rules`` (in the file's order), ``interval``
    (seconds), ``limit``, ``evaluationTime``, ``lastEvaluation``. ``now_ms`` is not used: 2.42's answer
    holds the times of the last evaluation only (it is accepted so a ruler may pass its clock)."""
    evaluation_time, last_evaluation = _timing(group)
    return {
        "name": group.name,
        "file": group.file,
        "rules": [rule_json(r) for r in group.rules],
        "interval": group.interval_ms / 1000,
        "limit": group.limit,
        "evaluationTime": evaluation_time,
        "lastEvaluation": last_evaluation,
    }


def group_alerts(group: Group) -> list[dict[str, Any]]:
    """The alerts of a group's alerting rules not resolved, rule by rule, as ``/api/v1/alerts`` lists them."""
    return [a for r in group.rules if isinstance(r, AlertingRule)
            for a in _sorted_alerts(alert_json(a) for a in r.active_alerts())]


def rules_type(raw: str | None) -> str | None:
    """The ``type`` parameter of ``/api/v1/rules`` (any case): ``alert``, ``record`` or None for both;
    anything else is Prometheus's 400 ``bad_data``."""
    typ = (raw or "").lower()
    if typ not in ("", "alert", "record"):
        raise BadRequestError(f'invalid parameter "type": not supported value "{typ}"')
    return typ or None


def rules_document(groups: Iterable[dict[str, Any]], type: str | None = None) -> dict[str, Any]:  # noqa: A002
    """The ``data`` of ``/api/v1/rules`` from rendered groups (of any number of rulers): sorted by file, then
    name, as Prometheus's ``RuleGroups``; with ``type`` ``alert`` (``record``) the recording (alerting) rules
    are left out, and groups left empty stay, as in 2.42."""
    keep = {None: ("alerting", "recording"), "alert": ("alerting",), "record": ("recording",)}[type]
    out = []
    for g in sorted(groups, key=lambda g: (g["file"], g["name"])):
        if type is not None:
            g = dict(g, rules=[r for r in g["rules"] if r["type"] in keep])
        out.append(g)
    return {"groups": out}


def alerts_document(alerts: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``data`` of ``/api/v1/alerts``. Prometheus lists them in its maps' (random) order; here they are
    sorted by labels so that answers repeat."""
    return {"alerts": _sorted_alerts(alerts)}


def _sorted_alerts(alerts: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(alerts, key=lambda a: sorted(a["labels"].items()))


_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029"))


def _string(s: str) -> str:
    text = json.dumps(s, ensure_ascii=False)
    for ch, esc in _ESCAPES:
        text = text.replace(ch, esc)
    return text


def dumps(document: Any) -> str:
    """``document`` (dicts, lists, strings, numbers, booleans, None) as Go's ``encoding/json`` (jsoniter's
    standard configuration) writes it: compact, UTF-8, ``<`` ``>`` ``&`` U+2028 U+2029 escaped in strings,
    every float as :func:`go_json_float` (all of the documents' floats are Go float64s)."""
    if isinstance(document, str):
        return _string(document)
    if isinstance(document, bool) or document is None:
        return json.dumps(document)
    if isinstance(document, int):
        return str(document)
    if isinstance(document, float):
        return go_json_float(document)
    if isinstance(document, dict):
        return "{" + ",".join(f"{_string(str(k))}:{dumps(v)}" for k, v in document.items()) + "}"
    if isinstance(document, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in document) + "]"
    raise TypeError(f"cannot write a {type(document).__name__} as JSON")
