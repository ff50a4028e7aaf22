"""A sweep's results as they arrive, and its closing outputs.

Each record is appended to ``results.jsonl`` (a partial file, renamed into place at the end)
as soon as the driver has it, resumed cells included; its flat row goes to a temporary file
(pickled, so it comes back exactly as it was made), and ``results.csv``, ``report.md`` and the
plots are written from those rows at the end. The cell files are never read back. While the
cells run, the driver so keeps a few dozen bytes per finished cell instead of its row (3 KB:
300 MB for 100,000 cells).
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import pickle
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from aggregate.leftovers import PARTIAL_RESULTS
from jobs.files import RecordError, record_line, value_key
from jobs.identity import PlannedCell
from jobs.record import RECORD_FILE, flat_row
from sweep.store import store_sweep

log = logging.getLogger(__name__)

RESULTS_JSONL = "results.jsonl"
MANIFEST = ".results.manifest"  # what the outputs were last written from
# The write buffer of the partial results and of the rows' spill file: neither is read back
# before the end (a partial left by a killed driver never is), so a large buffer costs the
# driver a write per ~100 records instead of one per record (a record's line is ~7 KB).
_BUFFER = 1 << 20


def summary_row(record: dict[str, Any], envs: dict[Any, dict]) -> dict[str, Any]:
    """What the reports need of a record: its flat keys, its other top-level scalars, and
    its environment (one shared dict per distinct environment)."""
    row = flat_row(record)
    for key, value in record.items():
        if key not in row and (value is None or isinstance(value, (str, int, float, bool))):
            row[key] = value
    from aggregate.quality import row_quality  # (imported once; aggregate only when needed)

    quality = row_quality(record)  # the check's tokens: the outputs compare cells by them
    if quality is not None:
        row["quality"] = quality
    env = record.get("env")
    if isinstance(env, dict):
        row["env"] = envs.setdefault(value_key(env), env)
    return row


def jsonl_line(record: dict[str, Any]) -> str:
    """The record's line of results.jsonl (compact JSON without NaN or infinities)."""
    return record_line(record)


def sweep_slo(cells: list[PlannedCell]) -> dict[str, float] | None:
    """The SLO the sweep's cells were given (slo.ttft_ms, slo.tpot_ms), when they agree: the
    report then answers which batch or load meets it."""
    slos = {(p.cell.slo.ttft_ms, p.cell.slo.tpot_ms) for p in cells}
    if len(slos) != 1:
        return None
    ttft, tpot = slos.pop()
    return {"slo_ttft_ms": ttft or None, "slo_tpot_ms": tpot or None} if ttft or tpot else None


class SweepResults:
    """The records of this sweep, streamed to results.jsonl; their rows kept for reports.

    One per sweep directory and process: a sweep that Hydra launches in several batches, or
    that a sweeper extends round by round, keeps adding to the same results, and each launch
    writes the outputs of every cell of the sweep so far."""

    _OPEN: dict[str, SweepResults] = {}

    @classmethod
    def for_dir(cls, sweep_dir: str | os.PathLike[str]) -> SweepResults:
        key = os.path.abspath(sweep_dir)
        if key not in cls._OPEN:
            cls._OPEN[key] = cls(key)
        return cls._OPEN[key]

    def __init__(self, sweep_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(sweep_dir)
        self.partial = self.dir / PARTIAL_RESULTS
        # One per directory and process, made once the sweep holds the directory's lock: a
        # partial found now was left by a sweep that did not finish (it is never read back).
        self.partial.unlink(missing_ok=True)
        self.rows: dict[str, int] = {}  # cell dir -> where its row is in the spill file
        self.cells: dict[str, None] = {}  # every cell dir of the sweep so far, in order
        self._envs: dict[Any, dict] = {}
        self._env_ids: dict[int, int] = {}  # id of a shared environment -> its number
        self._env_list: list[dict] = []
        self._spill: Any = None  # the rows, pickled one after another (a temporary file)
        self._spilled = 0
        self.loaded: dict[str, dict[str, Any]] = {}  # cell dir -> row, as the outputs had it
        self._file: Any = None
        self._started = False
        self.new = 0  # records made in this process (not read back by resume)
        self.extra: dict[str, dict[str, Any]] = {}  # cell dir -> row: records of other runs
        self._shown: set[str] = set()  # cell dirs whose summary line was printed

    def register(self, cell_dirs: list[str]) -> None:
        """The cells of one launch belong to the sweep."""
        self.cells.update(dict.fromkeys(cell_dirs))

    def add(self, record: dict[str, Any], new: bool = True, line: str | None = None) -> str:
        """Keep one finished record (the latest per cell directory); returns its key (its cell
        directory), by which :attr:`loaded` has its row once :meth:`finish` has run.
        ``line``: its :func:`jsonl_line`, when the caller has made it already."""
        key = record.get("cell_dir")
        key = key if isinstance(key, str) else str(key)
        if not new and self.extra.pop(key, None) is not None:  # in results.jsonl already
            self._keep_row(key, summary_row(record, self._envs))
            return key
        self.new += bool(new)
        if self._file is None:
            if self._started and (self.dir / RESULTS_JSONL).is_file():  # a later launch of
                shutil.copyfile(self.dir / RESULTS_JSONL, self.partial)  # it: go on from that
            self._file = self.partial.open(
                "a" if self._started else "w", encoding="utf-8", buffering=_BUFFER
            )
            self._started = True
        self._file.write(jsonl_line(record) if line is None else line)
        self._keep_row(key, summary_row(record, self._envs))
        return key

    def _keep_row(self, key: str, row: dict[str, Any]) -> None:
        """The row to the spill file; its shared environment as its number (put back when
        the rows are read)."""
        if self._spill is None:
            self._spill = tempfile.TemporaryFile(prefix="sweep-rows-", buffering=_BUFFER)
        env = row.get("env")
        env_no = None
        if isinstance(env, dict):
            env_no = self._env_ids.get(id(env))
            if env_no is None:
                env_no = self._env_ids[id(env)] = len(self._env_list)
                self._env_list.append(env)  # kept alive: its id stays its own
            row["env"] = env_no  # (the key keeps its place)
        pickle.dump((env_no, row), self._spill, protocol=pickle.HIGHEST_PROTOCOL)
        self.rows[key] = self._spilled
        self._spilled += 1

    def _read_rows(self) -> dict[str, dict[str, Any]]:
        """Every kept row, by cell directory (the latest of each)."""
        if self._spill is None:
            return {}
        self._spill.flush()
        rows = []
        # Read through a map of the file: pickle.load on a buffered file object makes a call
        # into it per few bytes (a scratch timing: ~210 us per 4 KB row; on a map ~40 us).
        with mmap.mmap(self._spill.fileno(), 0, access=mmap.ACCESS_READ) as spill:
            for _ in range(self._spilled):
                # One load per dump, each with a memo of its own: an Unpickler kept across
                # loads keeps its memo, and a row's back-references (a value repeated in it)
                # would resolve to the rows before it.
                env_no, row = pickle.load(spill)
                if env_no is not None:
                    row["env"] = self._env_list[env_no]
                rows.append(row)
        return {key: rows[n] for key, n in self.rows.items()}

    def close(self) -> None:
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None

    def finish(
        self,
        interrupted: bool = False,
        plots: bool = True,
        slo: dict[str, float] | None = None,
        store: Path | None = None,
    ) -> list[dict[str, Any]]:
        """results.jsonl (+ csv, report, plots) for the cells of this sweep, and a summary.
        Cells without a record are listed as missing; a sweep that produced no record at
        all (e.g. it could not start) writes nothing. ``slo``: the p99 budgets (ms) the
        report answers for (`slo_ttft_ms`, `slo_tpot_ms`). ``store``: the results store the
        rows are added to first (sweep/store.py; its trend panel goes into report.html)."""
        from aggregate import write_outputs

        self.close()
        cell_dirs = list(self.cells)
        earlier, unreadable = self._earlier()
        self.loaded = loaded = self._read_rows()
        own = [loaded[d] for d in cell_dirs if d in loaded]
        rows = own + earlier
        missing = [d for d in cell_dirs if d not in loaded]
        if not own:
            print(f"sweep {'interrupted' if interrupted else 'ended'}: no cell has a record")
            self.partial.unlink(missing_ok=True)
            return own
        trend_db = store_sweep(store, self.dir, own)
        manifest = (
            _manifest(self.dir, rows, missing, plots) + f"slo={sorted((slo or {}).items())}\n"
        )
        manifest += "".join(f"unreadable {p}: {why}\n" for p, why in unreadable)
        if self._up_to_date(manifest):
            self.partial.unlink(missing_ok=True)
            print(f"nothing ran: the outputs in {self.dir} are up to date")
        else:
            if not self.partial.exists() and (self.dir / RESULTS_JSONL).is_file():
                shutil.copyfile(self.dir / RESULTS_JSONL, self.partial)  # no line added here
            self.partial.touch()
            os.replace(self.partial, self.dir / RESULTS_JSONL)
            unreadable += [
                (str(self.dir / m / RECORD_FILE), "missing or cut short") for m in missing
            ]
            paths = write_outputs(
                self.dir,
                rows,
                unreadable,
                plots=plots,
                jsonl=False,
                trend_db=trend_db,
                **(slo or {}),
            )
            (self.dir / MANIFEST).write_text(manifest)
            log.debug("wrote %s", ", ".join(paths))
        self._print_summary(rows)
        if earlier:
            print(
                f"{len(earlier)} record(s) under {self.dir} that this launch did not plan "
                "(earlier runs into it, or a sweeper's later rounds) are in its outputs too: "
                "a directory's report holds every record under it"
            )
        bad = [r for r in own if r.get("status") != "ok"]
        state = "interrupted" if interrupted else "finished"
        print(
            f"sweep {state}: {len(own) - len(bad)} ok, {len(bad)} not ok, {len(missing)} "
            f"missing of {len(cell_dirs)} cells; results in {self.dir / RESULTS_JSONL}"
        )
        for r in bad:
            err = r.get("error") or {}
            first = (str(err.get("message") or "").strip().splitlines() or [""])[0]
            print(f"  {r.get('status', '?'):6} {r.get('cell_dir')}: {first[:200]}")
        for m in missing:
            print(f"  missing {m}: run the same command again to finish it")
        sys.stdout.flush()
        return own

    def _print_summary(self, rows: list[dict[str, Any]]) -> None:
        """The summary table: every cell the first time; in a later launch of this sweep
        in this process (a sweeper's next round) only the cells not shown yet."""
        from aggregate import summary_table

        fresh = [r for r in rows if str(r.get("cell_dir")) not in self._shown]
        if self._shown and fresh:
            print(f"{len(fresh)} cell(s) new since the last summary (report.md has them all):")
        if fresh or not self._shown:
            print(summary_table(fresh or rows))
        self._shown.update(str(r.get("cell_dir")) for r in rows)

    def _earlier(self) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """The records under the directory that are not cells of this sweep (earlier runs
        into it with other values), appended to results.jsonl once; unreadable ones as
        (path, why). A directory's outputs hold every readable record under it, as
        `python -m aggregate` of it does (docs/aggregate.md)."""
        from aggregate.reader import find_record_files, read_record

        unreadable: list[tuple[str, str]] = []
        new: list[dict[str, Any]] = []
        for path in find_record_files(self.dir):
            rel = path.parent.relative_to(self.dir).as_posix()
            if rel in self.cells or rel in self.extra:
                continue
            try:
                record = read_record(path)
            except RecordError as exc:
                unreadable.append((str(path), str(exc)))
                continue
            new.append(record)
            self.extra[rel] = summary_row(record, self._envs)
        if new:
            done = self.dir / RESULTS_JSONL
            if self._started and not self.partial.exists() and done.is_file():  # go on from it
                shutil.copyfile(self.dir / RESULTS_JSONL, self.partial)
            self._started = True  # a later launch goes on from results.jsonl, these included
            with self.partial.open("a", encoding="utf-8") as f:
                for record in new:
                    f.write(jsonl_line(record))
        return [r for d, r in self.extra.items() if d not in self.cells], unreadable

    def _up_to_date(self, manifest: str) -> bool:
        """Nothing ran in this launch and the outputs were written from these very records."""
        if self.new or not (self.dir / RESULTS_JSONL).is_file():
            return False
        try:
            return (self.dir / MANIFEST).read_text() == manifest
        except OSError:
            return False


def _manifest(root: Path, rows: list[dict[str, Any]], missing: list[str], plots: bool) -> str:
    """What the outputs are built from: every record (its id, end, and its file's size,
    mtime and content hash on disk: a record changed since makes the outputs stale)."""
    h = hashlib.sha256()
    for r in sorted(rows, key=lambda r: str(r.get("cell_dir"))):
        h.update(f"{r.get('cell_dir')}|{r.get('cell_id')}|{r.get('finished_at')}|".encode())
        h.update(f"{_file_state(root / str(r.get('cell_dir')) / RECORD_FILE)}\n".encode())
    for m in sorted(missing):
        h.update(f"missing {m}\n".encode())
    return f"{h.hexdigest()} plots={plots}\n"


def _file_state(path: Path) -> str:
    """size, mtime (ns) and sha256 of a file; 'absent' when it cannot be read."""
    try:
        st = path.stat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return "absent"
    return f"{st.st_size}:{st.st_mtime_ns}:{digest}"
