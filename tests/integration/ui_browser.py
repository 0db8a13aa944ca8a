"""Browser tests of the web UI: Debian's chromium driven by chromedriver (selenium from PyPI), headless,
against a real ``shardmon up`` cluster.

Both fixtures are session-wide, registered in tests/integration/conftest.py (a test module must not import them,
or it would get its own).

- :func:`ui_cluster`: ``shardmon up`` on free ports with the demo targets, one target that is down (a port
  nothing listens on) in a job with a basic_auth password (:data:`SECRET`) and a target its relabeling drops
  (:data:`DROPPED`), a target exposing native histograms (tests/native_hist_target.py, job ``native``, with
  ``ingest.native_histograms``), a rule file with a recording and an alerting rule; the querier's URL and config.
- :func:`browser`: a headless chromium (``/usr/bin/chromium``, ``/usr/bin/chromedriver``) that keeps the
  page's console log.
- :func:`open_page`: load a page, wait until its script has filled ``<main id="app">`` and return the
  console's errors (a test asserts there are none); :func:`screenshot` saves the page as a test artifact
  under ``tests/artifacts/screenshots/`` (or ``$SHARDMON_ARTIFACTS/screenshots``).
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
import yaml

from tests.integration.procs import free_port, shardmon_up, up_config, wait_until

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SHARDMON_ARTIFACTS", ROOT / "tests" / "artifacts")) / "screenshots"
INTERVAL_S = 1
#: The password of the ``broken`` job's basic_auth: configured, never shown (Status page, /api/v1/status/config).
SECRET = "ui-scrape-password-7f3a"
#: A target of the ``broken`` job that its relabel_configs drop (Service discovery's dropped targets).
DROPPED = "dropped.invalid:9999"

RULES = {"groups": [{"name": "demo", "interval": "1s", "rules": [
    {"record": "job:up:sum", "expr": "sum by (job) (up)"},
    {"alert": "TargetDown", "expr": "up == 0", "for": "0s", "labels": {"severity": "warning"},
     "annotations": {"summary": "{{ $labels.instance }} of job {{ $labels.job }} is down"}},
]}]}


def _chromium() -> tuple[str, str]:
    chrome, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not chrome or not driver:
        if os.environ.get("CI"):
            raise AssertionError("chromium and chromium-driver are not installed (scripts/setup.sh installs them)")
        pytest.skip("chromium and chromium-driver are not installed (scripts/setup.sh installs them)")
    return chrome, driver


#: Merged into the cluster's querier section: every query of 1 ms or more is slow (the Cluster page's test).
UI_QUERIER = {"slow_query_threshold": "1ms", "slow_query_log_size": 50}


@pytest.fixture(scope="session")
def ui_cluster(tmp_path_factory):
    """A whole local cluster from one config, scraping the demo targets and one target that is down; one for
    every browser test module (tests/integration/conftest.py registers it: starting one costs ~10 s)."""
    from tests.native_hist_target import NativeHistogramTarget

    tmp = tmp_path_factory.mktemp("ui")
    raw = up_config(tmp, INTERVAL_S)
    raw["querier"].update(UI_QUERIER)
    raw["ingest"]["native_histograms"] = True
    native = NativeHistogramTarget().start()
    down = f"127.0.0.1:{free_port()}"
    raw["scrape_configs"] = [
        {"job_name": "demo", "static_configs": [{"targets": raw["local"]["demo_targets"], "labels": {"env": "demo"}}]},
        # A down target, a discovered one relabeling drops, and a secret that no page or API may show.
        {"job_name": "broken", "static_configs": [{"targets": [down, DROPPED]}],
         "relabel_configs": [{"source_labels": ["__address__"], "regex": DROPPED, "action": "drop"}],
         "basic_auth": {"username": "ui", "password": SECRET}},
        {"job_name": "native", "static_configs": [{"targets": [native.address]}]},
    ]
    raw["global"]["evaluation_interval"] = f"{INTERVAL_S}s"
    (tmp / "rules.yml").write_text(yaml.safe_dump(RULES, sort_keys=False))
    raw["rule_files"] = [str(tmp / "rules.yml")]
    raw["rules"] = {"http_address": f"127.0.0.1:{free_port()}"}
    cfg = tmp / "shardmon.yml"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    up = shardmon_up(cfg, tmp / "up.log")
    try:
        up.up(120)
    except BaseException:
        native.stop()
        raise
    url = f"http://{raw['querier']['http_address']}"
    try:
        from tests.integration.httpapi import get_json

        def scraped():
            res = get_json(f"{url}/api/v1/query?query=up")["data"]["result"]
            return len(res) >= 5 and res  # 3 demo targets, the broken one, the native one (and self-monitoring)

        wait_until(scraped, 60, "every target scraped once", interval_s=0.5)
        yield {"url": url, "raw": raw, "config": cfg, "down": down, "tmp": tmp, "native": native.address}
    finally:
        up.stop()
        native.stop()


@pytest.fixture(scope="session")
def browser():
    chrome, driver = _chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,900", "--no-first-run", "--disable-extensions"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = webdriver.Chrome(service=Service(driver), options=opts)
    drv.set_page_load_timeout(30)
    try:
        yield drv
    finally:
        drv.quit()


def console_errors(drv) -> list[str]:
    """The console's SEVERE entries since the last call (uncaught exceptions, failed requests)."""
    return [e["message"] for e in drv.get_log("browser") if e.get("level") == "SEVERE"]


def open_page(drv, url: str, *, ready_css: str = "main#app > *", timeout_s: float = 20) -> list[str]:
    """Load ``url``, wait until ``ready_css`` matches (the page's script rendered), return console errors."""
    from selenium.webdriver.common.by import By

    console_errors(drv)  # drop what an earlier page left
    drv.get(url)
    wait_until(lambda: drv.find_elements(By.CSS_SELECTOR, ready_css), timeout_s, f"{ready_css} on {url}",
               interval_s=0.1)
    time.sleep(0.3)  # the page's first API calls settle
    return console_errors(drv)


def screenshot(drv, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    drv.save_screenshot(str(path))
    return path


__all__ = ["ARTIFACTS", "DROPPED", "SECRET", "browser", "console_errors", "open_page", "screenshot", "ui_cluster"]
