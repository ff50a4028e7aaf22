"""Serving records: which records are served, their load, and the curves (one per server
settings) their load levels make.

A serving record has ``workload == "serve"``; its load is ``concurrency`` (closed loop) or
``request_rate`` (open loop).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]


def is_serving(rec: Mapping[str, Any]) -> bool:
    """A record of a serving cell: ``workload == "serve"`` (a load against a server)."""
    return rec.get("workload") == "serve"


def split(records: Iterable[Record]) -> tuple[list[Record], list[Record]]:
    """(static records, serving records)."""
    static, serving = [], []
    for rec in records:
        (serving if is_serving(rec) else static).append(rec)
    return static, serving


def load_label(rec: Mapping[str, Any]) -> str:
    """`4` (a static batch), `c4` (concurrency), `r2.5` (rate), `r2.5c8` (rate, capped)."""
    if not is_serving(rec):
        return str(rec.get("batch"))
    if rec.get("workload_kind") == "trace":  # the trace is the load
        return "trace"
    rate, conc = rec.get("request_rate"), rec.get("concurrency")
    text = f"r{rate:g}" if isinstance(rate, (int, float)) else ""
    return text + (f"c{conc}" if conc is not None else "")


def load_value(rec: Mapping[str, Any]) -> float:
    """The x of a load curve: the rate of an open loop, else the concurrency."""
    rate = rec.get("request_rate")
    return float(rate) if isinstance(rate, (int, float)) else float(rec.get("concurrency") or 0)


@dataclass(frozen=True, order=True)
class ServingKey:
    """Cells of one server settings whose load levels make one curve."""

    model: str
    settings: str
    device: str
    dtype: str
    prompt_len: int
    seq: int
    loop: str  # closed | open | conversation | trace (the workload kinds make their own curves)

    @classmethod
    def of(cls, rec: Record) -> ServingKey:
        return cls(
            str(rec.get("model")), str(rec.get("server_settings") or rec.get("backend")),
            str(rec.get("device")), str(rec.get("dtype")), int(rec.get("prompt_len") or -1),
            int(rec.get("seq") or -1), _loop(rec),
        )  # fmt: skip

    def label(self) -> str:
        return " · ".join([self.model, self.settings, self.device, self.dtype,
                           f"prompt {self.prompt_len}", f"seq {self.seq}", f"{self.loop} loop"])  # fmt: skip

    def slug(self) -> str:
        text = f"serve-{self.model}-{self.settings}-{self.device}-p{self.prompt_len}-s{self.seq}"
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{text}-{self.loop}").strip("._")[:120]


def _loop(rec: Record) -> str:
    kind = rec.get("workload_kind")
    if kind in ("conversation", "trace"):
        return str(kind)
    return "open" if rec.get("request_rate") else "closed"


def serving_groups(records: Iterable[Record]) -> dict[ServingKey, list[Record]]:
    groups: dict[ServingKey, list[Record]] = {}
    for rec in records:
        if is_serving(rec):
            groups.setdefault(ServingKey.of(rec), []).append(rec)
    return {k: sorted(v, key=load_value) for k, v in sorted(groups.items())}
