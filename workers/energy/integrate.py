"""Energy of a time window from sampled readings, and whether the figure can be trusted.

Pure arithmetic on (time, values) samples; no threads, no devices. A source is either a
``counter`` (cumulative joules per device: NVML's energy counter, RAPL) or ``power``
(watts per device: NVML power, npu-smi). Each device's samples become a power trace:

  counter  constant power between two reads: (c_i - c_{i-1}) / (t_i - t_{i-1}); a counter that
           goes backwards has wrapped when its range is known (RAPL's max_energy_range_uj:
           the range is added back) and was reset otherwise (the interval is unknown)
  power    linear between two samples (the trapezoid rule); held flat before the first and
           after the last sample

and E(a, b) is the integral of the summed traces. Validity (docs/energy.md), each failed rule
adds its reason:

  too_few_samples            a counter with < 2 good reads, a power source with
                             < MIN_POWER_SAMPLES good samples in the window
  window_shorter_than_period the window is shorter than the source's minimum window:
                             MIN_COUNTER_UPDATES x its update period (counter) or
                             MIN_POWER_PERIODS x its update period (power)
  sample_gap                 two good samples (or a window edge and its nearest sample) further
                             apart than MAX_GAP_PERIODS sampling periods (power), or a window
                             edge without a counter read (counter)
  counter_reset              a counter went backwards and has no known range
  counter_wrap               one interval used more than half the counter's range: one more
                             wrap could hide in it
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

from jobs.record import EnergyReason

MIN_POWER_SAMPLES = 5
MIN_COUNTER_UPDATES = 10
MIN_POWER_PERIODS = 2
MAX_GAP_PERIODS = 3.0
PEAK_SPAN_S = 1.0  # counter sources: peak power is the highest mean over >= 1 s stretches


Reason = EnergyReason  # the record's reason codes (jobs/record.py)


@dataclass(frozen=True)
class SourceInfo:
    """What a source reads and how often its value changes (from its documentation)."""

    name: str  # nvml_energy | nvml_power | npu_smi_power | rapl | simulated
    kind: str  # "counter" (cumulative J) or "power" (W)
    period_s: float  # how long the sampler waits between reads
    resolution_s: float  # how often the value itself is updated by the device
    devices: tuple[str, ...]  # what is read, one label per device
    wrap_j: tuple[float | None, ...] = ()  # counter range per device (None: no known range)
    note: str = ""

    def min_window_s(self) -> float:
        if self.kind == "counter":
            return MIN_COUNTER_UPDATES * self.resolution_s
        return MIN_POWER_PERIODS * self.resolution_s


@dataclass(frozen=True)
class Sample:
    t: float  # seconds on the sampler's clock (time.perf_counter)
    values: tuple[float | None, ...]  # one per device; None: that read failed


@dataclass
class Segment:
    t0: float
    t1: float
    p0: float
    p1: float

    def energy(self, a: float, b: float) -> float:
        """Integral of the linear power between p0 at t0 and p1 at t1 over [a, b] ∩ [t0, t1]."""
        lo, hi = max(a, self.t0), min(b, self.t1)
        if hi <= lo:
            return 0.0
        if self.p0 == self.p1:  # flat (every counter segment, and the edges out to infinity)
            return self.p0 * (hi - lo)
        slope = (self.p1 - self.p0) / (self.t1 - self.t0)

        def at(t: float) -> float:
            return self.p0 + slope * (t - self.t0)

        return (at(lo) + at(hi)) / 2 * (hi - lo)


@dataclass
class Trace:
    """The power of one device as segments, with what went wrong while building it."""

    segments: list[Segment] = field(default_factory=list)
    reasons: set[Reason] = field(default_factory=set)
    wraps: int = 0
    good: list[float] = field(default_factory=list)  # times of good readings

    def energy(self, a: float, b: float) -> float:
        return sum(s.energy(a, b) for s in self.segments)


def _edges(trace: Trace, first: tuple[float, float], last: tuple[float, float]) -> None:
    """Hold the first and last power flat out to +-infinity (window edges)."""
    inf = float("inf")
    trace.segments.insert(0, Segment(-inf, first[0], first[1], first[1]))
    trace.segments.append(Segment(last[0], inf, last[1], last[1]))


def power_trace(points: Sequence[tuple[float, float]]) -> Trace:
    trace = Trace(good=[t for t, _ in points])
    for (ta, pa), (tb, pb) in zip(points, points[1:], strict=False):
        trace.segments.append(Segment(ta, tb, pa, pb))
    if points:
        _edges(trace, points[0], points[-1])
    return trace


def counter_trace(points: Sequence[tuple[float, float]], wrap_j: float | None) -> Trace:
    trace = Trace(good=[t for t, _ in points])
    for (ta, ca), (tb, cb) in zip(points, points[1:], strict=False):
        delta = cb - ca
        if delta < 0:
            if wrap_j is None:
                trace.reasons.add(Reason.COUNTER_RESET)
                continue  # this interval's energy is unknown
            delta += wrap_j
            trace.wraps += 1
        if wrap_j is not None and delta > wrap_j / 2:
            trace.reasons.add(Reason.COUNTER_WRAP)
        if tb > ta:
            p = delta / (tb - ta)
            trace.segments.append(Segment(ta, tb, p, p))
    if trace.segments:
        first, last = trace.segments[0], trace.segments[-1]
        _edges(trace, (first.t0, first.p0), (last.t1, last.p1))
    return trace


def device_trace(info: SourceInfo, samples: Sequence[Sample], i: int) -> Trace:
    points = [(s.t, v) for s in samples if i < len(s.values) and (v := s.values[i]) is not None]
    if info.kind == "counter":
        wrap = info.wrap_j[i] if i < len(info.wrap_j) else None
        return counter_trace(points, wrap)
    return power_trace(points)


def _typical_period(info: SourceInfo, times: Sequence[float]) -> float:
    """The period reads really came at: a slow tool (npu-smi) takes longer than asked."""
    gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
    return max(info.period_s, statistics.median(gaps)) if gaps else info.period_s


def check(info: SourceInfo, trace: Trace, t0: float, t1: float) -> set[Reason]:
    """The validity rules of one device's trace over the window [t0, t1]."""
    reasons = set(trace.reasons)
    period = _typical_period(info, trace.good)
    near = [t for t in trace.good if t0 - period <= t <= t1 + period]
    if t1 - t0 < info.min_window_s():
        reasons.add(Reason.WINDOW_SHORTER_THAN_PERIOD)
    if info.kind == "counter":
        if len(near) < 2:
            reasons.add(Reason.TOO_FEW_SAMPLES)
        elif min(near) > t0 or max(near) < t1:
            reasons.add(Reason.SAMPLE_GAP)  # an edge of the window has no read: extrapolated
        return reasons
    if len(near) < MIN_POWER_SAMPLES:
        reasons.add(Reason.TOO_FEW_SAMPLES)
    inside = sorted(t for t in near if t0 <= t <= t1)
    stops = [t0, *inside, t1]
    if max(b - a for a, b in zip(stops, stops[1:], strict=False)) > MAX_GAP_PERIODS * period:
        reasons.add(Reason.SAMPLE_GAP)
    return reasons


@dataclass
class Integral:
    """The window's energy over every device, and the reasons it is not valid (empty: valid)."""

    energy_j: float | None
    power_w_mean: float | None
    power_w_peak: float | None
    samples: int
    reasons: list[str]
    wraps: int
    traces: list[Trace]

    def energy(self, spans: Sequence[tuple[float, float]]) -> float:
        return sum(tr.energy(a, b) for tr in self.traces for a, b in spans)


def _peak(info: SourceInfo, traces: Sequence[Trace], t0: float, t1: float) -> float | None:
    span = max(info.resolution_s, info.period_s)
    if info.kind == "counter":
        span = max(span, PEAK_SPAN_S)
    n = max(1, int((t1 - t0) // span))
    width = (t1 - t0) / n
    if width <= 0:
        return None
    chunks = [(t0 + k * width, t0 + (k + 1) * width) for k in range(n)]
    return max(sum(tr.energy(a, b) for tr in traces) / width for a, b in chunks)


def integrate(info: SourceInfo, samples: Sequence[Sample], t0: float, t1: float) -> Integral:
    """Energy of the window [t0, t1] from the samples of every device of the source."""
    traces = [device_trace(info, samples, i) for i in range(len(info.devices))]
    reasons: set[Reason] = set()
    for tr in traces:
        reasons |= check(info, tr, t0, t1)
    usable = all(tr.segments for tr in traces) and t1 > t0
    energy = sum(tr.energy(t0, t1) for tr in traces) if usable else None
    counted = {t for tr in traces for t in tr.good if t0 - info.period_s <= t <= t1 + info.period_s}
    return Integral(
        energy_j=energy,
        power_w_mean=energy / (t1 - t0) if energy is not None else None,
        power_w_peak=_peak(info, traces, t0, t1) if usable else None,
        samples=len(counted),
        reasons=sorted(r.value for r in reasons),
        wraps=sum(tr.wraps for tr in traces),
        traces=traces,
    )
