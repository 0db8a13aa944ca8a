"""An alert notification, what a rule evaluator hands the notifier, as Prometheus's ``notifier.Alert``.

:class:`Alert` (labels, annotations, ``startsAt``, ``endsAt``, ``generatorURL``; times as Unix
milliseconds) and how Prometheus 2.42's rule manager fills it when it sends an alert
(``rules.SendAlerts`` and ``AlertingRule.sendAlerts``):

- :func:`needs_sending`: a pending alert never; a resolved one once more after it resolved; an active one
  when more than ``resend_delay`` has passed since it was last sent;
- :func:`valid_until`: the ``endsAt`` of an active alert, ``now + 4 x max(resend_delay, interval)``
  (the Alertmanager resolves it by itself if two evaluations or sends fail);
- :func:`notification`: the :class:`Alert` of an alerting rule's alert: ``startsAt`` is when it fired,
  ``endsAt`` its resolve time when resolved, else its valid-until time; ``generatorURL`` is
  ``<external URL>/graph?g0.expr=<expr>&g0.tab=1`` with the rule's expression as PromQL prints it.

:func:`openapi_json` writes a batch as Alertmanager's API v2 ``PostableAlerts``, as Prometheus marshals
them (keys in Go's order, label maps sorted, RFC 3339 times with milliseconds in UTC, empty annotations
and generator URL left out).
"""

from __future__ import annotations

import datetime as _dt
import json
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["Alert", "generator_url", "needs_sending", "notification", "openapi_json", "rfc3339_millis",
           "valid_until"]


@dataclass(frozen=True)
class Alert:
    """One alert as sent to Alertmanager. Times are Unix milliseconds; 0 means unset (Go's zero time).
    ``labels`` must hold ``alertname``; the notifier adds the external labels and relabels them."""

    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    starts_at_ms: int = 0
    ends_at_ms: int = 0
    generator_url: str = ""

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    def resolved_at(self, now_ms: int) -> bool:
        """Whether the alert had ended at ``now_ms`` (Prometheus's ``Alert.ResolvedAt``)."""
        return self.ends_at_ms != 0 and self.ends_at_ms <= now_ms

    def to_openapi(self) -> dict:
        """As one of Alertmanager's ``PostableAlert`` objects (a JSON-ready dict)."""
        out: dict = {}
        if self.annotations:
            out["annotations"] = {k: self.annotations[k] for k in sorted(self.annotations)}
        out["endsAt"] = rfc3339_millis(self.ends_at_ms)
        out["startsAt"] = rfc3339_millis(self.starts_at_ms)
        if self.generator_url:
            out["generatorURL"] = self.generator_url
        out["labels"] = {k: self.labels[k] for k in sorted(self.labels)}
        return out


_GO_ZERO_TIME = "0001-01-01T00:00:00.000Z"


def rfc3339_millis(ms: int) -> str:
    """Unix milliseconds as go-openapi's ``strfmt.DateTime`` writes a time (``2006-01-02T15:04:05.000Z``);
    0 is Go's zero time."""
    if ms == 0:
        return _GO_ZERO_TIME
    t = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc) + _dt.timedelta(milliseconds=ms)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def openapi_json(alerts: Iterable[Alert]) -> bytes:
    """A batch as the JSON body of ``POST /api/v2/alerts``."""
    return json.dumps([a.to_openapi() for a in alerts], separators=(",", ":"), ensure_ascii=False).encode()


def needs_sending(*, pending: bool, last_sent_ms: int | None, resolved_ms: int | None, now_ms: int,
                  resend_delay_ms: int) -> bool:
    """Whether the rule manager sends an alert at ``now_ms`` (Prometheus's ``Alert.needsSending``).
    ``resolved_ms``/``last_sent_ms``: None when never resolved / never sent (Go's zero time, before every
    real time: 0 is the Unix epoch, a real time)."""
    if pending:
        return False
    if resolved_ms is not None and (last_sent_ms is None or resolved_ms > last_sent_ms):
        return True
    return last_sent_ms is None or last_sent_ms + resend_delay_ms < now_ms


def valid_until(now_ms: int, resend_delay_ms: int, interval_ms: int) -> int:
    """The ``endsAt`` of an active alert sent at ``now_ms``: ``now + 4 x max(resend_delay, interval)``."""
    return now_ms + 4 * max(resend_delay_ms, interval_ms)


def generator_url(external_url: str, expr: str) -> str:
    """``<external URL>/graph?g0.expr=<expr>&g0.tab=1`` (Go's ``url.QueryEscape``: space as ``+``)."""
    return f"{external_url}/graph?g0.expr={urllib.parse.quote_plus(expr, safe='')}&g0.tab=1"


def notification(labels: Mapping[str, str], annotations: Mapping[str, str], *, fired_at_ms: int, resolved_at_ms: int,
                 now_ms: int, resend_delay_ms: int, interval_ms: int, external_url: str, expr: str) -> Alert:
    """The :class:`Alert` the rule manager sends at ``now_ms`` for an alert that fired at ``fired_at_ms``
    and resolved at ``resolved_at_ms`` (0: still active). ``expr``: the rule's expression as PromQL
    prints it; ``external_url`` without a trailing ``/`` (Prometheus's ``--web.external-url``)."""
    ends = resolved_at_ms if resolved_at_ms else valid_until(now_ms, resend_delay_ms, interval_ms)
    return Alert(dict(labels), dict(annotations), fired_at_ms, ends, generator_url(external_url, expr))
