"""Remote-write bodies: decoding, the size checks made before anything is decoded, the label limits,
and fuzzing (random bytes, valid snappy of random bytes and of random or broken protobuf, lying snappy
headers): the only error is RemoteWriteError (BodyTooLargeError for a body over a limit), every body is
handled within the time budget, and error messages stay short whatever the body holds."""

from __future__ import annotations

import math
import struct
import time

import cramjam
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shardmon.ingest import remote_write
from shardmon.ingest.remote_write import decode, decoded_length, encode, max_compressed_bytes
from shardmon.model.errors import BodyTooLargeError, RemoteWriteError
from shardmon.model.label_limits import LabelLimits
from shardmon.model.labels import Labels
from shardmon.model.pb import remote_pb2
from tests.unit.fuzzing import fuzz

MIB = 1 << 20
LIMITS = LabelLimits(30, 1024, 2048)  # The receiver's defaults.


def uvarint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def lying(body: bytes, declared: int) -> bytes:
    """``body`` with its snappy header replaced by one declaring ``declared`` decoded bytes."""
    header = len(uvarint(decoded_length(body)))
    return uvarint(declared) + body[header:]


def series(name: str, n: int = 1, **labels: str) -> tuple[Labels, list[tuple[int, float]]]:
    return Labels.from_dict({"__name__": name, **labels}), [(1_700_000_000_000 + i, float(i)) for i in range(n)]


# -- decoding and limits ---------------------------------------------------------------------------


def test_a_body_decodes_into_one_batch_of_its_valid_series():
    d = decode(encode([series("a", 3, k="v"), series("b", 2)]))
    assert d.series == 2 and d.batch.num_samples == 5 and d.invalid_series == 0 and d.refused == {}


def test_the_header_is_checked_before_anything_is_decoded():
    small = encode([series("a")])
    t0 = time.monotonic()
    with pytest.raises(BodyTooLargeError) as err:
        decode(lying(small, 512 * MIB), max_decoded_bytes=32 * MIB)
    assert time.monotonic() - t0 < 1  # Nothing was allocated nor decoded.
    assert err.value.reason == "decoded_body_too_large" and err.value.size == 512 * MIB
    assert err.value.limit == 32 * MIB and err.value.field == "receiver.max_decoded_body_bytes"
    assert "536870912 bytes" in str(err.value) and "receiver.max_decoded_body_bytes" in str(err.value)


def test_a_real_512_mib_body_is_refused_by_its_header():
    # 512 MiB of zeros is about 24 MiB of snappy; refused from its first bytes.
    body = cramjam.snappy.compress_raw(bytes(64 * MIB))
    assert decoded_length(bytes(body)) == 64 * MIB
    with pytest.raises(BodyTooLargeError):
        decode(bytes(body), max_decoded_bytes=32 * MIB)


def test_a_compressed_body_larger_than_snappy_needs_for_the_limit_is_refused():
    limit = max_compressed_bytes(1000)
    assert limit == 32 + 1000 + 1000 // 6
    with pytest.raises(BodyTooLargeError) as err:
        decode(b"\x00" * (limit + 1), max_decoded_bytes=1000)
    assert err.value.reason == "body_too_large"
    assert max_compressed_bytes(10 << 30) == remote_write.MAX_BODY_BYTES


def test_a_header_that_understates_the_size_is_an_error_not_an_overrun():
    body = encode([series("a", 100, k="v" * 100)])
    for declared in (0, 1, decoded_length(body) - 1, decoded_length(body) + 1):
        with pytest.raises(RemoteWriteError, match="snappy"):
            decode(lying(body, declared))


@pytest.mark.parametrize("labels, reason", [
    ({f"l{i}": "v" for i in range(30)}, "label_limit"),  # 31 with __name__
    ({"n" * 1025: "v"}, "label_name_length_limit"),
    ({"k": "é" * 1025}, "label_value_length_limit"),  # 2050 bytes
])
def test_a_series_over_a_label_limit_is_left_out_and_the_rest_is_decoded(labels, reason):
    d = decode(encode([series("over", 3, **labels), series("fine", 2, k="v" * 2048)]), limits=LIMITS)
    assert d.series == 1 and d.batch.num_samples == 2
    assert d.refused == {reason: 1} and d.refused_samples == 3 and d.invalid_series == 1
    assert d.invalid[0].startswith(f"{reason} exceeded (metric: over")


def test_limits_of_zero_are_no_limits():
    big = {f"l{i}": "v" * 5000 for i in range(40)}
    assert decode(encode([series("a", 1, **big)]), limits=LabelLimits()).series == 1


def test_messages_about_refused_series_are_bounded():
    huge = "x" * MIB
    body = encode([series("a", 1, **{"0bad": huge}), series("b", 1, k=huge)] * 10)
    d = decode(body, limits=LIMITS)
    assert d.invalid_series == 20 and len(d.invalid) == 5  # Up to five are described ...
    assert all(len(text) < 400 for text in d.invalid)  # ... each in a few hundred characters.


def test_labels_with_invalid_utf8_make_the_body_unreadable():
    label = b"\x0a\x01a\x12\x02\xff\xfe"
    ts = b"\x0a" + bytes([len(label)]) + label
    with pytest.raises(RemoteWriteError, match="protobuf"):
        decode(bytes(cramjam.snappy.compress_raw(b"\x0a" + bytes([len(ts)]) + ts)))


# -- fuzzing ---------------------------------------------------------------------------------------


def decode_or_error(body: bytes, max_decoded_bytes: int = 1 * MIB):
    try:
        d = decode(body, max_decoded_bytes, LIMITS)
    except RemoteWriteError as exc:
        assert len(str(exc)) < 500
        if isinstance(exc, BodyTooLargeError):
            assert exc.size > exc.limit
        return exc
    batch = d.batch
    assert len(batch.sample_series) == len(batch.values) == len(batch.timestamps_ms) == batch.num_samples
    assert batch.num_samples == 0 or int(batch.sample_series.max()) < d.series
    assert len(d.invalid) <= 5 and all(len(text) < 500 for text in d.invalid)
    assert sum(d.refused.values()) == d.invalid_series
    return d


@fuzz()
@given(st.binary(max_size=4096))
def test_random_bytes_raise_only_remote_write_errors(body):
    decode_or_error(body)


@fuzz()
@given(st.binary(max_size=4096))
def test_valid_snappy_of_random_bytes_raises_only_remote_write_errors(raw):
    decode_or_error(bytes(cramjam.snappy.compress_raw(raw)))


label_text = st.one_of(st.sampled_from(["__name__", "job", "le", "0bad", "a-b", "", "é"]), st.text(max_size=40))


@st.composite
def write_requests(draw) -> bytes:
    req = remote_pb2.WriteRequest()
    for _ in range(draw(st.integers(0, 8))):
        ts = req.timeseries.add()
        for _ in range(draw(st.integers(0, 6))):
            ts.labels.add(name=draw(label_text), value=draw(st.text(max_size=draw(st.sampled_from([10, 3000])))))
        for _ in range(draw(st.integers(0, 5))):
            ts.samples.add(value=draw(st.floats()), timestamp=draw(st.integers(-(2**63), 2**63 - 1)))
    return req.SerializeToString()


@fuzz()
@given(write_requests())
def test_random_write_requests_decode_or_raise_remote_write_errors(raw):
    d = decode_or_error(bytes(cramjam.snappy.compress_raw(raw)))
    assert not isinstance(d, RemoteWriteError)  # Well-formed protobuf always decodes; bad series are left out.
    req = remote_pb2.WriteRequest.FromString(raw)
    assert d.series + d.invalid_series == len(req.timeseries) - sum(
        1 for ts in req.timeseries if not ts.samples and remote_write._check([(x.name, x.value) for x in ts.labels])
        is None and LIMITS.check([(x.name, x.value) for x in ts.labels]) is None)
    values = [s.value for ts in req.timeseries for s in ts.samples]
    assert d.batch.num_samples + d.refused_samples == len(values)


@st.composite
def broken_write_requests(draw) -> bytes:
    """A valid request's bytes, truncated or with bytes changed: protobuf the decoder must refuse
    cleanly or read as some other request."""
    raw = bytearray(draw(write_requests()))
    for _ in range(draw(st.integers(1, 4))):
        if not raw:
            break
        pos = draw(st.integers(0, len(raw) - 1))
        if draw(st.booleans()):
            raw[pos] = draw(st.integers(0, 255))
        else:
            del raw[pos:]
    return bytes(raw)


@fuzz()
@given(broken_write_requests())
def test_broken_protobuf_raises_only_remote_write_errors(raw):
    decode_or_error(bytes(cramjam.snappy.compress_raw(raw)))


@fuzz()
@given(write_requests(), st.one_of(st.integers(0, 2**32 - 1), st.sampled_from([0, 1, 2**31, 2**32 - 1])))
def test_lying_headers_are_refused_without_decoding_past_them(raw, declared):
    body = bytes(cramjam.snappy.compress_raw(raw))
    outcome = decode_or_error(lying(body, declared))
    if declared > 1 * MIB:
        assert isinstance(outcome, BodyTooLargeError)
    elif declared != len(raw):
        assert isinstance(outcome, RemoteWriteError)


@fuzz()
@given(st.binary(min_size=1, max_size=12))
def test_garbage_headers_are_remote_write_errors(header):
    decode_or_error(header + bytes(cramjam.snappy.compress_raw(b"x" * 100))[2:])


def test_sample_values_and_timestamps_survive_bit_for_bit():
    values = [0.0, -0.0, math.nan, math.inf, -math.inf, 5e-324, 1.7976931348623157e308]
    body = encode([(Labels.from_dict({"__name__": "v"}), [(i - 3, v) for i, v in enumerate(values)])])
    d = decode(body)
    assert [struct.pack("<d", v) for v in d.batch.values.tolist()] == [struct.pack("<d", v) for v in values]
    assert d.batch.timestamps_ms.tolist() == [i - 3 for i in range(len(values))]
