"""Prometheus remote-write 1.0 bodies: snappy-compressed protobuf ``WriteRequest`` into sample columns.

Validation follows Prometheus's own receiver: a series whose labels are not valid (no or a bad metric
name, a bad or repeated label name, invalid UTF-8) is left out and reported, and the valid series of
the same request are still ingested; the request then answers 400, which senders do not retry.
"""

from __future__ import annotations

from typing import NamedTuple

import cramjam
import numpy as np
from google.protobuf.message import DecodeError

from model.errors import BadRequestError
from model.labels import METRIC_NAME, Labels, is_valid_label_name, is_valid_metric_name, series_id_of
from model.pb import remote_pb2
from model.samples import F64, I64, U32, U64, SampleBatch, SeriesTable

MAX_BODY_BYTES = 64 << 20
_MAX_REPORTED = 5


class RemoteWriteError(BadRequestError):
    """The body as a whole cannot be read (bad snappy, bad protobuf, too large): HTTP 400."""


class DecodedWrite(NamedTuple):
    batch: SampleBatch
    series: int  # valid series
    invalid: list[str]  # what was wrong with (up to a few of) the series left out
    invalid_series: int


def _check(pairs: list[tuple[str, str]]) -> str | None:
    """Why a series' labels are invalid, or None."""
    names = [n for n, _ in pairs]
    if len(set(names)) != len(names):
        return "duplicate label names"
    name = ""
    for n, v in pairs:
        if n == METRIC_NAME:
            name = v
        elif not is_valid_label_name(n):
            return f"invalid label name {n!r}"
    if not is_valid_metric_name(name):
        return f"invalid metric name {name!r}"
    return None


def decode(body: bytes) -> DecodedWrite:
    """Decode a remote-write body into one batch (raises :class:`RemoteWriteError`)."""
    if len(body) > MAX_BODY_BYTES:
        raise RemoteWriteError(f"body of {len(body)} bytes exceeds {MAX_BODY_BYTES}")
    try:
        raw = bytes(cramjam.snappy.decompress_raw(body))
    except Exception as exc:  # noqa: BLE001 - cramjam raises its own DecompressionError
        raise RemoteWriteError(f"snappy decode error: {exc}") from None
    req = remote_pb2.WriteRequest()
    try:
        req.ParseFromString(raw)
    except DecodeError as exc:
        raise RemoteWriteError(f"protobuf decode error: {exc}") from None
    keys: list[bytes] = []
    counts: list[int] = []
    values: list[float] = []
    stamps: list[int] = []
    invalid: list[str] = []
    n_invalid = 0
    for ts in req.timeseries:
        pairs = [(lb.name, lb.value) for lb in ts.labels]
        why = _check(pairs)
        if why is not None:
            n_invalid += 1
            if len(invalid) < _MAX_REPORTED:
                invalid.append(f"{why} in {Labels.from_pairs(pairs)}")
            continue
        samples = ts.samples
        if not samples:
            continue
        keys.append(Labels.from_pairs(pairs).canonical())
        counts.append(len(samples))
        values.extend(s.value for s in samples)
        stamps.extend(s.timestamp for s in samples)
    ids = np.fromiter((series_id_of(k) for k in keys), U64, len(keys))
    table = SeriesTable.from_keys(ids, keys)
    refs = np.repeat(np.arange(len(keys), dtype=U32), np.asarray(counts, dtype=np.int64))
    batch = SampleBatch(table, refs, np.asarray(stamps, dtype=I64), np.asarray(values, dtype=F64))
    return DecodedWrite(batch, len(keys), invalid, n_invalid)


def encode(series: list[tuple[Labels, list[tuple[int, float]]]]) -> bytes:
    """A remote-write body (for tests and tools): series with their (timestamp ms, value) samples."""
    req = remote_pb2.WriteRequest()
    for labels, samples in series:
        ts = req.timeseries.add()
        for n, v in labels:
            ts.labels.add(name=n, value=v)
        for t, v in samples:
            ts.samples.add(timestamp=t, value=v)
    return bytes(cramjam.snappy.compress_raw(req.SerializeToString()))
