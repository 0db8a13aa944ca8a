"""PromQL functions that rewrite labels: ``label_replace`` and ``label_join``.

Both keep ``__name__`` and the values, and change one label of each series; a label set to the
empty string is removed. Two series left with the same labels at one step are an error.

``label_replace`` matches the whole source value against the regex (RE2, anchored at both ends, as
Prometheus's ``^(?:regex)$``; see :mod:`shardmon.model.regex`) and expands the replacement as Go's
``Regexp.Expand``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$`` for a dollar; a name is the longest
run of letters, digits and underscores, so ``$1x`` is the group named ``1x`` (which does not exist:
empty), as in Go.
"""

from __future__ import annotations

from collections.abc import Sequence

from shardmon.model.errors import QueryExecutionError, RegexError
from shardmon.model.labels import Labels, is_valid_label_name
from shardmon.model.promql.value import EvalContext, InstantVector
from shardmon.model.regex import compile_regex
from shardmon.querier.promql.labelset import merge_same_labels


def _label_replace(ctx: EvalContext, args: Sequence, exprs: Sequence) -> InstantVector:
    vector, dst, replacement, src, regex = args
    try:
        pattern = compile_regex(regex)
    except RegexError as exc:
        # Prometheus's words (and a 422 execution error there too: the function panics at evaluation),
        # then RE2's reason.
        raise QueryExecutionError(f"invalid regular expression in label_replace(): {regex}: {exc.reason}") from None
    if not is_valid_label_name(dst):
        raise QueryExecutionError(f"invalid destination label name in label_replace(): {dst}")
    labels = []
    for lbls in vector.labels:
        match = pattern.match(lbls.get(src))
        if match is None:
            labels.append(lbls)
            continue
        value = match.expand(replacement)
        labels.append(Labels.from_pairs([*(p for p in lbls if p[0] != dst), (dst, value)]))
    return merge_same_labels(labels, vector.values, vector.present)


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
