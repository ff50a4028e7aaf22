"""Cell-by-cell comparison of two sweeps (new vs baseline), for humans and for CI gates.

Cells are matched by ``cell_id``; a new cell whose id is not in the baseline is matched on
(model, backend, device, dtype, batch, seq, prompt_len) instead. For each matched pair of ok
cells, the change of output tokens/s and of E2E p50 is compared with a band:

    noise_pct = 2 * max(e2e_cv_new, e2e_cv_old) * 100
    band_pct  = max(threshold_pct, noise_pct)

A change counts only beyond the band: a regression is tokens/s down by more than band_pct,
E2E p50 up by more than band_pct, or energy per output token up by more than band_pct (only
where both records say ``energy_valid: true``); an improvement is the reverse (and no
regression). A cell that was ok in the baseline and is failed/oom now is a regression too.
Cells only in one of the sweeps are listed but not counted.

Repeats (records with ``repeat_of``) are folded into one summary per cell first
(aggregate/answers/confidence.py). When a matched pair has 95% confidence intervals, on one
side or both, the intervals decide instead of the CV band: a change counts only when it lies
outside them (no overlap; or a single value outside the other side's interval) and is larger
than threshold_pct; a change within the intervals is noise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aggregate.answers.confidence import ci_call, fold_repeats
from aggregate.render.energy import fmt_j, valid_number
from aggregate.tables import (
    MISSING,
    Table,
    fmt_s,
    fmt_tps,
    is_simulated,
    markdown,
    ok_number,
    status_label,
)

Record = dict[str, Any]

REGRESSION = "REGRESSION"
IMPROVED = "improved"
WITHIN_NOISE = "within noise"
FIXED = "fixed"
STILL_FAILING = "still not ok"
NEW_ONLY = "new cell"
OLD_ONLY = "missing in new"


@dataclass
class CompareRow:
    label: str  # model · backend · device · dtype
    batch: int
    seq: int
    prompt_len: Any
    match: str  # "cell_id", "axes" or "" (unmatched)
    old_status: str | None
    new_status: str | None
    old_tokens_per_s: float | None
    new_tokens_per_s: float | None
    tokens_per_s_delta_pct: float | None
    old_e2e_s_p50: float | None
    new_e2e_s_p50: float | None
    e2e_s_p50_delta_pct: float | None
    old_j_per_token: float | None
    new_j_per_token: float | None
    j_per_token_delta_pct: float | None  # only when both energy figures are valid
    noise_pct: float | None
    band_pct: float
    verdict: str
    simulated: bool
    method: str = "CV"  # what judged the change: "CV" (the noise band) or "95% CI"

    @property
    def regression(self) -> bool:
        return self.verdict == REGRESSION


def axes_key(rec: Record) -> tuple:
    return tuple(
        rec.get(k) for k in ("model", "backend", "device", "dtype", "batch", "seq", "prompt_len")
    )


def _cv(rec: Record) -> float:
    cv = ok_number(rec, "e2e_cv")
    if cv is None:
        mean, sd = ok_number(rec, "e2e_s_mean"), ok_number(rec, "e2e_s_stdev")
        cv = sd / mean if mean and sd is not None else 0.0
    return abs(cv)


def _delta(new: float | None, old: float | None) -> float | None:
    if new is None or old is None or old <= 0:
        return None
    return (new - old) / old * 100.0


def match_records(
    new: Sequence[Record], old: Sequence[Record]
) -> list[tuple[Record | None, Record | None, str]]:
    """(new, old, how) for every cell of both sweeps; unmatched ones have None on a side."""
    by_id: dict[str, list[Record]] = {}
    by_axes: dict[tuple, list[Record]] = {}
    for rec in old:
        by_id.setdefault(rec["cell_id"], []).append(rec)
        by_axes.setdefault(axes_key(rec), []).append(rec)
    used: set[int] = set()
    pairs: list[tuple[Record | None, Record | None, str]] = []
    pending = []
    for rec in new:
        cand = [r for r in by_id.get(rec["cell_id"], []) if id(r) not in used]
        if cand:
            used.add(id(cand[0]))
            pairs.append((rec, cand[0], "cell_id"))
        else:
            pending.append(rec)
    for rec in pending:  # ids differ: fall back to the axes, after every id match is taken
        cand = [r for r in by_axes.get(axes_key(rec), []) if id(r) not in used]
        cand.sort(key=lambda r: (r.get("status") == "ok", str(r.get("finished_at") or "")))
        if cand:
            used.add(id(cand[-1]))
            pairs.append((rec, cand[-1], "axes"))
        else:
            pairs.append((rec, None, ""))
    pairs += [(None, r, "") for r in old if id(r) not in used]
    return pairs


def _verdict(
    new: Record | None,
    old: Record | None,
    tps: float | None,
    e2e: float | None,
    band: float,
    jpt: float | None = None,
) -> str:
    if old is None:
        return NEW_ONLY
    if new is None:
        return OLD_ONLY
    new_ok, old_ok = new.get("status") == "ok", old.get("status") == "ok"
    if old_ok and not new_ok:
        return REGRESSION
    if not new_ok:
        return STILL_FAILING
    if not old_ok:
        return FIXED
    if (tps is not None and tps < -band) or (e2e is not None and e2e > band):
        return REGRESSION
    if jpt is not None and jpt > band:
        return REGRESSION
    if (tps is not None and tps > band) or (e2e is not None and e2e < -band):
        return IMPROVED
    if jpt is not None and jpt < -band:
        return IMPROVED
    return WITHIN_NOISE


def _row(new: Record | None, old: Record | None, how: str, threshold_pct: float) -> CompareRow:
    rec = new if new is not None else old
    assert rec is not None
    both_ok = new is not None and old is not None and "ok" == new["status"] == old["status"]
    noise = 2.0 * max(_cv(new), _cv(old)) * 100.0 if both_ok else None  # type: ignore[arg-type]
    ci = ci_call(new, old, threshold_pct) if both_ok else None  # type: ignore[arg-type]
    if ci is not None:
        noise = None
    band = max(threshold_pct, noise or 0.0)
    tps = _delta(ok_number(new, "output_tokens_per_s"), ok_number(old, "output_tokens_per_s"))
    e2e = _delta(ok_number(new, "e2e_s_p50"), ok_number(old, "e2e_s_p50"))
    jpt_key = "energy_j_per_output_token"
    jpt = _delta(valid_number(new, jpt_key), valid_number(old, jpt_key))
    if ci is None:
        verdict = _verdict(new, old, tps, e2e, band, jpt)
    else:
        verdict = REGRESSION if ci.worse else IMPROVED if ci.better else WITHIN_NOISE
    return CompareRow(
        label=" · ".join(str(rec.get(k)) for k in ("model", "backend", "device", "dtype")),
        batch=rec["batch"],
        seq=rec["seq"],
        prompt_len=rec.get("prompt_len"),
        match=how,
        old_status=None if old is None else str(old.get("status")),
        new_status=None if new is None else str(new.get("status")),
        old_tokens_per_s=ok_number(old, "output_tokens_per_s"),
        new_tokens_per_s=ok_number(new, "output_tokens_per_s"),
        tokens_per_s_delta_pct=tps,
        old_e2e_s_p50=ok_number(old, "e2e_s_p50"),
        new_e2e_s_p50=ok_number(new, "e2e_s_p50"),
        e2e_s_p50_delta_pct=e2e,
        old_j_per_token=valid_number(old, jpt_key),
        new_j_per_token=valid_number(new, jpt_key),
        j_per_token_delta_pct=jpt,
        noise_pct=noise,
        band_pct=band,
        verdict=verdict,
        simulated=any(is_simulated(r) for r in (new, old) if r is not None),
        method="CV" if ci is None else "95% CI",
    )


def compare(
    new_records: Sequence[Record], old_records: Sequence[Record], threshold_pct: float = 5.0
) -> tuple[list[CompareRow], int]:
    """(one row per cell of either sweep, number of regressions)."""
    if threshold_pct < 0:
        raise ValueError(f"threshold_pct={threshold_pct!r} must be >= 0")
    pairs = match_records(fold_repeats(new_records), fold_repeats(old_records))
    rows = [_row(n, o, how, threshold_pct) for n, o, how in pairs]
    rows.sort(key=lambda r: (r.label, str(r.prompt_len), r.batch, r.seq))
    return rows, sum(r.regression for r in rows)


def _pct(v: float | None) -> str:
    return MISSING if v is None else f"{v:+.1f}%"


def _val(v: float | None, status: str | None, fmt: Any) -> str:
    if status is None:
        return MISSING
    if status != "ok":
        return status_label({"status": status})
    return "n/a" if v is None else fmt(v)


def _noise(r: CompareRow) -> str:
    if r.method != "CV":
        return r.method
    return MISSING if r.noise_pct is None else f"{r.noise_pct:.1f}%"


def compare_markdown(rows: Sequence[CompareRow], preamble: Sequence[str] = ()) -> str:
    """compare.md: counts, the rule used, and one table row per cell; ``preamble``:
    Markdown lines put first (e.g. how the two environments differ)."""
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.verdict] = counts.get(r.verdict, 0) + 1
    n_reg = counts.get(REGRESSION, 0)
    sim = any(r.simulated for r in rows)
    lines = ["# Sweep comparison: new vs baseline" + (" — SIMULATED" if sim else ""), ""]
    if sim:
        lines += ["> **SIMULATED**: some cells come from the simulator, not measurements.", ""]
    lines += list(preamble)
    lines += [
        f"**{n_reg} regression(s)**; " + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())),
        "",
        "A change counts only beyond band = max(threshold, noise), noise = "
        "2 x max(E2E CV new, old). Regression: output tokens/s down, or E2E p50 up, or J per "
        "output token up (both energy figures valid), by more than the band; or a cell ok in "
        "the baseline that is not ok now. J/tok `n/a`: no valid energy figure on that side. "
        "Cells with repeats are judged by their 95% confidence intervals instead (noise = "
        "95% CI): a change counts only outside the intervals and beyond the threshold.",
        "",
    ]
    regressions = [r for r in rows if r.regression]
    if regressions:
        lines += ["Regressions:", ""]
        for r in regressions:
            change = (
                f"{r.old_status} -> {r.new_status}"
                if r.new_status != "ok"
                else f"tok/s {_pct(r.tokens_per_s_delta_pct)}, "
                f"E2E p50 {_pct(r.e2e_s_p50_delta_pct)}, "
                f"J/tok {_pct(r.j_per_token_delta_pct)} (band {r.band_pct:.1f}%)"
            )
            lines.append(f"- {r.label}, batch {r.batch}, seq {r.seq}: {change}")
        lines.append("")
    table = Table(
        ["cell", "batch", "seq", "prompt", "match", "tok/s old", "tok/s new", "Δ tok/s",
         "e2e p50 old s", "e2e p50 new s", "Δ e2e p50", "J/tok old", "J/tok new", "Δ J/tok",
         "noise", "band", "verdict"]
    )  # fmt: skip
    for r in rows:
        table.rows.append(
            [
                r.label + (" (SIMULATED)" if r.simulated else ""),
                str(r.batch),
                str(r.seq),
                str(r.prompt_len),
                r.match or MISSING,
                _val(r.old_tokens_per_s, r.old_status, fmt_tps),
                _val(r.new_tokens_per_s, r.new_status, fmt_tps),
                _pct(r.tokens_per_s_delta_pct),
                _val(r.old_e2e_s_p50, r.old_status, fmt_s),
                _val(r.new_e2e_s_p50, r.new_status, fmt_s),
                _pct(r.e2e_s_p50_delta_pct),
                _val(r.old_j_per_token, r.old_status, fmt_j),
                _val(r.new_j_per_token, r.new_status, fmt_j),
                _pct(r.j_per_token_delta_pct),
                _noise(r),
                f"{r.band_pct:.1f}%",
                r.verdict,
            ]
        )
    lines += [markdown(table), ""]
    return "\n".join(lines)
