"""What an evaluation hands to the notifier: alerts as Prometheus's ``notifier.Alert`` (``SendAlerts``).

The notifier (Alertmanager client) implements :class:`Notifier`; this package never speaks HTTP.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote_plus

from shardmon.model.labels import Labels
from shardmon.querier.rules.alerting import Alert


@dataclass(frozen=True)
class NotifierAlert:
    """One alert to send: ``starts_at_ms`` is when it fired, ``ends_at_ms`` when it resolved or, while it
    fires, until when it is valid without news (4 resend delays or intervals); ``generator_url`` links to
    the rule's expression. External labels and alert relabeling are the notifier's to apply."""

    labels: Labels
    annotations: Labels
    starts_at_ms: int
    ends_at_ms: int
    generator_url: str


class Notifier(Protocol):
    """Takes alerts to send; returns at once (queueing, batching, retries and drops are its own)."""

    def send(self, alerts: Sequence[NotifierAlert]) -> None: ...


def generator_url(external_url: str, expr: str) -> str:
    """Prometheus's link to an expression's table view (``strutil.TableLinkForExpression``)."""
    return f"{external_url}/graph?g0.expr={quote_plus(expr)}&g0.tab=1"


def to_notifier_alerts(alerts: Sequence[Alert], expr: str, external_url: str) -> list[NotifierAlert]:
    """The alerts of one rule's evaluation as the notifier takes them."""
    url = generator_url(external_url, expr)
    return [NotifierAlert(a.labels, a.annotations, a.fired_at_ms or 0,
                          a.resolved_at_ms if a.resolved_at_ms is not None else (a.valid_until_ms or 0), url)
            for a in alerts]
