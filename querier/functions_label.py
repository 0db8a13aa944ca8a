"""PromQL functions that rewrite labels: ``label_replace`` and ``label_join``.

Both keep ``__name__`` and the values, and change one label of each series; a label set to the
empty string is removed. Two series left with the same labels at one step are an error.

``label_replace`` matches the whole source value against the regex (anchored at both ends, as
Prometheus's ``^(?:regex)$``) and expands the replacement as Go's ``Regexp.Expand``: ``$1``,
``${1}``, ``$name``, ``${name}``, ``$$`` for a dollar; a name is the longest run of letters, digits
and underscores, so ``$1x`` is the group named ``1x`` (which does not exist: empty), as in Go.
Python's ``re`` stands in for RE2, as for label matchers (see :func:`model.labels.python_regex`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from model.errors import QueryExecutionError
from model.labels import Labels, is_valid_label_name, python_regex
from querier.labelset import merge_same_labels
from querier.value import EvalContext, InstantVector

# What may follow a ``$`` in a replacement: a name, or a name in braces (Go's letters and digits
# are Unicode ones, as Python's \w).
_TEMPLATE_NAME = re.compile(r"\{(\w+)\}|(\w+)")


def _label_replace(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    vector, dst, replacement, src, regex = args
    try:
        # RE2's $ without the m flag is the end of the text; Python's $ would also match before a
        # final newline, hence \Z.
        pattern = re.compile(f"(?:{python_regex(regex)})\\Z")
    except re.error as exc:
        raise QueryExecutionError(f"invalid regular expression in label_replace(): {regex}") from exc
    if not is_valid_label_name(dst):
        raise QueryExecutionError(f"invalid destination label name in label_replace(): {dst}")
    labels = []
    for lbls in vector.labels:
        match = pattern.match(lbls.get(src))
        if match is None:
            labels.append(lbls)
            continue
        value = expand(replacement, match)
        labels.append(Labels.from_pairs([*(p for p in lbls if p[0] != dst), (dst, value)]))
    return merge_same_labels(labels, vector.values, vector.present)


def expand(template: str, match: re.Match[str]) -> str:
    """``template`` with ``$1``, ``${name}``... replaced by the match's groups, as Go's ``Regexp.Expand``.

    A group that did not take part in the match, or that does not exist, expands to nothing; a
    ``$`` followed by no valid name is kept as it is.
    """
    out: list[str] = []
    i = 0
    while True:
        dollar = template.find("$", i)
        if dollar < 0:
            out.append(template[i:])
            return "".join(out)
        out.append(template[i:dollar])
        i = dollar + 1
        if template.startswith("$", i):
            out.append("$")
            i += 1
            continue
        name_match = _TEMPLATE_NAME.match(template, i)
        if name_match is None:
            out.append("$")
            continue
        i = name_match.end()
        name = name_match.group(1) or name_match.group(2)
        out.append(_group(match, name) or "")


def _group(match: re.Match[str], name: str) -> str | None:
    # A number names a group by position; with a leading zero it is a name (Go's rule).
    if name.isascii() and name.isdigit() and (name == "0" or not name.startswith("0")):
        number = int(name)
        return match.group(number) if number <= (match.re.groups or 0) else None
    return match.groupdict().get(name)


def _label_join(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    vector, dst, separator, *sources = args
    for src in sources:
        if not is_valid_label_name(src):
            raise QueryExecutionError(f"invalid source label name in label_join(): {src}")
    if not is_valid_label_name(dst):
        raise QueryExecutionError(f"invalid destination label name in label_join(): {dst}")
    labels = []
    for lbls in vector.labels:
        value = separator.join(lbls.get(src) for src in sources)
        labels.append(Labels.from_pairs([*(p for p in lbls if p[0] != dst), (dst, value)]))
    return merge_same_labels(labels, vector.values, vector.present)


#: The functions of this module, by PromQL name.
LABEL_FUNCTIONS = {
    "label_join": _label_join,
    "label_replace": _label_replace,
}
