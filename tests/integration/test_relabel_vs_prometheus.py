"""Our relabeling against a real Prometheus (Debian's, 2.42): the same targets and relabel_configs.

``promtool check service-discovery`` runs Prometheus's own target pipeline (discovery, then
``relabel.Process`` inside ``PopulateLabels``) and prints each target's labels after relabeling (``{}``
when a step dropped it), ``__`` labels included. We build the same input labels (the group's labels,
``__address__``, then the job's defaults: ``job``, ``__scheme__``, ``__metrics_path__``,
``__scrape_interval__``, ``__scrape_timeout__``, ``__param_<name>``), relabel them with
:func:`shardmon.ingest.relabel.process`, do the two things ``PopulateLabels`` does besides relabeling (drop
``__meta_*`` labels, default ``instance`` to the address; every address keeps a port, so Prometheus adds
none) and compare. (promtool's ``discoveredLabels`` cannot be the input: 2.42's ``relabel.Process``
modifies its input in place, so what it prints there is partly relabeled.)

``promtool check config`` also tells which relabel configs Prometheus accepts, to compare with our model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import yaml

from shardmon.ingest.relabel import process
from shardmon.model.relabel_config import RelabelConfig
from tests.unit.ingest.test_relabel import INVALID, VALID

PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed (apt-get install prometheus)")

ADDRESSES = [f"10.0.{i // 7}.{i}:{9100 + i % 3}" for i in range(30)] + [
    "node-1.example.com:9100", "node-2.example.com:9100", "[::1]:9090", "localhost:9090", "a:1", "b:2",
]

JOBS: dict[str, dict] = {
    # hashmod with several moduli and sources, and sharding with keep (dropped targets come back as {}).
    "hashmod": {
        "static_configs": [{"targets": ADDRESSES, "labels": {"env": "prod", "team": "Infra"}}],
        "relabel_configs": [
            {"source_labels": ["__address__"], "modulus": 7, "target_label": "__tmp_hash", "action": "hashmod"},
            {"source_labels": ["__address__", "env"], "modulus": 1000, "target_label": "h1000",
             "action": "hashmod"},
            {"source_labels": ["__address__"], "modulus": 2**64 - 1, "target_label": "hmax", "action": "hashmod"},
            {"source_labels": ["__address__"], "modulus": 2**63 + 12345, "target_label": "hbig",
             "action": "hashmod"},
            {"source_labels": ["missing"], "modulus": 97, "target_label": "hempty", "action": "hashmod"},
            {"source_labels": ["team", "__address__"], "separator": "", "modulus": 3, "target_label": "h3",
             "action": "hashmod"},
        ],
    },
    "shard": {
        "static_configs": [{"targets": ADDRESSES}],
        "relabel_configs": [
            {"source_labels": ["__address__"], "modulus": 4, "target_label": "__tmp_hash", "action": "hashmod"},
            {"source_labels": ["__tmp_hash"], "regex": "1|3", "action": "keep"},
        ],
    },
    # Every action, __meta_/__tmp_/__param_ labels, __address__ rewrites, expansion edge cases.
    "mixed": {
        "params": {"module": ["http_2xx"]},
        "static_configs": [
            {"targets": ["web-1:8080", "web-2:8080", "db-1:5432"],
             "labels": {"__meta_dc": "eu-west-1", "__meta_rack_id": "R7", "Env": "Prod", "zone": "eu=1"}},
            {"targets": ["cache-1:6379", "drop-me:1"], "labels": {"__meta_dc": "us-east-2", "same": "cache-1:6379"}},
            {"targets": ["lonely:9"]},
        ],
        "relabel_configs": [
            {"source_labels": ["__address__"], "regex": "drop-.*", "action": "drop"},
            {"source_labels": ["__meta_dc"], "regex": "(\\w+)-(\\w+)-(\\d)", "target_label": "__tmp_region",
             "replacement": "${1}_$2"},
            {"source_labels": ["__tmp_region", "__meta_rack_id"], "separator": "/", "target_label": "where"},
            {"regex": "__meta_(.+)", "action": "labelmap"},
            {"regex": "__meta_(rack)_(id)", "replacement": "${2}_$1", "action": "labelmap"},
            {"source_labels": ["Env"], "target_label": "env", "action": "lowercase"},
            {"source_labels": ["rack_id", "Env"], "target_label": "up_rack", "action": "uppercase"},
            {"source_labels": ["zone"], "regex": "(\\w+)=(\\d)", "target_label": "${1}_label", "replacement": "$2"},
            {"source_labels": ["zone"], "regex": "(.*)", "target_label": "$1", "replacement": "invalid-target"},
            {"source_labels": ["__address__"], "regex": "([^:]+):(\\d+)", "target_label": "expand",
             "replacement": "$1x|${1}x|$$1|$0|$01|$9|${|$-|$2"},
            {"source_labels": ["__address__"], "target_label": "__param_target"},
            {"source_labels": ["__address__"], "regex": "(.*):\\d+", "target_label": "__address__",
             "replacement": "$1:9115"},
            {"source_labels": ["Env"], "target_label": "Env", "replacement": ""},
            {"source_labels": ["nothing"], "target_label": "zone", "regex": "", "replacement": ""},
            {"source_labels": ["same"], "target_label": "__param_target", "action": "dropequal"},
            {"source_labels": ["job"], "target_label": "job", "action": "keepequal"},
            {"regex": "__tmp_.*|rack_id", "action": "labeldrop"},
            {"target_label": "constant", "replacement": "c"},
        ],
    },
    "labelkeep": {
        "static_configs": [{"targets": ["k:1", "k:2"], "labels": {"keep_a": "1", "drop_b": "2", "keep_c": "3"}}],
        "relabel_configs": [{"regex": "__.*|job|keep_.*", "action": "labelkeep"}],
    },
}

# RE2 matching and submatches: each regex is tried on each value (a replace into its own label); and
# Go's case mapping: each value lowercased and uppercased.
REGEXES = [
    "a", "a.*", ".*a", "(?i)abc", "(a|ab)(c|bcd)(d*)", "\\d+", "\\w+", "\\s", "[\\d]+", "[\\w.]+", "\\S+", "\\W",
    "a$", "(?m)a$", "^a", "a.b", "(?s)a.b", "(?s:.+)", "[[:alpha:]]+", "[[:digit:][:upper:]]+", "[^a]+", "\\x41",
    "\\101", "\\x{1F600}", "a{,2}", "a{2}", "a{1,}", "(?i)straße", "(?i)k", "\\bfoo\\b", "\\Qa.b\\E", "x*",
    "(a|b)*", "(a+)(b+)?", "(?P<first>\\w)(?P<rest>.*)", "(?i)a(?-i)b", "a(?i)b|c", "[]a]+", "[^]a]+",
    "[a-c-]+", "\\.", "a\\z", "\\Aa", "(?:)", "",
    # RE2 beyond what Python's re could stand in for: submatches of repeated groups, Unicode classes,
    # the ungreedy flag, negated POSIX classes, duplicate group names, a pattern closing the ^(?: wrapper.
    "(a*)+", "(a|b)*?(b*)", "\\pL+", "\\p{Greek}+", "\\PL", "(?U)(a+)(.*)", "[[:^alpha:]]+", "(?i)\\p{Lu}+",
    "(?P<rest>x)|(?P<rest>a)(b)?", "a)|(b", "(?s)(.)(.*)", "(?m)^a$\\n?", "[\\p{Nd}\\s]+", "\\x{212A}",
]
VALUES = [
    "a", "ab", "abc", "ABC", "abcd", "a\nb", "a\n", "aa", "a.b", "axb", "٣", "123", "foo bar", "foo", "straße",
    "STRASSE", "K", "\u212a", "x", "A", "]a]", "b-a", "😀", "ÀΩ", "bab", " ", "a{,2}", "a{2}", ".",
    "İSTANBUL ß ᾳ ᾀ ΑΣ ﬁ ǅ", "ΟΔΟΣ",
]


def _regex_job() -> dict:
    targets = [{"targets": [f"v{i}:1"], "labels": {"v": v}} for i, v in enumerate(VALUES)]
    targets.append({"targets": ["none:1"]})  # no v: reads as ""
    rules = [{"source_labels": ["v"], "regex": r, "target_label": f"r{k}", "replacement": "<$0|$1|$2|$3|${rest}>"}
             for k, r in enumerate(REGEXES)]
    rules += [{"source_labels": ["v"], "target_label": "lower", "action": "lowercase"},
              {"source_labels": ["v"], "target_label": "upper", "action": "uppercase"}]
    return {"static_configs": targets, "relabel_configs": rules}


def _write(tmp_path, jobs: dict[str, dict]) -> str:
    cfg = {"global": {"scrape_interval": "15s", "scrape_timeout": "10s"},
           "scrape_configs": [{"job_name": name, **job} for name, job in jobs.items()]}
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    return str(path)


def _inputs(job_name: str, job: dict) -> list[dict[str, str]]:
    """The labels Prometheus relabels for each target of a static_configs job, in its order."""
    defaults = {"job": job_name, "__scheme__": "http", "__metrics_path__": "/metrics",
                "__scrape_interval__": "15s", "__scrape_timeout__": "10s"}
    defaults.update({f"__param_{k}": v[0] for k, v in job.get("params", {}).items()})
    out = []
    for group in job["static_configs"]:
        for address in group["targets"]:
            out.append({**defaults, **group.get("labels", {}), "__address__": address})
    return out


def _sd(path: str, job: str) -> list[dict]:
    out = subprocess.run([PROMTOOL, "check", "service-discovery", "--timeout=1s", path, job],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def _populate(labels: dict[str, str] | None) -> dict[str, str]:
    """What Prometheus's PopulateLabels does after relabeling (addresses here all have a port)."""
    if labels is None:
        return {}
    out = {k: v for k, v in labels.items() if not k.startswith("__meta_")}
    out.setdefault("instance", out["__address__"])
    return out


def _key(labels: dict[str, str]) -> str:
    return json.dumps(sorted(labels.items()), ensure_ascii=False)


def _ours(job: dict, discovered: dict[str, str]) -> dict[str, str]:
    configs = [RelabelConfig.model_validate(c) for c in job["relabel_configs"]]
    result = process(discovered, configs)
    return _populate(None if result is None else result.to_dict())


def test_relabeled_targets_equal_prometheus(tmp_path):
    jobs = {**JOBS, "regex": _regex_job()}
    path = _write(tmp_path, jobs)
    with ThreadPoolExecutor(len(jobs)) as pool:
        results = dict(zip(jobs, pool.map(lambda name: _sd(path, name), jobs)))
    mismatches = []
    for name, targets in results.items():
        # promtool prints the targets of different groups in no fixed order, and relabeling may rewrite
        # or drop any label: compare the two multisets of relabeled label sets.
        inputs = _inputs(name, jobs[name])
        assert len(targets) == len(inputs), name
        assert not [t for t in targets if "error" in t], name
        theirs = Counter(_key(t["labels"]) for t in targets)
        ours = Counter(_key(_ours(jobs[name], labels)) for labels in inputs)
        mismatches += [f"{name}: only ours: {k}" for k in sorted((ours - theirs).elements())]
        mismatches += [f"{name}: only Prometheus's: {k}" for k in sorted((theirs - ours).elements())]
    assert not mismatches, "\n".join(mismatches)
    # The jobs did exercise what they are for.
    assert sum(1 for t in results["shard"] if not t["labels"]) > 5  # dropped by keep
    assert any("hbig" in t["labels"] for t in results["hashmod"])
    mixed = {t["labels"].get("__param_target"): t["labels"] for t in results["mixed"]}
    assert sum(1 for t in results["mixed"] if not t["labels"]) == 2  # drop, dropequal
    assert mixed["web-1:8080"]["dc"] == "eu-west-1" and mixed["web-1:8080"]["__address__"] == "web-1:9115"
    assert len({k for t in results["regex"] for k in t["labels"] if k[0] == "r" and k[1:].isdigit()}) == len(REGEXES)


def _accepts(tmp_path, i: int, relabel: dict) -> tuple[bool, str]:
    cfg = {"scrape_configs": [{"job_name": "j", "relabel_configs": [relabel]}]}
    path = tmp_path / f"check{i}.yml"
    path.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([PROMTOOL, "check", "config", str(path)], capture_output=True, text=True, timeout=60)
    return out.returncode == 0, out.stdout + out.stderr


# Checks that newer Prometheus 2.x releases make and 2.42 does not yet (we check as the newer ones do):
# lowercase/uppercase/keepequal/dropequal need a valid target_label (2.42 sets a label named "$1").
NEWER_CHECKS = {"invalid 'target_label' for uppercase"}
# A modulus of 2^64, which Go's YAML decoding reads as a float and then accepts (converted to some
# other uint64).
UNSUPPORTED: set[str] = set()


def test_config_checks_agree_with_prometheus(tmp_path):
    cases = [(cfg, True) for cfg in VALID] + [(cfg, False) for cfg, _, message in INVALID
                                               if message not in NEWER_CHECKS | UNSUPPORTED
                                               and cfg.get("modulus") != 2**64]
    with ThreadPoolExecutor(8) as pool:
        verdicts = list(pool.map(lambda ic: _accepts(tmp_path, ic[0], ic[1][0]), enumerate(cases)))
    disagree = [f"{cfg}: ours {'accepts' if ok else 'rejects'}, Prometheus says {out.strip()}"
                for (cfg, ok), (theirs, out) in zip(cases, verdicts) if ok != theirs]
    assert not disagree, "\n".join(disagree)
    # What we refuse beyond 2.42 is refused for a reason newer Prometheus releases give too.
    for cfg, _, message in INVALID:
        if message in NEWER_CHECKS:
            assert _accepts(tmp_path, 999, cfg)[0], cfg
