"""A serving cell: one cell's traffic against the worker's server, into an Outcome.

Beside ``workers.static.measure`` (whose loop times generate calls of a batch, which a stream
of requests is not), sharing the per-process cache (``workers.model_cache``): one server runs
per worker and settings, reused by every traffic level, and dropped (stopped) with the other
models. What :class:`ServingCell` raises becomes a `failed` record in ``workers.run``: a
server that cannot start, dies mid-cell, hangs or answers with errors says which, with the
end of its log; a cell with a larger share of failed requests than
``workload.max_failed_fraction`` is not ok. Beside the client's numbers the record carries the
client's own health (``workers.serving.health``: ``client_saturated``) and the server's own
books where it exports Prometheus metrics (``workers.serving.books``:
``client_server_disagree``).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any

from jobs.config import CellConfig
from jobs.record import Flag, Outcome, Status
from workers.device.bounding import bound_fields
from workers.device.devices import VISIBLE_ENV, Device, cpu_model_name
from workers.device.smi import snapshot
from workers.model_cache import get_model
from workers.serving.books import Books, disagrees
from workers.serving.health import is_saturated
from workers.serving.metrics import raw_requests, serving_metrics
from workers.serving.process import ServerFailed
from workers.serving.server import Server, open_server
from workers.serving.traffic import TrafficResult
from workers.serving.workloads import kind_fields

log = logging.getLogger(__name__)

LOG_FILE = "server.log"


class TooManyErrors(RuntimeError):
    """More failed requests than workload.max_failed_fraction allows."""


def _device_name(kind: str) -> str:
    """The device's name without touching it from this process (the server owns it)."""
    if kind == "cpu":
        return cpu_model_name()
    try:
        snap = snapshot(kind) or {}
        names = {str(d.get("name")) for d in snap.get("devices", []) if d.get("name")}
        return names.pop() if len(names) == 1 else kind
    except Exception:  # a name is a nicety
        return kind


def _errors_text(m: dict[str, Any], res: TrafficResult) -> str:
    """'N of M requests failed (kind: n, ...); first: what the server did' on one line."""
    kinds = ", ".join(f"{k}: {n}" for k, n in sorted(m["request_errors"].items()))
    first = next((o for o in res.outputs if not o.ok), None)
    said = f"; first: {first.error}" if first is not None and first.error else ""
    return f"{m['failed_requests']} of {m['num_requests']} requests failed ({kinds}){said}"


def _check(cell: CellConfig, m: dict[str, Any], server: Server, res: TrafficResult) -> list[Flag]:
    """Flags of the measured requests; raises what makes the cell not ok."""
    proc = server.process
    failed = m["failed_requests"]
    too_many = failed and failed > cell.workload.max_failed_fraction * m["num_requests"]
    # A server that died drops its connections a moment before its exit can be seen: too
    # many errors wait (up to 10 s) for its exit or for a healthy answer, whichever comes.
    state = proc.state_after_errors(10.0) if proc is not None and too_many else ""
    if proc is not None and (not proc.alive() or state == "exited"):
        raise ServerFailed(
            "died mid-cell", f"{proc.exit_text()}; {_errors_text(m, res)}", proc.log_tail()
        )
    if too_many:
        if state == "hung":
            said = f"health check: {proc.health_text()}; {_errors_text(m, res)}"
            raise ServerFailed("hung", said, proc.log_tail())
        raise TooManyErrors(
            f"{_errors_text(m, res)}: more than workload.max_failed_fraction="
            f"{cell.workload.max_failed_fraction:g}"
        )
    flags = []
    if m["short_requests"]:
        flags.append(Flag.SHORT_OUTPUT)
    if m["usage_mismatch_requests"]:
        flags.append(Flag.USAGE_MISMATCH)
    return flags


def _bounds(cell: CellConfig, m: dict[str, Any], server: Server, out: Outcome) -> None:
    """Roofline bounds: TTFT and TPOT of one request alone (batch 1), output tokens/s with
    at most min(`concurrency`, requests sent) sequences in flight (none for an uncapped open
    loop or a url)."""
    if server.process is None:
        out.fields["bound_source"] = "n/a: external server (server.url), device unknown"
        return
    info, kind, name = server.model_info(), out.fields["device"], out.fields["device_name"]
    one = dataclasses.replace(cell, batch=1)
    lat = {k: m[k] for k in ("ttft_s_mean", "tpot_s_mean")}
    b1, broken = bound_fields(lat, one, info, kind, name)
    fields = {k: b1[k] for k in ("bound_ttft_s", "bound_tpot_s", "bound_source")}
    if cell.concurrency:  # never more in flight than the cell sent
        sent = m.get("num_requests") or cell.workload.num_requests
        many = dataclasses.replace(cell, batch=min(cell.concurrency, sent or cell.concurrency))
        tps = {"output_tokens_per_s": m["output_tokens_per_s"]}
        bc, more = bound_fields(tps, many, info, kind, name)
        fields.update(bound_output_tokens_per_s=bc["bound_output_tokens_per_s"])
        fields.update(bound_fraction=bc["bound_fraction"])
        broken += more
    out.fields.update(fields)
    if broken:
        out.flags.append(Flag.ABOVE_BOUND)


def _measure(cell: CellConfig, device: Device, out: Outcome) -> None:
    server, reused, load_s = get_model(cell, device, lambda: open_server(cell, device))
    out.details["server_info"] = server.server_facts()
    proc = server.process
    # This cell's log: from the server's start for the cell that started it, else from here.
    start = proc.log_size() if proc is not None and reused else 0
    books = Books(server.base_url)
    try:
        try:
            res: TrafficResult = server.run_traffic(cell, before_measured=books.start)
        finally:
            books_fields = books.stop()
        m = serving_metrics(
            res.outputs, res.duration_s, cards=cell.devices_per_cell if proc else None,
            ttft_ms=cell.slo.ttft_ms, tpot_ms=cell.slo.tpot_ms,
        )  # fmt: skip
        out.details["raw"] = raw_requests(res.outputs, res.start_s)
        kind_flat, kind_details = kind_fields(res.meta, res.outputs, res.start_s)
        out.fields.update(kind_flat)
        out.details.update(kind_details)
        out.fields.update({k: v for k, v in m.items() if k != "short_requests"})
        out.flags = _check(cell, m, server, res)
        out.fields.update(res.health)
        out.fields.update(books_fields)
        if kind_flat.get("trace_late"):
            out.flags.append(Flag.TRACE_LATE)
        if is_saturated(res.health):
            out.flags.append(Flag.CLIENT_SATURATED)
        if disagrees(m["ttft_s_mean"], {**books_fields, **res.health}):
            out.flags.append(Flag.CLIENT_SERVER_DISAGREE)
    except ServerFailed as exc:
        if proc is not None:
            proc.settle(exc)  # stopped first: the lines it wrote on the way out count
        raise
    finally:
        if proc is not None:
            out.files[LOG_FILE] = proc.cell_log(start)
            # Since the server started, up to the end of this cell (sampled every 0.2 s).
            out.fields["server_peak_rss_bytes"] = proc.peak_rss_bytes
    seen = out.details["server_info"]["visible_devices"]
    out.fields.update(
        model_reused=reused, server_reused=reused, model_load_s=load_s,
        server_start_s=load_s if not reused else 0.0, model_path=server.model_path,
        server_visible_devices=",".join(f"{k}={v}" for k, v in seen.items()) or None,
    )  # fmt: skip
    _bounds(cell, m, server, out)
    out.status = Status.OK


class ServingCell:
    """One serving cell against this worker's server (see ``workers.run`` for the steps)."""

    failure_level = logging.ERROR  # a server's failure is worth seeing in the worker's log

    def __init__(self, cell: CellConfig) -> None:
        self.cell = cell

    def start(self, out: Outcome) -> None:
        """The record keys known before anything can fail."""
        cell, kind = self.cell, self.cell.device.name
        var = VISIBLE_ENV.get(kind)
        out.fields.update(
            device=kind, device_name=_device_name(kind),
            visible_devices=os.environ.get(var) if var and cell.server.kind != "url" else None,
        )  # fmt: skip

    def run(self, out: Outcome) -> None:
        cell = self.cell
        log.info("[%s] start serving c=%s r=%s s=%d p=%d", cell.model.name, cell.concurrency,
                 cell.request_rate, cell.seq, cell.prompt_len)  # fmt: skip
        _measure(cell, Device(cell.device.name), out)

    def is_oom(self, exc: BaseException) -> bool:
        return False  # the server owns the device: its OOM is a failed server

    def after_failure(self, exc: BaseException, out: Outcome) -> None:
        """What the record says of a failure beyond its error (the failed server was dropped:
        the next cell starts a fresh one)."""
        if isinstance(exc, TooManyErrors):
            out.flags.append(Flag.TOO_MANY_ERRORS)
        if isinstance(exc, ServerFailed) and exc.log_text and LOG_FILE not in out.files:
            out.files[LOG_FILE] = exc.log_text

    def summary(self, out: Outcome) -> str:
        f, cell = out.fields, self.cell
        return (
            f"c={cell.concurrency} r={cell.request_rate}: {f['output_tokens_per_s'] or 0:.1f} "
            f"output tok/s, ttft p50 {f['ttft_s_p50'] or 0:.4f} s, tpot p50 {f['tpot_s_p50']}"
        )
