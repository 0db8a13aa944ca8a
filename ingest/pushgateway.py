"""A Pushgateway-compatible store of pushed metric groups, exposed for scraping.

Semantics are the Pushgateway's (its README is the reference):

- A group is identified by its grouping key, the labels of the URL path
  ``/metrics/job/<job>{/<label>/<value>}`` (``job`` first and never empty; a label name suffixed
  ``@base64`` carries a URL-safe base64 value, padding optional, ``=`` for the empty value).
- ``PUT`` replaces the whole group, ``POST`` only the metric families it pushes, ``DELETE`` removes
  the group. An empty ``PUT`` empties the group and an empty ``POST`` changes nothing but the push
  time. Pushed samples must not carry timestamps.
- The grouping key's labels override the same labels in the body; a sample without ``instance``
  (in the body or the key) is exposed with ``instance=""``, so a scraper with ``honor_labels`` does
  not attach one.
- A push that would make the exposition inconsistent (one family name with two types, or one series
  in two groups) or that pushes ``push_time_seconds``/``push_failure_time_seconds`` is refused; every
  refused ``PUT``/``POST`` sets the group's ``push_failure_time_seconds``, every accepted one its
  ``push_time_seconds``.

The groups survive restarts: every change is written to a JSON file (atomically, by rename).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import threading
import time
from pathlib import Path
from typing import NamedTuple

from ingest.exposition import NO_TIMESTAMP, SeriesCache, parse_text
from model.errors import BadRequestError, ExpositionError
from model.labels import METRIC_NAME, Labels, escape_label_value, is_valid_label_name

PUSH_TIME = "push_time_seconds"
PUSH_FAILURE_TIME = "push_failure_time_seconds"
_OWN = {PUSH_TIME: "Last Unix time when changing this group in the Pushgateway succeeded.",
        PUSH_FAILURE_TIME: "Last Unix time when changing this group in the Pushgateway failed."}
_SUFFIXES = ("_bucket", "_sum", "_count")


class PushError(BadRequestError):
    """A push refused with HTTP 400; the message says why."""


class Family(NamedTuple):
    name: str
    type: str
    help: str
    samples: list[tuple[Labels, float]]  # final labels (grouping key applied, instance ensured)


class Group(NamedTuple):
    key: Labels
    families: dict[str, Family]
    push_time: float
    failure_time: float


def grouping_key(path: str) -> Labels:
    """The grouping key of a push path after ``/metrics/`` (``job/<job>{/<name>/<value>}``)."""
    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[0] not in ("job", "job@base64"):
        raise PushError(f"the path must start with job/<job name>, got {path!r}")
    if len(parts) % 2:
        raise PushError(f"the path must consist of label name/value pairs, got {path!r}")
    pairs: dict[str, str] = {}
    for name, value in zip(parts[0::2], parts[1::2]):
        if name.endswith("@base64"):
            name = name[: -len("@base64")]
            try:
                value = "" if value == "=" else base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
                raise PushError(f"invalid base64 encoding in label value {value!r}: {exc}") from None
        if not is_valid_label_name(name) or name.startswith("__"):
            raise PushError(f"improper label name {name!r}")
        if name in pairs:
            raise PushError(f"duplicate label name {name!r} in the grouping key")
        pairs[name] = value
    if not pairs.get("job"):
        raise PushError("job name is required")
    return Labels((n, v) for n, v in sorted(pairs.items()))  # Empty values stay in a grouping key.


def _family_of(name: str, types: dict[str, str]) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) in ("histogram", "summary"):
            return name[: -len(suffix)]
    return name


def parse_push(body: bytes, key: Labels) -> dict[str, Family]:
    """The families of a text-format push body, labels finalised with the grouping key."""
    if not body.strip():
        return {}
    cache = SeriesCache()
    try:
        parsed = parse_text(body, cache)
    except ExpositionError as exc:
        raise PushError(f"text format parsing error in {exc}") from None
    if (parsed.timestamps_ms != NO_TIMESTAMP).any():
        raise PushError("pushed metrics must not have timestamps")
    families: dict[str, Family] = {}
    key_d = dict(key)
    seen: set[Labels] = set()
    for ref, value in zip(parsed.refs.tolist(), parsed.values.tolist()):
        exposed = cache.labels[ref]
        name = exposed.name
        if name in _OWN:
            raise PushError(f"pushed metrics must not use the Pushgateway's own metric name {name!r}")
        d = dict(exposed)
        d.update(key_d)
        d.setdefault("instance", "")
        # Labels() directly, not from_dict: instance="" and empty grouping values must be exposed.
        final = Labels(sorted(d.items()))
        if final in seen:
            raise PushError(f"duplicate metric {_show(final)} in the push")
        seen.add(final)
        fam = _family_of(name, parsed.types)
        f = families.get(fam)
        if f is None:
            f = families[fam] = Family(fam, parsed.types.get(fam, "untyped"), parsed.helps.get(fam, ""), [])
        f.samples.append((final, value))
    return families


def _show(labels: Labels) -> str:
    name = labels.get(METRIC_NAME)
    rest = ",".join(f'{n}="{escape_label_value(v)}"' for n, v in labels if n != METRIC_NAME)
    return f"{name}{{{rest}}}"


class PushStore:
    """The groups, thread-safe, persisted to ``path`` (if given) after every change."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._lock = threading.Lock()
        self.groups: dict[Labels, Group] = {}
        if self.path and self.path.exists():
            self._load()

    # -- changes -----------------------------------------------------------------------------------

    def push(self, key: Labels, body: bytes, *, replace_all: bool, now: float | None = None) -> None:
        """A PUT (``replace_all``) or POST; raises :class:`PushError` (and records the failure)."""
        now = time.time() if now is None else now
        with self._lock:
            old = self.groups.get(key)
            try:
                pushed = parse_push(body, key)
                families = dict(pushed) if replace_all else {**(old.families if old else {}), **pushed}
                self._check_consistent(key, families)
            except PushError:
                self.groups[key] = Group(key, old.families if old else {}, old.push_time if old else 0.0, now)
                self._save()
                raise
            self.groups[key] = Group(key, families, now, old.failure_time if old else 0.0)
            self._save()

    def delete(self, key: Labels) -> None:
        with self._lock:
            if self.groups.pop(key, None) is not None:
                self._save()

    def wipe(self) -> None:
        with self._lock:
            self.groups.clear()
            self._save()

    def _check_consistent(self, key: Labels, families: dict[str, Family]) -> None:
        for other_key, other in self.groups.items():
            if other_key == key:
                continue
            for name, fam in families.items():
                theirs = other.families.get(name)
                if theirs is None:
                    continue
                if theirs.type != fam.type:
                    raise PushError(
                        f"pushed metrics are invalid or inconsistent with existing metrics: metric {name!r} "
                        f"pushed with type {fam.type} but has type {theirs.type} in group {_show(other_key)}"
                    )
                clash = {ls for ls, _ in fam.samples} & {ls for ls, _ in theirs.samples}
                if clash:
                    raise PushError(
                        f"pushed metrics are invalid or inconsistent with existing metrics: "
                        f"{_show(next(iter(clash)))} already exists in group {_show(other_key)}"
                    )

    # -- exposition ----------------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """Every pushed family and the push times, in the text format 0.0.4."""
        with self._lock:
            groups = list(self.groups.values())
        merged: dict[str, list[Family]] = {}
        for g in groups:
            for name, fam in g.families.items():
                merged.setdefault(name, []).append(fam)
        lines: list[str] = []
        for name in sorted(merged):
            fams = merged[name]
            help_ = next((f.help for f in fams if f.help), "")
            if help_:
                lines.append(f"# HELP {name} {_escape_help(help_)}")
            lines.append(f"# TYPE {name} {fams[0].type}")
            for f in fams:
                for labels, value in f.samples:
                    lines.append(f"{_show(labels)} {_format(value)}")
        for own, attr in ((PUSH_FAILURE_TIME, "failure_time"), (PUSH_TIME, "push_time")):
            if not groups:
                break
            lines.append(f"# HELP {own} {_OWN[own]}")
            lines.append(f"# TYPE {own} gauge")
            for g in groups:
                d = dict(g.key)
                d.setdefault("instance", "")
                d[METRIC_NAME] = own
                lines.append(f"{_show(Labels(sorted(d.items())))} {_format(getattr(g, attr))}")
        return ("\n".join(lines) + "\n").encode() if lines else b""

    def status(self) -> list[dict]:
        """The groups as the Pushgateway's ``/api/v1/metrics`` lists them (labels, families, times)."""
        with self._lock:
            return [
                {
                    "labels": dict(g.key),
                    "last_push_successful": g.push_time >= g.failure_time,
                    "push_time_seconds": g.push_time,
                    "push_failure_time_seconds": g.failure_time,
                    "metrics": {n: {"type": f.type.upper(), "help": f.help, "samples": len(f.samples)}
                                for n, f in g.families.items()},
                }
                for g in self.groups.values()
            ]

    # -- persistence ---------------------------------------------------------------------------------

    def _save(self) -> None:
        if self.path is None:
            return
        data = [
            {
                "key": list(map(list, g.key)),
                "push_time": g.push_time,
                "failure_time": g.failure_time,
                "families": [
                    {"name": f.name, "type": f.type, "help": f.help,
                     "samples": [[list(map(list, ls)), _format(v)] for ls, v in f.samples]}
                    for f in g.families.values()
                ],
            }
            for g in self.groups.values()
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def _load(self) -> None:
        assert self.path is not None
        for g in json.loads(self.path.read_text()):
            key = Labels(tuple(p) for p in g["key"])
            fams = {
                f["name"]: Family(f["name"], f["type"], f["help"],
                                  [(Labels(tuple(p) for p in ls), float(v)) for ls, v in f["samples"]])
                for f in g["families"]
            }
            self.groups[key] = Group(key, fams, g["push_time"], g["failure_time"])


def _format(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
