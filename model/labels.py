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
from collections.abc import Iterable, Mapping
from typing import NamedTuple

import xxhash

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


@functools.lru_cache(maxsize=1 << 20)
def without_name(labels: Labels) -> Labels:
    """``labels`` without ``__name__``, memoised (queries drop the name of the same series over and over)."""
    return labels.without((METRIC_NAME,))


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


# An RE2 flag group without a body, such as ``(?i)`` or ``(?i-s)``; ``U`` (ungreedy) is left out on
# purpose because Python has no equivalent, so such a pattern reaches the compiler unchanged and fails.
_FLAG_GROUP = re.compile(r"\(\?([ims]*(?:-[ims]*)?)\)")


def python_regex(pattern: str) -> str:
    """Rewrite RE2 flag groups that Python rejects into their scoped form, keeping the meaning.

    In RE2 (Prometheus), ``(?i)`` sets a flag until the end of the enclosing group; Python 3.11
    accepts such a group only at the very start of the whole expression, and
    :class:`model.labels.Matcher` wraps every pattern in ``(?:...)`` to anchor it, so even a leading
    ``(?i)`` would fail. ``a(?i)b|c`` becomes ``a(?i:b|c)``, which means the same in both engines.
    Patterns without ``(?`` are returned as they are.
    """
    if "(?" not in pattern:
        return pattern
    out: list[str] = []
    # For each open group (the outermost being the whole pattern), how many scoped flag groups were
    # opened inside it: they must all be closed where the group closes.
    open_flags = [0]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
        elif c == "[":
            j = _class_end(pattern, i)
            out.append(pattern[i:j])
            i = j
        elif c == "(":
            m = _FLAG_GROUP.match(pattern, i)
            if m and m.group(1) not in ("", "-"):
                out.append(f"(?{m.group(1)}:")
                open_flags[-1] += 1
                i = m.end()
            else:
                open_flags.append(0)
                out.append("(")
                i += 1
        elif c == ")" and len(open_flags) > 1:
            out.append(")" * open_flags.pop() + ")")
            i += 1
        else:
            out.append(c)
            i += 1
    out.append(")" * open_flags[0])
    return "".join(out)


def _class_end(pattern: str, i: int) -> int:
    """Index just past the character class that starts at ``pattern[i] == '['``."""
    j = i + 1
    if pattern.startswith("^", j):
        j += 1
    if pattern.startswith("]", j):  # A ``]`` first in a class is a literal.
        j += 1
    n = len(pattern)
    while j < n:
        c = pattern[j]
        if c == "\\":
            j += 2
        elif pattern.startswith("[:", j):
            end = pattern.find(":]", j + 2)
            j = n if end < 0 else end + 2
        elif c == "]":
            return j + 1
        else:
            j += 1
    return n


@functools.lru_cache(maxsize=4096)
def _compile_anchored(pattern: str) -> re.Pattern[str]:
    # Prometheus regexes are fully anchored. Python's ``re`` stands in for RE2 here; the two agree
    # on the syntax that label matchers use in practice (no backreferences in RE2), once RE2's
    # flag groups are rewritten into the scoped form Python accepts.
    try:
        return re.compile(f"(?:{python_regex(pattern)})\\Z", re.DOTALL)
    except re.error as exc:
        raise ValueError(f"invalid regular expression {pattern!r}: {exc}") from exc


_REGEX_META = frozenset(".^$*+?()[]{}|\\")
_QUANTIFIERS = frozenset("*+?{")


def _literal_run(pattern: str) -> tuple[str, int]:
    """The literal text at the start of ``pattern`` (escaped punctuation unescaped) and where it ends."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 < n and not pattern[i + 1].isalnum():
                out.append(pattern[i + 1])
                i += 2
                continue
            break
        if c in _REGEX_META:
            break
        out.append(c)
        i += 1
    return "".join(out), i


@functools.lru_cache(maxsize=4096)
def regex_shape(pattern: str) -> tuple[frozenset[str] | None, str]:
    """What an (anchored) label regex lets an index skip: ``(alternatives, prefix)``.

    ``alternatives`` is the set of strings the pattern matches when it is a plain alternation of
    literals (``a|b|c``, Prometheus's "set matcher"), else None. ``prefix`` is literal text every
    match starts with (``""`` when there is none), so only values in a prefix range need the regex.
    """
    parts = pattern.split("|")
    literal = []
    for part in parts:
        text, end = _literal_run(part)
        if end != len(part) or part.endswith("\\"):
            break
        literal.append(text)
    else:
        return frozenset(literal), (literal[0] if len(literal) == 1 else "")
    if len(parts) > 1:  # Any other top-level alternation: no common prefix worth finding.
        return None, ""
    text, end = _literal_run(pattern)
    if end < len(pattern) and pattern[end] in _QUANTIFIERS:
        text = text[:-1]  # ``ab*``: the b may be absent
    return None, text


class Matcher(NamedTuple):
    """A label matcher: ``name`` compared with ``value`` by ``type``.

    A label that a series lacks has the value ``""``, so ``job=""`` selects series without ``job``
    and ``job!=""`` selects series that have it, as in Prometheus.
    """

    type: MatchType
    name: str
    value: str

    @classmethod
    def parse_op(cls, op: str, name: str, value: str) -> Matcher:
        matcher = cls(MatchType(op), name, value)
        if matcher.type in (MatchType.RE, MatchType.NRE):
            _compile_anchored(value)  # Fail early, with the pattern in the message.
        return matcher

    def matches(self, value: str) -> bool:
        t = self.type
        if t is MatchType.EQ:
            return value == self.value
        if t is MatchType.NEQ:
            return value != self.value
        hit = _compile_anchored(self.value).match(value) is not None
        return hit if t is MatchType.RE else not hit

    def __str__(self) -> str:
        return f'{self.name}{self.type.value}"{escape_label_value(self.value)}"'


def matches_all(labels: Labels, matchers: Iterable[Matcher]) -> bool:
    """Whether a label set satisfies every matcher."""
    d = dict(labels)
    return all(m.matches(d.get(m.name, "")) for m in matchers)
