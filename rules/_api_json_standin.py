"""STAND-IN, to be replaced by ``shardmon.querier.rules.api_json`` (another helper's module): a group and an
alert as the ``/api/v1/rules`` and ``/api/v1/alerts`` JSON objects, so the rulers can answer before it is
merged. The lead replaces the imports of this module with that one and deletes it."""

from __future__ import annotations

from datetime import datetime, timezone

from shardmon.querier.rules import Alert, AlertingRule, Group


def _time(ms: int | None) -> str:
    if not ms:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat().replace("+00:00", "Z")


def alert_json(alert: Alert) -> dict:
    """One alert as ``/api/v1/alerts`` lists it."""
    return {"labels": alert.labels.to_dict(), "annotations": alert.annotations.to_dict(),
            "state": str(alert.state), "activeAt": _time(alert.active_at_ms), "value": repr(alert.value)}


def group_json(group: Group, now_ms: int) -> dict:
    """One group as ``/api/v1/rules`` lists it."""
    rules = []
    for r in group.rules:
        common = {"name": r.name, "query": r.expr, "labels": r.labels.to_dict(), "health": r.health,
                  "lastError": r.last_error, "evaluationTime": r.evaluation_time_s,
                  "lastEvaluation": _time(r.last_evaluation_ms)}
        if isinstance(r, AlertingRule):
            common.update(type="alerting", state=str(r.state),
                          duration=r.for_ms / 1000, keepFiringFor=r.keep_firing_for_ms / 1000,
                          annotations=dict(r.annotations), alerts=[alert_json(a) for a in r.active_alerts()])
        else:
            common["type"] = "recording"
        rules.append(common)
    return {"name": group.name, "file": group.file, "rules": rules, "interval": group.interval_ms / 1000,
            "limit": group.limit, "evaluationTime": group.evaluation_time_s,
            "lastEvaluation": _time(group.last_evaluation_ms)}
