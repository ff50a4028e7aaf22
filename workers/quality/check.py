"""The check prompts and the task check of one measured cell, after its timed window.

:func:`token_checks` is what the measuring loop calls once the window, its metrics and its
memory are taken: the greedy tokens of a few seeded token-id prompts (``quality.*``) and,
when ``accuracy.path`` is set, the task check. Neither may fail the cell: an exception
becomes ``check_status: failed`` (or an ``accuracy.error``), the timed numbers stand.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from jobs.config import CellConfig
from jobs.quality import CHECK_FAILED, CHECK_NOT_APPLICABLE, CHECK_OFF, CHECK_OK
from jobs.record import Flag
from workers.base import Backend
from workers.prompts import prompt_ids
from workers.quality.task import score_task

log = logging.getLogger(__name__)


@dataclass
class Checked:
    """What the checks add to the record: flat keys, record["quality"], flags."""

    fields: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    flags: list[Flag] = field(default_factory=list)


def check_prompts(cell: CellConfig, config: dict[str, Any]) -> list[list[int]]:
    """``quality.prompts`` prompts of ``quality.prompt_len`` ordinary token ids, drawn from the
    model's config.json (vocab size, BOS/EOS/PAD) and ``quality.seed``: the same prompts for
    every backend and dtype of the same architecture."""
    eos = config.get("eos_token_id")
    special = [config.get("bos_token_id"), config.get("pad_token_id")]
    special += eos if isinstance(eos, list) else [eos]
    q = cell.quality
    return prompt_ids(q.prompts, q.prompt_len, int(config["vocab_size"]), special, q.seed)


def _check(backend: Backend, cell: CellConfig, info: dict[str, Any]) -> dict[str, Any]:
    q = cell.quality
    base = {"check_seed": q.seed, "check_prompt_len": q.prompt_len, "check_new_tokens": q.tokens}
    if not q.check:
        return {"check_status": CHECK_OFF, **base}
    config = info.get("config")
    if backend.simulated or not isinstance(config, dict) or "vocab_size" not in config:
        return {"check_status": CHECK_NOT_APPLICABLE, **base}
    prompts = check_prompts(cell, config)
    tokens = backend.greedy_ids(prompts, q.tokens)
    if tokens is None:
        return {"check_status": CHECK_NOT_APPLICABLE, **base}
    digest = hashlib.sha256(json.dumps(prompts).encode()).hexdigest()[:16]
    return {
        "check_status": CHECK_OK, **base, "check_prompts_sha": digest,
        "check_prompts": prompts, "check_tokens": tokens,
    }  # fmt: skip


def _safely(what: str, fn: Any, *args: Any) -> tuple[dict[str, Any] | None, float, str | None]:
    """(result, seconds, error text): a check never fails the cell."""
    t0 = time.perf_counter()
    try:
        result = fn(*args)
        return result, time.perf_counter() - t0, None
    except Exception as exc:
        log.warning("%s failed: %s: %s", what, type(exc).__name__, exc)
        return None, time.perf_counter() - t0, f"{type(exc).__name__}: {str(exc)[:500]}"


def token_checks(backend: Backend, cell: CellConfig, info: dict[str, Any]) -> Checked:
    """Both checks of a cell whose window is over (``info``: the backend's model_info)."""
    out = Checked()
    check, took, error = _safely("the check prompts", _check, backend, cell, info)
    if check is None:
        check = {"check_status": CHECK_FAILED, "check_error": error}
    out.details.update(check)
    out.fields.update(
        check_status=check["check_status"],
        check_tokens=sum(len(t) for t in check.get("check_tokens") or []) or None,
        check_s=round(took, 4) if check["check_status"] != CHECK_OFF else None,
    )
    if cell.accuracy.path is None:
        return out
    acc, took, error = _safely("the task check", score_task, backend, cell.accuracy)
    acc = acc if acc is not None else {"status": CHECK_FAILED, "error": error}
    out.details["accuracy"] = acc
    if acc.get("score") is not None:
        out.fields.update(
            accuracy=acc["score"], accuracy_low_95=acc["low_95"], accuracy_high_95=acc["high_95"],
            accuracy_n=acc["n"], accuracy_correct=acc["correct"], accuracy_s=round(took, 4),
        )  # fmt: skip
        if acc["score"] < cell.accuracy.min:
            out.flags.append(Flag.ACCURACY_LOW)
    return out
