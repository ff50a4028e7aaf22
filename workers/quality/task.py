"""The task check: a local JSONL in gsm8k's format, scored by exact match on the final number.

Each line is ``{"question": "...", "answer": "... #### 42"}``; the reference is the number
after ``####``. The model gets ``Question: ...\\nAnswer:`` and answers greedily; its answer is
the number after its own ``####`` if it wrote one, else the last number it wrote. Numbers are
compared after removing thousands separators and a trailing ``.0``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from jobs.quality import CHECK_NOT_APPLICABLE, CHECK_OK, AccuracyConfig, wilson_interval

PROMPT = "Question: {question}\nAnswer:"
SHIPPED = Path(__file__).with_name("arith.jsonl")  # python -m workers.quality.make_arith
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


class TaskFileError(ValueError):
    """The task file cannot be read as gsm8k-style JSONL; the message names the line."""


def normalise(number: str) -> str:
    text = number.replace(",", "").strip()
    if re.fullmatch(r"-?\d+\.0+", text):
        text = text.split(".")[0]
    return "0" if text == "-0" else text


def final_number(text: str) -> str | None:
    """The number after the last ``####``, else the last number of ``text``; None: none."""
    if "####" in text:
        found = _NUMBER.findall(text.rsplit("####", 1)[1])
        if found:
            return normalise(found[0])
    found = _NUMBER.findall(text)
    return normalise(found[-1]) if found else None


def read_task(path: str | Path, limit: int = 0) -> list[tuple[str, str]]:
    """(question, reference number) pairs of a gsm8k-style JSONL (the first ``limit``; 0: all)."""
    pairs: list[tuple[str, str]] = []
    with open(Path(path).expanduser(), encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                question, answer = str(item["question"]), str(item["answer"])
            except (ValueError, KeyError, TypeError) as exc:
                raise TaskFileError(
                    f"{path}:{n}: not a {{question, answer}} object: {exc}"
                ) from None
            if "####" not in answer or final_number(answer) is None:
                raise TaskFileError(f"{path}:{n}: the answer has no '#### NUMBER' at its end")
            pairs.append((question, final_number(answer) or ""))
            if limit and len(pairs) >= limit:
                break
    if not pairs:
        raise TaskFileError(f"{path}: no questions")
    return pairs


def score_task(backend: Any, acc: AccuracyConfig) -> dict[str, Any]:
    """Exact-match score of the backend's greedy answers, with its Wilson 95% interval."""
    pairs = read_task(str(acc.path), acc.limit)
    answers = backend.greedy_text([PROMPT.format(question=q) for q, _ in pairs], acc.max_new_tokens)
    if answers is None:
        return {"status": CHECK_NOT_APPLICABLE, "path": str(acc.path), "score": None}
    got = [final_number(a) for a in answers]
    refs = [ref for _, ref in pairs]
    correct = sum(g == ref for g, ref in zip(got, refs, strict=True))
    low, high = wilson_interval(correct, len(pairs))
    examples = [
        {"expected": ref, "got": g, "output": a[:200]}
        for ref, g, a in list(zip(refs, got, answers, strict=True))[:3]
    ]
    return {
        "status": CHECK_OK, "path": str(acc.path), "n": len(pairs), "correct": correct,
        "score": correct / len(pairs), "low_95": low, "high_95": high,
        "max_new_tokens": acc.max_new_tokens, "examples": examples,
    }  # fmt: skip
