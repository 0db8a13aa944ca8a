"""Label sets and label matchers, with Prometheus's semantics.

A series is identified by its sorted label set, ``__name__`` included. ``Labels`` is a tuple of
``(name, value)`` pairs sorted by name, so it is hashable and compares exactly as Prometheus's
``labels.Compare`` does (pair by pair, name first, then value; a prefix sorts first).

The canonical byte form joins names and values with ``0xff``, a byte that never occurs in UTF-8 text,
as Prometheus's ``labels.Bytes`` does. It is what travels on the wire and what the series id hashes.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import xxhash

from shardmon.model.regex import Regex, compile_matcher_regex

METRIC_NAME = "__name__"
SEP = b"\xff"

_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_METRIC_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")


def is_valid_label_name(name: str) -> bool:
    """Whether ``name`` is a legal Prometheus label name (``[a-zA-Z_][a-zA-Z0-9_]*``)."""
    return _LABEL_NAME_RE.match(name) is not None


def is_valid_metric_name(name: str) -> bool:
    """Whether ``name`` is a legal Prometheus metric name (``[a-zA-Z_:][a-zA-Z0-9_:]*``)."""
    return _METRIC_NAME_RE.match(name) is not None


class Labels(tuple):
    """An immutable label set: ``(name, value)`` pairs sorted by name, no empty values.

    Build one with :meth:`from_dict` or :meth:`from_pairs`; both drop empty values, because in
    Prometheus a label with an empty value is the same as no label.
    """

    __slots__ = ()

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Labels:
        return cls(sorted((n, v) for n, v in pairs if v != ""))

    @classmethod
    def from_dict(cls, mapping: Mapping[str, str]) -> Labels:
        return cls.from_pairs(mapping.items())

    @classmethod
    def from_canonical(cls, data: bytes) -> Labels:
        """Inverse of :meth:`canonical`."""
        if not data:
            return EMPTY_LABELS
        parts = data.decode("utf-8", "surrogateescape").split("\udcff")
        return cls(zip(parts[0::2], parts[1::2]))

    def canonical(self) -> bytes:
        """The canonical bytes: ``name 0xff value 0xff name ...`` in name order."""
        return SEP.join(s.encode("utf-8") for pair in self for s in pair)

    def series_id(self) -> int:
        """The stable 64-bit id of this series (see :func:`series_id_of`)."""
        return series_id_of(self.canonical())

    def get(self, name: str, default: str = "") -> str:
        for n, v in self:
            if n == name:
                return v
        return default

    @property
    def name(self) -> str:
        """The metric name (``__name__``), or ``""``."""
        return self.get(METRIC_NAME)

    def to_dict(self) -> dict[str, str]:
        return dict(self)

    def without(self, names: Iterable[str]) -> Labels:
        drop = set(names)
        return Labels(p for p in self if p[0] not in drop)

    def keep(self, names: Iterable[str]) -> Labels:
        keep = set(names)
        return Labels(p for p in self if p[0] in keep)

    def with_(self, **extra: str) -> Labels:
        merged = dict(self)
        merged.update(extra)
        return Labels.from_dict(merged)

    def __str__(self) -> str:
        name = self.name
        rest = ", ".join(f'{n}="{escape_label_value(v)}"' for n, v in self if n != METRIC_NAME)
        if rest or not name:
            return f"{name}{{{rest}}}"
        return name

    def __repr__(self) -> str:
        return f"Labels({str(self)})"


EMPTY_LABELS = Labels()

# Canonical label bytes -> Labels, for the series queries keep reading: parsing label bytes into a
# Labels is the largest per-series cost of a read. Bounded; cleared whole when full.
_LABELS_CACHE: dict[bytes, Labels] = {}
_LABELS_CACHE_MAX = 2_000_000


def labels_of(key: bytes) -> Labels:
    """``Labels.from_canonical(key)``, memoised (the querier reads the same series again and again)."""
    lbls = _LABELS_CACHE.get(key)
    if lbls is None:
        if len(_LABELS_CACHE) >= _LABELS_CACHE_MAX:
            _LABELS_CACHE.clear()
        lbls = _LABELS_CACHE[key] = Labels.from_canonical(key)
    return lbls


@functools.lru_cache(maxsize=1 << 20)
def without_name(labels: Labels) -> Labels:
    """``labels`` without ``__name__``, memoised (queries drop the name of the same series over and over)."""
    return labels.without((METRIC_NAME,))


def without_names(labels: Sequence[Labels]) -> list[Labels]:
    """:func:`without_name` of each of ``labels``."""
    return [without_name(lbls) for lbls in labels]


def series_id_of(canonical: bytes) -> int:
    """The series id: xxhash64 of the canonical label bytes (never Python's salted ``hash``)."""
    return xxhash.xxh64_intdigest(canonical)


def escape_label_value(value: str) -> str:
    """Escape a label value as the text exposition format and PromQL print it."""
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class MatchType(enum.Enum):
    """The four PromQL matcher types."""

    EQ = "="
    NEQ = "!="
    RE = "=~"
    NRE = "!~"


class Matcher(NamedTuple):
    """A label matcher: ``name`` compared with ``value`` by ``type``.

    A label that a series lacks has the value ``""``, so ``job=""`` selects series without ``job``
    and ``job!=""`` selects series that have it, as in Prometheus. Regexes are RE2, fully anchored, as
    Prometheus 2.42's ``^(?:value)$`` (see :mod:`shardmon.model.regex`).
    """

    type: MatchType
    name: str
    value: str

    @classmethod
    def parse_op(cls, op: str, name: str, value: str) -> Matcher:
        """A matcher from its operator; a regex RE2 rejects raises :class:`~shardmon.model.errors.RegexError`."""
        matcher = cls(MatchType(op), name, value)
        if matcher.type in (MatchType.RE, MatchType.NRE):
            compile_matcher_regex(value)  # Fail early, with the pattern in the message.
        return matcher

    @property
    def regex(self) -> Regex:
        """The compiled regex of a ``=~`` or ``!~`` matcher (``^(?:value)$``, RE2, cached)."""
        return compile_matcher_regex(self.value)

    def matches(self, value: str) -> bool:
        t = self.type
        if t is MatchType.EQ:
            return value == self.value
        if t is MatchType.NEQ:
            return value != self.value
        hit = compile_matcher_regex(self.value).fullmatch(value)
        return hit if t is MatchType.RE else not hit

    def __str__(self) -> str:
        return f'{self.name}{self.type.value}"{escape_label_value(self.value)}"'


def matches_all(labels: Labels, matchers: Iterable[Matcher]) -> bool:
    """Whether a label set satisfies every matcher."""
    d = dict(labels)
    return all(m.matches(d.get(m.name, "")) for m in matchers)
