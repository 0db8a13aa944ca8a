"""From rule files to :class:`~shardmon.querier.rules.group.Group` objects, and the engine as a rule's query.

:func:`load_groups` reads and checks each file (:mod:`shardmon.model.rule_config`) and builds its groups
keyed by :func:`~shardmon.querier.rules.group.group_key`, as Prometheus's ``Manager.LoadGroups``; a bad file
raises :class:`~shardmon.model.errors.RuleFileError` and nothing is loaded. :func:`engine_query_func` is
Prometheus's ``EngineQueryFunc``: an instant query whose vector (or scalar, as one sample) is the result.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shardmon.model.labels import Labels
from shardmon.model.rule_config import load_rule_file, parse_rule_text
from shardmon.querier.promql import Engine
from shardmon.querier.rules.alerting import AlertingRule
from shardmon.querier.rules.group import Group, group_key
from shardmon.querier.rules.prefetch import EngineQuery
from shardmon.querier.rules.recording import RecordingRule, RuleState


def engine_query_func(engine: Engine, *, prefetch: bool = True) -> EngineQuery:
    """A rule's query on ``engine``: an instant vector, a scalar as one unlabelled sample, else an error.
    With ``prefetch``, a group's evaluation reads its selectors once first (:mod:`.prefetch`)."""
    return EngineQuery(engine, prefetch)


def load_groups(files: Sequence[str] | Mapping[str, str], interval_ms: int, *,
                external_labels: Mapping[str, str] | None = None, external_url: str = "", restored: bool = True,
                query_offset_ms: int = 0, **group_options: Any) -> dict[str, Group]:
    """The groups of ``files`` (paths to read, or path -> text already read; in order), their interval the
    group's own or ``interval_ms``, their query offset the group's own ``query_offset`` or ``query_offset_ms`` (``global.rule_query_offset``). ``restored``
    False makes alerting rules wait for :meth:`Group.restore_for_state` before writing ``ALERTS`` (a start);
    ``group_options`` are :class:`Group`'s keyword arguments (``query``, ``appender``, ``querier``...)."""
    groups: dict[str, Group] = {}
    for path in files:
        rule_file = parse_rule_text(files[path], path) if isinstance(files, Mapping) else load_rule_file(path)
        for spec in rule_file.groups:
            rules: list[RuleState] = []
            for r in spec.rules:
                if r.alert:
                    rules.append(AlertingRule(
                        r.alert, r.expr, for_ms=r.for_ms, keep_firing_for_ms=r.keep_firing_for_ms, labels=r.labels,
                        annotations=r.annotations, external_labels=external_labels, external_url=external_url,
                        restored=restored))
                else:
                    rules.append(RecordingRule(r.record, r.expr, Labels.from_dict(r.labels)))
            groups[group_key(path, spec.name)] = Group(
                spec.name, path, spec.interval_ms or interval_ms, rules, limit=spec.limit, external_url=external_url,
                should_restore=not restored,
                query_offset_ms=query_offset_ms if spec.query_offset_ms is None else spec.query_offset_ms,
                **group_options)
    return groups
