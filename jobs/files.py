"""Record files: the atomic writer and the one reader (used by resume and by `python -m aggregate`).

A reader never sees a half-written file (temp file, fsync, rename). A record that cannot be
used (truncated, bad JSON, missing identity keys) raises :class:`RecordError` with the reason,
so callers can list it instead of dropping it silently.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from jobs.record import RECORD_FILE, SCHEMA_VERSION

# Keys without which a record cannot be placed in any table.
_REQUIRED = ("schema_version", "cell_id", "status", "batch", "seq")


class RecordError(ValueError):
    """A record file that cannot be used; the message says why."""


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> str:
    """Write to a temporary file in the same directory, then rename it over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return str(target)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> str:
    return atomic_write_bytes(path, text.encode("utf-8"))


def json_safe(obj: Any) -> Any:
    """JSON has no NaN/inf: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def record_json(record: dict[str, Any]) -> str:
    return json.dumps(json_safe(record), indent=1, default=str) + "\n"


def write_record(cell_dir: str | os.PathLike[str], record: dict[str, Any]) -> Path:
    path = Path(cell_dir) / RECORD_FILE
    atomic_write_text(path, record_json(record))
    return path


def write_cell_files(cell_dir: str | os.PathLike[str], files: dict[str, str]) -> list[str]:
    """Text files an outcome brought for its cell's directory (e.g. server.log), beside
    record.json; names are kept inside the directory."""
    written = []
    for name, text in files.items():
        safe = os.path.basename(name).lstrip(".") or "file.txt"
        written.append(atomic_write_text(Path(cell_dir) / safe, text))
    return written


def _check(rec: Any) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise RecordError(f"not a JSON object (got {type(rec).__name__})")
    serving = rec.get("workload") == "serve"  # a serving cell's load replaces its batch
    required = [k for k in _REQUIRED if not (serving and k == "batch")]
    missing = [k for k in required if k not in rec or rec[k] is None]
    if missing:
        raise RecordError(f"missing {', '.join(missing)}")
    version = rec["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise RecordError(f"schema_version={version!r} is not a whole number")
    if serving and rec.get("concurrency") is None and rec.get("request_rate") is None:
        raise RecordError("a serving record without concurrency or request_rate")
    for key in ("seq",) if serving else ("batch", "seq"):
        value = rec[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RecordError(f"{key}={value!r} is not a whole number >= 1")
    if not isinstance(rec["cell_id"], str) or not rec["cell_id"]:
        raise RecordError(f"cell_id={rec['cell_id']!r} is not a non-empty string")
    return rec


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One record file, checked; raises :class:`RecordError` with the reason it is unusable.
    ``path`` is the record file or its cell directory."""
    p = Path(path)
    if p.name != RECORD_FILE and not p.is_file():
        p = p / RECORD_FILE
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise RecordError(f"cannot read: {exc.strerror or exc}") from None
    if not data.strip():
        raise RecordError("empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        rec = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = "" if text.rstrip().endswith(("}", "]")) else " (file truncated?)"
        raise RecordError(
            f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}{hint}"
        ) from None
    return _check(rec)


def is_newer_schema(rec: dict[str, Any]) -> bool:
    """A record written by a newer version of this tool (read it, never overwrite it)."""
    return rec.get("schema_version", 0) > SCHEMA_VERSION


def newer_record(cell_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The cell's record when a newer version of this tool wrote it (never overwrite it)."""
    try:
        rec = read_record(Path(cell_dir) / RECORD_FILE)
    except RecordError:
        return None
    return rec if is_newer_schema(rec) else None


def finished_record(cell_dir: str | os.PathLike[str], cell_id: str) -> dict[str, Any] | None:
    """A record that lets resume skip the cell: ok, current schema, same cell; else None."""
    try:
        rec = read_record(Path(cell_dir) / RECORD_FILE)
    except RecordError:
        return None
    if rec.get("status") != "ok":
        return None
    if rec.get("schema_version") != SCHEMA_VERSION or rec.get("cell_id") != cell_id:
        return None
    return rec
