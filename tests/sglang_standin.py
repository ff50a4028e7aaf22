"""A stand-in for `sglang.Engine` that rejects at least what the real one rejects.

The real engine needs CUDA or an NPU. This stand-in speaks the part of it the backend uses,
and where SGLang's own code imports here (tests/contract-requirements.txt) it validates with
that code: the engine arguments through ``ServerArgs(**kwargs)``, every request's sampling
parameters through ``SamplingParams(**sp).normalize(None).verify(vocab_size)`` (what SGLang's
tokenizer manager runs for an engine with ``skip_tokenizer_init``). Without SGLang it applies
the same rules from fixed lists copied from sglang 0.5.23 (``_fallback_*``).

It also behaves like SGLang where failures go (sglang 0.5.23, entrypoints/engine.py and
managers/tokenizer_manager.py): on start it installs ``custom_sigquit_handler`` for SIGQUIT,
or else a handler that ends the process (here: raises :class:`ProcessTreeKilled`, a
SystemExit, which no cell can catch); on the first request it installs
``tokenizer_manager.signal_handler_class(tm).running_phase_sigquit_handler`` on its event loop
with ``loop.add_signal_handler``; requests wait on that loop (``run_until_complete``) for
tokens that a failed scheduler never sends. A failure is injected with :attr:`fail`: the
"scheduler" writes its traceback through the logging config in SGLANG_LOGGING_CONFIG_PATH (as
SGLang's processes do) and sends SIGQUIT to this process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jobs.config import (
    BackendConfig,
    BenchConfig,
    CellConfig,
    DeviceConfig,
    ModelConfig,
    SGLangOptions,
)

QUICK = BenchConfig(name="quick", warmup=1, iterations=2, max_iterations=2)
HANG_GUARD_S = 60.0  # only a broken failure path ever waits this long

try:  # SGLang's own validation where it imports
    from sglang.srt.sampling.sampling_params import SamplingParams
    from sglang.srt.server_args import ServerArgs
except ImportError:  # pragma: no cover - depends on the environment
    SamplingParams = ServerArgs = None  # type: ignore[assignment,misc]

REAL_SGLANG = ServerArgs is not None


def sgl_cell(**kw: Any) -> CellConfig:
    model = kw.pop("model", None) or ModelConfig(name="llama3_8b", load_format="dummy")
    opts = kw.pop("sglang", None) or SGLangOptions()
    device = kw.pop("device", "cpu")
    return CellConfig(
        model=model,
        backend=BackendConfig(name="sglang", sglang=opts),
        device=DeviceConfig(name=device),
        bench=kw.pop("bench", QUICK),
        **kw,
    )


def installed(monkeypatch: Any, server_info: dict | None = None) -> Iterator[type[StandInEngine]]:
    """The body of a test's ``stand_in`` fixture: the backend builds this stand-in instead of
    ``sglang.Engine`` (fresh class state, ``server_info`` as its engine reports it); after the
    test, the models are dropped and SIGQUIT's disposition is put back."""
    from workers.backends.sglang import backend as sgl
    from workers.model_cache import drop_models

    StandInEngine.instances = []
    StandInEngine.short_by = 0
    StandInEngine.fail = StandInEngine.abort = None
    StandInEngine.server_info = server_info or {}
    monkeypatch.setattr(sgl.SGLangBackend, "engine_factory", StandInEngine)
    previous = signal.getsignal(signal.SIGQUIT)
    yield StandInEngine
    drop_models()
    signal.signal(signal.SIGQUIT, previous)


class ProcessTreeKilled(SystemExit):
    """What SGLang's own SIGQUIT handlers do: kill_process_tree(os.getpid())."""


class _SignalHandler:
    """sglang.srt.managers.tokenizer_manager.SignalHandler: kills the process tree."""

    def __init__(self, tokenizer_manager: Any) -> None:
        self.tokenizer_manager = tokenizer_manager

    def sigterm_handler(self, signum: Any = None, frame: Any = None) -> None:
        self.tokenizer_manager.gracefully_exit = True

    def running_phase_sigquit_handler(self, signum: Any = None, frame: Any = None) -> None:
        raise ProcessTreeKilled("SGLang killed the process tree (running phase)")


class _TokenizerManager:
    def __init__(self) -> None:
        self.signal_handler_class = _SignalHandler
        self.gracefully_exit = False


def _launch_phase_kill(signum: Any, frame: Any) -> None:
    raise ProcessTreeKilled("SGLang killed the process tree (launch phase)")


class StandInEngine:
    """Enough of sglang.Engine for the backend: records every call it gets."""

    instances: list[StandInEngine] = []
    short_by = 0  # sequence 0 ends this many tokens early (as after an unforced EOS)
    #: Inject a scheduler failure: ("start", kind) while starting, or (call, step, kind) in
    #: the call-th generate (0-based) before token `step`; kind "oom" or "crash".
    fail: tuple | None = None
    abort: tuple | None = None  # (call, message): the scheduler aborts the requests
    server_info: dict[str, Any] = {}

    def __init__(self, **kwargs: Any) -> None:
        _check_server_args(kwargs)
        self.kwargs = kwargs
        self.calls: list[dict] = []  # streamed (timed) generate calls
        self.checks: list[dict] = []  # non-streamed ones (the check prompts)
        self.shut = False
        config = json.loads((Path(kwargs["model_path"]) / "config.json").read_text())
        self.vocab_size = config["vocab_size"]
        self.log_config = os.environ.get("SGLANG_LOGGING_CONFIG_PATH")  # read by children
        self.loop = asyncio.new_event_loop()
        self.tokenizer_manager = _TokenizerManager()
        self._handle_loop = False
        StandInEngine.instances.append(self)
        signal.signal(signal.SIGQUIT, kwargs.get("custom_sigquit_handler") or _launch_phase_kill)
        if self.fail and self.fail[0] == "start":
            self._scheduler_fails(self.fail[1])
            self.loop.close()
            raise RuntimeError("Rank 0 scheduler died during initialization (exit code: 1).")

    def _scheduler_fails(self, kind: str) -> None:
        """What SGLang's scheduler does on an exception: log it, SIGQUIT its parent."""
        error = (
            "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB"
            if kind == "oom"
            else "RuntimeError: stand-in scheduler crashed"
        )
        self._log_error(f"Scheduler hit an exception: Traceback (most recent call last):\n{error}")
        os.kill(os.getpid(), signal.SIGQUIT)

    def _log_error(self, text: str) -> None:
        if not self.log_config:
            return
        config = json.loads(Path(self.log_config).read_text())  # where sglang.* ERRORs go
        names = config.get("loggers", {}).get("sglang", {}).get("handlers", [])
        names += config.get("root", {}).get("handlers", [])
        for name in names:
            h = config["handlers"][name]
            if h.get("class") == "logging.FileHandler" and h.get("level") in ("ERROR", None):
                with open(h["filename"], "a") as f:
                    f.write(text + "\n")

    def generate(self, prompt=None, sampling_params=None, input_ids=None, stream=False, **kw):
        assert prompt is None and not kw, "the backend sends token ids only"
        if not stream:  # the check prompts (workers/quality/): one dict per prompt, whole
            _check_request(sampling_params, input_ids, self.kwargs, self.vocab_size)
            self.checks.append({"input_ids": input_ids, "sampling_params": sampling_params})
            n = sampling_params["max_new_tokens"]
            return [{"output_ids": [(p[-1] + k) % self.vocab_size for k in range(n)],
                     "meta_info": {"completion_tokens": n}} for p in input_ids]  # fmt: skip
        call = len(self.calls)
        self.calls.append({"input_ids": input_ids, "sampling_params": sampling_params})
        if not self._handle_loop:  # TokenizerManager.auto_create_handle_loop
            handler = self.tokenizer_manager.signal_handler_class(self.tokenizer_manager)
            self.loop.add_signal_handler(signal.SIGQUIT, handler.running_phase_sigquit_handler)
            self._handle_loop = True
        agen = self._chunks(call, input_ids, sampling_params)

        def wrapper():  # Engine.generate(stream=True)
            while True:
                try:
                    yield self.loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    break

        return wrapper()

    async def _chunks(self, call: int, input_ids: list, sampling_params: dict):
        _check_request(sampling_params, input_ids, self.kwargs, self.vocab_size)
        want = sampling_params["max_new_tokens"]
        lengths = [want - (self.short_by if i == 0 else 0) for i in range(len(input_ids))]
        for step in range(1, want + 1):
            if self.fail and self.fail[:2] == (call, step):
                self._scheduler_fails(self.fail[2])
                await asyncio.wait_for(asyncio.Event().wait(), HANG_GUARD_S)  # no more tokens
            if self.abort and self.abort[0] == call:
                reason = {"type": "abort", "message": self.abort[1], "status_code": 500}
                yield {"index": 0, "meta_info": {"completion_tokens": 0, "finish_reason": reason}}
                return
            for i, n in enumerate(lengths):  # sequences interleaved, as SGLang streams them
                if step <= n:
                    meta = {"id": f"r{i}", "completion_tokens": step}
                    meta["finish_reason"] = {"type": "length"} if step == n else None
                    yield {"index": i, "output_ids": [7] * step, "meta_info": meta}
            await asyncio.sleep(0)

    def get_server_info(self) -> dict[str, Any]:
        return json.loads(json.dumps(self.server_info))

    def shutdown(self) -> None:
        self.shut = True
        if not self.loop.is_closed():
            self.loop.remove_signal_handler(signal.SIGQUIT)
            pending = asyncio.all_tasks(self.loop)  # requests a failed scheduler left waiting
            for task in pending:
                task.cancel()
            if pending:
                self.loop.run_until_complete(_drained(pending))
            self.loop.close()


async def _drained(tasks: set) -> None:
    await asyncio.gather(*tasks, return_exceptions=True)


# -- validation: SGLang's own code where it imports, else the same rules from its lists --------


def _check_server_args(kwargs: dict[str, Any]) -> None:
    if REAL_SGLANG:
        ServerArgs(**kwargs)  # TypeError for a name that is not a field
        return
    unknown = set(kwargs) - _FALLBACK_SERVER_ARGS
    if unknown:
        raise TypeError(f"Unexpected keyword argument(s) {sorted(unknown)}")


def _check_request(sp: dict, input_ids: list, engine_kwargs: dict, vocab: int) -> None:
    tokenizer = None if engine_kwargs.get("skip_tokenizer_init") else object()
    if any(not 0 <= t < vocab for p in input_ids for t in p):
        raise ValueError("input id out of the vocabulary")
    if REAL_SGLANG:
        params = SamplingParams(**sp)
        params.normalize(tokenizer)
        params.verify(vocab)
        return
    unknown = set(sp) - _FALLBACK_SAMPLING_FIELDS
    if unknown:
        raise TypeError(f"Unexpected keyword argument(s) {sorted(unknown)}")
    if tokenizer is None:  # sampling_params.raise_if_tokenizer_required
        for key in ("stop", "stop_regex", "min_new_tokens"):
            if sp.get(key):
                raise ValueError(f"{key}={sp[key]!r} is unavailable when skip_tokenizer_init=True")
    if sp.get("temperature", 1.0) < 0 or sp.get("max_new_tokens", 128) < 0:
        raise ValueError("temperature and max_new_tokens must be >= 0")
    if sp.get("min_new_tokens", 0) > sp.get("max_new_tokens", 128):
        raise ValueError("min_new_tokens must be in [0, max_new_tokens]")


# sglang 0.5.23: SamplingParams API fields; the ServerArgs fields this project may pass.
_FALLBACK_SAMPLING_FIELDS = frozenset(
    "max_new_tokens stop stop_token_ids stop_regex temperature top_p top_k min_p "
    "frequency_penalty presence_penalty repetition_penalty min_new_tokens n beam_width "
    "json_schema regex ebnf structural_tag ignore_eos skip_special_tokens "
    "spaces_between_special_tokens no_stop_trim stream_interval logit_bias sampling_seed "
    "custom_params watermark".split()
)
_FALLBACK_SERVER_ARGS = frozenset(
    "model_path load_format trust_remote_code dtype context_length json_model_override_args "
    "device random_seed base_gpu_id custom_sigquit_handler tp_size mem_fraction_static "
    "max_running_requests disable_radix_cache attention_backend cuda_graph_backend_decode "
    "cuda_graph_backend_prefill disable_decode_cuda_graph disable_prefill_cuda_graph "
    "disable_cuda_graph enable_torch_compile log_level enable_metrics skip_tokenizer_init "
    "tokenizer_path stream_interval skip_server_warmup".split()
)
