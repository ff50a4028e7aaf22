"""The sampler's lifecycle around the measured window: started right before the first measured
iteration and stopped right after the last, no thread or process left behind, and a failing
source never fails the cell. A stand-in backend runs in the real measuring loop; the waits
below are for events, never for a time to pass."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from jobs.config import BenchConfig, CellConfig, DeviceConfig, ModelConfig
from workers import base
from workers import run as measure
from workers.base import Backend, IterationResult
from workers.energy import meter as energy
from workers.energy.integrate import Reason, SourceInfo

QUICK = BenchConfig(name="quick", warmup=2, iterations=3, max_iterations=3)
WAIT_S = 60.0  # an upper limit for events on a loaded machine, never a duration relied on


def sampler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == energy.THREAD_NAME]


class FakeSource:
    """A counter that says which phase of the cell each read happened in."""

    def __init__(self, fail: bool = False, block: bool = False, close_fails: bool = False):
        # An hour between reads (unless a read must block in the thread): however slow the
        # host, the measured window (a few fake iterations) is shorter than the period, so
        # the figure is always marked so.
        period_s = 0.01 if block else 3600.0
        self.info = SourceInfo("fake", "counter", period_s, period_s, ("dev0",))
        self.fail, self.block, self.close_fails = fail, block, close_fails
        self.joules = 0.0
        self.reads: list[str] = []
        self.closed = 0
        self.entered, self.release = threading.Event(), threading.Event()

    def read(self) -> list[float | None]:
        self.reads.append(FakeBackend.phase)
        if self.block and threading.current_thread().name == energy.THREAD_NAME:
            self.entered.set()
            self.release.wait(WAIT_S)
        if self.fail:
            raise RuntimeError("device lost")
        self.joules += 1.0
        return [self.joules]

    def events(self) -> None:
        return None

    def close(self) -> None:
        self.closed += 1
        if self.close_fails:
            raise RuntimeError("close failed")


class FakeBackend(Backend):
    """Iterations that record whether a sampler thread was alive while they ran."""

    name = "hf"
    phase = "idle"
    seen: list[tuple[str, bool]] = []
    source: FakeSource | None = None

    def load(self) -> None:
        pass

    def prepare(self, cell: CellConfig) -> None:
        FakeBackend.phase = "warmup"
        self.count = 0

    def run_iteration(self) -> IterationResult:
        self.count += 1
        if self.count > self.cell.bench.warmup:
            FakeBackend.phase = "measured"
        src = FakeBackend.source
        if src is not None and src.block and FakeBackend.phase == "measured":
            assert src.entered.wait(WAIT_S), "the sampler thread never read"
        FakeBackend.seen.append((FakeBackend.phase, bool(sampler_threads())))
        if self.count == self.cell.bench.warmup:
            FakeBackend.phase = "between"  # warm-up done, the measured window not yet begun
        c = self.cell
        return IterationResult(
            e2e_s=0.5, ttft_s=0.1, generated_tokens=c.batch * c.seq, step_times_s=[0.1, 0.5]
        )


@pytest.fixture
def fake_cell(monkeypatch):
    monkeypatch.setitem(base._REGISTRY, "hf", f"{__name__}:FakeBackend")
    measure.drop_models()
    FakeBackend.seen = []
    FakeBackend.phase = "idle"

    def run(source: FakeSource | Exception) -> dict:
        FakeBackend.source = source if isinstance(source, FakeSource) else None

        def open_source(kind: str, devices_per_cell: int) -> FakeSource:
            if isinstance(source, Exception):
                raise source
            return source

        monkeypatch.setattr(energy, "open_source", open_source)
        cell = CellConfig(
            batch=2, seq=2, prompt_len=4, model=ModelConfig(name="fake"),
            device=DeviceConfig(name="cpu"), bench=QUICK,
        )  # fmt: skip
        try:
            return measure.run_cell(cell)
        finally:
            measure.drop_models()

    return run


def test_sampling_covers_the_measured_iterations_only(fake_cell):
    source = FakeSource()
    rec = fake_cell(source)
    assert rec["status"] == "ok", rec["error"]
    assert FakeBackend.seen == [("warmup", False)] * 2 + [("measured", True)] * 3
    # no read during load, prepare or warm-up; the first right before the first measured one
    assert source.reads[0] == "between" and set(source.reads) <= {"between", "measured"}
    assert len(source.reads) >= 2  # at least the reads at both ends of the window
    assert source.closed == 1 and not sampler_threads()
    assert rec["energy_source"] == "fake" and rec["energy_samples"] >= 2
    assert rec["energy"]["source"] == "fake" and rec["energy"]["window_s"] > 0
    # a window far shorter than the counter's period: a figure, marked invalid
    assert rec["energy_valid"] is False
    assert Reason.WINDOW_SHORTER_THAN_PERIOD.value in rec["energy_invalid_reasons"]


@pytest.mark.parametrize(
    "source, reason",
    [
        (FakeSource(fail=True), Reason.SAMPLER_ERROR),
        (RuntimeError("driver exploded"), Reason.SAMPLER_ERROR),
        (FakeSource(close_fails=True), Reason.WINDOW_SHORTER_THAN_PERIOD),
    ],
    ids=["every-read-fails", "open-raises", "close-raises"],
)
def test_a_failing_source_never_fails_the_cell(fake_cell, source, reason):
    rec = fake_cell(source)
    assert rec["status"] == "ok", rec["error"]
    assert rec["energy_valid"] is False and reason.value in rec["energy_invalid_reasons"]
    # host_busy and unstable depend on how loaded the machine is; nothing else may be flagged
    assert set(rec["flags"]) <= {"host_busy", "unstable"} and not sampler_threads()


def test_a_stuck_read_is_reported_and_the_cell_goes_on(fake_cell, monkeypatch):
    monkeypatch.setattr(energy, "JOIN_TIMEOUT_S", 0.01)
    source = FakeSource(block=True)  # the thread's read blocks until released
    try:
        rec = fake_cell(source)
    finally:
        source.release.set()
    assert rec["status"] == "ok"
    assert Reason.SAMPLER_ERROR.value in rec["energy_invalid_reasons"]
    for t in sampler_threads():  # the released read returns and the daemon thread ends
        t.join(WAIT_S)
    assert not sampler_threads()


def _wait_for(check, limit_s: float = WAIT_S) -> bool:
    done = threading.Event()
    deadline = threading.Timer(limit_s, done.set)
    deadline.start()
    try:
        while not done.is_set():
            if check():
                return True
            done.wait(0.05)
        return False
    finally:
        deadline.cancel()


def test_real_cpu_cell_says_why_it_has_no_energy(tiny_cache):
    rapl = Path("/sys/class/powercap/intel-rapl:0/energy_uj")
    cell = CellConfig(
        batch=2, seq=4, prompt_len=4, model=ModelConfig(cache_dir=str(tiny_cache)),
        device=DeviceConfig(name="cpu"), bench=BenchConfig(name="quick", warmup=1, iterations=2),
    )  # fmt: skip
    rec = measure.run_cell(cell)
    assert rec["status"] == "ok", rec["error"]
    for key in energy.ENERGY_KEYS:
        assert key in rec
    assert rec["energy_source"] == "rapl" and isinstance(rec["energy"], dict)
    if rapl.exists() and os.access(rapl, os.R_OK):
        assert rec["energy_samples"] >= 2  # this host really exposes RAPL
    else:
        assert rec["energy_valid"] is False
        assert rec["energy_invalid_reasons"] == [Reason.SOURCE_MISSING.value]
        assert rec["energy_j"] is None and rec["output_tokens_per_j"] is None
        assert "powercap" in rec["energy"]["details"][0] or "RAPL" in rec["energy"]["details"][0]
    assert "health" not in rec  # no device memory or clocks to watch on a cpu


def test_simulated_cell_has_energy_from_the_spec():
    def run(batch: int) -> dict:
        from jobs.config import BackendConfig

        return measure.run_cell(
            CellConfig(
                batch=batch, seq=64, prompt_len=32, backend=BackendConfig(name="sim"),
                model=ModelConfig(name="llama3_8b", load_format="dummy"),
                device=DeviceConfig(name="npu"),
            )
        )  # fmt: skip

    small, big = run(1), run(16)
    for rec in small, big:
        assert rec["energy_source"] == "simulated" and rec["energy_valid"] is True
        assert "simulated" in rec["flags"]
        assert rec["prefill_energy_j"] + rec["decode_energy_j"] == pytest.approx(rec["energy_j"])
        tokens = rec["measured_iterations"] * rec["batch"] * rec["seq"]
        assert rec["output_tokens_per_j"] == pytest.approx(tokens / rec["energy_j"])
        assert 70 < rec["power_w_mean"] <= 400  # between the 910B's idle and TDP
    assert big["output_tokens_per_j"] > 5 * small["output_tokens_per_j"]
