"""SGLang's offline engine (`sglang.Engine`) on one device (or `tp_size` devices).

The engine starts once per (device, model) in ``load`` (workers.model_cache keeps loaded
backends per process, so one long-lived worker reuses it across cells) and is shut down in
``close``. A cell submits its `batch` prompts of exactly `prompt_len` token ids in one
``generate`` call (``input_ids=`` a list of lists; the engine runs with
``skip_tokenizer_init``), with sampling parameters that force exactly `seq` new tokens
greedily (``max_new_tokens = seq, ignore_eos, temperature 0``; see args). The count is
read back from each output's ``meta_info["completion_tokens"]``, never assumed.

Timing comes from streaming (``stream=True``): the engine yields one chunk per sequence per
token (``stream_interval=1``), each with its sequence's ``index`` and cumulative
``completion_tokens``. Step k of the batch ends when the last sequence's k-th token has
arrived (the same definition as the HF step clock: "the batch's k-th token exists"); TTFT is
step 1, E2E is submit to the last chunk. These are times at which tokens reach this process,
so they include SGLang's IPC (scheduler -> detokenizer -> tokenizer manager) and no device
work can escape them. Prefix (radix) caching is disabled: every iteration sends the same
prompts, and a cached prefix would skip the prefill that TTFT is meant to measure.

A failure of the engine's processes (scheduler exception, device out-of-memory, crash) ends
the cell as `failed` / `oom` with the engine's own error, and this process lives on
(watch). The record's ``engine`` part carries the engine's limits, whether the batch
had to be split (flag ``batch_split``), how its decode steps ran (graphs), and the engine's
memory (info); ``peak_memory_*`` come from the engine and the device tool, never from
this process's torch counters, which cannot see the model.

SGLang is imported only when an engine is started; it pins its own torch, so it is installed
on accelerator hosts only (``pip install '.[sglang]'``; docs/ascend.md for Atlas nodes).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from jobs.config import CellConfig
from jobs.record import Flag
from workers.backends.sglang.args import (
    CHECKED_SGLANG,
    engine_dtype,
    engine_kwargs,
    printable_kwargs,
    sampling_params,
)
from workers.backends.sglang.info import (
    batch_split,
    decode_graph,
    device_used_bytes,
    engine_limits,
    engine_memory,
)
from workers.backends.sglang.watch import EngineFailed, EngineWatch, is_oom_text, on_sigquit
from workers.base import Backend, BackendReport, BackendUnavailable, CellOOM, IterationResult
from workers.models import resolve_model_path
from workers.prompts import prompt_ids

__all__ = ["SGLangBackend", "check_available", "engine_dtype", "engine_kwargs", "sampling_params"]

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "backend=sglang needs SGLang: pip install '.[sglang]' on the accelerator host "
    "(it pins its own torch; on Ascend see docs/ascend.md)"
)


def check_available() -> None:
    """Raise BackendUnavailable with the install hint when SGLang cannot start an engine here:
    not installed, or installed without what its engine needs (e.g. only the modules the
    contract tests use, tests/contract-requirements.txt)."""
    if importlib.util.find_spec("sglang") is None:
        raise BackendUnavailable(INSTALL_HINT)
    problem = _engine_import_problem()
    if problem:
        raise BackendUnavailable(f"{INSTALL_HINT}; the installed sglang cannot start an engine "
                                 f"here: {problem}")  # fmt: skip


@functools.lru_cache(maxsize=1)
def _engine_import_problem() -> str | None:
    try:
        importlib.import_module("sglang.srt.entrypoints.engine")
    except Exception as exc:  # ImportError, or what a half-installed stack raises
        return f"{type(exc).__name__}: {exc}"
    return None


def _start_sglang_engine(**kwargs: Any) -> Any:
    check_available()
    import sglang

    return sglang.Engine(**kwargs)


@contextlib.contextmanager
def _environ(extra: dict[str, str]) -> Iterator[None]:
    """Set variables for the engine's child processes (spawned while it starts)."""
    saved = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _peak_rss() -> int | None:
    """This process's peak RSS since the loop reset it (VmHWM), or None."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _aborted(finish_reason: dict[str, Any]) -> Exception:
    message = str(finish_reason.get("message") or finish_reason)
    kind = CellOOM if is_oom_text(message) else EngineFailed
    return kind(f"the SGLang engine aborted the request: {message}")


class SGLangBackend(Backend):
    name = "sglang"
    #: Starts the engine from engine_kwargs; tests replace it with a stand-in.
    engine_factory: Callable[..., Any] = staticmethod(_start_sglang_engine)

    def load(self) -> None:
        path = resolve_model_path(self.cell.model)
        self.config = json.loads((Path(path) / "config.json").read_text())
        if self.cell.model.num_layers_override:
            self.config["num_hidden_layers"] = self.cell.model.num_layers_override
        self.watch = EngineWatch(self.cell.backend.sglang.log_level)
        self.kwargs = engine_kwargs(self.cell, self.device.kind, path, sigquit_handler=on_sigquit)
        args = ", ".join(f"{k}={v!r}" for k, v in printable_kwargs(self.kwargs).items())
        log.info("[%s] starting sglang.Engine(%s)", self.cell.model.name, args)
        self.watch.activate()
        try:
            with _environ(self.watch.log_env()):
                self.engine = type(self).engine_factory(**self.kwargs)
        except BackendUnavailable:
            self.watch.close()
            raise
        except Exception as exc:
            failure = self.watch.failure(exc)
            self.watch.close()
            raise failure from exc
        self.watch.attach(self.engine)
        self.info, self.info_error = self._server_info()

    def _server_info(self) -> tuple[dict[str, Any], str | None]:
        try:
            info = self.engine.get_server_info()
        except Exception as exc:  # limits are for the record; the engine runs without them
            log.warning("sglang get_server_info failed: %s", exc)
            return {}, f"{type(exc).__name__}: {exc}"
        return (info if isinstance(info, dict) else {}), None

    def model_info(self) -> dict[str, Any]:
        from workers.models import parameter_count

        if not hasattr(self, "parameters"):
            try:  # exact count of the architecture, on the meta device (no memory)
                self.parameters: int | None = parameter_count(self.cell.model)
            except Exception as exc:  # a count is a nicety; the engine runs without it
                log.warning("cannot count parameters of %s: %s", self.kwargs["model_path"], exc)
                self.parameters = None
        return {
            "path": self.kwargs["model_path"],
            "parameters": self.parameters,
            "dtype": self.kwargs["dtype"],
            "config": self.config,
        }

    def prepare(self, cell: CellConfig) -> None:
        self.cell = cell
        cfg = self.config
        eos = cfg.get("eos_token_id")
        special = [cfg.get("bos_token_id"), cfg.get("pad_token_id")]
        special += eos if isinstance(eos, list) else [eos]
        self.input_ids = prompt_ids(
            cell.batch, cell.prompt_len, cfg["vocab_size"], special, cell.bench.seed
        )
        self.sampling = sampling_params(cell.seq)

    def run_iteration(self) -> IterationResult:
        if self.watch.failed:
            raise self.watch.failure()
        try:
            result = self._stream()
        except (EngineFailed, CellOOM):
            raise
        except Exception as exc:
            if self.watch.failed:  # the engine's loop was stopped under us: say why
                raise self.watch.failure(exc) from exc
            raise
        if self.watch.failed:
            raise self.watch.failure()
        return result

    def greedy_ids(self, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
        """The check prompts in one non-streamed call; SGLang returns each output's token ids
        as ``output_ids``. Unverified on a real engine here (docs/quality.md)."""
        outs = self.engine.generate(input_ids=prompts, sampling_params=sampling_params(new_tokens))
        outs = outs if isinstance(outs, list) else [outs]
        return [[int(t) for t in o["output_ids"]][:new_tokens] for o in outs]

    def _stream(self) -> IterationResult:
        batch = len(self.input_ids)
        arrivals: list[list[float]] = [[] for _ in range(batch)]  # per sequence, per token
        counts = [0] * batch
        t0 = time.perf_counter()
        chunks = self.engine.generate(
            input_ids=self.input_ids, sampling_params=self.sampling, stream=True
        )
        for chunk in chunks:
            now = time.perf_counter() - t0
            meta = chunk["meta_info"]
            reason = meta.get("finish_reason")
            if isinstance(reason, dict) and reason.get("type") == "abort":
                raise _aborted(reason)
            i = int(chunk.get("index", 0))
            counts[i] = int(meta["completion_tokens"])
            # A chunk may carry several tokens: each gets the time it became visible here.
            arrivals[i].extend([now] * (counts[i] - len(arrivals[i])))
        e2e = time.perf_counter() - t0
        done = min(len(a) for a in arrivals)
        steps = [max(a[k] for a in arrivals) for k in range(done)]
        return IterationResult(
            e2e_s=e2e,
            ttft_s=steps[0] if steps else None,
            step_times_s=steps,
            generated_tokens=sum(counts),
            per_sequence_tokens=counts,
        )

    def report(self) -> BackendReport:
        """The engine's arguments, limits, batch handling and memory next to the numbers."""
        cell = self.cell
        limits = engine_limits(self.info) if self.info else None
        split = batch_split(limits, cell.batch, cell.prompt_len, cell.seq) if limits else None
        mem = engine_memory(self.info)
        used = device_used_bytes(self._snapshot(), cell.backend.sglang.tp_size)
        reserved = mem["engine_reserved_bytes"]
        source = "device tool" if used is not None else ("engine" if reserved else None)
        engine = {
            "name": "sglang.Engine",
            "sglang": _sglang_version(),
            "checked_sglang": CHECKED_SGLANG,
            "server_args": printable_kwargs(self.kwargs),
            "timing": "stream",
            "limits": limits,
            "batch_split": split,
            "decode_graph": decode_graph(limits, cell.batch) if limits else None,
            "memory": {**mem, "device_used_bytes": used, "peak_memory_source": source},
            "server_info_error": self.info_error,
        }
        memory = {
            "peak_memory_bytes": used if used is not None else reserved,
            "peak_memory_allocated_bytes": None,  # torch counters of another process
            "peak_memory_reserved_bytes": reserved,
            "peak_rss_bytes": _peak_rss(),
        }
        return BackendReport(
            engine=engine, flags=[Flag.BATCH_SPLIT] if split else [], memory=memory
        )

    def _snapshot(self) -> dict[str, Any] | None:
        if self.device.kind not in ("cuda", "npu"):
            return None
        from workers.device.smi import snapshot

        try:
            return snapshot(self.device.kind)
        except Exception:  # a reading is a nicety; never fail a cell for it
            log.exception("device snapshot for the engine's memory failed")
            return None

    def close(self) -> None:
        engine, self.engine = getattr(self, "engine", None), None
        try:
            if engine is not None:
                engine.shutdown()
        finally:
            watch = getattr(self, "watch", None)
            if watch is not None:
                watch.close()


def _sglang_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("sglang")
    except Exception:
        return None
