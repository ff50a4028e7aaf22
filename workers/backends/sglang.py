"""SGLang's offline engine (`sglang.Engine`) on one device (or `tp_size` devices).

The engine starts once per (device, model) in ``load`` (the measuring loop keeps loaded
backends per process, so one long-lived worker reuses it across cells) and is shut down in
``close``. A cell submits its `batch` prompts of exactly `prompt_len` token ids in one
``generate`` call (``input_ids=`` a list of lists; the engine runs with
``skip_tokenizer_init``), with sampling parameters that force exactly `seq` new tokens
greedily (``max_new_tokens = min_new_tokens = seq, ignore_eos, temperature 0``). The count is
read back from each output's ``meta_info["completion_tokens"]``, never assumed.

Timing comes from streaming (``stream=True``): the engine yields one chunk per sequence per
token (``stream_interval=1``), each with its sequence's ``index`` and cumulative
``completion_tokens``. Step k of the batch ends when the last sequence's k-th token has
arrived (the same definition as the HF step clock: "the batch's k-th token exists"); TTFT is
step 1, E2E is submit to the last chunk. These are times at which tokens reach this process,
so they include SGLang's IPC (scheduler -> detokenizer -> tokenizer manager) and no device
work can escape them. Prefix (radix) caching is disabled: every iteration sends the same
prompts, and a cached prefix would skip the prefill that TTFT is meant to measure.

Engine arguments (names verified against ServerArgs of sglang 0.5.23, see engine_kwargs) are
built by a pure function so tests can check them without SGLang. SGLang is imported only
when an engine is started; it pins its own torch, so it is installed on accelerator hosts
only (``pip install '.[sglang]'``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cells.config import CellConfig
from workers.base import Backend, BackendReport, BackendUnavailable, IterationResult
from workers.models import resolve_model_path
from workers.prompts import prompt_ids

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "backend=sglang needs SGLang: pip install '.[sglang]' on the accelerator host "
    "(it pins its own torch)"
)


def check_available() -> None:
    """Raise BackendUnavailable with the install hint when SGLang is not installed here."""
    if importlib.util.find_spec("sglang") is None:
        raise BackendUnavailable(INSTALL_HINT)


def engine_dtype(dtype: str, device_kind: str) -> str:
    """model.dtype as SGLang's `dtype`; auto follows the HF backend (float16 on accelerators),
    so both backends measure the same weights dtype."""
    if dtype == "auto":
        return "float32" if device_kind == "cpu" else "float16"
    return dtype


def engine_kwargs(cell: CellConfig, device_kind: str, model_path: str) -> dict[str, Any]:
    """Keyword arguments of `sglang.Engine(...)` (= ServerArgs fields) for a cell's model."""
    opts = cell.backend.sglang
    kw: dict[str, Any] = {
        "model_path": model_path,
        "skip_tokenizer_init": True,  # prompts are token ids; shipped configs have no tokenizer
        "load_format": cell.model.load_format,  # auto | dummy
        "trust_remote_code": cell.model.trust_remote_code,
        "dtype": engine_dtype(cell.model.dtype, device_kind),
        "device": device_kind,
        "tp_size": opts.tp_size,
        "mem_fraction_static": opts.mem_fraction_static,
        "random_seed": cell.bench.seed,
        "disable_radix_cache": True,  # same prompts every iteration: no prefix-cache hits
        "stream_interval": 1,  # one streamed chunk per token: per-step times
        "disable_cuda_graph": opts.disable_cuda_graph,
        "log_level": opts.log_level,
    }
    attention = opts.attention_backend or ("ascend" if device_kind == "npu" else None)
    if attention:
        kw["attention_backend"] = attention
    if cell.model.num_layers_override:
        kw["json_model_override_args"] = json.dumps(
            {"num_hidden_layers": cell.model.num_layers_override}
        )
    return kw


def sampling_params(seq: int) -> dict[str, Any]:
    """Exactly `seq` new tokens, greedy, whatever the model would rather do."""
    return {
        "max_new_tokens": seq,
        "min_new_tokens": seq,
        "ignore_eos": True,
        "temperature": 0.0,
    }


def _start_sglang_engine(**kwargs: Any) -> Any:
    check_available()
    import sglang

    return sglang.Engine(**kwargs)


class SGLangBackend(Backend):
    name = "sglang"
    #: Starts the engine from engine_kwargs; tests replace it with a stand-in.
    engine_factory: Callable[..., Any] = staticmethod(_start_sglang_engine)

    def load(self) -> None:
        path = resolve_model_path(self.cell.model)
        self.kwargs = engine_kwargs(self.cell, self.device.kind, path)
        self.config = json.loads((Path(path) / "config.json").read_text())
        if self.cell.model.num_layers_override:
            self.config["num_hidden_layers"] = self.cell.model.num_layers_override
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        log.info("[%s] starting sglang.Engine(%s)", self.cell.model.name, args)
        self.engine = type(self).engine_factory(**self.kwargs)  # the real one checks for sglang

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
        batch = len(self.input_ids)
        arrivals: list[list[float]] = [[] for _ in range(batch)]  # per sequence, per token
        counts = [0] * batch
        t0 = time.perf_counter()
        chunks = self.engine.generate(
            input_ids=self.input_ids, sampling_params=self.sampling, stream=True
        )
        for chunk in chunks:
            now = time.perf_counter() - t0
            i = int(chunk.get("index", 0))
            counts[i] = int(chunk["meta_info"]["completion_tokens"])
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
        """The engine's arguments and version next to the numbers they produced."""
        try:
            from importlib.metadata import version

            sglang_version: str | None = version("sglang")
        except Exception:
            sglang_version = None
        return BackendReport(
            engine={
                "name": "sglang.Engine",
                "sglang": sglang_version,
                "server_args": dict(self.kwargs),
                "timing": "stream",
            }
        )

    def close(self) -> None:
        engine, self.engine = getattr(self, "engine", None), None
        if engine is not None:
            engine.shutdown()
