"""Records -> tables: groups, cell marks, the article-shaped tables and batch x seq pivots.

Everything here returns :class:`Table` objects (headers + rows of strings); rendering to
Markdown is :func:`markdown`. Text conventions, used by every table and the report legend:
  —          the (batch, seq) cell is not in the sweep
  n/a        the cell ran but did not report this metric
  FAILED [n] / OOM [n]   the cell did not finish; reason n is listed below the table
  * † ‡ § ° ¶ ^  flags of the cell (see FLAG_MARKS)
  invalid    the cell reported an energy figure whose validity rules failed (never shown)
  no source  the cell had no energy source (none readable; serving cells: not measured)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from jobs.record import FLAG_MEANINGS as _MEANINGS

Record = dict[str, Any]

MISSING = "—"
NOT_REPORTED = "n/a"
SIMULATED = "SIMULATED"
NOT_VALID = "invalid"
NO_SOURCE = "no source"
# Energy reasons that mean there was nothing to measure with, not a figure that failed.
NO_SOURCE_REASONS = frozenset({"source_missing", "not_measured"})


def energy_state_text(rec: dict[str, Any]) -> str:
    """Why a record with ``energy_valid: false`` shows no energy figure: ``no source`` when
    it had none to read (source_missing, not_measured), else ``invalid``."""
    reasons = rec.get("energy_invalid_reasons")
    if isinstance(reasons, str):
        reasons = [r for r in reasons.split(";") if r]
    return NO_SOURCE if reasons and set(reasons) <= NO_SOURCE_REASONS else NOT_VALID


# Flag -> mark appended to a cell's numbers; what each flag means is jobs.record's.
FLAG_MARKS = {
    "unstable": "*",
    "above_bound": "†",
    "short_output": "‡",
    "too_brief": "§",
    "simulated": "°",
    "worker_lost": "!",
    "host_busy": "¤",
    "dirty_start": "¶",
    "throttled": "^",
    "usage_mismatch": "≠",
    "too_many_errors": "×",
    "batch_split": "÷",
    "divergent": "≉",
    "accuracy_low": "↓",
    "client_saturated": "~",
    "client_server_disagree": "≷",
    "shared_power_module": "½",
    "trace_late": "⧗",
}
FLAG_MEANINGS = {str(flag.value): f"{flag.value}: {text}" for flag, text in _MEANINGS.items()}
UNKNOWN_FLAG_MARK = "?"


def ok_number(rec: dict[str, Any] | None, key: str) -> float | None:
    """A metric of an ok record as a float; None for other records and non-numbers."""
    if rec is None or rec.get("status") != "ok":
        return None
    value = rec.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def fmt_tps(v: float) -> str:
    return f"{v:.1f}"


def fmt_s(v: float) -> str:
    return f"{v:.4f}"


def fmt_ms(v: float) -> str:
    return f"{v * 1e3:.3f}"


def fmt_mib(v: float) -> str:
    return f"{v / 2**20:.1f}"


@dataclass(frozen=True)
class Metric:
    title: str  # with its unit, e.g. "TTFT mean (ms)"
    key: str  # record key
    fmt: Callable[[float], str]
    valid: str | None = None  # record key that must be true for the value to be shown


# The batch x seq pivots of every group, in report order.
PIVOT_METRICS = (
    Metric("Output tokens/s", "output_tokens_per_s", fmt_tps),
    Metric("E2E latency p50 (s)", "e2e_s_p50", fmt_s),
    Metric("TTFT mean (ms)", "ttft_s_mean", fmt_ms),
    Metric("TPOT mean (ms)", "tpot_s_mean", fmt_ms),
    Metric("Peak memory (MiB)", "peak_memory_bytes", fmt_mib),
)


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)


def _md_cell(text: str) -> str:
    # `*` is a flag mark, not emphasis.
    return text.replace("|", "\\|").replace("*", "\\*").replace("\n", " ")


def markdown(table: Table, numeric: bool = True) -> str:
    """A GitHub-flavoured Markdown table; ``numeric``: right-align all but the first column."""
    head = "| " + " | ".join(_md_cell(h) for h in table.headers) + " |"
    align = "---:" if numeric else "---"
    rule = "|" + "|".join(["---"] + [align] * (len(table.headers) - 1)) + "|"
    body = ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join([head, rule, *body])


# --- groups -----------------------------------------------------------------------------


@dataclass(frozen=True, order=True)
class GroupKey:
    """Cells whose numbers belong in one batch x seq table."""

    model: str
    backend: str
    device: str
    dtype: str
    prompt_len: int

    @classmethod
    def of(cls, rec: Record) -> GroupKey:
        p = rec.get("prompt_len")
        return cls(
            model=str(rec.get("model")),
            backend=str(rec.get("backend")),
            device=str(rec.get("device")),
            dtype=str(rec.get("dtype")),
            prompt_len=p if isinstance(p, int) else -1,
        )

    def label(self) -> str:
        prompt = f"prompt {self.prompt_len}" if self.prompt_len >= 0 else "prompt ?"
        return " · ".join([self.model, self.backend, self.device, self.dtype, prompt])

    def slug(self) -> str:
        text = f"{self.model}-{self.backend}-{self.device}-{self.dtype}-p{self.prompt_len}"
        return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "group"


def group_records(records: Iterable[Record]) -> dict[GroupKey, list[Record]]:
    groups: dict[GroupKey, list[Record]] = {}
    for rec in records:
        groups.setdefault(GroupKey.of(rec), []).append(rec)
    return dict(sorted(groups.items()))


def is_simulated(rec: Record) -> bool:
    return rec.get("simulated") is True or "simulated" in (rec.get("flags") or [])


def sim_suffix(records: Iterable[Record]) -> str:
    """' — SIMULATED' when any of the records is simulated, else ''."""
    return f" — {SIMULATED}" if any(is_simulated(r) for r in records) else ""


def flags_of(rec: Record) -> list[str]:
    flags = list(rec.get("flags") or [])
    if rec.get("simulated") is True and "simulated" not in flags:
        flags.append("simulated")
    return flags


def marks(rec: Record) -> str:
    return "".join(FLAG_MARKS.get(f, UNKNOWN_FLAG_MARK) for f in flags_of(rec))


def status_label(rec: Record) -> str:
    status = rec.get("status")
    return {"failed": "FAILED", "oom": "OOM"}.get(str(status), str(status).upper())


def error_text(rec: Record, limit: int = 160) -> str:
    """'Type: first line of the message', shortened; '' when the record has no error."""
    err = rec.get("error")
    if not err:
        return ""
    if isinstance(err, dict):
        message = str(err.get("message") or "").strip().splitlines()
        text = f"{err.get('type') or 'Error'}: {message[0] if message else ''}".rstrip(": ")
    else:
        text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class FailureNotes:
    """Numbers the cells that did not finish, so tables can point at their reasons."""

    def __init__(self, records: Sequence[Record]) -> None:
        self._failed = [r for r in records if r.get("status") != "ok"]
        self._num = {id(r): i for i, r in enumerate(self._failed, start=1)}

    def ref(self, rec: Record) -> str:
        return f"{status_label(rec)} [{self._num.get(id(rec), '?')}]"

    def lines(self) -> list[str]:
        out = []
        for i, rec in enumerate(self._failed, start=1):
            reason = error_text(rec) or "no error recorded"
            out.append(
                f"[{i}] batch {rec['batch']}, seq {rec['seq']} — {status_label(rec)} "
                f"(cell `{rec.get('cell_dir') or rec['cell_id']}`): {reason}"
            )
        return out


def value_text(rec: Record | None, metric: Metric, notes: FailureNotes) -> str:
    if rec is None:
        return MISSING
    if rec.get("status") != "ok":
        return notes.ref(rec)
    value = rec.get(metric.key)
    if metric.valid is not None and rec.get(metric.valid) is False:
        return energy_state_text(rec)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return NOT_REPORTED
    if metric.valid is not None and rec.get(metric.valid) is not True:
        return NOT_REPORTED
    return metric.fmt(value) + marks(rec)


def _finished(rec: Record) -> str:
    return str(rec.get("finished_at") or "")


def cell_map(records: Iterable[Record]) -> dict[tuple[int, int], Record]:
    """(batch, seq) -> the record shown there: an ok one if any, then the latest finished."""
    best: dict[tuple[int, int], Record] = {}
    for rec in records:
        key = (rec["batch"], rec["seq"])
        old = best.get(key)
        if old is None or (rec.get("status") == "ok", _finished(rec)) > (
            old.get("status") == "ok",
            _finished(old),
        ):
            best[key] = rec
    return best


def duplicate_count(records: Sequence[Record]) -> int:
    """Records hidden by :func:`cell_map` because another one holds their (batch, seq)."""
    return len(records) - len(cell_map(records))


# --- tables -----------------------------------------------------------------------------


def pivot(records: Sequence[Record], metric: Metric, notes: FailureNotes) -> Table:
    """Rows: batch; columns: seq; cells missing from the grid are '—'."""
    cells = cell_map(records)
    batches = sorted({b for b, _ in cells})
    seqs = sorted({s for _, s in cells})
    table = Table(["batch \\ seq", *(str(s) for s in seqs)])
    for b in batches:
        table.rows.append([str(b), *(value_text(cells.get((b, s)), metric, notes) for s in seqs)])
    return table


LATENCY = Metric("latency s", "e2e_s_mean", fmt_s)
THROUGHPUT = Metric("throughput tokens/s", "output_tokens_per_s", fmt_tps)


def sweep_seq(records: Sequence[Record]) -> int:
    """The seq of the article's batch-sweep table: 128 if present, else the fullest seq."""
    seqs = [r["seq"] for r in records]
    if 128 in seqs:
        return 128
    return min(set(seqs), key=lambda s: (-seqs.count(s), s))


def article_batch_sweep(records: Sequence[Record], notes: FailureNotes) -> tuple[int, Table]:
    """The article's first table at one seq: batch, seq_len, latency s, throughput tokens/s."""
    seq = sweep_seq(records)
    cells = cell_map(r for r in records if r["seq"] == seq)
    table = Table(["batch", "seq_len", "latency s", "throughput tokens/s"])
    for (b, s), rec in sorted(cells.items()):
        table.rows.append(_article_row(b, s, rec, notes))
    return seq, table


def article_stress(records: Sequence[Record], notes: FailureNotes) -> Table:
    """The article's stress matrix: batch, seq, average latency s, average throughput."""
    table = Table(["batch", "seq", "average latency s", "average throughput tokens/s"])
    for (b, s), rec in sorted(cell_map(records).items()):
        table.rows.append(_article_row(b, s, rec, notes))
    return table


def _article_row(b: int, s: int, rec: Record, notes: FailureNotes) -> list[str]:
    if rec.get("status") != "ok":
        return [str(b), str(s), notes.ref(rec), MISSING]
    return [str(b), str(s), value_text(rec, LATENCY, notes), value_text(rec, THROUGHPUT, notes)]


def legend(records: Iterable[Record]) -> list[str]:
    """One line per flag that occurs in the records (unknown flags included)."""
    seen: list[str] = []
    for rec in records:
        seen += [f for f in flags_of(rec) if f not in seen]
    out = []
    for flag in sorted(seen, key=lambda f: (f not in FLAG_MARKS, f)):
        mark = FLAG_MARKS.get(flag, UNKNOWN_FLAG_MARK)
        out.append(f"`{mark}` {FLAG_MEANINGS.get(flag, flag + ': flag not known to this report')}")
    return out
