"""Built-in demo targets: small HTTP servers exposing realistic metrics, so a new cluster has data.

Each address serves ``/metrics`` with request counters by method and code (steady rates, so
``rate()`` has something to show), an in-flight gauge, a temperature that drifts, and a latency
histogram. Values are functions of time, so restarts do not disturb the rates much. One counter,
``demo_scrapes_total``, counts the scrapes the target has served: each stored scrape is the previous
one plus one, so a lost or doubled scrape shows (tests/compose/run checks it across a shard's SIGKILL).
"""

from __future__ import annotations

import asyncio
import math
import time

from aiohttp import web

from shardmon.model.shutdown import wait_until_stopped

_ROUTES = (("GET", "200", 12.0), ("GET", "404", 0.5), ("POST", "200", 3.0), ("POST", "500", 0.2))
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


def render(instance: int, now: float, scrapes: int = 0) -> str:
    """The exposition text of demo instance ``instance`` at time ``now`` (seconds), its ``scrapes``-th scrape."""
    lines = [
        "# HELP demo_scrapes_total Scrapes of this target served since it started.",
        "# TYPE demo_scrapes_total counter",
        f"demo_scrapes_total {scrapes}",
        "# HELP demo_http_requests_total Requests handled, by method and status code.",
        "# TYPE demo_http_requests_total counter",
    ]
    scale = 1 + 0.25 * instance
    for method, code, rate in _ROUTES:
        lines.append(f'demo_http_requests_total{{method="{method}",code="{code}"}} {math.floor(now * rate * scale)}')
    lines += [
        "# HELP demo_http_requests_in_flight Requests being served.",
        "# TYPE demo_http_requests_in_flight gauge",
        f"demo_http_requests_in_flight {int(3 + 2 * math.sin(now / 30 + instance))}",
        "# HELP demo_temperature_celsius Temperature of the demo machine room.",
        "# TYPE demo_temperature_celsius gauge",
        f"demo_temperature_celsius {21 + 3 * math.sin(now / 600 + instance):.2f}",
        "# HELP demo_http_request_duration_seconds Request latency.",
        "# TYPE demo_http_request_duration_seconds histogram",
    ]
    total = now * 15.7 * scale
    cumulative = 0.0
    for i, le in enumerate(_BUCKETS):
        cumulative = total * (1 - math.exp(-(i + 1) / 2.5))
        lines.append(f'demo_http_request_duration_seconds_bucket{{le="{le}"}} {math.floor(cumulative)}')
    lines.append(f'demo_http_request_duration_seconds_bucket{{le="+Inf"}} {math.floor(total)}')
    lines.append(f"demo_http_request_duration_seconds_sum {total * 0.042:.3f}")
    lines.append(f"demo_http_request_duration_seconds_count {math.floor(total)}")
    return "\n".join(lines) + "\n"


async def serve(addresses: list[str], *, stop: asyncio.Event | None = None) -> None:
    """Serve a demo target on each ``host:port`` until ``stop`` is set (or SIGTERM/SIGINT)."""
    runners = []
    scrapes = [0] * len(addresses)
    for i, address in enumerate(addresses):
        async def handler(request: web.Request, i: int = i) -> web.Response:
            scrapes[i] += 1
            return web.Response(
                body=render(i, time.time(), scrapes[i]).encode(),
                headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"},
            )

        app = web.Application()
        app.router.add_get("/metrics", handler)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        host, port = address.rsplit(":", 1)
        await web.TCPSite(runner, host, int(port)).start()
        runners.append(runner)
    await wait_until_stopped(stop)
    for r in runners:
        await r.cleanup()
