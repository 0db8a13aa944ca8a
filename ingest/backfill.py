"""Reading an OpenMetrics text file with timestamps for backfill (``shardmon import openmetrics``).

As ``promtool tsdb create-blocks-from openmetrics``, whose parser is Prometheus's OpenMetrics parser:
every line is checked as a scrape of ``application/openmetrics-text`` would be (:mod:`shardmon.ingest.exposition`:
single spaces, no blank lines, only ``# HELP``/``# TYPE``/``# UNIT`` comments, the file ending with
``# EOF``), every sample needs a timestamp (seconds, possibly fractional, truncated to milliseconds as
Prometheus's ``int64(ts * 1000)``), and exemplars are checked and dropped. Series labels are parsed once
per distinct series text (later lines of a known series only have their value and timestamp read); a
malformed line raises :class:`ExpositionError` with its line number. The file is read as a stream and
yielded as batches of sample columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

import numpy as np

from shardmon.ingest.exposition import (
    NO_TIMESTAMP,
    LineError,
    parse_openmetrics_line,
    parse_openmetrics_timestamp,
    parse_value,
)
from shardmon.model.errors import ExpositionError
from shardmon.model.labels import Labels, series_id_of
from shardmon.model.samples import F64, I64, U32, U64, SampleBatch


class Progress(NamedTuple):
    bytes_read: int
    samples: int


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
        line = raw[:-1] if raw.endswith(b"\n") else raw
        if eof:
            raise ExpositionError("unexpected data after # EOF", lineno)
        if line.startswith(b"# EOF"):
            if line != b"# EOF":
                raise ExpositionError("unexpected data after # EOF", lineno)
            eof = True
            continue
        try:
            parts = line.rsplit(b" ", 2) if b" # " not in line else ()
            key = labels_of.get(parts[0]) if len(parts) == 3 else None
            if key is not None:  # A known series: only its value and timestamp are new.
                try:
                    value, stamp = parse_value(parts[1]), parse_openmetrics_timestamp(parts[2])
                except LineError:
                    key = None  # The full parse below says what is wrong.
            if key is None:
                item = parse_openmetrics_line(line)
                if item[0] != "SAMPLE":
                    continue
                _, series, labels, value, stamp = item
                if stamp == NO_TIMESTAMP:
                    raise LineError("expected a value and a timestamp after the series (backfill needs timestamps)")
                key = labels_of.get(series)
                if key is None:
                    key = labels_of[series] = Labels(labels()).canonical()
        except LineError as exc:
            raise ExpositionError(str(exc), lineno) from None
        ref = keys.get(key)
        if ref is None:
            ref = keys[key] = len(keys)
        refs.append(ref)
        values.append(value)
        stamps.append(stamp)
        total += 1
        if len(refs) >= batch_samples:
            yield flush(), Progress(read, total)
    if not eof:
        raise ExpositionError("data does not end with # EOF", lineno + 1 if read else 1)
    if refs:
        yield flush(), Progress(read, total)
