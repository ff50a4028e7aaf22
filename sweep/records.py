"""The driver writes every record (no shared filesystem needed): a job's Hydra files when it
is dispatched, and its record and cell files when its outcome comes back (or its worker is
lost). This module makes their bytes; the files are written by :mod:`jobs.files`, in the
driver's process or, in a sweep of many cells, by its writer process (:mod:`sweep.writer`).

A record is written atomically (temp file, rename: no reader ever sees half of one, even if
the driver is killed) and reaches the disk about :data:`jobs.files.SYNC_EVERY_S` after it was
written (plus the time the disk takes): one filesystem sync, on a thread of its own, for all
the records written since the last (:class:`jobs.files.RecordSync`), not an fsync per record,
which cost a sweep's driver ~0.4 ms per cell. What a power loss can cost is the records not
synced yet (about the last second's, on a disk that keeps up): an empty or cut record.json
reads as not finished, and resume runs its cell again."""

from __future__ import annotations

import functools
import marshal
import re
from typing import Any

import yaml

from hydra_plugins.ray_cells_launcher.app import HostOutOfMemory, Job
from jobs.files import record_json
from jobs.identity import PlannedCell
from jobs.record import Flag, Outcome, Status, build_record
from jobs.values import plain

# YAML text of one top-level entry of a job's config (its model, backend, ... group; the
# cells of a sweep share most of them), by (key, its value's marshal bytes, else its repr).
_YAML: dict[tuple[str, str | bytes], str] = {}
_YAML_MAX = 4096  # entries kept: values that differ per cell (a batch) come and go
_DIGITS = re.compile(r"[0-9]")


@functools.cache
def _plain_key(key: str) -> bool:
    """YAML writes ``key: <int>`` for this key as it is (not quoted, e.g. not `on`)."""
    return yaml.safe_dump({key: 1}) == f"{key}: 1\n"


def _yaml_entry(key: str, value: Any) -> str:
    """``yaml.safe_dump({key: value}, sort_keys=False)``, remembered. A block mapping's text
    is its entries' texts one after another, so a job's config.yaml is its entries' texts
    (a whole cell dumped by PyYAML costs about a millisecond of the driver's time)."""
    if type(value) is int and _plain_key(key):  # e.g. batch: 16, as YAML writes it
        return f"{key}: {value}\n"
    try:  # the value's bytes, types and order included (a 3x cheaper key than its repr)
        memo = (key, marshal.dumps(value))
    except ValueError:  # a type marshal does not write (an Enum): its repr
        memo = (key, repr(value))
    text = _YAML.get(memo)
    if text is None:
        if len(_YAML) >= _YAML_MAX:
            _YAML.clear()
        text = _YAML[memo] = yaml.safe_dump({key: value}, sort_keys=False)
    return text


def config_yaml(cfg: dict[str, Any]) -> str:
    """``yaml.safe_dump(cfg, sort_keys=False)`` of a job's config (a dict of plain values)."""
    return "".join(_yaml_entry(k, v) for k, v in cfg.items()) if cfg else "{}\n"


@functools.lru_cache(maxsize=1024)
def _plain_item(shape: str) -> bool:
    """YAML writes a list item of this shape as it is (``- batch=0``: not quoted)."""
    return yaml.safe_dump([shape]) == f"- {shape}\n"


def _item_yaml(item: str) -> str:
    """``yaml.safe_dump([item])``. An item that starts with a letter is written as it is
    when one of its shape is (its digits all 0: YAML tells no digit from another there, and
    such an item never reads as a number)."""
    if item[:1].isascii() and item[:1].isalpha() and _plain_item(_DIGITS.sub("0", item)):
        return f"- {item}\n"
    return yaml.safe_dump([item])


# YAML text of one override line as a list item, by the line (the jobs of a sweep share
# most of their lines; a value that differs per job, a batch, comes and goes).
_ITEMS: dict[str, str] = {}
_ITEMS_MAX = 4096


def overrides_yaml(overrides: list[str]) -> str:
    """``yaml.safe_dump(overrides)``: a block sequence is its items' texts in order."""
    if not overrides:
        return "[]\n"
    out = []
    for item in overrides:
        text = _ITEMS.get(item)
        if text is None:
            if len(_ITEMS) >= _ITEMS_MAX:
                _ITEMS.clear()
            text = _ITEMS[item] = _item_yaml(item)
        out.append(text)
    return "".join(out)


def job_files(job: Job) -> tuple[dict[str, Any], list[tuple[str, bytes]]]:
    """What Hydra users expect in a job directory: .hydra/config.yaml and overrides.yaml
    (their names and bytes), and the cell's config as plain values (its record's
    ``config``: made once)."""
    cfg = plain(job.payload.cell)
    files = [
        ("config.yaml", config_yaml(cfg).encode("utf-8")),
        ("overrides.yaml", overrides_yaml(list(job.overrides)).encode("utf-8")),
    ]
    return cfg, files


def lost_outcome(job: Job, error: BaseException) -> Outcome:
    """The outcome of a job whose worker was lost (killed, timed out, no node left)."""
    status = Status.OOM if isinstance(error, HostOutOfMemory) else Status.FAILED
    if isinstance(error, HostOutOfMemory):  # one line, with the settings that change it
        error = HostOutOfMemory(
            f"host out of memory{error.usage}: Ray's memory monitor killed the worker, not "
            "retried; raise device.cpus_per_cell (0 = a whole node) or lower batch/seq, or "
            "raise RAY_memory_usage_threshold"
        )
    outcome = Outcome.failure(error, status, flags=[Flag.WORKER_LOST])
    if job.payload.cell.backend.name == "sim":
        outcome.flags.append(Flag.SIMULATED)
    return outcome


def job_record(
    job: Job,
    outcome: Outcome,
    node: str | None,
    code: dict[str, Any],
    cluster: str | None = None,
    node_index: int | None = None,
    config: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], str]:
    """Build the job's record (the one place) and its file's text (:func:`record_json`; its
    results.jsonl line is :func:`jobs.files.record_line`). ``cluster``: which
    Ray cluster ran it (``ray_cluster``); ``node_index``: its node's index there;
    ``config``: the cell's config as plain values, when :func:`job_files` made it."""
    p: PlannedCell = job.payload
    rec = build_record(
        p, outcome, attempts=job.attempts, ray_node_id=node, code=code, ray_cluster=cluster,
        node_index=node_index, config=config,
    )  # fmt: skip
    return rec, record_json(rec)


__all__ = ["job_files", "job_record", "lost_outcome"]
