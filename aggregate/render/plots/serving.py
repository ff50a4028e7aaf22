"""Serving figures (headless matplotlib, as plots/static.py): per server settings, throughput
and latency percentiles against the load; one Pareto plot of output tokens/s per card
against tokens/s per user over every group. Only ok cells are drawn; flagged ones are ringed
and named in the legend (render/plots/flagged.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aggregate.render.plots.flagged import mark_flagged
from aggregate.render.plots.names import SERVE_PARETO_FIGURE, serving_figures
from aggregate.render.plots.save import save_png
from aggregate.serving import ServingKey, load_label, load_value, serving_groups
from aggregate.tables import ok_number

Record = dict[str, Any]
_LATENCY = (("TTFT", "ttft_s"), ("TPOT", "tpot_s"))


def _points(recs: Sequence[Record], key: str, scale: float = 1.0) -> tuple[list, list]:
    pts = [(load_value(r), v * scale) for r in recs if (v := ok_number(r, key)) is not None]
    return [x for x, _ in pts], [y for _, y in pts]


def _flagged(ax: Any, recs: Sequence[Record], key: str, scale: float = 1.0) -> None:
    """Ring the flagged cells of this curve (render/plots/flagged.py)."""
    pts = [(load_value(r), v * scale, r) for r in recs if (v := ok_number(r, key)) is not None]
    mark_flagged(ax, pts)


def _xaxis(ax: Any, key: ServingKey, recs: Sequence[Record]) -> None:
    from matplotlib.ticker import FixedLocator, NullLocator

    ax.set_xlabel("request rate (req/s)" if key.loop == "open" else "concurrency (in flight)")
    if key.loop == "closed":
        loads = sorted({load_value(r) for r in recs})
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator(loads))
        ax.set_xticklabels([f"{v:g}" for v in loads])
        ax.xaxis.set_minor_locator(NullLocator())
    ax.grid(True, alpha=0.3)
    ax.set_ylim(bottom=0)


def _throughput(ax: Any, key: ServingKey, recs: Sequence[Record]) -> bool:
    xs, ys = _points(recs, "output_tokens_per_s")
    ax.plot(xs, ys, marker="o", label="output tokens/s")
    _flagged(ax, recs, "output_tokens_per_s")
    bx, by = _points(recs, "bound_output_tokens_per_s")
    if bx and ys and max(by) > 20 * max(ys):  # drawn, it would flatten the measurement
        ax.plot([], [], linestyle="--", alpha=0.6,
                label=f"bound: {min(by) / max(ys):.0f}x and more above, not drawn")  # fmt: skip
    elif bx:
        ax.plot(bx, by, linestyle="--", alpha=0.6, label="bound")
    ax.set_ylabel("output tokens/s")
    return bool(xs)


def _latency(axes: Sequence[Any], key: ServingKey, recs: Sequence[Record]) -> bool:
    drawn = False
    for ax, (name, prefix) in zip(axes, _LATENCY, strict=True):
        for i, q in enumerate(("p50", "p90", "p99")):
            xs, ys = _points(recs, f"{prefix}_{q}", 1e3)
            ax.plot(xs, ys, marker="o", color=f"C{i}", label=f"{name} {q}")
            if q == "p99":
                _flagged(ax, recs, f"{prefix}_{q}", 1e3)
            drawn = drawn or bool(xs)
        ax.set_ylabel(f"{name} (ms)")
        _xaxis(ax, key, recs)
        ax.legend(fontsize=8)
    return drawn


def _figures(key: ServingKey, recs: Sequence[Record], plot_dir: Path) -> dict[str, str]:
    from matplotlib.figure import Figure

    out: dict[str, str] = {}
    through, latency = serving_figures(key)
    fig = Figure(figsize=(6.5, 4.6), layout="constrained")
    ax = fig.subplots()
    if _throughput(ax, key, recs):
        _xaxis(ax, key, recs)
        ax.legend(fontsize=8)
        ax.set_title(f"Output tokens/s vs load\n{key.label()}", fontsize=9)
        out[through] = save_png(fig, plot_dir / Path(through).name)
    fig = Figure(figsize=(13, 4.6), layout="constrained")
    axes = fig.subplots(1, 2)
    if _latency(axes, key, recs):
        fig.suptitle(f"Latency percentiles vs load\n{key.label()}", fontsize=9)
        out[latency] = save_png(fig, plot_dir / Path(latency).name)
    return out


def _pareto(groups: dict[ServingKey, list[Record]], plot_dir: Path) -> dict[str, str]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.5, 5.2), layout="constrained")
    ax = fig.subplots()
    drawn = False
    for i, (key, recs) in enumerate(groups.items()):
        pts = [(ok_number(r, "output_tokens_per_s_per_user"),
                ok_number(r, "output_tokens_per_s_per_card"), load_label(r)) for r in recs]  # fmt: skip
        pts = [p for p in pts if p[0] is not None and p[1] is not None]
        if not pts:
            continue
        drawn = True
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", color=f"C{i % 10}",
                label=key.label())  # fmt: skip
        for x, y, text in pts:
            ax.annotate(text, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    if not drawn:
        return {}
    ax.set_xlabel("tokens/s per user (1 / TPOT mean)")
    ax.set_ylabel("output tokens/s per card")
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("Serving: throughput per card against interactivity (up and right is better)")
    return {SERVE_PARETO_FIGURE: save_png(fig, plot_dir / Path(SERVE_PARETO_FIGURE).name)}


def serving_plots(records: Sequence[Record], plot_dir: Path) -> dict[str, str]:
    """Every serving figure of these records ({} without serving records)."""
    groups = serving_groups(records)
    out: dict[str, str] = {}
    for key, recs in groups.items():
        out.update(_figures(key, recs, plot_dir))
    if groups:
        out.update(_pareto(groups, plot_dir))
    return out
