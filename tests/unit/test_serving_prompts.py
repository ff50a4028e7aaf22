"""Every serving prompt is exactly ``prompt_len`` tokens as the server counts them (its own
tokenizer call, special tokens included), over many seeds and lengths, on every kind of
tokenizer the tests have: the tiny model's (byte-level BPE, no BOS), a Llama-3 style one
(byte-level BPE that adds a BOS) and a SentencePiece style one (Metaspace, adds a BOS)."""

from __future__ import annotations

import pytest

from jobs.config import TinyModelConfig
from workers.serving.prompts import PromptMaker

LENGTHS = (1, 2, 3, 7, 16, 33, 64, 100, 255, 512)
SEEDS = range(40)


def _trained(kind: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from workers.tiny import _corpus

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    if kind == "byte-bos":
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    else:
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        alphabet = []
    special = ["<unk>", "<s>", "</s>", "<pad>"]
    trainer = trainers.BpeTrainer(
        vocab_size=3000, special_tokens=special, initial_alphabet=alphabet, show_progress=False
    )
    tok.train_from_iterator(_corpus(3000, 7), trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
        pad_token="<pad>",
    )  # fmt: skip


@pytest.fixture(scope="module", params=["tiny", "byte-bos", "metaspace-bos"])
def tokenizer(request, tmp_path_factory):
    if request.param == "tiny":
        from transformers import AutoTokenizer

        from workers.tiny import ensure_tiny_model

        path = ensure_tiny_model(TinyModelConfig(), str(tmp_path_factory.mktemp("tiny")))
        return AutoTokenizer.from_pretrained(path)
    return _trained(request.param)


def test_prompts_have_exactly_prompt_len_tokens(tokenizer):
    specials = len(tokenizer("")["input_ids"])
    for seed in SEEDS:
        maker = PromptMaker(tokenizer, seed, prefix_len=4)
        for n in LENGTHS:
            if n <= specials:
                continue
            text, count = maker.prompt(n)
            assert count == n, (seed, n, text)
            assert len(tokenizer(text)["input_ids"]) == n, (seed, n, text)


def test_prompts_use_round_trip_stable_words(tokenizer):
    maker = PromptMaker(tokenizer, 0)
    assert len(maker.vocab) >= 16  # not the decode / encode / adjust fallback
    ids = maker._random(200)
    text = tokenizer.decode(ids)
    assert tokenizer.encode(text, add_special_tokens=False) == ids


def test_a_shared_prefix_is_the_same_text_in_every_prompt(tokenizer):
    maker = PromptMaker(tokenizer, 3, prefix_len=12)
    a, b = maker.prompt(40)[0], maker.prompt(40)[0]
    prefix = tokenizer.decode(maker.prefix)
    assert a.startswith(prefix) and b.startswith(prefix) and a != b
