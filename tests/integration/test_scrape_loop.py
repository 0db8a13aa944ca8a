"""One scrape loop against a real HTTP target, writing to an in-memory storage."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from shardmon.ingest.scrape_loop import ScrapeLoop
from shardmon.ingest.target import Target
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import is_stale
from tests.integration.procs import free_port


class Body:
    """What the target serves next: text and status."""

    def __init__(self) -> None:
        self.text = ""
        self.status = 200


def _target(port: int, **kw) -> Target:
    labels = Labels.from_dict({"job": "app", "instance": f"127.0.0.1:{port}", "team": "core"})
    args = dict(job="app", url=f"http://127.0.0.1:{port}/metrics", labels=labels, interval_ms=1000,
                timeout_ms=1000, honor_labels=False, honor_timestamps=True)
    args.update(kw)
    return Target(**args)


def _series(st: MemoryStorage, name: str):
    return {s.labels: s for s in st.select([Matcher(MatchType.EQ, "__name__", name)], 0, 2**62).series}


def _scrapes(body: Body, steps, end_of_run: bool = False, **target_kw):
    """Run one scrape per step (each step sets body.text/status first); return storage and healths.
    With ``end_of_run``, wait for the staleness markers of the stopped loop."""

    async def main():
        port = free_port()

        async def handler(request):
            return web.Response(text=body.text, status=body.status, content_type="text/plain")

        app = web.Application()
        app.router.add_get("/metrics", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        st = MemoryStorage()
        healths = []
        async with aiohttp.ClientSession() as session:
            loop = ScrapeLoop(_target(port, **target_kw), st, session)
            for step in steps:
                step()
                healths.append(await loop.scrape_once())
                await asyncio.sleep(0.01)
            await loop.stop(mark_stale=True)
            if end_of_run:
                await loop.end_of_run
        await runner.cleanup()
        return st, healths, port

    return asyncio.run(main())


def test_a_scrape_stores_samples_with_target_labels_and_the_synthetic_series():
    body = Body()

    def serve():
        body.text = '# TYPE http_requests_total counter\nhttp_requests_total{code="200"} 7\nmem_bytes 1.5e3\n'

    st, (h,), port = _scrapes(body, [serve])
    assert h.health == "up" and h.last_error == "" and h.samples == 2
    (req,) = _series(st, "http_requests_total").values()
    assert req.labels == Labels.from_dict({"__name__": "http_requests_total", "code": "200", "job": "app",
                                            "instance": f"127.0.0.1:{port}", "team": "core"})
    assert req.values[0] == 7
    (up,) = _series(st, "up").values()
    assert up.values[0] == 1 and up.timestamps_ms[0] == req.timestamps_ms[0]
    assert next(iter(_series(st, "scrape_samples_scraped").values())).values[0] == 2
    assert next(iter(_series(st, "scrape_samples_post_metric_relabeling").values())).values[0] == 2
    assert 0 < next(iter(_series(st, "scrape_duration_seconds").values())).values[0] < 1


def test_conflicting_target_labels_are_renamed_exported_unless_honor_labels():
    body = Body()

    def serve():
        body.text = 'jobs_running{job="batch",instance="other"} 3\n'

    st, _, port = _scrapes(body, [serve])
    (s,) = _series(st, "jobs_running")
    assert s.get("job") == "app" and s.get("exported_job") == "batch"
    assert s.get("instance") == f"127.0.0.1:{port}" and s.get("exported_instance") == "other"

    st, _, _ = _scrapes(body, [serve], honor_labels=True)
    (s,) = _series(st, "jobs_running")
    assert s.get("job") == "batch" and s.get("instance") == "other" and not s.get("exported_job")


def test_exposed_timestamps_are_honoured_unless_told_otherwise():
    body = Body()

    def serve():
        body.text = "m 1 1700000000123\n"

    st, _, _ = _scrapes(body, [serve])
    assert next(iter(_series(st, "m").values())).timestamps_ms[0] == 1700000000123
    st, _, _ = _scrapes(body, [serve], honor_timestamps=False)
    assert next(iter(_series(st, "m").values())).timestamps_ms[0] > 1700000000123 + 10**9


def test_a_vanished_series_and_a_failed_scrape_end_series_with_staleness_markers():
    body = Body()
    steps = [
        lambda: setattr(body, "text", "a 1\nb 1\n"),
        lambda: setattr(body, "text", "a 2\n"),  # b vanished
        lambda: setattr(body, "status", 500),  # the target fails
    ]
    st, healths, _ = _scrapes(body, steps, end_of_run=True, interval_ms=300, timeout_ms=300)
    assert [h.health for h in healths] == ["up", "up", "down"]
    assert healths[2].last_error == "server returned HTTP status 500 Internal Server Error"
    (a,) = _series(st, "a").values()
    (b,) = _series(st, "b").values()
    assert b.values[0] == 1 and is_stale(b.values[1:2]).all() and b.timestamps_ms[1] == healths[1].last_scrape_ms
    assert a.values[:2].tolist() == [1, 2] and is_stale(a.values[2:3]).all()
    (up,) = _series(st, "up").values()
    assert up.values[:3].tolist() == [1, 1, 0]
    # Stopping the loop ends its synthetic series too, at the time the next scrape would have been: the next
    # point of the target's 300 ms grid after the last scrape (whose own start may lag or lead its grid point
    # by a few ms under load, so "within one interval" is checked as "before a second one").
    assert is_stale(up.values[-1:]).all() and up.values.shape[0] == 4
    assert 0 < up.timestamps_ms[-1] - healths[2].last_scrape_ms < 2 * 300


def test_a_malformed_body_marks_the_target_down_with_the_line():
    body = Body()

    def serve():
        body.text = "ok 1\nbad{ 2\n"

    st, (h,), _ = _scrapes(body, [serve])
    assert h.health == "down" and h.last_error.startswith("line 2:")
    assert not _series(st, "ok")
    (up,) = _series(st, "up").values()
    assert up.values[0] == 0
    # As Prometheus 2.42: the sample before the bad line is counted as scraped, though none is stored.
    assert next(iter(_series(st, "scrape_samples_scraped").values())).values[0] == 1


def test_series_churn_that_renumbers_the_cache_still_ends_the_vanished_series():
    body = Body()
    steps = [
        lambda: setattr(body, "text", "".join(f"a_{i} 1\n" for i in range(1500)) + "keep 1\n"),
        lambda: setattr(body, "text", "keep 2\nb_1 1\nb_2 1\n"),  # the parser cache compacts here
        lambda: setattr(body, "text", "keep 3\nb_1 2\nb_2 2\n"),
    ]
    st, healths, _ = _scrapes(body, steps)
    assert all(h.health == "up" for h in healths)
    for name in ("a_0", "a_777", "a_1499"):
        (a,) = _series(st, name).values()
        assert a.values[0] == 1 and is_stale(a.values[1:2]).all() and a.timestamps_ms[1] == healths[1].last_scrape_ms
        assert a.values.shape[0] == 2  # Ended once; stopping the loop ends only the last scrape's series.
    (keep,) = _series(st, "keep").values()
    assert keep.values[:3].tolist() == [1, 2, 3]
    (b,) = _series(st, "b_1").values()
    assert b.values[:2].tolist() == [1, 2] and is_stale(b.values[2:]).all()


def test_an_exposed_empty_instance_with_honor_labels_means_no_instance_label():
    # What a Pushgateway exposes for a group pushed without an instance.
    body = Body()

    def serve():
        body.text = 'pushed{instance="",job="batch"} 1\n'

    st, _, _ = _scrapes(body, [serve], honor_labels=True)
    (s,) = _series(st, "pushed")
    assert s == Labels.from_dict({"__name__": "pushed", "job": "batch", "team": "core"})
    st, _, port = _scrapes(body, [serve])
    (s,) = _series(st, "pushed")
    assert s.get("instance") == f"127.0.0.1:{port}" and s.get("exported_job") == "batch" and not s.get("exported_instance")
