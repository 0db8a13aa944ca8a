"""Kubernetes quantities, Go durations and metav1.Time as apimachinery and Go write them."""

import pytest

from shardmon.k8sapi.quantity import (
    binary_quantity,
    cpu_quantity,
    decimal_quantity,
    go_duration,
    memory_quantity,
    milli_quantity,
    rfc3339,
)


@pytest.mark.parametrize("mantissa,scale,text", [
    (0, -9, "0"),
    (123456789, -9, "123456789n"),
    (123456000, -9, "123456u"),
    (500000000, -9, "500m"),
    (1500000000, -9, "1500m"),
    (2000000000, -9, "2"),
    (1000, -9, "1u"),
    (10, -9, "10n"),
    (2000, -3, "2"),
    (1500, -3, "1500m"),
    (1, -3, "1m"),
    (12000000, -3, "12k"),
    (-1500, -3, "-1500m"),
    (5, 3, "5k"),
    (50, 0, "50"),
    (100, 0, "100"),
    (1000, 0, "1k"),
])
def test_decimal_quantities_are_canonical(mantissa, scale, text):
    assert decimal_quantity(mantissa, scale) == text


@pytest.mark.parametrize("value,text", [
    (0, "0"), (512, "512"), (1023, "1023"), (1024, "1Ki"), (1264 * 1024, "1264Ki"), (1024**2, "1Mi"),
    (3 * 1024**3, "3Gi"), (1234567, "1234567"), (1025, "1025"), (2048 + 1024**2, "1026Ki"), (-2048, "-2Ki"),
])
def test_binary_quantities_take_the_largest_power_of_1024(value, text):
    assert binary_quantity(value) == text


def test_metrics_server_units():
    assert cpu_quantity(0.123456789) == "123456789n"
    assert cpu_quantity(0.25) == "250m"
    assert cpu_quantity(2) == "2"
    assert cpu_quantity(0.0000000019) == "1n"  # truncated, as Go's uint64 conversion
    assert memory_quantity(64 * 1024 * 1024) == "64Mi"
    assert memory_quantity(1264 * 1024 * 1024 + 4096) == "1294340Ki"
    assert memory_quantity(1000.7) == "1k"  # under 1Ki a BinarySI quantity is written as DecimalSI


def test_adapter_values_are_thousandths():
    assert milli_quantity(1.5) == "1500m"
    assert milli_quantity(2.0) == "2"
    assert milli_quantity(0.12345) == "123m"
    assert milli_quantity(12) == "12"
    assert milli_quantity(0) == "0"
    assert milli_quantity(float("nan")) == "0"
    assert milli_quantity(1e30) == "9223372036854775807m"  # clamped to int64


@pytest.mark.parametrize("seconds,text", [
    (300, "5m0s"), (30, "30s"), (3600, "1h0m0s"), (90, "1m30s"), (20.029, "20.029s"), (1.5, "1.5s"),
    (0.5, "500ms"), (0, "0s"), (3725.25, "1h2m5.25s"), (0.000001, "1µs"), (0.0000015, "1.5µs"),
])
def test_go_durations(seconds, text):
    assert go_duration(seconds) == text


def test_times_are_rfc3339_seconds_in_utc():
    assert rfc3339(1_714_564_800.9) == "2024-05-01T12:00:00Z"
