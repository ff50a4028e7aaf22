"""Energy of a window from samples, and the validity rules (workers/energy/integrate.py).

Pure arithmetic on synthetic times: no thread, no clock, nothing that depends on timing."""

from __future__ import annotations

import pytest

from workers.energy.integrate import (
    MIN_POWER_SAMPLES,
    Reason,
    Sample,
    SourceInfo,
    integrate,
)

COUNTER = SourceInfo("test_counter", "counter", 0.1, 0.1, ("d0",))
POWER = SourceInfo("test_power", "power", 0.1, 0.1, ("d0",))


def samples(points: list[tuple[float, float | None]]) -> list[Sample]:
    return [Sample(t, (v,)) for t, v in points]


def test_counter_constant_power_exact():
    # 300 W for 2 s, read every 0.1 s, window strictly inside the reads
    pts = [(i / 10, 1000.0 + 300.0 * i / 10) for i in range(21)]
    got = integrate(COUNTER, samples(pts), 0.05, 1.95)
    assert got.energy_j == pytest.approx(300.0 * 1.9)
    assert got.power_w_mean == pytest.approx(300.0)
    assert got.power_w_peak == pytest.approx(300.0)
    assert got.reasons == []


def test_power_trapezoid_and_edges():
    # a ramp 100 -> 300 W over 2 s: the trapezoid rule is exact for a linear signal
    pts = [(i / 10, 100.0 + 100.0 * i / 10) for i in range(21)]
    got = integrate(POWER, samples(pts), 0.0, 2.0)
    assert got.energy_j == pytest.approx(400.0)
    assert got.power_w_peak > got.power_w_mean
    # beyond the last sample the power is held flat
    got = integrate(POWER, samples(pts), 1.0, 2.5)
    assert got.energy_j == pytest.approx((200 + 300) / 2 * 1.0 + 300 * 0.5)


def test_multiple_devices_add_up():
    info = SourceInfo("two", "power", 0.1, 0.1, ("d0", "d1"))
    pts = [Sample(i / 10, (100.0, 250.0)) for i in range(21)]
    assert integrate(info, pts, 0.0, 2.0).energy_j == pytest.approx(700.0)


def test_window_shorter_than_period():
    pts = [(i / 10, 300.0 * i / 10) for i in range(21)]
    # a counter needs MIN_COUNTER_UPDATES x its update period (here 1 s)
    short = integrate(COUNTER, samples(pts), 0.2, 0.8)
    assert Reason.WINDOW_SHORTER_THAN_PERIOD.value in short.reasons
    assert short.energy_j == pytest.approx(180.0)  # the figure is kept, marked invalid
    slow = SourceInfo("slow", "power", 0.1, 1.0, ("d0",))
    got = integrate(slow, samples([(i / 10, 300.0) for i in range(21)]), 0.0, 1.5)
    assert got.reasons == [Reason.WINDOW_SHORTER_THAN_PERIOD.value]


def test_too_few_samples():
    pts = [(0.0, 300.0), (0.5, 310.0), (1.0, 305.0)]
    info = SourceInfo("p", "power", 0.5, 0.1, ("d0",))
    got = integrate(info, samples(pts), 0.0, 1.0)
    assert len(pts) < MIN_POWER_SAMPLES
    assert Reason.TOO_FEW_SAMPLES.value in got.reasons
    one = integrate(COUNTER, samples([(0.0, 5.0)]), 0.0, 2.0)
    assert Reason.TOO_FEW_SAMPLES.value in one.reasons and one.energy_j is None


def test_gap_in_power_samples():
    pts = [(i / 10, 300.0) for i in range(31) if not 10 < i < 16]  # 0.6 s without a reading
    got = integrate(POWER, samples(pts), 0.0, 3.0)
    assert got.reasons == [Reason.SAMPLE_GAP.value]
    failed = [(i / 10, None if 10 < i < 16 else 300.0) for i in range(31)]  # failed reads
    assert integrate(POWER, samples(failed), 0.0, 3.0).reasons == [Reason.SAMPLE_GAP.value]


def test_counter_edge_without_read_is_a_gap():
    pts = [(i / 10, 300.0 * i / 10) for i in range(5, 21)]  # the start read failed
    got = integrate(COUNTER, samples(pts), 0.0, 2.0)
    assert Reason.SAMPLE_GAP.value in got.reasons


def test_counter_reset_without_range():
    pts = [(i / 10, 1e6 + 300.0 * i / 10) for i in range(11)]
    pts += [(1.0 + i / 10, 5.0 + 300.0 * i / 10) for i in range(1, 11)]  # restarted near 0
    got = integrate(COUNTER, samples(pts), 0.0, 2.0)
    assert got.reasons == [Reason.COUNTER_RESET.value]
    assert got.energy_j == pytest.approx(600.0 - 30.0)  # the reset interval is unknown


def test_counter_wrap_with_range_is_corrected():
    wrap = 262_143.328850  # RAPL max_energy_range_uj of a Xeon package, in J
    info = SourceInfo("rapl", "counter", 0.1, 0.001, ("pkg",), (wrap,))
    start = wrap - 50.0
    pts = [(i / 10, (start + 200.0 * i / 10) % wrap) for i in range(21)]
    got = integrate(info, samples(pts), 0.0, 2.0)
    assert got.reasons == [] and got.wraps == 1
    assert got.energy_j == pytest.approx(400.0)


def test_counter_interval_over_half_range_is_ambiguous():
    info = SourceInfo("small", "counter", 0.1, 0.001, ("pkg",), (100.0,))
    pts = [(0.0, 10.0), (1.0, 70.0), (2.0, 80.0)]  # 60 J in one interval of a 100 J counter
    got = integrate(info, samples(pts), 0.0, 2.0)
    assert Reason.COUNTER_WRAP.value in got.reasons


def test_phase_spans_split_the_window():
    pts = [(i / 10, 200.0 * i / 10) for i in range(21)]  # 200 W
    got = integrate(COUNTER, samples(pts), 0.0, 2.0)
    assert got.energy([(0.0, 0.5), (1.0, 1.5)]) == pytest.approx(200.0)
    assert got.energy([(0.0, 2.0)]) == pytest.approx(got.energy_j)
