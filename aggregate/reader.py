"""The record reader: every `record.json` under a sweep directory, read and sorted.

A record that cannot be used (truncated file, bad JSON, missing identity keys) is never
dropped silently: it comes back as ``(path, reason)`` so reports can list it.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from jobs.files import RecordError, is_newer_schema
from jobs.files import read_record as _read
from jobs.record import RECORD_FILE, SCHEMA_VERSION

log = logging.getLogger(__name__)


def find_record_files(sweep_dir: str | os.PathLike[str]) -> list[Path]:
    """Every `record.json` below ``sweep_dir`` (symlinked directories are not followed)."""
    found = []
    for root, dirs, files in os.walk(sweep_dir):
        dirs.sort()
        if RECORD_FILE in files:
            found.append(Path(root) / RECORD_FILE)
    return sorted(found)


def read_record(path: str | os.PathLike[str]) -> dict[str, Any]:
    """One record through the project's one reader; a newer schema is read with a warning."""
    rec = _read(path)
    if is_newer_schema(rec):
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
        _int(rec.get("concurrency")),  # serving cells: by their load
        float(rec.get("request_rate") or 0.0),
        _int(rec.get("seq")),
        _int(rec.get("prompt_len")),
        _text(rec.get("cell_id")),
    )


def read_records(
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
