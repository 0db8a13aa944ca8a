"""A rule group, evaluated as Prometheus 2.42's rule manager evaluates one (``rules/manager.go``).

:class:`Group` is the pure logic a ruler drives: it never sleeps or starts threads. The ruler asks
:meth:`Group.first_evaluation` for the group's first slot after start (its evaluation times are offset by
a hash of file and name, :func:`group_hash`), then calls :meth:`Group.eval` at each slot and
:meth:`Group.next_evaluation` for the next one, which counts the iterations missed by a slow
evaluation. :meth:`Group.eval` runs the rules in order, appending each rule's output (with staleness
markers for series it no longer produces) before the next rule runs, so later rules see it (with an
appender that can start a write without waiting, ``append_nowait``/``wait_written``, only the output a
later rule may read is waited for at once, the rest at the end: :meth:`Group.read_later`); with an
:class:`~shardmon.querier.rules.prefetch.EngineQuery` the rules' selectors are read once first; it hands
the alerts to send to a :class:`~shardmon.querier.rules.notify.Notifier`. A group that starts anew
(process start, or moved to another ruler) restores its alerts' ``for`` state from ``ALERTS_FOR_STATE``
after its second evaluation (:meth:`Group.restore_for_state`), as Prometheus does; a removed group
writes staleness markers for all its series (:meth:`Group.mark_all_stale`).

A group with a query offset (Prometheus 2.53's ``query_offset`` / ``global.rule_query_offset``, for data that
arrives late, e.g. by remote write) keeps its slots, alert times and notifications at the slot ``T`` but
queries at ``T - offset`` and writes its output and staleness markers there.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
import xxhash

import shardmon.querier.rules.metrics as metrics
from shardmon.model.histogram import Histogram, HistogramColumns
from shardmon.model.labels import Labels, Matcher, MatchType, series_id_of
from shardmon.model.samples import STALE_NAN, SampleBatch, is_stale
from shardmon.model.storage import Appender, Querier
from shardmon.querier.rules.alerting import ALERT_FOR_STATE_METRIC, ALERT_METRIC, AlertingRule
from shardmon.querier.rules.notify import Notifier, to_notifier_alerts
from shardmon.querier.rules.prefetch import names_read
from shardmon.querier.rules.recording import QueryFunc, RuleState, Sample


def group_key(file: str, name: str) -> str:
    """The id of a group, as Prometheus's ``GroupKey``: names are unique per file only."""
    return f"{file};{name}"


def group_hash(file: str, name: str) -> int:
    """Prometheus's hash of the labels ``{file=..., name=...}`` (xxhash64 of ``name 0xff value 0xff`` pairs)."""
    data = b"file\xff" + file.encode() + b"\xffname\xff" + name.encode() + b"\xff"
    return xxhash.xxh64_intdigest(data)


def eval_timestamp_ns(file: str, name: str, interval_ms: int, now_ns: int) -> int:
    """The group's slot at or before ``now_ns`` (Prometheus's ``EvalTimestamp``, in nanoseconds)."""
    interval_ns = interval_ms * 1_000_000
    offset = group_hash(file, name) % interval_ns
    adj = now_ns - offset
    return adj - adj % interval_ns + offset


def samples_batch(samples: Sequence[Sample], ts_ms: int) -> SampleBatch:
    """One evaluation's samples as a batch, all at ``ts_ms``: floats in the float columns, native histograms
    (a rule's result may hold them) in ``SampleBatch.histograms``, as Prometheus's ``AppendHistogram``."""
    keys = [lbls.canonical() for lbls, _ in samples]
    ids = [series_id_of(k) for k in keys]
    hist_at = [j for j, (_, v) in enumerate(samples) if isinstance(v, Histogram)]
    if not hist_at:
        return SampleBatch.of(ids, keys, np.arange(len(samples)), np.full(len(samples), ts_ms),
                              np.array([v for _, v in samples], dtype=np.float64))
    is_hist = set(hist_at)
    float_at = [j for j in range(len(samples)) if j not in is_hist]
    batch = SampleBatch.of(ids, keys, float_at, np.full(len(float_at), ts_ms),
                           np.array([samples[j][1] for j in float_at], dtype=np.float64))
    hists = HistogramColumns.of(hist_at, np.full(len(hist_at), ts_ms), [samples[j][1] for j in hist_at])
    return batch._replace(histograms=hists)


class Group:
    """One group's rules and evaluation state. Times are ms since the epoch.

    ``query`` evaluates PromQL (``engine_query_func``), ``appender`` takes the output, ``querier`` is read
    to restore ``for`` state; ``notifier`` (optional) gets the alerts to send.
    """

    def __init__(self, name: str, file: str, interval_ms: int, rules: Sequence[RuleState], *, query: QueryFunc,
                 appender: Appender, querier: Querier | None = None, notifier: Notifier | None = None,
                 limit: int = 0, external_url: str = "", resend_delay_ms: int = 60_000, should_restore: bool = False,
                 outage_tolerance_ms: int = 3_600_000, grace_period_ms: int = 600_000,
                 query_offset_ms: int = 0) -> None:
        self.name, self.file, self.interval_ms, self.limit = name, file, interval_ms, limit
        #: Prometheus 2.53's query offset: the evaluation at slot T queries, and writes its output, at T - offset.
        self.query_offset_ms = query_offset_ms
        self.rules = list(rules)
        self.query, self.appender, self.querier, self.notifier = query, appender, querier, notifier
        self.external_url = external_url
        self.resend_delay_ms = resend_delay_ms
        self.should_restore = should_restore
        self.outage_tolerance_ms, self.grace_period_ms = outage_tolerance_ms, grace_period_ms
        #: Per rule, the series its last successful evaluation wrote (for staleness markers), each mapped to
        #: itself: an evaluation keeps the label set objects of the one before for the series it writes
        #: again, so the long-lived ones do not turn over at every evaluation (that growth would trigger the
        #: garbage collector's full passes, ~0.4 s each at a million tracked objects).
        self.series_in_previous_eval: list[dict[Labels, Labels]] = [{} for _ in self.rules]
        #: Series of rules removed by a reload, to mark stale at the next evaluation.
        self.stale_series: list[Labels] = []
        self.last_evaluation_ms: int | None = None
        self.evaluation_time_s = 0.0
        self.evaluations = 0
        self.key = group_key(file, name)
        self._read_later: list[bool] | None = None
        if interval_ms:
            metrics.GROUP_INTERVAL.labels(self.key).set(interval_ms / 1000)
        metrics.GROUP_RULES.labels(self.key).set(len(self.rules))

    # -- schedule -------------------------------------------------------------------------------

    def first_evaluation(self, now_ms: int) -> int:
        """The time of the first evaluation of a group started at ``now_ms``: its next slot."""
        return eval_timestamp_ns(self.file, self.name, self.interval_ms, now_ms * 1_000_000) // 1_000_000 \
            + self.interval_ms

    def next_evaluation(self, last_ts_ms: int, now_ms: int) -> int:
        """The slot to evaluate after the one at ``last_ts_ms`` when the ruler looks at ``now_ms``: the next slot,
        or a later one if the evaluation overran, the skipped slots counted as missed iterations."""
        missed = max(0, (now_ms - last_ts_ms) // self.interval_ms - 1)
        if missed:
            metrics.ITERATIONS_MISSED.labels(self.key).inc(missed)
            metrics.ITERATIONS_SCHEDULED.labels(self.key).inc(missed)
        return last_ts_ms + (missed + 1) * self.interval_ms

    # -- evaluation -----------------------------------------------------------------------------

    def eval(self, ts_ms: int) -> None:
        """Evaluate every rule at ``ts_ms`` in order; a failing rule records its error and the others run."""
        started = time.monotonic()
        metrics.ITERATIONS_SCHEDULED.labels(self.key).inc()
        samples_total = 0
        out_ms = ts_ms - self.query_offset_ms
        query = self.query
        for_group = getattr(query, "for_group", None)
        if for_group is not None:  # EngineQuery: the group's selectors read once (see .prefetch).
            query = for_group([r.expr for r in self.rules], out_ms, self.outputs())
        # An appender that can start a write without waiting for it (the ruler's) waits only for the output
        # a later rule of the group may read; the rest is waited for at the end of the evaluation.
        nowait = getattr(self.appender, "append_nowait", None)
        read_later = self.read_later()
        for i, rule in enumerate(self.rules):
            rule_start = time.monotonic()
            metrics.EVALUATIONS.labels(self.key).inc()
            try:
                samples = rule.eval(ts_ms, query, self.limit, self.query_offset_ms)
            except Exception as exc:  # noqa: BLE001 - a rule's error is its health, as in Prometheus
                rule.health, rule.last_error = "err", str(exc)
                metrics.EVALUATION_FAILURES.labels(self.key).inc()
            else:
                rule.health, rule.last_error = "ok", ""
                samples_total += len(samples)
                if isinstance(rule, AlertingRule) and self.notifier is not None:
                    to_send = rule.alerts_to_send(ts_ms, self.resend_delay_ms, self.interval_ms)
                    if to_send:
                        self.notifier.send(to_notifier_alerts(to_send, rule.expr, self.external_url))
                previous = self.series_in_previous_eval[i]
                kept = previous.get
                returned = {lbls: lbls for lbls in (kept(new, new) for new, _ in samples)}
                gone = [(lbls, STALE_NAN) for lbls in previous if lbls not in returned]
                if samples or gone:
                    batch = samples_batch(list(samples) + sorted(gone), out_ms)
                    if nowait is not None and not read_later[i]:
                        nowait(batch)
                    else:
                        self.appender.append(batch)
                self.series_in_previous_eval[i] = returned
            rule.last_evaluation_ms = ts_ms
            rule.evaluation_time_s = time.monotonic() - rule_start
            metrics.EVAL_DURATION.observe(rule.evaluation_time_s)
        metrics.GROUP_SAMPLES.labels(self.key).set(samples_total)
        if self.stale_series:
            self.appender.append(samples_batch([(s, STALE_NAN) for s in self.stale_series], out_ms))
            self.stale_series = []
        if nowait is not None:
            self.appender.wait_written()
        self.evaluation_time_s = time.monotonic() - started
        self.last_evaluation_ms = ts_ms
        self.evaluations += 1
        metrics.GROUP_DURATION.observe(self.evaluation_time_s)
        metrics.GROUP_LAST_DURATION.labels(self.key).set(self.evaluation_time_s)
        metrics.GROUP_LAST_EVAL.labels(self.key).set(time.time())

    def outputs(self) -> set[str]:
        """The metric names the group's rules write: their ``record`` names, ``ALERTS`` and
        ``ALERTS_FOR_STATE`` if it has alerting rules."""
        names = {r.name for r in self.rules if not isinstance(r, AlertingRule)}
        if any(isinstance(r, AlertingRule) for r in self.rules):
            names |= {ALERT_METRIC, ALERT_FOR_STATE_METRIC}
        return names

    def read_later(self) -> list[bool]:
        """Per rule, whether a later rule of the group may read its output (its expression selects the
        output's name, or any name; an alerting rule whose templates call ``query`` may read anything)."""
        if self._read_later is None:
            later: set[str] | None = set()
            flags = []
            for rule in reversed(self.rules):
                out = {rule.name} if not isinstance(rule, AlertingRule) else {ALERT_METRIC, ALERT_FOR_STATE_METRIC}
                flags.append(later is None or bool(out & later))
                names = names_read(rule.expr)
                templates = [*dict(rule.labels).values(), *getattr(rule, "annotations", {}).values()]
                if names is None or any("query" in t for t in templates):
                    later = None
                elif later is not None:
                    later |= names
            self._read_later = flags[::-1]
        return self._read_later

    def run_once(self, ts_ms: int) -> None:
        """One scheduled iteration as Prometheus's group loop runs it: evaluate, and after the second evaluation
        of a group that must restore, restore its ``for`` state."""
        self.eval(ts_ms)
        if self.should_restore and self.evaluations >= 2:
            self.restore_for_state(ts_ms)

    @property
    def health(self) -> str:
        """``err`` if a rule's last evaluation failed, ``ok`` once all succeeded, else ``unknown``."""
        states = {r.health for r in self.rules}
        return "err" if "err" in states else ("ok" if states == {"ok"} else "unknown")

    # -- state across restarts, moves and reloads ----------------------------------------------

    def restore_for_state(self, ts_ms: int) -> None:
        """Restore the alerts' ``for`` state from ``ALERTS_FOR_STATE`` written within the outage tolerance
        (Prometheus's ``RestoreForState``); alerts whose ``for`` is under the grace period are not restored."""
        self.should_restore = False
        for rule in self.rules:
            if not isinstance(rule, AlertingRule):
                continue
            if rule.for_ms < self.grace_period_ms or self.querier is None:
                rule.restored = True
                continue
            rule.restore_from(lambda lbls: self._last_sample(lbls, ts_ms), ts_ms, self.grace_period_ms)

    def _last_sample(self, labels: Labels, ts_ms: int) -> tuple[int, float] | None:
        matchers = [Matcher(MatchType.EQ, n, v) for n, v in labels]
        found = self.querier.select(matchers, ts_ms - self.outage_tolerance_ms, ts_ms)
        for series in found.series:
            if len(series.labels) == len(labels) and series.labels.name == ALERT_FOR_STATE_METRIC:
                if series.timestamps_ms.shape[0] == 0:
                    return None
                value = float(series.values[-1])
                return int(series.timestamps_ms[-1]), float("nan") if is_stale(np.array([value]))[0] else value
        return None

    def copy_state(self, old: Group) -> None:
        """Take over ``old``'s state on a reload (Prometheus's ``CopyState``): rules matched by name and
        labels keep their series and active alerts; the series of rules gone are marked stale next."""
        self.last_evaluation_ms, self.evaluation_time_s = old.last_evaluation_ms, old.evaluation_time_s
        unmatched: dict[str, list[int]] = {}
        for fi, rule in enumerate(old.rules):
            unmatched.setdefault(rule.key(), []).append(fi)
        for i, rule in enumerate(self.rules):
            indexes = unmatched.get(rule.key())
            if not indexes:
                continue
            fi = indexes.pop(0)
            self.series_in_previous_eval[i] = old.series_in_previous_eval[fi]
            if isinstance(rule, AlertingRule) and isinstance(old.rules[fi], AlertingRule):
                rule.active.update(old.rules[fi].active)
        self.stale_series = list(old.stale_series)
        for indexes in unmatched.values():
            for fi in indexes:
                self.stale_series.extend(old.series_in_previous_eval[fi])

    def mark_all_stale(self, ts_ms: int) -> None:
        """Write staleness markers at ``ts_ms`` (less the query offset) for every series the group wrote (the
        group was removed)."""
        series = sorted({s for prev in self.series_in_previous_eval for s in prev} | set(self.stale_series))
        if series:
            self.appender.append(samples_batch([(s, STALE_NAN) for s in series], ts_ms - self.query_offset_ms))
        self.series_in_previous_eval = [{} for _ in self.rules]
        self.stale_series = []
        metrics.forget_group(self.key)
