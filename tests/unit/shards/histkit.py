"""Native histograms for the shard tests: hypothesis strategies of every field, a realistic schema-3 series, and
batches of them."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from shardmon.model.histogram import (
    COUNTER_RESET,
    GAUGE_TYPE,
    NOT_COUNTER_RESET,
    UNKNOWN_COUNTER_RESET,
    Histogram,
    HistogramColumns,
)
from shardmon.model.samples import SampleBatch
from tests.unit.shards.enginekit import series

_floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True, width=64),
                    st.just(-0.0), st.just(math.nan), st.integers(0, 2**40).map(float))


@st.composite
def spans(draw) -> tuple[tuple[int, int], ...]:
    n = draw(st.integers(0, 4))
    out = []
    for i in range(n):
        offset = draw(st.integers(-20, 20) if i == 0 else st.integers(0, 5))
        out.append((offset, draw(st.integers(0, 6))))
    return tuple(out)


@st.composite
def histograms(draw, is_int: bool | None = None) -> Histogram:
    """Any histogram: every field, NaN sums, empty and zero-length spans, negative buckets, int and float."""
    if is_int is None:
        is_int = draw(st.booleans())
    pos, neg = draw(spans()), draw(spans())
    count = st.integers(0, 2**40).map(float) if is_int else _floats
    return Histogram(
        schema=draw(st.integers(-4, 8)),
        zero_threshold=draw(st.sampled_from([0.0, 2.938735877055719e-39, 1e-3]) | _floats),
        zero_count=draw(count), count=draw(count), sum=draw(_floats),
        positive_spans=pos, positive_buckets=tuple(draw(count) for _ in range(sum(n for _, n in pos))),
        negative_spans=neg, negative_buckets=tuple(draw(count) for _ in range(sum(n for _, n in neg))),
        counter_reset_hint=draw(st.sampled_from([UNKNOWN_COUNTER_RESET, COUNTER_RESET, NOT_COUNTER_RESET,
                                                 GAUGE_TYPE])),
        is_int=is_int,
    )


def scrape_series(n: int, seed: int = 1, buckets: int = 40) -> list[Histogram]:
    """A schema-3 integer histogram as a client library exposes it, scraped ``n`` times: a request-latency
    distribution advancing each scrape (buckets appear as observations reach them), float sum."""
    rng = np.random.default_rng(seed)
    counts = np.zeros(buckets)
    total, s, out = 0.0, 0.0, []
    centre = np.exp(-((np.arange(buckets) - buckets / 2) / (buckets / 7)) ** 2) * 20
    for _ in range(n):
        inc = rng.poisson(centre)
        counts += inc
        total += float(inc.sum())
        s += float((inc * 2.0 ** (np.arange(buckets) / 8)).sum() * 1e-3)
        nz = np.flatnonzero(counts)
        first, last = (int(nz[0]), int(nz[-1]) + 1) if nz.shape[0] else (0, 0)
        out.append(Histogram(3, 2.938735877055719e-39, float(rng.poisson(1)) + (out[-1].zero_count if out else 0),
                             total, s, ((first - 40, last - first),) if last > first else (),
                             tuple(counts[first:last].tolist()), (), (), UNKNOWN_COUNTER_RESET, True))
    return out


def hist_batch(ts: list[int], hists: list[Histogram], n_series: int = 1, metric: str = "h", first: int = 0,
               float_ts: list[int] = (), float_vals: list[float] = ()) -> SampleBatch:
    """Series ``first ..`` of ``metric``, each with ``hists[k]`` at ``ts[k]`` (and floats at ``float_ts``)."""
    labels, keys, ids = series(first + n_series, metric)
    keys, ids = keys[first:], ids[first:]
    refs = np.repeat(np.arange(n_series, dtype=np.uint32), len(ts))
    cols = HistogramColumns.of(refs, np.tile(np.asarray(ts, np.int64), n_series), list(hists) * n_series)
    f_refs = np.repeat(np.arange(n_series, dtype=np.uint32), len(float_ts))
    batch = SampleBatch.of(ids, keys, f_refs, np.tile(np.asarray(float_ts, np.int64), n_series),
                           np.tile(np.asarray(float_vals, np.float64), n_series))
    return batch._replace(histograms=cols if len(cols) else None)
