"""The tiny default model: a Llama-architecture model and a BPE tokenizer, built offline.

Built once per shape into ``cache_dir`` (atomically: a temp directory renamed into place, so
concurrent workers never see half a model) and then loaded through ``from_pretrained`` like
any real checkpoint. Nothing is fetched from a hub.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

from jobs.config import TinyModelConfig

log = logging.getLogger(__name__)

_WORDS = (
    "the a an of to in on for with by from at as is are was were be been model token batch "
    "sequence latency throughput device memory cache prefill decode attention layer head "
    "tensor kernel stream queue node cluster sweep cell record table plot report number "
    "fast slow measure bound roofline bandwidth compute ascend npu gpu cpu ray hydra"
).split()


def _corpus(n_lines: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = []
    for _ in range(n_lines):
        words = [rng.choice(_WORDS) for _ in range(rng.randint(5, 30))]
        # Add some numbers and odd fragments so BPE learns more merges.
        words += [
            str(rng.randint(0, 9999)),
            "".join(rng.choice("abcdefghijklmnop") for _ in range(6)),
        ]
        rng.shuffle(words)
        lines.append(" ".join(words))
    return lines


def tiny_model_dir(cfg: TinyModelConfig, cache_dir: str) -> Path:
    key = hashlib.sha256(json.dumps(asdict(cfg), sort_keys=True).encode()).hexdigest()[:12]
    return Path(os.path.expanduser(cache_dir)) / f"tiny-llama-{key}"


def ensure_tiny_model(cfg: TinyModelConfig, cache_dir: str) -> Path:
    """Return the directory of the tiny model, building it on first use."""
    target = tiny_model_dir(cfg, cache_dir)
    if (target / "config.json").exists() and (target / "tokenizer.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".building-", dir=target.parent))
    try:
        _build(cfg, tmp)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another worker finished first; theirs is identical.
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("built tiny model in %s", target)
    return target


def _build(cfg: TinyModelConfig, out: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    special = ["<unk>", "<s>", "</s>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=cfg.vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(4000, cfg.seed), trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    fast.save_pretrained(out)

    config = LlamaConfig(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        max_position_embeddings=cfg.max_position_embeddings,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(cfg.seed)
    model = LlamaForCausalLM(config)
    model.save_pretrained(out)
