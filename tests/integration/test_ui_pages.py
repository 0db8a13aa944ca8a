"""Every page of the web UI loads in a real browser without console errors (tests/integration/ui_browser.py),
and its screenshot is saved as a test artifact."""

from __future__ import annotations

import pytest

from shardmon.querier.webui import PAGES
from tests.integration.ui_browser import open_page, screenshot


@pytest.mark.parametrize("path", list(PAGES))
def test_every_page_loads_without_console_errors(ui_cluster, browser, path):
    errors = open_page(browser, ui_cluster["url"] + path)
    assert not errors, errors
    screenshot(browser, path.strip("/"))


def test_the_root_opens_the_query_page(ui_cluster, browser):
    open_page(browser, ui_cluster["url"] + "/")
    assert browser.current_url.endswith("/graph")
