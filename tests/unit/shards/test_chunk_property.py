"""Chunk format 2 round-trips every float64 and timestamp sequence bit for bit; format 1 still decodes."""

import struct

import numpy as np
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shardmon.model.samples import STALE_NAN, STALE_NAN_BITS
from shardmon.shards import chunk

I64_MIN, I64_MAX = -(2**63), 2**63 - 1

# --- strategies ------------------------------------------------------------------------------------


def _bits_to_float(b: int) -> float:
    return struct.unpack("<d", struct.pack("<Q", b))[0]


float_bits = st.integers(0, 2**64 - 1).map(_bits_to_float)
any_float = st.floats(allow_nan=True, allow_infinity=True)
specials = st.sampled_from(
    [STALE_NAN, float("nan"), -0.0, 0.0, float("inf"), -float("inf"), 5e-324, -5e-324, 2.2250738585072014e-308,
     1.7976931348623157e308, -1.7976931348623157e308, _bits_to_float(0x7FF8DEADBEEF0001), _bits_to_float(0xFFF0000000000001)]
)
decimal_places = st.integers(-3, 6)
gauges = st.sampled_from([0.25, 12.5, 0.1, 0.3, 1.0, 99.99, 1.5e9, 4096.0, 1e21, 1e-7, 123456.789])


@st.composite
def decimals(draw, n: int) -> list[float]:
    """Values as exporters print them: integers, counters, 1-3 (or more) decimals, their scaled forms."""
    d = draw(decimal_places)
    kind = draw(st.sampled_from(["ints", "counter", "walk", "gauge"]))
    if kind == "ints":
        ints = draw(st.lists(st.integers(-(2**53), 2**53), min_size=n, max_size=n))
    elif kind == "counter":
        start = draw(st.integers(0, 2**40))
        incs = draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n))
        ints = list(np.cumsum([start] + incs[:-1])) if n else []
    elif kind == "walk":
        start = draw(st.integers(-(10**6), 10**6))
        steps = draw(st.lists(st.integers(-500, 500), min_size=n, max_size=n))
        ints = list(np.cumsum([start] + steps[:-1])) if n else []
    else:
        return draw(st.lists(gauges, min_size=n, max_size=n))
    # int / 10**d is the correctly rounded decimal, i.e. what parsing "123.45" gives
    return [int(i) / 10**d if d >= 0 else float(int(i) * 10**-d) for i in ints]


@st.composite
def values(draw, n: int) -> np.ndarray:
    kind = draw(st.sampled_from(["bits", "floats", "decimal", "decimal+special", "mixed"]))
    if kind == "bits":
        vals = draw(st.lists(float_bits, min_size=n, max_size=n))
    elif kind == "floats":
        vals = draw(st.lists(any_float, min_size=n, max_size=n))
    elif kind == "decimal":
        vals = draw(decimals(n))
    elif kind == "decimal+special":
        vals = draw(decimals(n))
        for _ in range(draw(st.integers(0, min(n, 5)))):
            vals[draw(st.integers(0, n - 1))] = draw(specials)
        if n and draw(st.booleans()):
            vals[-1] = STALE_NAN  # a series that ended
    else:
        vals = draw(st.lists(st.one_of(float_bits, any_float, specials, gauges), min_size=n, max_size=n))
    return np.asarray(vals, dtype=np.float64)


@st.composite
def timestamps(draw, n: int) -> np.ndarray:
    kind = draw(st.sampled_from(["irregular", "anywhere", "regular", "jitter", "extreme"]))
    if kind == "anywhere":  # anything strictly increasing in int64, gaps up to the whole range
        ts = sorted(draw(st.sets(st.integers(I64_MIN, I64_MAX), min_size=n, max_size=n)))
    elif kind == "irregular":
        start = draw(st.integers(-(2**40), 2**41))
        gaps = draw(st.lists(st.integers(1, 2**31), min_size=n, max_size=n))
        ts = list(start + np.cumsum(gaps, dtype=np.int64)) if n else []
    else:
        interval = draw(st.sampled_from([1, 1000, 10_000, 15_000, 60_000]) | st.integers(1, 2**40))
        jitter = 0 if kind == "regular" else draw(st.integers(0, interval - 1))
        span = interval * n
        if kind == "extreme":  # hard against either end of int64
            start = draw(st.sampled_from([I64_MIN, I64_MAX - span - jitter]))
        else:
            start = draw(st.integers(-(2**50), 2**50))
        offs = draw(st.lists(st.integers(0, jitter), min_size=n, max_size=n))
        ts = [start + i * interval + o for i, o in enumerate(offs)]  # jitter < interval: still increasing
    return np.asarray(ts, dtype=np.int64).reshape(n)


@st.composite
def samples(draw, max_n: int = 300):
    n = draw(st.integers(0, 3) | st.integers(0, max_n))
    return draw(timestamps(n)), draw(values(n))


@st.composite
def long_samples(draw):
    """Block-sized chunks (2 h at 10 or 15 s and more), made with numpy from a few drawn parameters."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(400, 1500))
    interval = draw(st.sampled_from([10_000, 15_000, 30_000]))
    jitter = draw(st.sampled_from([0, 1, 3, 50]))
    ts = draw(st.integers(-(2**45), 2**45)) + np.arange(n, dtype=np.int64) * interval + rng.integers(0, jitter + 1, n)
    d = draw(decimal_places)
    kind = draw(st.sampled_from(["counter", "gauge", "bits", "normal", "steps"]))
    if kind == "counter":
        vals = np.cumsum(rng.integers(0, 10 ** rng.integers(1, 9), n)) / 10.0**d
    elif kind == "gauge":
        vals = np.cumsum(rng.integers(-100, 101, n)) / 10.0**d
    elif kind == "bits":
        vals = rng.integers(0, 2**64, n, dtype=np.uint64, endpoint=False).view(np.float64)
    elif kind == "normal":
        vals = rng.normal(0, 10.0 ** rng.integers(-5, 10), n)
    else:
        vals = np.repeat(rng.integers(0, 2**40, n // 50 + 1) * 4096.0, 50)[:n]
    specials_at = rng.random(n) < draw(st.sampled_from([0.0, 0.001, 0.05, 0.9]))
    vals = np.where(specials_at, np.float64(STALE_NAN), vals)
    return ts, vals


def assert_same(got, ts, vals):
    got_ts, got_vals = got
    assert got_ts.dtype == np.int64 and got_vals.dtype == np.float64
    assert np.array_equal(got_ts, ts)
    assert np.array_equal(got_vals.view(np.uint64), vals.view(np.uint64))


# --- format 2 round trip ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(samples())
def test_round_trip_is_bit_exact(data):
    ts, vals = data
    enc = chunk.encode(ts, vals)
    assert enc[0] == chunk.FORMAT_COLUMNS_ZSTD
    assert_same(chunk.decode(enc), ts, vals)


@settings(max_examples=100, deadline=None)
@given(long_samples())
def test_block_sized_chunks_round_trip(data):
    ts, vals = data
    assert_same(chunk.decode(chunk.encode(ts, vals)), ts, vals)


@settings(max_examples=100, deadline=None)
@given(samples(max_n=200))
def test_every_truncation_is_refused(data):
    ts, vals = data
    enc = chunk.encode(ts, vals)
    for cut in sorted({0, 1, len(enc) // 2, len(enc) - 1}):
        if cut < len(enc):
            with pytest.raises(ValueError):
                chunk.decode(enc[:cut])
    with pytest.raises(ValueError):
        chunk.decode(enc + b"\0")


@pytest.mark.parametrize(
    "ts",
    [
        [I64_MIN, I64_MAX],
        [I64_MIN, I64_MIN + 1, I64_MAX],
        [I64_MIN, 0, I64_MAX],
        [I64_MAX - 2, I64_MAX - 1, I64_MAX],
        [-5, -3, 0, 2**62, 2**63 - 1],
        [0],
        [I64_MIN],
    ],
)
def test_timestamps_at_the_ends_of_int64(ts):
    ts = np.array(ts, dtype=np.int64)
    vals = np.arange(ts.shape[0], dtype=np.float64)
    assert_same(chunk.decode(chunk.encode(ts, vals)), ts, vals)


def test_special_values_in_every_mode():
    ts = 1_700_000_000_000 + np.arange(13, dtype=np.int64) * 15_000
    odd = np.array([STALE_NAN, float("nan"), -0.0, 0.0, float("inf"), -float("inf"), 5e-324, 1.7976931348623157e308,
                    _bits_to_float(0x7FF8DEADBEEF0001), _bits_to_float(0xFFF0000000000001), 1.5, -2.25, 1e-310])
    for vals in (odd, np.where(np.arange(13) % 3 == 0, odd, 1.25), np.full(13, STALE_NAN), np.full(13, -0.0)):
        assert_same(chunk.decode(chunk.encode(ts, vals)), ts, vals)


def test_empty_chunk():
    enc = chunk.encode(np.empty(0, np.int64), np.empty(0, np.float64))
    ts, vals = chunk.decode(enc)
    assert ts.shape == vals.shape == (0,)
    assert ts.dtype == np.int64 and vals.dtype == np.float64


def test_unknown_format_is_refused():
    with pytest.raises(ValueError):
        chunk.decode(b"\x07\x00")
    with pytest.raises(ValueError):
        chunk.decode(b"")


def test_length_mismatch_is_refused():
    with pytest.raises(ValueError):
        chunk.encode(np.arange(3, dtype=np.int64), np.zeros(2))


# --- decimal scaling -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "vals, k",
    [
        ([12.34, 1.5, 0.25, 100.0], 2),
        ([0.1, 0.2, 0.3], 1),
        ([1.0, 2.0, 3.0], 0),
        ([1.5e9, 3e9, 4.5e9], -8),
        ([12.0, 30.0], 0),
        ([120.0, 3000.0], -1),
        ([0.0, 0.0], -22),
        ([26542 / 1e9, 1e-9], 9),
        ([-7.125, 7.125], 3),
    ],
)
def test_smallest_decimal_scale(vals, k):
    got = chunk._find_scale(np.array(vals))
    assert got is not None and got[0] == k
    back = chunk._unscale(got[1], got[0])
    assert np.array_equal(back.view(np.uint64), np.array(vals).view(np.uint64))


def test_values_without_a_scale():
    rng = np.random.default_rng(0)
    # float noise, a subnormal, NaN, -0.0, 0.1 + 0.2 (17 digits: over 2**53 units), a large odd integer
    cases = (rng.normal(size=100), [5e-324], [float("nan")], [-0.0], [0.1 + 0.2], [2.0**60 + 2**8])
    for vals in cases:
        vals = np.array(vals, dtype=np.float64)
        assert chunk._find_scale(vals) is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(float_bits, any_float, gauges), min_size=1, max_size=50))
def test_a_found_scale_reconstructs_exactly(vals):
    vals = np.array(vals, dtype=np.float64)
    got = chunk._find_scale(vals)
    if got is not None:
        k, ints = got
        assert -chunk.MAX_SCALE <= k <= chunk.MAX_SCALE
        assert np.array_equal(chunk._unscale(ints, k).view(np.uint64), vals.view(np.uint64))


# --- format 1 (legacy) -----------------------------------------------------------------------------


def encode_format_1(ts: np.ndarray, vals: np.ndarray) -> bytes:
    """The format-1 encoder as it was: header <BI, then one zstd level-3 frame of dod timestamps and XOR bits."""
    n = ts.shape[0]
    ts = np.ascontiguousarray(ts, np.int64)
    tcol = np.empty(n, np.int64)
    if n:
        tcol[0] = ts[0]
        if n > 1:
            d = np.diff(ts)
            tcol[1] = d[0]
            tcol[2:] = np.diff(d)
    bits = np.ascontiguousarray(vals, np.float64).view(np.uint64)
    vcol = bits.copy()
    vcol[1:] ^= bits[:-1]
    return struct.pack("<BI", 1, n) + zstandard.ZstdCompressor(level=3).compress(tcol.tobytes() + vcol.tobytes())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(samples(max_n=150))
def test_format_1_still_decodes(data):
    ts, vals = data
    assert_same(chunk.decode(encode_format_1(ts, vals)), ts, vals)


def test_format_1_staleness_marker():
    ts = np.array([1, 2, 3], dtype=np.int64)
    vals = np.array([1.5, 2.5, STALE_NAN])
    got_ts, got_vals = chunk.decode(encode_format_1(ts, vals))
    assert np.array_equal(got_ts, ts)
    assert int(got_vals.view(np.uint64)[-1]) == STALE_NAN_BITS


# --- size ------------------------------------------------------------------------------------------


def node_exporter_like(n: int = 480, interval_ms: int = 15_000, jitter_ms: int = 3) -> dict[str, tuple]:
    """2 h of typical series at 15 s: an integer counter, a 2-decimal gauge, a noisy float gauge, and
    the first with a staleness marker at the end."""
    rng = np.random.default_rng(42)
    ts = 1_790_000_000_000 + np.arange(n, dtype=np.int64) * interval_ms + rng.integers(0, jitter_ms + 1, n)
    counter = (123_456_789 + np.cumsum(rng.integers(0, 50_000, n))).astype(np.float64)
    gauge2 = np.clip(150 + np.cumsum(rng.integers(-5, 6, n)), 0, None) / 100
    noisy = 0.5 + rng.normal(0, 0.05, n)
    stale = counter.copy()
    stale[-1] = STALE_NAN
    return {"counter": (ts, counter), "gauge2": (ts, gauge2), "noisy": (ts, noisy), "stale": (ts, stale)}


def test_typical_series_take_fewer_bytes_than_format_1():
    series = node_exporter_like()
    new = {k: len(chunk.encode(ts, v)) for k, (ts, v) in series.items()}
    old = {k: len(encode_format_1(ts, v)) for k, (ts, v) in series.items()}
    for k in series:
        assert new[k] < old[k], (k, new[k], old[k])
    n = 480
    assert new["counter"] < 2.75 * n  # ~16 bits of increment and ~2 of jitter per sample (format 1: ~4.8 B)
    assert new["gauge2"] < 1.0 * n  # decimal-scaled: a small random walk
    assert new["stale"] < new["counter"] + 20  # one staleness marker is an exception, not a fallback
    assert sum(new.values()) < 0.6 * sum(old.values())


def test_regular_counters_and_constants_are_nearly_free():
    ts = 1_700_000_000_000 + np.arange(720, dtype=np.int64) * 10_000
    assert len(chunk.encode(ts, np.full(720, 1.0))) < 32
    assert len(chunk.encode(ts, 1e6 + np.arange(720) * 3.0)) < 32
    assert len(chunk.encode(ts, np.round(np.arange(720) * 0.25 + 7, 2))) < 32
