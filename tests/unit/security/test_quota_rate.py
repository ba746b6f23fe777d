"""The sampled rate and throttle time against Kafka's formulas (Rate, SampledStat, QuotaUtils)."""

from __future__ import annotations

import pytest

from kafkacompat.security.quota_rate import RateWindows, SampledRate, throttle_time_ms

KAFKA_DEFAULT = RateWindows(samples=11, window_ms=1000)


def test_a_new_rate_is_measured_over_at_least_samples_minus_one_windows() -> None:
    rate = SampledRate(KAFKA_DEFAULT)
    rate.record(5000, 0)
    assert rate.window_size_ms(0) == 10_000
    assert rate.measure(0) == 500.0
    # 2.5 s later: still 10 full windows assumed (2 full + 8 added), plus the 500 ms partial.
    assert rate.window_size_ms(2500) == 10_500
    assert rate.measure(2500) == pytest.approx(5000 / 10.5)


def test_window_size_is_at_least_one_ms() -> None:
    rate = SampledRate(RateWindows(samples=1, window_ms=1000))
    rate.record(10, 0)
    assert rate.window_size_ms(0) == 1


def test_steady_recording_keeps_the_last_samples_only() -> None:
    rate = SampledRate(KAFKA_DEFAULT)
    for second in range(15):
        rate.record(100, second * 1000)
    # The ring holds 12 samples (starts 3000..14000); the one last written at 3000 is
    # 11000 ms old at 14000 and purged: 11 samples of 100 over 4000..14000.
    assert rate.total(14_000) == 1100
    assert rate.window_size_ms(14_000) == 10_000
    assert rate.measure(14_000) == 110.0


def test_samples_idle_for_the_whole_span_are_forgotten() -> None:
    rate = SampledRate(KAFKA_DEFAULT)
    rate.record(1_000_000, 0)
    assert rate.total(10_999) == 1_000_000
    assert rate.total(11_000) == 0
    assert rate.measure(11_000) == 0.0


def test_throttle_time_is_o_minus_t_over_t_times_w() -> None:
    rate = SampledRate(KAFKA_DEFAULT)
    rate.record(20_000, 0)
    # O = 2000/s, T = 1000/s, W = 10 s: X = (2000 - 1000) / 1000 * 10000.
    assert throttle_time_ms(rate, 1000.0, 0) == 10_000
    assert throttle_time_ms(rate, 2000.0, 0) == 0  # exactly at the bound is within it
    assert throttle_time_ms(rate, 1999.0, 0) == round(1 / 1999 * 10_000)


def test_throttle_time_uses_the_precise_window() -> None:
    rate = SampledRate(KAFKA_DEFAULT)
    for t in range(0, 12_000, 500):
        rate.record(1000, t)
    now = 11_999
    value = rate.measure(now)
    window = rate.window_size_ms(now)
    expected = int((value - 1000) / 1000 * window + 0.5)
    assert throttle_time_ms(rate, 1000.0, now) == expected
    assert 10_000 <= window <= 12_000


def test_negative_records_take_use_back() -> None:
    rate = SampledRate(KAFKA_DEFAULT)
    rate.record(5000, 0)
    rate.record(-5000, 10)
    assert rate.total(10) == 0
    assert throttle_time_ms(rate, 1.0, 10) == 0


def test_bad_windows_are_refused() -> None:
    with pytest.raises(ValueError):
        RateWindows(samples=0, window_ms=1000)
