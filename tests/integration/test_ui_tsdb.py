"""The Cardinality page (/tsdb-status) in a real browser against ``shardmon up``: what it shows is what
``/api/v1/status/tsdb`` answers (names and counts, in order), a ``match[]`` typed on the page narrows the tables
as the API does, and the per-shard breakdown adds up to the head's series. Screenshots are saved as artifacts.

The cluster keeps scraping (its own metrics gain series as it is used), so each comparison reads the page and
the API close together and tries again when a series appeared in between."""

from __future__ import annotations

import urllib.parse

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.integration.httpapi import get_json
from tests.integration.procs import wait_until
from tests.integration.ui_browser import open_page, screenshot

LISTS = ["labelValueCountByLabelName", "seriesCountByMetricName", "memoryInBytesByLabelName",
         "seriesCountByLabelValuePair"]


def _table(drv, key: str) -> list[dict]:
    rows = drv.find_elements(By.CSS_SELECTOR, f'table[data-list="{key}"] tbody tr')
    out = []
    for r in rows:
        cells = r.find_elements(By.CSS_SELECTOR, "td.name, td.value")
        if len(cells) == 2:
            out.append({"name": cells[0].text, "value": int(cells[1].text)})
    return out


def _head(drv) -> dict:
    cells = drv.find_elements(By.CSS_SELECTOR, "#tsdb-head tbody td")
    return {"numSeries": int(cells[0].text), "chunkCount": int(cells[1].text), "numLabelPairs": int(cells[2].text)}


def _loaded(drv, qs: str):
    return drv.find_elements(By.CSS_SELECTOR, f'#tsdb-result[data-loaded="{qs}"] table[data-list]')


def _api(url: str, params: dict | None = None) -> dict:
    return get_json(f"{url}/api/v1/status/tsdb", params)["data"]


def _page_equals_api(drv, url: str, params: dict | None, reload) -> dict:
    """Read the page and the API until they were read with no series appearing in between; return the API's."""
    last: list = []

    def attempt():
        reload()
        before = _api(url, params)
        shown = {k: _table(drv, k) for k in LISTS}
        after = _api(url, params)
        want = {k: after[k] for k in LISTS}
        stable = want == {k: before[k] for k in LISTS}  # (the head's maxTime moves with every scrape)
        last[:] = [stable, {k: (shown[k], want[k]) for k in LISTS if shown[k] != want[k]}]
        if not stable:
            return None  # a series appeared meanwhile: again
        return after if shown == want else None

    try:
        return wait_until(attempt, 90, "the page showing what /api/v1/status/tsdb answers", interval_s=1)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: API stable {last[0]}, page != API in {last[1]}") from None


def test_the_page_shows_what_the_api_answers(ui_cluster, browser):
    url = ui_cluster["url"]

    def reload():
        assert not open_page(browser, url + "/tsdb-status", ready_css='#tsdb-result[data-loaded="default"] table')

    api = _page_equals_api(browser, url, None, reload)
    assert len(api["seriesCountByMetricName"]) == 10
    # The top metric names: names and counts, in order, as the API's seriesCountByMetricName.
    assert _table(browser, "seriesCountByMetricName") == api["seriesCountByMetricName"]
    # The per-shard breakdown: one row per shard, their series adding up to the head's.
    rows = browser.find_elements(By.CSS_SELECTOR, "#tsdb-shards tbody tr")
    assert len(rows) == len(api["shards"]) >= 2
    shown = [int(r.find_element(By.CSS_SELECTOR, "td.series").text) for r in rows]
    assert shown == [s["headStats"]["numSeries"] for s in api["shards"]]
    assert sum(shown) == api["headStats"]["numSeries"]
    tops = browser.find_elements(By.CSS_SELECTOR, "[data-shard-top]")
    assert len(tops) == len(api["shards"])
    screenshot(browser, "tsdb-status")


def test_a_typed_match_narrows_the_tables_as_the_api_does(ui_cluster, browser):
    url = ui_cluster["url"]
    selector = '{job="demo"}'
    qs = urllib.parse.urlencode({"limit": "5", "match[]": selector})
    everything = _api(url)

    def reload():
        assert not open_page(browser, url + "/tsdb-status", ready_css='#tsdb-result[data-loaded="default"] table')
        limit = browser.find_element(By.ID, "tsdb-limit")
        limit.clear()
        limit.send_keys("5")
        box = browser.find_element(By.ID, "tsdb-match")
        box.clear()
        box.send_keys(selector, Keys.ENTER)
        wait_until(lambda: _loaded(browser, qs), 30, "the narrowed tables")

    api = _page_equals_api(browser, url, {"limit": "5", "match[]": selector}, reload)
    assert 0 < _head(browser)["numSeries"] == api["headStats"]["numSeries"] < everything["headStats"]["numSeries"]
    assert all(len(_table(browser, k)) <= 5 for k in LISTS)
    pairs = {e["name"] for e in _api(url, {"limit": "100000", "match[]": selector})["seriesCountByLabelValuePair"]}
    assert "job=demo" in pairs and not any(p.startswith("job=") and p != "job=demo" for p in pairs)
    # The view is in the page's URL, so it can be shared and reloaded.
    assert "match%5B%5D=" in browser.current_url or "match[]=" in urllib.parse.unquote(browser.current_url)
    screenshot(browser, "tsdb-status-match")
