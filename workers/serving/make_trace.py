"""A synthetic trace in the Mooncake format, with shared prefixes (a `workload=trace` input).

    python -m workers.serving.make_trace --out trace.jsonl --requests 24 --seed 0 \\
        --rate 4 --prefixes 3 --prefix-blocks 2 --blocks 1-3 --block-tokens 16 --output 4-8

Requests arrive as a Poisson process of ``--rate`` per second; each starts with one of
``--prefixes`` shared prefixes (``--prefix-blocks`` blocks each, the same hash_ids in every
request of that prefix), then 1..N blocks of its own; ``input_length`` fills its blocks
(the last one partly), ``output_length`` is drawn from ``--output`` (LO-HI tokens).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path


def _span(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


def make_trace(
    requests: int, seed: int, rate: float, prefixes: int, prefix_blocks: int,
    blocks: tuple[int, int], block_tokens: int, output: tuple[int, int],
) -> list[dict]:  # fmt: skip
    rng = random.Random(seed)
    next_id = prefixes * prefix_blocks
    t = 0.0
    out = []
    for _ in range(requests):
        p = rng.randrange(prefixes) if prefixes else 0
        ids = list(range(p * prefix_blocks, (p + 1) * prefix_blocks)) if prefixes else []
        own = rng.randint(*blocks)
        ids += list(range(next_id, next_id + own))
        next_id += own
        inp = (len(ids) - 1) * block_tokens + rng.randint(1, block_tokens)
        out.append({"timestamp": round(t * 1000), "input_length": inp,
                    "output_length": rng.randint(*output), "hash_ids": ids})  # fmt: skip
        t += rng.expovariate(rate)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workers.serving.make_trace", description=__doc__)
    ap.add_argument("--out", required=True)
    ap.add_argument("--requests", type=int, default=24)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate", type=float, default=4.0, help="requests per second")
    ap.add_argument("--prefixes", type=int, default=3, help="shared prefixes")
    ap.add_argument("--prefix-blocks", type=int, default=2, help="blocks of each prefix")
    ap.add_argument("--blocks", default="1-3", help="a request's own blocks, LO-HI")
    ap.add_argument("--block-tokens", type=int, default=512)
    ap.add_argument("--output", default="16-128", help="output tokens, LO-HI")
    a = ap.parse_args(argv)
    try:
        blocks, output = _span(a.blocks), _span(a.output)
        bad = [n for n, v in (("--requests", a.requests), ("--rate", a.rate),
                              ("--block-tokens", a.block_tokens), ("--blocks", blocks[0]),
                              ("--output", output[0])) if v <= 0]  # fmt: skip
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if bad or a.prefixes < 0 or a.prefix_blocks < 0:
        print(f"error: {(bad or ['--prefixes'])[0]} must be > 0", file=sys.stderr)
        return 2
    rows = make_trace(a.requests, a.seed, a.rate, a.prefixes, a.prefix_blocks, blocks,
                      a.block_tokens, output)  # fmt: skip
    Path(a.out).write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} requests -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
