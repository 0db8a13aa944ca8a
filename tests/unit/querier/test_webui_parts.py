"""The web UI's shell loads a page's parts (``PAGE_PARTS``) before the page's own script, and every part exists."""

from __future__ import annotations

from shardmon.querier.webui import PAGE_PARTS, PAGES, STATIC, shell


def test_the_parts_load_in_order_before_the_page_script():
    html = shell("/graph")
    order = [html.index(f'src="/static/pages/{part}"') for part in PAGE_PARTS["graph"]]
    assert order == sorted(order)
    assert order[-1] < html.index('src="/static/pages/graph.js"')
    assert html.index('src="/static/common.js"') < order[0]


def test_every_part_is_a_file_of_a_known_page():
    pages = {page for page, _, _ in PAGES.values()}
    for page, parts in PAGE_PARTS.items():
        assert page in pages
        for part in parts:
            assert (STATIC / "pages" / part).is_file(), part
