"""The label index answers all four matcher types with Prometheus's empty-value rule."""

from model.labels import Labels, Matcher
from shards.index import LabelIndex

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
    from model.labels import Labels, Matcher, MatchType
    from shards.index import LabelIndex

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
