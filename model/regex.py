"""User-supplied regular expressions, as Prometheus 2.42 compiles and matches them: RE2, linear time.

Every regex a user writes (label matchers, relabel ``regex``, ``label_replace``, and later rule and adapter
configs) goes through :func:`compile_regex`. Prometheus uses Go's ``regexp`` (RE2 syntax and semantics)
and wraps each pattern as ``^(?:PATTERN)$`` without flags, so ``.`` does not match a newline unless the
pattern says ``(?s)``, and ``$`` is the end of the text unless it says ``(?m)``. This module does the same
with Google's RE2 engine (``google-re2``), whose matching time is linear in the text: no pattern can make a
shard or the querier backtrack for ever, as ``(.*.*)*x`` did with Python's ``re``.

API::

    rx = compile_regex("api-(?P<n>\\d+)")      # RegexError (a ValueError) when RE2 rejects it
    rx.fullmatch("api-1")                      # True: Go's MatchString on ^(?:...)$
    m = rx.match("api-12"); m.group(1)         # "12"; None when the group took no part
    rx.expand("x$n-${1}", m)                   # "x12-12": Go's Regexp.Expand
    rx.select(values); rx.partition(values)    # many values at once (the label index)
    rx.literals, rx.possible_range()           # what lets an index skip values

Label matchers use :func:`compile_matcher_regex`, which also parses the bare pattern as 2.42's
``NewFastRegexMatcher`` does, so ``a)|(b`` is an error there while a relabel config accepts it (as
Prometheus does: ``^(?:a)|(b)$`` is then an unanchored alternation, matched as Go matches it).

Where C++ RE2 is more permissive than Go 1.19's ``regexp/syntax`` (which 2.42 is built with), the
difference is refused here too: ``\\C`` (any byte), ``(?<name>...)`` and non-ASCII group names. Error
messages use Go's words (``invalid nested repetition operator``...). Not mirrored: Go's limit of 1000
nested groups (RE2 handles deep nesting safely), and the exact size at which a huge pattern is refused
(RE2's 8 MiB program budget, ``expression too large``).
"""

from __future__ import annotations

import bisect
import functools
import itertools
from collections.abc import Iterable, Sequence
from typing import Union

import re2._re2 as _re2

from shardmon.model.errors import RegexError

__all__ = ["Regex", "RegexMatch", "RegexError", "SearchRegex", "compile_regex", "compile_matcher_regex",
           "compile_search_regex", "parse_template",
           "sorted_range"]

_UNANCHORED = _re2.RE2.Anchor.UNANCHORED
_NO_MATCH = (-1, -1)

# C++ RE2's error codes in Go's words (regexp/syntax ErrorCode), so messages read as Prometheus's.
_GO_WORDS = {
    "invalid escape sequence": "invalid escape sequence",
    "invalid character class": "invalid character class",
    "invalid character class range": "invalid character class range",
    "missing ]": "missing closing ]",
    "missing )": "missing closing )",
    "unexpected )": "unexpected )",
    "trailing \\": "trailing backslash at end of expression",
    "no argument for repetition operator": "missing argument to repetition operator",
    "invalid repetition size": "invalid repeat count",
    "bad repetition operator": "invalid nested repetition operator",
    "invalid perl operator": "invalid or unsupported Perl syntax",
    "invalid UTF-8": "invalid UTF-8",
    "invalid named capture group": "invalid named capture",
}


def _options(*, capture: bool) -> _re2.RE2.Options:
    opts = _re2.RE2.Options()
    opts.log_errors = False  # Errors are raised, never written to the process's stderr.
    opts.never_capture = not capture  # Without groups RE2 answers "does it match" from its DFA alone.
    return opts


_CAPTURE = _options(capture=True)
_BOOLEAN = _options(capture=False)


def _go_reason(error: bytes, wrapped: str) -> str:
    """RE2's error text as Go's (``code: `arg```); an argument that is our whole wrapped pattern is left out."""
    text = error.decode("utf-8", "replace")
    if text.startswith("pattern too large"):
        return "expression too large"
    code, sep, arg = text.partition(": ")
    code = _GO_WORDS.get(code, code)
    if not sep or arg == wrapped:
        return code
    return f"{code}: `{arg}`"


def _error(pattern: str, reason: str) -> RegexError:
    return RegexError(f"error parsing regexp {pattern!r}: {reason}", pattern=pattern, reason=reason)


def _new(text: str, options: _re2.RE2.Options, pattern: str) -> _re2.RE2:
    """RE2's program for ``text`` (``pattern``, wrapped or bare); errors name ``pattern``."""
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        raise _error(pattern, "invalid UTF-8") from None
    prog = _re2.RE2(data, options)
    if not prog.ok():
        raise _error(pattern, _go_reason(prog.error(), text))
    return prog


def _is_go_group_name(name: str) -> bool:
    return name != "" and all(c == "_" or (c.isascii() and c.isalnum()) for c in name)


def _group_names(pattern: str) -> list[str]:
    """The names of the capture groups in order (``""`` for unnamed), from a pattern RE2 accepted.

    Also refuses what RE2 accepts and Go 1.19 does not: ``\\C``, ``(?<name>``, non-ASCII group names.
    """
    names = [""]  # group 0: the whole match
    i, n = 0, len(pattern)
    in_class = False
    while i < n:
        c = pattern[i]
        if c == "\\":
            nxt = pattern[i + 1 : i + 2]
            if nxt == "Q" and not in_class:  # \Q...\E: literal text
                end = pattern.find("\\E", i + 2)
                i = n if end < 0 else end + 2
                continue
            if nxt == "C":
                raise _error(pattern, "invalid escape sequence: `\\C`")
            i += 2
        elif in_class:
            if pattern.startswith("[:", i) and pattern.find(":]", i + 2) >= 0:
                i = pattern.find(":]", i + 2) + 2
                continue
            in_class = c != "]"
            i += 1
        elif c == "[":
            in_class = True
            i += 1
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):  # a ] first in a class is a literal
                i += 1
        elif c == "(":
            if pattern.startswith("(?P<", i):
                end = pattern.find(">", i)
                name = pattern[i + 4 : end]
                if not _is_go_group_name(name):
                    raise _error(pattern, f"invalid named capture: `{pattern[i:end + 1]}`")
                names.append(name)
            elif pattern.startswith("(?<", i):
                raise _error(pattern, "invalid or unsupported Perl syntax: `(?<`")
            elif not pattern.startswith("(?", i):
                names.append("")
            i += 1
        else:
            i += 1
    return names


# --- Go's Regexp.Expand ---------------------------------------------------------------------------

#: A parsed template: literal text (str), a group number (int), or a group name (a 1-tuple).
_Part = Union[str, int, tuple[str]]


def _is_name_char(c: str) -> bool:
    # Go's extract(): unicode.IsLetter (categories L*), unicode.IsDigit (Nd) or '_'.
    return c == "_" or c.isalpha() or c.isdecimal()


@functools.lru_cache(maxsize=4096)
def parse_template(template: str) -> tuple[_Part, ...]:
    """A ``$``-template as Go's ``Regexp.Expand`` reads it: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``.

    A name is the longest run of letters, digits and ``_``; all digits (no leading zero, below 10^8)
    is a group number, anything else a name (so ``$1x`` is the group named ``1x``). A ``$`` followed by
    no valid name is literal text.
    """
    parts: list[_Part] = []
    text: list[str] = []
    i, n = 0, len(template)
    while i < n:
        dollar = template.find("$", i)
        if dollar < 0:
            text.append(template[i:])
            break
        text.append(template[i:dollar])
        i = dollar + 1
        if i < n and template[i] == "$":  # $$ is a literal $
            text.append("$")
            i += 1
            continue
        brace = i < n and template[i] == "{"
        j = i + 1 if brace else i
        k = j
        while k < n and _is_name_char(template[k]):
            k += 1
        name = template[j:k]
        if not name or (brace and (k >= n or template[k] != "}")):
            text.append("$")  # Malformed: the $ is literal text, the rest is read again.
            continue
        i = k + 1 if brace else k
        if text:
            parts.append("".join(text))
            text = []
        if name.isascii() and name.isdigit() and not (name[0] == "0" and len(name) > 1) and len(name) <= 8:
            parts.append(int(name))
        else:
            parts.append((name,))
    if text:
        parts.append("".join(text))
    return tuple(parts)


# --- compiled regexes -----------------------------------------------------------------------------

class RegexMatch:
    """A successful match: the groups' spans in the value's UTF-8 bytes."""

    __slots__ = ("regex", "_data", "_spans")

    def __init__(self, regex: Regex, data: bytes, spans: list[tuple[int, int]]):
        self.regex = regex
        self._data = data
        self._spans = spans

    def group(self, index: int = 0) -> str | None:
        """The text of group ``index``, or None when the group took no part in the match."""
        start, end = self._spans[index]
        if start < 0:
            return None
        return self._data[start:end].decode("utf-8", "surrogatepass")

    def expand(self, template: str) -> str:
        """``template`` with its ``$`` references replaced (Go's ``Regexp.ExpandString``)."""
        return self.regex.expand(template, self)


class Regex:
    """A user regex compiled as Prometheus compiles it (``^(?:PATTERN)$``). Immutable; thread-safe."""

    def __init__(self, pattern: str):
        self.pattern = pattern
        wrapped = f"^(?:{pattern})$"
        try:
            self._prog = _new(wrapped, _CAPTURE, pattern)
        except RegexError:
            _new(pattern, _BOOLEAN, pattern)  # The bare pattern's error speaks of what the user wrote...
            raise  # ...and when only the wrapped one fails (it never should), its error is the one.
        names = _group_names(pattern)
        self.groups = self._prog.NumberOfCapturingGroups()
        if len(names) != self.groups + 1:  # Only if our scan misread the pattern: trust RE2's map.
            names = [""] * (self.groups + 1)
            for name, index in self._prog.NamedCapturingGroups():
                names[index] = name.decode("utf-8")
        self._names = tuple(names)
        self._bool = _new(wrapped, _BOOLEAN, pattern) if self.groups else self._prog
        self._empty = self._bool.Match(_UNANCHORED, b"", 0, 0)[0] != _NO_MATCH

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"

    @property
    def group_names(self) -> tuple[str, ...]:
        """The name of each group (``""`` if unnamed), group 0 (the whole match) first."""
        return self._names

    def fullmatch(self, value: str) -> bool:
        """Whether ``value`` matches: Go's ``MatchString`` of ``^(?:PATTERN)$``."""
        if not value:
            return self._empty
        data = value.encode("utf-8", "surrogatepass")
        return self._bool.Match(_UNANCHORED, data, 0, len(data))[0] != _NO_MATCH

    def match(self, value: str) -> RegexMatch | None:
        """The match with its groups (Go's ``FindStringSubmatchIndex``), or None."""
        data = value.encode("utf-8", "surrogatepass")
        spans = self._prog.Match(_UNANCHORED, data, 0, len(data))
        if spans[0] == _NO_MATCH:
            return None
        return RegexMatch(self, data, spans)

    def expand(self, template: str, match: RegexMatch) -> str:
        """Go's ``Regexp.ExpandString(nil, template, value, match)``.

        A group that does not exist or took no part in the match expands to ``""``; a name refers to
        the first group of that name that took part.
        """
        out = []
        for part in parse_template(template):
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, int):
                if part <= self.groups:
                    out.append(match.group(part) or "")
            else:
                for index, name in enumerate(self._names):
                    if name == part[0] and (text := match.group(index)) is not None:
                        out.append(text)
                        break
        return "".join(out)

    # -- many values at once -----------------------------------------------------------------------

    def select(self, values: Iterable[str]) -> list[str]:
        """The values that match, in their order.

        One RE2 call per value (about 0.6 us), except for the shapes that are plain string tests
        (``.*``, ``.+``, ``lit.*``, ``.*lit``, ``.*lit.*``: ``.`` is any character but a newline).
        """
        shape = self._shape
        if shape is not None:
            return list(filter(_SHAPE_TESTS[shape[0]](shape[1]), values))
        match, u, none = self._bool.Match, _UNANCHORED, _NO_MATCH
        return [v for v in values if match(u, (b := v.encode("utf-8", "surrogatepass")), 0, len(b))[0] != none]

    def partition(self, values: Sequence[str]) -> tuple[list[str], list[str]]:
        """``(matching, not matching)`` values, each in their order."""
        shape = self._shape
        if shape is not None:
            mask = list(map(_SHAPE_TESTS[shape[0]](shape[1]), values))
        else:
            match, u, none = self._bool.Match, _UNANCHORED, _NO_MATCH
            mask = [match(u, (b := v.encode("utf-8", "surrogatepass")), 0, len(b))[0] != none for v in values]
        hits = list(itertools.compress(values, mask))
        misses = list(itertools.compress(values, [not m for m in mask]))
        return hits, misses

    @functools.cached_property
    def _shape(self) -> tuple[str, str] | None:
        """``(kind, literal)`` when the pattern is a plain string test (see :meth:`select`), else None."""
        p = self.pattern
        if p in (".*", ".+"):
            return p, ""
        starts, ends = p.startswith(".*"), p.endswith(".*")
        middle = p[2 if starts else 0 : len(p) - 2 if ends else len(p)]
        text, end = _literal_run(middle)
        if end != len(middle) or not text or "\n" in text or not (starts or ends):
            return None  # a literal alone is answered by the index from `literals`
        return ("contains" if starts and ends else "suffix" if starts else "prefix"), text

    @functools.cached_property
    def literals(self) -> frozenset[str] | None:
        """The exact set of values that match when the pattern is an alternation of plain literals
        (``a|b|c``, Prometheus's "set matcher", also in one group, ``(a|b|c)``, as Grafana writes a
        multi-value variable), else None."""
        pattern = self.pattern
        for opening in ("(?:", "("):
            if pattern.startswith(opening) and pattern.endswith(")") and not pattern.endswith("\\)"):
                pattern = pattern[len(opening):-1]  # a ( or ) left inside makes it no literal below
                break
        out = []
        for part in pattern.split("|"):
            text, end = _literal_run(part)
            if end != len(part):
                return None
            out.append(text)
        return frozenset(out)

    @functools.cached_property
    def self_contained(self) -> bool:
        """Whether the bare pattern parses on its own (else it closes our ``^(?:`` early, as ``a)|(b``)."""
        if ")" not in self.pattern:  # Only a ")" can close the wrapper's group.
            return True
        try:
            _new(self.pattern, _BOOLEAN, self.pattern)
        except RegexError:
            return False
        return True

    @functools.cached_property
    def _range(self) -> tuple[bytes, bytes] | None:
        if not self.self_contained:
            return None  # Not anchored at the start: RE2's range would not hold.
        ok, lo, hi = self._bool.PossibleMatchRange(_RANGE_LEN)
        return (lo, hi) if ok else None

    def possible_range(self) -> tuple[bytes, bytes] | None:
        """``(lo, hi)`` with ``lo <= v.encode() <= hi`` for every value ``v`` that matches, or None
        (RE2's ``PossibleMatchRange``)."""
        return self._range


_RANGE_LEN = 256

# ^(?:SHAPE)$ as string tests. Without (?s), "." is any character but a newline, so no value with a
# newline matches (the literal never holds one).
_SHAPE_TESTS = {
    ".*": lambda _: lambda v: "\n" not in v,
    ".+": lambda _: lambda v: v != "" and "\n" not in v,
    "prefix": lambda lit: lambda v: v.startswith(lit) and "\n" not in v,
    "suffix": lambda lit: lambda v: v.endswith(lit) and "\n" not in v,
    "contains": lambda lit: lambda v: lit in v and "\n" not in v,
}
_REGEX_META = frozenset(".^$*+?()[]{}|\\")


def _literal_run(pattern: str) -> tuple[str, int]:
    """The literal text at the start of ``pattern`` (escaped punctuation unescaped) and where it ends."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\":
            if i + 1 < n and pattern[i + 1].isascii() and not pattern[i + 1].isalnum():
                out.append(pattern[i + 1])
                i += 2
                continue
            break
        if c in _REGEX_META:
            break
        out.append(c)
        i += 1
    return "".join(out), i


def _utf8(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


def sorted_range(ordered: Sequence[str], regex: Regex) -> tuple[int, int]:
    """``(lo, hi)``: the only part ``ordered[lo:hi]`` of a sorted list of values that ``regex`` can match.

    Python orders strings by code point, which is the byte order of their UTF-8 encoding, so RE2's
    byte range bisects the list directly.
    """
    bounds = regex.possible_range()
    if bounds is None:
        return 0, len(ordered)
    lo = bisect.bisect_left(ordered, bounds[0], key=_utf8)
    hi = bisect.bisect_right(ordered, bounds[1], lo=lo, key=_utf8)
    return lo, hi


# --- compiling ----------------------------------------------------------------------------------

# Each compiled regex may grow RE2's lazily built DFA up to its 8 MiB budget on adversarial input, so the
# cache holds a bounded number of them (compiling again costs tens of microseconds).
@functools.lru_cache(maxsize=256)
def compile_regex(pattern: str) -> Regex:
    """``pattern`` compiled as Prometheus compiles relabel and ``label_replace`` regexes, cached.

    Raises :class:`RegexError` (a ValueError) naming the pattern when RE2 (or Go) rejects it.
    """
    return Regex(pattern)


@functools.lru_cache(maxsize=256)
def compile_matcher_regex(pattern: str) -> Regex:
    """A label matcher's regex: as :func:`compile_regex`, and the bare pattern must parse on its own."""
    rx = compile_regex(pattern)
    if not rx.self_contained:
        _new(pattern, _BOOLEAN, pattern)  # raises, with the bare pattern's error
    return rx


# --- unanchored (Prometheus's template functions) -------------------------------------------------

class SearchRegex(Regex):
    """A pattern compiled as Go's ``regexp.Compile(p)``: unanchored, for ``match`` and ``reReplaceAll``
    in templates. Raises :class:`RegexError` as :class:`Regex` does."""

    def __init__(self, pattern: str):  # noqa: D107 - no wrapping, unlike Regex
        self.pattern = pattern
        self._prog = _new(pattern, _CAPTURE, pattern)
        self.groups = self._prog.NumberOfCapturingGroups()
        names = [""] * (self.groups + 1)
        for name, index in self._prog.NamedCapturingGroups():
            names[index] = name.decode("utf-8")
        self._names = tuple(names)
        self._bool = self._prog
        self._empty = self._prog.Match(_UNANCHORED, b"", 0, 0)[0] != _NO_MATCH

    def search(self, value: str) -> bool:
        """Go's ``MatchString``: whether the pattern matches anywhere in ``value``."""
        data = value.encode("utf-8", "surrogatepass")
        return self._prog.Match(_UNANCHORED, data, 0, len(data))[0] != _NO_MATCH

    def replace_all(self, text: str, repl: str) -> str:
        """Go's ``ReplaceAllString``: every non-overlapping match replaced by ``repl`` with ``$``
        references expanded; an empty match right after a match is not replaced."""
        data = text.encode("utf-8", "surrogatepass")
        out: list[bytes] = []
        last_end = 0
        pos = 0
        n = len(data)
        while pos <= n:
            spans = self._prog.Match(_UNANCHORED, data, pos, n)
            start, end = spans[0]
            if start < 0:
                break
            out.append(data[last_end:start])
            if end > last_end or start == 0:
                out.append(self.expand(repl, RegexMatch(self, data, list(spans))).encode("utf-8", "surrogatepass"))
            last_end = end
            width = 1
            if pos < n:
                b = data[pos]
                width = 1 if b < 0xC0 else 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            if pos + width > end:
                pos += width
            elif pos + 1 > end:
                pos += 1
            else:
                pos = end
        out.append(data[last_end:])
        return b"".join(out).decode("utf-8", "surrogatepass")


@functools.lru_cache(maxsize=256)
def compile_search_regex(pattern: str) -> SearchRegex:
    """``pattern`` compiled unanchored, as Go's ``regexp.Compile``; cached."""
    return SearchRegex(pattern)
