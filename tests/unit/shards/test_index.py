"""The label index answers all four matcher types with Prometheus's empty-value rule."""

import asyncio
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import shardmon.shards.index as index_module
from shardmon.model.labels import Labels, Matcher, MatchType, matches_all
from shardmon.shards.index import LabelIndex, _RegexScan, _Selection

SERIES = [
    {"__name__": "http_requests_total", "job": "api", "code": "200"},
    {"__name__": "http_requests_total", "job": "api", "code": "500"},
    {"__name__": "http_requests_total", "job": "web", "code": "200"},
    {"__name__": "up", "job": "api"},
    {"__name__": "up", "job": "web", "env": "prod"},
]


def _index():
    idx = LabelIndex()
    idx.add(0, [Labels.from_dict(d) for d in SERIES])
    return idx


def _sel(*ms):
    return _index().select([Matcher.parse_op(op, n, v) for op, n, v in ms]).tolist()


def test_equality_and_inequality():
    assert _sel(("=", "__name__", "up")) == [3, 4]
    assert _sel(("=", "__name__", "http_requests_total"), ("!=", "code", "200")) == [1]


def test_regex_is_anchored_and_handles_alternation():
    assert _sel(("=~", "job", "api|web"), ("=", "__name__", "up")) == [3, 4]
    assert _sel(("=~", "job", "ap")) == []
    assert _sel(("!~", "code", "2.."), ("=", "__name__", "http_requests_total")) == [1]


def test_empty_value_matches_series_without_the_label():
    assert _sel(("=", "__name__", "up"), ("=", "env", "")) == [3]
    assert _sel(("!=", "env", "")) == [4]
    assert _sel(("=", "__name__", "up"), ("=~", "env", "prod|")) == [3, 4]
    assert _sel(("=", "__name__", "up"), ("!~", "env", ".+")) == [3]


def test_label_names_and_values():
    idx = _index()
    assert idx.label_names() == ["__name__", "code", "env", "job"]
    assert idx.label_values("job") == ["api", "web"]


def test_set_and_prefix_regexes_select_as_a_full_scan_would():
    from shardmon.model.labels import Labels, Matcher, MatchType
    from shardmon.shards.index import LabelIndex

    values = [f"{p}{i}" for p in ("api/v1/", "api/v2/", "web-", "x.y", "") for i in range(30)]
    idx = LabelIndex()
    idx.add(0, [Labels.from_dict({"__name__": "m", "path": v}) for v in values])
    patterns = ["api/v1/1|web-2|nope", "api/v1/.*", "api/v[12]/2.*", "x\\.y1.*", "web-+1", "web-(1|2)", ".*", "",
                "api/v1/3|", "(?i)API/v1/4"]
    for pattern in patterns:
        for t in (MatchType.RE, MatchType.NRE):
            m = Matcher(t, "path", pattern)
            want = [i for i, v in enumerate(values) if m.matches(v)]
            assert idx.select([Matcher(MatchType.EQ, "__name__", "m"), m]).tolist() == want, (t, pattern)


# --- regex matchers: the batched, narrowed and off-loop paths answer as a full scan would -------------

VALUE_TEXT = st.text(alphabet="ab.é\nx1", min_size=0, max_size=5)
REGEXES = st.sampled_from([
    ".*", ".+", "a.*", ".*a", ".*a.*", "a|b|", "a|ab", "", "a", "(?i)A.*", "[ab]+", "a?", "x.*|b", "(?s).*",
    "é.*", ".*\\..*", "[^a]*", "ab|a.|", "a\\.b", "(a|b)(x|)", "\\d+", "(a|b|)", "(?:ab|x)", "(a)|(b)",
])


def _brute(series, matchers):
    return [i for i, ls in enumerate(series) if matches_all(ls, matchers)]


@pytest.fixture
def offload_everything(monkeypatch):
    monkeypatch.setattr(index_module, "OFFLOAD_VALUES", 0)


@settings(max_examples=150, deadline=None)
@given(values=st.lists(st.one_of(st.none(), VALUE_TEXT), max_size=30), pattern=REGEXES,
       op=st.sampled_from(["=~", "!~"]), other=st.sampled_from([None, ("=", "k", "1"), ("!=", "k", "1"),
                                                                 ("=", "v", ""), ("!=", "v", "")]))
def test_regex_selection_equals_a_full_scan(values, pattern, op, other):
    series = [Labels.from_dict({"__name__": "m", "k": str(i % 2), **({"v": v} if v is not None else {})})
              for i, v in enumerate(values)]
    idx = LabelIndex()
    idx.add(0, series)
    matchers = [Matcher.parse_op(op, "v", pattern)]
    if other:
        matchers.append(Matcher.parse_op(*other))
    want = _brute(series, matchers)
    assert idx.select(matchers).tolist() == want
    idx.label_values("v")  # with the sorted values cached: the range-narrowed path
    assert idx.select(matchers).tolist() == want
    old = index_module.OFFLOAD_VALUES
    index_module.OFFLOAD_VALUES = 0  # every scan in a worker thread
    try:
        assert asyncio.run(idx.select_async(matchers)).tolist() == want
    finally:
        index_module.OFFLOAD_VALUES = old


def test_values_added_while_a_scan_runs_are_matched_too():
    first = [Labels.from_dict({"__name__": "m", "v": v}) for v in ("a1", "b1", "a2")]
    later = [Labels.from_dict({"__name__": "m", "v": v}) for v in ("a3", "b3", "1")] + [Labels.from_dict({"__name__": "m"})]
    for pattern in ("a.*", "(?:b|)1", ".*", "a[0-9]|", "[ab]3"):
        for op in (MatchType.RE, MatchType.NRE):
            for cached in (False, True):
                idx = LabelIndex()
                idx.add(0, first)
                if cached:
                    idx.label_values("v")  # sorted values cached: the scan narrows by range
                m = Matcher(op, "v", pattern)
                scan = _RegexScan(idx, m)  # the snapshot a worker thread matches
                idx.add(len(first), later)  # writes meanwhile
                found = scan.finish(idx, scan.run())
                sel = _Selection(len(idx))
                sel.add(idx._union_of("v", found), scan.negate)
                assert sel.done().tolist() == _brute(first + later, [m]), (pattern, op, cached)


def test_select_async_keeps_the_event_loop_turning(offload_everything):
    values = [f"host-{i:06d}.example.org" for i in range(200_000)]
    idx = LabelIndex()
    idx.add(0, [Labels.from_dict({"__name__": "m", "host": v}) for v in values])
    m = Matcher(MatchType.RE, "host", "(.*.*)*x|host-0000[0-9]{2}\\.example\\.org")

    async def main():
        ticks = []

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        before = len(ticks)
        t0 = time.monotonic()
        got = await idx.select_async([m])
        elapsed = time.monotonic() - t0
        during = len(ticks) - before
        task.cancel()
        return got, elapsed, during

    got, elapsed, during = asyncio.run(main())
    assert got.tolist() == list(range(100))
    assert elapsed < 5
    assert during > 0  # other coroutines ran while the values were matched


def test_a_hostile_regex_over_many_values_is_prompt():
    idx = LabelIndex()
    idx.add(0, [Labels.from_dict({"__name__": "m", "v": "y" * 40 + str(i)}) for i in range(100_000)])
    t0 = time.monotonic()
    assert idx.select([Matcher.parse_op("=~", "v", "(.*.*)*x")]).tolist() == []
    assert len(asyncio.run(idx.select_async([Matcher.parse_op("!~", "v", "(.*.*)*x")]))) == 100_000
    assert time.monotonic() - t0 < 5
