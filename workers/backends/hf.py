"""Hugging Face transformers `generate` on one device.

Exactly `seq` new tokens per sequence: greedy, min_new_tokens = max_new_tokens = seq, so EOS
cannot end a sequence early; the count is then taken from the output, not assumed. A
stopping criterion that never stops timestamps every decode step after synchronising the
device, which gives TTFT (first step) and inter-token latencies (later steps).

Speed switch (both off by default, see docs/backends.md):
  backend.hf.static_cache=true  a static KV cache (generation config cache_implementation="static");
                                transformers' own auto-compile is turned off, so this measures
                                the cache alone.
  backend.hf.compile=true       torch.compile of the decode step the way transformers 5
                                recommends: static cache + `compile_config`; generate runs the
                                prefill eagerly and the decode steps through the compiled
                                forward. Implies the static cache (a dynamic cache changes shape
                                every step and would recompile every step). The compilation
                                happens in `prepare`, outside every timer.
  backend.hf.compile_backend    torch.compile's backend: inductor (the default: transformers'
                                own settings), or aot_eager / eager, which trace the same graph
                                without generating kernels.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from jobs.config import CellConfig, HFOptions
from workers.base import Backend, BackendReport, IterationResult
from workers.models import load_hf_model
from workers.prompts import prompt_ids

log = logging.getLogger(__name__)


class _StepClock:
    """A StoppingCriteria that records when each new token exists (never stops)."""

    def __init__(self, sync: Any) -> None:
        self.sync = sync
        self.times: list[float] = []

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        self.sync()
        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def speed_options(opts: HFOptions) -> dict[str, Any]:
    """Generation-config entries of the speed switch (empty when both parts are off)."""
    if not (opts.static_cache or opts.compile):
        return {}
    gen: dict[str, Any] = {"cache_implementation": "static"}
    if opts.compile:
        from transformers import CompileConfig

        # The default (inductor): transformers' own settings (mode "reduce-overhead"); a mode
        # is inductor's option, so the tracing-only backends get none.
        default = opts.compile_backend == HFOptions.compile_backend
        kwargs = {} if default else {"backend": opts.compile_backend, "mode": None}
        compile_config = CompileConfig(**kwargs)
        # generate() auto-compiles only on cuda/xpu/...; this flag extends it to cpu and npu.
        compile_config._compile_all_devices = True
        gen["compile_config"] = compile_config
    else:
        # On cuda a static cache alone would trigger transformers' auto-compile.
        gen["disable_compile"] = True
    return gen


class HFBackend(Backend):
    name = "hf"

    def load(self) -> None:
        self.model, self.tokenizer, self.info = load_hf_model(self.cell.model, self.device)
        self.compiled_for: tuple[int, int, int] | None = None

    def model_info(self) -> dict[str, Any]:
        return self.info

    def prepare(self, cell: CellConfig) -> None:
        import torch
        from transformers import GenerationConfig, StoppingCriteriaList

        self.cell = cell
        cfg = self.model.config
        special = [cfg.bos_token_id, cfg.pad_token_id]
        eos = cfg.eos_token_id
        special += eos if isinstance(eos, list) else [eos]
        if self.tokenizer is not None:
            special += list(self.tokenizer.all_special_ids)
        ids = prompt_ids(cell.batch, cell.prompt_len, cfg.vocab_size, special, cell.bench.seed)
        dev = self.device.torch_device
        self.input_ids = torch.tensor(ids, dtype=torch.long, device=dev)
        self.attention_mask = torch.ones_like(self.input_ids)
        eos_ids = [e for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
        self.eos_ids = set(eos_ids)
        pad = cfg.pad_token_id if cfg.pad_token_id is not None else (eos_ids[0] if eos_ids else 0)
        gen = dict(
            do_sample=False,
            num_beams=1,
            max_new_tokens=cell.seq,
            min_new_tokens=cell.seq,
            pad_token_id=pad,
            eos_token_id=eos_ids or None,
            use_cache=True,
        )
        gen.update(speed_options(cell.backend.hf))
        self.gen_config = GenerationConfig(**gen)
        self.clock = _StepClock(self.device.synchronize)
        self.criteria = StoppingCriteriaList([self.clock])
        shape = (cell.batch, cell.prompt_len, cell.seq)
        if cell.backend.hf.compile and self.compiled_for != shape:
            t0 = time.perf_counter()
            self.run_iteration()  # compiles the decode step for this shape, untimed
            self.compiled_for = shape
            took = time.perf_counter() - t0
            log.info("compiled the decode step for b=%d p=%d s=%d in %.1f s", *shape, took)

    def run_iteration(self) -> IterationResult:
        import torch

        self.clock.times = []
        with torch.inference_mode():
            self.device.synchronize()
            t0 = time.perf_counter()
            out = self.model.generate(
                input_ids=self.input_ids,
                attention_mask=self.attention_mask,
                generation_config=self.gen_config,
                stopping_criteria=self.criteria,
            )
            self.device.synchronize()
            t1 = time.perf_counter()
        new = out[:, self.input_ids.shape[1] :].tolist()
        per_seq = [_count_generated(row, self.eos_ids) for row in new]
        steps = [t - t0 for t in self.clock.times][: max((len(r) for r in new), default=0)]
        return IterationResult(
            e2e_s=t1 - t0,
            ttft_s=steps[0] if steps else None,
            step_times_s=steps,
            generated_tokens=sum(per_seq),
            per_sequence_tokens=per_seq,
        )

    def report(self) -> BackendReport:
        """What the speed switch really did, next to the numbers it produced."""
        opts = self.cell.backend.hf
        return BackendReport(
            engine={
                "kv_cache": "static" if (opts.static_cache or opts.compile) else "dynamic",
                "compiled": bool(opts.compile),
                **({"compile_backend": opts.compile_backend} if opts.compile else {}),
            }
        )

    def greedy_ids(self, prompts: list[list[int]], new_tokens: int) -> list[list[int]]:
        """The check prompts through generate with the cell's speed switch: exactly
        ``new_tokens`` greedy tokens each (EOS suppressed, as in the timed calls)."""
        import torch

        ids = torch.tensor(prompts, dtype=torch.long, device=self.device.torch_device)
        gen = self._greedy(new_tokens, new_tokens, speed_options(self.cell.backend.hf))
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gen
            )
        return out[:, ids.shape[1] :].tolist()

    def greedy_text(self, prompts: list[str], max_new_tokens: int) -> list[str] | None:
        """One prompt at a time (no padding to get wrong), stopping at EOS."""
        import torch

        if self.tokenizer is None:
            return None
        gen, out = self._greedy(max_new_tokens, 0, {}), []
        for text in prompts:
            ids = self.tokenizer(text, return_tensors="pt").input_ids.to(self.device.torch_device)
            with torch.inference_mode():
                row = self.model.generate(
                    input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=gen
                )
            out.append(self.tokenizer.decode(row[0, ids.shape[1] :], skip_special_tokens=True))
        return out

    def _greedy(self, max_new: int, min_new: int, extra: dict[str, Any]) -> Any:
        from transformers import GenerationConfig

        cfg = self.model.config
        eos = cfg.eos_token_id
        eos_ids = [e for e in (eos if isinstance(eos, list) else [eos]) if e is not None]
        pad = cfg.pad_token_id if cfg.pad_token_id is not None else (eos_ids[0] if eos_ids else 0)
        return GenerationConfig(
            do_sample=False, num_beams=1, max_new_tokens=max_new, min_new_tokens=min_new,
            pad_token_id=pad, eos_token_id=eos_ids or None, use_cache=True, **extra,
        )  # fmt: skip

    def close(self) -> None:
        self.model = None
        self.device.empty_cache()


def _count_generated(row: list[int], eos_ids: set[int]) -> int:
    """Tokens a sequence really generated: up to and including its first EOS."""
    for i, tok in enumerate(row):
        if tok in eos_ids:
            return i + 1
    return len(row)
