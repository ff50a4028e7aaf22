"""Synthetic, seeded prompts of exactly `prompt_len` token ids (no tokenizer round trip)."""

from __future__ import annotations

from collections.abc import Iterable


def prompt_ids(
    batch: int, prompt_len: int, vocab_size: int, special_ids: Iterable[int], seed: int
) -> list[list[int]]:
    """`batch` prompts of `prompt_len` ordinary (non-special) token ids, the same for a seed."""
    import torch

    special = {i for i in special_ids if i is not None and 0 <= i < vocab_size}
    gen = torch.Generator().manual_seed(seed)
    # Draw from the ordinary ids only, so no prompt contains BOS/EOS/PAD.
    ordinary = torch.tensor([i for i in range(vocab_size) if i not in special])
    idx = torch.randint(0, len(ordinary), (batch, prompt_len), generator=gen)
    return ordinary[idx].tolist()
