"""Kubernetes' value formats (pure logic): ``resource.Quantity`` in its canonical form, Go's
``time.Duration`` text (``window: "5m0s"``) and ``metav1.Time`` (RFC 3339, whole seconds, UTC).

Quantities are made as their Go producers make them, then written as apimachinery's ``CanonicalizeBytes``
writes them: Metrics Server's CPU is nanocores (``NewScaledQuantity(n, -9)``, DecimalSI) and its memory
bytes (BinarySI); prometheus-adapter's custom and external values are thousandths
(``NewMilliQuantity(int64(v*1000), DecimalSI)``). A DecimalSI quantity drops its trailing zeros into the
exponent, then lowers the exponent to a multiple of three for its suffix (``n u m "" k M G T P E``):
``1500000000n`` is ``"1500m"``, ``2000m`` is ``"2"``. A BinarySI quantity of a whole number of bytes
outside (-1024, 1024) is written in the largest power of 1024 that divides it (``1264Ki``, ``3Mi``,
``1234567`` when none does); inside, as DecimalSI.

Go converts a float to int64 by truncation toward zero; out of int64's range the result is undefined
there, so here it is clamped to that range, and NaN is written as 0.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)

_DECIMAL_SUFFIX = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T", 15: "P", 18: "E"}
_BINARY_SUFFIX = {0: "", 1: "Ki", 2: "Mi", 3: "Gi", 4: "Ti", 5: "Pi", 6: "Ei"}


def go_int64(x: float) -> int:
    """Go's ``int64(x)`` for a float: truncated toward zero, clamped to int64 (NaN: 0)."""
    if math.isnan(x):
        return 0
    if x >= INT64_MAX:
        return INT64_MAX
    if x <= INT64_MIN:
        return INT64_MIN
    return int(x)


def decimal_quantity(mantissa: int, scale: int) -> str:
    """The canonical text of the DecimalSI quantity ``mantissa * 10**scale``."""
    if mantissa == 0:
        return "0"
    sign = "-" if mantissa < 0 else ""
    amount, exponent = abs(mantissa), scale
    while amount >= 10 and amount % 10 == 0:
        amount //= 10
        exponent += 1
    shift = exponent % 3  # Python's modulo is never negative: lower the exponent by 0, 1 or 2
    amount *= 10 ** shift
    exponent -= shift
    suffix = _DECIMAL_SUFFIX.get(exponent)
    if suffix is None:  # beyond E: Go would switch to the DecimalExponent form
        return f"{sign}{amount}e{exponent}"
    return f"{sign}{amount}{suffix}"


def binary_quantity(value: int) -> str:
    """The canonical text of the BinarySI quantity of a whole number ``value``."""
    if -1024 < value < 1024:
        return decimal_quantity(value, 0)
    sign = "-" if value < 0 else ""
    amount, power = abs(value), 0
    while amount >= 1024 and amount % 1024 == 0 and power < 6:
        amount //= 1024
        power += 1
    return f"{sign}{amount}{_BINARY_SUFFIX[power]}"


def cpu_quantity(cores: float) -> str:
    """CPU usage as Metrics Server writes it: whole nanocores, canonical (``"123456789n"``, ``"500m"``)."""
    return decimal_quantity(go_int64(cores * 1e9), -9)


def memory_quantity(byte_count: float) -> str:
    """Memory as Metrics Server writes it: whole bytes, BinarySI (``"1264Ki"``)."""
    return binary_quantity(go_int64(byte_count))


def milli_quantity(value: float) -> str:
    """A custom or external metric's value as prometheus-adapter writes it: ``int64(value*1000)``
    thousandths, DecimalSI (``1.5`` is ``"1500m"``, ``2`` is ``"2"``)."""
    return decimal_quantity(go_int64(value * 1000.0), -3)


def go_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()`` of ``seconds``: ``"5m0s"``, ``"30s"``, ``"1h0m0s"``, ``"1.5s"``,
    ``"500ms"``, ``"0s"`` (rounded to whole nanoseconds)."""
    ns = round(seconds * 1e9)
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:  # under a second: the largest of ns, µs, ms that keeps a whole part
        for unit, name in ((1_000_000, "ms"), (1_000, "µs"), (1, "ns")):
            if ns >= unit:
                return sign + _fraction(ns, unit) + name
    out = sign
    hours, rest = divmod(ns, 3600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    if hours:
        out += f"{hours}h{minutes}m"
    elif minutes:
        out += f"{minutes}m"
    return out + _fraction(rest, 1_000_000_000) + "s"


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    if not frac:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{frac:0{digits}d}".rstrip("0")


def rfc3339(unix_s: float) -> str:
    """``metav1.Time`` as JSON: RFC 3339 in UTC, whole seconds (``"2024-05-01T12:00:00Z"``)."""
    return datetime.fromtimestamp(math.floor(unix_s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


__all__ = ["binary_quantity", "cpu_quantity", "decimal_quantity", "go_duration", "go_int64", "memory_quantity",
           "milli_quantity", "rfc3339"]
