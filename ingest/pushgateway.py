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

Beyond the Pushgateway: the labels of every pushed series are held to the receiver's label limits (as the
scrape ``label_limit``, ``label_name_length_limit``, ``label_value_length_limit``; a push with a series
over one is refused as a whole, as any invalid push), and the number of groups to ``max_push_groups``: a
push that would create one more is refused (:class:`PushGroupsLimitError`), while replacing or deleting
an existing group always works. Checking a push costs what it pushes, not what the store holds (the
store indexes which group holds each family and series).

The groups survive restarts as the Pushgateway's do: :meth:`PushStore.persist` writes them to a JSON
file (to a temporary file, fsynced, then renamed over the old one), which the receiver calls at most
every ``receiver.persistence_interval`` after a change, off its event loop, and once more at a clean
shutdown; a push never writes the file itself. A file that cannot be read at start is moved aside
(``<file>.corrupt``) and the store starts empty, so nothing overwrites it.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import NamedTuple

from shardmon.ingest.exposition import NO_TIMESTAMP, SeriesCache, parse_text
from shardmon.model.errors import ExpositionError, PushError, PushGroupsLimitError
from shardmon.model.label_limits import LabelLimits, excerpt, show_series
from shardmon.model.labels import METRIC_NAME, Labels, escape_label_value, is_valid_label_name

__all__ = ["Family", "Group", "PushError", "PushGroupsLimitError", "PushStore", "grouping_key", "parse_push"]

log = logging.getLogger(__name__)

PUSH_TIME = "push_time_seconds"
PUSH_FAILURE_TIME = "push_failure_time_seconds"
_OWN = {PUSH_TIME: "Last Unix time when changing this group in the Pushgateway succeeded.",
        PUSH_FAILURE_TIME: "Last Unix time when changing this group in the Pushgateway failed."}
_SUFFIXES = ("_bucket", "_sum", "_count")


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
        raise PushError(f"the path must start with job/<job name>, got {excerpt(path)!r}")
    if len(parts) % 2:
        raise PushError(f"the path must consist of label name/value pairs, got {excerpt(path)!r}")
    pairs: dict[str, str] = {}
    for name, value in zip(parts[0::2], parts[1::2]):
        if name.endswith("@base64"):
            name = name[: -len("@base64")]
            try:
                value = "" if value == "=" else base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
                raise PushError(f"invalid base64 encoding in label value {excerpt(value)!r}: {exc}") from None
        if not is_valid_label_name(name) or name.startswith("__"):
            raise PushError(f"improper label name {excerpt(name)!r}")
        if name in pairs:
            raise PushError(f"duplicate label name {excerpt(name)!r} in the grouping key")
        pairs[name] = value
    if not pairs.get("job"):
        raise PushError("job name is required")
    return Labels((n, v) for n, v in sorted(pairs.items()))  # Empty values stay in a grouping key.


def _family_of(name: str, types: dict[str, str]) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix) and types.get(name[: -len(suffix)]) in ("histogram", "summary"):
            return name[: -len(suffix)]
    return name


def parse_push(body: bytes, key: Labels, limits: LabelLimits = LabelLimits()) -> dict[str, Family]:
    """The families of a text-format push body, labels finalised with the grouping key and held to
    ``limits``; raises :class:`PushError`."""
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
            raise PushError(f"pushed metrics must not use the Pushgateway's own metric name {excerpt(name)!r}")
        d = dict(exposed)
        d.update(key_d)
        d.setdefault("instance", "")
        # Labels() directly, not from_dict: instance="" and empty grouping values must be exposed.
        final = Labels(sorted(d.items()))
        if final in seen:
            raise PushError(f"duplicate metric {show_series(final)} in the push")
        if limits:
            over = limits.check([p for p in final if p[1] != ""])
            if over is not None:
                raise PushError(f"pushed metrics are invalid: {over[1]}", reason=over[0])
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
    """The groups, thread-safe; persisted to ``path`` (if given) when :meth:`persist` is called.

    ``max_groups`` bounds the number of groups (0: no bound), ``limits`` the labels of pushed series.
    """

    def __init__(self, path: str | Path | None = None, *, max_groups: int = 0,
                 limits: LabelLimits = LabelLimits()) -> None:
        self.path = Path(path) if path else None
        self.max_groups = max_groups
        self.limits = limits
        self._lock = threading.Lock()
        self._persist_lock = threading.Lock()
        self.groups: dict[Labels, Group] = {}
        # Which groups hold each family, by type, and which group holds each series: a push is checked
        # against these in the time of what it pushes.
        self._families: dict[str, dict[str, dict[Labels, None]]] = {}
        self._owner: dict[Labels, Labels] = {}
        self._by_exposed_key: dict[Labels, Labels] = {}  # a group's key without empty labels -> its key
        self._version = 0  # changes made
        self._persisted = 0  # the version last written to the file
        if self.path and self.path.exists():
            self._load()

    # -- changes -----------------------------------------------------------------------------------

    def push(self, key: Labels, body: bytes, *, replace_all: bool, now: float | None = None) -> None:
        """A PUT (``replace_all``) or POST; raises :class:`PushError` (and records the failure)."""
        now = time.time() if now is None else now
        # Parsing needs no state, so it runs before the lock: one big push does not hold up the others.
        try:
            pushed = parse_push(body, key, self.limits)
            error = None
        except PushError as exc:
            pushed, error = {}, exc
        with self._lock:
            old = self.groups.get(key)
            if old is None:
                if self.max_groups and len(self.groups) >= self.max_groups:
                    raise PushGroupsLimitError(
                        f"too many push groups: the receiver holds {len(self.groups)}, its limit "
                        f"(receiver.max_push_groups); delete groups or raise the limit")
                # Two keys that differ only in empty labels would expose the same push_time_seconds.
                twin = self._by_exposed_key.get(_exposed_key(key))
                if twin is not None:
                    raise PushError(f"pushed metrics are invalid or inconsistent with existing metrics: the grouping "
                                    f"key {show_series(key)} is the same as that of group {show_series(twin)} once "
                                    f"empty labels are dropped; push to that group")
            if error is None:
                try:
                    self._check_consistent(key, pushed)
                    if old is not None and not replace_all:
                        _check_merge(old, pushed)
                except PushError as exc:
                    error = exc
            if error is not None:
                self._set(key, Group(key, old.families if old else {}, old.push_time if old else 0.0, now))
                raise error
            families = dict(pushed) if replace_all else {**(old.families if old else {}), **pushed}
            self._set(key, Group(key, families, now, old.failure_time if old else 0.0))

    def delete(self, key: Labels) -> None:
        with self._lock:
            if key in self.groups:
                self._set(key, None)

    def wipe(self) -> None:
        with self._lock:
            self.groups.clear()
            self._families.clear()
            self._owner.clear()
            self._by_exposed_key.clear()
            self._version += 1

    def _set(self, key: Labels, group: Group | None) -> None:
        """Replace (None: remove) the group of ``key``, keeping the indexes in step. Under the lock.

        A replaced group keeps its place, so the exposition keeps its order (and a scraper's cache its
        fast path). The indexes are only undone where they point at this group: a file written before
        the checks existed may hold groups that clash.
        """
        old = self.groups.get(key)
        if old is not None:
            exposed = _exposed_key(key)
            if self._by_exposed_key.get(exposed) == key:
                del self._by_exposed_key[exposed]
            for name, fam in old.families.items():
                by_type = self._families[name]
                del by_type[fam.type][key]
                if not by_type[fam.type]:
                    del by_type[fam.type]
                    if not by_type:
                        del self._families[name]
                for labels, _ in fam.samples:
                    if self._owner.get(labels) == key:
                        del self._owner[labels]
            if group is None:
                del self.groups[key]
        if group is not None:
            self.groups[key] = group
            self._by_exposed_key[_exposed_key(key)] = key
            for name, fam in group.families.items():
                self._families.setdefault(name, {}).setdefault(fam.type, {})[key] = None
                for labels, _ in fam.samples:
                    self._owner[labels] = key
        self._version += 1

    def _check_consistent(self, key: Labels, pushed: dict[str, Family]) -> None:
        """Refuse families whose type differs from another group's, or series another group holds.

        Only the pushed families need checking: the group's other families were checked when pushed,
        and every later push to another group was checked against them.
        """
        for name, fam in pushed.items():
            for typ, keys in self._families.get(name, {}).items():
                if typ == fam.type:
                    continue
                other = next((k for k in keys if k != key), None)
                if other is not None:
                    raise PushError(
                        f"pushed metrics are invalid or inconsistent with existing metrics: metric {excerpt(name)!r} "
                        f"pushed with type {fam.type} but has type {typ} in group {show_series(other)}"
                    )
            for labels, _ in fam.samples:
                other = self._owner.get(labels)
                if other is not None and other != key:
                    raise PushError(
                        f"pushed metrics are invalid or inconsistent with existing metrics: "
                        f"{show_series(labels)} already exists in group {show_series(other)}"
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

    @property
    def dirty(self) -> bool:
        """Whether the groups changed since they were last written to the file."""
        return self.path is not None and self._version != self._persisted

    def persist(self) -> bool:
        """Write the groups to the file if they changed since the last write; True if it wrote.

        Atomic (a temporary file, fsynced, renamed over the old one, the folder fsynced), and the lock
        is held only to take the list of groups: groups are never changed in place, so the list is a
        consistent snapshot that can be written while pushes go on.
        """
        if self.path is None:
            return False
        with self._persist_lock:
            with self._lock:
                version = self._version
                if version == self._persisted:
                    return False
                groups = list(self.groups.values())
            self._write(groups)
            self._persisted = version
            return True

    def _write(self, groups: list[Group]) -> None:
        assert self.path is not None
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
            for g in groups
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        with open(tmp, "w") as fh:
            json.dump(data, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _load(self) -> None:
        assert self.path is not None
        try:
            groups = [self._group_of(g) for g in json.loads(self.path.read_bytes())]
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            aside = self.path.with_suffix(self.path.suffix + ".corrupt")
            os.replace(self.path, aside)
            log.error("the push persistence file %s cannot be read (%s: %s); moved it to %s and started "
                      "without pushed groups", self.path, type(exc).__name__, excerpt(str(exc)), aside)
            return
        with self._lock:
            for g in groups:
                self._set(g.key, g)
            self._persisted = self._version

    @staticmethod
    def _group_of(g: dict) -> Group:
        key = Labels(tuple(p) for p in g["key"])
        fams = {
            f["name"]: Family(f["name"], f["type"], f["help"],
                              [(Labels(tuple(p) for p in ls), float(v)) for ls, v in f["samples"]])
            for f in g["families"]
        }
        return Group(key, fams, float(g["push_time"]), float(g["failure_time"]))


def _check_merge(old: Group, pushed: dict[str, Family]) -> None:
    """Refuse a POST whose series a family it does not replace already holds (``h_count`` pushed first
    as its own family, then inside histogram ``h``): the group would expose the series twice."""
    kept = {labels: name for name, fam in old.families.items() if name not in pushed for labels, _ in fam.samples}
    if not kept:
        return
    for name, fam in pushed.items():
        for labels, _ in fam.samples:
            if labels in kept:
                raise PushError(f"pushed metrics are invalid or inconsistent with existing metrics: "
                                f"{show_series(labels)} of family {excerpt(name)!r} already exists in family "
                                f"{excerpt(kept[labels])!r} of the group")


def _exposed_key(key: Labels) -> Labels:
    """A grouping key as a scrape sees it: empty labels are no labels."""
    return Labels(p for p in key if p[1] != "")


def _format(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")
