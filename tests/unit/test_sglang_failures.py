"""Engine failures: a scheduler crash or out-of-memory becomes the cell's failed / oom record
with the engine's own error, this process lives on, and the next cell starts a new engine.

The stand-in (tests/sglang_standin.py) fails the way SGLang 0.5.23 does: its "scheduler" logs
its traceback through SGLANG_LOGGING_CONFIG_PATH and sends SIGQUIT to this process, whose
handlers are the ones SGLang would install (custom_sigquit_handler while starting, the
tokenizer manager's signal_handler_class on the event loop once requests run; without the
adapter's hooks both end the process, here as ProcessTreeKilled).
"""

from __future__ import annotations

import os
import signal

import pytest

from tests.sglang_standin import ProcessTreeKilled, installed, sgl_cell
from workers import run as measure
from workers.backends.sglang import backend as sgl
from workers.backends.sglang import watch as sglang_watch


@pytest.fixture
def stand_in(monkeypatch):
    yield from installed(monkeypatch)


def test_scheduler_oom_while_generating_is_an_oom_record(stand_in):
    stand_in.fail = (1, 3, "oom")  # 2nd generate call (1st measured iteration), before token 3
    rec = measure.run_cell(sgl_cell(batch=2, seq=4, prompt_len=4))
    assert rec["status"] == "oom"
    assert rec["error"]["type"] == "CellOOM"
    assert "CUDA out of memory" in rec["error"]["message"]
    assert "Scheduler hit an exception" in rec["error"]["message"]
    (engine,) = stand_in.instances
    assert engine.shut  # the failed engine was shut down, this process goes on
    stand_in.fail = None
    rec = measure.run_cell(sgl_cell(batch=2, seq=4, prompt_len=4))
    assert rec["status"] == "ok" and rec["model_reused"] is False  # a new engine
    assert len(stand_in.instances) == 2


def test_scheduler_crash_is_a_failed_record(stand_in):
    stand_in.fail = (0, 1, "crash")  # the warm-up's first token never comes
    rec = measure.run_cell(sgl_cell(batch=3, seq=2, prompt_len=4))
    assert rec["status"] == "failed"
    assert rec["error"]["type"] == "EngineFailed"
    assert "stand-in scheduler crashed" in rec["error"]["message"]


def test_oom_while_the_engine_starts(stand_in):
    stand_in.fail = ("start", "oom")
    rec = measure.run_cell(sgl_cell())
    assert rec["status"] == "oom"
    assert "scheduler died during initialization" in rec["error"]["message"]
    assert "CUDA out of memory" in rec["error"]["message"]
    assert not sglang_watch._ACTIVE  # nothing left watching a dead engine


def test_engine_abort_is_a_failed_record(stand_in):
    stand_in.abort = (0, "The request was aborted: scheduler stopped")
    rec = measure.run_cell(sgl_cell(batch=2, seq=2, prompt_len=4))
    assert rec["status"] == "failed" and rec["error"]["type"] == "EngineFailed"
    assert "scheduler stopped" in rec["error"]["message"]
    stand_in.abort = (0, "Out of memory: KV cache pool is full")
    assert measure.run_cell(sgl_cell(batch=2, seq=2, prompt_len=4))["status"] == "oom"


def test_failure_between_cells_fails_the_next_cell_only(stand_in):
    assert measure.run_cell(sgl_cell(batch=2, seq=2, prompt_len=4))["status"] == "ok"
    os.kill(os.getpid(), signal.SIGQUIT)  # a child process dies while no request runs
    rec = measure.run_cell(sgl_cell(batch=2, seq=2, prompt_len=4))
    assert rec["status"] == "failed" and rec["error"]["type"] == "EngineFailed"
    assert measure.run_cell(sgl_cell(batch=2, seq=2, prompt_len=4))["status"] == "ok"


def test_sigquit_disposition_is_restored_after_the_engine(stand_in):
    before = signal.getsignal(signal.SIGQUIT)
    assert measure.run_cell(sgl_cell(batch=1, seq=2, prompt_len=4))["status"] == "ok"
    assert signal.getsignal(signal.SIGQUIT) is not before  # the engine's handler is in place
    measure.drop_models()
    assert signal.getsignal(signal.SIGQUIT) == before
    sglang_watch.on_sigquit(signal.SIGQUIT, None)  # no engine: logged, nothing else


def test_without_the_hooks_sglang_ends_the_process(stand_in, monkeypatch):
    """The stand-in is faithful: without custom_sigquit_handler and the running-phase hook
    (the adapter before this change), SGLang's own handler kills the process tree, which no
    cell can catch (under Ray: worker_lost and a retry)."""
    real_kwargs = sgl.engine_kwargs
    monkeypatch.setattr(sgl, "engine_kwargs", lambda *a, **k: real_kwargs(*a[:3]))
    monkeypatch.setattr(sgl.EngineWatch, "attach", lambda self, engine: None)
    stand_in.fail = (1, 2, "oom")
    with pytest.raises(ProcessTreeKilled, match="running phase"):
        measure.run_cell(sgl_cell(batch=2, seq=3, prompt_len=4))
    measure.drop_models()
    stand_in.fail = ("start", "crash")
    with pytest.raises(ProcessTreeKilled, match="launch phase"):
        measure.run_cell(sgl_cell(batch=2, seq=3, prompt_len=4))
