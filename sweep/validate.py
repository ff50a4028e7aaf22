"""Checks that need more than types: paths, devices, optional packages, model limits.

Every check raises :class:`ConfigError` with a one-line message naming the setting; all run
before any model is loaded or Ray is started.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from bounds.roofline import SHIPPED_CONFIGS
from jobs.config import CellConfig, ConfigError
from workers.models import causal_lm_problem, model_config_json, position_limit


def check_model(cell: CellConfig, on_this_host: bool = True) -> None:
    m = cell.model
    if m.path:
        p = Path(m.path)
        if on_this_host and not p.is_dir():
            raise ConfigError(f"model.path={m.path!r} is not allowed: no such directory")
        if on_this_host and not (p / "config.json").is_file():
            raise ConfigError(
                f"model.path={m.path!r} is not allowed: not a model directory (no config.json)"
            )
    elif m.name != "tiny" and not (SHIPPED_CONFIGS / m.name / "config.json").is_file():
        raise ConfigError(f"model={m.name}: set model.path=DIR to a local copy of the model")
    elif m.name != "tiny" and m.load_format != "dummy" and cell.backend.name != "sim":
        raise ConfigError(
            f"model={m.name} needs model.path=DIR (a local copy; nothing is downloaded), "
            "or model.load_format=dummy to measure its shape with random weights"
        )


def check_model_config(cell: CellConfig, on_this_host: bool = True) -> None:
    """The model's config.json: readable, a causal LM, and long enough for the cell."""
    try:
        config = model_config_json(cell.model)[1]
    except (OSError, ValueError) as exc:
        if on_this_host:
            raise ConfigError(
                f"model.path={cell.model.path!r}: config.json cannot be used: {exc}"
            ) from None
        return
    _check_layers(cell)
    if cell.model.path:
        problem = causal_lm_problem(config)
        if problem:
            raise ConfigError(
                f"model.path={cell.model.path!r} is not allowed: {problem}; only causal "
                "language models are measured"
            )
    try:
        limit = position_limit(cell.model)
    except ValueError as exc:
        raise ConfigError(f"model.path={cell.model.path!r} is not allowed: {exc}") from None
    prompt, seq = cell.prompt_len, cell.seq
    if cell.serving:  # the longest request the length distributions can draw
        prompt = cell.workload.prompt_len_dist.longest(prompt)
        seq = cell.workload.seq_dist.longest(seq)
    if limit and prompt + seq > limit:
        raise ConfigError(
            f"prompt_len + seq = {prompt} + {seq} = {prompt + seq} "
            f"is not allowed: model {cell.model.name} has at most {limit} positions"
        )


_LAYER_KEYS = ("num_hidden_layers", "n_layer", "num_layers")


def _check_layers(cell: CellConfig) -> None:
    """model.num_layers_override keeps some of the model's layers: never more than it has."""
    keep = cell.model.num_layers_override
    if not keep:
        return
    try:
        own = model_config_json(dataclasses.replace(cell.model, num_layers_override=0))[1]
    except (OSError, ValueError):
        return  # the config's own check says why
    layers = next((own[k] for k in _LAYER_KEYS if isinstance(own.get(k), int)), None)
    if layers is not None and keep > layers:
        raise ConfigError(
            f"model.num_layers_override={keep} is not allowed: model {cell.model.name} has "
            f"{layers} layers (the override keeps 1..{layers} of them; 0 keeps all)"
        )


def check_backend(cell: CellConfig, on_this_host: bool = True) -> None:
    name = cell.backend.name
    if name == "sglang" and on_this_host:
        from workers.backends.sglang.backend import check_available
        from workers.base import BackendUnavailable

        try:
            check_available()
        except BackendUnavailable as exc:
            raise ConfigError(str(exc)) from None
    if name == "sim":
        from bounds.specs import SPECS

        if cell.backend.sim.device_spec not in SPECS:
            raise ConfigError(
                f"backend.sim.device_spec={cell.backend.sim.device_spec!r} is not allowed: "
                f"choose one of {', '.join(SPECS)}"
            )
    if name == "sglang" and cell.model.name == "tiny" and not cell.model.path:
        raise ConfigError("backend=sglang needs a real model: set model.path=DIR or a model=...")


def installed(module: str) -> bool:
    """Whether ``module`` can be imported here (without importing it)."""
    import importlib.util

    return importlib.util.find_spec(module) is not None


def check_serving(cell: CellConfig, on_this_host: bool = True) -> None:
    """A serving cell's server can be started here (its packages are installed), and its
    model has a tokenizer (prompts are text of an exact token length)."""
    from workers.serving.engines import INSTALL_HINTS, REQUIRED_MODULES

    kind = cell.server.kind
    missing = [m for m in REQUIRED_MODULES.get(kind, ()) if not installed(m)]
    if missing and on_this_host:
        raise ConfigError(f"{INSTALL_HINTS[kind]} (missing here: {', '.join(missing)})")
    if cell.model.name != "tiny" and not cell.model.path:
        raise ConfigError(
            "workload=serve needs the model's files (weights or load_format=dummy, and its "
            "tokenizer): set model.path=DIR"
        )
    if on_this_host and cell.model.path:
        p = Path(cell.model.path)
        if not any((p / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
            raise ConfigError(
                f"model.path={cell.model.path!r} is not allowed for workload=serve: "
                "no tokenizer there (prompts are text of an exact token length)"
            )


def check_device_here(cell: CellConfig) -> None:
    """For a run on this host (no Ray): is the requested device usable here?"""
    if cell.backend.name == "sim" or (cell.serving and cell.server.kind == "url"):
        return  # the simulator pretends to be the device; an external server has its own
    from workers.device.devices import DeviceUnavailable, resolve_device

    try:
        resolve_device(cell.device.name)
    except DeviceUnavailable as exc:
        raise ConfigError(str(exc)) from None


_CHECKED: dict[tuple, str | None] = {}


def _key(cell: CellConfig, local: bool, model_on_driver: bool) -> tuple:
    """What the checks depend on: cells that share it share the verdict."""
    b = cell.backend
    longest = cell.prompt_len + cell.seq
    if cell.serving:
        w = cell.workload
        longest = w.prompt_len_dist.longest(cell.prompt_len) + w.seq_dist.longest(cell.seq)
    return (repr(cell.model), b.name, b.sim.device_spec, longest, cell.device.name, local,
            model_on_driver, cell.serving and repr(cell.server))  # fmt: skip


def _run_checks(cell: CellConfig, local: bool, model_on_driver: bool) -> None:
    """Every check runs; the first problem is reported."""
    problems = []
    real_server = cell.serving and cell.backend.name != "sim"  # sim: no server, no tokenizer
    checks = [check_serving if real_server else check_backend, check_model, check_model_config]
    for check in checks:
        try:
            check(cell, on_this_host=model_on_driver)
        except ConfigError as exc:
            problems.append(str(exc))
    if local:
        try:
            check_device_here(cell)
        except ConfigError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError("; ".join(dict.fromkeys(problems)))


def validate(cell: CellConfig, *, local: bool, model_on_driver: bool = True) -> None:
    """All checks; `local` adds the device check for a run on this host. The verdict is
    remembered for cells that differ only in what the checks do not look at."""
    key = _key(cell, local, model_on_driver)
    if key not in _CHECKED:
        try:
            _run_checks(cell, local, model_on_driver)
            _CHECKED[key] = None
        except ConfigError as exc:
            _CHECKED[key] = str(exc)
        except Exception as exc:  # a check that broke still ends in one line
            _CHECKED[key] = f"checking the cell failed: {type(exc).__name__}: {exc}"
    if _CHECKED[key] is not None:
        raise ConfigError(_CHECKED[key])
