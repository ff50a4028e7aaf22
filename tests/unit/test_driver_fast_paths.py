"""The driver's faster ways to the same data: a record's file (orjson, indented; json where
orjson is not installed) and its results.jsonl line hold the values of its safe JSON; a job's
.hydra YAML files and a cell's dict are each what the plain library call makes."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import random
from enum import Enum
from pathlib import Path
from typing import Any, NamedTuple

import pytest
import yaml
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.utils import JobRuntime
from hydra.types import RunMode

from jobs import files
from jobs.checks import ConfigError
from jobs.config import from_values
from jobs.files import json_safe, record_json, record_line
from jobs.identity import PlannedCell
from jobs.values import plain
from sweep.finish import jsonl_line
from sweep.plan import to_cell
from sweep.records import config_yaml, overrides_yaml
from sweep.schema import register
from sweep.validate import validate
from tests.conftest import ROOT
from workers.run import run_planned


class Color(str, Enum):
    RED = "red"


class Pair(NamedTuple):
    low: float
    high: float


SCALARS = [0, -1, 2**70, 1.5, -0.0, 1e-300, math.nan, math.inf, -math.inf, True, False,
           None, "", "a", "é ü", "line\nbreak", 'q"uote', Color.RED, Path("/x/y"),
           Pair(0.5, math.inf)]  # fmt: skip
FIXTURES = Path(__file__).parents[1] / "fixtures" / "records"
KEYS = ["k", "é", "", 1, 2.5, True, False, None]  # (a float key: spelt as each encoder spells it)


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


@pytest.fixture(params=["orjson", "json"])
def encoder(request, monkeypatch):
    """Each record test twice: orjson's text (installed with the project) and json's (where
    orjson is not installed: the GPU check's machine runs the project uninstalled)."""
    if request.param == "json":
        monkeypatch.setattr(files, "orjson", None)
    else:
        assert files.orjson is not None  # a dependency: installed with the project
    return request.param


@pytest.mark.parametrize("seed", range(60))
def test_a_record_file_holds_its_safe_json_indented_a_key_per_line(seed, encoder):
    rng = random.Random(seed)
    rec = {f"key{i}": value(rng) for i in range(rng.randrange(1, 12))}
    text = record_json(rec)
    assert text.endswith("}\n") and json.loads(text) == json.loads(safe_json(rec, (",", ": ")))
    lines = text.splitlines()
    assert lines[0] == "{" and lines[-1] == "}"
    for key, v in rec.items():  # `grep key record.json` finds a scalar's value on its line
        if not isinstance(v, (dict, list, tuple)):
            line = next(x for x in lines if x.startswith(f'  "{key}": '))
            assert json.loads(line.split(": ", 1)[1].rstrip(",")) == json_safe(
                json.loads(json.dumps(v, default=str))
            )


@pytest.mark.parametrize("seed", range(30))
def test_a_results_line_is_the_record_on_one_compact_line(seed, encoder):
    rec = {f"key{i}": value(random.Random(seed)) for i in range(5)}
    line = jsonl_line(rec)
    assert line == record_line(rec) and line.count("\n") == 1  # a line break in a string: \\n
    assert (
        json.loads(line) == json.loads(record_json(rec)) == json.loads(safe_json(rec, (",", ":")))
    )
    assert len(line) <= len(safe_json(rec, (",", ":"))) + 1 + line.count("0.0000")  # compact


def test_orjson_and_json_write_the_same_values_of_a_real_record():
    """A simulator record of a real sweep (tests/fixtures): the same values either way, and a
    number written by a subclass of float (numpy's float64) stays a number."""
    import numpy as np

    rec = json.loads((FIXTURES / "sim_record.json").read_text())
    rec["energy_j"] = np.float64(12.5)
    rec["power_w_mean"] = np.float64("nan")
    fast = record_json(rec), record_line(rec)
    files_orjson = files.orjson
    try:
        files.orjson = None
        slow = record_json(rec), record_line(rec)
    finally:
        files.orjson = files_orjson
    for a, b in zip(fast, slow, strict=True):
        assert json.loads(a) == json.loads(b)
    got = json.loads(fast[0])
    assert got["energy_j"] == 12.5 and got["power_w_mean"] is None
    assert fast[0].count("\n") > len(rec)  # a line per key at least


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


@dataclasses.dataclass
class _Inner:
    xs: list[int]
    tag: str = "t"


@dataclasses.dataclass
class _Outer:
    n: int
    inner: _Inner
    anything: Any = None
    maybe: float | None = None


@dataclasses.dataclass
class _Unresolved:
    n: NoSuchType  # noqa: F821  (its hints do not resolve: the field-by-field path)
    inner: _Inner | None = None


@pytest.mark.parametrize(
    "obj",
    [
        _Outer(1, _Inner([1, 2])),
        _Outer(2, _Inner([]), anything={"a": [_Inner([3])], "b": (1, 2)}, maybe=0.5),
        _Outer(3, _Inner([4]), anything=_Inner([5], tag="u")),
        _Unresolved(4, _Inner([6])),
    ],
)
def test_plain_copies_what_is_declared_as_more_than_a_scalar(obj):
    out = plain(obj)
    assert repr(out) == repr(dataclasses.asdict(obj))
    out["inner"]["xs"].append(99)  # a copy: the object is not changed through it
    assert 99 not in obj.inner.xs
    if isinstance(obj, _Outer) and isinstance(obj.anything, dict):
        assert out["anything"]["a"][0] == {"xs": [3], "tag": "t"}


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
    assert overrides_yaml(overrides) == yaml.safe_dump(overrides)  # from the memo
    assert overrides_yaml(overrides[::-1]) == yaml.safe_dump(overrides[::-1])


PLANNED = [
    [f"model={m}", f"backend={b}", f"device={d}"]
    for m in ("tiny", "llama3_8b")
    for b in ("hf", "sim", "sglang")
    for d in ("cpu", "npu", "cuda")
] + [
    ["workload=serve", "server=transformers", "concurrency=4"],
    ["workload=serve", "server=vllm", "request_rate=2.5", "slo.tpot_ms=40"],
    ["workload=serve", "server=url", "server.url=http://127.0.0.1:9"],
    ["workload=conversation", "workload.turns=2"],
    ["workload=trace", f"workload.trace.path={ROOT}/tests/fixtures/traces/tiny.jsonl"],
    ["backend=sim", "device=npu", "backend.sim.slow_cards=[1:3]", "backend.sim.fault=slow"],
    ["bench=steady", "bench.repeats=3", "accuracy.path=x.jsonl", "model.path=/no/m"],
]


@pytest.mark.parametrize("overrides", PLANNED, ids=" ".join)
def test_a_cell_sent_as_plain_values_is_rebuilt_field_for_field(overrides):
    """What a worker is sent (PlannedCell.wire: the cell's plain values) rebuilds the
    driver's planned cell exactly, after planning and validation; and pickles smaller."""
    register()
    JobRuntime.instance().set("name", "launch")
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(str(ROOT / "conf")))
    cell = to_cell(loader.load_configuration("config", overrides, run_mode=RunMode.RUN))
    try:  # (validation may fill a setting in: the sent cell has it too)
        validate(cell, local=False)
    except ConfigError:  # refused here (no such model directory, an engine's device): sent
        pass  # as planned all the same
    for planned in PlannedCell.of(cell).repeats() + [PlannedCell.of(cell, 2, fleet=True)]:
        sent = pickle.loads(pickle.dumps(planned.wire(plain(planned.cell))))
        back = PlannedCell.unwire(sent)
        assert back == planned and plain(back.cell) == plain(planned.cell)
        assert PlannedCell.unwire(planned) is planned  # a cell sent as itself
        assert run_planned.__module__ == "workers.run"


def test_a_group_of_scalars_converted_once_is_a_new_instance_each_time():
    """build remembers a scalar group's converted settings (jobs/values.py _CONVERTED): the
    same values give an equal, new instance; its checks and conversions still hold."""
    from jobs.config import BenchConfig, DeviceConfig
    from jobs.values import ValuesError, build

    a = build(BenchConfig, {"warmup": "2", "iterations": 5})
    b = build(BenchConfig, {"warmup": "2", "iterations": 5})
    assert a == b and a is not b and a.warmup == 2 and type(a.warmup) is int
    a.warmup = 9  # (validation may fill a setting in) one cell's change is its own
    assert build(BenchConfig, {"warmup": "2", "iterations": 5}).warmup == 2
    assert build(BenchConfig, {"warmup": 2, "iterations": 5}) == b  # another key: the same
    with pytest.raises(ValuesError, match="bench.warmup='x' is not allowed"):
        build(BenchConfig, {"warmup": "x"}, prefix="bench.")
    with pytest.raises(ConfigError, match="bench.max_iterations must be >= bench.iterations"):
        build(BenchConfig, {"iterations": 20, "max_iterations": 10})
    with pytest.raises(ValuesError, match="device.nme is not a known setting"):
        build(DeviceConfig, {"nme": "npu"}, prefix="device.")
    one, two = from_values({"batch": 1, "seq": 8}), from_values({"batch": 1, "seq": 8})
    assert one == two and one.device is not two.device and one.bench is not two.bench
