"""The Query page (/graph) in a real browser against ``shardmon up`` (tests/integration/ui_browser.py): what a
person reads on it equals what the HTTP API answers: the table's rows, the graph's legend, a parse error
and its position; Prometheus's URL parameters open a panel; completion offers names from the label APIs."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, quote, urlsplit

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from tests.integration.httpapi import call_api, get_json
from tests.integration.procs import wait_until
from tests.integration.ui_browser import console_errors, open_page, screenshot

WAIT_S = 30


def series_text(metric: dict) -> str:
    """A metric as the page writes it (common.js seriesText): name{a="1", b="2"}."""
    name = metric.get("__name__", "")
    labels = [f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in metric.items() if k != "__name__"]
    return f"{name}{{{', '.join(labels)}}}" if labels else (name or "{}")


def utc_text(t: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t))


def api(cluster, path: str, **params) -> dict:
    doc = get_json(cluster["url"] + path, params)
    assert doc["status"] == "success", doc
    return doc["data"]


def css(drv, selector: str):
    return drv.find_elements(By.CSS_SELECTOR, selector)


def wait_css(drv, selector: str, what: str):
    return wait_until(lambda: css(drv, selector), WAIT_S, what, interval_s=0.1)


def url_params(drv) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(drv.current_url).query, keep_blank_values=True).items()}


def test_a_typed_query_in_the_table_tab_shows_the_apis_rows(ui_cluster, browser):
    assert not open_page(browser, ui_cluster["url"] + "/graph", ready_css="textarea.expr-input")
    t = int(time.time()) - 2
    when = css(browser, ".table-controls input.time-input")[0]
    when.send_keys(utc_text(t), Keys.ENTER)  # an empty expression: nothing runs yet
    css(browser, "textarea.expr-input")[0].send_keys("up")
    css(browser, "button.execute")[0].click()
    rows = wait_css(browser, "table.data-table tbody tr", "the table's rows")

    want = api(ui_cluster, "/api/v1/query", query="up", time=t)
    assert want["resultType"] == "vector" and len(want["result"]) >= 4
    shown = [(r.find_element(By.CSS_SELECTOR, "td.series").text, r.find_element(By.CSS_SELECTOR, "td.value").text)
             for r in rows]
    assert shown == [(series_text(s["metric"]), s["value"][1]) for s in want["result"]]
    assert f"Result series: {len(want['result'])}" in css(browser, ".query-stats")[0].text
    assert "Load time:" in css(browser, ".query-stats")[0].text
    assert ("up{" + f'instance="{ui_cluster["down"]}", job="broken"' + "}", "0") in shown

    params = url_params(browser)  # written back as Prometheus writes them
    assert params["g0.expr"] == "up" and params["g0.tab"] == "1"
    assert params["g0.moment_input"] == params["g0.end_input"] == utc_text(t)
    screenshot(browser, "graph-table")

    css(browser, "button.add-panel")[0].click()  # a second panel: its own expression, its own parameters
    second = css(browser, "textarea.expr-input")[1]
    second.send_keys("count(up)", Keys.ENTER)
    wait_until(lambda: len(css(browser, "table.data-table")) == 2, WAIT_S, "the second panel's table")
    assert url_params(browser)["g1.expr"] == "count(up)"
    css(browser, "button.remove-panel")[1].click()
    assert "g1.expr" not in url_params(browser)
    assert not console_errors(browser)


def test_the_graph_tab_draws_the_range_query_with_a_legend_per_series(ui_cluster, browser):
    end = int(time.time()) - 2
    expr = "rate(up[1m]) or up"
    url = (f"{ui_cluster['url']}/graph?g0.expr={quote(expr)}&g0.tab=0&g0.range_input=1m"
           f"&g0.end_input={quote(utc_text(end))}")
    assert not open_page(browser, url, ready_css=".graph-chart canvas")
    rows = wait_css(browser, ".graph-chart .u-legend tr.u-series", "the legend")

    want = api(ui_cluster, "/api/v1/query_range", query=expr, start=end - 60, end=end, step=1)  # 1m / 250: 1 s
    assert want["resultType"] == "matrix" and want["result"]
    labels = [r.find_element(By.CSS_SELECTOR, ".u-label").text for r in rows[1:]]  # the first is the time
    assert labels == [series_text(s["metric"]) for s in want["result"]]
    assert css(browser, "textarea.expr-input")[0].get_attribute("value") == expr
    assert css(browser, "input.range-input")[0].get_attribute("value") == "1m"
    assert css(browser, "button.tab.active")[0].text == "Graph"
    assert "Resolution: 1s" in css(browser, ".query-stats")[0].text
    screenshot(browser, "graph-graph")

    rows[1].find_element(By.CSS_SELECTOR, "th").click()  # clicking a legend entry toggles its series
    assert "u-off" in rows[1].get_attribute("class")
    rows[1].find_element(By.CSS_SELECTOR, "th").click()
    assert "u-off" not in rows[1].get_attribute("class")

    css(browser, "button.stack-toggle[data-stacked='1']")[0].click()
    assert url_params(browser)["g0.stacked"] == "1"
    assert css(browser, ".graph-chart canvas")
    assert len(css(browser, ".graph-chart .u-legend tr.u-series")) == len(want["result"]) + 1
    assert not console_errors(browser)


def test_a_prometheus_link_opens_the_graph_of_its_expression(ui_cluster, browser):
    # What Grafana's "explore in Prometheus" and an alert's generatorURL link to (no end time: now).
    url = f"{ui_cluster['url']}/graph?g0.expr={quote('sum by (job) (up)')}&g0.tab=0&g0.range_input=5m"
    assert not open_page(browser, url, ready_css=".graph-chart canvas")
    rows = wait_css(browser, ".graph-chart .u-legend tr.u-series", "the legend")
    labels = {r.find_element(By.CSS_SELECTOR, ".u-label").text for r in rows[1:]}
    assert {'{job="demo"}', '{job="broken"}'} <= labels
    assert css(browser, "textarea.expr-input")[0].get_attribute("value") == "sum by (job) (up)"


def test_a_bad_query_shows_the_parse_error_at_its_position(ui_cluster, browser):
    assert not open_page(browser, ui_cluster["url"] + "/graph", ready_css="textarea.expr-input")
    css(browser, "textarea.expr-input")[0].send_keys("sum(up) by (job) foo")
    css(browser, "button.execute")[0].click()
    alert = wait_css(browser, ".query-error .error", "the error")[0]

    status, doc, _ = call_api(ui_cluster["url"], "/api/v1/query", query="sum(up) by (job) foo")
    assert status == 400 and doc["status"] == "error" and doc["errorType"] == "bad_data"
    assert doc["error"].startswith("1:18: parse error: ")
    assert alert.text == f"Error executing query: {doc['error']}"
    caret = css(browser, ".query-error pre.error-caret")[0]
    assert (caret.get_attribute("data-line"), caret.get_attribute("data-column")) == ("1", "18")
    assert caret.text.split("\n") == ["sum(up) by (job) foo", " " * 17 + "^"]
    assert not css(browser, "table.data-table")
    # The browser logs the API's 400 answer (which the page shows); nothing else reaches the console.
    assert console_errors(browser) == [f"{ui_cluster['url']}/api/v1/query - Failed to load resource: the server "
                                       "responded with a status of 400 (Bad Request)"]


def offered(drv) -> list[tuple[str, bool]]:
    """The dropdown's items (text, highlighted), read at once (each keystroke redraws it)."""
    return drv.execute_script("""return [...document.querySelectorAll("ul.completion:not([hidden]) li")]
        .map((li) => [li.textContent, li.classList.contains("active")]);""")


def test_completion_offers_metric_names_label_names_and_values(ui_cluster, browser):
    names = api(ui_cluster, "/api/v1/label/__name__/values")
    name = next(n for n in names if n.startswith("shardmon_") and n.count("_") >= 3)
    assert not open_page(browser, ui_cluster["url"] + "/graph", ready_css="textarea.expr-input")
    field = css(browser, "textarea.expr-input")[0]
    field.send_keys(name[:-3])
    wait_until(lambda: name in [text for text, _ in offered(browser)], WAIT_S, f"{name} offered")

    def click_it():
        try:
            [li for li in css(browser, "ul.completion li") if li.text == name][0].click()
        except (StaleElementReferenceException, IndexError):
            return False
        return True

    wait_until(click_it, WAIT_S, f"{name} clicked")
    assert field.get_attribute("value") == name

    field.send_keys(Keys.BACKSPACE)  # offered again; Escape closes the dropdown
    wait_until(lambda: offered(browser), WAIT_S, "offered again")
    field.send_keys(Keys.ESCAPE)
    assert not offered(browser)
    assert field.get_attribute("value") == name[:-1]

    field.send_keys(Keys.CONTROL, "a")
    field.send_keys(Keys.DELETE)
    field.send_keys("up{jo")
    wait_until(lambda: offered(browser)[:1] == [["job", True]], WAIT_S, "job offered")
    field.send_keys(Keys.ENTER)  # Enter takes the offered name (it does not run the query)
    assert field.get_attribute("value") == "up{job"
    field.send_keys('="bro')
    wait_until(lambda: offered(browser)[:1] == [["broken", True]], WAIT_S, "broken offered")
    field.send_keys(Keys.TAB)
    assert field.get_attribute("value") == 'up{job="broken"'
    field.send_keys("}")
    wait_until(lambda: not offered(browser), WAIT_S, "the dropdown closed")
    field.send_keys(Keys.ENTER)  # now Enter runs the query
    rows = wait_css(browser, "table.data-table tbody tr", "the table's rows")
    assert [r.find_element(By.CSS_SELECTOR, "td.series").text for r in rows] == [
        f'up{{instance="{ui_cluster["down"]}", job="broken"}}']
    assert not console_errors(browser)


def _range_text(bucket: list) -> str:
    """A bucket's range as Prometheus 2.53's table writes it (bucketRangeString)."""
    rule, lower, upper = bucket[:3]
    return f"{'[' if rule in (1, 3) else '('}{lower} -> {upper}{']' if rule in (0, 3) else ')'}"


def _bucket_rows(table) -> list[tuple[str, str]]:
    return [tuple(td.text for td in tr.find_elements(By.CSS_SELECTOR, "td"))
            for tr in table.find_elements(By.CSS_SELECTOR, ":scope > tbody > tr")]


def test_the_table_shows_a_native_histogram_sample_with_its_buckets(ui_cluster, browser):
    t = int(time.time()) - 2
    expr = 'test_latency_seconds{job="native"}'
    url = (f"{ui_cluster['url']}/graph?g0.expr={quote(expr)}&g0.tab=1"
           f"&g0.moment_input={quote(utc_text(t))}")
    assert not open_page(browser, url, ready_css="table.data-table .histogram-sample")
    want = api(ui_cluster, "/api/v1/query", query=expr, time=t)
    (series,) = want["result"]
    h = series["histogram"][1]
    assert len(h["buckets"]) >= 3
    cell = css(browser, "table.data-table td.value")[0]
    summary = cell.find_element(By.CSS_SELECTOR, ".histogram-summary").text
    assert f"Total count: {h['count']}" in summary and f"Sum: {h['sum']}" in summary
    assert len(cell.find_elements(By.CSS_SELECTOR, ".histogram-chart .histogram-bar")) == len(h["buckets"])
    rows = _bucket_rows(cell.find_element(By.CSS_SELECTOR, "table.histogram-buckets"))
    assert rows == [(_range_text(b), b[3]) for b in h["buckets"]]
    assert css(browser, "table.data-table td.series")[0].text == series_text(series["metric"])
    screenshot(browser, "graph-table-histogram")

    # A range selector: each histogram point's bucket table, with its timestamp, as the API lists them.
    expr = 'test_latency_seconds{job="native"}[5s]'
    css(browser, "textarea.expr-input")[0].clear()
    css(browser, "textarea.expr-input")[0].send_keys(expr, Keys.ENTER)
    wait_css(browser, "table.data-table .histogram-point", "the histogram points of a matrix")
    want = api(ui_cluster, "/api/v1/query", query=expr, time=t)
    points = want["result"][0]["histograms"]
    shown = css(browser, "table.data-table .histogram-point")
    assert len(shown) == len(points) >= 2
    for el, (ts, hist) in zip(shown, points):
        assert _bucket_rows(el.find_element(By.CSS_SELECTOR, "table.histogram-buckets")) == \
            [(_range_text(b), b[3]) for b in hist["buckets"]]
        assert el.text.split()[-1] == f"@{ts}"
    assert not console_errors(browser)


def test_the_graph_tab_draws_the_count_of_a_histogram_series(ui_cluster, browser):
    end = int(time.time()) - 2
    expr = 'sum(rate(test_latency_seconds[5s])) or sum by (job) (up)'
    url = (f"{ui_cluster['url']}/graph?g0.expr={quote(expr)}&g0.tab=0&g0.range_input=1m"
           f"&g0.end_input={quote(utc_text(end))}")
    assert not open_page(browser, url, ready_css=".graph-chart canvas")
    rows = wait_css(browser, ".graph-chart .u-legend tr.u-series", "the legend")
    want = api(ui_cluster, "/api/v1/query_range", query=expr, start=end - 60, end=end, step=1)
    assert any("histograms" in s for s in want["result"]) and any("values" in s for s in want["result"])
    labels = [r.find_element(By.CSS_SELECTOR, ".u-label").text for r in rows[1:]]
    assert labels == [series_text(s["metric"]) + (" (histogram count)" if "histograms" in s else "")
                      for s in want["result"]]
    screenshot(browser, "graph-graph-histogram")
    assert not console_errors(browser)
