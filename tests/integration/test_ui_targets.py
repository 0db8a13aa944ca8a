"""The Targets, Service discovery, Rules and Alerts pages in a real browser against ``shardmon up``
(tests/integration/ui_browser.py): what a person reads on each page equals what the API answers."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.integration.httpapi import get_json
from tests.integration.procs import wait_until
from tests.integration.ui_browser import DROPPED, open_page, screenshot


def _api(ui, path, **params):
    return get_json(f"{ui['url']}{path}", params or None)["data"]


def _rows(drv) -> dict[str, dict]:
    """The targets page's rows: scrape URL -> health, scraper, error, visible."""
    out = {}
    for row in drv.find_elements(By.CSS_SELECTOR, "tr.target"):
        out[row.get_attribute("data-url")] = {
            "health": row.find_element(By.CSS_SELECTOR, "td.health").text.lower(),
            "scraper": row.find_element(By.CSS_SELECTOR, "td.scraper").text.split("\n")[0],
            "error": row.find_element(By.CSS_SELECTOR, "td.err").text,
            "pool": row.get_attribute("data-pool"),
            "shown": row.is_displayed(),
        }
    return out


def _scraped_once(ui):
    """/api/v1/targets once every target has been scraped (none unknown)."""
    def ready():
        active = _api(ui, "/api/v1/targets", state="active")["activeTargets"]
        return active if all(t["health"] != "unknown" for t in active) else None

    return wait_until(ready, 60, "every target scraped once")


def test_the_targets_page_lists_every_target_with_its_health_scraper_and_error(ui_cluster, browser):
    ui = ui_cluster
    _scraped_once(ui)

    def same():  # the page against the API read just before it (self-monitoring targets may still arrive)
        api = {t["scrapeUrl"]: t for t in _api(ui, "/api/v1/targets", state="active")["activeTargets"]}
        assert not open_page(browser, ui["url"] + "/targets", ready_css="tr.target")
        rows = _rows(browser)
        want = {u: {"health": t["health"], "scraper": t["scraper"], "pool": t["scrapePool"]} for u, t in api.items()}
        got = {u: {k: r[k] for k in ("health", "scraper", "pool")} for u, r in rows.items()}
        return (got == want and (api, rows)) or None

    api, rows = wait_until(same, 60, "the targets page equal to /api/v1/targets", interval_s=1)
    broken = f"http://{ui['down']}/metrics"
    assert rows[broken]["health"] == "down" and rows[broken]["error"] == api[broken]["lastError"] != ""
    assert all(r["shown"] for r in rows.values())
    # Each pool's count, as Prometheus writes it: "3/3 up".
    for pool in browser.find_elements(By.CSS_SELECTOR, "details.pool"):
        name = pool.get_attribute("data-pool")
        members = [t for t in api.values() if t["scrapePool"] == name]
        up = sum(t["health"] == "up" for t in members)
        assert pool.find_element(By.CSS_SELECTOR, "summary .count").text == f"{up}/{len(members)} up"
    # The scraper's Ray node, from /api/v1/scrapers.
    nodes = {s["scraper_id"]: s["node_ip"] for s in _api(ui, "/api/v1/scrapers")}
    row = browser.find_element(By.CSS_SELECTOR, f'tr.target[data-url="{broken}"]')
    assert f"node {nodes[api[broken]['scraper']]}" in row.find_element(By.CSS_SELECTOR, "td.scraper").text
    # The labels before relabeling, on demand.
    discovered = row.find_element(By.CSS_SELECTOR, ".discovered")
    assert not discovered.is_displayed()
    row.find_element(By.CSS_SELECTOR, "button.show-discovered").click()
    assert f'__address__="{ui["down"]}"' in discovered.text
    screenshot(browser, "targets-all")

    browser.find_element(By.ID, "filter-unhealthy").click()
    shown = [u for u, r in _rows(browser).items() if r["shown"]]
    assert shown == [u for u, t in api.items() if t["health"] != "up"] == [broken]
    visible_pools = [p.get_attribute("data-pool") for p in browser.find_elements(By.CSS_SELECTOR, "details.pool")
                     if p.is_displayed()]
    assert visible_pools == ["broken"]
    screenshot(browser, "targets-unhealthy")

    browser.find_element(By.ID, "filter-all").click()
    box = browser.find_element(By.ID, "filter-text")
    box.send_keys('env="demo"')
    shown = {u for u, r in _rows(browser).items() if r["shown"]}
    assert shown == {u for u, t in api.items() if t["labels"].get("env") == "demo"} and len(shown) == 3


def test_service_discovery_shows_discovered_and_target_labels_and_the_dropped(ui_cluster, browser):
    ui = ui_cluster
    data = _api(ui, "/api/v1/targets")
    assert not open_page(browser, ui["url"] + "/service-discovery", ready_css="tr.sd-target")
    assert browser.find_element(By.ID, "dropped-count").text == str(len(data["droppedTargets"])) == "1"
    broken = browser.find_element(By.CSS_SELECTOR, 'details.pool[data-pool="broken"]')
    assert broken.find_element(By.CSS_SELECTOR, "summary .count").text == "1 / 2 active targets"
    dropped = broken.find_element(By.CSS_SELECTOR, "tr.sd-dropped")
    left, right = dropped.find_elements(By.TAG_NAME, "td")
    assert f'__address__="{DROPPED}"' in left.text and right.text == "Dropped"
    active = [r for r in broken.find_elements(By.CSS_SELECTOR, "tr.sd-target") if "sd-dropped" not in r.get_attribute("class")]
    left, right = active[0].find_elements(By.TAG_NAME, "td")
    assert f'__address__="{ui["down"]}"' in left.text and 'job="broken"' in left.text
    assert f'instance="{ui["down"]}"' in right.text and "__address__" not in right.text
    screenshot(browser, "service-discovery")


def test_the_rules_page_lists_both_rules_healthy(ui_cluster, browser):
    ui = ui_cluster
    wait_until(lambda: all(r.get("health") == "ok" for g in _api(ui, "/api/v1/rules")["groups"] for r in g["rules"]),
               60, "both rules evaluated")
    assert not open_page(browser, ui["url"] + "/rules", ready_css="tr.rule")
    rows = {r.get_attribute("data-name"): r for r in browser.find_elements(By.CSS_SELECTOR, "tr.rule")}
    assert set(rows) == {"job:up:sum", "TargetDown"}
    for row in rows.values():
        assert row.find_element(By.CSS_SELECTOR, "td:nth-child(2)").text == "OK"
    assert "expr: sum by (job) (up)" in rows["job:up:sum"].text
    link = rows["TargetDown"].find_element(By.LINK_TEXT, "up == 0").get_attribute("href")
    assert "/graph?g0.expr=up%20%3D%3D%200" in link
    group = browser.find_element(By.CSS_SELECTOR, 'details.group[data-group="demo"] summary').text
    assert "rules.yml" in group and "every 1.0s" in group
    screenshot(browser, "rules-healthy")


def test_the_alerts_page_shows_target_down_firing_for_the_broken_target(ui_cluster, browser):
    ui = ui_cluster
    wait_until(lambda: any(a["state"] == "firing" for a in _api(ui, "/api/v1/alerts")["alerts"]), 60, "TargetDown firing")
    assert not open_page(browser, ui["url"] + "/alerts", ready_css="details.rule")
    rule = browser.find_element(By.CSS_SELECTOR, 'details.rule[data-name="TargetDown"]')
    assert rule.get_attribute("data-state") == "firing"
    alerts = rule.find_elements(By.CSS_SELECTOR, "tr.alert")
    assert len(alerts) == 1 and f'instance="{ui["down"]}"' in alerts[0].text and "FIRING" in alerts[0].text
    counts = {s: browser.find_element(By.ID, f"count-{s}").text for s in ("inactive", "pending", "firing")}
    assert counts == {"inactive": "Inactive (0)", "pending": "Pending (0)", "firing": "Firing (1)"}
    # Annotations on demand, expanded from the rule's template.
    annotations = alerts[0].find_element(By.CSS_SELECTOR, "td.annotations")
    assert not annotations.is_displayed()
    browser.find_element(By.ID, "show-annotations").click()
    assert f"{ui['down']} of job broken is down" in annotations.text
    screenshot(browser, "alerts-firing")
    # The state filter: without firing, nothing is left.
    browser.find_element(By.ID, "show-firing").click()
    assert not rule.is_displayed()
