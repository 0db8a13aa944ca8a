"""Relabeling with Prometheus's semantics: every action, Go's template expansion, anchoring, RE2 syntax,
hashmod values, the memoising Relabeler, and config checks that name the field path.

Expected values marked "Prometheus 2.42" were read off ``promtool check service-discovery`` for the same
input; tests/integration/test_relabel_vs_prometheus.py compares with a real Prometheus wholesale."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from shardmon.ingest.relabel import Relabeler, expand, go_lower, go_upper, hashmod, process
from shardmon.model.config import parse_config
from shardmon.model.errors import ConfigError
from shardmon.model.labels import Labels
from shardmon.model.regex import compile_regex
from shardmon.model.relabel_config import RelabelConfig


def R(**kw) -> RelabelConfig:  # noqa: N802
    return RelabelConfig.model_validate(kw)


def ref_hashmod(value: str, modulus: int) -> int:
    """The reference, written from Prometheus's code: BigEndian.Uint64(md5(value)[8:]) % modulus."""
    digest = hashlib.md5(value.encode()).digest()
    assert len(digest) == 16
    last8 = digest[8:]
    n = 0
    for byte in last8:  # big-endian by hand, independent of int.from_bytes
        n = n * 256 + byte
    return n % modulus


TARGET = {"__address__": "10.0.0.1:9100", "__meta_dc": "eu1", "__meta_rack_id": "r7", "job": "node"}

CASES = [
    # --- replace -----------------------------------------------------------------------------------
    ("replace copies by default", {"a": "x"}, [R(source_labels=["a"], target_label="b")], {"a": "x", "b": "x"}),
    ("replace with a group", {"a": "foo-bar"}, [R(source_labels=["a"], regex="(.*)-(.*)", target_label="b",
                                                   replacement="$2")], {"a": "foo-bar", "b": "bar"}),
    ("replace ${1} and $1 and named", {"a": "k=v"},
     [R(source_labels=["a"], regex="(?P<key>\\w+)=(\\w+)", target_label="b", replacement="${key}:$2:${1}x")],
     {"a": "k=v", "b": "k:v:kx"}),
    ("$1x names the group 1x: empty", {"a": "v"},
     [R(source_labels=["a"], target_label="b", replacement="<$1x>")], {"a": "v", "b": "<>"}),
    ("$$ is a dollar", {"a": "v"}, [R(source_labels=["a"], target_label="b", replacement="$$1=$1")],
     {"a": "v", "b": "$1=v"}),
    ("undefined group is empty", {"a": "v"}, [R(source_labels=["a"], target_label="b", replacement="[$7]")],
     {"a": "v", "b": "[]"}),
    ("group that did not take part is empty", {"a": "x"},
     [R(source_labels=["a"], regex="(x)|(y)", target_label="b", replacement="1=$1,2=$2")],
     {"a": "x", "b": "1=x,2="}),
    ("malformed ${ is literal", {"a": "v"}, [R(source_labels=["a"], target_label="b", replacement="${1-$")],
     {"a": "v", "b": "${1-$"}),
    ("no match: nothing happens", {"a": "x", "b": "old"},
     [R(source_labels=["a"], regex="y", target_label="b", replacement="new")], {"a": "x", "b": "old"}),
    ("regex is anchored: a does not match ba", {"a": "ba"},
     [R(source_labels=["a"], regex="a", target_label="m", replacement="yes")], {"a": "ba"}),
    ("regex is anchored: a does not match ab", {"a": "ab"},
     [R(source_labels=["a"], regex="a", target_label="m", replacement="yes")], {"a": "ab"}),
    ("anchoring with an alternation", {"a": "xb"},
     [R(source_labels=["a"], regex="x|xb", target_label="m", replacement="$0")], {"a": "xb", "m": "xb"}),
    ("missing source is empty", {"b": "y"},
     [R(source_labels=["a", "b", "c"], target_label="j")], {"b": "y", "j": ";y;"}),
    ("separator", {"a": "1", "b": "2"},
     [R(source_labels=["a", "b"], separator="/", target_label="j")], {"a": "1", "b": "2", "j": "1/2"}),
    ("empty replacement deletes", {"a": "x", "b": "y"}, [R(source_labels=["a"], target_label="b", replacement="")],
     {"a": "x"}),
    ("empty source value deletes with the default $1", {"b": "y"}, [R(source_labels=["a"], target_label="b")], {}),
    ("constant with no source labels", {}, [R(target_label="env", replacement="prod")], {"env": "prod"}),
    ("target label from a group", {"a": "zone=eu"},
     [R(source_labels=["a"], regex="(\\w+)=(\\w+)", target_label="${1}_label", replacement="$2")],
     {"a": "zone=eu", "zone_label": "eu"}),
    ("invalid target after expansion: nothing", {"a": "1bad", "keep": "me"},
     [R(source_labels=["a"], regex="(.*)", target_label="$1", replacement="v")], {"a": "1bad", "keep": "me"}),
    ("empty target after expansion: nothing", {"a": "x"},
     [R(source_labels=["a"], regex="(y?)x", target_label="$1", replacement="v")], {"a": "x"}),
    ("__address__ rewrite", TARGET,
     [R(source_labels=["__address__"], regex="([^:]+):\\d+", target_label="__address__", replacement="${1}:9200")],
     {**TARGET, "__address__": "10.0.0.1:9200"}),
    ("__param_ label", TARGET,
     [R(source_labels=["__address__"], target_label="__param_target"),
      R(target_label="__address__", replacement="blackbox:9115")],
     {**TARGET, "__param_target": "10.0.0.1:9100", "__address__": "blackbox:9115"}),
    ("__tmp_ label carries a value between steps", TARGET,
     [R(source_labels=["__meta_dc"], regex="(..).*", target_label="__tmp_region"),
      R(source_labels=["__tmp_region", "job"], separator="-", target_label="group"),
      R(action="labeldrop", regex="__tmp_.*")],
     {**TARGET, "group": "eu-node"}),
    ("steps see earlier steps", {"a": "1"},
     [R(source_labels=["a"], target_label="b"), R(source_labels=["b"], target_label="c", replacement="$1$1")],
     {"a": "1", "b": "1", "c": "11"}),
    # --- keep / drop -------------------------------------------------------------------------------
    ("keep matches", {"job": "node"}, [R(action="keep", source_labels=["job"], regex="node|api")], {"job": "node"}),
    ("keep drops", {"job": "db"}, [R(action="keep", source_labels=["job"], regex="node|api")], None),
    ("keep is anchored", {"job": "nodes"}, [R(action="keep", source_labels=["job"], regex="node")], None),
    ("keep on a missing label matches empty", {}, [R(action="keep", source_labels=["x"], regex="")], {}),
    ("drop matches", {"job": "db"}, [R(action="drop", source_labels=["job"], regex="db")], None),
    ("drop does not match", {"job": "db2"}, [R(action="drop", source_labels=["job"], regex="db")], {"job": "db2"}),
    ("drop then nothing else runs", {"a": "x"},
     [R(action="drop", source_labels=["a"], regex="x"), R(target_label="b", replacement="y")], None),
    # --- keepequal / dropequal ---------------------------------------------------------------------
    ("keepequal equal", {"a": "1", "b": "1"}, [R(action="keepequal", source_labels=["a"], target_label="b")],
     {"a": "1", "b": "1"}),
    ("keepequal differ", {"a": "1", "b": "2"}, [R(action="keepequal", source_labels=["a"], target_label="b")], None),
    ("keepequal both missing", {}, [R(action="keepequal", source_labels=["a"], target_label="b")], {}),
    ("keepequal joins sources", {"a": "1", "b": "2", "t": "1;2"},
     [R(action="keepequal", source_labels=["a", "b"], target_label="t")], {"a": "1", "b": "2", "t": "1;2"}),
    ("dropequal equal", {"a": "1", "b": "1"}, [R(action="dropequal", source_labels=["a"], target_label="b")], None),
    ("dropequal differ", {"a": "1", "b": "2"}, [R(action="dropequal", source_labels=["a"], target_label="b")],
     {"a": "1", "b": "2"}),
    # --- hashmod -----------------------------------------------------------------------------------
    ("hashmod (Prometheus 2.42: 5)", {"__address__": "a:1"},
     [R(action="hashmod", source_labels=["__address__"], modulus=7, target_label="__tmp_hash")],
     {"__address__": "a:1", "__tmp_hash": "5"}),
    ("hashmod (Prometheus 2.42: 3)", {"__address__": "b:2"},
     [R(action="hashmod", source_labels=["__address__"], modulus=7, target_label="shard")],
     {"__address__": "b:2", "shard": "3"}),
    ("hashmod of an empty value", {}, [R(action="hashmod", source_labels=["x"], modulus=1000, target_label="h")],
     {"h": str(ref_hashmod("", 1000))}),
    ("hashmod then keep: sharding", {"__address__": "10.0.0.3:9100"},
     [R(action="hashmod", source_labels=["__address__"], modulus=7, target_label="__tmp_hash"),
      R(action="keep", source_labels=["__tmp_hash"], regex="5")],
     {"__address__": "10.0.0.3:9100", "__tmp_hash": "5"}),
    # --- labelmap / labeldrop / labelkeep --------------------------------------------------------
    ("labelmap __meta_", TARGET, [R(action="labelmap", regex="__meta_(.+)")],
     {**TARGET, "dc": "eu1", "rack_id": "r7"}),
    ("labelmap with a replacement", TARGET, [R(action="labelmap", regex="__meta_(rack)_(id)", replacement="${2}_$1")],
     {**TARGET, "id_rack": "r7"}),
    ("labelmap is anchored on the name", {"x__meta_a": "1"}, [R(action="labelmap", regex="__meta_(.+)")],
     {"x__meta_a": "1"}),
    ("labelmap overwrites, last name wins", {"a_x": "1", "b_x": "2", "x": "0"},
     [R(action="labelmap", regex="[ab]_(.*)")], {"a_x": "1", "b_x": "2", "x": "2"}),
    ("labeldrop", TARGET, [R(action="labeldrop", regex="__meta_.*")], {"__address__": "10.0.0.1:9100", "job": "node"}),
    ("labeldrop is anchored", {"ab": "1", "b": "2"}, [R(action="labeldrop", regex="b")], {"ab": "1"}),
    ("labelkeep", TARGET, [R(action="labelkeep", regex="__address__|job")],
     {"__address__": "10.0.0.1:9100", "job": "node"}),
    ("labelkeep everything gone", {"a": "1"}, [R(action="labelkeep", regex="b")], {}),
    # --- lowercase / uppercase ---------------------------------------------------------------------
    ("lowercase", {"env": "Prod"}, [R(action="lowercase", source_labels=["env"], target_label="env")],
     {"env": "prod"}),
    ("uppercase joined", {"a": "x", "b": "y"},
     [R(action="uppercase", source_labels=["a", "b"], separator="-", target_label="u")],
     {"a": "x", "b": "y", "u": "X-Y"}),
    ("lowercase of nothing deletes", {"t": "old"}, [R(action="lowercase", source_labels=["a"], target_label="t")], {}),
    # Prometheus 2.42: Go's simple case mapping, not Python's (no "i̇", no final sigma, ß stays).
    ("lowercase as Go", {"x": "İSTANBUL ß ᾳ ΑΣ"}, [R(action="lowercase", source_labels=["x"], target_label="l")],
     {"x": "İSTANBUL ß ᾳ ΑΣ", "l": "istanbul ß ᾳ ασ"}),
    ("uppercase as Go", {"x": "İSTANBUL ß ᾳ ΑΣ"}, [R(action="uppercase", source_labels=["x"], target_label="u")],
     {"x": "İSTANBUL ß ᾳ ΑΣ", "u": "İSTANBUL ß ᾼ ΑΣ"}),
    # --- RE2 syntax --------------------------------------------------------------------------------
    ("case-insensitive flag group", {"a": "PROD"},
     [R(action="keep", source_labels=["a"], regex="(?i)prod|dev")], {"a": "PROD"}),
    ("dot does not match a newline", {"a": "a\nb"}, [R(action="keep", source_labels=["a"], regex="a.b")], None),
    ("(?s) dot matches a newline", {"a": "a\nb"}, [R(action="keep", source_labels=["a"], regex="(?s)a.b")],
     {"a": "a\nb"}),
    ("$ is the end of the text", {"a": "a\n"}, [R(action="keep", source_labels=["a"], regex="a$\n")], None),
    ("\\d is ASCII", {"a": "٣"}, [R(action="keep", source_labels=["a"], regex="\\d")], None),
    ("{,3} is literal text", {"a": "a{,3}"}, [R(action="keep", source_labels=["a"], regex="a{,3}")],
     {"a": "a{,3}"}),
    ("non-capturing group", {"a": "xyz"},
     [R(source_labels=["a"], regex="(?:x|w)(y)(?:z)", target_label="b")], {"a": "xyz", "b": "y"}),
    ("POSIX class", {"a": "abc"}, [R(action="keep", source_labels=["a"], regex="[[:alpha:]]+")], {"a": "abc"}),
    ("\\Q...\\E", {"a": "a.b*"}, [R(action="keep", source_labels=["a"], regex="\\Qa.b*\\E")], {"a": "a.b*"}),
    ("Unicode classes", {"a": "Ωmega"}, [R(action="keep", source_labels=["a"], regex="\\p{Greek}\\pL+")],
     {"a": "Ωmega"}),
    ("ungreedy flag", {"a": "aaa"}, [R(source_labels=["a"], regex="(?U)(a+)(a*)", target_label="b",
                                         replacement="$1|$2")], {"a": "aaa", "b": "a|aa"}),
    ("negated POSIX class", {"a": "1-2"}, [R(action="keep", source_labels=["a"], regex="[[:^alpha:]]+")],
     {"a": "1-2"}),
    ("duplicate group names: the first that took part", {"a": "b"},
     [R(source_labels=["a"], regex="(?P<n>a)|(?P<n>b)", target_label="x", replacement="<$n>")], {"a": "b", "x": "<b>"}),
    ("null regex matches only empty", {"a": "x"},
     [R(source_labels=["a"], regex=None, target_label="m", replacement="1"),
      R(source_labels=["b"], regex=None, target_label="n", replacement="1")], {"a": "x", "n": "1"}),
    # --- no configs --------------------------------------------------------------------------------
    ("no configs", {"a": "1", "e": ""}, [], {"a": "1"}),
]


@pytest.mark.parametrize("labels, configs, want", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_process(labels, configs, want):
    got = process(labels, configs)
    expected = None if want is None else Labels.from_dict(want)
    assert got == expected
    assert isinstance(got, (Labels, type(None)))
    # The same through a Relabeler, from Labels and from a dict, twice (the second from the cache).
    relabeler = Relabeler(configs)
    for _ in range(2):
        assert relabeler(Labels.from_dict(labels)) == expected
        assert relabeler(dict(labels)) == expected


@pytest.mark.parametrize("modulus", [1, 2, 7, 10, 1000, 2**31 - 1, 2**63 + 12345, 2**64 - 1])
def test_hashmod_matches_the_reference_formula(modulus):
    for value in ["", "a:1", "10.0.0.3:9100", "node-exporter.example.com:9100;node", "ünïcødé", "x" * 1000]:
        want = ref_hashmod(value, modulus)
        assert hashmod(value, modulus) == want
        out = process({"v": value}, [R(action="hashmod", source_labels=["v"], modulus=modulus, target_label="h")])
        assert out.get("h") == str(want)


def test_hashmod_uses_the_last_eight_bytes_big_endian():
    digest = hashlib.md5(b"a:1").digest()
    assert hashmod("a:1", 2**64 - 1) == int(digest[8:].hex(), 16) % (2**64 - 1)
    assert hashmod("a:1", 2**64 - 1) != int(digest[:8].hex(), 16) % (2**64 - 1)


def test_expand_is_gos_regexp_expand():
    m = compile_regex("(?P<first>a)(b)?(c)").match("ac")
    assert m is not None
    table = {
        "$0": "ac", "$1": "a", "${1}": "a", "$2": "", "$3": "c", "$first": "a", "${first}": "a",
        "$1x": "", "${1}x": "ax", "$01": "", "$$": "$", "$$1": "$1", "$": "$", "${": "${", "${}": "${}",
        "$-": "$-", "${first": "${first", "$first.x": "a.x", "a$3b$1": "aa", "a${3}b$1": "acba", "$9999999999": "", "$nope": "",
        "${1}${3}": "ac", "x$": "x$",
    }
    for template, want in table.items():
        assert expand(template, m) == want, template


def test_go_case_mapping():
    assert go_lower("HeLLo") == "hello" and go_upper("HeLLo") == "HELLO"
    assert go_lower("ΟΔΟΣ") == "οδοσ"  # Python's lower() would end in a final sigma
    assert go_upper("ﬁ ǰ ŉ") == "ﬁ ǰ ŉ"  # no simple uppercase: unchanged, where Python expands
    assert go_upper("ᾀ") == "ᾈ"


def test_relabeler_memoises():
    relabeler = Relabeler([R(source_labels=["a"], target_label="b")], maxsize=2)
    first = relabeler({"a": "1"})
    again = relabeler(Labels.from_dict({"a": "1"}))
    assert first == again == Labels.from_dict({"a": "1", "b": "1"})
    assert first is again
    info = relabeler.cache_info()
    assert (info.hits, info.misses) == (1, 1)
    for v in "234":
        relabeler({"a": v})
    assert relabeler.cache_info().currsize == 2  # bounded (LRU)
    assert Relabeler([])({"a": "1", "b": ""}) == Labels.from_dict({"a": "1"})


def test_input_is_not_modified():
    labels = {"a": "1"}
    process(labels, [R(source_labels=["a"], target_label="b"), R(action="labeldrop", regex="a")])
    assert labels == {"a": "1"}


# --- the config model ------------------------------------------------------------------------------

def test_defaults_are_prometheus_defaults():
    c = R(target_label="x")
    assert (c.source_labels, c.separator, c.regex, c.modulus, c.replacement, c.action) == ([], ";", "(.*)", 0, "$1",
                                                                                          "replace")
    assert R(action="HashMod", modulus=3, target_label="x").action == "hashmod"  # case-insensitive, as Prometheus
    assert R(action="hashmod", modulus=5.0, target_label="x").modulus == 5  # YAML 5.0 decodes into a uint64
    assert R(separator=5, target_label="x").separator == "5"


VALID = [
    {"action": "keepequal", "source_labels": ["a"], "target_label": "b", "separator": ";", "replacement": "$1"},
    {"action": "keepequal", "target_label": "b"},  # Prometheus does not require source_labels
    {"action": "labeldrop", "regex": "a", "separator": ";", "target_label": ""},
    {"action": "labeldrop", "regex": "a", "source_labels": None},
    {"action": "replace", "target_label": "${1}x"},
    {"action": "replace", "target_label": "$a_b"},
    {"action": "labelmap", "regex": "(.*)", "replacement": "x_${1}"},
    {"action": "lowercase", "target_label": "x", "replacement": "$1"},
    {"action": "hashmod", "target_label": "x", "modulus": 2**64 - 1},
    {"action": "keep", "regex": "(?i)a(?-i:B)|c(?s:.)"},
    {"action": "keep", "regex": "\\pL+\\p{Greek}\\PN[\\p{Lu}\\d]"},
    {"action": "keep", "regex": "(?U)a+(?-U:b+)"},
    {"action": "keep", "regex": "a)|(b"},  # Prometheus's ^(?:a)|(b)$: accepted, an unanchored alternation
]


@pytest.mark.parametrize("cfg", VALID)
def test_valid_configs(cfg):
    R(**cfg)


# (relabel config, the path below the config entry, a part of the message)
INVALID = [
    ({"target_label": "x", "action": None}, "action", "relabel action cannot be empty"),
    ({"action": "nope"}, "action", "unknown relabel action 'nope'"),
    ({"action": "hashmod", "target_label": "x"}, "modulus", "hashmod requires non-zero modulus"),
    ({"action": "hashmod", "target_label": "x", "modulus": -1}, "modulus", "into uint64"),
    ({"action": "hashmod", "target_label": "x", "modulus": "5"}, "modulus", "into uint64"),
    ({"action": "hashmod", "target_label": "x", "modulus": 2**64}, "modulus", "into uint64"),
    ({"action": "hashmod", "target_label": "x", "modulus": True}, "modulus", "into uint64"),
    ({"action": "hashmod", "modulus": 3}, "target_label", "hashmod action requires 'target_label' value"),
    ({"action": "hashmod", "modulus": 3, "target_label": "$1"}, "target_label", "invalid 'target_label' for hashmod"),
    ({}, "target_label", "replace action requires 'target_label' value"),
    ({"target_label": "a-b"}, "target_label", "'a-b' is invalid 'target_label' for replace action"),
    ({"target_label": "a$"}, "target_label", "invalid 'target_label' for replace"),
    ({"target_label": "1$a"}, "target_label", "invalid 'target_label' for replace"),
    ({"target_label": "$a-b"}, "target_label", "invalid 'target_label' for replace"),
    ({"action": "lowercase"}, "target_label", "lowercase action requires 'target_label' value"),
    ({"action": "uppercase", "target_label": "$1"}, "target_label", "invalid 'target_label' for uppercase"),
    ({"action": "lowercase", "target_label": "x", "replacement": "y"}, "replacement",
     "'replacement' can not be set for lowercase action"),
    ({"action": "keepequal", "source_labels": ["a"]}, "target_label", "keepequal action requires 'target_label'"),
    ({"action": "dropequal", "source_labels": ["a"], "target_label": "b", "regex": "(.*)"}, "regex",
     "dropequal action requires only 'source_labels' and `target_label`, and no other fields"),
    ({"action": "keepequal", "source_labels": ["a"], "target_label": "b", "separator": ","}, "separator",
     "requires only 'source_labels'"),
    ({"action": "keepequal", "source_labels": ["a"], "target_label": "b", "modulus": 2}, "modulus",
     "requires only 'source_labels'"),
    ({"action": "labelmap", "replacement": "a-$1"}, "replacement", "'a-$1' is invalid 'replacement' for labelmap"),
    ({"action": "labelmap", "replacement": ""}, "replacement", "invalid 'replacement' for labelmap"),
    ({"action": "labeldrop", "regex": "a", "source_labels": []}, "source_labels",
     "labeldrop action requires only 'regex', and no other fields"),
    ({"action": "labelkeep", "regex": "a", "target_label": "x"}, "target_label", "labelkeep action requires only"),
    ({"action": "labelkeep", "regex": "a", "replacement": "x"}, "replacement", "labelkeep action requires only"),
    ({"action": "labeldrop", "regex": "a", "separator": ","}, "separator", "labeldrop action requires only"),
    ({"action": "keep", "regex": "a(b"}, "regex", "error parsing regexp 'a(b'"),
    ({"action": "keep", "regex": "a\\Z"}, "regex", "invalid escape sequence"),
    ({"action": "keep", "regex": "(?=a)a"}, "regex", "invalid or unsupported Perl syntax"),
    ({"action": "keep", "regex": "(a)\\1"}, "regex", "invalid escape sequence"),
    ({"action": "keep", "regex": "a++"}, "regex", "invalid nested repetition operator"),
    ({"action": "keep", "regex": "a{1001}"}, "regex", "invalid repeat count"),
    ({"action": "keep", "regex": "a\\Cb"}, "regex", "invalid escape sequence: `\\C`"),  # RE2 has it, Go not
    ({"action": "keep", "regex": "(?<n>a)"}, "regex", "invalid or unsupported Perl syntax: `(?<`"),  # Go 1.22+
    ({"action": "keep", "regex": "(?P<é>a)"}, "regex", "invalid named capture"),
    ({"action": "keep", "regex": "(?x)a"}, "regex", "invalid or unsupported Perl syntax"),
    ({"action": "keep", "regex": "(a{100}){11}"}, "regex", "invalid repeat count"),
    ({"source_labels": ["ok", "bad-name"], "target_label": "x"}, "source_labels[1]", "'bad-name' is not a valid"),
    ({"source_labels": "a", "target_label": "x"}, "source_labels", "valid list"),
    ({"target_label": "x", "bogus": 1}, "bogus", "field not supported"),
]


@pytest.mark.parametrize("cfg, path, message", INVALID, ids=[f"{i}-{c[1]}" for i, c in enumerate(INVALID)])
def test_config_errors_name_the_field_path(cfg, path, message):
    good = {"source_labels": ["a"], "target_label": "b"}
    config = {"scrape_configs": [{"job_name": "j", "relabel_configs": [good, cfg],
                                  "metric_relabel_configs": [good, good, cfg]}]}
    with pytest.raises(ConfigError) as exc:
        parse_config(yaml.safe_dump(config), "cfg.yml")
    text = str(exc.value)
    for where in (f"scrape_configs[0].relabel_configs[1].{path}: ",
                  f"scrape_configs[0].metric_relabel_configs[2].{path}: "):
        assert where in text, text
    assert message in text, text


def test_scrape_config_loads_relabel_configs():
    c = parse_config("""
scrape_configs:
  - job_name: node
    static_configs: [{targets: ['localhost:9100']}]
    relabel_configs:
      - source_labels: [__address__]
        modulus: 4
        target_label: __tmp_hash
        action: hashmod
      - source_labels: [__tmp_hash]
        regex: "0"
        action: keep
      - regex: __meta_(.+)
        action: labelmap
    metric_relabel_configs:
      - source_labels: [__name__]
        regex: go_.*
        action: drop
  - job_name: plain
""")
    node, plain = c.scrape_configs
    assert [r.action for r in node.relabel_configs] == ["hashmod", "keep", "labelmap"]
    assert node.relabel_configs[0].modulus == 4
    assert node.metric_relabel_configs[0].regex == "go_.*"
    assert plain.relabel_configs == [] and plain.metric_relabel_configs == []
    drop_go = Relabeler(node.metric_relabel_configs)
    assert drop_go({"__name__": "go_goroutines"}) is None
    assert drop_go({"__name__": "up"}) == Labels.from_dict({"__name__": "up"})
