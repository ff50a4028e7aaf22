"""Text prompts of an exact token length, and the lengths a workload draws.

Servers take text (``transformers serve`` rejects token-id prompts), so a prompt of N tokens
is made as vLLM's random dataset does: seeded random token ids (no special tokens), decoded,
encoded again, and cut or topped up until the text encodes to exactly N tokens by the model's
own tokenizer. A shared prefix is the same first ``prefix_len`` token ids in every prompt.
The server may add special tokens (a BOS); its ``usage.prompt_tokens`` is recorded beside.
"""

from __future__ import annotations

import random
from typing import Any

from jobs.serving import LengthDist

_TRIES = 30


def lengths(mean: int, dist: LengthDist, n: int, rng: random.Random) -> list[int]:
    """``n`` lengths of mean ``mean`` drawn from ``dist`` (each >= 1)."""
    if dist.dist == "fixed" or dist.spread == 0:
        return [mean] * n
    if dist.dist == "uniform":
        lo = max(1, round(mean * (1 - dist.spread)))
        hi = max(lo, round(mean * (1 + dist.spread)))
        return [rng.randint(lo, hi) for _ in range(n)]
    return [max(1, round(rng.gauss(mean, mean * dist.spread))) for _ in range(n)]


class PromptMaker:
    """Exact-length prompts from one tokenizer (an HF tokenizer with encode/decode)."""

    def __init__(self, tokenizer: Any, seed: int, prefix_len: int = 0) -> None:
        self.tok = tokenizer
        self.rng = random.Random(seed)
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        self.vocab = [i for i in range(len(tokenizer)) if i not in special]
        self.prefix = self._random(prefix_len)

    def _random(self, n: int) -> list[int]:
        return [self.rng.choice(self.vocab) for _ in range(n)]

    def _encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def prompt(self, n: int) -> tuple[str, int]:
        """(text, its token count): exactly ``n`` unless the tokenizer never settles."""
        ids = self.prefix[:n] + self._random(max(0, n - len(self.prefix)))
        text, count = "", 0
        for _ in range(_TRIES):
            text = self.tok.decode(ids, skip_special_tokens=True)
            enc = self._encode(text)
            count = len(enc)
            if count == n:
                return text, n
            ids = enc[:n] if count > n else enc + self._random(n - count)
        return text, count
