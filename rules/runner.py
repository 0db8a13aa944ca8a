"""One ruler's groups, run on its event loop: the schedule of Prometheus's group loop, and the changes a
reload, a rescale or a restart makes to which groups this ruler evaluates.

:class:`GroupRunner` owns the groups given to :meth:`GroupRunner.apply`: the rule files (loaded whole,
as Prometheus does), and the set of group keys this ruler owns. Each owned group gets an asyncio task that
sleeps to the group's slot (:meth:`Group.first_evaluation`, then :meth:`Group.next_evaluation`, which counts
missed iterations) and runs :meth:`Group.run_once` in a worker thread (the engine and the write are
blocking calls). On an apply:

- a group still owned is rebuilt from the new files with :meth:`Group.copy_state` (Prometheus's reload);
- a group new to this ruler (start, restart, moved here, added to the files) restores its alerts' ``for``
  state from ``ALERTS_FOR_STATE`` after its second evaluation (``should_restore``);
- a group that left for another ruler (it is still in the files) just stops: its new owner continues its
  series and alerts, so no staleness markers and no resolved notifications;
- a group removed from the files stops and writes staleness markers for its series (:meth:`Group.mark_all_stale`).

The runner never imports Ray: :mod:`shardmon.rules.ruler_actor` gives it the query function, the appender,
the querier (for ``for`` state) and the notifier.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import Counter, Gauge

from shardmon.model.config import Config
from shardmon.model.storage import Appender, Querier
from shardmon.querier.rules import AlertingRule, Group, Notifier, load_groups
from shardmon.querier.rules.recording import QueryFunc

log = logging.getLogger(__name__)

GROUPS = Gauge("shardmon_ruler_groups", "Rule groups this ruler evaluates.")
GROUP_CHANGES = Counter("shardmon_ruler_group_changes_total",
                        "Groups this ruler started or stopped evaluating, by why: start (new to this ruler: started, "
                        "restarted, moved here or added), reload (kept, state copied), moved (left for another "
                        "ruler), removed (gone from the rule files: staleness markers written).", ["change"])
EVAL_ERRORS = Counter("shardmon_ruler_group_errors_total",
                      "Group iterations that raised out of the evaluation (not a rule's own error: those are "
                      "shardmon_rule_evaluation_failures_total).")


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class _Running:
    group: Group
    task: asyncio.Task
    lock: asyncio.Lock


class GroupRunner:
    """Runs the groups this ruler owns (see the module docstring). Use it inside a running event loop."""

    def __init__(self, *, query: QueryFunc, appender: Appender, querier: Querier | None,
                 notifier: Notifier | None) -> None:
        self.query, self.appender, self.querier, self.notifier = query, appender, querier, notifier
        self.running: dict[str, _Running] = {}
        self._apply_lock = asyncio.Lock()
        #: Per group key, when its last evaluation began (ms), for tests and the API.
        self.evaluated_at: dict[str, int] = {}

    def load(self, config: Config, files: Sequence[str] | Mapping[str, str]) -> dict[str, Group]:
        """Every group of ``files`` (paths, or path -> text as the service read them; RuleFileError for a bad
        one), new to a ruler: they restore ``for`` state."""
        r = config.rules
        return load_groups(
            files, config.global_.evaluation_interval, external_labels=config.global_.external_labels,
            external_url=config.external_url(),
            restored=False, query_offset_ms=config.global_.rule_query_offset, query=self.query,
            appender=self.appender, querier=self.querier, notifier=self.notifier,
            resend_delay_ms=r.resend_delay, outage_tolerance_ms=r.for_outage_tolerance,
            grace_period_ms=r.for_grace_period)

    async def apply(self, groups: dict[str, Group], owned: set[str]) -> dict[str, int]:
        """Evaluate, of ``groups`` (every group of the rule files, from :meth:`load`), those in ``owned``;
        returns the counts of groups started, kept, moved away and removed."""
        async with self._apply_lock:
            counts = {"start": 0, "reload": 0, "moved": 0, "removed": 0}
            for key in list(self.running):
                if key in owned and key in groups:
                    continue
                run = await self._stop(key)
                if key in groups:
                    counts["moved"] += 1
                else:
                    counts["removed"] += 1
                    await asyncio.to_thread(run.group.mark_all_stale, now_ms())
            for key in sorted(owned & groups.keys()):
                new = groups[key]
                old = self.running.get(key)
                if old is not None:
                    await self._stop(key)
                    new.copy_state(old.group)
                    new.should_restore = old.group.should_restore
                    new.evaluations = old.group.evaluations
                    for rule in new.rules:
                        if isinstance(rule, AlertingRule):
                            rule.restored = not old.group.should_restore
                    counts["reload"] += 1
                else:
                    counts["start"] += 1
                lock = asyncio.Lock()
                self.running[key] = _Running(new, asyncio.create_task(self._loop(key, new, lock)), lock)
            for change, n in counts.items():
                GROUP_CHANGES.labels(change).inc(n)
            GROUPS.set(len(self.running))
            return counts

    async def _stop(self, key: str) -> _Running:
        """Stop a group's loop between evaluations (an evaluation under way finishes first)."""
        run = self.running.pop(key)
        async with run.lock:
            run.task.cancel()
        await asyncio.gather(run.task, return_exceptions=True)
        return run

    async def _loop(self, key: str, group: Group, lock: asyncio.Lock) -> None:
        ts = group.first_evaluation(now_ms())
        while True:
            await asyncio.sleep(max(0, ts - now_ms()) / 1000)
            async with lock:
                self.evaluated_at[key] = ts
                try:
                    await asyncio.to_thread(group.run_once, ts)
                except Exception:  # noqa: BLE001 - the group's loop goes on, as Prometheus's
                    EVAL_ERRORS.inc()
                    log.exception("group %s: evaluation failed", key)
            ts = group.next_evaluation(ts, now_ms())

    def groups(self) -> list[Group]:
        """The groups this ruler evaluates, by key."""
        return [self.running[k].group for k in sorted(self.running)]

    async def stop(self) -> None:
        """Stop every group without staleness markers (shutdown: the rules are not gone)."""
        async with self._apply_lock:
            for key in list(self.running):
                await self._stop(key)
            GROUPS.set(0)


