"""``/api/v1/rules`` and ``/api/v1/alerts`` against Debian's Prometheus 2.42, field by field.

Prometheus scrapes a static target served here and evaluates a rule file (an always-firing alert with
templated annotations, a pending one with a long ``for``, one with ``keep_firing_for``, alerts and
recording rules that fail, recording rules, a group over its ``limit``). Shardmon evaluates the same file
in-process (``load_groups`` over a MemoryStorage holding the samples Prometheus scraped) at the
timestamps Prometheus evaluated at, renders with ``querier.rules.api_json``, and the documents must be
equal, the timing fields aside (``evaluationTime``; ``lastEvaluation`` and ``activeAt`` within one
interval). A second test compares the ``query`` field, Prometheus's printing of a parsed expression,
for a list of expressions."""

from __future__ import annotations

import difflib
import json
import shutil
import threading
import urllib.request
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import yaml

from shardmon.model.labels import Labels
from shardmon.model.memory import MemoryStorage
from shardmon.querier.promql import Engine
from shardmon.querier.rules import eval_timestamp_ns, load_groups
from shardmon.querier.rules.api_json import alerts_document, dumps, group_alerts, group_json, rules_document
from shardmon.querier.rules.loader import engine_query_func
from tests.integration.procs import free_port, prometheus_proc, wait_until

INTERVAL_S = 1
EXPOSITION = b"""# TYPE target_value gauge
target_value{kind="a"} 3
target_value{kind="b"} 0.5
target_other{kind="a"} 1
"""
RULES = {"groups": [
    {"name": "alerts", "rules": [
        {"alert": "AlwaysFiring", "expr": "target_value>0", "labels": {"severity": "page", "kind_copy": "{{ $labels.kind }}"},
         "annotations": {"summary": "value {{ $value }} of {{ $labels.kind }}",
                         "human": "{{ humanize $value }} & <{{ $labels.job }}>"}},
        {"alert": "LongPending", "expr": "target_value > 1", "for": "1h"},
        {"alert": "KeepFiring", "expr": "target_value > 100", "keep_firing_for": "5m"},
        {"alert": "DuplicateLabels", "expr": '{__name__=~"target_.*"}'},
        {"record": "kind:target_value:sum", "expr": "sum(target_value) by(kind)"},
    ]},
    {"name": "records", "interval": "1s", "rules": [
        {"record": "dup", "expr": '{__name__=~"target_.*"}'},
        {"record": "plain", "expr": "target_value * 2", "labels": {"x": "y"}},
        {"record": "scalar", "expr": "scalar(target_other)"},
    ]},
    {"name": "limited", "limit": 1, "rules": [
        {"record": "over", "expr": "target_value"},
        {"alert": "OverAlerts", "expr": "target_value"},
        {"alert": "UnderLimit", "expr": "target_other"},
    ]},
]}


class Target:
    """A static /metrics target on loopback."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(EXPOSITION)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def get(url: str) -> tuple[bytes, dict]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        raw = resp.read()
    return raw, json.loads(raw)


def ready(base: str) -> bool:
    """Whether Prometheus answers (it listens before it is ready, answering 503 until then)."""
    try:
        with urllib.request.urlopen(base + "/-/ready", timeout=10) as resp:
            return resp.status == 200
    except OSError:
        return False


def rfc_ns(text: str) -> int:
    """RFC 3339 with up to nanoseconds (Go's) to Unix nanoseconds."""
    base, _, frac = text.rstrip("Z").partition(".")
    return int(datetime.fromisoformat(base + "+00:00").timestamp()) * 1_000_000_000 + int((frac + "0" * 9)[:9])


def rfc_ms(text: str) -> int:
    return rfc_ns(text) // 1_000_000


def strip_timing(doc, times: list):
    """``doc`` without ``evaluationTime``; ``lastEvaluation``/``activeAt``/``keepFiringSince`` moved to
    ``times`` (path, value) to compare within an interval."""
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if k == "evaluationTime":
                continue
            if k in ("lastEvaluation", "activeAt", "keepFiringSince"):
                times.append((k, v))
                out[k] = "<time>"
                continue
            out[k] = strip_timing(v, times)
        return out
    if isinstance(doc, list):
        return [strip_timing(v, times) for v in doc]
    return doc


def assert_same(ours: dict, theirs: dict, what: str) -> None:
    our_times: list = []
    their_times: list = []
    # Ours as a client reads what Shardmon writes (Go's digits: 0 and not 0.0).
    a, b = strip_timing(json.loads(dumps(ours)), our_times), strip_timing(theirs, their_times)
    ours_text, theirs_text = json.dumps(a, indent=1).splitlines(), json.dumps(b, indent=1).splitlines()
    assert ours_text == theirs_text, what + " (- Shardmon, + Prometheus):\n" + "\n".join(
        difflib.unified_diff(ours_text, theirs_text, lineterm="", n=8))
    assert [k for k, _ in our_times] == [k for k, _ in their_times], what
    for (key, mine), (_, prom) in zip(our_times, their_times):
        if prom.startswith("0001-"):
            assert mine == prom, (what, key)
        else:
            assert abs(rfc_ms(mine) - rfc_ms(prom)) <= INTERVAL_S * 1000, (what, key, mine, prom)


@pytest.fixture
def prometheus_with_rules(tmp_path):
    assert shutil.which("prometheus"), "prometheus is not installed (scripts/setup.sh installs Debian's package)"
    target = Target()
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump(RULES, sort_keys=False))
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": f"{INTERVAL_S}s", "evaluation_interval": f"{INTERVAL_S}s"},
        "rule_files": [str(rules_file)],
        "scrape_configs": [{"job_name": "t", "static_configs": [{"targets": [target.address]}]}]}))
    port = free_port()
    prom = prometheus_proc("prometheus", tmp_path / "prometheus.yml", tmp_path / "data", port, tmp_path).up()
    try:
        yield f"http://127.0.0.1:{port}", str(rules_file)
    finally:
        prom.stop()
        target.close()


def test_rules_and_alerts_documents_equal_prometheus(prometheus_with_rules):
    base, rules_file = prometheus_with_rules

    def settled():
        # Every group evaluated at least twice since the first scrape: AlwaysFiring firing, each rule's health known.
        _, doc = get(base + "/api/v1/rules")
        groups = doc["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        firing = any(r["name"] == "AlwaysFiring" and r["state"] == "firing" for r in rules)
        return firing and all(r["health"] != "unknown" for r in rules) and all(
            r["name"] != "UnderLimit" or r["state"] == "firing" for r in rules)

    wait_until(lambda: ready(base), 30, "Prometheus to be ready")
    wait_until(settled, 60, "Prometheus to scrape and evaluate every group")
    # Prometheus keeps evaluating: read its documents, then the data, and evaluate where it last did.
    raw_rules, prom_rules = get(base + "/api/v1/rules")
    _, prom_alert_rules = get(base + "/api/v1/rules?type=alert")
    _, prom_record_rules = get(base + "/api/v1/rules?type=record")
    raw_alerts, prom_alerts = get(base + "/api/v1/alerts")
    last_eval = max(rfc_ms(g["lastEvaluation"]) for g in prom_rules["data"]["groups"])
    _, data = get(f"{base}/api/v1/query?query=%7Bjob%3D%22t%22%7D%5B5m%5D&time={last_eval / 1000 + 5}")

    storage = MemoryStorage()
    first_sample = None
    for s in data["data"]["result"]:
        ts = np.array([int(round(float(t) * 1000)) for t, _ in s["values"]], dtype=np.int64)
        storage.add_series(Labels.from_dict(s["metric"]), ts, np.array([float(v) for _, v in s["values"]]))
        if s["metric"]["__name__"] == "target_value":
            first_sample = int(ts[0]) if first_sample is None else min(first_sample, int(ts[0]))
    engine = Engine(storage, subquery_step_ms=INTERVAL_S * 1000)
    groups = load_groups([rules_file], INTERVAL_S * 1000, query=engine_query_func(engine), appender=storage,
                         querier=storage)
    prom_by_name = {g["name"]: g for g in prom_rules["data"]["groups"]}
    for group in groups.values():
        # The group's slots from a little before the first scraped sample (Prometheus evaluated its groups
        # before the first scrape too: health ok, no output) up to the one it last evaluated at (its
        # lastEvaluation is the wall clock just after that slot).
        last_slot = eval_timestamp_ns(group.file, group.name, group.interval_ms,
                                      rfc_ns(prom_by_name[group.name]["lastEvaluation"])) // 1_000_000
        ts = group.first_evaluation(first_sample - 3 * group.interval_ms)
        while ts <= last_slot:
            group.run_once(ts)
            ts += group.interval_ms
    rendered = [group_json(g) for g in groups.values()]
    alerts = [a for g in groups.values() for a in group_alerts(g)]

    assert prom_rules["status"] == "success"
    # Prometheus lists a rule's alerts in its map's random order; Shardmon sorts them by labels.
    for doc in (prom_rules, prom_alert_rules, prom_record_rules):
        for g in doc["data"]["groups"]:
            for r in g["rules"]:
                r.get("alerts", []).sort(key=lambda a: sorted(a["labels"].items()))
    assert_same(rules_document(rendered), prom_rules["data"], "/api/v1/rules")
    assert_same(rules_document(rendered, "alert"), prom_alert_rules["data"], "/api/v1/rules?type=alert")
    assert_same(rules_document(rendered, "record"), prom_record_rules["data"], "/api/v1/rules?type=record")
    prom_alerts["data"]["alerts"].sort(key=lambda a: sorted(a["labels"].items()))
    assert_same(alerts_document(alerts), prom_alerts["data"], "/api/v1/alerts")
    # What a user sees first: the states and errors Prometheus shows.
    states = {r["name"]: (r.get("state"), r["health"], r.get("lastError", ""))
              for g in prom_rules["data"]["groups"] for r in g["rules"]}
    assert states["AlwaysFiring"] == ("firing", "ok", "")
    assert states["LongPending"] == ("pending", "ok", "")
    assert states["over"] == (None, "err", "exceeded limit of 1 with 2 series")
    assert states["OverAlerts"] == ("inactive", "err", "exceeded limit of 1 with 2 alerts")
    # Written as Go writes it: the bytes of a document with no timing field differ only in its order of alerts.
    ours = dumps({"status": "success", "data": alerts_document(alerts)})
    for escaped in ("\\u003c", "\\u003e", "\\u0026"):
        assert escaped in ours and escaped.encode() in raw_alerts, escaped
    assert dumps(rules_document(rendered)).count("\\u003e") == raw_rules.decode().count("\\u003e")


EXPRESSIONS = [
    "sum(x)", "sum by(job)(x)", "sum without(a,b)(x)", "sum(x) by (job)", "topk(3,x)", 'count_values("v", x)',
    "quantile(0.9, x)", "rate(x[5m] offset 1h)", "rate(x[90s] @ 100 offset -5m)", 'x{c!~"d",a="b"}',
    '{__name__=~"target_.*"}', '{__name__="x"}', "-x", "-(x + 1)", "x[5m:1m]", "max_over_time(x[1h:] offset 1d)",
    "(x+1)*2", "1.5e3", "0.00001", "1e21", '"s\\n"', "x @ 100.5", "x @ start()", "x > on(a) group_left(b) y",
    "x > bool ignoring(a) group_right y", "x unless ignoring(a) y", "x and on() y", "x + ignoring() y",
    "vector(1) > 0", "absent(x)", "x offset -5m", "x[1h30m]", "0x1F", "-1", "time()", "x == Inf",
    'label_replace(x, "a", "$1", "b", "(.*)")', 'x{a="\\u00e9\\"q"}',
    "histogram_quantile(0.9, sum by (le) (rate(x_bucket[5m])))", "x^2^3 % 4", "x atan2 y", "x[1w2d]",
]


def test_query_is_printed_as_prometheus_prints_it(tmp_path):
    from shardmon.querier.rules.promql_text import go_string

    assert shutil.which("prometheus"), "prometheus is not installed (scripts/setup.sh installs Debian's package)"
    rules_file = tmp_path / "rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "p", "interval": "1h", "rules": [
        {"record": f"r{i}", "expr": e} for i, e in enumerate(EXPRESSIONS)]}]}))
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump({"rule_files": [str(rules_file)]}))
    port = free_port()
    prom = prometheus_proc("prometheus", tmp_path / "prometheus.yml", tmp_path / "data", port, tmp_path).up()
    try:
        wait_until(lambda: ready(f"http://127.0.0.1:{port}"), 30, "Prometheus to be ready")
        doc = wait_until(lambda: get(f"http://127.0.0.1:{port}/api/v1/rules")[1]["data"]["groups"], 30,
                         "Prometheus to load the rules")
    finally:
        prom.stop()
    theirs = [r["query"] for r in doc[0]["rules"]]
    assert [go_string(e) for e in EXPRESSIONS] == theirs
