"""The serving loop: one cell's load against the worker's server, into an Outcome.

Beside ``workers.measure`` (whose loop times generate calls of a batch, which a stream of
requests is not), sharing its per-process cache: the server is a backend there, so one
server runs per worker and settings, reused by every load level, and dropped (stopped) with
the other models. Failures become records: a server that cannot start, dies mid-cell, hangs
or answers with errors gives a `failed` record saying which, with the end of its log; a cell
with a larger share of failed requests than ``workload.max_failed_fraction`` is not ok.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from jobs.config import CellConfig
from jobs.record import Flag, Outcome, Status
from workers.devices import VISIBLE_ENV, Device, _cpu_model_name
from workers.env import environment, utc_now
from workers.serving.load import LoadResult
from workers.serving.metrics import raw_requests, serving_metrics
from workers.serving.process import ServerFailed

log = logging.getLogger(__name__)

LOG_FILE = "server.log"


class TooManyErrors(RuntimeError):
    """More failed requests than workload.max_failed_fraction allows."""


def _device_name(kind: str) -> str:
    """The device's name without touching it from this process (the server owns it)."""
    if kind == "cpu":
        return _cpu_model_name()
    try:
        from workers.smi import snapshot

        snap = snapshot(kind) or {}
        names = {str(d.get("name")) for d in snap.get("devices", []) if d.get("name")}
        return names.pop() if len(names) == 1 else kind
    except Exception:  # a name is a nicety
        return kind


def _errors_text(m: dict[str, Any]) -> str:
    kinds = ", ".join(f"{k}: {n}" for k, n in sorted(m["request_errors"].items()))
    return f"{m['failed_requests']} of {m['num_requests']} requests failed ({kinds})"


def _check(cell: CellConfig, m: dict[str, Any], backend: Any) -> list[Flag]:
    """Flags of the measured requests; raises what makes the cell not ok."""
    proc = backend.process
    failed = m["failed_requests"]
    too_many = failed and failed > cell.workload.max_failed_fraction * m["num_requests"]
    # A server that died drops its connections a moment before its exit can be seen.
    if proc is not None and (not proc.alive() or (too_many and proc.exited_within(10.0))):
        raise ServerFailed(
            "died mid-cell", f"{proc.exit_text()}; {_errors_text(m)}", proc.log_tail()
        )
    if too_many:
        if proc is not None and not proc.healthy(10.0):
            raise ServerFailed("hung", f"health check fails; {_errors_text(m)}", proc.log_tail())
        raise TooManyErrors(
            f"{_errors_text(m)}: more than workload.max_failed_fraction="
            f"{cell.workload.max_failed_fraction:g}"
        )
    flags = []
    if m["short_requests"]:
        flags.append(Flag.SHORT_OUTPUT)
    if m["usage_mismatch_requests"]:
        flags.append(Flag.USAGE_MISMATCH)
    return flags


def _bounds(cell: CellConfig, m: dict[str, Any], backend: Any, out: Outcome) -> None:
    """Roofline bounds: TTFT and TPOT of one request alone (batch 1), output tokens/s with
    at most `concurrency` sequences in flight (none for an uncapped open loop or a url)."""
    import dataclasses

    from workers.bounding import bound_fields

    if backend.process is None:
        out.fields["bound_source"] = "n/a: external server (server.url), device unknown"
        return
    info, kind, name = backend.model_info(), out.fields["device"], out.fields["device_name"]
    one = dataclasses.replace(cell, batch=1)
    lat = {k: m[k] for k in ("ttft_s_mean", "tpot_s_mean")}
    b1, broken = bound_fields(lat, one, info, kind, name)
    fields = {k: b1[k] for k in ("bound_ttft_s", "bound_tpot_s", "bound_source")}
    if cell.concurrency:
        many = dataclasses.replace(cell, batch=cell.concurrency)
        tps = {"output_tokens_per_s": m["output_tokens_per_s"]}
        bc, more = bound_fields(tps, many, info, kind, name)
        fields.update(bound_output_tokens_per_s=bc["bound_output_tokens_per_s"])
        fields.update(bound_fraction=bc["bound_fraction"])
        broken += more
    out.fields.update(fields)
    if broken:
        out.flags.append(Flag.ABOVE_BOUND)


def _measure(cell: CellConfig, device: Device, out: Outcome) -> None:
    from workers.measure import get_backend

    backend, reused, load_s = get_backend(cell, device)
    out.details["server_info"] = backend.server_facts()
    start = backend.process.log_size() if backend.process else 0
    try:
        res: LoadResult = backend.run_load(cell)
    finally:
        if backend.process is not None:
            out.files[LOG_FILE] = backend.process.cell_log(start)
    m = serving_metrics(
        res.outputs, res.duration_s, cards=cell.chips if backend.process else None,
        ttft_ms=cell.slo.ttft_ms, tpot_ms=cell.slo.tpot_ms,
    )  # fmt: skip
    out.details["raw"] = raw_requests(res.outputs, res.start_s)
    out.fields.update({k: v for k, v in m.items() if k != "short_requests"})
    out.flags = _check(cell, m, backend)
    seen = out.details["server_info"]["visible_devices"]
    out.fields.update(
        model_reused=reused, server_reused=reused, model_load_s=load_s,
        server_start_s=load_s if not reused else 0.0, model_path=backend.model_path,
        server_visible_devices=",".join(f"{k}={v}" for k, v in seen.items()) or None,
    )  # fmt: skip
    _bounds(cell, m, backend, out)
    out.status = Status.OK


def measure_serving(cell: CellConfig) -> Outcome:
    """Measure one serving cell here. Never raises for a problem of the cell or its server."""
    from workers.measure import drop_models

    env = environment()
    out = Outcome(env=env, started_at=utc_now())
    kind = cell.device.name
    var = VISIBLE_ENV.get(kind)
    out.fields.update(
        node=env["host"], device=kind, device_name=_device_name(kind),
        visible_devices=os.environ.get(var) if var and cell.server.kind != "url" else None,
    )  # fmt: skip
    log.info("[%s] start serving c=%s r=%s s=%d p=%d", cell.model.name, cell.concurrency,
             cell.request_rate, cell.seq, cell.prompt_len)  # fmt: skip
    try:
        _measure(cell, Device(kind), out)
    except Exception as exc:  # every failure becomes a record; the sweep goes on
        failed = Outcome.failure(exc)
        out.status, out.error = failed.status, failed.error
        if isinstance(exc, TooManyErrors):
            out.flags.append(Flag.TOO_MANY_ERRORS)
        if isinstance(exc, ServerFailed) and exc.log_text and "server.log" not in out.files:
            out.files[LOG_FILE] = exc.log_text
        log.error("[%s] failed: %s", cell.model.name, str(exc).splitlines()[0])
        drop_models()  # a failed server is not reused: the next cell starts a fresh one
    out.finished_at = utc_now()
    if out.status == Status.OK:
        f = out.fields
        log.info("[%s] ok c=%s r=%s: %.1f output tok/s, ttft p50 %.4f s, tpot p50 %s",
                 cell.model.name, cell.concurrency, cell.request_rate, f["output_tokens_per_s"] or 0,
                 f["ttft_s_p50"] or 0, f["tpot_s_p50"])  # fmt: skip
    return out
