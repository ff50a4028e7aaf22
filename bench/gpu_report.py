"""The Markdown report and the checks of bench/gpu_check.py, from the records it produced."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

GIB = 2**30


def read_records(sweep: Path) -> list[dict[str, Any]]:
    """Every readable record.json under a sweep directory, in the order the cells started."""
    records = []
    for path in sorted(Path(sweep).glob("*/record.json")):
        try:
            records.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            records.append({"status": "unreadable", "cell_dir": path.parent.name})
    return sorted(records, key=lambda r: r.get("started_at") or "")


ENERGY_KEYS = ("output_tokens_per_j", "power_w_mean", "power_w_peak")


def _num(value: Any, scale: float = 1.0, fmt: str = "{:.1f}") -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, int | float):
        return "—"
    return fmt.format(value * scale)


def _energy_keys(records: list[dict[str, Any]]) -> list[str]:
    """Energy columns the records carry (numbers or validity), whoever added them."""
    keys = {
        k for r in records for k, v in r.items()
        if (k.startswith("energy_") or k in ENERGY_KEYS) and isinstance(v, int | float)
    }  # fmt: skip
    return sorted(keys)


def cell_table(records: list[dict[str, Any]]) -> list[str]:
    energy = _energy_keys(records)
    head = ["batch", "seq", "model", "dtype", "status", "output tok/s", "TPOT ms", "TTFT ms",
            "bound fraction", "peak mem GiB", "flags", *energy]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in records:
        row = [
            str(r.get("batch")), str(r.get("seq")), str(r.get("model")), str(r.get("dtype")),
            str(r.get("status")), _num(r.get("output_tokens_per_s")),
            _num(r.get("tpot_s_mean"), 1e3, "{:.2f}"), _num(r.get("ttft_s_mean"), 1e3, "{:.1f}"),
            _num(r.get("bound_fraction"), 1.0, "{:.3f}"),
            _num(r.get("peak_memory_bytes"), 1 / GIB, "{:.1f}"),
            ",".join(r.get("flags") or []) or "",
            *[_num(r.get(k), 1.0, "{:.4g}") for k in energy],
        ]  # fmt: skip
        lines.append("| " + " | ".join(row) + " |")
    return lines


def compile_gain(eager: list[dict], compiled: list[dict]) -> list[str]:
    """Compiled vs eager output tokens/s for the cells both phases measured."""
    by_cell = {(r.get("batch"), r.get("seq")): r for r in eager if r.get("status") == "ok"}
    lines = ["| batch | seq | eager tok/s | compiled tok/s | gain | eager TPOT ms | "
             "compiled TPOT ms |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for c in compiled:
        e = by_cell.get((c.get("batch"), c.get("seq")))
        te, tc = (e or {}).get("output_tokens_per_s"), c.get("output_tokens_per_s")
        gain = f"{tc / te - 1:+.1%}" if c.get("status") == "ok" and te and tc else "—"
        lines.append(
            f"| {c.get('batch')} | {c.get('seq')} | {_num(te)} | {_num(tc)} | {gain} | "
            f"{_num((e or {}).get('tpot_s_mean'), 1e3, '{:.2f}')} | "
            f"{_num(c.get('tpot_s_mean'), 1e3, '{:.2f}')} |"
        )
    return lines


def _measured(phases: list) -> list[dict]:
    return [r for ph in phases if ph.name != "oom" for r in ph.result.get("records", [])]


def check_bounds(phases: list) -> list[tuple[bool, str]]:
    recs = [r for r in _measured(phases) if r.get("status") == "ok"]
    above = [r["cell_dir"] for r in recs if "above_bound" in (r.get("flags") or [])]
    no_fraction = [r["cell_dir"] for r in recs if r.get("bound_fraction") is None]
    return [
        (not above and bool(recs), f"no cell above_bound ({len(recs)} measured cells)"
         + (f"; above: {', '.join(above)}" if above else "")),
        (not no_fraction and bool(recs), "every measured cell has a bound fraction"
         + (f"; missing: {', '.join(no_fraction)}" if no_fraction else "")),
    ]  # fmt: skip


def check_oom(phases: list) -> tuple[bool, str]:
    phase = next((ph for ph in phases if ph.name == "oom"), None)
    if phase is None or "skipped" in phase.result:
        return False, "oversized cell: phase not run"
    recs = phase.result.get("records", [])
    oom = [r for r in recs if r.get("status") == "oom"]
    if not oom:
        got = ", ".join(f"{r.get('cell_dir')}={r.get('status')}" for r in recs) or "no records"
        return False, f"oversized cell not recorded oom ({got})"
    after = [r for r in recs if r.get("status") == "ok"
             and (r.get("started_at") or "") > (oom[0].get("finished_at") or "")]  # fmt: skip
    msg = (oom[0].get("error") or {}).get("message", "")[:120].replace("\n", " ")
    text = f"oversized cell {oom[0].get('cell_dir')} recorded oom ({msg!r})"
    if not after:
        return False, text + ", but no cell ran ok after it"
    return True, text + f"; the next cell {after[0].get('cell_dir')} ran ok"


def check_smi(phases: list, snap: dict | None, smoke: bool) -> tuple[bool, str]:
    cuda = [r for r in _measured(phases) if r.get("device") == "cuda" and r.get("status") == "ok"]
    parsed = [r for r in cuda if (r.get("smi") or {}).get("devices")]
    if snap is None:
        return smoke, "nvidia-smi not on this machine (smoke run): not checked"
    direct = snap.get("devices") or []
    ok = bool(direct) and "error" not in snap and len(parsed) == len(cuda)
    names = ", ".join(f"{d.get('name')} {d.get('memory_total_mb')} MiB" for d in direct)
    why = snap.get("error") or snap.get("empty_reason") or ""
    return ok, (f"nvidia-smi snapshot parses: run here: {len(direct)} GPU(s) ({names}) {why}; "
                f"in the records: {len(parsed)} of {len(cuda)} cuda cells")  # fmt: skip


def check_complete(phases: list) -> tuple[bool, str]:
    bad = [f"{ph.name}: {ph.result.get('skipped') or 'stopped at the time limit'}"
           for ph in phases if "skipped" in ph.result or ph.result.get("timed_out")]  # fmt: skip
    return not bad, "every phase ran to the end" + (f" (not: {'; '.join(bad)})" if bad else "")


def _environment(phases: list) -> str:
    recs = _measured(phases) or [r for ph in phases for r in ph.result.get("records", [])]
    env = (recs[0].get("env") if recs else None) or {}
    device = recs[0].get("device_name") if recs else None
    return (f"device {device}; torch {env.get('torch')}, transformers {env.get('transformers')}, "
            f"python {env.get('python') or platform.python_version()}")  # fmt: skip


def markdown(phases: list, snap: dict | None, smoke: bool, hydra: str, seconds: float):
    """(the report, whether every check passed)."""
    title = "GPU check, CPU smoke run" if smoke else "GPU check"
    cmd = "python bench/gpu_check.py" + (" --smoke" if smoke else "")
    out = [f"## {title}", "", f"`{cmd}`: {seconds:.0f} s; {_environment(phases)}; "
           f"Hydra {hydra}. Each cell: 1 warm-up + 1 measured iteration.", ""]  # fmt: skip
    for ph in phases:
        res = ph.result
        out.append(f"### {ph.name}")
        if "skipped" in res:
            out += [f"skipped: {res['skipped']}", ""]
            continue
        state = "stopped at the time limit" if res.get("timed_out") else f"exit {res['exit_code']}"
        out += [f"`{res['command']}` ({res['seconds']:.0f} s, {state})", ""]
        out += [*cell_table(res.get("records", [])), ""]
    eager = next((ph for ph in phases if ph.name == "bf16"), None)
    comp = next((ph for ph in phases if ph.name == "compile"), None)
    if eager and comp and comp.result.get("records"):
        out += ["### compile gain (backend.hf.compile=true vs eager, bfloat16)", ""]
        out += [*compile_gain(eager.result.get("records", []), comp.result["records"]), ""]
    checks = [*check_bounds(phases), check_oom(phases), check_smi(phases, snap, smoke),
              check_complete(phases)]  # fmt: skip
    out += ["### checks", ""] + [f"- {'PASS' if ok else 'FAIL'} {text}" for ok, text in checks]
    return "\n".join(out) + "\n", all(ok for ok, _ in checks)
