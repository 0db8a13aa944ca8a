"""The rule evaluation's own metrics: Prometheus's ``prometheus_rule_*`` with Shardmon's prefix
(``shardmon_rule_*``, as every metric of ours is named), same suffixes, help and label ``rule_group``
(``FILE;GROUP``), so a Prometheus dashboard needs only the prefix changed."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Summary

EVALUATIONS = Counter("shardmon_rule_evaluations_total", "The total number of rule evaluations.", ["rule_group"])
EVALUATION_FAILURES = Counter("shardmon_rule_evaluation_failures_total",
                              "The total number of rule evaluation failures.", ["rule_group"])
ITERATIONS_SCHEDULED = Counter("shardmon_rule_group_iterations_total",
                               "The total number of scheduled rule group evaluations, whether executed or missed.",
                               ["rule_group"])
ITERATIONS_MISSED = Counter("shardmon_rule_group_iterations_missed_total",
                            "The total number of rule group evaluations missed due to slow rule group evaluation.",
                            ["rule_group"])
GROUP_INTERVAL = Gauge("shardmon_rule_group_interval_seconds", "The interval of a rule group.", ["rule_group"])
GROUP_LAST_EVAL = Gauge("shardmon_rule_group_last_evaluation_timestamp_seconds",
                        "The timestamp of the last rule group evaluation in seconds.", ["rule_group"])
GROUP_LAST_DURATION = Gauge("shardmon_rule_group_last_duration_seconds",
                            "The duration of the last rule group evaluation.", ["rule_group"])
GROUP_RULES = Gauge("shardmon_rule_group_rules", "The number of rules.", ["rule_group"])
GROUP_SAMPLES = Gauge("shardmon_rule_group_last_evaluation_samples",
                      "The number of samples returned during the last rule group evaluation.", ["rule_group"])
EVAL_DURATION = Summary("shardmon_rule_evaluation_duration_seconds", "The duration for a rule to execute.")
GROUP_DURATION = Summary("shardmon_rule_group_duration_seconds", "The duration of rule group evaluations.")

PER_GROUP = (EVALUATIONS, EVALUATION_FAILURES, ITERATIONS_SCHEDULED, ITERATIONS_MISSED, GROUP_INTERVAL,
             GROUP_LAST_EVAL, GROUP_LAST_DURATION, GROUP_RULES, GROUP_SAMPLES)


def forget_group(key: str) -> None:
    """Drop a removed group's series, as Prometheus's manager does on reload."""
    for metric in PER_GROUP:
        try:
            metric.remove(key)
        except KeyError:
            pass
