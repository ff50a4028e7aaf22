"""Every server the project starts gets a bounded KV cache, sized from the cell (never a
share of the host's memory); its peak resident memory is measured; a server that cannot
rename its model is refused before launch."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pytest

import workers.serving.server as server_mod
from jobs.config import ConfigError, from_values
from jobs.identity import model_key
from jobs.serving import kv_bound
from workers.serving.process import RssPeak, tree_rss

# What bounds each kind's cache on its command line (flag -> must be a positive number).
BOUNDED = {
    "transformers": ("--cb-num-blocks", "--cb-max-batch-tokens"),
    "sglang": ("--max-total-tokens", "--max-running-requests"),
    "vllm": ("--max-model-len", "--max-num-seqs", "--kv-cache-memory-bytes"),
}


def serve(**values):
    values.setdefault("workload", {"name": "serve"})
    return from_values(values)


class _Started:
    """Stands in for the server process: keeps the argv LaunchedServer starts."""

    argv: list[str] = []

    def __init__(self, argv, *_args) -> None:
        _Started.argv = argv

    def start(self, env=None) -> None:
        pass

    def stop(self) -> None:
        pass

    def discard(self) -> None:  # ServerProcess.discard: stop, remove the log file
        pass

    def wait_healthy(self, timeout_s: float) -> float:
        return 0.0


def _started_argv(cell, device: str, model_path: str, monkeypatch) -> list[str]:
    monkeypatch.setattr(server_mod, "ServerProcess", _Started)
    server = server_mod.LaunchedServer(cell, SimpleNamespace(kind=device))
    server.model_path = model_path
    server._start()
    return _Started.argv


def _flag(argv: list[str], flag: str) -> int:
    assert flag in argv, f"{flag} missing: the server's cache would be unbounded"
    return int(argv[argv.index(flag) + 1])


@pytest.mark.parametrize("kind", sorted(BOUNDED))
@pytest.mark.parametrize("load", [{"concurrency": 8}, {"request_rate": 4.0}])
def test_a_started_server_gets_a_bounded_cache(kind, load, tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text(
        '{"num_attention_heads": 8, "hidden_size": 256, "num_key_value_heads": 4,'
        ' "num_hidden_layers": 4}'
    )
    cell = serve(server={"kind": kind}, seq=64, prompt_len=64, **load)
    device = "cpu" if kind == "transformers" else "cuda"
    argv = _started_argv(cell, device, str(tmp_path), monkeypatch)
    values = {flag: _flag(argv, flag) for flag in BOUNDED[kind]}
    assert all(v > 0 for v in values.values())
    bound = kv_bound(cell)
    if kind == "transformers":  # pages of 256 tokens, each request holding whole pages
        assert values["--cb-num-blocks"] >= bound.seqs * -(-bound.seq_tokens // 256)
    if kind == "sglang":
        assert values["--max-total-tokens"] == bound.tokens
    if kind == "vllm":
        assert values["--kv-cache-memory-bytes"] == bound.tokens * 2 * 4 * 4 * 32 * 2
        assert "--gpu-memory-utilization" not in argv


def test_no_continuous_batching_still_bounds_the_flags(monkeypatch, tmp_path):
    cell = serve(server={"transformers": {"continuous_batching": False}})
    argv = _started_argv(cell, "cpu", str(tmp_path), monkeypatch)
    assert "--no-continuous-batching" in argv and _flag(argv, "--cb-num-blocks") > 0


def test_the_bound_covers_the_cell_with_headroom():
    for c, p, s in ((1, 64, 64), (8, 64, 64), (64, 512, 128), (300, 16, 8)):
        b = kv_bound(serve(concurrency=c, prompt_len=p, seq=s))
        assert b.seqs >= c and b.seq_tokens >= p + s
        assert b.tokens >= 1.25 * c * (p + s)
    spread = serve(concurrency=4, prompt_len=100, workload={"name": "serve",
                   "prompt_len_dist": {"dist": "uniform", "spread": 0.5}})  # fmt: skip
    assert kv_bound(spread).seq_tokens >= 150 + spread.seq


def test_traffic_levels_share_a_server_until_they_outgrow_its_cache():
    keys = {model_key(serve(concurrency=c, seq=64, prompt_len=64)) for c in (1, 2, 4, 8, 16)}
    assert len(keys) == 1  # the README's sweep starts one server
    assert model_key(serve(concurrency=32, seq=64, prompt_len=64)) not in keys
    assert model_key(serve(concurrency=8, seq=512, prompt_len=64)) not in keys


def test_served_model_name_is_refused_where_the_server_cannot_rename():
    with pytest.raises(ConfigError, match=r"server.served_model_name='x'.*server=transformers"):
        serve(server={"served_model_name": "x"})
    serve(server={"kind": "vllm", "served_model_name": "x"})  # vLLM and SGLang can


def test_peak_rss_of_a_process_tree():
    code = "import time; b = bytearray(80 << 20); time.sleep(1.5)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        peak = RssPeak(child.pid, every_s=0.05)
        child.wait(timeout=30)
        peak.stop()
    finally:
        child.kill()
    assert peak.peak > 80 << 20
    assert tree_rss(child.pid) == 0  # gone
