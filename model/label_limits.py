"""Limits on the labels of one series, as Prometheus's scrape ``label_limit``,
``label_name_length_limit`` and ``label_value_length_limit`` (0: no limit), and a bounded way to show
a series in an error message.

The wording of a refusal is Prometheus's own (``scrape/scrape.go``'s ``verifyLabelLimits``), so the
same limit reads the same whether a scrape, a remote write or a push hit it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from shardmon.model.labels import METRIC_NAME

#: How much of a name or value an error message quotes (as Prometheus's ``%.50s``).
EXCERPT = 50


class LabelLimits(NamedTuple):
    label_limit: int = 0  # labels per series, __name__ included
    label_name_length_limit: int = 0  # bytes of one label name
    label_value_length_limit: int = 0  # bytes of one label value

    def __bool__(self) -> bool:
        return any(self)

    def check(self, pairs: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
        """``(limit name, message)`` for the first limit the series' labels exceed, or None."""
        if not any(self):
            return None
        name = next((v for n, v in pairs if n == METRIC_NAME), "")
        if self.label_limit and len(pairs) > self.label_limit:
            return "label_limit", (f"label_limit exceeded (metric: {name[:EXCERPT]}, number of labels: "
                                   f"{len(pairs)}, limit: {self.label_limit})")
        # A str has at most 4 bytes per character: only a name or value that could be too long is encoded.
        for label, value in pairs:
            if self.label_name_length_limit and 4 * len(label) > self.label_name_length_limit:
                size = len(label.encode())
                if size > self.label_name_length_limit:
                    return "label_name_length_limit", (
                        f"label_name_length_limit exceeded (metric: {name[:EXCERPT]}, label name: "
                        f"{label[:EXCERPT]}, length: {size}, limit: {self.label_name_length_limit})")
            if self.label_value_length_limit and 4 * len(value) > self.label_value_length_limit:
                size = len(value.encode())
                if size > self.label_value_length_limit:
                    return "label_value_length_limit", (
                        f"label_value_length_limit exceeded (metric: {name[:EXCERPT]}, label name: "
                        f"{label[:EXCERPT]}, value: {quote(value[:EXCERPT])}, length: {size}, "
                        f"limit: {self.label_value_length_limit})")
        return None


def quote(text: str) -> str:
    """Go's ``%q`` of a string: printable characters kept, others escaped."""
    out = ['"']
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\x{ord(c):02x}")
        elif not c.isprintable() and c != " ":
            out.append(f"\\u{ord(c):04x}" if ord(c) < 0x10000 else f"\\U{ord(c):08x}")
        else:
            out.append(c)
    return "".join(out) + '"'


def show_series(pairs: Sequence[tuple[str, str]], max_labels: int = 10) -> str:
    """A series for an error message, bounded whatever its size: ``name{a="v", ...}`` with at most
    ``max_labels`` labels and every name and value cut at :data:`EXCERPT` characters."""
    name = next((v for n, v in pairs if n == METRIC_NAME), "")
    shown = []
    for n, v in pairs:
        if n == METRIC_NAME:
            continue
        if len(shown) == max_labels:
            shown.append("...")
            break
        shown.append(f"{excerpt(n)}={quote(v[:EXCERPT])[:-1]}{'...' if len(v) > EXCERPT else ''}\"")
    return f"{excerpt(name)}{{{', '.join(shown)}}}"


def excerpt(text: str) -> str:
    """``text`` cut at :data:`EXCERPT` characters (then ``...``)."""
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "..."
