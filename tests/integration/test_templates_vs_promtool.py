"""Our Go-template evaluator against Debian's promtool 2.42: every Prometheus template function and
the language features, in alert annotations that ``promtool test rules`` must find equal to what
``expand_template`` produces (expansion errors included: the annotation is then Prometheus's
``<error expanding template: ...>`` text). One promtool run carries all the cases."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
import yaml

from shardmon.model.errors import TemplateExpansionError
from shardmon.model.gotemplate.prometheus import expand_template, expansion_error_text

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="Debian's promtool is not installed")

LABELS = {"__name__": "test_metric", "instance": "host.example.com:9090", "job": "node", "path": "/a b/<c>"}
SERIES = [
    ('test_metric{instance="host.example.com:9090",job="node",path="/a b/<c>"}', "1234.5+0x10"),
    ('q_metric{instance="b:1",region="eu"}', "2+0x10"),
    ('q_metric{instance="a:1",region="us"}', "1.5+0x10"),
    ('q_metric{instance="c:1"}', "1e-05+0x10"),
]
EXTERNAL_LABELS = {"cluster": "prod", "dc": "x1"}
EXTERNAL_URL = "http://prom.example.com:9090/prefix/path"
EVAL_MS = 60_000

CASES = [
    # Prometheus's function map
    '{{ $value | humanize }} {{ humanize 0 }} {{ humanize 0.000123 }} {{ humanize 1e30 }} {{ humanize -1500 }}',
    '{{ humanize "12345" }} {{ humanize 1 }} {{ humanize 999.99999 }} {{ humanize 1e-30 }}',
    '{{ humanize1024 0.5 }} {{ humanize1024 1024 }} {{ humanize1024 123456789 }} {{ humanize1024 -2048 }}',
    '{{ humanizeDuration 0 }} {{ humanizeDuration 1 }} {{ humanizeDuration 59.5 }} {{ humanizeDuration 61 }}',
    '{{ humanizeDuration 3601 }} {{ humanizeDuration 90061.7 }} {{ humanizeDuration -3601 }} {{ humanizeDuration 0.25 }}',
    '{{ humanizeDuration 0.000001234 }} {{ humanizeDuration -0.5 }} {{ humanizeDuration "1.5" }}',
    '{{ humanizePercentage 0.1234 }} {{ humanizePercentage 1 }} {{ humanizePercentage 0 }} {{ humanizePercentage 0.000012345 }}',
    '{{ humanizeTimestamp 0 }} {{ humanizeTimestamp 1435065584.128 }} {{ humanizeTimestamp 1.5 }} {{ humanizeTimestamp -1.5 }}',
    '{{ humanizeTimestamp 1e10 }}',
    '{{ (toTime 1435065584.128).Unix }} {{ toTime 12.25 }}',
    '{{ with query "q_metric" }}{{ len . }}{{ end }}',
    '{{ range sortByLabel "instance" (query "q_metric") }}{{ .Labels.instance }}={{ .Value }};{{ end }}',
    '{{ with query "sum(q_metric)" }}{{ . | first | value | humanize }}{{ end }}',
    '{{ query "q_metric{instance=\'b:1\'}" | first | label "region" }} {{ with query "q_metric{instance=\'b:1\'}" }}{{ (first .).Labels.region }}{{ end }}',
    '{{ with query "absent_metric_xyz" }}some{{ else }}none{{ end }}',
    '{{ query "absent_metric_xyz" | first | value }}',
    '{{ template "args" args 1 "two" 3.5 }}{{ define "args" }}{{ .arg0 }}-{{ .arg1 }}-{{ .arg2 }}-{{ .arg3 }}{{ end }}',
    '{{ reReplaceAll "(.*)\\\\.example\\\\.com:(\\\\d+)" "$1 on $2" $labels.instance }} {{ reReplaceAll "o" "0" "foo" }}',
    '{{ reReplaceAll "a*" "-" "baaac" }} {{ reReplaceAll "(?P<x>b)" "${x}${x}" "abc" }}',
    '{{ reReplaceAll "(" "x" "y" }}',
    '{{ match "^host" $labels.instance }} {{ match "nomatch" "abc" }} {{ if match "node" $labels.job }}yes{{ end }}',
    '{{ match "[" "x" }}',
    '{{ safeHtml "<b>x</b>" }} {{ title "hello wORLD foo_bar x.y" }} {{ toUpper "abc" }} {{ toLower "ABC Ä" }}',
    '{{ stripPort $labels.instance }} {{ stripPort "[::1]:80" }} {{ stripPort "nohost" }} {{ stripPort "a:b:c" }}',
    '{{ stripDomain $labels.instance }} {{ stripDomain "a.b.c" }} {{ stripDomain "10.0.0.1:9" }} {{ stripDomain "[fe80::1]:9" }} {{ stripDomain "x" }}',
    # (pathPrefix and externalURL fail in promtool: its unit tests give the rules no external URL object.)
    '{{ $externalURL }} {{ .ExternalURL }}',
    '{{ graphLink "rate(x[5m]) > 0" }} {{ tableLink "up{job=\\"a b\\"}" }}',
    '{{ parseDuration "1h30m" }} {{ parseDuration "1d" }} {{ parseDuration "500ms" }} {{ parseDuration "0" }}',
    '{{ parseDuration "1x" }}',
    '{{ strvalue (first (query "q_metric")) }}|',
    # Data and the language
    '{{ $labels.instance }} {{ $labels.missing }}| {{ .Labels.job }} {{ $value }} {{ .Value }} {{ $externalLabels.cluster }}',
    '{{ range $k, $v := $labels }}{{ $k }}={{ $v }},{{ end }} {{ range $externalLabels }}{{ . }} {{ end }}',
    '{{ . }}',
    '{{ $labels }}',
    '{{ if gt $value 1000.0 }}big{{ else if gt $value 10.0 }}mid{{ else }}small{{ end }}',
    '{{ if and (eq $labels.job "node") (ne $labels.instance "") }}ok{{ end }} {{ or "" "fallback" }} {{ not 0 }}',
    '{{ printf "%.2f|%d|%s|%q|%v|%5.1f|%-6s|%06.2f|%x|%e|%g|%%|%t" $value 42 "s" "q\\"" $value 3.14159 "ab" 3.14159 255 $value 1e21 true }}',
    '{{ printf "%d" $value }} {{ printf "%s" 3 }} {{ printf "%d %d" 1 }} {{ printf "%d" 1 2 }} {{ printf "%s" nil }}',
    '{{ printf "%v %v %v %v %v" 1e6 123456.0 1234567.0 0.0001 0.00001 }} {{ 1e6 }} {{ 100.0 }} {{ -0.5 }}',
    '{{ print 1 2 "a" "b" 3 }} {{ println "x" 1 }}|{{ len "héllo" }} {{ index $labels "job" }} {{ slice "abcdef" 1 3 }}',
    '{{- /* comment */ -}}  a  {{- " b " -}}  c {{ `raw\\n` }} {{ "esc\\tq\\u00e9" }} {{ \'a\' }} {{ 0x1F }} {{ 1_000 }}',
    '{{ $x := 1 }}{{ if true }}{{ $x = 2 }}{{ end }}{{ $x }} {{ with $y := "w" }}{{ $y }}{{ end }}',
    '{{ range $i, $e := (query "q_metric") }}{{ if eq $i 1 }}{{ continue }}{{ end }}{{ if eq $i 2 }}{{ break }}{{ end }}{{ $i }}{{ end }}',
    '{{ block "b" . }}[{{ .Labels.job }}]{{ end }}',
    '{{ html "<a href=\'x\'>&</a>" }} {{ js "it\'s <b> = \\"x\\"" }} {{ urlquery "a b&c=d/é" }}',
    '{{ eq 1 1.0 }}',
    '{{ lt "a" "b" }} {{ le 2 2 }} {{ ge 1.5 2.5 }} {{ eq "x" "y" "x" }} {{ eq .Labels.nope "" }}',
    '{{ .Nope }}',
    '{{ $labels.job.x }}',
    '{{ title 1 }}',
    '{{ humanize "abc" }}',
    '{{ index $labels 1 }}',
    '{{ len 3 }}',
    '{{ template "nodef" }}',
    '{{ nil }}',
    '{{ humanize }}',
    '{{ 1 2 }}',
    '{{ (humanize 1).x }}',
]

BAD_PARSE = [
    '{{ nosuchfunc }}',
    '{{ if }}',
    '{{ $undefined }}',
    '{{ end }}',
    '{{ "unterminated }}',
]


def _query(expr: str, time_ms: int):
    data = {
        "q_metric": [({"__name__": "q_metric", "instance": "b:1", "region": "eu"}, 2.0),
                     ({"__name__": "q_metric", "instance": "a:1", "region": "us"}, 1.5),
                     ({"__name__": "q_metric", "instance": "c:1"}, 1e-05)],
        "sum(q_metric)": [({}, 3.50001)],
        "q_metric{instance='b:1'}": [({"__name__": "q_metric", "instance": "b:1", "region": "eu"}, 2.0)],
        "absent_metric_xyz": [],
    }
    return data[expr]


def _expected(i: int, text: str) -> str:
    try:
        return expand_template(f"__alert_T{i}", text, LABELS, 1234.5, EXTERNAL_LABELS, EXTERNAL_URL,
                               query=_query, time_ms=EVAL_MS)
    except TemplateExpansionError as e:
        return expansion_error_text(e)


def test_every_case_expands_as_promtool_expands_it(tmp_path):
    rules = {"groups": [{"name": "templates", "rules": [
        {"alert": f"T{i}", "expr": "test_metric", "annotations": {"out": text}} for i, text in enumerate(CASES)
    ]}]}
    # Where a case ranges over a query's result unsorted, the stub's order is promtool's (by labels).
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "interval": "1m",
            "external_labels": EXTERNAL_LABELS,
            "external_url": EXTERNAL_URL,
            "input_series": [{"series": s, "values": v} for s, v in SERIES],
            "alert_rule_test": [{
                "eval_time": "1m",
                "alertname": f"T{i}",
                "exp_alerts": [{
                    "exp_labels": {k: v for k, v in LABELS.items() if k != "__name__"},
                    "exp_annotations": {"out": _expected(i, text)},
                }],
            } for i, text in enumerate(CASES)],
        }],
    }
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules, allow_unicode=True))
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests, allow_unicode=True))
    proc = subprocess.run(["promtool", "test", "rules", "tests.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The same file through `shardmon test rules`: the rule evaluator expands with the same templates,
    # its `query` function on Shardmon's own engine.
    ours = subprocess.run([sys.executable, "-m", "shardmon", "test", "rules", "tests.yml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert ours.returncode == 0, ours.stdout + ours.stderr
    assert ours.stdout.strip().splitlines()[-1] == f"{len(CASES)} passed, 0 failed"


@pytest.mark.parametrize("text", BAD_PARSE)
def test_parse_errors_match_promtool_check_rules(tmp_path, text):
    from shardmon.model.gotemplate.prometheus import check_template
    rules = {"groups": [{"name": "g", "rules": [{"alert": "Bad", "expr": "up", "annotations": {"a": text}}]}]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    proc = subprocess.run(["promtool", "check", "rules", "rules.yml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    err = check_template(text, "__alert_Bad")
    assert err is not None
    assert str(err) in proc.stdout + proc.stderr, (str(err), proc.stdout + proc.stderr)
