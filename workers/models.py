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
from jobs.config import ModelConfig
from workers.device.devices import Device

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
        if not isinstance(config, dict):
            raise ValueError(f"{path}/config.json is not a JSON object")
    else:
        path = None
        config = asdict(model.tiny)
        config.pop("seed")
        config["tie_word_embeddings"] = False
    if model.num_layers_override:
        config["num_hidden_layers"] = model.num_layers_override
    return path, config


# Raw config.json keys that name a model's position limit, for configs transformers cannot
# load without running the model's own code.
_POSITION_KEYS = ("max_position_embeddings", "n_positions", "max_sequence_length", "n_ctx")


def causal_lm_problem(config: dict[str, Any]) -> str | None:
    """Why a model is not a causal language model this tool can measure, or None.

    `architectures` in config.json names the head the checkpoint was trained with: only a
    causal-LM class (LlamaForCausalLM, GPT2LMHeadModel, ...) has a trained LM head; an
    encoder (BertForMaskedLM, BertModel) would get a randomly initialised one."""
    archs = config.get("architectures") or []
    if isinstance(archs, list) and any(str(a).endswith("ForCausalLM") for a in archs):
        return None  # named so by transformers' convention: no need to import it
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    causal = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    if isinstance(archs, list) and archs:
        if any(a in causal or str(a).endswith("ForCausalLM") for a in archs):
            return None
        return f"architectures {archs} is not a causal language model (e.g. *ForCausalLM)"
    model_type = config.get("model_type")
    if model_type and model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return f"model_type {model_type!r} has no causal-LM class in transformers"
    return None


def position_limit(model: ModelConfig) -> int | None:
    """The most positions the model takes, as its own config class reads it (GPT-2's
    n_positions, Llama's max_position_embeddings ...); None when it sets none. Raises
    ValueError when transformers refuses the config (a string where a number belongs ...)."""
    path, raw = model_config_json(model)
    if path is None:
        limit = raw.get("max_position_embeddings")
    elif (limit := _json_position_limit(raw)) is not None:
        # A config class stores the limit config.json gives it as it is (GPT-2's attribute
        # map reads n_positions): the JSON says what the class would, without importing
        # transformers and torch (~4 s of every launch's start; a test checks they agree).
        pass
    elif "auto_map" in raw and not model.trust_remote_code:
        # Its config class is the model's own code, not run here: read the JSON.
        limit = next((raw[k] for k in _POSITION_KEYS if isinstance(raw.get(k), int)), None)
    else:
        try:
            limit = getattr(model_config(model), "max_position_embeddings", None)
        except Exception as exc:
            first = str(exc).strip().splitlines()
            detail = " ".join(line.strip() for line in first[:2])
            raise ValueError(f"transformers cannot load its config.json: {detail}") from None
    return limit if isinstance(limit, int) and limit > 0 else None


def _json_position_limit(raw: dict[str, Any]) -> int | None:
    """The first of _POSITION_KEYS that config.json gives as a positive integer, or None (then
    the config class decides: its default where the key is missing, an error where the
    value is not a number)."""
    for key in _POSITION_KEYS:
        value = raw.get(key)
        if key in raw and not (type(value) is int and value > 0):
            return None
        if key in raw:
            return value
    return None


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


def load_tokenizer(path: str, trust_remote_code: bool, required: bool = True) -> Any:
    """The model's own tokenizer, from its local directory (nothing is downloaded). Where
    it is not ``required`` (prompts are token ids), None when the directory has none (e.g.
    a shipped config.json for dummy weights) or it cannot be loaded."""
    if not required and not any((Path(path) / f).is_file() for f in TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as exc:
        if required:
            raise
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
        problem = causal_lm_problem(config.to_dict())
        if problem:
            raise ValueError(f"model.path={path!r}: {problem}; only causal LMs are measured")
        net, loading = AutoModelForCausalLM.from_pretrained(
            path, config=config, dtype=dtype, trust_remote_code=trc, low_cpu_mem_usage=True,
            output_loading_info=True,
        )  # fmt: skip
        if loading.get("missing_keys"):
            missing = ", ".join(sorted(loading["missing_keys"])[:5])
            raise ValueError(
                f"model.path={path!r}: weights missing from the checkpoint ({missing} ...) "
                "would be random; use model.load_format=dummy to measure random weights"
            )
        net = net.to(device.torch_device)
    net.eval()
    tokenizer = load_tokenizer(path, trc, required=False)
    params = sum(p.numel() for p in net.parameters())
    info = {
        "path": path,
        "parameters": params,
        "dtype": str(dtype).replace("torch.", ""),
        "config": config.to_dict(),
    }
    return net, tokenizer, info
