"""Durations and sizes as Prometheus writes them (model/units.py): the one parser and printer of each."""

import pytest
from pydantic import BaseModel, ValidationError

from shardmon.model.units import (
    Duration,
    Size,
    format_duration_ms,
    format_go_duration_ms,
    parse_duration_ms,
    parse_size_bytes,
)


def test_durations_parse_as_prometheus_writes_them():
    assert parse_duration_ms("15s") == 15_000
    assert parse_duration_ms("1h30m") == 5_400_000
    assert parse_duration_ms("500ms") == 500
    assert parse_duration_ms("1d") == 86_400_000
    assert parse_duration_ms("0") == 0
    for bad in ("", "15", "1.5s", "s", "5x", "1s1h"):
        with pytest.raises(ValueError):
            parse_duration_ms(bad)
    assert format_duration_ms(5_400_000) == "1h30m"
    # Years and weeks only when they divide the whole, as Prometheus's model.Duration prints it.
    assert format_duration_ms(9 * 86_400_000) == "9d" and format_duration_ms(14 * 86_400_000) == "2w"
    assert format_duration_ms(366 * 86_400_000) == "366d"


@pytest.mark.parametrize(
    ("text", "ms"),
    [("0s", 0), ("50m", 3_000_000), ("8000s", 8_000_000), ("1y", 365 * 86_400_000), ("2w", 14 * 86_400_000),
     ("1h0m5s100ms", 3_605_100)],
)
def test_every_unit_parses_and_prints_back(text, ms):
    assert parse_duration_ms(text) == ms
    assert parse_duration_ms(format_duration_ms(ms)) == ms


def test_a_duration_a_go_time_duration_cannot_hold_is_refused():
    assert parse_duration_ms("292y") == 292 * 365 * 86_400_000
    with pytest.raises(ValueError, match="duration out of range"):
        parse_duration_ms("293y")


@pytest.mark.parametrize(("ms", "text"), [(0, "0s"), (250, "250ms"), (1500, "1.5s"), (90_000, "1m30s"),
                                          (300_000, "5m0s"), (3_600_000, "1h0m0s"), (61_001, "1m1.001s")])
def test_go_durations_print_as_go_does(ms, text):
    assert format_go_duration_ms(ms) == text


class _Fields(BaseModel):
    d: Duration = 0
    s: Size = 0


def test_duration_fields_take_strings_only_and_size_fields_take_bytes_too():
    assert _Fields(d="1m", s="1KiB").model_dump() == {"d": 60_000, "s": 1024}
    assert _Fields(s=2048).s == 2048
    for bad in ({"d": 15}, {"d": True}, {"d": "5x"}, {"s": -1}, {"s": True}, {"s": "10XB"}, {"s": 1.5}):
        with pytest.raises(ValidationError):
            _Fields(**bad)


def test_sizes_parse_base_2():
    assert parse_size_bytes("512MB") == 512 * 2**20
    assert parse_size_bytes("1.5KB") == 1536
    assert parse_size_bytes("1EiB") == 2**60
