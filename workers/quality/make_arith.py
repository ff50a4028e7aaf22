"""`python -m workers.quality.make_arith [--n N] [--seed S] [--out PATH]`: the shipped task set.

Arithmetic questions with known answers in gsm8k's format (``{"question", "answer": "...
#### 42"}``), seeded, so the task check runs without downloads. The default writes
workers/quality/arith.jsonl (what the project ships: 40 questions, seed 0).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from workers.quality.task import SHIPPED


def arith_items(n: int = 40, seed: int = 0) -> list[dict[str, str]]:
    """``n`` questions: sums, differences and products of small whole numbers."""
    rng = random.Random(seed)
    items = []
    for _ in range(n):
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        op = rng.choice("+-*")
        value = a + b if op == "+" else a - b if op == "-" else a * b
        word = {"+": "plus", "-": "minus", "*": "times"}[op]
        items.append(
            {
                "question": f"What is {a} {word} {b}?",
                "answer": f"{a} {op} {b} = {value}\n#### {value}",
            }
        )
    return items


def write_arith(path: str | Path = SHIPPED, n: int = 40, seed: int = 0) -> Path:
    out = Path(path)
    out.write_text("".join(json.dumps(item) + "\n" for item in arith_items(n, seed)))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workers.quality.make_arith", description=__doc__)
    p.add_argument("--n", type=int, default=40, help="questions (default 40)")
    p.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    p.add_argument("--out", default=str(SHIPPED), help=f"file to write (default {SHIPPED})")
    args = p.parse_args(argv)
    if args.n < 1:
        p.error(f"--n {args.n} must be >= 1")
    print(write_arith(args.out, args.n, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
