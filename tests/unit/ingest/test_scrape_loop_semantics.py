"""What a scrape stores, as Prometheus 2.42 would: synthetic series, limits, repeats, staleness, relabeling.

The scrape loop runs for real on a target made from a real ``scrape_configs`` entry; only the HTTP fetch
is replaced by the body of each step, and samples go to an in-memory storage. Where a test states a
Prometheus behaviour, it was checked on a real Prometheus 2.42 scraping the same bodies, and most are
checked again on every run by ``tests/integration/test_scrape_vs_prometheus.py``: e.g. a repeated series
keeps its first sample, a failed scrape reports the samples counted before the failure, a series exposed
with its own timestamp gets no staleness marker when it vanishes.

Known difference: two spellings of one series in one scrape (``b{x="1",y="2"}`` and ``b{y="2",x="1"}``)
count as two in Prometheus's ``scrape_series_added`` (its cache is keyed by the text) and as one here.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time

import numpy as np
import pytest

from shardmon.ingest import metrics
from shardmon.ingest.scrape_http import timeout_header
from shardmon.ingest.scrape_loop import NORMAL_NAN, ScrapeLoop
from shardmon.ingest.target import Target, targets_from_config
from shardmon.ingest.target_series import attach_target_labels
from shardmon.model.config import parse_config
from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.memory import MemoryStorage
from shardmon.model.samples import is_stale

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OM = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def target_of(extra: str = "", address: str = "h:1") -> Target:
    (t,) = targets_from_config(parse_config(f"""
scrape_configs:
  - job_name: app
    scrape_interval: 1s
    static_configs: [{{targets: ["{address}"]}}]
{extra}
"""))
    return t


class Harness:
    """A scrape loop whose fetch returns the body set for the step."""

    def __init__(self, extra: str = "", target: Target | None = None) -> None:
        self.storage = MemoryStorage()
        self.loop = ScrapeLoop(target or target_of(extra), self.storage, session=None)  # type: ignore[arg-type]
        self.body, self.ct, self.fetches = b"", TEXT, 0
        self.loop._fetch = self._fetch  # type: ignore[method-assign]
        self.aio = asyncio.new_event_loop()

    async def _fetch(self):
        self.fetches += 1
        return self.body, self.ct

    def scrape(self, body: str | bytes, ct: str = TEXT):
        time.sleep(0.002)  # Scrapes in one millisecond would share their timestamps.
        self.body, self.ct = body.encode() if isinstance(body, str) else body, ct
        return self.aio.run_until_complete(self.loop.scrape_once())

    def series(self, name: str) -> dict[Labels, tuple[list[int], list[float]]]:
        found = self.storage.select([Matcher(MatchType.EQ, "__name__", name)], -(2**62), 2**62).series
        return {s.labels: (s.timestamps_ms.tolist(), s.values.tolist()) for s in found}

    def values(self, name: str, **labels: str) -> list[float]:
        """The values of the one series named ``name`` (with these labels), staleness markers as "stale"."""
        matching = [v for k, (_, v) in self.series(name).items() if all(k.get(n) == x for n, x in labels.items())]
        assert len(matching) == 1, (name, labels, self.series(name))
        return ["stale" if is_stale(np.array([x])).all() else x for x in matching[0]]

    def report(self) -> list[tuple]:
        """Per scrape: (up, scraped, post relabeling, series added)."""
        names = ("up", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling", "scrape_series_added")
        cols = [self.values(n) for n in names]
        return list(zip(*cols))

    def close(self) -> None:
        self.aio.close()


@pytest.fixture
def harness():
    made: list[Harness] = []

    def make(extra: str = "", **kw) -> Harness:
        h = Harness(extra, **kw)
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


# --- the synthetic series ---------------------------------------------------------------------------


def test_every_scrape_reports_five_synthetic_series_and_series_added_counts_series_new_since_the_last_scrape(harness):
    h = harness()
    for body in ("a 1\nb 1\n", "a 1\nb 1\n", "a 1\nc 1\n", "a 1\nc 1\n"):
        assert h.scrape(body).health == "up"
    assert h.report() == [(1, 2, 2, 2), (1, 2, 2, 0), (1, 2, 2, 1), (1, 2, 2, 0)]  # as 2.42
    assert h.values("b") == [1, 1, "stale"]
    (duration,) = h.series("scrape_duration_seconds").values()
    assert all(0 <= d < 1 for d in duration[1])
    (up,) = h.series("up")
    assert up == Labels.from_dict({"__name__": "up", "job": "app", "instance": "h:1"})


def test_a_series_back_after_a_gap_counts_as_added_again(harness):
    h = harness()
    for body in ("a 1\nb 1\n", "a 1\n", "a 1\nb 1\n"):
        h.scrape(body)
    assert [r[3] for r in h.report()] == [2, 0, 1]


# --- repeats within one scrape -------------------------------------------------------------------------


def test_a_series_repeated_in_one_scrape_keeps_its_first_sample_and_the_scrape_succeeds(harness):
    h = harness()
    before = metrics.DUPLICATE_SAMPLES._value.get()
    # Two spellings of one series are one series too. Checked on 2.42: a=1, b=3, up=1, 4 samples scraped.
    assert h.scrape('a 1\na 2\nb{x="1",y="2"} 3\nb{y="2",x="1"} 4\n').health == "up"
    assert h.values("a") == [1] and h.values("b") == [3]
    assert h.report()[0][:3] == (1, 4, 4)
    assert metrics.DUPLICATE_SAMPLES._value.get() - before == 2


def test_repeats_with_their_own_timestamps_keep_the_first_of_each_timestamp(harness):
    h = harness()
    h.scrape("a 1 1000\na 2 1000\na 3 2000\n")
    assert h.series("a")[next(iter(h.series("a")))] == ([1000, 2000], [1.0, 3.0])


def test_an_exposed_series_named_like_a_synthetic_one_wins_over_it(harness):
    h = harness()
    h.scrape("up 7\n")  # Checked on 2.42: up is 7 (the exposed sample comes first).
    assert h.values("up") == [7]


def test_series_that_relabeling_makes_one_keep_the_first_sample(harness):
    h = harness("""    metric_relabel_configs:
      - {action: labeldrop, regex: x}
""")
    h.scrape('a{x="1"} 1\na{x="2"} 2\n')
    assert h.values("a") == [1]


# --- staleness ----------------------------------------------------------------------------------------


def test_a_series_with_its_own_timestamp_gets_no_staleness_marker_when_it_vanishes(harness):
    h = harness()
    h.scrape("a 1\nb 1 5000\n")
    h.scrape("a 1\n")
    assert h.values("b") == [1]  # checked on 2.42
    h = harness("    honor_timestamps: false\n")
    h.scrape("a 1\nb 1 5000\n")
    h.scrape("a 1\n")
    assert h.values("b") == [1, "stale"]  # without honor_timestamps the timestamp is ignored, so it is tracked


def test_a_series_that_comes_with_a_timestamp_after_one_without_is_marked_stale(harness):
    h = harness()
    h.scrape("b 1\n")
    h.scrape("b 2 5000\n")  # checked on 2.42: the series is stale at the scrape's time
    ts, values = h.series("b")[next(iter(h.series("b")))]
    assert values[0] == 2 and ts[0] == 5000 and is_stale(np.array(values[-1:])).all()


def test_a_failed_scrape_ends_every_series_and_the_next_good_one_starts_them_again(harness):
    h = harness()
    h.scrape("a 1\nb 1\n")
    h.scrape("a 1\nbad{ 1\n")
    h.scrape("a 3\n")
    assert h.values("a") == [1, "stale", 3] and h.values("b") == [1, "stale"]
    assert h.report() == [(1, 2, 2, 2), (0, 1, 1, 0), (1, 1, 1, 0)]


def test_a_stopped_loop_ends_its_series_where_the_next_scrape_would_have_been_one_interval_later():
    storage = MemoryStorage()
    target = target_of()._replace(interval_ms=200, timeout_ms=200)
    loop = ScrapeLoop(target, storage, session=None)  # type: ignore[arg-type]

    async def fetch():
        return b"a 1\n", TEXT

    loop._fetch = fetch  # type: ignore[method-assign]

    async def main():
        health = await loop.scrape_once()
        await loop.stop(mark_stale=True)
        written_at = asyncio.get_running_loop().time()
        assert not is_stale(storage.select([Matcher(MatchType.EQ, "__name__", "a")], 0, 2**62).series[0].values).any()
        await loop.end_of_run
        return health, asyncio.get_running_loop().time() - written_at

    health, waited = asyncio.run(main())
    (a,) = storage.select([Matcher(MatchType.EQ, "__name__", "a")], 0, 2**62).series
    assert is_stale(a.values[-1:]).all()
    stale_ms = int(a.timestamps_ms[-1])
    assert stale_ms == loop.next_scrape_ms(health.last_scrape_ms + 1)  # the next point of the target's grid
    assert 0.2 <= waited <= 0.65  # written one interval and a tenth after that point
    for name in ("up", "scrape_series_added"):
        (s,) = storage.select([Matcher(MatchType.EQ, "__name__", name)], 0, 2**62).series
        assert is_stale(s.values[-1:]).all() and s.timestamps_ms[-1] == stale_ms


def test_a_loop_that_never_scraped_writes_no_markers():
    loop = ScrapeLoop(target_of(), MemoryStorage(), session=None)  # type: ignore[arg-type]
    asyncio.run(loop.stop(mark_stale=True))
    assert loop.end_of_run is None


# --- limits -------------------------------------------------------------------------------------------


def test_over_sample_limit_the_whole_scrape_fails_and_only_the_synthetic_series_are_stored(harness):
    h = harness("    sample_limit: 2\n")
    assert h.scrape("a 1\nb 1\n").health == "up"
    health = h.scrape("a 2\nb 2\nc 2\n")
    assert (health.health, health.last_error) == ("down", "sample limit exceeded")
    assert h.series("c") == {} and h.values("a") == [1, "stale"]
    assert h.report() == [(1, 2, 2, 2), (0, 3, 3, 0)]  # as 2.42


def test_sample_limit_counts_samples_after_metric_relabeling(harness):
    h = harness("""    sample_limit: 2
    metric_relabel_configs:
      - {source_labels: [__name__], regex: c, action: drop}
""")
    assert h.scrape("a 1\nb 1\nc 1\n").health == "up"  # checked on 2.42
    assert h.report() == [(1, 3, 2, 2)] and h.series("c") == {}


@pytest.mark.parametrize("extra, body, error", [
    # The messages are Prometheus 2.42's; the target adds job and instance, __name__ counts.
    ("label_limit: 4", 'a{x="1",y="2"} 1\n', "label_limit exceeded (metric: a, number of labels: 5, limit: 4)"),
    ("label_name_length_limit: 8", 'a{long_name="1"} 1\n',
     "label_name_length_limit exceeded (metric: a, label name: long_name, length: 9, limit: 8)"),
    ("label_value_length_limit: 3", 'a{x="long"} 1\n',
     'label_value_length_limit exceeded (metric: a, label name: x, value: "long", length: 4, limit: 3)'),
])
def test_a_series_over_a_label_limit_fails_the_scrape_with_prometheus_words(harness, extra, body, error):
    h = harness(f"    {extra}\n")
    health = h.scrape("ok 1\n" + body + "later 1\n")
    assert (health.health, health.last_error) == ("down", error)
    assert h.series("ok") == {} and h.report() == [(0, 2, 1, 1)]  # as 2.42: counted up to the bad series


def test_a_label_value_limit_counts_bytes_and_quotes_as_go(harness):
    h = harness("    label_value_length_limit: 20\n")
    health = h.scrape('a{x="\\"é\\"\\tabcdefghijklmnop"} 1\n')
    # \t is no escape in the text format: a backslash and a t, which Go's %q writes as \\t; é is two bytes.
    assert 'value: "\\"é\\"\\\\tabcdefghijklmnop", length: 22, limit: 20' in health.last_error


def test_a_series_relabeled_without_a_name_fails_the_scrape(harness):
    h = harness("""    metric_relabel_configs:
      - {action: labeldrop, regex: __name__}
""")
    assert h.scrape("a 1\n").last_error == "missing metric name (__name__ label)"


def test_target_limit_fails_every_target_without_fetching():
    (t1, t2) = targets_from_config(parse_config("""
scrape_configs:
  - job_name: app
    target_limit: 1
    static_configs: [{targets: ["h:1", "h:2"]}]
"""))
    assert t1.error == t2.error == "target_limit exceeded (number of targets: 2, limit: 1)"  # 2.42 words
    h = Harness(target=t1)
    try:
        assert h.scrape("a 1\n").last_error == t1.error and h.fetches == 0
        assert h.report() == [(0, 0, 0, 0)]
    finally:
        h.close()


# --- labels -------------------------------------------------------------------------------------------


def test_conflicting_labels_are_exported_once_or_more_as_prometheus_does():
    t = target_of()
    # As the parser makes it: an empty value is kept (with honor_labels it stops the target's label).
    exposed = Labels(sorted({"__name__": "m", "job": "x", "exported_job": "y", "instance": ""}.items()))
    assert attach_target_labels(exposed, t) == Labels.from_dict(
        {"__name__": "m", "job": "app", "instance": "h:1", "exported_job": "y", "exported_exported_job": "x"})
    honored = attach_target_labels(exposed, t._replace(honor_labels=True))
    assert honored == Labels.from_dict({"__name__": "m", "job": "x", "exported_job": "y"})


def test_metric_relabeling_runs_once_per_new_series_not_per_sample(harness):
    h = harness("""    metric_relabel_configs:
      - {source_labels: [__name__], regex: "(.*)_total", target_label: __name__, replacement: "${1}_count"}
      - {source_labels: [__name__], regex: drop_me, action: drop}
""")
    calls = []
    relabel = h.loop._table.relabeler

    def counting(labels):
        calls.append(labels)
        return relabel(labels)

    h.loop._table.relabeler = counting
    for value in (1, 2, 3):
        h.scrape(f"req_total {value}\ndrop_me {value}\n")
    assert h.values("req_count") == [1, 2, 3] and h.series("drop_me") == {} and h.series("req_total") == {}
    assert len(calls) == 2
    assert h.report()[-1] == (1, 2, 1, 0)


# --- formats ------------------------------------------------------------------------------------------


def test_the_content_type_picks_the_parser(harness):
    h = harness()
    om_body = "# TYPE foo counter\nfoo_total 1 # {t=\"x\"} 2\nfoo_created 1.5\n# EOF\n"
    assert h.scrape(om_body, OM).health == "up"
    assert h.values("foo_total") == [1] and h.values("foo_created") == [1.5]
    assert h.scrape("a 1\n", OM).last_error == "line 2: data does not end with # EOF"
    assert h.scrape("a 1\n# EOF\n", TEXT).health == "up"  # a comment in the text format
    assert h.scrape("a 1\n", "application/openmetrics-text").last_error.endswith("does not end with # EOF")
    assert h.scrape("a 1\n", "Application/OpenMetrics-Text; version=0.0.1").last_error.endswith("with # EOF")
    assert h.scrape("a 1\n", "").health == "up"
    pb = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
    assert h.scrape(b"\x00", pb).health == "up"  # one empty metric family, as Prometheus 2.53 reads it
    assert h.scrape(b"\x05ab", pb).last_error == ("metric family 1 (byte 0): protobufparse: insufficient length of "
                                                   "buffer, expected at least 6 bytes, got 3 bytes")


def test_a_target_switching_formats_keeps_its_series_going(harness):
    h = harness()
    h.scrape("a 1\nb 1\n")
    h.scrape("a 2\n# EOF\n", OM)
    assert h.values("a") == [1, 2] and h.values("b") == [1, "stale"]


def test_exposed_nan_is_stored_as_prometheus_normal_nan(harness):
    h = harness()
    h.scrape("a NaN\n")
    (value,) = h.values("a")
    assert math.isnan(value) and struct.pack("<d", value) == struct.pack("<d", NORMAL_NAN)


def test_metadata_travels_with_units(harness):
    h = harness()
    sent = []
    h.storage.append_metadata = sent.extend  # type: ignore[attr-defined]
    h.scrape("# TYPE u_seconds gauge\n# UNIT u_seconds seconds\n# HELP u_seconds Time.\nu_seconds 1\n"
             "# TYPE i info\ni_info 1\n# EOF\n", OM)
    assert sent == [("i", "info", "", ""), ("u_seconds", "gauge", "Time.", "seconds")]


def test_the_timeout_header_is_written_as_go_writes_seconds():
    assert [timeout_header(ms) for ms in (10_000, 1500, 250, 1, 60_000)] == ["10", "1.5", "0.25", "0.001", "60"]


class InOrderStorage(MemoryStorage):
    """Refuses samples not newer than a series' latest, as the shards (and Prometheus's head) do."""

    def __init__(self) -> None:
        super().__init__()
        self.latest: dict[bytes, int] = {}
        self.refused = 0

    def append(self, batch):
        keys = batch.series.keys()
        keep = np.ones(batch.num_samples, bool)
        for j, (ref, ts) in enumerate(zip(batch.sample_series.tolist(), batch.timestamps_ms.tolist())):
            if ts <= self.latest.get(keys[ref], -(2**63)):
                keep[j] = False
                self.refused += 1
            else:
                self.latest[keys[ref]] = ts
        super().append(batch._replace(sample_series=batch.sample_series[keep], timestamps_ms=batch.timestamps_ms[keep],
                                      values=batch.values[keep]))


@pytest.mark.parametrize("moved", [True, False])
def test_a_target_moved_to_another_loop_goes_on_without_a_gap_and_a_removed_one_ends(moved):
    storage = InOrderStorage()
    target = target_of()._replace(interval_ms=200, timeout_ms=200)

    async def fetch():
        return b"a 1\n", TEXT

    async def main():
        old = ScrapeLoop(target, storage, session=None)  # type: ignore[arg-type]
        old._fetch = fetch  # type: ignore[method-assign]
        old.start()
        await asyncio.sleep(0.5)
        await old.stop(mark_stale=True)  # as a scraper does when the target is assigned elsewhere
        new = None
        if moved:  # The other scraper's loop starts at once and keeps the target's phase.
            new = ScrapeLoop(target, storage, session=None)  # type: ignore[arg-type]
            new._fetch = fetch  # type: ignore[method-assign]
            new.start()
        await old.end_of_run
        await asyncio.sleep(0.1)
        if new is not None:
            await new.stop(mark_stale=False)

    asyncio.run(main())
    (a,) = storage.select([Matcher(MatchType.EQ, "__name__", "a")], 0, 2**62).series
    (up,) = storage.select([Matcher(MatchType.EQ, "__name__", "up")], 0, 2**62).series
    if moved:  # The old loop's markers came too late and too old: refused, the series never looked stale.
        assert not is_stale(a.values).any() and not is_stale(up.values).any() and storage.refused >= 2
        assert np.all(np.diff(a.timestamps_ms) <= 300)  # one sample per interval, no hole where the move was
    else:
        assert is_stale(a.values[-1:]).all() and is_stale(up.values[-1:]).all() and storage.refused == 0
