"""What an evaluation hands to the notifier: its alerts as :class:`shardmon.model.notification.Alert`
(Prometheus's ``notifier.Alert``, as ``SendAlerts`` fills it).

The notifier (``shardmon.ingest.notifier.Notifier``, the Alertmanager client) implements :class:`Notifier`;
this package never speaks HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shardmon.model import notification
from shardmon.querier.rules.alerting import Alert


class Notifier(Protocol):
    """Takes alerts to send; returns at once (queueing, batching, retries and drops are its own)."""

    def send(self, alerts: Sequence[notification.Alert]) -> None: ...


def to_notifier_alerts(alerts: Sequence[Alert], expr: str, external_url: str) -> list[notification.Alert]:
    """The alerts of one rule's evaluation as the notifier takes them: ``startsAt`` when it fired,
    ``endsAt`` when it resolved or, while it fires, its valid-until time."""
    url = notification.generator_url(external_url, expr)
    return [notification.Alert(a.labels.to_dict(), a.annotations.to_dict(), a.fired_at_ms or 0,
                               a.resolved_at_ms if a.resolved_at_ms is not None else (a.valid_until_ms or 0), url)
            for a in alerts]
