"""``/api/v1/status/tsdb`` over several shards equals a live Prometheus 2.42's on the same data.

A Debian Prometheus scrapes the target farm and remote-writes every sample it scrapes to two Shardmon
clusters (as test_promql_vs_prometheus.py does, so the three hold the same series): three shards, and three
shards with replication factor 2. Both clusters' documents must equal Prometheus's list for list. Prometheus
2.42 breaks ties at random (Go map order): where a run of equal values is cut by the top 10, Prometheus
may show any of the tied names, so those are checked to be among Shardmon's tied names; every other entry
must be equal in place. Then Shardmon's additions: ``limit``, ``match[]``, the per-shard breakdown, and a
shard that is down (partial with a warning; with replication, complete and equal).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from bench.systems import scrape_configs
from tests.integration.httpapi import call_api, get_json
from tests.integration.procs import Child, Cluster, free_port, prometheus_proc, wait_until

ROOT = Path(__file__).resolve().parents[2]
INTERVAL_S = 2
N_TARGETS = 5
N_SERIES = 150
LISTS = ["seriesCountByMetricName", "labelValueCountByLabelName", "memoryInBytesByLabelName",
         "seriesCountByLabelValuePair"]


def _count(base: str) -> int:
    res = get_json(f"{base}/api/v1/query", {"query": 'count({__name__=~".+"})'})["data"]["result"]
    return int(res[0]["value"][1]) if res else 0


@pytest.fixture(scope="module")
def systems(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tsdb-vs-prometheus")
    farm_port = free_port()
    farm = Child("farm", [sys.executable, "-m", "bench.farm", "--port", str(farm_port), "--targets", str(N_TARGETS),
                          "--series", str(N_SERIES)], tmp / "farm.log", ("127.0.0.1", farm_port), cwd=ROOT).up()
    plain = Cluster(tmp / "rf1", n_shards=3, scrape_configs=[], receiver={}).start()
    replicated = Cluster(tmp / "rf2", n_shards=3, scrape_configs=[], receiver={},
                         shards_extra={"replication_factor": 2}).start()
    prom_port = free_port()
    queue = {"batch_send_deadline": "500ms", "min_backoff": "100ms"}
    cfg = {
        "global": {"scrape_interval": f"{INTERVAL_S}s", "scrape_timeout": f"{INTERVAL_S}s"},
        "scrape_configs": scrape_configs(farm_port, N_TARGETS),
        "remote_write": [{"url": f"http://127.0.0.1:{c.receiver_port}/api/v1/write", "queue_config": queue}
                         for c in (plain, replicated)],
    }
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    prom = prometheus_proc("prometheus", tmp / "prometheus.yml", tmp / "data", prom_port, tmp, "--log.level=warn").start()
    prometheus = f"http://127.0.0.1:{prom_port}"
    urls = [f"http://127.0.0.1:{c.http_port}" for c in (plain, replicated)]
    try:
        wait_until(lambda: prom.is_ready(), 60, "prometheus up")
        # Every target scraped, and every series remote-written to both clusters (the series set is fixed).
        wait_until(lambda: _count(prometheus) >= N_TARGETS * N_SERIES, 90, "prometheus scraped every target")
        time.sleep(2 * INTERVAL_S)
        want = _count(prometheus)
        wait_until(lambda: all(_count(u) == want for u in urls), 90, "the clusters hold Prometheus's series")
        yield {"prometheus": prometheus, "shardmon": urls[0], "replicated": urls[1], "clusters": (plain, replicated)}
    finally:
        prom.stop(30)
        replicated.stop()
        plain.stop()
        farm.stop(10)


def _status(base: str, **params) -> dict:
    status, body, _ = call_api(base, "/api/v1/status/tsdb", **params)
    assert status == 200 and body["status"] == "success", body
    return body


def _same_list(ours: list[dict], theirs: list[dict], full: list[dict], what: str) -> None:
    """Equal list for list, but for which of several tied names Prometheus kept at the cut (see the module)."""
    assert [e["value"] for e in ours] == [e["value"] for e in theirs], what
    tied = Counter(e["value"] for e in full)  # how many entries in all have each value
    shown = Counter(e["value"] for e in ours)
    for value, n in shown.items():
        our_names = {e["name"] for e in ours if e["value"] == value}
        their_names = {e["name"] for e in theirs if e["value"] == value}
        if tied[value] == n:  # the whole run of this value is in the list: the same names
            assert our_names == their_names, (what, value)
        else:  # cut by the limit: both chose among the same tied names
            every = {e["name"] for e in full if e["value"] == value}
            assert our_names <= every and their_names <= every, (what, value)
    # Shardmon's own order: value descending, ties by name.
    assert ours == sorted(ours, key=lambda e: (-e["value"], e["name"])), what


def test_equal_to_prometheus_list_for_list(systems):
    theirs = _status(systems["prometheus"])["data"]
    cut_ties = 0
    for base in (systems["shardmon"], systems["replicated"]):
        body = _status(base)
        assert "warnings" not in body and "isPartial" not in body
        ours, full = body["data"], _status(base, limit="100000")["data"]
        for key in ("numSeries", "numLabelPairs"):
            assert ours["headStats"][key] == theirs["headStats"][key], key
        assert set(ours["headStats"]) == set(theirs["headStats"])
        assert isinstance(ours["headStats"]["chunkCount"], int)  # Shardmon's own count
        assert ours["headStats"]["minTime"] <= ours["headStats"]["maxTime"]
        for key in LISTS:
            assert len(ours[key]) == len(theirs[key]) == 10, key
            _same_list(ours[key], theirs[key], full[key], key)
            cut_ties += Counter(e["value"] for e in full[key])[ours[key][-1]["value"]] > \
                Counter(e["value"] for e in ours[key])[ours[key][-1]["value"]]
    assert cut_ties >= 2, "the data should make ties at the top-10 cut"


def test_limit_as_later_prometheus(systems):
    base = systems["shardmon"]
    three = _status(base, limit="3")["data"]
    ten = _status(base)["data"]
    for key in LISTS:
        assert three[key] == ten[key][:3]
    for bad in ("0", "-2", "ten"):
        status, body, _ = call_api(base, "/api/v1/status/tsdb", limit=bad)
        assert (status, body["errorType"], body["error"]) == (400, "bad_data", "limit must be a positive number")


def test_match_restricts_the_statistics_to_the_selected_series(systems):
    base = systems["shardmon"]
    sel = 'http_requests_total{code="200"}'
    data = _status(base, **{"match[]": sel, "limit": "1000"})["data"]
    series = get_json(f"{base}/api/v1/series", {"match[]": sel})["data"]
    assert data["headStats"]["numSeries"] == len(series) > 0
    assert data["seriesCountByMetricName"] == [{"name": "http_requests_total", "value": len(series)}]
    pairs = Counter(f"{k}={v}" for s in series for k, v in s.items())
    assert {e["name"]: e["value"] for e in data["seriesCountByLabelValuePair"]} == dict(pairs)
    assert {e["name"]: e["value"] for e in data["labelValueCountByLabelName"]} == \
        dict(Counter(k for k, _ in {(k, v) for s in series for k, v in s.items()}))
    status, body, _ = call_api(base, "/api/v1/status/tsdb", **{"match[]": "up{"})
    assert (status, body["errorType"]) == (400, "bad_data") and "match[]" in body["error"]


def test_the_shards_breakdown_adds_up(systems):
    for base in (systems["shardmon"], systems["replicated"]):
        data = _status(base)["data"]
        shards = data["shards"]
        assert [s["shard"] for s in shards] == [0, 1, 2]
        assert sum(s["headStats"]["numSeries"] for s in shards) == data["headStats"]["numSeries"]
        assert all(s["headStats"]["numSeries"] > 0 for s in shards)
        top = Counter()
        full = _status(base, limit="100000")["data"]
        for s in full["shards"]:
            top.update({e["name"]: e["value"] for e in s["seriesCountByMetricName"]})
        assert {e["name"]: e["value"] for e in full["seriesCountByMetricName"]} == dict(top)


def test_a_shard_down(systems):
    """Without replication: partial, with a warning naming the shard; with replication factor 2: complete
    and equal to before (the down shard's series are counted on their other replicas)."""
    plain, replicated = systems["clusters"]
    before = {b: _status(b)["data"] for b in (systems["shardmon"], systems["replicated"])}
    for cluster, base in ((plain, systems["shardmon"]), (replicated, systems["replicated"])):
        cluster.shards[1].stop()
        try:
            body = _status(base)
            data = body["data"]
            assert data["shards"][1] == {"shard": 1, "error": "did not answer (see the warnings)"}
            if cluster is plain:
                assert body.get("isPartial") is True
                assert any("shard 1" in w for w in body["warnings"]), body.get("warnings")
                assert data["headStats"]["numSeries"] < before[base]["headStats"]["numSeries"]
            else:
                assert "isPartial" not in body
                assert data["headStats"] == {**before[base]["headStats"], "minTime": data["headStats"]["minTime"],
                                             "maxTime": data["headStats"]["maxTime"],
                                             "chunkCount": data["headStats"]["chunkCount"]}
                assert data["seriesCountByLabelValuePair"] == before[base]["seriesCountByLabelValuePair"]
        finally:
            cluster.restart_shard(1)
