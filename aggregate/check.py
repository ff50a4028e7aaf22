"""`python -m aggregate.check TABLE.csv --model llama3_8b --device NAME`: could these published
numbers be true?

Each row of TABLE.csv (columns `batch`, `seq` or `seq_len`, and a latency column `latency_s`,
`e2e_s` or `latency` and/or a throughput column `tokens_per_s` or `throughput`) is read as one
generate call of `batch` sequences producing `seq` new tokens each: latency = its end-to-end
seconds, throughput = batch*seq / latency. Both are compared with the roofline bounds of that
cell on the device (bounds/roofline.py, docs/trust.md): a latency below the lower bound, or a
throughput above the upper bound, by more than 2% is impossible.

Exit codes: 0 every row possible; 1 a row impossible; 2 usage error (unknown model, device or
dtype, unreadable table, missing columns).

Imports bounds/ only: plain Python, no torch, no Ray.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bounds.roofline import (
    BYTES_PER_ELEMENT,
    TOLERANCE,
    Bounds,
    ModelShapeError,
    bounds_for,
    shipped_model_config,
    shipped_model_names,
)
from bounds.specs import DeviceSpec, known_names, lookup
from jobs.values import finite

EXIT_OK = 0
EXIT_IMPOSSIBLE = 1
EXIT_USAGE = 2

SEQ_COLUMNS = ("seq", "seq_len")
LATENCY_COLUMNS = ("latency_s", "e2e_s", "latency")
THROUGHPUT_COLUMNS = ("tokens_per_s", "throughput")


class UsageError(Exception):
    """Bad arguments or input; exits 2 with this message."""


@dataclass
class RowCheck:
    batch: int
    seq: int
    latency_s: float | None
    tokens_per_s: float | None
    bounds: Bounds
    problems: list[str]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m aggregate.check",
        description="Check published (batch, seq, latency, tokens/s) rows against the roofline "
        "bound of a model on a device.",
        epilog="exit codes: 0 every row possible; 1 a row impossible; 2 usage error",
    )
    p.add_argument("table", metavar="TABLE.csv")
    p.add_argument("--model", help=f"shipped model config: {', '.join(shipped_model_names())}")
    p.add_argument("--model-config", metavar="PATH", help="a HF config.json (or its directory)")
    p.add_argument("--device", required=True, help="spec key or device name as torch reports it")
    p.add_argument("--dtype", default="float16", help="weights dtype (default float16)")
    p.add_argument("--prompt-len", type=int, default=32, help="prompt tokens (default 32)")
    p.add_argument("--devices", type=int, default=1, help="chips in tensor parallel (default 1)")
    return p


def _model_config(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    if args.model_config:
        path = Path(args.model_config)
        path = path / "config.json" if path.is_dir() else path
        try:
            return args.model or path.parent.name, json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"--model-config {args.model_config}: {exc}") from None
    if not args.model:
        raise UsageError("give --model NAME or --model-config PATH")
    config = shipped_model_config(args.model)
    if config is None:
        raise UsageError(
            f"unknown model {args.model!r}: known models are {', '.join(shipped_model_names())} "
            "(or give --model-config PATH)"
        )
    return args.model, config


def _spec(name: str) -> DeviceSpec:
    spec = lookup(name)
    if spec is None:
        raise UsageError(f"unknown device {name!r}: known devices are {', '.join(known_names())}")
    return spec


def _column(header: Sequence[str], names: Sequence[str]) -> str | None:
    return next((n for n in names if n in header), None)


def read_rows(path: str) -> list[tuple[int, int, float | None, float | None]]:
    """(batch, seq, latency_s, tokens_per_s) per row; raises UsageError on bad input."""
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            header = [h.strip() for h in reader.fieldnames or []]
            raw = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc}") from None
    seq_col = _column(header, SEQ_COLUMNS)
    lat_col = _column(header, LATENCY_COLUMNS)
    tps_col = _column(header, THROUGHPUT_COLUMNS)
    missing = []
    if "batch" not in header:
        missing.append("batch")
    if seq_col is None:
        missing.append(" or ".join(SEQ_COLUMNS))
    if lat_col is None and tps_col is None:
        missing.append("a latency (" + ", ".join(LATENCY_COLUMNS) + ") or throughput ("
                       + ", ".join(THROUGHPUT_COLUMNS) + ") column")  # fmt: skip
    if missing:
        raise UsageError(f"{path}: missing {'; '.join(missing)} (columns: {', '.join(header)})")
    rows = []
    for i, r in enumerate(raw, start=2):  # line 1 is the header
        try:
            rows.append((
                int(r["batch"]),
                int(r[seq_col]),
                finite(lat_col, float(r[lat_col])) if lat_col and r[lat_col] else None,
                finite(tps_col, float(r[tps_col])) if tps_col and r[tps_col] else None,
            ))  # fmt: skip
        except ValueError as exc:
            raise UsageError(f"{path} line {i}: {exc}") from None
        if rows[-1][0] < 1 or rows[-1][1] < 1:
            raise UsageError(f"{path} line {i}: batch and seq must be >= 1")
    if not rows:
        raise UsageError(f"{path}: no rows")
    return rows


def check_row(
    batch: int, seq: int, latency: float | None, tps: float | None, bounds: Bounds
) -> list[str]:
    problems = []
    if tps is not None and tps > bounds.output_tokens_per_s * (1 + TOLERANCE):
        problems.append(f"{tps / bounds.output_tokens_per_s:.1f}x the tokens/s bound")
    if latency is not None and latency < bounds.e2e_s * (1 - TOLERANCE):
        problems.append(f"latency {latency / bounds.e2e_s:.2f}x its lower bound")
    return problems


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def report(checks: Sequence[RowCheck]) -> str:
    head = ("batch", "seq", "latency_s", "bound_e2e_s", "tokens_per_s", "bound_tokens_per_s",
            "verdict")  # fmt: skip
    lines = [head]
    for c in checks:
        verdict = "IMPOSSIBLE: " + "; ".join(c.problems) if c.problems else "possible"
        if c.latency_s and c.tokens_per_s:
            implied = c.batch * c.seq / c.latency_s
            if abs(implied / c.tokens_per_s - 1) > 0.05:
                verdict += f" (batch*seq/latency = {implied:.0f} tokens/s, not as published)"
        lines.append((
            str(c.batch), str(c.seq), _fmt(c.latency_s, ".3f"), _fmt(c.bounds.e2e_s, ".3f"),
            _fmt(c.tokens_per_s, ".1f"), _fmt(c.bounds.output_tokens_per_s, ".1f"), verdict,
        ))  # fmt: skip
    widths = [max(len(r[i]) for r in lines) for i in range(len(head) - 1)]
    return "\n".join(
        "  ".join(v.rjust(w) for v, w in zip(r, widths, strict=False)) + "  " + r[-1] for r in lines
    )


def run(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        name, config = _model_config(args)
        spec = _spec(args.device)
        if args.dtype not in BYTES_PER_ELEMENT:
            raise UsageError(
                f"unknown dtype {args.dtype!r}: known are {', '.join(BYTES_PER_ELEMENT)}"
            )
        if args.prompt_len < 1 or args.devices < 1:
            raise UsageError("--prompt-len and --devices must be >= 1")
        rows = read_rows(args.table)
        checks = []
        for batch, seq, lat, tps in rows:
            b = bounds_for(config, args.dtype, spec, batch, seq, args.prompt_len, args.devices)
            checks.append(RowCheck(batch, seq, lat, tps, b, check_row(batch, seq, lat, tps, b)))
    except (UsageError, ModelShapeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    devices = f" x{args.devices}" if args.devices > 1 else ""
    print(
        f"{name} {args.dtype}, prompt {args.prompt_len} tokens, on {spec.key} ({spec.name}){devices}"
    )
    print(f"  {spec.peak_bandwidth_bytes_per_s / 1e12:.3g} TB/s, "
          f"{_fmt(spec.peak_flops_per_s and spec.peak_flops_per_s / 1e12, '.4g')} TFLOP/s; "
          f"source: {spec.source}")  # fmt: skip
    print(f"  weights read per forward {checks[0].bounds.weight_bytes / 1e9:.2f} GB, "
          f"KV cache {checks[0].bounds.kv_bytes_per_token} bytes/token")  # fmt: skip
    print(report(checks))
    bad = sum(1 for c in checks if c.problems)
    print(f"{bad} of {len(checks)} rows impossible on {spec.key}{devices}")
    return EXIT_IMPOSSIBLE if bad else EXIT_OK


def main() -> None:
    sys.exit(run())


if __name__ == "__main__":
    main()
