"""Field selectors (``fieldSelector``) of the metrics lists (pure logic): apimachinery's
``fields.ParseSelector`` for the fields Metrics Server and custom-metrics-apiserver match,
``metadata.name`` (and ``metadata.namespace`` for namespaced objects); requirements ``f=v``, ``f==v`` and
``f!=v`` joined by commas (``\\,`` escapes a comma in a value). Any other field is a 400 naming it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from shardmon.model.errors import BadRequestError


class FieldSelectorError(BadRequestError):
    """A field selector that does not parse, or names a field the resource cannot be selected by."""


@dataclass(frozen=True)
class FieldSelector:
    requirements: tuple[tuple[str, str, str], ...] = ()  # (field, "=" or "!=", value)

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all((fields.get(f, "") == v) == (op == "=") for f, op, v in self.requirements)

    def exact(self, name: str) -> str | None:
        """The value an ``=`` requirement on ``name`` demands (None when there is none)."""
        return next((v for f, op, v in self.requirements if f == name and op == "="), None)


_SPLIT = re.compile(r"(?<!\\),")


def parse_field_selector(text: str | None, allowed: tuple[str, ...]) -> FieldSelector:
    """``text`` as a field selector over the ``allowed`` fields; empty selects everything."""
    if not text or not text.strip():
        return FieldSelector()
    reqs = []
    for part in _SPLIT.split(text):
        m = re.fullmatch(r"\s*([^=!\s]+)\s*(==|!=|=)(.*)", part)
        if not m:
            raise FieldSelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        field, op, value = m.group(1), m.group(2), m.group(3).replace("\\,", ",").replace("\\=", "=")
        if field not in allowed:
            raise FieldSelectorError(f'field label not supported: {field} (the fields are {", ".join(allowed)})')
        reqs.append((field, "!=" if op == "!=" else "=", value))
    return FieldSelector(tuple(reqs))


__all__ = ["FieldSelector", "FieldSelectorError", "parse_field_selector"]
