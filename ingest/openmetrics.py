"""Reading an OpenMetrics text file with timestamps for backfill (``shardmon import openmetrics``).

As ``promtool tsdb create-blocks-from openmetrics``: every sample needs a timestamp (OpenMetrics
writes seconds, possibly fractional; they become milliseconds), the file ends with ``# EOF``,
``# TYPE``/``# HELP``/``# UNIT`` lines are read past and exemplars are dropped. Series labels are
parsed once per distinct series text; a malformed line raises :class:`ExpositionError` with its
line number. The file is read as a stream and yielded as batches of sample columns.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

import numpy as np

from ingest.exposition import _LineError, _parse_line
from model.errors import ExpositionError
from model.labels import Labels, series_id_of
from model.samples import F64, I64, U32, U64, SampleBatch


class Progress(NamedTuple):
    bytes_read: int
    samples: int


def _parse_float(token: bytes, what: str) -> float:
    try:
        v = float(token)
    except ValueError:
        raise _LineError(f"invalid {what} {token.decode(errors='replace')!r}") from None
    return v


def read_batches(stream: BinaryIO, batch_samples: int = 200_000) -> Iterator[tuple[SampleBatch, Progress]]:
    """Batches of at most ``batch_samples`` samples, in file order, each with how far the file was read."""
    labels_of: dict[bytes, bytes] = {}  # series text -> canonical key
    keys: dict[bytes, int] = {}  # canonical key -> index in the current batch's series table
    refs: list[int] = []
    stamps: list[int] = []
    values: list[float] = []
    read = 0
    total = 0
    eof = False

    def flush() -> SampleBatch:
        table_keys = list(keys)
        ids = np.fromiter((series_id_of(k) for k in table_keys), U64, len(table_keys))
        batch = SampleBatch.of(ids, table_keys, np.asarray(refs, dtype=U32), np.asarray(stamps, dtype=I64),
                               np.asarray(values, dtype=F64))
        keys.clear()
        refs.clear()
        stamps.clear()
        values.clear()
        return batch

    for lineno, raw in enumerate(stream, 1):
        read += len(raw)
        line = raw.rstrip(b"\n")
        if eof:
            if line.strip():
                raise ExpositionError("unexpected content after # EOF", lineno)
            continue
        try:
            if line.startswith(b"#"):
                if line.strip() == b"# EOF":
                    eof = True
                continue
            if not line.strip():
                continue
            cut = line.find(b" # ")  # An exemplar follows: dropped, as promtool does.
            if cut >= 0:
                line = line[:cut]
            close = line.rfind(b"}")
            if close >= 0:
                series, rest = line[: close + 1], line[close + 1 :].split()
            else:
                series, *rest = line.split()
            if len(rest) != 2:
                raise _LineError("expected a value and a timestamp after the series (backfill needs timestamps)")
            key = labels_of.get(series)
            if key is None:
                parsed = _parse_line(series + b" 0")
                if parsed is None or parsed[0] != "SAMPLE":
                    raise _LineError(f"invalid series {series.decode(errors='replace')!r}")
                key = labels_of[series] = Labels.from_pairs(parsed[2]()).canonical()
            value = _parse_float(rest[0], "value")
            seconds = _parse_float(rest[1], "timestamp")
            if not math.isfinite(seconds):
                raise _LineError(f"invalid timestamp {rest[1].decode(errors='replace')!r}")
        except _LineError as exc:
            raise ExpositionError(str(exc), lineno) from None
        ref = keys.get(key)
        if ref is None:
            ref = keys[key] = len(keys)
        refs.append(ref)
        values.append(value)
        stamps.append(round(seconds * 1000))
        total += 1
        if len(refs) >= batch_samples:
            yield flush(), Progress(read, total)
    if not eof:
        raise ExpositionError("the file does not end with # EOF", lineno if total else 1)
    if refs:
        yield flush(), Progress(read, total)
