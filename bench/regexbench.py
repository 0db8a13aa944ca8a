"""Per-value cost of label-regex matching: Python's ``re`` (before issue 12) against RE2 (model/regex.py).

    .venv/bin/python -m bench.regexbench [--values 200000]

Prints, for a few typical matcher patterns over label values like ``api/v1/handler-123``, the cost per
value of: Python ``re`` as the old Matcher compiled it (``(?:p)\\Z``, DOTALL; a bare ``.match`` and the
old index's path through ``Matcher.matches``), the google-re2 Python wrapper's ``fullmatch``, one
``Regex.fullmatch`` call, and ``Regex.select`` (the batch the label index uses); then a whole
``LabelIndex.select`` over the values; then the hostile ``(.*.*)*x`` against ``y`` * n. Best of three
runs; figures are only comparable within one run on one machine.
"""

from __future__ import annotations

import argparse
import functools
import re
import time

import re2

from shardmon.model.labels import Labels, Matcher, MatchType
from shardmon.model.regex import compile_matcher_regex
from shardmon.shards.index import LabelIndex

PATTERNS = ["api/v1/.*", ".*handler-12.*", "api/v[12]/handler-[0-9]+5", "(?i)API/V2/.*", "api/v0/handler-1|api/v1/handler-2"]


def _best(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


@functools.lru_cache(maxsize=4096)
def _old_compile(pattern: str) -> re.Pattern[str]:
    return re.compile(f"(?:{pattern})\\Z", re.DOTALL)


def _old_matches(pattern: str, value: str) -> bool:
    # The old Matcher.matches: a cached compile, then re's match.
    return _old_compile(pattern).match(value) is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--values", type=int, default=200_000)
    args = ap.parse_args()
    n = args.values
    values = [f"api/v{i % 3}/handler-{i}" for i in range(n)]
    index = LabelIndex()
    index.add(0, (Labels.from_dict({"__name__": "m", "path": v}) for v in values))
    index.label_values("path")  # sort once, as a warm index has
    print(f"{n} values; microseconds per value (whole index select: milliseconds)")
    print(f"{'pattern':38} {'re':>6} {'old idx':>8} {'re2 py':>7} {'RE2 1':>6} {'RE2 batch':>9} {'index ms':>9}")
    for p in PATTERNS:
        print(_row(p, values, index))
    print("\nhostile (.*.*)*x against 'y' * n")
    hostile = re.compile("(?:(.*.*)*x)\\Z", re.DOTALL)
    for k in (10, 12, 14):
        text = "y" * k
        print(f"  Python re, n={k:>7}: {_best(lambda t=text: hostile.match(t), repeat=1):9.6f} s")
    rx = compile_matcher_regex("(.*.*)*x")
    for k in (10**5, 10**6):
        text = "y" * k
        print(f"  RE2,       n={k:>7}: {_best(lambda t=text: rx.fullmatch(t)):9.6f} s")


def _row(p: str, values: list[str], index: LabelIndex) -> str:
    us = 1e6 / len(values)
    pat = p.replace("(?i)", "")  # Python's re takes no (?i) after the "(?:" the old code wrapped with
    flags = re.IGNORECASE if "(?i)" in p else 0
    old = re.compile(f"(?:{pat})\\Z", re.DOTALL | flags)
    t_re = _best(lambda: [v for v in values if old.match(v)])
    old_p = f"(?i:{pat})" if flags else p
    t_old_idx = _best(lambda: [v for v in values if _old_matches(old_p, v)])
    wrapper = re2.compile(f"(?:{p})")
    t_wrapper = _best(lambda: [v for v in values if wrapper.fullmatch(v)], repeat=1)
    rx = compile_matcher_regex(p)
    t_one = _best(lambda: [v for v in values if rx.fullmatch(v)])
    t_batch = _best(lambda: rx.select(values))
    m = Matcher(MatchType.RE, "path", p)
    t_index = _best(lambda: index.select([m]))
    assert len(rx.select(values)) == sum(1 for v in values if old.match(v)), p
    return (f"{p:38} {t_re * us:6.2f} {t_old_idx * us:8.2f} {t_wrapper * us:7.2f} {t_one * us:6.2f} "
            f"{t_batch * us:9.2f} {t_index * 1e3:9.1f}")


if __name__ == "__main__":
    main()
