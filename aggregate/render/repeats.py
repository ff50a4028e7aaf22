"""The report section of cells measured several times: means and 95% confidence intervals
(from records folded by :func:`aggregate.answers.confidence.fold_repeats`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aggregate.answers.confidence import interval_of
from aggregate.tables import MISSING, SIMULATED, GroupKey, Table, is_simulated, markdown, marks

Record = dict[str, Any]

# (column title, record key, scale, format)
_SHOWN = (
    ("out tok/s", "output_tokens_per_s", 1.0, ".1f"),
    ("E2E p50 s", "e2e_s_p50", 1.0, ".4f"),
    ("TPOT mean ms", "tpot_s_mean", 1e3, ".3f"),
)


def _ci_text(rec: Record, key: str, scale: float, spec: str) -> list[str]:
    iv = interval_of(rec, key)
    value = rec.get(key)
    mean = MISSING if not isinstance(value, (int, float)) else format(value * scale, spec)
    if iv is None:
        return [mean, MISSING]
    half = iv.half_pct
    pct = "" if half is None else f" (±{half:.1f}%)"
    return [mean, f"{iv.lo * scale:{spec}} – {iv.hi * scale:{spec}}{pct}"]


def repeats_section(folded: Sequence[Record]) -> list[str]:
    """``folded``: the records that summarise repeats (``Answers.repeats``); [] when none."""
    if not folded:
        return []
    headers = ["group", "batch", "seq", "repeats ok"]
    for title, *_ in _SHOWN:
        headers += [f"{title} mean", f"{title} 95% CI"]
    table = Table(headers)
    for rec in sorted(
        folded, key=lambda r: (GroupKey.of(r), r.get("seq") or 0, r.get("batch") or 0)
    ):
        sim = f" ({SIMULATED})" if is_simulated(rec) else ""
        row = [GroupKey.of(rec).label() + sim, str(rec.get("batch")), str(rec.get("seq")),
               f"{rec.get('repeats_ok')} / {rec['repeats']}{marks(rec)}"]  # fmt: skip
        for _, key, scale, spec in _SHOWN:
            row += _ci_text(rec, key, scale, spec)
        table.rows.append(row)
    n_records = sum(r["repeats"] for r in folded)
    return [
        "### Repeats: 95% confidence intervals",
        "",
        f"{len(folded)} cell(s) measured several times ({n_records} records), shown in every "
        "table as the mean over their ok repeats. Interval of the mean over repeats, Student's "
        "t with n - 1 degrees of freedom: mean ± t(0.975, n - 1) · s / √n (s: the sample "
        "stdev of the repeats' values; each repeat is one draw). `--baseline` calls a change "
        "within these intervals noise.",
        "",
        markdown(table),
        "",
    ]
