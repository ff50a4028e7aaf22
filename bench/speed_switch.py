"""What does the HF speed switch buy? Static KV cache, then static cache + torch.compile.

Runs the tiny-model cell (batch 4, seq 128, prompt_len 32; 3 warm-up + 10 measured
iterations) through `workers.run_cell` with the switch off, with `backend.hf.static_cache`,
and with `backend.hf.compile` (which implies the static cache), in alternating rounds so drift
hits every variant alike. Prints output tokens/s and TPOT (medians over rounds, and the best
round) and the gain over the plain dynamic-cache run, with the host's load average per round
(a busy host makes CPU figures swing). Every record must be ok with exactly batch * seq tokens.

    python bench/speed_switch.py [--rounds 3] [--batch 4] [--seq 128] [--device cpu]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from jobs.config import (  # noqa: E402
    BackendConfig,
    BenchConfig,
    CellConfig,
    DeviceConfig,
    HFOptions,
)
from workers.run import run_cell  # noqa: E402

VARIANTS = {
    "off (dynamic cache)": HFOptions(),
    "static_cache": HFOptions(static_cache=True),
    "compile (+static)": HFOptions(static_cache=True, compile=True),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    tok_s: dict[str, list[float]] = {name: [] for name in VARIANTS}
    tpot: dict[str, list[float]] = {name: [] for name in VARIANTS}
    rec: dict = {}
    for r in range(args.rounds):
        for name, opts in VARIANTS.items():
            cell = CellConfig(
                batch=args.batch,
                seq=args.seq,
                prompt_len=args.prompt_len,
                backend=BackendConfig(name="hf", hf=opts),
                device=DeviceConfig(name=args.device),
                bench=BenchConfig(warmup=3, iterations=10),
            )
            rec = run_cell(cell)
            assert rec["status"] == "ok", rec["error"]
            assert rec["generated_tokens"] == rec["expected_tokens"], rec["flags"]
            tok_s[name].append(rec["output_tokens_per_s"])
            tpot[name].append(rec["tpot_s_mean"])
            print(
                f"round {r + 1} {name:20s} {tok_s[name][-1]:8.1f} output tok/s  "
                f"TPOT {tpot[name][-1] * 1e3:6.2f} ms  load avg {os.getloadavg()[0]:.2f}",
                flush=True,
            )
    print(f"device: {rec['device_name']} ({rec['device']}), torch {rec['env']['torch']}, "
          f"transformers {rec['env'].get('transformers')}")  # fmt: skip
    print(f"cell: batch {args.batch}, seq {args.seq}, prompt_len {args.prompt_len}, "
          f"{args.rounds} rounds x 10 iterations, {os.cpu_count()} CPUs")  # fmt: skip
    off = "off (dynamic cache)"
    for label, pick in (("median", statistics.median), ("best round", max)):
        base = pick(tok_s[off])
        print(f"{label}:")
        for name in VARIANTS:
            t = pick(tok_s[name])
            p = tpot[name][tok_s[name].index(t)] if pick is max else statistics.median(tpot[name])
            print(f"  {name:20s} {t:8.1f} output tok/s  TPOT {p * 1e3:6.2f} ms  "
                  f"gain {(t / base - 1) * 100:+6.1f}%")  # fmt: skip


if __name__ == "__main__":
    main()
