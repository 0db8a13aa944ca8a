"""The comparison every querier test uses (``conftest.same``): what it tells apart, and what not."""

from __future__ import annotations

import math

from shardmon.model.samples import STALE_NAN
from tests.unit.querier.conftest import same


def test_no_value_matches_only_no_value():
    assert same(None, None)
    assert not same(None, 0.0) and not same(0.0, None) and not same(None, math.nan)


def test_nan_matches_nan_but_a_staleness_marker_only_a_marker():
    assert same(math.nan, -math.nan) and same(STALE_NAN, STALE_NAN)
    assert not same(math.nan, 1.0) and not same(1.0, math.nan)
    assert not same(STALE_NAN, math.nan) and not same(math.nan, STALE_NAN)


def test_zeros_of_opposite_signs_differ_unless_asked_not_to_tell():
    assert same(0.0, 0.0) and same(-0.0, -0.0)
    assert not same(0.0, -0.0) and not same(-0.0, 0.0)
    assert not same(0.0, -0.0, rel_tol=1e-9, abs_tol=1e-12)
    assert same(0.0, -0.0, signed_zero=False)


def test_numbers_are_exact_unless_a_tolerance_relative_to_the_expected_value_is_given():
    assert same(math.inf, math.inf) and not same(math.inf, -math.inf)
    assert not same(2.8000000000000003, 2.8)
    assert same(2.8000000000000003, 2.8, rel_tol=1e-12)
    # Relative to the expected value (the second), as pytest.approx: 1 off 1 is 100%, off 2 is 50%.
    assert not same(2.0, 1.0, rel_tol=0.6) and same(1.0, 2.0, rel_tol=0.6)
    assert same(1.0 + 1e-13, 1.0, abs_tol=1e-12) and not same(1.0 + 1e-11, 1.0, abs_tol=1e-12)
    assert not same(1e308, math.inf, rel_tol=1.0) and not same(math.inf, 1e308, rel_tol=1.0)
