"""The results store: every sweep's records in one embedded DuckDB database.

One row per record, keyed by ``record_key``: a hash of the sweep directory (absolute), the
record's ``cell_id``, ``started_at``, ``finished_at`` and ``repeat``, so adding the same sweep
twice adds nothing and a cell measured again (another sweep, or a re-run) is a new row. Each
row carries the columns history queries filter and sort on (the cell's axes, status, the
headline figures, commit and dirty flag, library versions, device and host) and the record
itself as JSON (its flat keys and small nested parts: ``env``, ``error``, ``engine``, ``ci``;
not ``raw`` or ``config``), from which history rebuilds records for the `--baseline` rules.

DuckDB lets one process write a database file at a time. Every write (and read) holds an
``fcntl.flock`` on ``<db>.lock`` for the whole transaction, exclusive for writes, shared for
reads, and opening the database is retried while another process that does not take the lock
holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import duckdb

from jobs.files import json_safe, loads, record_line, sorted_json

log = logging.getLogger(__name__)

Record = dict[str, Any]

TABLE = "records"
LOCK_TIMEOUT_S = 120.0
_NOT_KEPT = ("raw", "config")  # bulky nested parts: they stay in the sweep directory

# (column, SQL type, where it comes from: a flat key, or "env.KEY")
COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("cell_id", "VARCHAR", "cell_id"),
    ("repeat", "INTEGER", "repeat"),
    ("repeat_of", "VARCHAR", "repeat_of"),
    ("started_at", "VARCHAR", "started_at"),
    ("finished_at", "VARCHAR", "finished_at"),
    ("status", "VARCHAR", "status"),
    ("simulated", "BOOLEAN", "simulated"),
    ("model", "VARCHAR", "model"),
    ("backend", "VARCHAR", "backend"),
    ("device", "VARCHAR", "device"),
    ("dtype", "VARCHAR", "dtype"),
    ("batch", "INTEGER", "batch"),
    ("seq", "INTEGER", "seq"),
    ("prompt_len", "INTEGER", "prompt_len"),
    ("workload", "VARCHAR", "workload"),
    ("concurrency", "INTEGER", "concurrency"),
    ("request_rate", "DOUBLE", "request_rate"),
    ("output_tokens_per_s", "DOUBLE", "output_tokens_per_s"),
    ("e2e_s_p50", "DOUBLE", "e2e_s_p50"),
    ("ttft_s_p50", "DOUBLE", "ttft_s_p50"),
    ("tpot_s_p50", "DOUBLE", "tpot_s_p50"),
    ("energy_j_per_output_token", "DOUBLE", "energy_j_per_output_token"),
    ("device_name", "VARCHAR", "device_name"),
    ("node", "VARCHAR", "node"),
    ("git_commit", "VARCHAR", "env.git_commit"),
    ("git_dirty", "BOOLEAN", "env.git_dirty"),
    ("host", "VARCHAR", "env.host"),
    ("python", "VARCHAR", "env.python"),
    ("torch", "VARCHAR", "env.torch"),
    ("torch_npu", "VARCHAR", "env.torch_npu"),
    ("transformers", "VARCHAR", "env.transformers"),
    ("sglang", "VARCHAR", "env.sglang"),
    ("vllm", "VARCHAR", "env.vllm"),
    ("ray", "VARCHAR", "env.ray"),
    ("hydra_core", "VARCHAR", "env.hydra_core"),
    ("cann", "VARCHAR", "env.cann"),
)
_NAMES = {name for name, _, _ in COLUMNS}
# What _row gives, in its order, with the types read_json is told (added_at: now()).
_INCOMING = (
    ("record_key", "VARCHAR"),
    ("sweep_dir", "VARCHAR"),
    ("identity", "VARCHAR"),
    *((name, sql) for name, sql, _ in COLUMNS),
    ("record", "VARCHAR"),
)
_TYPES = {"INTEGER": int, "DOUBLE": float, "BOOLEAN": bool, "VARCHAR": str}
_SCHEMA = (
    f"CREATE TABLE IF NOT EXISTS {TABLE} (record_key VARCHAR PRIMARY KEY, "
    "sweep_dir VARCHAR NOT NULL, identity VARCHAR, "
    + ", ".join(f'"{name}" {sql}' for name, sql, _ in COLUMNS)
    + ", added_at TIMESTAMP, record JSON)"
)


class StoreBusy(RuntimeError):
    """The store stayed locked by another writer for longer than the timeout."""


def record_key(resolved_dir: str, rec: Record) -> str:
    """What tells one stored record from every other: sweep (its resolved directory), cell,
    its times, its repeat."""
    parts = [resolved_dir]
    parts += [str(rec.get(k)) for k in ("cell_id", "started_at", "finished_at", "repeat")]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def kept_json(rec: Record) -> str:
    """The part of a record the store keeps whole, as JSON (sorted keys; NaN and
    infinities as null)."""
    return sorted_json({k: v for k, v in rec.items() if k not in _NOT_KEPT})


def _value(rec: Record, source: str, sql: str) -> Any:
    if source.startswith("env."):
        env = rec.get("env")
        value = env.get(source[4:]) if isinstance(env, dict) else None
    else:
        value = rec.get(source)
    kind = _TYPES[sql]
    if value is None or isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return json_safe(value)
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return str(value) if kind is str and not isinstance(value, (dict, list)) else None


def _row(resolved_dir: str, rec: Record) -> list[Any]:
    """The values of one stored row, in the table's column order."""
    identity = rec.get("repeat_of") or rec.get("cell_id")
    values = [record_key(resolved_dir, rec), resolved_dir, identity]
    values += [_value(rec, source, sql) for _, sql, source in COLUMNS]
    values.append(kept_json(rec))
    return values


@contextlib.contextmanager
def _flock(path: Path, exclusive: bool, timeout_s: float) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as f:
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(f.fileno(), mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise StoreBusy(f"{path}: locked for more than {timeout_s:g} s") from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def connect(
    db: str | os.PathLike[str], write: bool = False, timeout_s: float = LOCK_TIMEOUT_S
) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the store under its lock (the schema made on first write)."""
    db = Path(db)
    with _flock(db.with_name(db.name + ".lock"), write, timeout_s):
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                con = duckdb.connect(str(db), read_only=not write)
                break
            except duckdb.IOException as exc:  # held by a process that ignores the lock?
                if "lock" not in str(exc).lower():
                    raise
                if time.monotonic() > deadline:
                    raise StoreBusy(f"{db}: {exc}") from exc
                time.sleep(0.2)
        try:
            if write:
                con.execute(_SCHEMA)
            yield con
        finally:
            con.close()


def _insert(con: duckdb.DuckDBPyConnection, rows: list[list[Any]]) -> None:
    """Insert rows not there yet, in bulk: through a JSON-lines file that DuckDB reads with
    the columns' types (binding many parameters is slow in DuckDB)."""
    names = [n for n, _ in _INCOMING]
    spec = ", ".join(f"'{n}': '{t}'" for n, t in _INCOMING)
    with tempfile.TemporaryDirectory(prefix="llm-sweep-store-") as tmp:
        path = Path(tmp) / "rows.jsonl"
        with path.open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(record_line(dict(zip(names, row, strict=True))))
        con.execute(
            f"INSERT INTO {TABLE} BY NAME SELECT *, now()::TIMESTAMP AS added_at FROM "
            f"read_json(?, format='newline_delimited', columns={{{spec}}}) "
            "ON CONFLICT DO NOTHING",
            [str(path)],
        )


def add_records(
    db: str | os.PathLike[str], sweep_dir: str | os.PathLike[str], records: Sequence[Record]
) -> int:
    """Add a sweep's records in one transaction; returns how many were new (0 when the sweep
    is already there)."""
    resolved = str(Path(sweep_dir).resolve())  # once: per row it was ~10% of the store's time
    rows = [_row(resolved, r) for r in records if r.get("cell_id")]
    rows = list({row[0]: row for row in rows}.values())  # one per key
    if not rows:
        return 0
    with connect(db, write=True) as con:
        con.execute("BEGIN TRANSACTION")
        try:
            before = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
            _insert(con, rows)
            after = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return int(after - before)


def read_rows(
    db: str | os.PathLike[str],
    where: dict[str, Any] | None = None,
    identities: Sequence[str] | None = None,
    min_rows: int = 1,
) -> list[tuple[str, Record]]:
    """(sweep_dir, record) of every stored row matching ``where`` (column = value; a column
    of :data:`COLUMNS`) and, when given, one of ``identities`` that has at least ``min_rows``
    rows in the store (``min_rows=2``: only cells with a history); oldest first."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (where or {}).items():
        if column not in _NAMES:
            raise ValueError(f"no column {column!r} in the results store")
        if value is not None:
            clauses.append(f'"{column}" = ?')
            params.append(value)
    if identities is not None:
        marks = ", ".join(["?"] * len(identities)) or "NULL"
        if min_rows > 1:  # counted by DuckDB: the rows of one-run cells are never decoded
            clauses.append(
                f"identity IN (SELECT identity FROM {TABLE} WHERE identity IN ({marks}) "
                "GROUP BY identity HAVING count(*) >= ?)"
            )
            params += [*identities, min_rows]
        else:
            clauses.append(f"identity IN ({marks})")
            params += list(identities)
    sql = f"SELECT sweep_dir, record FROM {TABLE}"
    sql += (" WHERE " + " AND ".join(clauses)) if clauses else ""
    sql += " ORDER BY finished_at NULLS FIRST, started_at, record_key"
    if not Path(db).is_file():
        return []
    with connect(db) as con:
        return [(d, loads(r)) for d, r in con.execute(sql, params).fetchall()]


def count(db: str | os.PathLike[str]) -> int:
    if not Path(db).is_file():
        return 0
    with connect(db) as con:
        return int(con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0])


def export_parquet(db: str | os.PathLike[str], target: str | os.PathLike[str]) -> Path:
    """Write the whole store as one Parquet file; ``target``: a file (``*.parquet``) or a
    directory (then ``results.parquet`` in it). Written to a temporary name, then renamed."""
    out = Path(target)
    if out.suffix != ".parquet":
        out = out / "results.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with connect(db) as con:
        path = str(tmp).replace("'", "''")
        con.execute(
            f"COPY (SELECT * FROM {TABLE} ORDER BY finished_at, record_key) "
            f"TO '{path}' (FORMAT PARQUET)"
        )
    os.replace(tmp, out)
    return out
