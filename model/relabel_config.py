"""``relabel_configs`` and ``metric_relabel_configs`` entries, checked as Prometheus 2.x checks them.

:class:`RelabelConfig` has Prometheus's fields, defaults and ``Validate()`` rules; every error names
the field it is about, e.g. ``scrape_configs[0].relabel_configs[1].modulus: relabel configuration for
hashmod requires non-zero modulus``. ``ingest/relabel.py`` applies the configs.

Regexes are RE2 in Prometheus and Python's ``re`` here: :func:`compile_relabel_regex` translates the
RE2 syntax (fully anchored as Prometheus's ``^(?:REGEX)$``, ASCII ``\\d \\w \\s \\b``, ``$`` as the end
of the text, octal and ``\\x{...}`` escapes, ``\\Q...\\E``, ``[[:alpha:]]``) and rejects what RE2 rejects
(look-arounds, back-references, possessive repeats, ``\\Z``). Unicode classes (``\\pL``) and the ungreedy
flag ``(?U)`` are RE2 syntax that Python lacks: such a regex is refused with a message saying so.
"""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from model.labels import is_valid_label_name, python_regex

ACTIONS = (
    "replace", "keep", "drop", "keepequal", "dropequal", "hashmod",
    "labelmap", "labeldrop", "labelkeep", "lowercase", "uppercase",
)

DEFAULT_SEPARATOR = ";"
DEFAULT_REGEX = "(.*)"
DEFAULT_REPLACEMENT = "$1"
_UINT64_MAX = (1 << 64) - 1

# Prometheus's ``relabelTarget``, ``^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`` (Go's ``\w`` is ASCII),
# rewritten to the same language without nested repeats, so Python cannot backtrack exponentially.
_W = "[0-9A-Za-z_]"
_VAR = rf"\$(?:\{{{_W}+\}}|{_W}++)"
_RELABEL_TARGET = re.compile(rf"(?:[A-Za-z_]|{_VAR})(?:{_W}|{_VAR})*+\Z")


def is_relabel_target(template: str) -> bool:
    """Whether ``template`` may name a label once expanded (Prometheus's ``relabelTarget``)."""
    return _RELABEL_TARGET.match(template) is not None


# --- RE2 -> Python ``re`` -------------------------------------------------------------------------

_PERL = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\f\\r "}
_POSIX = {
    "alnum": "0-9A-Za-z", "alpha": "A-Za-z", "ascii": "\\x00-\\x7f", "blank": "\\t ", "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9", "graph": "!-~", "lower": "a-z", "print": " -~", "punct": "!-/:-@\\[-`{-~",
    "space": "\\t\\n\\v\\f\\r ", "upper": "A-Z", "word": "0-9A-Za-z_", "xdigit": "0-9A-Fa-f",
}
_SIMPLE_ESCAPES = frozenset("aftnrv")
_REPEAT = re.compile(r"\{(\d+)(?:(,)(\d*))?\}")
_GROUP_FLAGS = re.compile(r"\(\?([A-Za-z]*)(?:-([A-Za-z]*))?([:)])")
_MAX_REPEAT = 1000  # RE2's limit on {n,m}


class _RegexError(ValueError):
    pass


_literal = re.escape


def _unquote(pattern: str) -> str:
    """Replace RE2's ``\\Q...\\E`` literal text by escaped characters."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        if pattern.startswith("\\Q", i):
            end = pattern.find("\\E", i + 2)
            text = pattern[i + 2 : n if end < 0 else end]
            out.append("".join(_literal(c) for c in text))
            i = n if end < 0 else end + 2
        elif pattern[i] == "\\":
            out.append(pattern[i : i + 2])
            i += 2
        else:
            out.append(pattern[i])
            i += 1
    return "".join(out)


def _escape(p: str, i: int, in_class: bool) -> tuple[str, int]:
    """Translate the escape at ``p[i] == '\\\\'``; returns the Python text and the index after it."""
    if i + 1 >= len(p):
        raise _RegexError("trailing backslash at end of expression")
    c = p[i + 1]
    if c in _PERL:
        return (_PERL[c], i + 2) if in_class else (f"[{_PERL[c]}]", i + 2)
    if c in "DWS":
        return (p[i : i + 2], i + 2) if in_class else (f"[^{_PERL[c.lower()]}]", i + 2)
    if c in "bB" and not in_class:
        return f"(?a:\\{c})", i + 2
    if c == "A" and not in_class:
        return "\\A", i + 2
    if c == "z" and not in_class:
        return "\\Z", i + 2
    if c == "x":
        if p.startswith("{", i + 2):
            end = p.find("}", i + 3)
            digits = p[i + 3 : end] if end > 0 else ""
            if not digits or any(d not in "0123456789abcdefABCDEF" for d in digits) or int(digits, 16) > 0x10FFFF:
                raise _RegexError(f"invalid escape sequence: `{p[i : (end + 1) if end > 0 else len(p)]}`")
            return _literal(chr(int(digits, 16))), end + 1
        digits = p[i + 2 : i + 4]
        if len(digits) != 2 or any(d not in "0123456789abcdefABCDEF" for d in digits):
            raise _RegexError(f"invalid escape sequence: `{p[i : i + 4]}`")
        return _literal(chr(int(digits, 16))), i + 4
    if c in "01234567":
        # RE2: \0 and \1..\7 followed by another octal digit start an octal code (3 digits at most);
        # a lone \1..\7 would be a back-reference, which RE2 does not support.
        j = i + 2
        if c != "0" and not (j < len(p) and p[j] in "01234567"):
            raise _RegexError(f"invalid escape sequence: `{p[i:j]}`")
        while j < len(p) and j < i + 4 and p[j] in "01234567":
            j += 1
        return _literal(chr(int(p[i + 1 : j], 8))), j
    if c in _SIMPLE_ESCAPES:
        return p[i : i + 2], i + 2
    if c in "pP":
        raise _RegexError(f"Unicode classes such as `{p[i:i + 3]}` are not supported by Shardmon")
    if c.isascii() and not c.isalnum():
        return p[i : i + 2], i + 2  # Escaped punctuation: a literal in both.
    raise _RegexError(f"invalid escape sequence: `{p[i : i + 2]}`")


def _class(p: str, i: int) -> tuple[str, int]:
    """Translate the character class at ``p[i] == '['``."""
    out = ["["]
    j = i + 1
    if p.startswith("^", j):
        out.append("^")
        j += 1
    if p.startswith("]", j):  # A ``]`` first in a class is a literal.
        out.append("\\]")
        j += 1
    n = len(p)
    while j < n:
        c = p[j]
        if c == "\\":
            text, j = _escape(p, j, in_class=True)
            out.append(text)
        elif p.startswith("[:", j) and p.find(":]", j + 2) > 0:
            end = p.find(":]", j + 2)
            name = p[j + 2 : end]
            if name.startswith("^") and name[1:] in _POSIX:
                raise _RegexError(f"negated POSIX classes such as `[:{name}:]` are not supported by Shardmon")
            if name not in _POSIX:
                raise _RegexError(f"invalid character class range: `[:{name}:]`")
            out.append(_POSIX[name])
            j = end + 2
        elif c == "]":
            out.append("]")
            return "".join(out), j + 1
        elif c == "[":
            out.append("\\[")  # A literal in RE2; Python would warn about a nested set.
            j += 1
        elif c in "&~|" and p.startswith(c * 2, j):
            out.append(f"\\{c}")  # Set operations Python may grow; RE2 reads plain characters.
            j += 1
        else:
            out.append(c)
            j += 1
    raise _RegexError(f"missing closing ]: `{p[i:]}`")


def _translate(pattern: str) -> str:
    """RE2 syntax to Python ``re`` syntax with the same meaning, or :class:`_RegexError`."""
    p = python_regex(_unquote(pattern)) if "\\Q" in pattern else python_regex(pattern)
    out: list[str] = []
    multiline = [False]  # the (?m) state of each open group
    after_repeat = False
    i, n = 0, len(p)
    while i < n:
        c = p[i]
        repeat = False
        if c == "\\":
            text, i = _escape(p, i, in_class=False)
            out.append(text)
        elif c == "[":
            text, i = _class(p, i)
            out.append(text)
        elif c == "(":
            if p.startswith("(?P<", i):
                end = p.find(">", i)
                if end < 0:
                    raise _RegexError(f"invalid named capture: `{p[i:]}`")
                out.append(p[i : end + 1])
                multiline.append(multiline[-1])
                i = end + 1
            elif p.startswith("(?:", i):
                multiline.append(multiline[-1])
                out.append("(?:")
                i += 3
            elif p.startswith("(?", i):
                m = _GROUP_FLAGS.match(p, i)
                if m is not None and "U" in m.group(1) + (m.group(2) or ""):
                    raise _RegexError("the ungreedy flag (?U) is not supported by Shardmon")
                if m is None or m.group(3) == ")" or not (m.group(1) or m.group(2)):
                    raise _RegexError(f"invalid or unsupported Perl syntax: `{p[i:i + 3]}`")
                on, off = m.group(1), m.group(2) or ""
                if any(f not in "ims" for f in on + off):
                    raise _RegexError(f"invalid or unsupported Perl syntax: `{m.group(0)}`")
                state = multiline[-1]
                state = True if "m" in on else False if "m" in off else state
                multiline.append(state)
                out.append(m.group(0))
                i = m.end()
            else:
                multiline.append(multiline[-1])
                out.append("(")
                i += 1
        elif c == ")":
            if len(multiline) > 1:
                multiline.pop()
            out.append(")")
            i += 1
        elif c == "$":
            out.append("$" if multiline[-1] else "\\Z")  # RE2's $ is the end of the text without (?m).
            i += 1
        elif c == "{":
            m = _REPEAT.match(p, i)
            if m is None:
                out.append("\\{")  # Not a repeat: a literal in RE2 (Python reads "{,3}" as a repeat).
                i += 1
            else:
                lo, hi = int(m.group(1)), m.group(3)
                if lo > _MAX_REPEAT or (hi and int(hi) > _MAX_REPEAT) or (hi and int(hi) < lo):
                    raise _RegexError(f"invalid repeat count: `{m.group(0)}`")
                out.append(m.group(0))
                repeat = True
                i = m.end()
        elif c in "*+?":
            if after_repeat and c == "+":
                raise _RegexError(f"invalid nested repetition operator: `{p[i - 1 : i + 1]}`")
            out.append(c)
            repeat = c != "?" or not after_repeat  # "a*?" is lazy; "a*??" fails in Python as in RE2
            i += 1
        else:
            out.append(c)
            i += 1
        after_repeat = repeat
    return "".join(out)


@functools.lru_cache(maxsize=4096)
def compile_relabel_regex(pattern: str) -> re.Pattern[str]:
    """Compile a relabel regex as Prometheus does: RE2 syntax, anchored at both ends (``^(?:REGEX)$``).

    Use ``.match(value)``; the pattern ends in ``\\Z``. Raises ValueError naming the pattern.
    """
    try:
        return re.compile(f"(?:{_translate(pattern)})\\Z")
    except re.error as exc:  # exc.msg: without the position, which is in the translated text
        raise ValueError(f"error parsing regexp {pattern!r}: {exc.msg}") from None
    except (_RegexError, OverflowError) as exc:
        raise ValueError(f"error parsing regexp {pattern!r}: {exc}") from None


# --- the model ----------------------------------------------------------------------------------------

def _label_name(name: str) -> str:
    if not is_valid_label_name(name):
        raise ValueError(f"{name!r} is not a valid label name")
    return name


def _modulus(value: Any) -> int:
    # As Go's YAML decoding into uint64: integers (and floats without a fraction), nothing else.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"cannot unmarshal {value!r} into uint64")
    if not 0 <= value <= _UINT64_MAX:
        raise ValueError(f"cannot unmarshal {value!r} into uint64 (0 to 2^64-1)")
    return value


#: A field left empty (``regex:``) takes Go's zero value, as Prometheus's YAML decoding gives it.
_ZERO = {"separator": "", "regex": "", "modulus": 0, "target_label": "", "replacement": "", "action": ""}


class RelabelConfig(BaseModel):
    """One relabeling step, with Prometheus's field names, defaults and checks."""

    model_config = ConfigDict(extra="forbid", frozen=True, coerce_numbers_to_str=True)

    source_labels: list[Annotated[str, AfterValidator(_label_name)]] = Field(
        default_factory=list, description="Labels whose values are joined with the separator and matched."
    )
    separator: str = Field(DEFAULT_SEPARATOR, description="Placed between the source label values.")
    regex: str = Field(DEFAULT_REGEX, description="RE2 regex, anchored at both ends, matched with the joined value.")
    modulus: Annotated[int, BeforeValidator(_modulus)] = Field(0, description="Modulus of the hash (hashmod).")
    target_label: str = Field("", description="Label written by replace, hashmod, lowercase and uppercase.")
    replacement: str = Field(DEFAULT_REPLACEMENT, description="Value written by replace; may refer to $1, ${name}.")
    action: str = Field("replace", description="One of " + ", ".join(ACTIONS) + ".")

    @model_validator(mode="before")
    @classmethod
    def _nulls(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(v is None for v in data.values()):
            # An empty source_labels is Go's nil slice: as if not given at all.
            data = {k: _ZERO.get(k, v) if v is None else v for k, v in data.items()
                    if k != "source_labels" or v is not None}
        return data

    @field_validator("action")
    @classmethod
    def _action(cls, v: str) -> str:
        if v == "":
            return v  # Reported by the checks below, as Prometheus does.
        if v.lower() not in ACTIONS:
            raise ValueError(f"unknown relabel action {v!r}")
        return v.lower()

    @field_validator("regex")
    @classmethod
    def _regex(cls, v: str) -> str:
        compile_relabel_regex(v)
        return v

    @model_validator(mode="after")
    def _validate(self) -> RelabelConfig:
        problem = self._problem()
        if problem is not None:
            field, message = problem
            raise ValidationError.from_exception_data(
                type(self).__name__,
                [InitErrorDetails(type=PydanticCustomError("value_error", message), loc=(field,),
                                  input=getattr(self, field))],
            )
        return self

    def _problem(self) -> tuple[str, str] | None:
        """The first problem Prometheus's ``Config.Validate`` reports, as (field, message), or None."""
        a, target = self.action, self.target_label
        if a == "":
            return "action", "relabel action cannot be empty"
        if a == "hashmod" and self.modulus == 0:
            return "modulus", "relabel configuration for hashmod requires non-zero modulus"
        if a in ("replace", "hashmod", "lowercase", "uppercase", "keepequal", "dropequal") and target == "":
            return "target_label", f"relabel configuration for {a} action requires 'target_label' value"
        if a == "replace" and not (is_relabel_target(target) if "$" in target else is_valid_label_name(target)):
            return "target_label", f"{target!r} is invalid 'target_label' for {a} action"
        if a in ("lowercase", "uppercase", "keepequal", "dropequal", "hashmod") and not is_valid_label_name(target):
            return "target_label", f"{target!r} is invalid 'target_label' for {a} action"
        if a in ("lowercase", "uppercase", "keepequal", "dropequal") and self.replacement != DEFAULT_REPLACEMENT:
            return "replacement", f"'replacement' can not be set for {a} action"
        if a == "labelmap" and not is_relabel_target(self.replacement):
            return "replacement", f"{self.replacement!r} is invalid 'replacement' for {a} action"
        if a in ("keepequal", "dropequal"):
            extra = self._first_set(regex="regex" in self.model_fields_set)
            if extra:
                return extra, f"{a} action requires only 'source_labels' and `target_label`, and no other fields"
        if a in ("labeldrop", "labelkeep"):
            extra = self._first_set(source_labels="source_labels" in self.model_fields_set, target_label=target != "")
            if extra:
                return extra, f"{a} action requires only 'regex', and no other fields"
        return None

    def _first_set(self, **checks: bool) -> str | None:
        checks.update(modulus=self.modulus != 0, separator=self.separator != DEFAULT_SEPARATOR,
                      replacement=self.replacement != DEFAULT_REPLACEMENT)
        return next((field for field, is_set in checks.items() if is_set), None)

    @property
    def pattern(self) -> re.Pattern[str]:
        """The compiled, anchored regex (use ``.match``)."""
        return compile_relabel_regex(self.regex)
