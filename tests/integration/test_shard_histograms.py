"""Native histograms over 3 real shards (real Redis, real gRPC), with RF 1 and 2: what is written is what the
querier's fan-out reads back (`Series` frames' hist_* fields merged into SeriesColumns.histograms), also after a
SIGKILL of a shard (WAL replay) and after its blocks are flushed; the aggregation push-down hands a selection
with histograms to the exact path."""

from __future__ import annotations

import time

import numpy as np
import pytest

from shardmon.model.hashing import shards_for_series
from shardmon.model.histogram import HistogramColumns
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.samples import SampleBatch
from shardmon.model.storage import QueryBudget
from shardmon.querier import metrics
from shardmon.querier.fanout import FanoutQuerier
from shardmon.querier.promql.engine import Engine
from shardmon.shards.client import ShardClient
from tests.integration.procs import Cluster
from tests.unit.shards.histkit import scrape_series

N_SERIES = 12
N_SAMPLES = 40
STEP = 15_000
NAME = [Matcher(MatchType.EQ, "__name__", "latency_seconds")]


def _data(t0: int):
    """Per series: its labels, histogram timestamps and histograms, and a few floats (a series mixing both)."""
    out = []
    for i in range(N_SERIES):
        labels = Labels.from_dict({"__name__": "latency_seconds", "job": "api", "i": str(i)})
        hists = scrape_series(N_SAMPLES, seed=i)
        ts = [t0 + k * STEP for k in range(N_SAMPLES)]
        # Floats just before each batch's histograms (a batch's floats are appended before its histograms).
        floats = [(t0 + k * STEP - 7, float(k)) for k in range(0, N_SAMPLES, 10)] if i % 3 == 0 else []
        out.append((labels, ts, hists, floats))
    return out


def _write(cluster: Cluster, rf: int, data, clients: dict[int, ShardClient]) -> None:
    shard_ids = sorted(clients)
    ids = np.array([labels.series_id() for labels, *_ in data], np.uint64)
    owners = shards_for_series(ids, shard_ids, rf)
    for k in range(0, N_SAMPLES, 10):  # a batch per 10 scrapes, as a scraper sends
        for pos, sid in enumerate(shard_ids):
            rows = [j for j in range(len(data)) if pos in owners[j].tolist()]
            if not rows:
                continue
            keys = [data[j][0].canonical() for j in rows]
            h_refs, h_ts, h_list, f_refs, f_ts, f_vals = [], [], [], [], [], []
            for r, j in enumerate(rows):
                _, ts, hists, floats = data[j]
                for t, h in zip(ts[k:k + 10], hists[k:k + 10]):
                    h_refs.append(r), h_ts.append(t), h_list.append(h)
                for t, v in floats:
                    if ts[k] - STEP < t < ts[k]:
                        f_refs.append(r), f_ts.append(t), f_vals.append(v)
            batch = SampleBatch.of(ids[rows], keys, np.array(f_refs, np.uint32), np.array(f_ts, np.int64),
                                   np.array(f_vals, np.float64))
            batch = batch._replace(histograms=HistogramColumns.of(h_refs, h_ts, h_list))
            clients[sid].write(f"hist-{rf}-{sid}-{k}", batch)


def _expected(data) -> dict:
    out = {}
    for labels, ts, hists, floats in data:
        samples = {t: ("h", h) for t, h in zip(ts, hists)}
        samples.update({t: ("f", v) for t, v in floats})
        out[labels] = [(t, samples[t]) for t in sorted(samples)]
    return out


def _read(querier: FanoutQuerier, start: int, end: int) -> dict:
    cols = querier.select_columns(NAME, start, end, budget=QueryBudget()).columns
    assert cols.histograms is not None
    out = {}
    for i, labels in enumerate(cols.labels):
        a, b = int(cols.offsets[i]), int(cols.offsets[i + 1])
        samples = []
        for j in range(a, b):
            h = cols.histograms[j]
            samples.append((int(cols.timestamps_ms[j]), ("f", float(cols.values[j])) if h is None else ("h", h)))
        out[labels] = samples
    return out


def _same(got: dict, want: dict) -> bool:
    if got.keys() != want.keys():
        return False
    for k in want:
        if len(got[k]) != len(want[k]):
            return False
        for (t1, (k1, v1)), (t2, (k2, v2)) in zip(got[k], want[k]):
            if t1 != t2 or k1 != k2 or (not v1.identical(v2) if k1 == "h" else v1 != v2):
                return False
    return True


@pytest.mark.parametrize("rf", [1, 2])
def test_histograms_written_to_three_shards_read_back_equal(tmp_path, rf):
    cluster = Cluster(tmp_path, n_shards=3, scrape_configs=[],
                      shards_extra={"replication_factor": rf}, web={"enable_admin_api": True}).start()
    clients = {i: ShardClient(i, f"127.0.0.1:{p}") for i, p in enumerate(cluster.shard_ports)}
    try:
        t0 = (int(time.time() * 1000) // 3_600_000 - 1) * 3_600_000
        data = _data(t0)
        _write(cluster, rf, data, clients)
        querier = FanoutQuerier(list(clients.values()), replication_factor=rf)
        want = _expected(data)
        start, end = t0 - STEP, t0 + N_SAMPLES * STEP
        assert _same(_read(querier, start, end), want)
        # A SIGKILL of a shard: its WAL replays the histograms.
        cluster.shards[1].kill()
        cluster.restart_shard(1)
        clients[1].close()
        clients[1] = ShardClient(1, f"127.0.0.1:{cluster.shard_ports[1]}")
        querier = FanoutQuerier(list(clients.values()), replication_factor=rf)
        assert _same(_read(querier, start, end), want)
        # Into blocks (format 3 chunks), then read from them.
        for c in clients.values():
            c.flush()
        assert _same(_read(querier, start, end), want)
        assert "latency_seconds" in querier.label_values("__name__", [], start, end).values
        # The push-down: the shards aggregate floats only, so a selection with histograms takes the exact path.
        before = metrics.PUSHDOWN.labels("histograms")._value.get()
        Engine(querier).instant('count(latency_seconds{job="api"})', end)
        assert metrics.PUSHDOWN.labels("histograms")._value.get() > before
    finally:
        for c in clients.values():
            c.close()
        cluster.stop()
