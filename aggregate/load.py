"""Finding and reading result records: every `record.json` under a sweep directory.

A record that cannot be used (truncated file, bad JSON, missing identity keys) is never
dropped silently: it comes back as ``(path, reason)`` so reports can list it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RECORD_FILE = "record.json"
# The newest record schema this reader knows; newer records are read with a warning.
SCHEMA_VERSION = 1
# Keys without which a record cannot be placed in any table.
_REQUIRED = ("schema_version", "cell_id", "status", "batch", "seq")


class RecordError(ValueError):
    """A record file that cannot be used; the message says why."""


def find_record_files(sweep_dir: str | os.PathLike[str]) -> list[Path]:
    """Every `record.json` below ``sweep_dir`` (symlinked directories are not followed)."""
    found = []
    for root, dirs, files in os.walk(sweep_dir):
        dirs.sort()
        if RECORD_FILE in files:
            found.append(Path(root) / RECORD_FILE)
    return sorted(found)


def _check(rec: Any) -> dict[str, Any]:
    if not isinstance(rec, dict):
        raise RecordError(f"not a JSON object (got {type(rec).__name__})")
    missing = [k for k in _REQUIRED if k not in rec or rec[k] is None]
    if missing:
        raise RecordError(f"missing {', '.join(missing)}")
    version = rec["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int):
        raise RecordError(f"schema_version={version!r} is not a whole number")
    for key in ("batch", "seq"):
        value = rec[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise RecordError(f"{key}={value!r} is not a whole number >= 1")
    if not isinstance(rec["cell_id"], str) or not rec["cell_id"]:
        raise RecordError(f"cell_id={rec['cell_id']!r} is not a non-empty string")
    return rec


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One record, checked; raises :class:`RecordError` with the reason it is unusable."""
    try:
        data = Path(path).read_bytes()
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
    rec = _check(rec)
    if rec["schema_version"] > SCHEMA_VERSION:
        log.warning(
            "%s: schema_version %d is newer than this reader (%d); reading it anyway",
            path,
            rec["schema_version"],
            SCHEMA_VERSION,
        )
    return rec


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else -1


def sort_key(rec: dict[str, Any]) -> tuple:
    """(model, backend, device, dtype, batch, seq, prompt_len), then cell id to break ties."""
    return (
        _text(rec.get("model")),
        _text(rec.get("backend")),
        _text(rec.get("device")),
        _text(rec.get("dtype")),
        _int(rec.get("batch")),
        _int(rec.get("seq")),
        _int(rec.get("prompt_len")),
        _text(rec.get("cell_id")),
    )


def load_records(
    sweep_dir: str | os.PathLike[str],
) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """(records sorted by :func:`sort_key`, unreadable files as (path, reason))."""
    records: list[dict[str, Any]] = []
    unreadable: list[tuple[str, str]] = []
    for path in find_record_files(sweep_dir):
        try:
            records.append(read_record(path))
        except RecordError as exc:
            log.warning("unreadable record %s: %s", path, exc)
            unreadable.append((str(path), str(exc)))
    records.sort(key=sort_key)
    log.info("%s: %d records, %d unreadable", sweep_dir, len(records), len(unreadable))
    return records, unreadable
