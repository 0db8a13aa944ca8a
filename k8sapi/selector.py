"""Kubernetes label selectors (``labelSelector``, ``metricLabelSelector``): parsed as apimachinery's
``labels.Parse`` reads them, matched against a label set, errors naming the position (pure logic).

Grammar: requirements separated by commas; each is ``key``, ``!key``, ``key=value``, ``key==value``,
``key!=value``, ``key in (v1,v2)``, ``key notin (v1,v2)``, ``key>N`` or ``key<N`` (N an integer).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from shardmon.model.errors import BadRequestError

EXISTS, NOT_EXISTS, EQUALS, NOT_EQUALS, IN, NOT_IN, GT, LT = (
    "exists", "!", "=", "!=", "in", "notin", "gt", "lt")

# A qualified name with an optional DNS-subdomain prefix (a label key), and a label value (may be empty).
_KEY = re.compile(r"([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                  r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?")
_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
_TOKEN = re.compile(r"\s*(==|!=|=|!|,|\(|\)|<|>|[^\s=!,()<>]+)")


class SelectorError(BadRequestError):
    """A label selector that cannot be parsed (HTTP 400 as a Kubernetes ``Status`` with reason BadRequest)."""


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str                       # one of the constants above
    values: tuple[str, ...] = ()  # one value for =, !=, gt, lt; several for in/notin; none for exists/!

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.op == EXISTS:
            return has
        if self.op == NOT_EXISTS:
            return not has
        value = labels.get(self.key)
        if self.op in (EQUALS, IN):
            return has and value in self.values
        if self.op in (NOT_EQUALS, NOT_IN):
            return not has or value not in self.values
        try:  # gt/lt compare integers; a label that is not one never matches
            n = int(value) if has else None
        except ValueError:
            return False
        return n is not None and (n > int(self.values[0]) if self.op == GT else n < int(self.values[0]))


@dataclass(frozen=True)
class Selector:
    requirements: tuple[Requirement, ...] = ()
    text: str = ""

    @property
    def empty(self) -> bool:
        return not self.requirements

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return self.text


EVERYTHING = Selector()


def _tokens(text: str) -> list[tuple[int, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            if not text[pos:].strip():
                break
            raise SelectorError(f"unable to parse requirement: at position {pos}: unexpected {text[pos]!r}")
        out.append((m.start(1), m.group(1)))
        pos = m.end()
    return out


def parse_selector(text: str | None) -> Selector:
    """``text`` as a selector; empty or None selects everything. Raises SelectorError naming the position."""
    if not text or not text.strip():
        return EVERYTHING
    toks = _tokens(text)
    reqs: list[Requirement] = []
    i = 0

    def err(at: int, what: str) -> SelectorError:
        pos = toks[at][0] if at < len(toks) else len(text)
        return SelectorError(f"unable to parse requirement: at position {pos}: {what}")

    def key_at(at: int) -> str:
        if at >= len(toks) or toks[at][1] in "=!,()<>" or toks[at][1] in ("==", "!="):
            raise err(at, "found a key that is missing")
        key = toks[at][1]
        if not _KEY.fullmatch(key) or len(key.rsplit("/", 1)[-1]) > 63:
            raise err(at, f"invalid label key {key!r}: a qualified name must consist of alphanumeric characters, "
                          "'-', '_' or '.', and must start and end with an alphanumeric character")
        return key

    def value_at(at: int) -> str:
        if at >= len(toks) or toks[at][1] in ("==", "!=", "=", "!", "(", ")", "<", ">"):
            return ""
        if toks[at][1] == ",":
            return ""
        v = toks[at][1]
        if not _VALUE.fullmatch(v):
            raise err(at, f"invalid label value {v!r}: a valid label must be an empty string or consist of "
                          "alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric "
                          "character")
        return v

    while i < len(toks):
        if toks[i][1] == "!":
            key = key_at(i + 1)
            reqs.append(Requirement(key, NOT_EXISTS))
            i += 2
        else:
            key = key_at(i)
            i += 1
            op = toks[i][1] if i < len(toks) else ","
            if op == ",":
                reqs.append(Requirement(key, EXISTS))
            elif op in ("=", "==", "!="):
                v = value_at(i + 1)
                reqs.append(Requirement(key, NOT_EQUALS if op == "!=" else EQUALS, (v,)))
                i += 2 if v else 1  # an empty value is no token
            elif op in ("<", ">"):
                v = toks[i + 1][1] if i + 1 < len(toks) else ""
                if not re.fullmatch(r"-?\d+", v):
                    raise err(i + 1, f"for 'Gt', 'Lt' operators, the value must be an integer, not {v!r}")
                reqs.append(Requirement(key, GT if op == ">" else LT, (v,)))
                i += 2
            elif op in ("in", "notin"):
                if i + 1 >= len(toks) or toks[i + 1][1] != "(":
                    raise err(i + 1, "found end of string, expected: '('" if i + 1 >= len(toks)
                              else f"found {toks[i + 1][1]!r}, expected: '('")
                i += 2
                values: list[str] = []
                while True:
                    if i >= len(toks):
                        raise err(i, "found end of string, expected: ')'")
                    t = toks[i][1]
                    if t == ")":
                        i += 1
                        break
                    if t == ",":
                        if toks[i - 1][1] in ("(", ","):
                            values.append("")  # an empty value between commas
                        i += 1
                        continue
                    values.append(value_at(i))
                    i += 1
                reqs.append(Requirement(key, IN if op == "in" else NOT_IN, tuple(dict.fromkeys(values))))
            else:
                raise err(i, f"found {op!r}, expected: in, notin, =, ==, !=, gt, lt")
        if i < len(toks):
            if toks[i][1] != ",":
                raise err(i, f"found {toks[i][1]!r}, expected: ',' or end of string")
            i += 1
            if i >= len(toks):
                raise err(i, "found end of string, expected: identifier")
    return Selector(tuple(reqs), text.strip())


__all__ = ["EQUALS", "EVERYTHING", "EXISTS", "GT", "IN", "LT", "NOT_EQUALS", "NOT_EXISTS", "NOT_IN", "Requirement",
           "Selector", "SelectorError", "parse_selector"]
