"""Figures of the answers: the Pareto front and the out-of-memory frontier map.

Headless like plots/static.py (matplotlib's Figure + Agg, no pyplot state).
  plots/pareto.png        one panel per (model, prompt length, workload); a colour per seq;
                          filled points on the front (joined), hollow points dominated;
                          flagged cells ringed (render/plots/flagged.py)
  plots/oom-frontier.png  one panel per group: a mark per (seq, batch) cell by status and
                          the frontier between the largest batch that ran and the smallest OOM
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aggregate.answers.compute import Answers
from aggregate.answers.frontier import FrontierRow
from aggregate.answers.pareto import Fronts, Point, Workload
from aggregate.render.plots.flagged import mark_flagged
from aggregate.render.plots.names import FRONTIER_FIGURE, PARETO_FIGURE
from aggregate.render.plots.save import save_png
from aggregate.tables import SIMULATED

MAX_PANELS = 12
_STATUS_STYLE = {  # status -> (marker, colour, label)
    "ok": ("o", "tab:green", "ran (ok)"),
    "above": ("^", "tab:purple", "ran, above its bound"),
    "oom": ("X", "tab:red", "out of memory"),
    "failed": ("s", "tab:orange", "failed (not OOM)"),
}


def _grid(n: int, width: float, height: float) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    ncols = min(3, n)
    nrows = -(-n // ncols)
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False).ravel())
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _wide(values: Sequence[float]) -> bool:
    """Values spread over more than 20x: a log axis keeps the small ones readable."""
    pos = [v for v in values if v > 0]
    return bool(pos) and max(pos) / min(pos) > 20


def short_labels(points: Sequence[Point]) -> tuple[dict[int, str], str]:
    """(id(point) -> its label without the words all points share, the shared words)."""
    words = [p.label.split() for p in points]
    shared = set.intersection(*(set(w) for w in words)) if words else set()
    labels = {}
    for p, w in zip(points, words, strict=True):
        labels[id(p)] = " ".join(x for x in w if x not in shared) or w[-1]
    return labels, " ".join(x for x in (words[0] if words else []) if x in shared)


def _pareto_panel(ax: Any, title: str, works: list[tuple[Workload, list[Point]]]) -> None:
    labels, shared = short_labels([p for _, points in works for p in points])
    ax.set_title(f"{title} · {shared}" if shared else title, fontsize=10)
    xs: list[float] = []
    ys: list[float] = []
    for i, (work, points) in enumerate(works):
        color = f"C{i % 10}"
        front = sorted((p for p in points if p.on_front), key=lambda p: p.x)
        dominated = [p for p in points if not p.on_front]
        ax.plot([p.x for p in front], [p.y for p in front], "o-", color=color,
                label=f"seq {work.seq}: front")  # fmt: skip
        if dominated:
            ax.scatter([p.x for p in dominated], [p.y for p in dominated], facecolors="none",
                       edgecolors=color, label=f"seq {work.seq}: dominated")  # fmt: skip
        for p in front:
            ax.annotate(labels[id(p)], (p.x, p.y), fontsize=6, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
        xs += [p.x for p in points]
        ys += [p.y for p in points]
    mark_flagged(ax, [(p.x, p.y, p.rec) for _, points in works for p in points])
    if _wide(xs):
        ax.set_xscale("log")
    if _wide(ys):
        ax.set_yscale("log")
    ax.set_xlabel("tokens/s per sequence (1 / TPOT mean)")
    ax.set_ylabel("output tokens/s per card")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)


def pareto_plot(fronts: Fronts, plot_dir: Path) -> dict[str, str]:
    if not fronts:
        return {}
    panels: dict[tuple, list[tuple[Workload, list[Point]]]] = {}
    for work, points in fronts.items():
        key = (work.model, work.prompt_len, work.workload, work.simulated)
        panels.setdefault(key, []).append((work, points))
    keys = sorted(panels)[:MAX_PANELS]
    fig, axes = _grid(len(keys), 6.5, 4.8)
    more = f" (first {MAX_PANELS} of {len(panels)} panels)" if len(panels) > MAX_PANELS else ""
    sim = f" — {SIMULATED}" if any(k[3] for k in keys) else ""
    fig.suptitle(f"Pareto front{sim}{more}\noutput tokens/s per card vs tokens/s per sequence\n"
                 "filled: on the front, hollow: dominated")  # fmt: skip
    for ax, key in zip(axes, keys, strict=True):
        model, prompt, workload, simulated = key
        title = f"{model} · prompt {prompt}" + (" · serving" if workload else "")
        _pareto_panel(ax, title + (f" — {SIMULATED}" if simulated else ""), panels[key])
    return {PARETO_FIGURE: save_png(fig, plot_dir / Path(PARETO_FIGURE).name)}


def _frontier_panel(ax: Any, rows: list[FrontierRow]) -> None:
    seqs = [r.seq for r in rows]
    batches = sorted({b for r in rows for b in r.status})
    y_of = {b: i for i, b in enumerate(batches)}
    drawn: set[str] = set()
    for x, row in enumerate(rows):
        for b, status in sorted(row.status.items()):
            kind = "above" if b in row.above_bound else status
            marker, color, label = _STATUS_STYLE[kind]
            ax.scatter([x], [y_of[b]], marker=marker, color=color, s=80,
                       label=None if kind in drawn else label)  # fmt: skip
            drawn.add(kind)
        ok, oom = row.largest_ok, row.smallest_oom
        if ok is not None and oom is not None and ok < oom:
            y = (y_of[ok] + y_of[oom]) / 2
            ax.plot([x - 0.4, x + 0.4], [y, y], color="black", linewidth=2.5,
                    label=None if "line" in drawn else "frontier")  # fmt: skip
            drawn.add("line")
    ax.set_xticks(range(len(seqs)), [str(s) for s in seqs])
    ax.set_yticks(range(len(batches)), [str(b) for b in batches])
    ax.set_xlim(-0.6, len(seqs) - 0.4)
    ax.set_xlabel("generated tokens per sequence (seq)")
    ax.set_ylabel("batch (sequences per call)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))


def frontier_plot(rows: Sequence[FrontierRow], plot_dir: Path) -> dict[str, str]:
    """Drawn only when some cell ran out of memory."""
    if not any(r.smallest_oom is not None for r in rows):
        return {}
    by_group: dict[Any, list[FrontierRow]] = {}
    for r in rows:
        by_group.setdefault(r.group, []).append(r)
    groups = sorted(by_group)[:MAX_PANELS]
    fig, axes = _grid(len(groups), 6.5, 4.6)
    sim = f" — {SIMULATED}" if any(r.simulated for r in rows) else ""
    fig.suptitle(f"Out-of-memory frontier{sim}\nlargest batch that ran vs smallest batch OOM")
    for ax, group in zip(axes, groups, strict=True):
        group_sim = any(r.simulated for r in by_group[group])
        ax.set_title(group.label() + (f" — {SIMULATED}" if group_sim else ""), fontsize=10)
        _frontier_panel(ax, by_group[group])
    return {FRONTIER_FIGURE: save_png(fig, plot_dir / Path(FRONTIER_FIGURE).name)}


def answer_plots(answers: Answers, plot_dir: Path) -> dict[str, str]:
    """Both figures (each only when it has something to show)."""
    return {**pareto_plot(answers.pareto, plot_dir), **frontier_plot(answers.frontier, plot_dir)}
