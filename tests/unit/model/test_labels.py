import pytest

from shardmon.model.labels import Labels, Matcher, MatchType, matches_all


def test_labels_are_sorted_and_drop_empty_values():
    ls = Labels.from_dict({"job": "a", "__name__": "up", "empty": ""})
    assert list(ls) == [("__name__", "up"), ("job", "a")]
    assert ls.name == "up"
    assert str(ls) == 'up{job="a"}'


def test_canonical_bytes_round_trip_including_utf8():
    ls = Labels.from_dict({"__name__": "m", "path": "/é/\"x\"", "a": "1"})
    assert Labels.from_canonical(ls.canonical()) == ls
    assert ls.canonical() == b'__name__\xffm\xffa\xff1\xffpath\xff/\xc3\xa9/"x"'


def test_series_id_is_stable_across_processes():
    # xxhash64 of the canonical bytes, not Python's hash(), which is salted per process.
    import xxhash

    ls = Labels.from_dict({"__name__": "up", "job": "a"})
    assert ls.series_id() == xxhash.xxh64_intdigest(b"__name__\xffup\xffjob\xffa")
    a = Labels.from_dict({"__name__": "up", "job": "a"}).series_id()
    b = Labels.from_pairs([("job", "a"), ("__name__", "up")]).series_id()
    assert a == b


def test_labels_order_as_prometheus_compare():
    a = Labels.from_dict({"a": "1"})
    ab = Labels.from_dict({"a": "1", "b": "2"})
    longer_name = Labels.from_dict({"ab": "0"})
    assert a < ab < longer_name


def test_matchers_follow_prometheus_empty_value_rule():
    no_job = Labels.from_dict({"__name__": "up"})
    with_job = Labels.from_dict({"__name__": "up", "job": "x"})
    assert matches_all(no_job, [Matcher(MatchType.EQ, "job", "")])
    assert not matches_all(with_job, [Matcher(MatchType.EQ, "job", "")])
    assert matches_all(with_job, [Matcher(MatchType.NEQ, "job", "")])
    assert matches_all(no_job, [Matcher(MatchType.RE, "job", ".*")])


def test_regex_matchers_are_fully_anchored():
    m = Matcher.parse_op("=~", "job", "api|web")
    assert m.matches("api") and m.matches("web")
    assert not m.matches("api-2") and not m.matches("xweb")
    assert Matcher.parse_op("!~", "job", "a.*").matches("ba")


def test_invalid_regex_is_a_clear_error():
    with pytest.raises(ValueError, match=r"error parsing regexp '\(': missing closing \)"):
        Matcher.parse_op("=~", "job", "(")


def test_re2_flag_groups_work_in_matchers():
    assert Matcher.parse_op("=~", "job", "(?i)api").matches("API")
    assert not Matcher.parse_op("=~", "job", "a(?i)p").matches("AP")
