"""quality.* and accuracy.*: range checks naming the key, cell ids unchanged, the Wilson
interval and the gsm8k-style task file reader (no model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jobs.checks import ConfigError
from jobs.config import CellConfig, from_values
from jobs.identity import cell_id
from jobs.quality import AccuracyConfig, QualityConfig, wilson_interval
from workers.quality.make_arith import arith_items
from workers.quality.task import SHIPPED, TaskFileError, final_number, read_task


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"quality": {"prompts": 0}}, "quality.prompts"),
        ({"quality": {"tokens": 5000}}, "quality.tokens"),
        ({"quality": {"prompt_len": -1}}, "quality.prompt_len"),
        ({"accuracy": {"min": 1.5}}, "accuracy.min"),
        ({"accuracy": {"min": -0.1}}, "accuracy.min"),
        ({"accuracy": {"limit": -1}}, "accuracy.limit"),
        ({"accuracy": {"max_new_tokens": 0}}, "accuracy.max_new_tokens"),
    ],
)
def test_bad_values_are_refused_naming_the_key(values: dict, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        from_values(values)
    message = str(err.value)
    assert message.startswith(f"{key}=") and "\n" not in message


def test_unknown_key_is_refused() -> None:
    with pytest.raises(ConfigError, match="quality"):
        from_values({"quality": {"promts": 3}})


def test_defaults_and_values_from_text() -> None:
    cell = from_values({"accuracy": {"path": "a.jsonl", "min": "0.5", "limit": "10"}})
    assert cell.accuracy == AccuracyConfig(path="a.jsonl", min=0.5, limit=10)
    assert cell.quality == QualityConfig()  # on, 4 prompts of 16 tokens, 32 tokens each
    assert from_values({"accuracy": {"path": ""}}).accuracy.path is None


def test_checks_do_not_change_cell_ids() -> None:
    """What is timed is the same, so the id (and a resumed sweep's directories) stay."""
    base = cell_id(CellConfig())
    assert cell_id(CellConfig(quality=QualityConfig(check=False, tokens=8))) == base
    assert cell_id(CellConfig(accuracy=AccuracyConfig(path="x.jsonl", min=0.3))) == base


@pytest.mark.parametrize(("k", "n"), [(0, 10), (10, 10), (3, 10), (1, 1), (20, 40)])
def test_wilson_interval_holds_the_score(k: int, n: int) -> None:
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0
    assert high - low > 0
    if k == 0:
        assert low == 0.0 and high < 0.35  # 10 misses: the truth is below a third
    with pytest.raises(ValueError):
        wilson_interval(1, 0)


def test_wilson_interval_known_value() -> None:
    low, high = wilson_interval(5, 10)  # textbook: 0.2366 .. 0.7634
    assert round(low, 4) == 0.2366 and round(high, 4) == 0.7634


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("so 3 + 4 = 7\n#### 7", "7"),
        ("#### 1,234", "1234"),
        ("the answer is -48.", "-48"),
        ("12 then 13.0", "13"),
        ("#### -0", "0"),
        ("no number", None),
    ],
)
def test_final_number(text: str, number: str | None) -> None:
    assert final_number(text) == number


def test_shipped_set_is_what_make_arith_writes() -> None:
    lines = [json.loads(x) for x in SHIPPED.read_text().splitlines()]
    assert lines == arith_items()
    pairs = read_task(SHIPPED)
    assert len(pairs) == 40
    for (question, ref), item in zip(pairs, lines, strict=True):
        a, word, b = question.removeprefix("What is ").removesuffix("?").split()
        op = {"plus": "+", "minus": "-", "times": "*"}[word]
        assert str(eval(f"{a} {op} {b}")) == ref == item["answer"].split("#### ")[1]
    assert len(read_task(SHIPPED, limit=5)) == 5


def test_bad_task_files_name_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q"}\n')
    with pytest.raises(TaskFileError, match=r"bad.jsonl:2:"):
        read_task(bad)
    bad.write_text('{"question": "q", "answer": "no marker 4"}\n')
    with pytest.raises(TaskFileError, match=r"bad.jsonl:1: .*####"):
        read_task(bad)
    bad.write_text("\n")
    with pytest.raises(TaskFileError, match="no questions"):
        read_task(bad)
