"""Go's text/template builtin functions (``and or not len index slice print printf println eq ne lt le
gt ge html js urlquery call``) and :class:`GoFunc`, how any template function declares its Go signature.

A function's parameters are Go type names; the executor checks each argument against them as Go does
(``wrong type for value; expected string; got float64``). ``reflect.Value`` parameters take anything
(the builtins); ``interface {}`` takes anything, a missing value becoming nil. A function reports an
error by raising :class:`GoCallError` (or any exception): the template fails with
``error calling NAME: MESSAGE``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

from shardmon.model.errors import TemplateFunctionError
from shardmon.model.gotemplate.gofmt import sprint, sprintf, sprintln
from shardmon.model.gotemplate.values import NO_VALUE, GoPointer, GoTime, go_type, is_true, kind

__all__ = ["GoFunc", "GoCallError", "BUILTINS", "printable"]

ANY = "reflect.Value"
IFACE = "interface {}"


GoCallError = TemplateFunctionError  # a template function's Go error: ``error calling NAME: MESSAGE``


@dataclass(frozen=True)
class GoFunc:
    """A template function: ``fn`` takes Python values of the Go ``params`` (then ``variadic`` ones)."""

    fn: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: str | None = None
    lazy: bool = False  # and/or: the executor evaluates arguments one by one


def _zero(v: Any) -> bool:
    return v is None or v is NO_VALUE


def _basic(v: Any) -> str:
    if _zero(v):
        return "invalid"
    k = kind(v)
    return k if k in ("bool", "int", "float", "string") else "other"


def _comparable(v: Any) -> None:
    if isinstance(v, (dict, list)) or callable(v) and not isinstance(v, (GoPointer, GoTime)):
        raise GoCallError(f"uncomparable type {go_type(v)}: {sprint(v)}")


def _eq(a: Any, *bs: Any) -> bool:
    if not _zero(a):
        _comparable(a)
    if not bs:
        raise GoCallError("missing argument for comparison")
    k1 = _basic(a)
    for b in bs:
        k2 = _basic(b)
        if k1 != k2:
            if not _zero(a) and not _zero(b):
                raise GoCallError("incompatible types for comparison")
            truth = False
        elif k1 in ("bool", "int", "float", "string"):
            truth = (str.__str__(a) == str.__str__(b)) if k1 == "string" else a == b
        elif _zero(a) or _zero(b):
            truth = _zero(a) and _zero(b)
        else:
            _comparable(b)
            truth = a is b or (type(a) is type(b) and a == b)
        if truth:
            return True
    return False


def _lt(a: Any, b: Any) -> bool:
    k1, k2 = _basic(a), _basic(b)
    if k1 in ("invalid", "other") or k2 in ("invalid", "other"):
        raise GoCallError("invalid type for comparison")
    if k1 != k2:
        raise GoCallError("incompatible types for comparison")
    if k1 == "bool":
        raise GoCallError("invalid type for comparison")
    if k1 == "string":
        return str.__str__(a).encode("utf-8", "surrogatepass") < str.__str__(b).encode("utf-8", "surrogatepass")
    return a < b


def _ne(a: Any, b: Any) -> bool:
    return not _eq(a, b)


def _le(a: Any, b: Any) -> bool:
    return _lt(a, b) or _eq(a, b)


def _gt(a: Any, b: Any) -> bool:
    return not _le(a, b)


def _ge(a: Any, b: Any) -> bool:
    return not _lt(a, b)


def _not(a: Any) -> bool:
    return not is_true(a)


def _length(item: Any) -> int:
    if _zero(item):
        raise GoCallError("len of untyped nil")
    if isinstance(item, str):
        return len(str.__str__(item).encode("utf-8", "surrogatepass"))
    if isinstance(item, (dict, list)):
        return len(item)
    raise GoCallError(f"len of type {go_type(item)}")


def _index_arg(index: Any, cap: int) -> int:
    if _basic(index) != "int":
        raise GoCallError(f"cannot index slice/array with type {go_type(index) if not _zero(index) else '<nil>'}")
    if index < 0 or index > cap:
        raise GoCallError(f"index out of range: {index}")
    return index


def _index(item: Any, *indexes: Any) -> Any:
    if _zero(item):
        raise GoCallError("index of untyped nil")
    for index in indexes:
        if item is None:
            raise GoCallError("index of nil pointer")
        if isinstance(item, GoPointer):
            item = item.target
        if isinstance(item, str):
            data = str.__str__(item).encode("utf-8", "surrogatepass")
            x = _index_arg(index, len(data))
            if x == len(data):
                raise GoCallError("reflect: string index out of range")
            item = data[x]
        elif isinstance(item, list):
            x = _index_arg(index, len(item))
            if x == len(item):
                raise GoCallError("reflect: slice index out of range")
            item = item[x]
        elif isinstance(item, dict):
            if _zero(index):
                index = ""
            if not isinstance(index, str):
                raise GoCallError(f"value has type {go_type(index)}; should be string")
            if index in item:
                item = item[index]
            else:
                item = "" if go_type(item) == "map[string]string" else None
        else:
            raise GoCallError(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if _zero(item):
        raise GoCallError("slice of untyped nil")
    if len(indexes) > 3:
        raise GoCallError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise GoCallError("cannot 3-index slice a string")
        data = str.__str__(item).encode("utf-8", "surrogatepass")
        n = len(data)
    elif isinstance(item, list):
        data, n = item, len(item)
    else:
        raise GoCallError(f"can't slice item of type {go_type(item)}")
    idx = [0, n]
    for i, index in enumerate(indexes):
        x = _index_arg(index, n)
        if i < 2:
            idx[i] = x
    if idx[0] > idx[1]:
        raise GoCallError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > indexes[2]:
        raise GoCallError(f"invalid slice index: {idx[1]} > {indexes[2]}")
    out = data[idx[0]:idx[1]]
    if isinstance(item, str):
        return out.decode("utf-8", "surrogateescape")
    return type(item)(out) if type(item) is not list else list(out)


def printable(v: Any) -> Any:
    """What Go's printableValue hands fmt: a missing value is the text ``<no value>``."""
    if v is NO_VALUE:
        return "<no value>"
    if isinstance(v, GoPointer):
        return v.target
    return v


def _eval_args(args: tuple[Any, ...]) -> str:
    if len(args) == 1 and type(args[0]) is str:
        return args[0]
    return sprint(*("<no value>" if a is None else printable(a) for a in args))


def html_escape(s: str) -> str:
    """Go's ``template.HTMLEscapeString``."""
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\0", "\ufffd"))


_JS = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026", "=": "\\u003D"}


def js_escape(s: str) -> str:
    """Go's ``template.JSEscapeString``."""
    out = []
    for c in s:
        if c in _JS:
            out.append(_JS[c])
        elif c < " ":
            out.append(f"\\u{ord(c):04X}")
        elif ord(c) >= 0x80 and not c.isprintable():
            out.append(f"\\u{ord(c):04X}")
        else:
            out.append(c)
    return "".join(out)


def _call(fn: Any, *args: Any) -> Any:
    if _zero(fn):
        raise GoCallError("call of nil")
    if not callable(fn) or isinstance(fn, (GoPointer, GoTime)):
        raise GoCallError(f"non-function of type {go_type(fn)}")
    return fn(*args)


def _printf(fmt: str, *args: Any) -> str:
    return sprintf(fmt, *args)


BUILTINS: dict[str, GoFunc] = {
    "and": GoFunc(lambda *a: a[-1], (ANY,), ANY, lazy=True),
    "or": GoFunc(lambda *a: a[-1], (ANY,), ANY, lazy=True),
    "not": GoFunc(_not, (ANY,)),
    "len": GoFunc(_length, (ANY,)),
    "index": GoFunc(_index, (ANY,), ANY),
    "slice": GoFunc(_slice, (ANY,), ANY),
    "print": GoFunc(sprint, (), IFACE),
    "printf": GoFunc(_printf, ("string",), IFACE),
    "println": GoFunc(sprintln, (), IFACE),
    "eq": GoFunc(_eq, (ANY,), ANY),
    "ne": GoFunc(_ne, (ANY, ANY)),
    "lt": GoFunc(_lt, (ANY, ANY)),
    "le": GoFunc(_le, (ANY, ANY)),
    "gt": GoFunc(_gt, (ANY, ANY)),
    "ge": GoFunc(_ge, (ANY, ANY)),
    "html": GoFunc(lambda *a: html_escape(_eval_args(a)), (), IFACE),
    "js": GoFunc(lambda *a: js_escape(_eval_args(a)), (), IFACE),
    "urlquery": GoFunc(lambda *a: quote_plus(_eval_args(a), safe="", encoding="utf-8",
                                             errors="surrogateescape"), (), IFACE),
    "call": GoFunc(_call, (ANY,), ANY),
}

