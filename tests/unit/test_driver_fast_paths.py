"""The driver's faster ways to the same bytes: a record's JSON (C's encoder, a value per line),
a job's .hydra YAML files, a cell's dict and a results.jsonl line are each what the plain
library call makes."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from enum import Enum
from pathlib import Path

import pytest
import yaml

from jobs.config import from_values
from jobs.files import json_safe, record_json, record_line
from jobs.values import plain
from sweep.finish import jsonl_line
from sweep.records import config_yaml, overrides_yaml


class Color(str, Enum):
    RED = "red"


SCALARS = [0, -1, 2**70, 1.5, -0.0, 1e-300, math.nan, math.inf, -math.inf, True, False,
           None, "", "a", "é ü", "line\nbreak", 'q"uote', Color.RED, Path("/x/y")]  # fmt: skip
KEYS = ["k", "é", "", 1, 2.5, math.nan, True, False, None]


def value(rng: random.Random, depth: int = 0) -> object:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice(SCALARS)
    if roll < 0.75:
        seq = [value(rng, depth + 1) for _ in range(rng.randrange(4))]
        return tuple(seq) if rng.random() < 0.3 else seq
    return {rng.choice(KEYS): value(rng, depth + 1) for _ in range(rng.randrange(4))}


def safe_json(rec: dict, separators: tuple[str, str]) -> str:
    return json.dumps(json_safe(rec), ensure_ascii=False, default=str, separators=separators)


@pytest.mark.parametrize("seed", range(60))
def test_a_record_file_is_its_safe_json_a_value_per_line(seed):
    rng = random.Random(seed)
    rec = {f"key{i}": value(rng) for i in range(rng.randrange(1, 12))}
    text = record_json(rec)
    assert text == safe_json(rec, (",\n", ": ")) + "\n"
    assert json.loads(text) == json.loads(safe_json(rec, (",", ": ")))
    lines = text.splitlines()
    for key, v in rec.items():  # `grep key record.json` finds a scalar's value on its line
        if not isinstance(v, (dict, list, tuple)):
            shown = json.dumps(json_safe(v), ensure_ascii=False, default=str)
            assert any(line.lstrip("{").startswith(f'"{key}": {shown}') for line in lines)


@pytest.mark.parametrize("seed", range(30))
def test_a_results_line_is_the_record_file_on_one_line(seed):
    rec = {f"key{i}": value(random.Random(seed)) for i in range(5)}
    line = jsonl_line(rec)
    assert line == record_line(record_json(rec)) == safe_json(rec, (",", ": ")) + "\n"
    assert line.count("\n") == 1  # a line break in a string is written \\n


def cells() -> list:
    base = {"backend": {"name": "sim"}, "device": {"name": "npu"}, "model": {"name": "llama3_8b"}}
    return [
        from_values({}),
        from_values({**base, "batch": 3, "seq": 8}),
        from_values(
            {
                **base,
                "backend": {
                    "name": "sim",
                    "sim": {"slow_cards": ["1:3"], "fault": "slow", "slow_factor": 2.5},
                },
            }
        ),  # fmt: skip
        from_values(
            {"workload": {"name": "serve"}, "concurrency": 4, "seq": 16, "slo": {"ttft_ms": 250.0}}
        ),  # fmt: skip
    ]


@pytest.mark.parametrize("cell", cells())
def test_plain_is_asdict(cell):
    assert plain(cell) == dataclasses.asdict(cell)
    assert repr(plain(cell)) == repr(dataclasses.asdict(cell))  # types and order too


@pytest.mark.parametrize("cell", cells())
def test_config_yaml_is_yaml_of_the_cell(cell):
    cfg = dataclasses.asdict(cell)
    assert config_yaml(cfg) == yaml.safe_dump(cfg, sort_keys=False)
    assert config_yaml(cfg) == yaml.safe_dump(cfg, sort_keys=False)  # from the memo


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["batch=1", "seq=8,16"],
        [
            "batch=123",
            "model.path=/a b/c",
            "on=1",
            "x=yes",
            "1=2",
            "+hydra.launcher.ray.resources.NPU=8",
            "name=null",
            "a: b",
            "k=" + "9" * 120,
            "t=2001-12-14",
            "é=1",
            "- x",
            "b=0x1F",
            "c=1_000",
            "d=.inf",
        ],
    ],  # fmt: skip
)
def test_overrides_yaml_is_yaml_of_the_list(overrides):
    assert overrides_yaml(overrides) == yaml.safe_dump(overrides)
