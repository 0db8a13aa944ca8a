"""Binary operators (arithmetic, comparisons, set operators) and unary minus over the whole grid.

Prometheus evaluates a binary operator step by step, pairing the series present at each step. Here
the series of both sides are paired once, by their match signature (the labels of ``on(...)``, or
all labels but ``__name__`` and those of ``ignoring(...)``), and every step is then computed at once
with numpy on the matched cells. A series may be present at some steps only, so which series of the
"one" side a series of the "many" side pairs with is worked out per step, and so are the errors:
duplicates only count when they are present at the same step, and the error is the one Prometheus
meets first (at the earliest step; within a step, duplicates on the "one" side, then duplicate
matches, then a duplicate label set in the result).

Semantics of Prometheus 2.53:

- Arithmetic (``+ - * / % ^ atan2``) drops ``__name__`` (``atan2`` kept it up to 2.42). ``%`` is Go's ``math.Mod``
  (C's ``fmod``: the sign of the dividend, NaN for ``x % 0``) and ``^`` is ``math.Pow``, whose
  special cases are C99's (``NaN ^ 0`` is 1).
- A comparison filters: it keeps the series (with ``__name__``) where it holds, with the value of
  its left side, or, between a scalar and a vector, the vector's value. With ``bool`` it keeps every
  series, drops ``__name__`` and gives 1 or 0. Comparisons with NaN are false (``!=`` is true).
- One-to-one matching keeps the left side's labels, only the ``on`` labels with ``on``, without the
  ``ignoring`` labels with ``ignoring``; ``group_left``/``group_right`` keep the "many" side's
  labels and copy the ``group_x(...)`` labels from the "one" side (removing them where it has none).
- ``and``/``unless`` keep the left side's series as they are; ``or`` adds the right side's series
  whose signature the left side lacks at that step.
- Unary minus drops ``__name__``, and two series that then share their labels are an error even if
  they are never present at the same step (Prometheus checks the whole matrix there).

In a range query, rows that end up with the same labels at different steps are one series, as in
Prometheus, so they are merged into one row. The operators that keep their operand's rows (unary
minus, vector with scalar, ``and``, ``unless``) also keep its presentation order (``sort(x) * 2``
comes out sorted, as in Prometheus); the results of the others are sorted by labels.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import promql_parser

from shardmon.model.errors import QueryExecutionError
from shardmon.model.labels import METRIC_NAME, Labels, without_name, without_names
from shardmon.model.promql.value import EvalContext, InstantVector, Scalar, Value, check_unique_labels, not_supported
from shardmon.model.samples import F64
from shardmon.querier.promql.binary_hist import binary_with_histograms

ONE_TO_ONE = "one-to-one"
MANY_TO_ONE = "many-to-one"
ONE_TO_MANY = "one-to-many"
MANY_TO_MANY = "many-to-many"

_CARDINALITIES = (
    (promql_parser.VectorMatchCardinality.OneToOne, ONE_TO_ONE),
    (promql_parser.VectorMatchCardinality.ManyToOne, MANY_TO_ONE),
    (promql_parser.VectorMatchCardinality.OneToMany, ONE_TO_MANY),
    (promql_parser.VectorMatchCardinality.ManyToMany, MANY_TO_MANY),
)

#: Operators whose value is computed; each a numpy ufunc with Go's float64 semantics.
ARITHMETIC: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "%": np.fmod,
    "^": np.power,
    "atan2": np.arctan2,
}

#: Comparison operators: they filter, or with ``bool`` give 1 or 0.
COMPARISONS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}

SET_OPERATORS = frozenset({"and", "or", "unless"})

# Prometheus 2.53's shouldDropMetricName (atan2 joined it after 2.42, whose ``a atan2 b`` kept the name).
_DROPS_NAME = frozenset({"+", "-", "*", "/", "%", "^", "atan2"})

_LABELSET_ERROR = "vector cannot contain metrics with the same labelset"


class VectorMatching(NamedTuple):
    """How the series of two vectors pair up (Prometheus's ``parser.VectorMatching``).

    ``card`` is one of :data:`ONE_TO_ONE`, :data:`MANY_TO_ONE` (``group_left``),
    :data:`ONE_TO_MANY` (``group_right``) and :data:`MANY_TO_MANY` (set operators). ``on`` says
    whether ``labels`` are the labels to match on (``on``) or to ignore (``ignoring``, and the
    default with no labels). ``include`` are the labels of ``group_left(...)``/``group_right(...)``.
    """

    card: str
    on: bool
    labels: tuple[str, ...]
    include: tuple[str, ...] = ()


def vector_matching(op: str, modifier: promql_parser.BinModifier | None) -> VectorMatching:
    """The matching of a binary expression from the parser's modifier (None for a plain ``a / b``)."""
    if modifier is None:
        return VectorMatching(MANY_TO_MANY if op in SET_OPERATORS else ONE_TO_ONE, False, ())
    fill = modifier.fill_values
    if fill is not None and (fill.lhs is not None or fill.rhs is not None):
        raise not_supported("the fill modifiers of vector matching")
    card = next(name for card, name in _CARDINALITIES if modifier.card == card)
    if op in SET_OPERATORS:
        card = MANY_TO_MANY
    matching = modifier.matching
    if matching is None:
        on, labels = False, ()
    else:
        on = matching.type == promql_parser.LabelModifierType.Include
        labels = tuple(matching.labels)
    return VectorMatching(card, on, labels, tuple(modifier.group_labels or ()))


def binary_op(ctx: EvalContext, op: str, lhs: Value, rhs: Value, matching: VectorMatching, return_bool: bool) -> Value:
    """Apply the binary operator ``op`` (as the parser spells it: ``+``, ``==``, ``and``, ``atan2``)."""
    if op not in ARITHMETIC and op not in COMPARISONS and op not in SET_OPERATORS:
        raise not_supported(f"binary operator '{op}'")
    ctx.check_deadline()
    if getattr(lhs, "histograms", None) is not None or getattr(rhs, "histograms", None) is not None:
        return binary_with_histograms(ctx, op, lhs, rhs, matching, return_bool, binary_op)
    if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
        return _scalar_binop(op, lhs, rhs)
    if isinstance(lhs, Scalar):
        assert isinstance(rhs, InstantVector), type(rhs)
        return _vector_scalar_binop(op, rhs, lhs, scalar_left=True, return_bool=return_bool)
    assert isinstance(lhs, InstantVector), type(lhs)
    if isinstance(rhs, Scalar):
        return _vector_scalar_binop(op, lhs, rhs, scalar_left=False, return_bool=return_bool)
    assert isinstance(rhs, InstantVector), type(rhs)
    if op in SET_OPERATORS:
        result = _set_binop(op, lhs, rhs, matching)
    else:
        result = _vector_binop(op, lhs, rhs, matching, return_bool)
    ctx.check_deadline()
    return result


def negate(vector: InstantVector) -> InstantVector:
    """Unary minus on a vector: negated values, ``__name__`` dropped (Prometheus 2.x)."""
    labels = without_names(vector.labels)
    check_unique_labels(labels, vector.present)
    # 2.53 negates the floats only: a histogram stays as it is.
    return InstantVector(labels, -vector.values, vector.present, vector.order, histograms=vector.histograms)


# -- values ------------------------------------------------------------------------------------


def _apply(op: str, lhs: np.ndarray, rhs: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """Prometheus's vectorElemBinop: the value and, for a comparison, where it holds (else None)."""
    with np.errstate(all="ignore"):
        compare = COMPARISONS.get(op)
        if compare is not None:
            return lhs, compare(lhs, rhs)
        return ARITHMETIC[op](lhs, rhs), None


def _scalar_binop(op: str, lhs: Scalar, rhs: Scalar) -> Scalar:
    # Between scalars a comparison needs ``bool`` (the parser enforces it): it gives 1 or 0.
    value, holds = _apply(op, lhs.values, rhs.values)
    return Scalar(holds.astype(F64) if holds is not None else value)


def _vector_scalar_binop(
    op: str, vector: InstantVector, scalar: Scalar, *, scalar_left: bool, return_bool: bool
) -> InstantVector:
    s = scalar.values[np.newaxis, :]
    lhs, rhs = (s, vector.values) if scalar_left else (vector.values, s)
    value, holds = _apply(op, lhs, rhs)
    present = vector.present
    if holds is None:
        values = value
    elif return_bool:
        values = holds.astype(F64)
    else:
        # A filter keeps the vector's own value, on whichever side the vector is.
        values = vector.values
        present = present & holds
    if op in _DROPS_NAME or return_bool:
        labels = without_names(vector.labels)
        return _merge_same_labels(labels, values, present, vector.order)
    return InstantVector(vector.labels, values, present, vector.order)


# -- vector matching ---------------------------------------------------------------------------


def _signature_func(matching: VectorMatching) -> Callable[[Labels], tuple]:
    """Prometheus's signatureFunc: ``on`` keeps the listed labels, else all but ``__name__`` and them."""
    names = frozenset(matching.labels)
    if matching.on:
        return lambda lbls: tuple(p for p in lbls if p[0] in names)
    names = names | {METRIC_NAME}
    return lambda lbls: tuple(p for p in lbls if p[0] not in names)


def _signature_ids(
    labels: Sequence[Labels], signature: Callable[[Labels], tuple], index: dict[tuple, int], *, add: bool
) -> np.ndarray:
    """Each series' signature as an int from ``index``; with ``add=False``, -1 for one not in it."""
    if add:
        ids = (index.setdefault(signature(lbls), len(index)) for lbls in labels)
    else:
        ids = (index.get(signature(lbls), -1) for lbls in labels)
    return np.fromiter(ids, dtype=np.intp, count=len(labels))


def _present_per_group(group: np.ndarray, present: np.ndarray, n_groups: int) -> np.ndarray:
    """``out[g, k]``: some series of group g is present at step k; a last row (for -1) stays False."""
    out = np.zeros((n_groups + 1, present.shape[1]), dtype=bool)
    rows, steps = np.nonzero(present)
    out[group[rows], steps] = True
    return out


def _clashing_steps(keys: np.ndarray, steps: np.ndarray, n_steps: int) -> np.ndarray:
    """The steps (a bool mask) at which two cells share a key. Keys are non-negative ints."""
    codes = keys.astype(np.int64) * n_steps + steps
    codes.sort()
    out = np.zeros(n_steps, dtype=bool)
    out[codes[1:][codes[1:] == codes[:-1]] % n_steps] = True
    return out


def _segments(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For sorted ``rows``: where each run of equal values starts, and each element's run number."""
    lengths = np.bincount(rows)
    lengths = lengths[lengths > 0]
    starts = np.cumsum(lengths) - lengths
    return starts, np.repeat(np.arange(lengths.shape[0]), lengths)


def _constant_per_segment(values: np.ndarray, starts: np.ndarray) -> bool:
    """Whether ``values`` is constant within each run that begins at ``starts``."""
    if starts.shape[0] == 0:
        return True
    return bool(np.array_equal(np.minimum.reduceat(values, starts), np.maximum.reduceat(values, starts)))


def _vector_binop(
    op: str, lhs: InstantVector, rhs: InstantVector, matching: VectorMatching, return_bool: bool
) -> InstantVector:
    """Arithmetic or comparison between two vectors: Prometheus's VectorBinop at every step."""
    n_steps = lhs.values.shape[1]
    # As Prometheus, one-to-many is many-to-one with the sides swapped for the matching.
    swapped = matching.card == ONE_TO_MANY
    many, one = (rhs, lhs) if swapped else (lhs, rhs)
    signature = _signature_func(matching)
    index: dict[tuple, int] = {}
    one_sig = _signature_ids(one.labels, signature, index, add=True)
    many_sig = _signature_ids(many.labels, signature, index, add=False)
    n_sigs = len(index)

    # Where either side has no sample at a step, Prometheus returns nothing and checks nothing.
    live = many.present.any(axis=0) & one.present.any(axis=0)
    one_rows, one_steps = np.nonzero(one.present)
    duplicate = _clashing_steps(one_sig[one_rows], one_steps, n_steps) & live

    # partner[s, k]: the series of the "one" side with signature s at step k (-1: none). The extra
    # last row answers for the "many" side's signatures that the "one" side lacks (-1).
    partner = np.full((n_sigs + 1, n_steps), -1, dtype=np.intp)
    partner[one_sig[one_rows], one_steps] = one_rows
    matched = partner[many_sig]
    # The matched cells, row by row (np.nonzero goes in row-major order, so ``rows`` is sorted).
    rows, steps = np.nonzero(many.present & (matched >= 0))
    partners = matched[rows, steps]
    many_v, one_v = many.values[rows, steps], one.values[partners, steps]
    value, holds = _apply(op, *((one_v, many_v) if swapped else (many_v, one_v)))
    if holds is not None:
        if return_bool:
            value = holds.astype(F64)
        else:
            rows, steps, partners, value = rows[holds], steps[holds], partners[holds], value[holds]

    # The result's labels come from the "many" series and, with group_x(...) labels, from its partner
    # too. Usually a series keeps one partner over the whole grid, so labels are made once per series
    # ("unit"); only when group_x labels meet a change of partner are they made per pair.
    rows_used, cell_unit = _segments(rows)
    unit_many, unit_one = rows[rows_used], partners[rows_used]
    if matching.include and not _constant_per_segment(partners, rows_used):
        n_one = len(one.labels)
        units, cell_unit = np.unique(rows.astype(np.int64) * n_one + partners, return_inverse=True)
        unit_many, unit_one = np.divmod(units, n_one)
        cell_unit = cell_unit.reshape(-1)
    label_index: dict[Labels, int] = {}
    unit_label = np.fromiter(
        (
            label_index.setdefault(
                _result_labels(many.labels[m], one.labels[o], op, matching, return_bool), len(label_index)
            )
            for m, o in zip(unit_many.tolist(), unit_one.tolist())
        ),
        dtype=np.intp,
        count=unit_many.shape[0],
    )
    cell_label = unit_label[cell_unit]
    # Units with labels of their own cannot clash: a series has one cell per step.
    distinct = len(label_index) == unit_label.shape[0]
    no_clash = np.zeros(n_steps, dtype=bool)
    if matching.card == ONE_TO_ONE:
        # Two series of the left side matching the same right series at one step.
        used_sigs = many_sig[unit_many]
        unique_sigs = np.unique(used_sigs).shape[0] == used_sigs.shape[0]
        ambiguous = no_clash if unique_sigs else _clashing_steps(many_sig[rows], steps, n_steps)
    elif distinct:
        ambiguous = no_clash
    else:
        # Two series of the "many" side that the grouping labels do not tell apart.
        ambiguous = _clashing_steps(many_sig[rows] * len(label_index) + cell_label, steps, n_steps)
    same_labels = no_clash if distinct else _clashing_steps(cell_label, steps, n_steps)
    errors = duplicate | ambiguous | same_labels
    if errors.any():
        k = int(np.argmax(errors))
        if duplicate[k]:
            raise _duplicate_error(one, one_sig, k, matching, "left" if swapped else "right")
        if ambiguous[k]:
            if matching.card == ONE_TO_ONE:
                raise QueryExecutionError(
                    "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                )
            raise QueryExecutionError("multiple matches for labels: grouping labels must ensure unique matches")
        raise QueryExecutionError(_LABELSET_ERROR)

    out_values = np.zeros((len(label_index), n_steps), dtype=F64)
    out_present = np.zeros((len(label_index), n_steps), dtype=bool)
    out_values[cell_label, steps] = value
    out_present[cell_label, steps] = True
    return InstantVector(list(label_index), out_values, out_present)


def _result_labels(many: Labels, one: Labels, op: str, matching: VectorMatching, return_bool: bool) -> Labels:
    """Prometheus's resultMetric, in its order: drop the name, apply on/ignoring, copy group_x labels."""
    if matching.card == ONE_TO_ONE and not matching.on and not matching.labels and not matching.include:
        # The common case (``a / b``, ``a > 1``): the many side's labels, without the name if the operator
        # (or ``bool``) drops it.
        return without_name(many) if op in _DROPS_NAME or return_bool else many
    out = dict(many)
    if op in _DROPS_NAME:
        out.pop(METRIC_NAME, None)
    if matching.card == ONE_TO_ONE:
        if matching.on:
            out = {n: v for n, v in out.items() if n in matching.labels}
        else:
            for name in matching.labels:
                out.pop(name, None)
    for name in matching.include:
        value = one.get(name)
        if value:
            out[name] = value
        else:
            out.pop(name, None)
    if return_bool:
        out.pop(METRIC_NAME, None)
    return Labels.from_dict(out)


def _duplicate_error(
    one: InstantVector, one_sig: np.ndarray, step: int, matching: VectorMatching, side: str
) -> QueryExecutionError:
    """Prometheus's error for two series of the "one" side with the same signature at ``step``."""
    first: dict[int, int] = {}
    for row in np.flatnonzero(one.present[:, step]).tolist():
        sig = int(one_sig[row])
        if sig not in first:
            first[sig] = row
            continue
        this, earlier = one.labels[row], one.labels[first[sig]]
        if matching.on:
            group = Labels(p for p in this if p[0] in matching.labels)
        else:
            group = Labels(p for p in this if p[0] not in matching.labels and p[0] != METRIC_NAME)
        return QueryExecutionError(
            f"found duplicate series for the match group {_go_labels(group)} on the {side} hand-side of the "
            f"operation: [{_go_labels(this)}, {_go_labels(earlier)}];many-to-many matching not allowed: "
            "matching labels must be unique on one side"
        )
    raise AssertionError("no duplicate series at the step")  # The caller found one.


def _set_binop(op: str, lhs: InstantVector, rhs: InstantVector, matching: VectorMatching) -> InstantVector:
    """``and``, ``or``, ``unless``: many-to-many by definition, series kept with all their labels."""
    signature = _signature_func(matching)
    index: dict[tuple, int] = {}
    if op == "or":
        lhs_sig = _signature_ids(lhs.labels, signature, index, add=True)
        rhs_sig = _signature_ids(rhs.labels, signature, index, add=False)
        taken = _present_per_group(lhs_sig, lhs.present, len(index))
        rhs_present = rhs.present & ~taken[rhs_sig]
        return _merge_same_labels(
            [*lhs.labels, *rhs.labels],
            np.concatenate([lhs.values, rhs.values]),
            np.concatenate([lhs.present, rhs_present]),
        )
    rhs_sig = _signature_ids(rhs.labels, signature, index, add=True)
    lhs_sig = _signature_ids(lhs.labels, signature, index, add=False)
    hit = _present_per_group(rhs_sig, rhs.present, len(index))[lhs_sig]
    present = lhs.present & hit if op == "and" else lhs.present & ~hit
    return InstantVector(lhs.labels, lhs.values, present, lhs.order)


def _merge_same_labels(
    labels: Sequence[Labels], values: np.ndarray, present: np.ndarray, order: np.ndarray | None = None
) -> InstantVector:
    """One row per label set; Prometheus's per-step error where two rows have a value at one step.

    ``order`` (the rows' presentation order) is kept when no rows merge.
    """
    index: dict[Labels, int] = {}
    ids = np.fromiter((index.setdefault(lbls, len(index)) for lbls in labels), dtype=np.intp, count=len(labels))
    if len(index) == len(labels):
        return InstantVector(list(labels), values, present, order)
    rows, steps = np.nonzero(present)
    if _clashing_steps(ids[rows], steps, present.shape[1]).any():
        raise QueryExecutionError(_LABELSET_ERROR)
    out_values = np.zeros((len(index), present.shape[1]), dtype=F64)
    out_present = np.zeros((len(index), present.shape[1]), dtype=bool)
    out_values[ids[rows], steps] = values[rows, steps]
    out_present[ids[rows], steps] = True
    return InstantVector(list(index), out_values, out_present)


# -- Go's formatting, for error messages -------------------------------------------------------

_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
    '"': '\\"',
    "\\": "\\\\",
}


def _go_quote(text: str) -> str:
    """Go's strconv.Quote (printable characters kept, others escaped)."""
    out = ['"']
    for ch in text:
        code = ord(ch)
        if ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _go_labels(labels: Labels) -> str:
    """Go's ``labels.Labels.String()``: ``{__name__="up", job="x"}``, the name as a label."""
    return "{" + ", ".join(f"{name}={_go_quote(value)}" for name, value in labels) + "}"


__all__ = [
    "ARITHMETIC",
    "COMPARISONS",
    "MANY_TO_MANY",
    "MANY_TO_ONE",
    "ONE_TO_MANY",
    "ONE_TO_ONE",
    "SET_OPERATORS",
    "VectorMatching",
    "binary_op",
    "negate",
    "vector_matching",
]
