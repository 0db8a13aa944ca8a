"""Alerting rules: Prometheus 2.42's alert state machine (``rules/alerting.go``), in milliseconds.

An :class:`AlertingRule` evaluated at ``ts`` turns each series of its expression's result into an
:class:`Alert` keyed by its labels (the series' labels without ``__name__``, the rule's templated labels,
``alertname``). New alerts start *pending* with ``active_at = ts``; a pending alert fires once it has been
active for ``for``; an alert missing from the result goes *inactive* (``resolved_at = ts``), unless it was
firing and ``keep_firing_for`` has not passed since it went missing; a pending alert that goes missing
is dropped, a resolved one is kept 15 minutes (:data:`RESOLVED_RETENTION_MS`) so it is re-sent as
resolved. A native histogram sample makes an alert as a float does, its value 0 (Prometheus 2.53 keeps the
sample's float field) and its templates' ``$value`` the histogram. Each evaluation returns the ``ALERTS`` and ``ALERTS_FOR_STATE`` samples to write (once the
rule's ``for`` state is restored; the group writes them at ``ts - query_offset``). Over the group's ``limit`` of active alerts the evaluation fails and
every alert is forgotten, as Prometheus does.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from shardmon.model import notification
from shardmon.model.histogram import Histogram
from shardmon.model.labels import Labels
from shardmon.querier.rules.recording import QueryFunc, RuleError, RuleState, Sample
from shardmon.querier.rules.template import expand

ALERT_METRIC = "ALERTS"
ALERT_FOR_STATE_METRIC = "ALERTS_FOR_STATE"
RESOLVED_RETENTION_MS = 15 * 60_000


class AlertState(enum.IntEnum):
    """An alert's state; the order is Prometheus's (a rule's state is the greatest of its alerts')."""

    INACTIVE = 0
    PENDING = 1
    FIRING = 2

    def __str__(self) -> str:
        return self.name.lower()


@dataclass
class Alert:
    """One alert of a rule. Times are ms since the epoch; None is Go's zero time (never)."""

    state: AlertState
    labels: Labels
    annotations: Labels
    value: float
    active_at_ms: int
    fired_at_ms: int | None = None
    resolved_at_ms: int | None = None
    last_sent_at_ms: int | None = None
    valid_until_ms: int | None = None
    keep_firing_since_ms: int | None = None

    def needs_sending(self, ts_ms: int, resend_delay_ms: int) -> bool:
        """Whether the notifier must get this alert now (Prometheus's ``needsSending``)."""
        return notification.needs_sending(pending=self.state == AlertState.PENDING,
                                          last_sent_ms=self.last_sent_at_ms, resolved_ms=self.resolved_at_ms,
                                          now_ms=ts_ms, resend_delay_ms=resend_delay_ms)


#: Where an evaluation's alerts to send go: (the rule's expression, the alerts), as Prometheus's NotifyFunc.
NotifyFunc = Callable[[str, list[Alert]], None]


class AlertingRule(RuleState):
    """An ``alert`` rule and its active alerts (safe to read from another thread through :meth:`alerts`)."""

    kind = "alerting"

    def __init__(self, name: str, expr: str, *, for_ms: int = 0, keep_firing_for_ms: int = 0,
                 labels: Mapping[str, str] | None = None, annotations: Mapping[str, str] | None = None,
                 external_labels: Mapping[str, str] | None = None, external_url: str = "",
                 restored: bool = False) -> None:
        super().__init__(name, expr, Labels.from_dict(labels or {}))
        self.for_ms = for_ms
        self.keep_firing_for_ms = keep_firing_for_ms
        self.annotations = dict(annotations or {})
        self.external_labels = dict(external_labels or {})
        self.external_url = external_url
        #: Whether the ``for`` state was restored (or needs no restoring): only then are ALERTS written.
        self.restored = restored
        self.active: dict[Labels, Alert] = {}
        self._lock = threading.Lock()

    def eval(self, ts_ms: int, query: QueryFunc, limit: int = 0, query_offset_ms: int = 0) -> list[Sample]:
        # The expression runs ``query_offset_ms`` in the past; the state machine (``active_at``, ``for``,
        # ``keep_firing_for``) and the templates' ``query`` keep the slot's time, as in Prometheus 2.53.
        result = query(self.expr, ts_ms - query_offset_ms)
        new: dict[Labels, Alert] = {}
        for labels, value in result:
            # Templates see the sample's labels as the query gave them (``__name__`` too, as Prometheus's
            # AlertTemplateData); the alert's own labels drop the metric name.
            data = labels.to_dict()

            def fill(text: str, data=data, value=value) -> str:
                return expand(self.name, text, data, value, self.external_labels, self.external_url, query, ts_ms)

            lbls = labels.without(("__name__",)).to_dict()
            for k, v in self.labels:
                lbls[k] = fill(v)
            lbls["alertname"] = self.name
            key = Labels.from_dict(lbls)
            if key in new:
                raise RuleError("vector contains metrics with the same labelset after applying alert labels")
            # A native histogram sample's alert value is its float field, 0, as 2.53 (``smpl.F``); the templates'
            # ``$value`` is the histogram itself.
            new[key] = Alert(AlertState.PENDING, key, Labels.from_dict({k: fill(v) for k, v in self.annotations.items()}),
                             0.0 if isinstance(value, Histogram) else value, ts_ms)
        samples: list[Sample] = []
        with self._lock:
            for key, a in new.items():
                old = self.active.get(key)
                if old is not None and old.state != AlertState.INACTIVE:
                    old.value = a.value
                    if a.annotations != old.annotations:  # Unchanged: the long-lived object stays.
                        old.annotations = a.annotations
                    continue
                self.active[key] = a
            n_active = 0
            for key, a in list(self.active.items()):
                if key not in new:
                    keep_firing = False
                    if a.state == AlertState.FIRING and self.keep_firing_for_ms > 0:
                        if a.keep_firing_since_ms is None:
                            a.keep_firing_since_ms = ts_ms
                        keep_firing = ts_ms - a.keep_firing_since_ms < self.keep_firing_for_ms
                    if a.state == AlertState.PENDING or (
                            a.resolved_at_ms is not None and ts_ms - a.resolved_at_ms > RESOLVED_RETENTION_MS):
                        del self.active[key]
                    if a.state != AlertState.INACTIVE and not keep_firing:
                        a.state = AlertState.INACTIVE
                        a.resolved_at_ms = ts_ms
                    if not keep_firing:
                        continue
                else:
                    a.keep_firing_since_ms = None
                n_active += 1
                if a.state == AlertState.PENDING and ts_ms - a.active_at_ms >= self.for_ms:
                    a.state = AlertState.FIRING
                    a.fired_at_ms = ts_ms
                if self.restored:
                    samples.append((self.series_labels(a, ALERT_METRIC, alertstate=str(a.state)), 1.0))
                    samples.append((self.series_labels(a, ALERT_FOR_STATE_METRIC), float(a.active_at_ms // 1000)))
            if limit > 0 and n_active > limit:
                self.active = {}
                raise RuleError(f"exceeded limit of {limit} with {n_active} alerts")
        return samples

    def series_labels(self, alert: Alert, metric: str, **extra: str) -> Labels:
        """The labels of an alert's ``ALERTS`` / ``ALERTS_FOR_STATE`` series: the rule's (untemplated) labels,
        overridden by the alert's, then ``__name__``, ``alertname`` and ``extra``."""
        merged = dict(self.labels)
        merged.update(alert.labels)
        merged.update({"__name__": metric, "alertname": self.name}, **extra)
        return Labels.from_dict(merged)

    def alerts_to_send(self, ts_ms: int, resend_delay_ms: int, interval_ms: int) -> list[Alert]:
        """The alerts the notifier must get after the evaluation at ``ts_ms`` (copies), marking them sent;
        each valid until 4 resend delays (or intervals, if longer) from now."""
        out = []
        with self._lock:
            for a in self.active.values():
                if a.needs_sending(ts_ms, resend_delay_ms):
                    a.last_sent_at_ms = ts_ms
                    a.valid_until_ms = notification.valid_until(ts_ms, resend_delay_ms, interval_ms)
                    out.append(replace(a))
        return out

    def alerts(self) -> list[Alert]:
        """Copies of the rule's alerts (resolved ones still retained included)."""
        with self._lock:
            return [replace(a) for a in self.active.values()]

    def active_alerts(self) -> list[Alert]:
        """Copies of the alerts not resolved (pending and firing), as Prometheus's ``ActiveAlerts``."""
        return [a for a in self.alerts() if a.resolved_at_ms is None]

    @property
    def state(self) -> AlertState:
        with self._lock:
            return max((a.state for a in self.active.values()), default=AlertState.INACTIVE)

    def restore_from(self, last_sample: Callable[[Labels], tuple[int, float] | None], ts_ms: int,
                     grace_period_ms: int) -> None:
        """Restore each active alert's ``active_at`` from its ``ALERTS_FOR_STATE`` series, as Prometheus's
        ``RestoreForState``: ``last_sample(labels)`` gives that series' last (timestamp ms, value) within the
        outage tolerance, or None. The caller skips rules whose ``for`` is shorter than the grace period."""
        with self._lock:
            for a in self.active.values():
                found = last_sample(self.series_labels(a, ALERT_FOR_STATE_METRIC))
                if found is None:
                    continue
                t_ms, v = found
                if v != v:  # a staleness marker (or NaN): the alert was not active
                    continue
                down_at_ms = (t_ms // 1000) * 1000
                restored_ms = int(v) * 1000
                remaining = self.for_ms - (down_at_ms - restored_ms)
                if remaining <= 0:
                    pass  # It was firing; the next evaluation fires it again.
                elif remaining < grace_period_ms:
                    restored_ms = ts_ms + grace_period_ms - self.for_ms
                else:
                    restored_ms += ts_ms - down_at_ms
                a.active_at_ms = restored_ms
            self.restored = True
