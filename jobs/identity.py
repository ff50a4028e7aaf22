"""A cell's identity: a stable id, a readable directory name, and the key of its loaded model."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from jobs.config import CellConfig, HFOptions, from_values
from jobs.serving import kv_bound
from jobs.values import plain

# Server settings that change how long the client waits, not what is measured.
_SERVER_NOT_IDENTITY = ("startup_timeout_s", "request_timeout_s", "health_path")


def _serving_identity(cell: CellConfig, d: dict[str, Any]) -> dict[str, Any]:
    """A serving cell's identity: the load and the server's settings (its kind's options
    only); no batch, backend or bench (only its prompt seed), and no SLO: an SLO only counts
    the measured requests (a finished cell resumed under another SLO is re-scored from its
    kept requests, sweep/resume.py)."""
    sim = d["backend"]["sim"] if cell.backend.name == "sim" else None
    if sim is not None:
        _drop_empty_cards(sim)
    for key in ("batch", "backend", "slo"):
        d.pop(key)
    if sim is not None:  # the simulator's serving mode: its options are what is measured
        d["backend"] = {"name": "sim", "sim": sim}
    d["bench"] = {"seed": cell.bench.seed}
    d["workload"] = _workload_identity(cell, d["workload"])
    server = {k: v for k, v in d["server"].items() if k not in _SERVER_NOT_IDENTITY}
    for kind in ("transformers", "sglang", "vllm"):
        server.pop(kind)
    server["options"] = cell.server.options
    d["server"] = server
    return d


# Keys of each workload kind beyond today's (random) ones; the others leave the identity, so
# the ids of cells from before the kinds stay what they were.
_KIND_KEYS = {
    "random": ("prefix_groups", "requests_per_group"),
    "conversation": ("kind", "sessions", "turns", "think_time_s"),
    "trace": ("kind", "trace"),
}
_NEW_KEYS = ("kind", "prefix_groups", "requests_per_group", "sessions", "turns",
             "think_time_s", "trace")  # fmt: skip


def _workload_identity(cell: CellConfig, w: dict[str, Any]) -> dict[str, Any]:
    kind = cell.workload.kind
    keep = _KIND_KEYS[kind] if kind != "random" or cell.workload.prefix_groups else ()
    return {k: v for k, v in w.items() if k not in _NEW_KEYS or k in keep}


def _drop_empty_cards(sim: dict[str, Any]) -> None:
    """No simulated bad cards (the default): ids stay what they were before the keys."""
    for key in ("slow_cards", "hot_cards", "leaky_cards"):
        if not sim.get(key):
            sim.pop(key, None)


def identity(cell: CellConfig) -> dict[str, Any]:
    """The part of a cell's config that defines what is measured. Static cells leave out the
    serving settings, so their ids are what they were before serving cells existed."""
    d = plain(cell)
    d["model"].pop("cache_dir", None)
    d["bench"].pop("repeats", None)  # how many times, not what: repeat k has its own id
    for key in ("quality", "accuracy"):  # checks after the window: not what is timed
        d.pop(key, None)
    if not cell.bench.fresh_worker:  # the default: ids stay what they were before the key
        d["bench"].pop("fresh_worker", None)
    if cell.backend.hf.compile_backend == HFOptions.compile_backend:  # likewise (the default)
        d["backend"]["hf"].pop("compile_backend", None)
    if cell.model.path is not None:
        d["model"].pop("tiny", None)
    if cell.serving:
        return _serving_identity(cell, d)
    for key in ("concurrency", "request_rate", "workload", "server", "slo"):
        d.pop(key)
    # Options of backends the cell does not use do not matter.
    _drop_empty_cards(d["backend"]["sim"])
    backend = d["backend"]
    d["backend"] = {"name": backend["name"], **{backend["name"]: backend.get(backend["name"], {})}}
    return d


def model_key(cell: CellConfig) -> str:
    """What makes one loaded model different from another: backend, model fields and the
    backend's options. Cells with the same key reuse one loaded model on a device; serving
    cells with the same server settings reuse one running server."""
    if cell.serving:
        server = _serving_identity(cell, plain(cell))["server"]
        model = plain(cell.model)
        model.pop("cache_dir", None)
        bound = kv_bound(cell)  # a cell that needs a larger cache gets a server of its own
        return (
            f"serve|{sorted(model.items())!r}|{sorted(server.items())!r}|{cell.devices_per_cell}"
            f"|{bound}"
        )
    backend = cell.backend.name
    model = plain(cell.model)
    opts = plain(getattr(cell.backend, backend))
    return f"{backend}|{sorted(model.items())!r}|{sorted(opts.items())!r}"


def cell_id(cell: CellConfig) -> str:
    """16 hex digits; the same cell config always gives the same id."""
    blob = json.dumps(identity(cell), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


def safe_name(text: str) -> str:
    """A path component that cannot climb out of its parent directory."""
    name = _UNSAFE.sub("_", str(text)).strip("._") or "x"
    return name[:48]


def cell_dir_name(cell: CellConfig, cid: str | None = None) -> str:
    """Readable and unique: the axes first, then the id for everything else."""
    if cell.serving:
        load = [f"c{cell.concurrency}"] if cell.concurrency is not None else []
        load += [f"r{cell.request_rate:g}"] if cell.request_rate is not None else []
        parts = [safe_name(engine_name(cell)), *load]
    else:
        parts = [safe_name(cell.backend.name), f"b{cell.batch}"]
    parts = [safe_name(cell.model.name), *parts[:1], safe_name(cell.device.name), *parts[1:]]
    parts += [f"s{cell.seq}", f"p{cell.prompt_len}", (cid or cell_id(cell))[:8]]
    return "-".join(parts)


def engine_name(cell: CellConfig) -> str:
    """What ran the cell, as records and tables name it: the backend, or `serve-KIND`."""
    if cell.serving:
        return "serve-sim" if cell.backend.name == "sim" else f"serve-{cell.server.kind}"
    return cell.backend.name


_MODEL_KEYS: dict[str, str] = {}


@dataclass(frozen=True)
class PlannedCell:
    """A job turned into its cell, once, on the driver: everything a worker needs.

    With ``bench.repeats`` > 1 a cell is measured as repeats 0..N-1, each its own planned
    cell: its id hashes the repeat index too, its directory ends in ``-rK``, and
    ``repeat_of`` is the id the cell has without repeats (what the repeats summarise).

    In a fleet sweep (``hydra/sweeper=fleet``) a cell is measured once per card of the
    cluster: copy k is repeat k with its own id (hashing ``fleet=k``), a directory ending in
    ``-fK`` and ``fleet_of`` = the cell's own id, so tables fold the cards like repeats."""

    cell: CellConfig
    cell_id: str
    cell_dir: str
    model_key: str
    repeat: int | None = None
    repeat_of: str | None = None
    fleet_of: str | None = None

    @classmethod
    def of(cls, cell: CellConfig, repeat: int | None = None, fleet: bool = False) -> PlannedCell:
        base = cell_id(cell)
        key = model_key(cell)
        if len(_MODEL_KEYS) > 1024:  # a sweep of backend options: a key per cell
            _MODEL_KEYS.clear()
        key = _MODEL_KEYS.setdefault(key, key)  # one string per model: a sweep has few
        if repeat is None:
            return cls(cell, base, cell_dir_name(cell, base), key)
        what, mark = ("fleet", "f") if fleet else ("repeat", "r")
        cid = hashlib.sha256(f"{base}|{what}={repeat}".encode()).hexdigest()[:16]
        name = f"{cell_dir_name(cell, cid)}-{mark}{repeat}"
        return cls(cell, cid, name, key, repeat, base, base if fleet else None)

    def wire(self, config: dict[str, Any]) -> tuple:
        """This planned cell as it is sent to a worker: ``config`` (``plain(self.cell)``,
        made once per cell on the driver) and the other fields, plain values all. Pickling
        the cell's dataclasses costs a sweep's driver ~30 us a cell with pickle and ~80 us
        with cloudpickle, which Ray uses; these values 6-8 us (bench/record_write.py). The
        worker rebuilds the cell (:meth:`unwire`: ~0.2 ms there; a trace cell reads its
        trace file again, as it does to replay it)."""
        return (config, self.cell_id, self.cell_dir, self.model_key, self.repeat,
                self.repeat_of, self.fleet_of)  # fmt: skip

    @classmethod
    def unwire(cls, sent: PlannedCell | tuple) -> PlannedCell:
        """The planned cell a worker was sent (:meth:`wire`'s form, or the cell itself): its
        cell rebuilt from the plain values, field for field the driver's."""
        if isinstance(sent, cls):
            return sent
        config, *rest = sent
        return cls(from_values(config), *rest)

    def repeats(self) -> list[PlannedCell]:
        """This cell as its repeats (itself when bench.repeats is 1)."""
        n = self.cell.bench.repeats
        return [self] if n <= 1 else [PlannedCell.of(self.cell, k) for k in range(n)]
