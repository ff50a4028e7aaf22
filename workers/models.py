"""Loading models through `from_pretrained` (real weights) or `from_config` (dummy weights)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jobs.config import ModelConfig
from workers.devices import Device

log = logging.getLogger(__name__)


SHIPPED_CONFIGS = Path(__file__).resolve().parent / "model_configs"


def shipped_config_dir(name: str) -> Path | None:
    """workers/model_configs/NAME if the project ships that model's config.json."""
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


def torch_dtype(dtype: str, device: Device) -> Any:
    import torch

    if dtype == "auto":
        return torch.float32 if device.kind == "cpu" else torch.float16
    return getattr(torch, dtype)


def load_hf_model(model: ModelConfig, device: Device) -> tuple[Any, Any, dict[str, Any]]:
    """Return (model, tokenizer or None, info) with the model on `device`, in eval mode."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(model)
    dtype = torch_dtype(model.dtype, device)
    trc = model.trust_remote_code
    config = AutoConfig.from_pretrained(path, trust_remote_code=trc)
    if model.num_layers_override:
        config.num_hidden_layers = model.num_layers_override
    if model.load_format == "dummy":
        # The real architecture, random weights, allocated directly on the device in `dtype`.
        with torch.device(device.torch_device):
            net = AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trc)
    else:
        net = AutoModelForCausalLM.from_pretrained(
            path, config=config, dtype=dtype, trust_remote_code=trc, low_cpu_mem_usage=True
        ).to(device.torch_device)
    net.eval()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trc)
    except (OSError, ValueError):
        tokenizer = None  # dummy-weight configs may ship without a tokenizer
    params = sum(p.numel() for p in net.parameters())
    info = {
        "path": path,
        "parameters": params,
        "dtype": str(dtype).replace("torch.", ""),
        "config": config.to_dict(),
    }
    return net, tokenizer, info
