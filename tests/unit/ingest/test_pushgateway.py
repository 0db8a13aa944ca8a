"""The push store: the bound on groups, the label limits, consistency checks through its indexes,
persistence on demand (atomic, never by a push), and fuzzing of grouping-key paths, bodies and
sequences of pushes: only PushError, and the store stays consistent (its exposition parses, its
indexes match its groups, a persisted copy loads back equal)."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardmon.ingest.exposition import SeriesCache, parse_text
from shardmon.ingest.pushgateway import PushStore, grouping_key, parse_push
from shardmon.model.errors import PushError, PushGroupsLimitError
from shardmon.model.label_limits import LabelLimits
from shardmon.model.labels import Labels
from tests.unit.fuzzing import fuzz

LIMITS = LabelLimits(30, 1024, 2048)


def key(job: str, **labels: str) -> Labels:
    return Labels(sorted({"job": job, **labels}.items()))


def names(store: PushStore) -> set[str]:
    return {dict(k)["job"] for k in store.groups}


# -- the bound on groups ---------------------------------------------------------------------------


def test_a_push_creating_a_group_beyond_the_limit_is_refused_and_existing_groups_still_change():
    store = PushStore(max_groups=3)
    for job in "abc":
        store.push(key(job), b"m 1\n", replace_all=True)
    with pytest.raises(PushGroupsLimitError, match=r"receiver holds 3.*receiver\.max_push_groups"):
        store.push(key("d"), b"m 1\n", replace_all=True)
    assert names(store) == {"a", "b", "c"}  # The refused push created nothing, not even a failure record.
    store.push(key("a"), b"m 2\n", replace_all=True)  # Replacing works ...
    store.push(key("b"), b"n 2\n", replace_all=False)  # ... and so does adding to a group.
    with pytest.raises(PushError):
        store.push(key("c"), b"bad{\n", replace_all=True)  # A bad push to an existing group is recorded.
    assert store.groups[key("c")].failure_time > 0
    store.delete(key("c"))  # Deleting makes room.
    store.push(key("d"), b"m 1\n", replace_all=True)
    assert names(store) == {"a", "b", "d"}


def test_no_limit_when_zero():
    store = PushStore(max_groups=0)
    for i in range(50):
        store.push(key(f"j{i}"), b"m 1\n", replace_all=True)
    assert len(store.groups) == 50


# -- label limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("body, reason", [
    (b"m{" + b",".join(b'l%d="v"' % i for i in range(30)) + b"} 1\n", "label_limit"),
    (b"m{" + b"n" * 1025 + b'="v"} 1\n', "label_name_length_limit"),
    (b'm{k="' + b"v" * 2049 + b'"} 1\n', "label_value_length_limit"),
])
def test_a_push_with_a_series_over_a_label_limit_is_refused(body, reason):
    store = PushStore(limits=LIMITS)
    with pytest.raises(PushError, match=f"{reason} exceeded") as err:
        store.push(key("j"), body, replace_all=True)
    assert err.value.reason == reason and len(str(err.value)) < 400


def test_the_grouping_key_counts_towards_the_label_limits():
    store = PushStore(limits=LabelLimits(label_limit=3))
    store.push(key("j", instance="i"), b"m 1\n", replace_all=True)  # __name__, job, instance
    with pytest.raises(PushError, match="label_limit"):
        store.push(key("j", instance="i"), b'm{a="b"} 1\n', replace_all=True)


# -- consistency, through the indexes --------------------------------------------------------------


def test_a_family_with_another_type_in_another_group_is_refused():
    store = PushStore()
    store.push(key("a"), b"# TYPE m counter\nm 1\n", replace_all=True)
    with pytest.raises(PushError, match=r"metric 'm' pushed with type gauge but has type counter in group \{job=\"a\"\}"):
        store.push(key("b"), b"# TYPE m gauge\nm{x=\"1\"} 1\n", replace_all=True)
    store.push(key("a"), b"# TYPE m gauge\nm 1\n", replace_all=True)  # Its own group may change the type.
    store.push(key("b"), b"# TYPE m gauge\nm{x=\"1\"} 1\n", replace_all=True)


def test_a_series_held_by_another_group_is_refused():
    store = PushStore()
    store.push(key("a", instance="x"), b"m 1\n", replace_all=True)  # m{instance="x",job="a"}
    store.push(key("b"), b'm{instance="x",job="a"} 1\n', replace_all=True)  # The key wins: job="b".
    with pytest.raises(PushError, match=r'm\{instance="x", job="a"\} already exists in group \{instance="x", job="a"\}'):
        store.push(key("a"), b'm{instance="x"} 1\n', replace_all=True)
    store.push(key("a", instance="x"), b"other 1\n", replace_all=True)  # The group lets go of it ...
    store.push(key("a"), b'm{instance="x"} 1\n', replace_all=True)  # ... and another may take it.
    assert_indexes_match(store)


def test_a_grouping_key_that_differs_from_another_only_in_empty_labels_is_refused():
    store = PushStore()
    store.push(key("b"), b"m 1\n", replace_all=True)
    with pytest.raises(PushError, match=r'grouping key \{instance="", job="b"\} is the same as that of group \{job="b"\}'):
        store.push(key("b", instance=""), b"n 1\n", replace_all=True)
    assert list(store.groups) == [key("b")]  # Not even a failure record: it would expose a duplicate.


def test_a_post_may_not_expose_a_series_twice_in_its_own_group():
    store = PushStore()
    store.push(key("a"), b'h_bucket{le="1"} 1\n', replace_all=True)  # Family h_bucket, untyped.
    with pytest.raises(PushError, match="of family 'h' already exists in family 'h_bucket'"):
        store.push(key("a"), b'# TYPE h histogram\nh_bucket{le="1"} 1\n', replace_all=False)
    store.push(key("a"), b'# TYPE h histogram\nh_bucket{le="1"} 1\n', replace_all=True)  # A PUT replaces all.


def test_a_replaced_group_keeps_its_place_in_the_exposition():
    store = PushStore()
    for job in "abc":
        store.push(key(job), f"m_{job} 1\n".encode(), replace_all=True)
    store.push(key("a"), b"m_a 2\n", replace_all=True)
    assert list(store.groups) == [key("a"), key("b"), key("c")]


def test_a_file_with_clashing_groups_loads_and_each_can_be_deleted(tmp_path):
    path = tmp_path / "push.json"
    group = {"push_time": 1.0, "failure_time": 0.0,
             "families": [{"name": "m", "type": "untyped", "help": "", "samples": [[[["__name__", "m"]], "1"]]}]}
    path.write_text(json.dumps([{"key": [["job", "a"]], **group}, {"key": [["instance", ""], ["job", "a"]], **group}]))
    store = PushStore(path)
    assert len(store.groups) == 2
    store.delete(key("a"))
    store.delete(key("a", instance=""))
    assert store.groups == {} and store._owner == {} and store._by_exposed_key == {} and store._families == {}


def test_deleting_and_wiping_clear_the_indexes():
    store = PushStore()
    store.push(key("a"), b"# TYPE m counter\nm 1\n", replace_all=True)
    store.delete(key("a"))
    store.push(key("b"), b"# TYPE m gauge\nm 1\n", replace_all=True)
    store.wipe()
    store.push(key("c"), b"# TYPE m counter\nm 1\n", replace_all=True)
    assert_indexes_match(store)


# -- persistence -----------------------------------------------------------------------------------


def test_a_push_never_writes_the_file_persist_does(tmp_path):
    path = tmp_path / "push.json"
    store = PushStore(path)
    store.push(key("a"), b"m 1\n", replace_all=True)
    assert not path.exists() and store.dirty
    assert store.persist() and not store.dirty and path.exists()
    assert not store.persist()  # Nothing changed since.
    store.push(key("b"), b"m 2\n", replace_all=True)
    store.delete(key("a"))
    assert store.persist()
    again = PushStore(path)
    assert again.groups == store.groups and not again.dirty
    assert again.exposition() == store.exposition()
    assert_indexes_match(again)
    assert not list(tmp_path.glob("*.tmp"))


def test_an_unreadable_file_is_moved_aside_and_the_store_starts_empty(tmp_path, caplog):
    path = tmp_path / "push.json"
    path.write_text('[{"key": [["job", "a"]], "push_time": 1')
    store = PushStore(path)
    assert store.groups == {} and not path.exists()
    assert (tmp_path / "push.json.corrupt").read_text().startswith('[{"key"')
    assert "cannot be read" in caplog.text
    path.write_text(json.dumps([{"key": 5}]))
    assert PushStore(path).groups == {}


# -- fuzzing ---------------------------------------------------------------------------------------

path_parts = st.one_of(
    st.sampled_from(["job", "job@base64", "instance", "a@base64", "__x", "0x", "=", "", "a", "L3Zhci90bXA", "%2F",
                     "job@base64@base64", "a b", "é"]),
    st.text(max_size=20),
)


@fuzz()
@given(st.one_of(st.text(max_size=200), st.lists(path_parts, max_size=10).map("/".join)))
def test_grouping_key_paths_give_a_key_or_a_push_error(path):
    try:
        k = grouping_key(path)
    except PushError as exc:
        assert len(str(exc)) < 400
        return
    d = dict(k)
    assert d["job"] and list(k) == sorted(k)


@fuzz()
@given(st.dictionaries(st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True).filter(lambda n: not n.startswith("__")),
                       st.text(max_size=20), max_size=5), st.text(min_size=1, max_size=20))
def test_base64_grouping_keys_decode_to_their_values(labels, job):
    labels.pop("job", None)
    path = "job@base64/" + base64.urlsafe_b64encode(job.encode()).decode().rstrip("=") + "".join(
        f"/{n}@base64/{base64.urlsafe_b64encode(v.encode()).decode().rstrip('=') or '='}" for n, v in labels.items())
    assert dict(grouping_key(path)) == {"job": job, **labels}


LINES = [b"m 1", b"m{a=\"1\"} 2", b"n_total 3", b"# TYPE m counter", b"# TYPE m gauge", b"# TYPE h histogram",
         b'h_bucket{le="1"} 1', b'h_bucket{le="+Inf"} 2', b"h_sum 3", b"h_count 2", b"# HELP m help\\n text",
         b'm{instance="x"} 4', b'm{job="other"} 5', b"push_time_seconds 1", b"m 1 1700000000000", b"bad{",
         b'm{a="1",a="2"} 1', b"", b"# comment", b'x{l0="v",l1="v",l2="v",l3="v"} 1']
push_bodies = st.one_of(st.lists(st.sampled_from(LINES), max_size=8).map(lambda ls: b"\n".join(ls) + b"\n"),
                        st.binary(max_size=200))
keys = st.sampled_from([key("a"), key("b"), key("a", instance="x"), key("b", instance=""), key("c", x="1")])
operations = st.lists(st.tuples(st.sampled_from(["PUT", "POST", "DELETE"]), keys, push_bodies), max_size=25)


def assert_indexes_match(store: PushStore) -> None:
    families: dict = {}
    owner: dict = {}
    assert store._by_exposed_key == {Labels(p for p in k if p[1]): k for k in store.groups}  # No clashes here.
    for k, g in store.groups.items():
        for name, fam in g.families.items():
            families.setdefault(name, {}).setdefault(fam.type, {})[k] = None
            for labels, _ in fam.samples:
                owner[labels] = k
    assert store._families == families and store._owner == owner


@fuzz(examples=100, deadline_ms=4000)
@given(operations)
def test_any_sequence_of_pushes_keeps_the_store_consistent(tmp_path_factory, ops):
    path = tmp_path_factory.mktemp("push") / "push.json"
    store = PushStore(path, max_groups=4, limits=LabelLimits(label_limit=5))
    for method, k, body in ops:
        try:
            if method == "DELETE":
                store.delete(k)
            else:
                store.push(k, body, replace_all=method == "PUT")
        except PushError as exc:
            assert len(str(exc)) < 500
        assert len(store.groups) <= 4
    assert_indexes_match(store)
    exposed = store.exposition()
    parsed = parse_text(exposed, SeriesCache())  # What the store exposes is always valid text format ...
    cache = SeriesCache()
    parsed = parse_text(exposed, cache)
    assert len({cache.labels[r] for r in parsed.refs.tolist()}) == len(parsed.refs)  # ... without duplicates.
    store.persist()
    assert PushStore(path).groups == store.groups


@fuzz()
@given(push_bodies)
def test_push_bodies_parse_or_raise_push_errors(body):
    try:
        parse_push(body, key("j"), LIMITS)
    except PushError as exc:
        assert len(str(exc)) < 500
