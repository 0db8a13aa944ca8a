"""Go's ``fmt`` for template values: ``Sprint``, ``Sprintln``, ``Sprintf`` and the float formats.

Go's float formatting differs from Python's: ``%v`` is ``%g`` with the shortest round-trip digits and an
exponent (at least two digits: ``1e+06``) when the decimal exponent is below -4 or at least 6 for the
shortest form (``%.Ng``: at least N); infinities print ``+Inf``/``-Inf`` and NaN ``NaN`` (see
:func:`format_float`, Go's ``strconv.FormatFloat``). Verbs that do not fit a value print Go's
``%!verb(type=value)``; missing operands ``%!verb(MISSING)``; extra ones ``%!(EXTRA type=value)``.

Not supported: ``%x`` of floats (hex mantissa) and ``%p``; pointers nested in composites print a fixed
made-up address (Go prints the real one).
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

from shardmon.model.gotemplate.values import (
    NO_VALUE,
    GoPointer,
    GoStringer,
    GoStruct,
    GoTime,
    go_type,
    kind,
)

__all__ = ["sprint", "sprintln", "sprintf", "format_float", "go_quote"]


# --- floats ---------------------------------------------------------------------------------------

def _digits(v: float, prec: int | None, mode: str) -> tuple[str, int]:
    """Decimal digits (no trailing zeros, at least "0") and the decimal point position of abs(v).

    ``prec`` None: the shortest digits that round-trip (Go's and Python's repr agree). ``mode`` "e":
    ``prec`` significant digits; "f": ``prec`` digits after the point.
    """
    if v == 0:
        return "0", 1
    if prec is None:
        d = Decimal(repr(abs(v)))
    elif mode == "e":
        d = Decimal(f"{abs(v):.{max(prec - 1, 0)}e}")
    else:
        d = Decimal(f"{abs(v):.{prec}f}")
    sign, digits, exp = d.normalize().as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    if ds == "0":
        return "0", 1
    return ds, len(digits) + exp


def _fmt_e(neg: bool, ds: str, dp: int, prec: int, upper: bool) -> str:
    """``d.ddddde±dd`` with ``prec`` digits after the point (Go's fmtE)."""
    first, rest = ds[0], ds[1:]
    rest = (rest + "0" * prec)[:prec] if prec >= 0 else rest
    exp = dp - 1 if ds != "0" else 0
    es = f"{abs(exp):02d}"
    out = first + ("." + rest if prec > 0 else "") + ("E" if upper else "e") + ("-" if exp < 0 else "+") + es
    return ("-" if neg else "") + out


def _fmt_f(neg: bool, ds: str, dp: int, prec: int) -> str:
    if dp > 0:
        ip = (ds[:dp] + "0" * max(dp - len(ds), 0))
        frac = ds[dp:]
    else:
        ip = "0"
        frac = "0" * (-dp) + ds
    frac = (frac + "0" * prec)[:prec]
    return ("-" if neg else "") + ip + ("." + frac if prec > 0 else "")


def format_float(v: float, verb: str = "g", prec: int = -1) -> str:
    """Go's ``strconv.FormatFloat(v, verb, prec, 64)`` for verbs e E f F g G (prec -1: shortest)."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    neg = math.copysign(1.0, v) < 0
    shortest = prec < 0
    lv = verb.lower()
    if lv == "e":
        ds, dp = _digits(v, None if shortest else prec + 1, "e")
        return _fmt_e(neg, ds, dp, len(ds) - 1 if shortest else prec, verb == "E")
    if lv == "f":
        ds, dp = _digits(v, None if shortest else prec, "f")
        return _fmt_f(neg, ds, dp, max(len(ds) - dp, 0) if shortest else prec)
    # g / G
    if shortest:
        ds, dp = _digits(v, None, "e")
        eprec = 6
    else:
        p = prec if prec > 0 else 1
        ds, dp = _digits(v, p, "e")
        eprec = p
        if eprec > len(ds) and len(ds) >= dp:
            eprec = len(ds)
    exp = dp - 1
    if exp < -4 or exp >= eprec:
        return _fmt_e(neg, ds, dp, len(ds) - 1, verb == "G")
    return _fmt_f(neg, ds, dp, max(len(ds) - dp, 0))


# --- quoting --------------------------------------------------------------------------------------

_ESC = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
        "\\": "\\\\"}


def go_quote(s: str, quote: str = '"', ascii_only: bool = False) -> str:
    """Go's ``strconv.Quote`` (``QuoteToASCII`` with ``ascii_only``)."""
    out = [quote]
    for c in s:
        o = ord(c)
        if c == quote:
            out.append("\\" + c)
        elif c in _ESC:
            out.append(_ESC[c])
        elif c.isprintable() and not (ascii_only and o >= 0x80):
            out.append(c)
        elif o < 0x80 or (0xDC80 <= o <= 0xDCFF):  # (a surrogate-escaped invalid byte)
            out.append(f"\\x{o & 0xFF:02x}")
        elif o < 0x10000:
            out.append(f"\\u{o:04x}")
        else:
            out.append(f"\\U{o:08x}")
    out.append(quote)
    return "".join(out)


# --- %v -------------------------------------------------------------------------------------------

def _value(v: Any, top: bool = True, verb: str = "v") -> str:
    """``%v`` of a value (composites apply ``verb`` to their elements, as Go's printValue does)."""
    if v is None or v is NO_VALUE:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return format_float(v, "g", -1)
    if isinstance(v, str):
        return str.__str__(v)
    if isinstance(v, (GoTime, GoStringer)):
        return v.string()
    if isinstance(v, dict):
        keys = sorted(v)
        inner = " ".join(f"{_elem(k, verb)}:{_elem(v[k], verb)}" for k in keys)
        return f"map[{inner}]"
    if isinstance(v, list):
        return "[" + " ".join(_elem(e, verb) for e in v) + "]"
    if isinstance(v, GoStruct):
        return "{" + " ".join(_elem(v.values.get(name), verb, ftype) for name, ftype in v.fields) + "}"
    if isinstance(v, GoPointer):
        if top:
            return "&" + _value(v.target, True, verb)
        return "0xc000010000"  # Go prints the address; it cannot be reproduced.
    if callable(v):
        return "0x4a5b60"
    return str(v)


def _elem(v: Any, verb: str, ftype: str = "") -> str:
    if v is None and ftype.startswith("map["):
        return "map[]"
    if verb == "v" or verb == "s" and isinstance(v, str):
        return _value(v, False, verb)
    return _format_one(v, verb, _Spec(), depth=1)


# --- Sprint ---------------------------------------------------------------------------------------

def sprint(*args: Any) -> str:
    """Go's ``fmt.Sprint``: a space between operands when neither is a string."""
    out = []
    prev_string = True
    for i, a in enumerate(args):
        is_string = isinstance(a, str)
        if i > 0 and not is_string and not prev_string:
            out.append(" ")
        out.append(_value(a))
        prev_string = is_string
    return "".join(out)


def sprintln(*args: Any) -> str:
    """Go's ``fmt.Sprintln``: operands separated by spaces, then a newline."""
    return " ".join(_value(a) for a in args) + "\n"


# --- Sprintf --------------------------------------------------------------------------------------

class _Spec:
    __slots__ = ("minus", "plus", "sharp", "space", "zero", "width", "prec")

    def __init__(self) -> None:
        self.minus = self.plus = self.sharp = self.space = self.zero = False
        self.width: int | None = None
        self.prec: int | None = None


def _pad(s: str, spec: _Spec, numeric: bool = False) -> str:
    if spec.width is None or len(s) >= spec.width:
        return s
    n = spec.width - len(s)
    if spec.minus:
        return s + " " * n
    if spec.zero and numeric:
        sign = s[0] if s[:1] in "+- " and s[:1] != "" else ""
        return sign + "0" * n + s[len(sign):]
    if spec.zero and not numeric:
        return "0" * n + s
    return " " * n + s


def _sign(s: str, spec: _Spec) -> str:
    if s.startswith("-"):
        return s
    if spec.plus:
        return "+" + s
    if spec.space:
        return " " + s
    return s


def _bad(verb: str, v: Any) -> str:
    if v is None or v is NO_VALUE:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type(v)}={_value(v)})"


def _format_int(v: int, verb: str, spec: _Spec) -> str | None:
    neg = v < 0
    a = abs(v)
    if verb in "vd":
        body = str(a)
    elif verb == "b":
        body = format(a, "b")
    elif verb in "oO":
        body = format(a, "o")
        if verb == "O":
            body = "0o" + body
        elif spec.sharp:
            body = "0" + body
    elif verb in "xX":
        body = format(a, "x" if verb == "x" else "X")
        if spec.sharp:
            body = ("0x" if verb == "x" else "0X") + body
    elif verb == "c":
        return _pad(chr(v) if 0 <= v <= 0x10FFFF else "\ufffd", spec)
    elif verb == "q":
        return _pad(go_quote(chr(v) if 0 <= v <= 0x10FFFF else "\ufffd", "'"), spec)
    elif verb == "U":
        return _pad(f"U+{v:04X}", spec)
    else:
        return None
    if spec.prec is not None:
        body = body.rjust(spec.prec, "0") if spec.prec > 0 or a != 0 else ""
        spec.zero = False
    s = _sign(("-" if neg else "") + body, spec)
    return _pad(s, spec, numeric=True)


def _format_float(v: float, verb: str, spec: _Spec) -> str | None:
    if verb not in "vgGeEfF":
        return None
    f = "g" if verb == "v" else verb
    prec = spec.prec if spec.prec is not None else (6 if f in "eEfF" else -1)
    s = format_float(v, f, prec)
    if f == "F":
        s = format_float(v, "f", prec)
    if math.isinf(v) or math.isnan(v):
        if s == "+Inf" and not spec.plus:
            s = " Inf" if spec.space else "+Inf"
        if s == "NaN" and (spec.plus or spec.space):
            s = ("+" if spec.plus else " ") + s
        zero = spec.zero
        spec.zero = False
        out = _pad(s, spec)
        spec.zero = zero
        return out
    return _pad(_sign(s, spec), spec, numeric=True)


def _format_str(s: str, verb: str, spec: _Spec) -> str | None:
    if verb in "vs":
        if spec.prec is not None:
            s = s[:spec.prec]
        return _pad(s, spec)
    if verb == "q":
        if spec.sharp and "`" not in s and all(c.isprintable() or c == "\t" for c in s):
            return _pad("`" + s + "`", spec)
        return _pad(go_quote(s, '"', ascii_only=spec.plus), spec)
    if verb in "xX":
        data = s.encode("utf-8", "surrogateescape")
        if spec.prec is not None:
            data = data[:spec.prec]
        form = "{:02x}" if verb == "x" else "{:02X}"
        parts = [form.format(b) for b in data]
        prefix = ("0x" if verb == "x" else "0X") if spec.sharp else ""
        if spec.space:
            return _pad(" ".join(prefix + p for p in parts), spec)
        return _pad(prefix + "".join(parts), spec)
    return None


def _format_one(v: Any, verb: str, spec: _Spec, depth: int = 0) -> str:
    if verb == "T":
        return _pad(go_type(v), spec)
    if v is None or v is NO_VALUE:
        return _pad("<nil>", spec) if verb == "v" else _bad(verb, v)
    k = kind(v)
    out: str | None
    if k == "bool":
        out = _pad("true" if v else "false", spec) if verb in "vt" else None
    elif k == "int":
        out = _format_int(v, verb, spec)
    elif k == "float":
        out = _format_float(v, verb, spec)
    elif k == "string":
        out = _format_str(str.__str__(v), verb, spec)
    elif isinstance(v, (GoTime, GoStringer)):
        out = _format_str(v.string(), verb, spec) if verb in "vsqxX" else None
    elif isinstance(v, (dict, list, GoStruct, GoPointer)):
        out = _pad(_value(v, depth == 0, verb), spec)
    else:
        out = _pad(_value(v), spec) if verb == "v" else None
    return _bad(verb, v) if out is None else out


def sprintf(fmt: str, *args: Any) -> str:
    """Go's ``fmt.Sprintf`` for the verbs templates use (see the module docstring)."""
    out: list[str] = []
    i, n = 0, len(fmt)
    argi = 0
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        i = j + 1
        if i >= n:
            out.append("%!(NOVERB)")
            break
        spec = _Spec()
        while i < n and fmt[i] in "-+# 0":
            c = fmt[i]
            spec.minus |= c == "-"
            spec.plus |= c == "+"
            spec.sharp |= c == "#"
            spec.space |= c == " "
            spec.zero |= c == "0"
            i += 1
        if i < n and fmt[i] == "*":
            i += 1
            if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                spec.width = args[argi]
                if spec.width < 0:
                    spec.minus, spec.width = True, -spec.width
            else:
                out.append("%!(BADWIDTH)")
            argi += 1
        else:
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > start:
                spec.width = int(fmt[start:i])
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if argi < len(args) and isinstance(args[argi], int) and not isinstance(args[argi], bool):
                    spec.prec = args[argi] if args[argi] >= 0 else None
                else:
                    out.append("%!(BADPREC)")
                argi += 1
            else:
                start = i
                while i < n and fmt[i].isdigit():
                    i += 1
                spec.prec = int(fmt[start:i]) if i > start else 0
        if spec.minus:
            spec.zero = False
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_format_one(args[argi], verb, spec))
        argi += 1
    if argi < len(args):
        extra = ", ".join("<nil>" if a is None or a is NO_VALUE else f"{go_type(a)}={_value(a)}"
                          for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)

