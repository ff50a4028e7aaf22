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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jobs.record import RECORD_FILE, SCHEMA_VERSION

# Keys without which a record cannot be placed in any table.
_REQUIRED = ("schema_version", "cell_id", "status", "batch", "seq")


class RecordError(ValueError):
    """A record file that cannot be used; the message says why."""


def _write_all(fd: int, data: bytes) -> None:
    """``data`` written to the file descriptor ``fd``, however many writes it takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


# os.open's flags for a file made new or emptied, as open(path, "w") opens it.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
_TMP_FILE = _NEW_FILE | getattr(os, "O_NOFOLLOW", 0)  # a link planted at the name is refused


def write_file(path: str, data: bytes) -> None:
    """``open(path, "wb").write(data)``, without a file object made and dropped (a sweep's
    driver writes two small files per cell): not atomic, not synced."""
    fd = os.open(path, _NEW_FILE, 0o666)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, sync: bool = True) -> str:
    """Write to a temporary file in the same directory, then rename it over ``path``;
    ``sync``: fsync the file before the rename (else the caller flushes it later).

    The temporary file is named after the target, the process and the thread
    (``.NAME.PID-TID.tmp``): no two writers share one, and no random name is drawn (a
    sweep's driver writes a record per finished cell). Its mode is a new file's (0666
    less the umask), as ``open()`` gives."""
    target = os.fspath(path)
    parent, name = os.path.split(target)
    tmp = os.path.join(parent, f".{name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:  # the directory is there almost always: made only when it is not
        fd = os.open(tmp, _TMP_FILE, 0o666)
    except FileNotFoundError:
        os.makedirs(parent or ".", exist_ok=True)
        fd = os.open(tmp, _TMP_FILE, 0o666)
    try:
        try:
            _write_all(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return target


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


SYNC_EVERY_S = 1.0  # how often the records written meanwhile are synced (a slow disk: less often)


class RecordSync:
    """Puts the records a sweep's driver writes on the disk: a filesystem sync once
    ``every_s`` has passed since the last began (checked as each record is written), run on a
    thread of its own so that the driver's loop never waits for the disk, and one more at the
    end (:meth:`flush`), which waits. ``sync``/``clock``/``background``: what does it and
    where (tests count the calls)."""

    def __init__(
        self,
        where: str | os.PathLike[str],
        every_s: float = SYNC_EVERY_S,
        sync: Callable[[str | os.PathLike[str]], None] = sync_filesystem,
        clock: Callable[[], float] = time.monotonic,
        background: bool = True,
    ) -> None:
        self.where, self.every_s, self._sync, self._clock = where, every_s, sync, clock
        self.background = background
        self.pending = 0  # records written since the last sync began
        self.synced_at = clock()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def wrote(self) -> None:
        """A record was written (without fsync): start a sync when the last one began long
        enough ago and has ended (records written meanwhile wait for the next)."""
        self.pending += 1
        if self._clock() - self.synced_at < self.every_s:
            return
        if self._thread is not None:
            if self._thread.is_alive():
                return
            self._thread = None
        self._raise()
        self.pending, self.synced_at = 0, self._clock()
        if not self.background:
            self._sync(self.where)
            return
        self._thread = threading.Thread(target=self._run, name="record-sync", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._sync(self.where)
        except BaseException as exc:  # told on the driver's thread, at its next record
            self._error = exc

    def _raise(self) -> None:
        error, self._error = self._error, None
        if error is not None:
            raise error

    def flush(self) -> None:
        """Wait for a sync under way, then sync what was written since it began."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._raise()
        if self.pending:
            self._sync(self.where)
            self.pending = 0
        self.synced_at = self._clock()


def json_safe(obj: Any) -> Any:
    """JSON has no NaN/inf: store them as null."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


try:  # a C encoder ~10x faster than json's on a record; json where it is not installed
    import orjson
except ImportError:  # (e.g. the GPU check's machine, which runs the project uninstalled)
    orjson = None  # type: ignore[assignment]


def _other(obj: Any) -> Any:
    """What orjson does not write itself, as ``json.dumps(default=str)`` writes it: a float
    or int of a subclass (numpy's float64) as its number, a tuple of a subclass (a
    NamedTuple) as a list, anything else as its ``str``."""
    if isinstance(obj, float):
        return float(obj)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, tuple):
        return list(obj)
    return str(obj)


if orjson is not None:
    # Keys that are not strings written as json writes them; datetimes and dataclasses
    # handed to _other (their str), as json's default=str does.
    _LINE_OPTS = (
        orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    )
    _FILE_OPTS = _LINE_OPTS | orjson.OPT_INDENT_2


def _stdlib(record: dict[str, Any], indent: int | None) -> str:
    """json's text of a record (NaN and infinities as null)."""
    seps = (",", ": ") if indent else (",", ":")
    try:
        return json.dumps(
            record, ensure_ascii=False, default=_other, allow_nan=False, indent=indent,
            separators=seps,
        )  # fmt: skip
    except ValueError:  # NaN or an infinity: only then is the record walked in Python
        return json.dumps(
            json_safe(record), ensure_ascii=False, default=_other, indent=indent, separators=seps
        )


def _record_text(record: dict[str, Any], indent: bool) -> str:
    """A record as JSON (indented by 2, else compact) and a newline, NaN and infinities as
    null: orjson's where it is installed, else json's (the same values)."""
    if orjson is not None:
        try:
            opts = _FILE_OPTS if indent else _LINE_OPTS
            return orjson.dumps(record, default=_other, option=opts).decode() + "\n"
        except TypeError:  # an int beyond 64 bits, a lone surrogate: json writes those
            pass
    return _stdlib(record, 2 if indent else None) + "\n"


def record_json(record: dict[str, Any]) -> str:
    """A record as its file's text: JSON indented by 2 (``jq``'s look: a key and its value
    on a line of their own, so `grep KEY record.json` finds it), NaN and infinities as null,
    and a newline. Written by orjson where it is installed (~6 us for a record of 8 KB,
    against ~70 us for json's C encoder on one line; indented, json runs its Python encoder:
    ~0.5 ms for 14 KB), else by json: the same values (a float may be spelt otherwise: 1e-05
    and 0.00001)."""
    return _record_text(record, indent=True)


def record_line(record: dict[str, Any]) -> str:
    """A record as its results.jsonl line: compact JSON (no spaces) and a newline, NaN and
    infinities as null (orjson where it is installed, else json, as :func:`record_json`)."""
    return _record_text(record, indent=False)


def _sorted_orjson(obj: Any) -> bytes | None:
    """Compact JSON with sorted keys by orjson (NaN and infinities as null); None where
    orjson is not installed or refuses a value (an int beyond 64 bits, a lone surrogate)."""
    if orjson is not None:
        try:
            return orjson.dumps(obj, default=_other, option=_LINE_OPTS | orjson.OPT_SORT_KEYS)
        except TypeError:
            pass
    return None


def sorted_json(obj: Any) -> str:
    """Compact JSON with sorted keys, NaN and infinities as null (the results store's copy of
    a record): orjson's where it can, else json's (the same values)."""
    text = _sorted_orjson(obj)
    if text is not None:
        return text.decode()
    return json.dumps(json_safe(obj), ensure_ascii=False, sort_keys=True, default=str)


def loads(text: str | bytes) -> Any:
    """JSON text -> values (orjson's parser where it is installed, else json's)."""
    if orjson is not None:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:  # e.g. NaN written by json, which orjson refuses
            pass
    return json.loads(text)


def value_key(obj: Any) -> bytes | str:
    """A key equal for equal JSON values whatever their dicts' key order (to share one copy
    of a value many records repeat, e.g. their environment): JSON with sorted keys."""
    key = _sorted_orjson(obj)
    return key if key is not None else json.dumps(obj, sort_keys=True, default=str)


def write_record(
    cell_dir: str | os.PathLike[str], record: dict[str, Any], sync: bool = True
) -> str:
    return write_record_text(cell_dir, record_json(record), sync)


def write_record_text(cell_dir: str | os.PathLike[str], text: str, sync: bool = True) -> str:
    """A record's text (:func:`record_json`, made by the caller) as its cell's record file;
    returns its path."""
    return atomic_write_text(os.path.join(cell_dir, RECORD_FILE), text, sync)


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


def write_hydra_files(cell_dir: str, files: list[tuple[str, bytes]]) -> None:
    """A dispatched job's directory, its ``.hydra`` directory and the files given there by
    name (config.yaml, overrides.yaml): not atomic, not synced (they are written again when
    the job is)."""
    hydra_dir = os.path.join(cell_dir, ".hydra")
    for path in (cell_dir, hydra_dir):  # two calls, not makedirs' three
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        except FileNotFoundError:
            os.makedirs(hydra_dir, exist_ok=True)
            break
    for name, data in files:
        write_file(os.path.join(hydra_dir, name), data)


def write_record_files(
    cell_dir: str, text: str, files: dict[str, str], sync: RecordSync | None = None
) -> None:
    """A finished job's record (its text, :func:`record_json`) and its outcome's cell files,
    each atomically; ``sync``: what puts them on the disk (else each is fsynced before its
    rename)."""
    write_record_text(cell_dir, text, sync=sync is None)
    write_cell_files(cell_dir, files, sync=sync is None)
    if sync is not None:
        sync.wrote()


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
