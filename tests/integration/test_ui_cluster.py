"""The Cluster page and ``/api/v1/status/cluster`` over a real ``shardmon up`` cluster (tests/integration/
ui_browser.py): every shard, scraper and ruler the configuration and the ingest service know is listed with
its health, a query over ``querier.slow_query_threshold`` shows in the slow queries, and a shard that stops
answering shows as down while the rest of the document answers. Screenshots are saved as artifacts."""

from __future__ import annotations

import os
import re
import signal
import time

from selenium.webdriver.common.by import By

from tests.integration.httpapi import get_json, metric
from tests.integration.procs import wait_until
from tests.integration.ui_browser import open_page, screenshot

#: The hostile case's generous bound: the document answers though a shard hangs (its timeout is 3 s).
ANSWER_WITHIN_S = 20


def _status(url: str) -> dict:
    doc = get_json(f"{url}/api/v1/status/cluster")
    assert doc["status"] == "success"
    return doc["data"]


def _cells(row, css: str) -> str:
    return row.find_element(By.CSS_SELECTOR, css).text.strip()


def _cluster_page(drv, url: str) -> None:
    errors = open_page(drv, url + "/cluster", ready_css="#cluster-body table")
    assert not errors, errors


def test_the_api_lists_every_shard_scraper_and_ruler(ui_cluster):
    # The shards' gauges are refreshed by their maintenance round (every 10 s at most): wait for the first.
    def filled():
        d = _status(ui_cluster["url"])
        return d if all(s["activeSeries"] for s in d["shards"]) else None

    data = wait_until(filled, 30, "every shard's gauges", interval_s=1)
    nodes = ui_cluster["raw"]["shards"]["nodes"]
    assert [s["id"] for s in data["shards"]] == [n["id"] for n in nodes]
    assert {s["health"] for s in data["shards"]} == {"up"}
    for s in data["shards"]:
        assert s["activeSeries"] > 0 and s["walEntries"] is not None and s["redisMemoryBytes"] > 0
        assert s["redisAppendOnly"] is True and s["redisDataLost"] is False
    # The scrapers are those the ingest service lists, each on a Ray node with its targets.
    listed = get_json(f"http://{ui_cluster['raw']['ingest']['http_address']}/api/v1/scrapers")["data"]
    assert sorted(s["id"] for s in data["scrapers"]) == sorted(s["scraper_id"] for s in listed)
    assert sum(s["targets"] for s in data["scrapers"]) == sum(s["targets"] for s in listed)
    assert all(s["health"] == "up" and s["nodeId"] for s in data["scrapers"])
    assert [r["groups"] for r in data["rulers"]] and all(r["health"] == "up" for r in data["rulers"])
    assert {c["component"]: c["health"] for c in data["components"]} == {
        "querier": "up", "ingest": "up", "rulers": "up", "receiver": "up"}
    # A rate needs two readings: the second call has one for every shard that answered.
    time.sleep(1.5)
    again = _status(ui_cluster["url"])
    assert all(s["samplesPerSecond"] is not None and s["samplesPerSecond"] > 0 for s in again["shards"])


def test_the_page_lists_every_shard_and_scraper_with_its_health(ui_cluster, browser):
    url = ui_cluster["url"]
    _cluster_page(browser, url)
    data = _status(url)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-shard]")
    assert [r.get_attribute("data-shard") for r in rows] == [str(s["id"]) for s in data["shards"]]
    for row, shard in zip(rows, data["shards"]):
        assert _cells(row, "td.health") == shard["health"]
    wait_until(lambda: browser.find_elements(By.CSS_SELECTOR, "tr[data-scraper]"), 10, "the scrapers' rows")
    rows = browser.find_elements(By.CSS_SELECTOR, "tr[data-scraper]")
    assert sorted(r.get_attribute("data-scraper") for r in rows) == sorted(s["id"] for s in data["scrapers"])
    by_id = {s["id"]: s for s in data["scrapers"]}
    for row in rows:
        scraper = by_id[row.get_attribute("data-scraper")]
        assert _cells(row, "td.health").split()[0] == scraper["health"]
        assert scraper["nodeIp"] in row.text
    assert browser.find_elements(By.CSS_SELECTOR, "tr[data-ruler]")
    screenshot(browser, "cluster")


def test_a_slow_query_shows_on_the_page(ui_cluster, browser):
    url = ui_cluster["url"]
    expr = 'count by (job) (up{job=~"demo|broken"}) * 7'
    res = get_json(f"{url}/api/v1/query", {"query": expr})
    assert res["status"] == "success"
    [logged] = [q for q in _status(url)["slowQueries"]["queries"] if q["query"] == expr]
    assert logged["kind"] == "instant" and logged["outcome"] == "ok" and logged["series"] >= 4
    assert logged["clientIP"] == "127.0.0.1"
    _cluster_page(browser, url)
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.slow-query")
    shown = [r for r in rows if r.find_element(By.CSS_SELECTOR, "code").text == expr]
    assert shown, [r.text for r in rows]
    assert str(logged["series"]) in shown[0].text
    # Its link opens the expression on the query page.
    href = shown[0].find_element(By.CSS_SELECTOR, "a").get_attribute("href")
    assert "/graph?g0.expr=" in href and "g0.tab=1" in href
    browser.execute_script("arguments[0].scrollIntoView()", shown[0])
    screenshot(browser, "cluster-slow-queries")
    assert metric(url, "shardmon_querier_slow_queries_total", api="http", kind="instant") >= 1


def test_a_slow_query_over_grpc_is_logged_with_its_client(ui_cluster):
    from shardmon.client import QueryClient

    expr = "sum by (job) (up) * 3"
    with QueryClient(ui_cluster["raw"]["querier"]["grpc_address"]) as c:
        end_ms = int(time.time() * 1000)
        assert c.range(expr, end_ms - 60_000, end_ms, 15_000).series
    [logged] = [q for q in _status(ui_cluster["url"])["slowQueries"]["queries"] if q["query"] == expr]
    assert logged["api"] == "grpc" and logged["kind"] == "range" and logged["params"]["step"] == 15.0
    assert logged["clientIP"] == "127.0.0.1" and logged["outcome"] == "ok"


def _shard_pid(ui_cluster, shard_id: int) -> int:
    """The pid ``shardmon up`` printed for the shard (its latest start)."""
    found = re.findall(rf"started shard-{shard_id}\s+pid (\d+)", (ui_cluster["tmp"] / "up.log").read_text())
    assert found, "shardmon up printed no pid for the shard"
    return int(found[-1])


def test_a_shard_that_stops_answering_shows_down_and_the_rest_answer(ui_cluster, browser):
    url = ui_cluster["url"]
    victim = ui_cluster["raw"]["shards"]["nodes"][-1]["id"]
    pid = _shard_pid(ui_cluster, victim)
    os.kill(pid, signal.SIGSTOP)  # Hung: its port accepts connections, nothing answers (worse than a crash).
    try:
        t0 = time.monotonic()
        data = _status(url)
        assert time.monotonic() - t0 < ANSWER_WITHIN_S
        shards = {s["id"]: s for s in data["shards"]}
        assert shards[victim]["health"] == "down"
        assert shards[victim]["metricsAddress"] in shards[victim]["lastError"]
        assert all(s["health"] == "up" for i, s in shards.items() if i != victim)
        assert data["totals"]["shardsUp"] == len(shards) - 1
        assert data["scrapers"] and {c["component"]: c["health"] for c in data["components"]}["ingest"] == "up"

        _cluster_page(browser, url)
        row = browser.find_element(By.CSS_SELECTOR, f'tr[data-shard="{victim}"]')
        assert _cells(row, "td.health") == "down"
        assert "no answer within" in row.text
        others = [r for r in browser.find_elements(By.CSS_SELECTOR, "tr[data-shard]")
                  if r.get_attribute("data-shard") != str(victim)]
        assert others and all(_cells(r, "td.health") == "up" for r in others)
        screenshot(browser, "cluster-shard-down")
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_until(lambda: all(s["health"] == "up" for s in _status(url)["shards"]), 30, "the shard answering again")
