"""Cost of parsing one scrape body: the exposition parsers on a typical 1,000-series target.

    .venv/bin/python -m bench.parsebench [--series 1000] [--rounds 200]

The body is a farm target's (:mod:`bench.farm`: node_exporter-like series, HTTP counters, classic
histograms, ``# HELP``/``# TYPE`` per family). Each case parses ``--rounds`` bodies, each with new
values (as consecutive scrapes), and prints the best of three runs per body and per series:

- ``text, cold cache``: a new series cache per body (a target's first scrape: every line is lexed);
- ``text, steady``: one cache, bodies that differ only in their values (the value-only fast path);
- ``text, known series, layout changed``: one cache, every other body with one more line (series all
  known, so looked up in bulk, but the value-only path cannot vouch for the layout);
- ``text, with timestamps``: one cache, every line with a timestamp (federation, cAdvisor);
- ``openmetrics, steady``: as ``text, steady`` for the OpenMetrics body (``# EOF`` added);
- ``backfill reader``: the OpenMetrics backfill reader (``shardmon import``) over ``--rounds`` scrapes
  with timestamps in one file, per scrape.

Figures are only comparable within one run on one machine.
"""

from __future__ import annotations

import argparse
import io
import timeit
from collections.abc import Callable

from bench.farm import ORIGIN_S, Target, target_series
from shardmon.ingest.backfill import read_batches
from shardmon.ingest.exposition import SeriesCache, parse_openmetrics, parse_text


def _best(fn: Callable[[], None]) -> float:
    return min(timeit.repeat(fn, number=1, repeat=3))


def _bodies(series: int, rounds: int) -> list[bytes]:
    target = Target(0, target_series(series))
    return [target.render(ORIGIN_S + 15.0 * i) for i in range(rounds)]


def _stamped(body: bytes, ts_ms: int) -> bytes:
    stamp = b" %d\n" % ts_ms
    return b"".join(line + stamp if line and not line.startswith(b"#") else line + b"\n"
                    for line in body.rstrip(b"\n").split(b"\n"))


def _openmetrics_file(bodies: list[bytes]) -> bytes:
    """The scrapes as one OpenMetrics file with timestamps (seconds), metadata once."""
    out = []
    for i, body in enumerate(bodies):
        seconds = b" %.3f" % (ORIGIN_S + 15.0 * i)
        for line in body.rstrip(b"\n").split(b"\n"):
            if not line.startswith(b"#"):
                out.append(line + seconds)
            elif i == 0:
                out.append(line)
    return b"\n".join(out) + b"\n# EOF\n"


def run(series: int, rounds: int) -> list[tuple[str, float]]:
    bodies = _bodies(series, rounds)
    # The OpenMetrics reader wants metadata first and each family's lines together: the farm's are.
    om_bodies = [b + b"# EOF\n" for b in bodies]
    extra = b'bench_extra_series{k="v"} 1\n'
    shifted = [b + extra if i % 2 else b for i, b in enumerate(bodies)]
    stamped = [_stamped(b, int((ORIGIN_S + 15.0 * i) * 1000)) for i, b in enumerate(bodies)]
    om_file = _openmetrics_file(bodies)

    def cold() -> None:
        for b in bodies:
            parse_text(b, SeriesCache())

    def steady(parse=parse_text, bodies=bodies) -> Callable[[], None]:
        cache = SeriesCache()
        parse(bodies[0], cache)

        def go() -> None:
            for b in bodies:
                parse(b, cache)
        return go

    def backfill() -> None:
        for _ in read_batches(io.BytesIO(om_file)):
            pass

    return [
        ("text, cold cache", _best(cold) / rounds),
        ("text, steady", _best(steady()) / rounds),
        ("text, known series, layout changed", _best(steady(bodies=shifted)) / rounds),
        ("text, with timestamps", _best(steady(bodies=stamped)) / rounds),
        ("openmetrics, steady", _best(steady(parse_openmetrics, om_bodies)) / rounds),
        ("backfill reader", _best(backfill) / rounds),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    print(f"{args.series} series per body, {args.rounds} bodies per case, best of 3")
    print(f"{'case':<38} {'ms/body':>9} {'us/series':>10}")
    for name, seconds in run(args.series, args.rounds):
        print(f"{name:<38} {seconds * 1e3:9.3f} {seconds * 1e6 / args.series:10.3f}")


if __name__ == "__main__":
    main()
