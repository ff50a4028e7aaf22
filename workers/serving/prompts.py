"""Text prompts of an exact token length, and the lengths a workload draws.

Servers take text (``transformers serve`` rejects token-id prompts), so a prompt of N tokens
is text that the model's own tokenizer encodes to exactly N tokens, the special tokens it adds
(a BOS) included, as the server counts them in ``usage.prompt_tokens``: seeded random
whole-word tokens whose decode / encode round trip is stable (see :class:`PromptMaker`). A
shared prefix is the same first ``prefix_len`` tokens in every prompt.
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


def _word_piece(piece: Any) -> bool:
    """A word's token: its space mark (byte-level BPE's or SentencePiece's), then letters;
    a pre-token of its own, so such tokens never merge with their neighbours."""
    return (
        isinstance(piece, str) and piece[:1] in ("\u0120", "\u2581")
        and piece[1:].isascii() and piece[1:].isalpha()
    )  # fmt: skip


class PromptMaker:
    """Exact-length prompts from one tokenizer (an HF tokenizer with encode/decode).

    A prompt is random whole-word tokens (a space mark, then letters) that each encode back to
    themselves: their decoded text splits at the spaces into the same tokens again, so the
    server, tokenizing the text, gets exactly the ids drawn. Special tokens the tokenizer adds
    (a BOS) count in the length, as in the server's ``usage.prompt_tokens``. A tokenizer
    without such words falls back to decode / encode / adjust (vLLM's random dataset), and
    a prompt that never settles keeps its true count (``prompt_len`` of the request says so).
    """

    def __init__(self, tokenizer: Any, seed: int, prefix_len: int = 0) -> None:
        self.tok = tokenizer
        self.rng = random.Random(seed)
        self.specials = _num_special(tokenizer)
        self.vocab = _stable_words(tokenizer) or _plain_vocab(tokenizer)
        self.prefix = self._random(max(0, prefix_len - self.specials))

    def _random(self, n: int) -> list[int]:
        return [self.rng.choice(self.vocab) for _ in range(n)]

    def count(self, text: str) -> int:
        """Tokens of ``text`` as a server counts them (special tokens included)."""
        return len(self.tok(text)["input_ids"])

    def words(self, n: int) -> list[int]:
        """``n`` random word tokens (no special tokens): a part of a longer prompt."""
        return self._random(max(0, n))

    def text(self, ids: list[int]) -> tuple[str, int]:
        """(the text of ``ids``, its token count as a server counts it)."""
        text = self.tok.decode(ids, skip_special_tokens=True)
        return text, self.count(text)

    def prompt(self, n: int) -> tuple[str, int]:
        """(text, its token count): exactly ``n`` unless the tokenizer never settles."""
        want = max(1, n - self.specials)
        ids = self.prefix[:want] + self._random(max(0, want - len(self.prefix)))
        text = ""
        for _ in range(_TRIES):
            text = self.tok.decode(ids, skip_special_tokens=True)
            enc = _encode(self.tok, text)
            if len(enc) == want:
                break
            ids = enc[:want] if len(enc) > want else enc + self._random(want - len(enc))
        return text, self.count(text)


def _num_special(tokenizer: Any) -> int:
    try:
        return int(tokenizer.num_special_tokens_to_add(pair=False))
    except (AttributeError, TypeError):
        return 0


def _plain_vocab(tokenizer: Any) -> list[int]:
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    return [i for i in range(len(tokenizer)) if i not in special]


_WORDS: dict[int, tuple[Any, list[int]]] = {}  # id(tokenizer) -> (it, its stable words)


def _stable_words(tokenizer: Any) -> list[int]:
    """Ids of whole-word tokens that encode back to themselves, alone and after another
    (found once per tokenizer)."""
    hit = _WORDS.get(id(tokenizer))
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    ids = [i for i in range(len(tokenizer)) if i not in special]
    pieces = tokenizer.convert_ids_to_tokens(ids)
    cands = [i for i, p in zip(ids, pieces, strict=True) if _word_piece(p)]
    words: list[int] = []
    if cands:  # each after a word, as it sits in a prompt
        anchor = cands[0]
        texts = tokenizer.batch_decode([[anchor, i] for i in cands])
        encoded = tokenizer(texts, add_special_tokens=False)["input_ids"]
        words = [i for i, enc in zip(cands, encoded, strict=True) if list(enc) == [anchor, i]]
    probe = words[:64]  # the split really falls at the spaces
    if len(words) < 16 or _encode(tokenizer, tokenizer.decode(probe)) != probe:
        words = []
    _WORDS[id(tokenizer)] = (tokenizer, words)
    return words


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer.encode(text, add_special_tokens=False))
