"""Does the harness measure what a bare `model.generate` loop measures?

Runs the cell `batch=4 seq=128` (prompt_len 32, 3 warm-up + 10 measured iterations) through
`workers.run_cell` and a bare loop calling `model.generate` on the same model, inputs and
generation settings, in the same process, alternating A/B rounds to cancel drift. Prints
output tokens/s of both and their ratio.

    python bench/cell_vs_bare.py [--rounds 3] [--batch 4] [--seq 128] [--device cpu]
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

from jobs.config import BenchConfig, BenchmarkConfig, DeviceConfig  # noqa: E402
from workers import measure  # noqa: E402


def bare_tokens_per_s(model, input_ids, seq: int, warmup: int, iterations: int, sync) -> float:
    import torch

    kw = dict(
        max_new_tokens=seq,
        min_new_tokens=seq,
        do_sample=False,
        pad_token_id=model.config.pad_token_id,
        attention_mask=torch.ones_like(input_ids),
    )
    with torch.inference_mode():
        for _ in range(warmup):
            model.generate(input_ids, **kw)
        sync()
        t0 = time.perf_counter()
        total = 0
        for _ in range(iterations):
            out = model.generate(input_ids, **kw)
            total += (out.shape[1] - input_ids.shape[1]) * out.shape[0]
        sync()
    return total / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    cell = BenchmarkConfig(
        batch=args.batch,
        seq=args.seq,
        prompt_len=args.prompt_len,
        device=DeviceConfig(name=args.device),
        bench=BenchConfig(warmup=3, iterations=10),
    )
    harness, bare = [], []
    for r in range(args.rounds):
        rec = measure.run_cell(cell)
        assert rec["status"] == "ok", rec["error"]
        harness.append(rec["output_tokens_per_s"])
        backend = next(iter(measure._LOADED.values()))
        backend.prepare(cell)
        bare.append(
            bare_tokens_per_s(
                backend.model, backend.input_ids, args.seq, 3, 10, backend.device.synchronize
            )
        )
        print(f"round {r + 1}: harness {harness[-1]:.1f} tok/s, bare generate {bare[-1]:.1f} tok/s")
    h, b = statistics.median(harness), statistics.median(bare)
    print(f"device: {rec['device_name']} ({rec['device']}), torch {rec['env']['torch']}")
    print(f"median harness output tokens/s: {h:.1f}")
    print(f"median bare generate tokens/s:  {b:.1f}")
    print(f"harness / bare: {h / b:.3f} ({(h / b - 1) * 100:+.1f}%)")


if __name__ == "__main__":
    main()
