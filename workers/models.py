"""Loading models through `from_pretrained` (real weights) or `from_config` (dummy weights).

Dummy weights (``model.load_format=dummy``): the real architecture from config.json, built
directly on the target device in the target dtype (``torch.device`` context + ``dtype=``;
transformers 5 builds under ``local_torch_dtype``, so no float32 copy is ever made), with
transformers' own initialisation skipped and every floating tensor filled the way SGLang's
dummy loader does it (uniform in [-1e-3, 1e-3], per-tensor generator seeded 1234). Such
weights produce finite logits and meaningless tokens: only timings and memory mean anything.
No tokenizer is needed (prompts are token ids).
"""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bounds.roofline import SHIPPED_CONFIGS
from cells.config import ModelConfig
from workers.devices import Device

log = logging.getLogger(__name__)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")
# SGLang's dummy loader (sglang/srt/model_loader/weight_utils.py: initialize_dummy_weights).
DUMMY_LOW, DUMMY_HIGH, DUMMY_SEED = -1e-3, 1e-3, 1234


def shipped_config_dir(name: str) -> Path | None:
    """bounds/model_configs/NAME if the project ships that model's config.json."""
    d = SHIPPED_CONFIGS / name
    return d if (d / "config.json").is_file() else None


def resolve_model_path(model: ModelConfig) -> str:
    """The local directory to load: model.path; else a shipped config (dummy weights only);
    else the tiny model, built on first use."""
    if model.path:
        return model.path
    shipped = shipped_config_dir(model.name)
    if shipped is not None:
        return str(shipped)
    from workers.tiny import ensure_tiny_model

    return str(ensure_tiny_model(model.tiny, model.cache_dir))


def model_config_json(model: ModelConfig) -> tuple[str | None, dict[str, Any]]:
    """(path, config.json as a dict) without loading weights or torch: model.path, else the
    shipped config, else the tiny model's shape (from model.tiny, without building it).
    Raises OSError / ValueError when a config.json cannot be read."""
    if model.path or shipped_config_dir(model.name) is not None:
        path = resolve_model_path(model)
        config = json.loads((Path(path) / "config.json").read_text())
    else:
        path = None
        config = asdict(model.tiny)
        config.pop("seed")
        config["tie_word_embeddings"] = False
    if model.num_layers_override:
        config["num_hidden_layers"] = model.num_layers_override
    return path, config


def torch_dtype(dtype: str, device: Device) -> Any:
    import torch

    if dtype == "auto":
        return torch.float32 if device.kind == "cpu" else torch.float16
    return getattr(torch, dtype)


def model_config(model: ModelConfig) -> Any:
    """The transformers config of the model, with num_layers_override applied."""
    from transformers import AutoConfig

    path = resolve_model_path(model)
    config = AutoConfig.from_pretrained(path, trust_remote_code=model.trust_remote_code)
    if model.num_layers_override:
        config.num_hidden_layers = model.num_layers_override
    return config


def _no_init_weights() -> contextlib.AbstractContextManager:
    try:  # transformers >= 5
        from transformers.initialization import no_init_weights
    except ImportError:  # transformers 4.x
        from transformers.modeling_utils import no_init_weights
    return no_init_weights()


def fill_dummy_weights(net: Any) -> None:
    """Every floating tensor of the state dict uniform in [DUMMY_LOW, DUMMY_HIGH], in place."""
    import torch

    with torch.no_grad():
        for tensor in net.state_dict().values():
            if not torch.is_floating_point(tensor) or tensor.device.type == "meta":
                continue
            try:
                gen = torch.Generator(device=tensor.device)
            except RuntimeError:  # a device without its own generator type
                gen = None
                torch.manual_seed(DUMMY_SEED)
            if gen is not None:
                gen.manual_seed(DUMMY_SEED)
            tensor.uniform_(DUMMY_LOW, DUMMY_HIGH, generator=gen)


def build_dummy_model(config: Any, dtype: Any, device: str, trust_remote_code: bool) -> Any:
    """The architecture of `config` on `device` in `dtype`, dummy weights ('meta': shapes only)."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device(device), _no_init_weights():
        net = AutoModelForCausalLM.from_config(
            config, dtype=dtype, trust_remote_code=trust_remote_code
        )
    fill_dummy_weights(net)
    return net


def parameter_count(model: ModelConfig, dtype: str = "bfloat16") -> int:
    """Exact parameter count of the model's architecture, built on the meta device (no memory)."""
    import torch

    config = model_config(model)
    net = build_dummy_model(config, getattr(torch, dtype), "meta", model.trust_remote_code)
    return sum(p.numel() for p in net.parameters())


def _load_tokenizer(path: str, trust_remote_code: bool) -> Any:
    if not any((Path(path) / f).is_file() for f in TOKENIZER_FILES):
        return None  # e.g. a shipped config.json for dummy weights: prompts are token ids anyway
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        log.warning("no usable tokenizer in %s (%s): special ids come from config.json", path, exc)
        return None


def load_hf_model(model: ModelConfig, device: Device) -> tuple[Any, Any, dict[str, Any]]:
    """Return (model, tokenizer or None, info) with the model on `device`, in eval mode."""
    from transformers import AutoModelForCausalLM

    path = resolve_model_path(model)
    dtype = torch_dtype(model.dtype, device)
    trc = model.trust_remote_code
    config = model_config(model)
    if model.load_format == "dummy":
        net = build_dummy_model(config, dtype, device.torch_device, trc)
    else:
        net = AutoModelForCausalLM.from_pretrained(
            path, config=config, dtype=dtype, trust_remote_code=trc, low_cpu_mem_usage=True
        ).to(device.torch_device)
    net.eval()
    tokenizer = _load_tokenizer(path, trc)
    params = sum(p.numel() for p in net.parameters())
    info = {
        "path": path,
        "parameters": params,
        "dtype": str(dtype).replace("torch.", ""),
        "config": config.to_dict(),
    }
    return net, tokenizer, info
