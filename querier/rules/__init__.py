"""Recording and alerting rules, evaluated as Prometheus 2.42's rule manager evaluates them.

The public surface the rulers and the APIs build on: :class:`Group` (one group's evaluation and state),
:func:`load_groups` (rule files to groups), :func:`engine_query_func` (the engine as a rule's query),
the rules (:class:`RecordingRule`, :class:`AlertingRule` with its :class:`Alert` and :class:`AlertState`),
and the notifier seam (:class:`Notifier`, taking :class:`shardmon.model.notification.Alert`).
"""

from shardmon.querier.rules.alerting import Alert, AlertingRule, AlertState
from shardmon.querier.rules.group import Group, eval_timestamp_ns, group_hash, group_key
from shardmon.querier.rules.loader import engine_query_func, load_groups
from shardmon.querier.rules.notify import Notifier
from shardmon.querier.rules.recording import RecordingRule, RuleError, RuleState

__all__ = [
    "Alert", "AlertState", "AlertingRule", "Group", "Notifier", "RecordingRule", "RuleError",
    "RuleState", "engine_query_func", "eval_timestamp_ns", "group_hash", "group_key", "load_groups",
]
