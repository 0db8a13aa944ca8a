"""Go values as the template executor sees them: which Python value stands for which Go type.

text/template works on Go values through reflection; their static types decide what a missing map key
gives, which functions accept them and how ``fmt`` prints them. Python values map to Go types so::

    str -> string        int -> int          float -> float64      bool -> bool
    None -> nil          NO_VALUE -> an invalid reflect.Value (printed "<no value>")
    StrMap -> map[string]string (a missing key is "")
    dict -> map[string]interface {} (a missing key is no value)
    list -> []interface {}
    HTML -> html/template.HTML (a string kind, but not assignable to string)
    GoStruct -> a struct with named fields; GoPointer -> a pointer to one (printed &{...})
    GoTime -> *time.Time (prints as time.Time.String())
    GoStringer -> a pointer to another Go type with a String method (printed as it; e.g. a native
        histogram, *histogram.FloatHistogram)

A Python callable in the data is a Go func value (for ``call``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

__all__ = ["NO_VALUE", "StrMap", "HTML", "GoStruct", "GoPointer", "GoTime", "GoStringer", "go_type", "kind", "is_true"]


class _NoValue:
    """An invalid reflect.Value: a missing key of a map of interfaces, a nil interface."""

    _instance: _NoValue | None = None

    def __new__(cls) -> _NoValue:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NO_VALUE"


NO_VALUE = _NoValue()


class StrMap(dict):
    """A Go ``map[string]string``: looking up a missing key gives ``""`` (missingkey=zero)."""


class HTML(str):
    """Go's ``html/template.HTML`` (what ``safeHtml`` returns)."""


class GoStruct:
    """A Go struct value: ``fields`` in declaration order, each (name, Go type name), and their values."""

    __slots__ = ("type_name", "fields", "values")

    def __init__(self, type_name: str, fields: list[tuple[str, str]], values: dict[str, Any]):
        self.type_name = type_name
        self.fields = fields
        self.values = values


class GoPointer:
    """A non-nil pointer to a :class:`GoStruct` (fields read through it; printed ``&{...}`` at top level)."""

    __slots__ = ("target",)

    def __init__(self, target: GoStruct):
        self.target = target


class GoStringer:
    """A pointer to a Go value of type ``type_name`` that fmt prints through its ``String()``: ``text``."""

    __slots__ = ("type_name", "text")

    def __init__(self, type_name: str, text: str):
        self.type_name = type_name
        self.text = text

    def string(self) -> str:
        return self.text


class GoTime:
    """A Go ``*time.Time`` in UTC, held as integer nanoseconds since the Unix epoch."""

    __slots__ = ("ns",)

    def __init__(self, ns: int):
        self.ns = ns

    def string(self) -> str:
        """Go's ``time.Time.String()``: ``2006-01-02 15:04:05.999999999 +0000 UTC``."""
        secs, frac = divmod(self.ns, 1_000_000_000)
        days, rem = divmod(secs, 86400)
        y, m, d = _civil_from_days(days)
        hh, rem = divmod(rem, 3600)
        mm, ss = divmod(rem, 60)
        year = f"-{-y:04d}" if y < 0 else f"{y:04d}"
        text = f"{year}-{m:02d}-{d:02d} {hh:02d}:{mm:02d}:{ss:02d}"
        if frac:
            text += ("." + f"{frac:09d}").rstrip("0")
        return text + " +0000 UTC"

    # Methods a template may call on a *time.Time (Go's names).
    def Unix(self) -> int:  # noqa: N802 - Go's method names
        return self.ns // 1_000_000_000

    def UnixMilli(self) -> int:  # noqa: N802
        return self.ns // 1_000_000

    def UnixNano(self) -> int:  # noqa: N802
        return self.ns

    def String(self) -> str:  # noqa: N802
        return self.string()

    def UTC(self) -> GoTime:  # noqa: N802
        return self

    def Year(self) -> int:  # noqa: N802
        return _civil_from_days(self.ns // 1_000_000_000 // 86400)[0]


GO_TIME_METHODS = frozenset({"Unix", "UnixMilli", "UnixNano", "String", "UTC", "Year"})


def _civil_from_days(z: int) -> tuple[int, int, int]:
    """(year, month, day) of the proleptic Gregorian calendar for ``z`` days after 1970-01-01."""
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    return (y + 1 if m <= 2 else y), m, d


def go_type(v: Any) -> str:
    """The Go type name of a value, as ``%T`` and error messages print it."""
    if v is None or v is NO_VALUE:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, HTML):
        return "template.HTML"
    if isinstance(v, str):
        return "string"
    if isinstance(v, StrMap):
        return "map[string]string"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, list):
        return getattr(v, "go_type_name", "[]interface {}")
    if isinstance(v, GoStruct):
        return v.type_name
    if isinstance(v, GoPointer):
        return "*" + v.target.type_name
    if isinstance(v, GoTime):
        return "*time.Time"
    if isinstance(v, GoStringer):
        return v.type_name
    if callable(v):
        return "func(...interface {}) (interface {}, error)"
    return type(v).__name__


def kind(v: Any) -> str:
    """The reflect Kind of a value: bool, int, float, string, map, slice, struct, ptr, func, invalid."""
    if v is None or v is NO_VALUE:
        return "invalid"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map"
    if isinstance(v, list):
        return "slice"
    if isinstance(v, GoStruct):
        return "struct"
    if isinstance(v, (GoPointer, GoTime, GoStringer)):
        return "ptr"
    if isinstance(v, Callable):
        return "func"
    return "struct"


def is_true(v: Any) -> bool:
    """Go template truth: false, 0, nil and empty strings, maps and slices are false; structs are true."""
    k = kind(v)
    if k == "invalid":
        return False
    if k in ("bool", "int"):
        return bool(v)
    if k == "float":
        return v != 0 or math.isnan(v)  # NaN != 0 in Go too: it is true
    if k in ("string", "map", "slice"):
        return len(v) > 0
    return True
