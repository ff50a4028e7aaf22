"""PNG plots per group (headless: matplotlib's Figure + Agg, never pyplot's global state).

Per group, with one line per seq and batch on a log2 axis:
  <slug>-throughput.png  output tokens/s (dashed: the hardware bound, when records carry it)
  <slug>-e2e.png         E2E latency p50, band up to p99
  <slug>-ttft-tpot.png   TTFT mean and TPOT mean
  <slug>-memory.png      peak memory
  <slug>-energy.png      output tokens per joule and energy per output token (valid only)
and, when the sweep has two or more groups, compare-throughput.png (one panel per seq);
pareto.png and oom-frontier.png come from render/plots/answers.py. Where the bound is more
than LOG_BOUND_RATIO x the measured tokens/s (a CPU), the throughput axis is logarithmic.
Only ok cells are drawn; flagged cells (unstable, host_busy, ...) get a red ring, their table
marks and a legend entry (render/plots/flagged.py); titles say how many cells are left out and carry SIMULATED when
any cell of the figure is simulated.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aggregate.answers.compute import Answers
from aggregate.render.plots.answers import answer_plots
from aggregate.render.plots.flagged import mark_flagged
from aggregate.render.plots.names import COMPARE_FIGURE, GROUP_FIGURES, PLOT_DIR, plot_name
from aggregate.render.plots.save import save_png
from aggregate.render.plots.serving import serving_plots
from aggregate.serving import split
from aggregate.tables import SIMULATED, GroupKey, cell_map, group_records, is_simulated, ok_number

log = logging.getLogger(__name__)

Record = dict[str, Any]
MIB = 2**20


def _series(recs: Sequence[Record], key: str, scale: float = 1.0) -> dict[int, list[tuple]]:
    """seq -> [(batch, value * scale)] over ok cells that report ``key``."""
    out: dict[int, list[tuple]] = {}
    for (b, s), rec in sorted(cell_map(recs).items()):
        value = ok_number(rec, key)
        if value is not None:
            out.setdefault(s, []).append((b, value * scale))
    return out


def _flagged_points(recs: Sequence[Record], key: str, scale: float) -> list[tuple]:
    """(batch, value * scale, record) of the drawn cells, for :func:`mark_flagged`."""
    out = []
    for (b, _), rec in sorted(cell_map(recs).items()):
        value = ok_number(rec, key)
        if value is not None:
            out.append((b, value * scale, rec))
    return out


def _title(label: str, what: str, recs: Sequence[Record]) -> str:
    sim = f" — {SIMULATED}" if any(is_simulated(r) for r in recs) else ""
    left_out = sum(r.get("status") != "ok" for r in recs)
    note = f" ({left_out} cell(s) not ok, not drawn)" if left_out else ""
    return f"{what}{sim}\n{label}{note}"


def _log2_batch_axis(ax: Any, batches: Sequence[int]) -> None:
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(batches))))
    ax.set_xticklabels([str(b) for b in sorted(set(batches))])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("batch size (sequences per call, log2 axis)")
    ax.grid(True, alpha=0.3)


def _draw(ax: Any, recs: Sequence[Record], key: str, scale: float, ylabel: str) -> bool:
    """One line per seq; returns False when there is nothing to draw."""
    series = _series(recs, key, scale)
    seqs = sorted({r["seq"] for r in recs})
    for seq, points in series.items():
        xs, ys = zip(*points, strict=True)
        ax.plot(xs, ys, marker="o", color=f"C{seqs.index(seq) % 10}", label=f"seq {seq}")
    mark_flagged(ax, _flagged_points(recs, key, scale))
    batches = [b for pts in series.values() for b, _ in pts]
    if batches:
        _log2_batch_axis(ax, batches)
        ax.set_ylabel(ylabel)
    return bool(batches)


# A bound this many times above the measured tokens/s puts the measured curves on a log axis.
LOG_BOUND_RATIO = 5.0


def _throughput(ax: Any, recs: Sequence[Record]) -> bool:
    drawn = _draw(ax, recs, "output_tokens_per_s", 1.0, "output tokens/s")
    seqs = sorted({r["seq"] for r in recs})
    bounds = _series(recs, "bound_output_tokens_per_s")
    for seq, points in bounds.items():
        xs, ys = zip(*points, strict=True)
        color = f"C{seqs.index(seq) % 10}"
        ax.plot(xs, ys, linestyle="--", color=color, alpha=0.6, label=f"bound, seq {seq}")
    measured = [v for pts in _series(recs, "output_tokens_per_s").values() for _, v in pts]
    top = max((v for pts in bounds.values() for _, v in pts), default=0.0)
    if drawn and measured and min(measured) > 0 and top > LOG_BOUND_RATIO * max(measured):
        ax.set_yscale("log")  # else the measured curves are flat lines at the bottom
        ax.set_ylabel(f"output tokens/s (log scale: bound up to {top / max(measured):.0f}x)")
    return drawn


def _e2e(ax: Any, recs: Sequence[Record]) -> bool:
    drawn = _draw(ax, recs, "e2e_s_p50", 1.0, "E2E latency per call (s)")
    p99 = _series(recs, "e2e_s_p99")
    seqs = sorted({r["seq"] for r in recs})
    for seq, points in _series(recs, "e2e_s_p50").items():
        top = dict(p99.get(seq, []))
        xs = [b for b, _ in points if b in top]
        if xs:
            lo = [v for b, v in points if b in top]
            color = f"C{seqs.index(seq) % 10}"
            ax.fill_between(xs, lo, [top[b] for b in xs], color=color, alpha=0.15)
    return drawn


def _energy_panels(recs: Sequence[Record]) -> list:
    """Energy per token vs batch, drawn from cells whose energy figure is valid only."""
    valid = [r for r in recs if r.get("energy_valid") is True]
    left_out = sum(r.get("status") == "ok" and r.get("energy_valid") is not True for r in recs)
    note = f" ({left_out} ok cell(s) without valid energy, not drawn)" if left_out else ""
    return [
        (
            "Output tokens per joule vs batch" + note,
            lambda ax, r: _draw(ax, valid, "output_tokens_per_j", 1.0, "output tokens/J"),
        ),
        (
            "Energy per output token vs batch" + note,
            lambda ax, r: _draw(ax, valid, "energy_j_per_output_token", 1.0, "J per output token"),
        ),
    ]


def group_plots(key: GroupKey, recs: Sequence[Record], plot_dir: Path) -> dict[str, str]:
    """The figures of one group; {} when the group has no ok cell to draw."""
    from matplotlib.figure import Figure

    label = key.label()
    out: dict[str, str] = {}
    panels: dict[str, list] = {
        "throughput": [("Output tokens/s vs batch", _throughput)],
        "e2e": [("E2E latency p50 vs batch (band: p50 to p99)", _e2e)],
        "ttft-tpot": [
            ("TTFT mean vs batch", lambda ax, r: _draw(ax, r, "ttft_s_mean", 1e3, "TTFT (ms)")),
            ("TPOT mean vs batch", lambda ax, r: _draw(ax, r, "tpot_s_mean", 1e3, "TPOT (ms)")),
        ],
        "memory": [
            (
                "Peak memory vs batch",
                lambda ax, r: _draw(ax, r, "peak_memory_bytes", 1 / MIB, "peak memory (MiB)"),
            )
        ],
        "energy": _energy_panels(recs),
    }
    for name in GROUP_FIGURES:
        specs = panels[name]
        fig = Figure(figsize=(6.5 * len(specs), 4.6), layout="constrained")
        axes = fig.subplots(1, len(specs), squeeze=False)[0]
        drawn = False
        for ax, (what, draw) in zip(axes, specs, strict=True):
            if draw(ax, recs):
                drawn = True
                if ax.get_yscale() == "linear":
                    ax.set_ylim(bottom=0)  # after every line, so the top still fits them all
            ax.set_title(_title(label, what, recs), fontsize=10)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=8)
        if drawn:
            rel = plot_name(key, name)
            out[rel] = save_png(fig, plot_dir / Path(rel).name)
    return out


def compare_plot(groups: dict[GroupKey, list[Record]], plot_dir: Path) -> dict[str, str]:
    """Output tokens/s of every group, one panel per seq (only with two or more groups)."""
    from matplotlib.figure import Figure

    if len(groups) < 2:
        return {}
    all_recs = [r for recs in groups.values() for r in recs]
    seqs = sorted({r["seq"] for r in all_recs})
    ncols = min(3, len(seqs))
    nrows = -(-len(seqs) // ncols)
    fig = Figure(figsize=(5.5 * ncols, 4.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    sim = f" — {SIMULATED}" if any(is_simulated(r) for r in all_recs) else ""
    fig.suptitle(f"Output tokens/s by group{sim}")
    for ax, seq in zip(axes, seqs, strict=False):
        batches: list[int] = []
        for i, (key, recs) in enumerate(groups.items()):
            at_seq = [r for r in recs if r["seq"] == seq]
            for pts in _series(at_seq, "output_tokens_per_s").values():
                xs, ys = zip(*pts, strict=True)
                batches += xs
                ax.plot(xs, ys, marker="o", color=f"C{i % 10}", label=key.label())
            mark_flagged(ax, _flagged_points(at_seq, "output_tokens_per_s", 1.0))
        ax.set_title(f"seq {seq}", fontsize=10)
        if batches:
            _log2_batch_axis(ax, batches)
            ax.set_ylabel("output tokens/s")
            ax.set_ylim(bottom=0)
            ax.legend(fontsize=7)
    for ax in axes[len(seqs) :]:
        ax.set_visible(False)
    return {COMPARE_FIGURE: save_png(fig, plot_dir / Path(COMPARE_FIGURE).name)}


def write_plots(
    sweep_dir: str | os.PathLike[str], records: Sequence[Record], answers: Answers
) -> dict[str, str]:
    """All figures under SWEEP/plots/ (``answers``: computed from ``records``); PNGs there
    that this run did not draw are removed."""
    plot_dir = Path(sweep_dir) / PLOT_DIR
    plot_dir.mkdir(parents=True, exist_ok=True)
    static, serving = split(records)
    groups = group_records(static)
    out: dict[str, str] = {}
    for key, recs in groups.items():
        out.update(group_plots(key, recs, plot_dir))
    out.update(compare_plot(groups, plot_dir))
    out.update(serving_plots(serving, plot_dir))
    out.update(answer_plots(answers, plot_dir))
    kept = {Path(p).name for p in out.values()}
    for stale in plot_dir.glob("*.png"):
        if stale.name not in kept:
            log.info("removing stale plot %s", stale)
            stale.unlink()
    return out
