"""Native histogram bucket bounds are Prometheus's bit for bit, and its buckets come in the API's order."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest

from shardmon.model.histogram import Histogram, bucket_bound, bucket_bounds, bucket_bounds_array, iter_buckets

MAX = sys.float_info.max


@pytest.mark.parametrize(("schema", "index", "expected"), [
    (0, 1, (1.0, 2.0)),
    (1, 2, (1.414213562373095, 2.0)),
    (2, 4, (1.6817928305074288, 2.0)),
    (3, 0, (0.9170040432046711, 1.0)),
    (-1, 1, (1.0, 4.0)),
    (-2, -1, (1 / 256, 1 / 16)),
    (-4, 0, (2.0 ** -16, 1.0)),
    (0, 1024, (2.0 ** 1023, MAX)),
    (0, 1025, (MAX, math.inf)),
    (-4, 64, (2.0 ** 1008, MAX)),
    (8, 256 * 1024, (bucket_bound(256 * 1024 - 1, 8), MAX)),
])
def test_bounds_as_prometheus_writes_them(schema, index, expected):
    lower, upper = bucket_bounds(schema, index)
    assert (lower, upper) == expected


def test_prometheus_table_is_not_correctly_rounded_and_we_follow_it():
    # Prometheus's sqrt(2)/2 is 0.7071067811865475 (one ULP under the nearest float to the true value).
    assert bucket_bound(-1, 1) == 0.7071067811865475
    assert bucket_bound(1, 1) == 1.414213562373095
    assert bucket_bound(3, 2) == 1.6817928305074288
    assert bucket_bound(1, 2) == 1.189207115002721
    assert bucket_bound(5, 2) == 2.378414230005442
    assert bucket_bound(3, 1) == 2.82842712474619
    assert bucket_bound(7, 2) == 3.3635856610148576


@pytest.mark.parametrize("schema", range(-4, 9))
def test_every_schema_bound_is_a_power_of_its_base_and_the_array_form_agrees(schema):
    idx = np.arange(-1200 << max(schema, 0), 1200 << max(schema, 0), max(1, 1 << max(schema - 3, 0)))
    arr = bucket_bounds_array(schema, idx)
    one = np.array([bucket_bound(int(i), schema) for i in idx])
    assert np.array_equal(arr, one)
    # Every 2**schema-th bound (schema >= 0) is an exact power of two; others close to base**i.
    base = 2.0 ** (2.0 ** -schema)
    for i in (-7, -1, 0, 1, 3, 10):
        expect = base ** i if schema >= 0 else 2.0 ** (i << -schema)
        assert math.isclose(bucket_bound(i, schema), expect, rel_tol=1e-14)
    assert np.all(np.diff(arr[np.isfinite(arr) & (arr > 1e-300)]) > 0)  # increasing above the subnormals


def test_iteration_order_rules_and_zero_bucket():
    h = Histogram(schema=1, zero_threshold=0.5, zero_count=3, count=10, sum=1,
                  positive_spans=((-1, 2), (2, 1)), positive_buckets=(1, 0, 4),
                  negative_spans=((0, 1),), negative_buckets=(2,))
    got = [(b.boundary_rule, b.lower, b.upper, b.count) for b in iter_buckets(h)]
    assert got == [
        (1, -1.0, -0.7071067811865475, 2),
        (3, -0.5, 0.5, 3),
        (0, 0.5, 0.7071067811865475, 1),
        (0, 0.7071067811865475, 1.0, 0),  # empty buckets are iterated (the JSON leaves them out)
        (0, 2.0, 2.82842712474619, 4),
    ]


def test_buckets_overlapping_the_zero_bucket_end_at_its_threshold():
    h = Histogram(schema=0, zero_threshold=0.6, zero_count=0, count=3, sum=0,
                  positive_spans=((0, 1),), positive_buckets=(2,),
                  negative_spans=((0, 1),), negative_buckets=(1,))
    got = [(b.boundary_rule, b.lower, b.upper, b.count) for b in iter_buckets(h)]
    # No zero bucket (its count is 0); bucket 0 is (0.5, 1], cut to (0.6, 1] and [-1, -0.6).
    assert got == [(1, -1.0, -0.6, 1), (0, 0.6, 1.0, 2)]
