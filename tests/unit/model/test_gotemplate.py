"""Go's text/template and Prometheus's template functions: a table of template, data and Go's output
(cases after Go's exec_test.go and Prometheus's template_test.go; the promtool differential test in
tests/integration/test_templates_vs_promtool.py checks many of them against the real thing)."""

from __future__ import annotations

import pytest

from shardmon.model.errors import TemplateExecError, TemplateExpansionError, TemplateParseError
from shardmon.model.gotemplate.executor import Template
from shardmon.model.gotemplate.gofmt import format_float, sprintf
from shardmon.model.gotemplate.prometheus import check_template, expand_template, expansion_error_text
from shardmon.model.gotemplate.values import StrMap

DATA = {"S": "str", "I": 17, "F": 1.5, "B": True, "M": StrMap(a="x", b="y"), "L": [1, 2, 3], "E": [],
        "N": None, "Any": {"k": 1}}

LANGUAGE = [
    ("plain", "plain"),
    ("{{.S}} {{.I}} {{.F}} {{.B}}", "str 17 1.5 true"),
    ("{{.M.a}}{{.M.missing}}|{{.Any.missing}}", "x|<no value>"),
    ("{{- 1 -}} \n {{- 2 }} {{3 -}}  x", "12 3x"),
    ("a {{/* c */}} b {{- /* c */ -}} c", "a  bc"),
    ("{{if .B}}y{{else}}n{{end}}{{if .E}}y{{else if .I}}i{{end}}{{if 0.0}}z{{end}}", "yi"),
    ("{{range .L}}{{.}},{{end}}{{range .E}}x{{else}}empty{{end}}", "1,2,3,empty"),
    ("{{range $i, $v := .L}}{{$i}}:{{$v}} {{end}}", "0:1 1:2 2:3 "),
    ("{{range $k, $v := .M}}{{$k}}={{$v}};{{end}}", "a=x;b=y;"),
    ("{{range .L}}{{if eq . 2}}{{continue}}{{end}}{{if eq . 3}}{{break}}{{end}}{{.}}{{end}}", "1"),
    ("{{with .S}}{{.}}{{end}}{{with .E}}x{{else}}none{{end}}", "strnone"),
    ("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}", "2"),
    ("{{define \"d\"}}<{{.}}>{{end}}{{template \"d\" .I}}{{block \"b\" .S}}[{{.}}]{{end}}", "<17>[str]"),
    ("{{\"a\\tb\"}} {{`raw\\n`}} {{'a'}} {{0x10}} {{1e3}} {{-2}}", "a\tb raw\\n 97 16 1000 -2"),
    ("{{and 1 0 2}} {{and 1 2}} {{or 0 \"\" 3}} {{or 0 \"\"}} {{not .E}}", "0 2 3  true"),
    ("{{eq .I 17}} {{ne .S \"x\"}} {{lt 1 2}} {{le 2 2}} {{gt \"b\" \"a\"}} {{ge 1.5 2.5}} {{eq 1 2 1}}",
     "true true true true true false true"),
    ("{{len .S}} {{len .L}} {{index .L 2}} {{index .M \"a\"}} {{slice .L 1}} {{slice .S 1 2}}", "3 3 3 x [2 3] t"),
    ("{{print 1 2 \"a\" 3}}|{{println 1 \"a\"}}|{{printf \"%05.1f\" .F}}", "1 2a3|1 a\n|001.5"),
    ("{{html \"<a&'\\\">\"}} {{js \"'<=>\"}} {{urlquery \"a b/é\"}}", "&lt;a&amp;&#39;&#34;&gt; \\'\\u003C\\u003D\\u003E a+b%2F%C3%A9"),
    ("{{.S | printf \"%s-%s\" \"x\"}}", "x-str"),
    ("{{(index .L 0)}} {{.M}} {{.L}} {{.N}}", "1 map[a:x b:y] [1 2 3] <no value>"),
]


@pytest.mark.parametrize("text,want", LANGUAGE)
def test_language(text, want):
    assert Template("t", text).execute(DATA) == want


EXEC_ERRORS = [
    ("{{.S.X}}", 'template: t:1:4: executing "t" at <.S.X>: can\'t evaluate field X in type string'),
    ("{{index .L 9}}", 'template: t:1:2: executing "t" at <index .L 9>: error calling index: index out of range: 9'),
    ("{{lt 1 1.5}}", 'template: t:1:2: executing "t" at <lt 1 1.5>: error calling lt: incompatible types for comparison'),
    ("{{len 3}}", 'template: t:1:2: executing "t" at <len 3>: error calling len: len of type int'),
    ("{{template \"x\"}}", 'template: t:1:11: executing "t" at <{{template "x"}}>: template "x" not defined'),
    ("\n {{nil}}", 'template: t:2:3: executing "t" at <nil>: nil is not a command'),
    ("{{range .I}}{{end}}", 'template: t:1:8: executing "t" at <.I>: range can\'t iterate over 17'),
    ("{{1 2}}", 'template: t:1:2: executing "t" at <1>: can\'t give argument to non-function 1'),
]


@pytest.mark.parametrize("text,want", EXEC_ERRORS)
def test_execution_errors_read_as_go(text, want):
    with pytest.raises(TemplateExecError) as e:
        Template("t", text).execute(DATA)
    assert str(e.value) == want


PARSE_ERRORS = [
    ("{{nosuch}}", 'template: t:1: function "nosuch" not defined'),
    ("{{$x}}", 'template: t:1: undefined variable "$x"'),
    ("{{end}}", "template: t:1: unexpected {{end}}"),
    ("{{if 1}}", "template: t:1: unexpected EOF"),
    ("{{.S", "template: t:1: unclosed action"),
    ('{{"abc}}', "template: t:1: unterminated quoted string"),
    ("{{break}}", "template: t:1: {{break}} outside {{range}}"),
    ("{{.S | 1}}", "template: t:1: non executable command in pipeline stage 2"),
    ("{{ }}", "template: t:1: missing value for command"),
    ("{{/* x */ 1}}", "template: t:1: comment ends before closing delimiter"),
]


@pytest.mark.parametrize("text,want", PARSE_ERRORS)
def test_parse_errors_read_as_go(text, want):
    with pytest.raises(TemplateParseError) as e:
        Template("t", text)
    assert str(e.value) == want


@pytest.mark.parametrize("fmt,args,want", [
    ("%v %v %v %v", (1e6, 123456.0, 1234567.0, 1e-5), "1e+06 123456 1.234567e+06 1e-05"),
    ("%.2f %e %g %G %.3g", (3.14159, 1234.5, 1e21, 1e-7, 1234.5), "3.14 1.234500e+03 1e+21 1E-07 1.23e+03"),
    ("%5d|%-5d|%05d|%+d|%x|%X|%o|%b|%c|%q", (42, 42, -42, 5, 255, 255, 8, 5, 65, 66), "   42|42   |-0042|+5|ff|FF|10|101|A|'B'"),
    ("%s|%q|%x|%10s|%-4s|%.2s", ("a", 'b"', "hi", "r", "l", "abc"), 'a|"b\\""|6869|         r|l   |ab'),
    ("%d %s", (1.5, 2), "%!d(float64=1.5) %!s(int=2)"),
    ("%d %d", (1,), "1 %!d(MISSING)"),
    ("%d", (1, "x"), "1%!(EXTRA string=x)"),
    ("%v %t %%", (float("inf"), True), "+Inf true %"),
    ("%v %f %v", (float("-inf"), float("nan"), None), "-Inf NaN <nil>"),
])
def test_sprintf_as_go(fmt, args, want):
    assert sprintf(fmt, *args) == want


def test_format_float_shortest_and_precision():
    assert format_float(0.1 + 0.2) == "0.30000000000000004"
    assert format_float(100.0, "g", 4) == "100"
    assert format_float(12345.0, "g", 4) == "1.234e+04"  # round half to even on the exact binary value
    assert format_float(-0.0) == "-0"


def _expand(text, labels=None, value=1.0, **kw):
    return expand_template("__alert_A", text, labels or {"instance": "h.example.com:9"}, value, {"c": "p"},
                           "http://prom:9090/sub%20dir/", **kw)


@pytest.mark.parametrize("text,want", [
    ("{{ humanize 1234567.0 }} {{ humanize 0.0012 }} {{ humanize 0 }} {{ humanize \"NaN\" }}", "1.235M 1.2m 0 NaN"),
    ("{{ humanize1024 1.0 }} {{ humanize1024 1536 }} {{ humanize1024 \"+Inf\" }}", "1 1.5ki +Inf"),
    ("{{ humanizeDuration 0 }} {{ humanizeDuration 90061 }} {{ humanizeDuration 3.14159 }} {{ humanizeDuration 0.0005 }}",
     "0s 1d 1h 1m 1s 3.142s 500us"),
    ("{{ humanizePercentage 0.5 }} {{ humanizeTimestamp 1435065584.128 }}", "50% 2015-06-23 13:19:44.128 +0000 UTC"),
    ("{{ pathPrefix }} {{ externalURL }}", "/sub dir/ http://prom:9090/sub%20dir/"),
    ("{{ $labels.instance | stripPort }} {{ stripDomain $labels.instance }} {{ $externalLabels.c }}", "h.example.com h:9 p"),
    ("{{ reReplaceAll \"^(.)\" \"<$1>\" \"ab\" }} {{ match \"b$\" \"ab\" }} {{ title \"a-b c_d\" }}", "<a>b true A-B C_d"),
    ("{{ toUpper \"ß\" }} {{ toLower \"ÀB\" }} {{ safeHtml \"<x>\" }} {{ parseDuration \"1m30s\" }}", "ß àb <x> 90"),
    ("{{ graphLink \"a+b\" }} {{ tableLink \"x\" }}", "/graph?g0.expr=a%2Bb&g0.tab=0 /graph?g0.expr=x&g0.tab=1"),
    ("{{ (args 1 \"a\").arg1 }} {{ (toTime 2.5).Unix }}", "a 2"),
])
def test_prometheus_functions(text, want):
    assert _expand(text) == want


def test_query_functions_use_the_injected_query():
    seen = []

    def query(expr, time_ms):
        seen.append((expr, time_ms))
        return [({"__name__": "up", "job": "b"}, 0.0), ({"__name__": "up", "job": "a"}, 1.0)]

    text = ('{{ range sortByLabel "job" (query "up") }}{{ .Labels.job }}{{ .Value }} {{ end }}'
            '{{ with query "up" }}{{ . | first | label "job" }} {{ (first .) | value }} {{ (first .) | strvalue }}|{{ end }}')
    assert _expand(text, query=query, time_ms=5000) == "a1 b0 b 0 |"
    assert seen == [("up", 5000), ("up", 5000)]


def test_expansion_errors_are_prometheus_text():
    with pytest.raises(TemplateExpansionError) as e:
        _expand('{{ first (query "x") }}', query=lambda q, t: [])
    assert expansion_error_text(e.value) == (
        '<error expanding template: error executing template __alert_A: template: __alert_A:1:115: '
        'executing "__alert_A" at <first (query "x")>: error calling first: first() called on vector with '
        'no elements>')
    with pytest.raises(TemplateExpansionError, match=r'^error parsing template __alert_A: template: '
                                                     r'__alert_A:1: function "nope" not defined$'):
        _expand("{{ nope }}")


def test_check_template():
    assert check_template("{{ $labels.x | humanize }}", "__alert_A") is None
    err = check_template("{{ if }}", "__alert_A")
    assert isinstance(err, TemplateParseError)
    assert str(err) == "template: __alert_A:1: missing value for if"


# --- other delimiters (Go's Template.Delims; prometheus-adapter's metricsQuery uses << and >>) ---------

def _adapter(text: str, data):
    return Template("metrics-query", text, delims=("<<", ">>")).execute(data)


def test_delims_make_actions_of_the_given_marks_and_text_of_braces():
    args = {"Series": "http_requests_total", "LabelMatchers": 'pod=~"a|b",namespace="web"', "GroupBy": "pod"}
    out = _adapter('sum(rate(<<.Series>>{<<.LabelMatchers>>,container!="POD"}[2m])) by (<<.GroupBy>>) {{x}}', args)
    assert out == 'sum(rate(http_requests_total{pod=~"a|b",namespace="web",container!="POD"}[2m])) by (pod) {{x}}'


def test_delims_keep_trim_markers_comments_and_control_structures():
    data = {"GroupBySlice": ["pod", "container"], "M": {"pod": "a|b"}}
    text = 'by (<<- range $i, $l := .GroupBySlice >><<if $i>>,<<end>><<$l>><<end ->> ) <<- /* c */ ->> <<index .M "pod">>'
    assert _adapter(text, data) == 'by (pod,container)a|b'


def test_delims_errors_read_as_go_words_them():
    with pytest.raises(TemplateParseError, match="unclosed action"):
        Template("q", "x << .Series", delims=("<<", ">>"))
    with pytest.raises(TemplateParseError, match="comment ends before closing delimiter"):
        Template("q", "<</* c */ x>>", delims=("<<", ">>"))
