"""The record store: atomic writes, when a sweep's records reach the disk, what counts as
finished, and the sweep lock (that it dies with its process:
tests/integration/test_processes.py)."""

from __future__ import annotations

import json
import os
import threading

import pytest

from hydra_plugins.ray_cells_launcher._lock import SweepBusy, SweepLock
from jobs import files
from jobs.files import RecordError, RecordSync, finished_record, sync_filesystem, write_record
from jobs.files import read_record as _read_record
from jobs.record import SCHEMA_VERSION
from sweep.app import CellSweepApp


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


def test_a_record_written_without_fsync_is_whole_and_leaves_no_temp_file(tmp_path, monkeypatch):
    synced = []
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd))
    write_record(tmp_path, rec(x=2.5), sync=False)
    assert synced == []  # the driver's records: flushed in bulk (RecordSync), not one by one
    assert read_record(tmp_path) == rec(x=2.5)
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]
    write_record(tmp_path, rec(x=3.5))  # the default: fsync before the rename
    assert len(synced) == 1 and read_record(tmp_path) == rec(x=3.5)


def test_the_atomic_writer_makes_files_as_open_does_and_refuses_a_planted_link(tmp_path):
    old = os.umask(0o027)
    try:
        target = files.atomic_write_bytes(tmp_path / "new" / "a.txt", b"one")  # dir made
    finally:
        os.umask(old)
    assert target == str(tmp_path / "new" / "a.txt") and open(target, "rb").read() == b"one"
    assert os.stat(target).st_mode & 0o777 == 0o640  # 0666 less the umask, as open() makes it
    # A link planted where this thread's temporary file goes is not followed.
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    tmp = tmp_path / "new" / f".a.txt.{os.getpid()}-{threading.get_ident()}.tmp"
    tmp.symlink_to(victim)
    with pytest.raises(OSError):
        files.atomic_write_bytes(target, b"two")
    assert victim.read_bytes() == b"keep" and open(target, "rb").read() == b"one"
    tmp.unlink()
    # Threads write side by side: each its own temporary file, every result whole.
    big = {n: bytes([65 + n]) * 300_000 for n in range(4)}
    done = []

    def write(n):
        for _ in range(5):
            files.atomic_write_bytes(tmp_path / "new" / f"{n}.bin", big[n], sync=False)
        done.append(n)

    threads = [threading.Thread(target=write, args=(n,)) for n in big]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(done) == [0, 1, 2, 3]
    assert all((tmp_path / "new" / f"{n}.bin").read_bytes() == big[n] for n in big)
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == [
        "0.bin", "1.bin", "2.bin", "3.bin", "a.txt"
    ]  # fmt: skip


def test_sync_filesystem_uses_syncfs_on_linux(tmp_path, monkeypatch):
    if not os.uname().sysname == "Linux":
        pytest.skip("syncfs is Linux's")
    assert files._syncfs() is not None  # from the C library, no os.sync() of every disk
    monkeypatch.setattr(os, "sync", lambda: pytest.fail("os.sync() called"))
    write_record(tmp_path, rec(), sync=False)
    sync_filesystem(tmp_path)  # the real call, on this test's filesystem
    with pytest.raises(FileNotFoundError):
        sync_filesystem(tmp_path / "gone")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_records_reach_the_disk_within_the_interval_and_at_the_end(tmp_path):
    clock, syncs = Clock(), []
    sync = RecordSync(tmp_path, every_s=1.0, sync=syncs.append, clock=clock, background=False)
    sync.flush()
    assert syncs == []  # nothing written: nothing to sync
    for _ in range(50):  # many records within a second: no sync yet
        sync.wrote()
        clock.now += 0.01
    assert syncs == [] and sync.pending == 50
    clock.now += 0.6  # a second since the last sync: the next record syncs all 51
    sync.wrote()
    assert syncs == [tmp_path] and sync.pending == 0
    sync.wrote()  # right after a sync: waits again
    assert len(syncs) == 1 and sync.pending == 1
    sync.flush()  # the end of the sweep
    assert len(syncs) == 2 and sync.pending == 0
    sync.flush()
    assert len(syncs) == 2


def test_the_driver_never_waits_for_a_sync_until_the_end(tmp_path):
    """The sync runs on a thread of its own: the driver writes on while the disk is slow,
    starts no second sync while one runs, and waits only at the end (for it, then once more
    for what was written meanwhile); a failed sync is told on the driver's thread."""
    clock, started, release, syncs = Clock(), threading.Event(), threading.Event(), []

    def slow(where):
        syncs.append(where)
        started.set()
        assert release.wait(30)

    sync = RecordSync(tmp_path, every_s=1.0, sync=slow, clock=clock)
    clock.now += 1.0
    sync.wrote()  # starts the sync, which blocks
    assert started.wait(30)
    clock.now += 5.0
    for _ in range(3):
        sync.wrote()  # one still runs: no second one, the records wait
    assert len(syncs) == 1 and sync.pending == 3
    release.set()
    sync.flush()  # the end: waits for it, then syncs the 3 written meanwhile
    assert len(syncs) == 2 and sync.pending == 0

    def failing(where):
        raise OSError(5, "Input/output error")

    sync = RecordSync(tmp_path, every_s=1.0, sync=failing, clock=clock)
    clock.now += 1.0
    sync.wrote()
    with pytest.raises(OSError, match="Input/output"):
        sync.flush()


def test_the_sweep_syncs_its_records_before_its_outputs(tmp_path):
    syncs = []
    app = CellSweepApp(plots=False, store=False)
    app.sync = RecordSync(tmp_path, sync=syncs.append)
    app.sync.wrote()
    app.on_end([], str(tmp_path), interrupted=True)  # also when interrupted
    assert syncs == [tmp_path]


def test_a_new_records_row_is_kept_before_its_file_is_written(tmp_path):
    """An interrupt while a record is being written (its filesystem sync can take a while)
    finds its row kept: a launch's outputs never leave out a record that is on disk."""
    from hydra_plugins.ray_cells_launcher.app import Job
    from jobs.files import record_json
    from sweep.finish import SweepResults
    from sweep.status import ExitStatus

    def interrupted(where):
        raise KeyboardInterrupt

    app = CellSweepApp(plots=False, store=False, status=ExitStatus())
    app.results = SweepResults(tmp_path)
    app.sync = RecordSync(tmp_path, every_s=0.0, sync=interrupted, background=False)
    job = Job(0, ["batch=1"], output_dir=str(tmp_path / "c1"))
    record = rec(cell_dir="c1")
    with pytest.raises(KeyboardInterrupt):
        app._record(job, record, record_json(record), {})
    assert read_record(tmp_path / "c1") == record  # on disk (the sync was interrupted) ...
    assert list(app.results.rows) == ["c1"]  # ... and its row kept for the outputs


def test_what_counts_as_finished(tmp_path):
    assert finished_record(tmp_path, "abc") is None  # missing
    (tmp_path / "record.json").write_text("")  # a record a power loss left empty
    assert read_record(tmp_path) is None and finished_record(tmp_path, "abc") is None
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
