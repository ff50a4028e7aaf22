"""The record store: atomic writes, what counts as finished, and the sweep lock (that it dies
with its process: tests/integration/test_processes.py)."""

from __future__ import annotations

import json
import os

import pytest

from hydra_plugins.ray_cells_launcher._lock import SweepBusy, SweepLock
from jobs.files import RecordError, finished_record, write_record
from jobs.files import read_record as _read_record
from jobs.record import SCHEMA_VERSION


def read_record(cell_dir):
    try:
        return _read_record(cell_dir)
    except RecordError:
        return None


def rec(**kw) -> dict:
    base = {
        "schema_version": SCHEMA_VERSION,
        "cell_id": "abc",
        "status": "ok",
        "batch": 1,
        "seq": 1,
        "x": 1.5,
    }
    base.update(kw)
    return base


def test_write_then_read_and_nan_becomes_null(tmp_path):
    write_record(tmp_path, rec(x=float("nan")))
    assert read_record(tmp_path) == rec(x=None)
    assert json.loads((tmp_path / "record.json").read_text())["x"] is None


def test_a_failed_write_leaves_the_old_record_whole(tmp_path, monkeypatch):
    write_record(tmp_path, rec(x=1.0))

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        write_record(tmp_path, rec(x=2.0))
    assert read_record(tmp_path)["x"] == 1.0
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temp file left


def test_what_counts_as_finished(tmp_path):
    assert finished_record(tmp_path, "abc") is None  # missing
    (tmp_path / "record.json").write_text('{"cell_id": "abc", "sta')  # cut short
    assert read_record(tmp_path) is None and finished_record(tmp_path, "abc") is None
    write_record(tmp_path, rec(status="failed"))
    assert finished_record(tmp_path, "abc") is None
    write_record(tmp_path, rec(schema_version=SCHEMA_VERSION + 1))
    assert finished_record(tmp_path, "abc") is None
    write_record(tmp_path, rec())
    assert finished_record(tmp_path, "other-id") is None
    assert finished_record(tmp_path, "abc") == rec()


def test_sweep_lock_is_exclusive(tmp_path):
    held = SweepLock(tmp_path)
    held.acquire()
    try:
        with pytest.raises(SweepBusy, match="in use by a live sweep"):
            SweepLock(tmp_path).acquire()
    finally:
        held.release()
    lock = SweepLock(tmp_path)
    lock.acquire()  # free again once released
    lock.release()
