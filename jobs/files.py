"""Record files: the atomic writer and the one reader (used by resume and by `python -m aggregate`).

A reader never sees a half-written file (temp file, rename): not even when the writer is
killed. ``sync=True`` (the default) also puts the file on the disk before the rename (fsync),
so a power loss cannot leave it empty; a sweep's driver writes its records with
``sync=False`` and flushes them in bulk (:func:`sync_filesystem`, sweep/records.py). A record
that cannot be used (empty, truncated, bad JSON, missing identity keys) raises
:class:`RecordError` with the reason, so callers can list it instead of dropping it silently
(and resume runs its cell again).
"""

from __future__ import annotations

import functools
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


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, sync: bool = True) -> str:
    """Write to a temporary file in the same directory, then rename it over ``path``;
    ``sync``: fsync the file before the rename (else the caller flushes it later)."""
    target = Path(path)
    parent, name = str(target.parent), target.name
    try:  # the directory is there almost always: made only when it is not
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{name}.", suffix=".tmp")
    except FileNotFoundError:
        os.makedirs(parent, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=parent, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if sync:
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


def atomic_write_text(path: str | os.PathLike[str], text: str, sync: bool = True) -> str:
    return atomic_write_bytes(path, text.encode("utf-8"), sync)


@functools.cache
def _syncfs() -> Any:
    """Linux's ``syncfs(2)`` from the C library, or None where there is none."""
    import ctypes  # here: only a sweep's driver needs it

    try:  # the process's own symbols, the C library's among them (no library search)
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError, TypeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return fn


def sync_filesystem(path: str | os.PathLike[str]) -> None:
    """Put on the disk every file written so far on ``path``'s filesystem: one ``syncfs``
    (one journal commit for any number of files, where an fsync per file commits once per
    file); ``os.sync()`` where the C library has no ``syncfs``."""
    fn = _syncfs()
    if fn is None:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if fn(fd) != 0:
            import ctypes

            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)


def json_safe(obj: Any) -> Any:
    """JSON has no NaN/inf: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


# A record's text: one value per line, so `grep KEY record.json` finds its value, in one call
# of C's encoder (it writes compact JSON only: indenting runs Python's encoder, which costs a
# sweep's driver ~0.1 ms more per cell); `jq . record.json` shows it indented.
_LINES = (",\n", ": ")


def record_json(record: dict[str, Any]) -> str:
    """A record as its file's text: ``json.dumps(json_safe(record), ensure_ascii=False,
    default=str, separators=(",\\n", ": "))`` and a newline. C's encoder refuses NaN and
    infinities (``allow_nan=False``): only then is the record walked in Python, to write them
    as null."""
    try:
        text = json.dumps(
            record, ensure_ascii=False, default=str, allow_nan=False, separators=_LINES
        )
    except ValueError:
        text = json.dumps(json_safe(record), ensure_ascii=False, default=str, separators=_LINES)
    return text + "\n"


def record_line(text: str) -> str:
    """:func:`record_json`'s text as one line (results.jsonl): its only line breaks are its
    separators' (JSON writes a line break in a string as ``\\n``)."""
    return text.replace("\n", "") + "\n"


def write_record(
    cell_dir: str | os.PathLike[str], record: dict[str, Any], sync: bool = True
) -> Path:
    return write_record_text(cell_dir, record_json(record), sync)


def write_record_text(cell_dir: str | os.PathLike[str], text: str, sync: bool = True) -> Path:
    """A record's text (:func:`record_json`, made by the caller) as its cell's record file."""
    path = Path(cell_dir) / RECORD_FILE
    atomic_write_text(path, text, sync)
    return path


def write_cell_files(
    cell_dir: str | os.PathLike[str], files: dict[str, str], sync: bool = True
) -> list[str]:
    """Text files an outcome brought for its cell's directory (e.g. server.log), beside
    record.json; names are kept inside the directory."""
    written = []
    for name, text in files.items():
        safe = os.path.basename(name).lstrip(".") or "file.txt"
        written.append(atomic_write_text(Path(cell_dir) / safe, text, sync))
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
    return rec if is_finished(rec, cell_id) else None


def is_finished(rec: dict[str, Any], cell_id: str) -> bool:
    """The record lets resume skip the cell ``cell_id``: ok, current schema, same cell."""
    if rec.get("status") != "ok":
        return False
    return rec.get("schema_version") == SCHEMA_VERSION and rec.get("cell_id") == cell_id
