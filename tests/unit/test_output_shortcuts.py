"""The end of a sweep's shortcuts write what the plain code writes (bench/end_outputs.py
times them): a table cell's HTML remembered or taken as a plain number, a CSV row's env_*
columns made once per shared environment, the results store's JSON by orjson."""

from __future__ import annotations

import csv
import datetime
import io
import json
import math

import pytest

from aggregate.outputs import csv_row, results_csv
from aggregate.render import html as page
from aggregate.store.db import kept_json
from jobs.files import json_safe, loads, sorted_json

TEXTS = [
    "12", "-3.5", "+0.25", "1,234.5", "7.", "1e-05", "12*", "3.4†‡", "5\\*", "—", "n/a",
    "ok", "FAILED", "OOM: 2 cells", "SIMULATED 3", "4.5°", "`code` and **bold**", "a|b",
    "<script>", "x" * 50, "12?", "0.5~", "",
]  # fmt: skip


@pytest.mark.parametrize("text", TEXTS)
def test_a_table_cell_is_what_its_class_and_markup_make(text):
    page._td.cache_clear()
    want = f"<td{page._td_class(text)}>{page.inline(text)}</td>"
    assert page._td(text) == want
    assert page._td(text) == want  # remembered


def test_a_plain_number_takes_the_shortcut_and_nothing_else_does():
    assert [t for t in TEXTS if page._PLAIN_NUMBER.fullmatch(t)] == [
        "12", "-3.5", "+0.25", "1,234.5", "7."
    ]  # fmt: skip


def _records():
    shared = {"host": "n1", "torch": "2.13", "extra": {"nested": 1}, "gpus": ["a", "b"]}
    return [
        {"cell_dir": "a", "batch": 1, "ok": True, "tps": 1.5, "error": None, "env": shared,
         "flags": ["unstable", "simulated"], "raw": {"x": 1}, "config": {"batch": 1},
         "details": {"k": 1}, "note": None},
        {"cell_dir": "b", "batch": 2, "ok": False, "tps": float("nan"), "env": shared,
         "error": {"type": "RuntimeError", "message": "boom\nmore"}, "flags": [],
         "raw": "text", "config": 3, "extra_key": "late"},
        {"cell_dir": "c", "batch": 4, "env": {"host": "n2", "cann": None}, "error": "plain",
         "levels": [1, [2]], "when": datetime.date(2026, 12, 7)},
    ]  # fmt: skip


def test_csv_rows_with_shared_environments_are_the_rows_without():
    recs = _records()
    envs: dict = {}
    assert [csv_row(r, envs) for r in recs] == [csv_row(r) for r in recs]
    assert len(envs) == 2  # one per distinct environment dict
    text = results_csv(recs)
    header = text.splitlines()[0].split(",")
    assert header[-3:] == ["env_host", "env_torch", "env_cann"]  # env_* last, first seen
    assert "raw" not in header and "config" not in header and "extra_key" in header
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["error"] for r in rows] == ["", "RuntimeError: boom", "plain"]
    assert rows[0]["flags"] == "unstable;simulated" and "levels" not in header  # nested
    assert rows[1]["tps"] == "nan" and rows[2]["when"] == "2026-12-07"


def test_sorted_json_is_the_json_of_its_safe_values():
    value = {"b": [1.5, float("nan"), float("inf")], "a": {"z": 1, "y": None}, 3: "three",
             "f": 1e-05, "big": 1e16, "t": (1, 2), "u": "ünï", "d": datetime.date(2026, 1, 2)}  # fmt: skip
    want = json.loads(json.dumps(json_safe(value), ensure_ascii=False, sort_keys=False,
                                 default=str))  # fmt: skip
    text = sorted_json(value)
    assert loads(text) == want
    keys = list(json.loads(text))
    assert keys == sorted(keys)
    assert sorted_json({"n": 2**70}) == '{"n": 1180591620717411303424}'  # beyond orjson: json's


def test_the_store_keeps_a_record_without_its_bulky_parts():
    rec = _records()[0] | {"score": math.nan}
    kept = loads(kept_json(rec))
    assert "raw" not in kept and "config" not in kept
    assert kept["score"] is None and kept["env"]["extra"] == {"nested": 1}


def test_loads_reads_what_json_wrote_with_nan():
    assert loads('{"a": NaN}')["a"] != loads('{"a": NaN}')["a"]  # json's NaN, read by json
    assert loads(b'{"a": [1, 2.5]}') == {"a": [1, 2.5]}


@pytest.mark.parametrize("n", [0, 1, 3])
def test_results_csv_is_what_csv_dictwriter_writes(n):
    recs = _records()[:n] if n != 1 else [{"status": "ok"}]
    text = results_csv(recs)
    header = next(csv.reader(io.StringIO(text)), [])
    ref = io.StringIO()
    writer = csv.DictWriter(ref, fieldnames=header, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_row(r) for r in recs)
    assert text == ref.getvalue()
