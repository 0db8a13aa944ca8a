"""The web UI for people, served by the querier at ``/`` (issue 17): one HTML shell per page and the static
assets under ``/static/`` (``static/``: ``common.js`` shared by every page, ``pages/<page>.js`` one per
page, ``style.css``, ``vendor/`` the vendored uPlot build). Every page works through the same HTTP APIs
clients use, behind the querier's TLS and authentication; the page makes no request outside Shardmon.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from aiohttp import web

STATIC = Path(__file__).parent / "static"

#: path -> (page script name, title, nav label); the order is the navigation bar's.
PAGES = {
    "/graph": ("graph", "Query", "Query"),
    "/alerts": ("alerts", "Alerts", "Alerts"),
    "/rules": ("rules", "Rules", "Rules"),
    "/targets": ("targets", "Targets", "Targets"),
    "/service-discovery": ("service-discovery", "Service discovery", "Service discovery"),
    "/tsdb-status": ("tsdb-status", "Cardinality", "Cardinality"),
    "/cluster": ("cluster", "Cluster", "Cluster"),
    "/status": ("status", "Status", "Status"),
}

#: page script name -> the scripts (under ``static/pages/``) it needs, loaded before it in this order.
PAGE_PARTS = {
    "graph": ["graph/params.js", "graph/complete.js", "graph/histogram.js", "graph/table.js", "graph/chart.js",
              "graph/panel.js"],
}


def shell(path: str) -> str:
    """The HTML of the page at ``path``: the navigation, an empty ``<main id="app">`` its script fills."""
    page, title, _ = PAGES[path]
    parts = "".join(f'<script src="/static/pages/{part}"></script>\n' for part in PAGE_PARTS.get(page, ()))
    active = ' class="active"'
    nav = "".join(f'<a href="{p}"{active if p == path else ""}>{escape(label)}</a>'
                  for p, (_, _, label) in PAGES.items())
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)} - Shardmon</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/vendor/uPlot.min.css">
<link rel="stylesheet" href="/static/style.css">
</head>
<body data-page="{page}">
<header><a class="brand" href="/graph">Shardmon</a><nav>{nav}</nav></header>
<main id="app"></main>
<script src="/static/vendor/uPlot.iife.min.js"></script>
<script src="/static/common.js"></script>
{parts}<script src="/static/pages/{page}.js"></script>
</body>
</html>
"""


def add_routes(app: web.Application) -> None:
    """The UI's routes: ``/`` (to ``/graph``, as Prometheus), each page, ``/static/``."""

    async def root(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/graph" + (f"?{request.query_string}" if request.query_string else ""))

    def page(path: str):
        text = shell(path)

        async def handler(request: web.Request) -> web.Response:
            return web.Response(text=text, content_type="text/html")

        return handler

    app.router.add_get("/", root)
    for path in PAGES:
        app.router.add_get(path, page(path))
    app.router.add_static("/static/", STATIC, append_version=False)


__all__ = ["PAGES", "PAGE_PARTS", "STATIC", "add_routes", "shell"]
