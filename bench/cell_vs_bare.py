"""Does the harness measure what a bare `model.generate` loop measures?

The cell `batch=4 seq=128 prompt_len=32` on the CPU: one `workers.run_cell` first (the
path `python launch.py batch=4 seq=128` takes; loads the model, warms up), then, on the
same loaded model and inputs, alternating iteration by iteration so both see the same
machine load: the harness's timed iteration (`backend.run_iteration`: per-step clock,
device sync, token counting) and a bare `model.generate` with the same generation
settings timed with `time.perf_counter`. Prints output tokens/s of both, the median of the
per-pair ratios, and the run_cell figure.

    python bench/cell_vs_bare.py [--pairs 30] [--batch 4] [--seq 128] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from jobs.config import BenchConfig, CellConfig, DeviceConfig  # noqa: E402
from workers import model_cache  # noqa: E402
from workers.run import run_cell  # noqa: E402


def bare_generate_s(backend) -> tuple[float, int]:
    """One bare generate call with the harness's inputs and settings (no clock, no counting)."""
    import torch

    gc = backend.gen_config
    with torch.inference_mode():
        backend.device.synchronize()
        t0 = time.perf_counter()
        out = backend.model.generate(
            input_ids=backend.input_ids,
            attention_mask=backend.attention_mask,
            max_new_tokens=gc.max_new_tokens,
            min_new_tokens=gc.min_new_tokens,
            do_sample=False,
            pad_token_id=gc.pad_token_id,
        )
        backend.device.synchronize()
        dt = time.perf_counter() - t0
    return dt, (out.shape[1] - backend.input_ids.shape[1]) * out.shape[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=30)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    cell = CellConfig(
        batch=args.batch,
        seq=args.seq,
        prompt_len=args.prompt_len,
        device=DeviceConfig(name=args.device),
        bench=BenchConfig(warmup=3, iterations=10),
    )
    rec = run_cell(cell)
    assert rec["status"] == "ok", rec["error"]
    backend = next(iter(model_cache._LOADED.values()))
    backend.prepare(cell)
    harness, bare, ratios = [], [], []
    for _ in range(args.pairs):
        it = backend.run_iteration()
        h = it.generated_tokens / it.e2e_s
        dt, n = bare_generate_s(backend)
        assert n == it.generated_tokens == args.batch * args.seq
        b = n / dt
        harness.append(h)
        bare.append(b)
        ratios.append(h / b)
    print(f"cell: batch={args.batch} seq={args.seq} prompt_len={args.prompt_len} on "
          f"{rec['device_name']} ({rec['device']}), torch {rec['env']['torch']}")  # fmt: skip
    print(f"run_cell (3 warm-up + 10 measured): {rec['output_tokens_per_s']:.1f} output tok/s, "
          f"e2e CV {rec['e2e_cv']:.3f}")  # fmt: skip
    print(f"{args.pairs} alternating pairs: harness median {statistics.median(harness):.1f} tok/s, "
          f"bare generate median {statistics.median(bare):.1f} tok/s")  # fmt: skip
    r = statistics.median(ratios)
    q = statistics.quantiles(ratios, n=4)
    print(f"harness / bare, median of pairs: {r:.3f} ({(r - 1) * 100:+.1f}%), "
          f"quartiles {q[0]:.3f} .. {q[2]:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
