"""benchmarks/overload.py reads the node's own p99 from its histogram as
Prometheus' histogram_quantile does; checked on histograms whose answer is
known, since the overload run itself has no known answer."""

from __future__ import annotations

import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from overload import _bucket_quantile  # noqa: E402

INF = float("inf")


def test_linear_within_the_bucket_the_quantile_falls_in() -> None:
    after = {0.01: 50.0, 0.05: 99.0, 0.1: 100.0, INF: 100.0}
    assert math.isclose(_bucket_quantile(0.5, {}, after), 0.01)
    assert math.isclose(_bucket_quantile(0.99, {}, after), 0.05)
    assert math.isclose(_bucket_quantile(0.25, {}, after), 0.005)  # half-way through the first bucket, from 0
    assert math.isclose(_bucket_quantile(0.995, {}, after), 0.075)


def test_only_the_calls_between_the_two_readings_count() -> None:
    before = {0.01: 40.0, 0.05: 40.0, 0.1: 40.0, INF: 40.0}
    after = {0.01: 40.0, 0.05: 140.0, 0.1: 140.0, INF: 140.0}
    assert math.isclose(_bucket_quantile(0.99, before, after), 0.01 + 0.04 * 0.99)


def test_beyond_the_last_finite_bound_is_that_bound_and_none_is_nan() -> None:
    assert _bucket_quantile(0.99, {}, {0.01: 0.0, 0.1: 5.0, INF: 10.0}) == 0.1
    assert math.isnan(_bucket_quantile(0.99, {}, {0.01: 0.0, INF: 0.0}))
