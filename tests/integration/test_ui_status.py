"""The Status page in a real browser against ``shardmon up`` (tests/integration/ui_browser.py), and the status
APIs it reads (``/api/v1/status/runtimeinfo``, ``config``, ``flags``, ``buildinfo``) compared with a live
Debian Prometheus 2.42's: the same field names and JSON types, secrets written the same way."""

from __future__ import annotations

import pytest
import yaml
from selenium.webdriver.common.by import By

from tests.integration.httpapi import get_json
from tests.integration.procs import free_port, prometheus_proc, wait_until
from tests.integration.ui_browser import SECRET, open_page, screenshot

PROM_SECRET = "prometheus-scrape-password-91c2"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    """Debian's Prometheus 2.42 with a scrape job holding a basic_auth password."""
    tmp = tmp_path_factory.mktemp("prom-status")
    port = free_port()
    cfg = tmp / "prometheus.yml"
    cfg.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "15s"},
        "scrape_configs": [{"job_name": "self", "basic_auth": {"username": "p", "password": PROM_SECRET},
                            "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}],
    }))
    p = prometheus_proc("prometheus-status", cfg, tmp / "data", port, tmp)
    p.up(60)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        p.stop()


def _data(base, path):
    doc = get_json(base + path)
    assert doc["status"] == "success"
    return doc["data"]


def _types(d: dict) -> dict:
    return {k: type(v).__name__ for k, v in d.items()}


def test_runtimeinfo_and_buildinfo_have_prometheus_fields_and_types(ui_cluster, prometheus):
    for path in ("/api/v1/status/runtimeinfo", "/api/v1/status/buildinfo"):
        ours, theirs = _data(ui_cluster["url"], path), _data(prometheus, path)
        assert _types(ours) == _types(theirs), path
    info = _data(ui_cluster["url"], "/api/v1/status/runtimeinfo")
    assert info["reloadConfigSuccess"] is True and info["storageRetention"] == "15d"
    assert info["GOMAXPROCS"] >= 1 and info["goroutineCount"] >= 1


def test_config_is_yaml_with_secrets_shown_as_prometheus_shows_them(ui_cluster, prometheus):
    ours, theirs = _data(ui_cluster["url"], "/api/v1/status/config"), _data(prometheus, "/api/v1/status/config")
    assert list(ours) == list(theirs) == ["yaml"]
    assert PROM_SECRET not in theirs["yaml"] and SECRET not in ours["yaml"]
    mine = yaml.safe_load(ours["yaml"])
    prom = yaml.safe_load(theirs["yaml"])
    job = next(j for j in mine["scrape_configs"] if j["job_name"] == "broken")
    assert job["basic_auth"] == prom["scrape_configs"][0]["basic_auth"] | {"username": "ui"}
    assert job["basic_auth"]["password"] == "<secret>"
    # The same sections and the same names of the scrape config fields both have.
    assert {"global", "scrape_configs"} <= set(mine) & set(prom)
    common = set(job) & set(prom["scrape_configs"][0])
    assert {"job_name", "scrape_interval", "scrape_timeout", "metrics_path", "scheme", "static_configs"} <= common
    assert job["scrape_interval"] == "1s" and prom["scrape_configs"][0]["scrape_interval"] == "15s"


def test_flags_are_strings_under_prometheus_names(ui_cluster, prometheus):
    ours, theirs = _data(ui_cluster["url"], "/api/v1/status/flags"), _data(prometheus, "/api/v1/status/flags")
    assert all(isinstance(v, str) for v in list(ours.values()) + list(theirs.values()))
    # Every flag Shardmon names as Prometheus does is one of Prometheus 2.42's flags; the rest are Shardmon's
    # configuration paths, under its sections querier. and shards. (no Prometheus flag starts so).
    named = {k for k in ours if not k.startswith(("querier.", "shards."))}
    assert not {k for k in theirs if k.startswith(("querier.", "shards."))}
    assert named <= set(theirs), named - set(theirs)
    assert {"query.lookback-delta", "query.timeout", "query.max-samples", "storage.tsdb.retention.time",
            "web.listen-address"} <= named
    assert ours["web.listen-address"] == ui_cluster["raw"]["querier"]["http_address"]
    assert ours["query.lookback-delta"] == theirs["query.lookback-delta"] == "5m"


def test_the_status_page_shows_runtime_build_config_and_flags_without_the_secret(ui_cluster, browser):
    ui = ui_cluster
    assert not open_page(browser, ui["url"] + "/status", ready_css="#flags-table")
    info = _data(ui["url"], "/api/v1/status/runtimeinfo")
    runtime = {r.find_element(By.TAG_NAME, "th").text: r.find_element(By.TAG_NAME, "td").text
               for r in browser.find_elements(By.CSS_SELECTOR, "#runtime-table tr")}
    assert runtime["Working directory"] == info["CWD"]
    assert runtime["Storage retention"] == info["storageRetention"]
    assert runtime["Configuration reload"] == "Successful"
    build = {r.find_element(By.TAG_NAME, "th").text: r.find_element(By.TAG_NAME, "td").text
             for r in browser.find_elements(By.CSS_SELECTOR, "#build-table tr")}
    assert build["Version"] == _data(ui["url"], "/api/v1/status/buildinfo")["version"]
    shown = browser.find_element(By.ID, "config-yaml").text
    assert shown.strip() == _data(ui["url"], "/api/v1/status/config")["yaml"].strip()
    assert "password: <secret>" in shown and SECRET not in browser.page_source
    flags = _data(ui["url"], "/api/v1/status/flags")
    rows = {r.find_element(By.TAG_NAME, "th").text: r.find_element(By.TAG_NAME, "td").text
            for r in browser.find_elements(By.CSS_SELECTOR, "#flags-table tr")}
    assert rows == flags
    screenshot(browser, "status-full")
    box = browser.find_element(By.ID, "filter-flags")
    box.send_keys("lookback")
    visible = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#flags-table tr") if r.is_displayed()]
    assert visible == ["query.lookback-delta 5m"]


def test_no_page_shows_the_configured_secret(ui_cluster, browser):
    for path in ("/targets", "/service-discovery", "/rules", "/alerts", "/status"):
        assert not open_page(browser, ui_cluster["url"] + path)
        assert SECRET not in browser.page_source, path


def test_discovered_labels_carry_the_scrape_configs_defaults_as_prometheus(ui_cluster, prometheus):
    """What the Service discovery page shows on the left: the same label names as Prometheus for a static target."""
    theirs = wait_until(lambda: _data(prometheus, "/api/v1/targets")["activeTargets"], 30, "Prometheus's target")[0]
    ours = next(t for t in _data(ui_cluster["url"], "/api/v1/targets")["activeTargets"] if t["scrapePool"] == "broken")
    assert set(ours["discoveredLabels"]) == set(theirs["discoveredLabels"])
    assert set(ours) - {"scraper"} == set(theirs)
