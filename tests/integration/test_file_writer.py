"""The writer process of a sweep of many cells (sweep/writer.py): the same files as the
driver writes itself, in order; a failed write told to the driver with its error; Ctrl-C
does not reach it, and what it was given is written when the pipe closes."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

import sweep.app
from jobs.files import RecordSync
from sweep.writer import FileWriter, WriterFailed
from tests.standins import ray_calls
from tests.unit.test_driver_memory import BASE, Canned, planned_jobs, sweep_app

N = 40
VOLATILE = {"timestamp", "started_at", "ended_at", "wall_s", "measured_at"}


def _sweep(root: Path, monkeypatch, writer: bool) -> Path:
    from jobs.config import from_values
    from jobs.identity import PlannedCell

    monkeypatch.setattr(sweep.app, "MIN_CELLS", 1 if writer else 10**9)
    root.mkdir(parents=True)  # as the launcher makes it
    canned = Canned(PlannedCell.of(from_values({**BASE, "batch": 1})))
    app = sweep_app(root, canned, monkeypatch)
    app.sync = RecordSync(root)
    jobs = planned_jobs(root, N)
    app.results.register([j.payload.cell_dir for j in jobs])
    ray_calls.scheduler(app, N).run(list(jobs))
    started = app.writer
    app.on_end(jobs, str(root), False)
    assert (started is not None) == writer and app.writer is None
    if started is not None:
        assert started.proc.returncode == 0  # ended, having written and synced all
    sweep.app.SweepResults._OPEN.pop(str(root), None)
    return root


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("*/.hydra/*"))}


def _records(root: Path) -> dict[str, dict]:
    out = {}
    for p in sorted(root.glob("*/record.json")):
        rec = json.loads(p.read_text())
        out[p.parent.name] = {k: v for k, v in rec.items() if k not in VOLATILE}
    return out


def test_a_sweep_through_the_writer_writes_what_the_driver_writes(tmp_path, monkeypatch):
    ray_calls.install(monkeypatch, npus=4, keep=False)
    own = _sweep(tmp_path / "own", monkeypatch, writer=False)
    via = _sweep(tmp_path / "via", monkeypatch, writer=True)
    assert len(_files(via)) == 2 * N and _files(via) == _files(own)  # .hydra, byte for byte
    recs_own, recs_via = _records(own), _records(via)
    assert len(recs_via) == N and recs_via.keys() == recs_own.keys()
    for name, rec in recs_via.items():
        assert rec.keys() == recs_own[name].keys()
        assert rec["cell_id"] == recs_own[name]["cell_id"] and rec["status"] == "ok"
        assert rec["config"] == recs_own[name]["config"]
    assert not list(via.glob("*/.record.json.*.tmp"))  # every record renamed into place
    rows = (via / "results.jsonl").read_text().splitlines()
    assert len(rows) == N


def test_a_failed_write_reaches_the_driver_with_its_error(tmp_path):
    (tmp_path / "a-file").write_text("not a directory")
    writer = FileWriter(str(tmp_path))
    writer.job_files(str(tmp_path / "a-file" / "cell"), [("config.yaml", b"a: 1\n")])
    writer.proc.wait(timeout=60)  # it ended at that write
    with pytest.raises(WriterFailed, match=r"exit 1\).*NotADirectoryError"):
        writer.record(str(tmp_path / "other"), "{}\n", {})  # the next message tells it
    with pytest.raises(WriterFailed, match="NotADirectoryError"):
        writer.close()  # and so does the end


def test_ctrl_c_does_not_reach_the_writer_and_what_it_was_given_is_written(tmp_path):
    writer = FileWriter(str(tmp_path))
    assert os.getpgid(writer.proc.pid) != os.getpgid(0)  # a process group of its own
    writer.record(str(tmp_path / "c0"), '{"n": 0}\n', {})
    deadline = time.monotonic() + 60
    while not (tmp_path / "c0" / "record.json").exists():  # it serves: its handler is set
        assert time.monotonic() < deadline and writer.proc.poll() is None
        time.sleep(0.05)
    os.kill(writer.proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C sent to it would be
    for i in range(1, 200):
        writer.record(str(tmp_path / f"c{i}"), json.dumps({"n": i}) + "\n", {"server.log": "x"})
    writer.close()  # the pipe closes: all of it written, then it exits 0
    assert writer.proc.returncode == 0
    for i in range(200):
        assert json.loads((tmp_path / f"c{i}" / "record.json").read_text()) == {"n": i}
    assert (tmp_path / "c199" / "server.log").read_text() == "x"


def test_a_message_cut_short_by_a_dying_driver_ends_the_writer_cleanly(tmp_path):
    writer = FileWriter(str(tmp_path))
    writer.record(str(tmp_path / "c0"), '{"n": 0}\n', {})
    os.write(writer._fd, b"\xff\x00\x00\x00" + b"cut")  # 255 bytes announced, 3 sent: killed
    writer.close()  # the pipe closes mid-message
    assert writer.proc.returncode == 0
    assert json.loads((tmp_path / "c0" / "record.json").read_text()) == {"n": 0}
