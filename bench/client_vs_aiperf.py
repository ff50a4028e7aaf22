"""Our serving client beside NVIDIA AIPerf, on one `transformers serve --continuous-batching`.

    python bench/client_vs_aiperf.py --aiperf /path/to/venv/bin/aiperf \
        [--concurrency 1 4 16] [--requests 64] [--prompt-len 64] [--seq 64] [--rounds 2] \
        [--variants ours aiperf ours-plain aiperf-ours ours-aiohttp ours-noprobe] [--pin]

One server (the tiny model on the CPU, the cache flags the project gives it), the same
prompts in the same order for both clients (exactly ``--prompt-len`` tokens, the project's
prompt maker), runs interleaved per concurrency and round. Per run: output tokens/s (each tool's own
figure, and AIPerf's records over our formula: tokens / (first send -> last token)), TTFT p50,
TPOT p50 (per request (e2e - TTFT) / (tokens - 1), both tools' definition), the tokens the
server reported, requests in flight on average, the median gap between consecutive sends (how
bunched the arrivals are), the CPU seconds the *server* spent (its process tree, before/after,
warm-ups included) per generated token, and "server busy" = tok/s x that: the cores the
server kept busy while the tool measured it. Where two tools agree on what the server did,
their busy figures agree even when the server's own speed differs from run to run.
The variants tell apart what the request asks from how it is sent:

* ``ours``: the product's client and request body (``workers.serving``: the lean HTTP
  transport, ``temperature: 0`` and the exact-length ``generation_config``);
* ``aiperf``: AIPerf 0.13 as a user runs it (``max_tokens`` only);
* ``ours-plain``: our client sending AIPerf's body (no ``temperature``, no
  ``generation_config``);
* ``aiperf-ours``: AIPerf sending our body's fields (``--extra-inputs``);
* ``ours-aiohttp``: our client on its aiohttp transport;
* ``ours-noprobe``: our client with its health probe (event-loop lag) every 1 s, not every 5 ms.

AIPerf runs offline from a local tokenizer directory: its environment drops
``HF_HUB_OFFLINE`` and sets an unreachable ``HF_ENDPOINT`` (a local directory needs no hub;
nothing leaves the machine). It is a separate install (Python >= 3.10):
``python3 -m venv /tmp/aiperf && /tmp/aiperf/bin/pip install aiperf==0.13.0``.

``--pin``: the server on the last core with one torch thread, both clients on the other
core(s) (``taskset``), so that neither client's CPU takes time from the server's threads.
Without it (the default, as a user runs both tools) all share every core.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from jobs.config import TinyModelConfig  # noqa: E402
from workers.metrics import percentile  # noqa: E402
from workers.serving import health  # noqa: E402
from workers.serving.client import RequestInput, new_session, run_async, send_completion  # noqa: E402
from workers.serving.engines import CB_PAGE_TOKENS, request_body  # noqa: E402
from workers.serving.metrics import request_tpot  # noqa: E402
from workers.serving.process import ServerProcess, free_port  # noqa: E402
from workers.serving.prompts import PromptMaker  # noqa: E402
from workers.serving.traffic import TrafficPlan, run_traffic  # noqa: E402
from workers.tiny import ensure_tiny_model  # noqa: E402

MODEL = ""  # the server's model id: the model directory (set in main)


def server_cpu(pid: int) -> float:
    """CPU seconds of the server's process tree so far."""
    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def send_gap_ms(sends: list[float]) -> float:
    """Median gap between consecutive request sends (ms): how bunched the arrivals are."""
    t = sorted(sends)
    return percentile([b - a for a, b in zip(t, t[1:], strict=False)], 50) * 1e3


def ours(
    base: str,
    prompts: list[str],
    seq: int,
    c: int,
    plain: bool,
    wire: bool = True,
    probe: bool = True,
) -> dict:
    def req(i: int) -> RequestInput:
        body = request_body("transformers", MODEL, prompts[i % len(prompts)], seq)
        if plain:  # AIPerf's body
            body = {
                k: body[k] for k in ("model", "prompt", "max_tokens", "stream", "stream_options")
            }
        return RequestInput(prompts[i % len(prompts)], 0, seq, body)

    async def go(n: int):
        async with new_session(c, wire=wire) as session:
            url = base + "/v1/completions"
            send = lambda r: send_completion(session, url, r, 600)  # noqa: E731
            return await run_traffic(req, send, TrafficPlan(concurrency=c, num_requests=n))

    run_async(go(c))  # warm-up: one request per stream
    period = health.PROBE_PERIOD_S
    health.PROBE_PERIOD_S = 1.0 if not probe else period
    try:
        res = run_async(go(len(prompts)))
    finally:
        health.PROBE_PERIOD_S = period
    done = [o for o in res.outputs if o.ok]
    if len(done) != len(prompts):
        raise SystemExit(f"ours: {len(prompts) - len(done)} requests failed")
    start = min(o.send_s for o in done)
    end = max(o.last_token_s for o in done)
    tokens = sum(o.output_tokens for o in done)
    return {
        "tok_s": tokens / (end - start),
        "tok_s_span": tokens / (end - start),
        "ttft_ms": percentile([o.ttft_s for o in done], 50) * 1e3,
        "tpot_ms": percentile([request_tpot(o) for o in done], 50) * 1e3,
        "tokens": tokens,
        "send_gap_ms": send_gap_ms([o.send_s for o in done]),
        # requests in flight on average: what the server was given to batch
        "in_flight": sum(o.last_token_s - o.send_s for o in done) / (end - start),
    }


def aiperf(exe: str, base: str, data: Path, tok_dir: Path, seq: int, c: int, n: int,
           extra: dict | None, out: Path) -> dict:  # fmt: skip
    argv = [exe, "profile", "--model", MODEL, "--url", base, "--endpoint-type", "completions",
            "--streaming", "--input-file", str(data), "--custom-dataset-type", "single_turn",
            "--dataset-sampling-strategy", "sequential", "--tokenizer", str(tok_dir),
            "--concurrency", str(c), "--request-count", str(n), "--warmup-request-count", str(c),
            "--prompt-output-tokens-mean", str(seq), "--use-server-token-count",
            "--ui-type", "none", "--no-server-metrics", "--no-gpu-telemetry",
            "--output-artifact-dir", str(out)]  # fmt: skip
    if extra:
        argv += ["--extra-inputs", json.dumps(extra)]
    env = {
        k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    }
    env["HF_ENDPOINT"] = "http://127.0.0.1:9"  # a local directory needs no hub; nothing leaves
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    found = sorted(out.rglob("profile_export_aiperf.json"))
    if proc.returncode != 0 or not found:
        raise SystemExit(
            f"aiperf failed ({proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}"
        )
    m = json.loads(found[-1].read_text())
    get = lambda k, s: (m.get(k) or {}).get(s)  # noqa: E731
    lines = [json.loads(x) for x in found[-1].with_name("profile_export.jsonl").open()]
    lines = [x for x in lines if x["metadata"].get("benchmark_phase") == "profiling"]
    recs = [x["metadata"] for x in lines]
    tokens = sum(x["metrics"]["output_token_count"]["value"] for x in lines)
    start = min(r["request_start_ns"] for r in recs)
    end = max(r["request_end_ns"] for r in recs)
    return {
        "in_flight": sum(r["request_end_ns"] - r["request_start_ns"] for r in recs) / (end - start),
        "tok_s": get("output_token_throughput", "avg"),
        # AIPerf's own records over our formula: tokens / (first request start -> last end)
        "tok_s_span": tokens / ((end - start) / 1e9),
        "ttft_ms": get("time_to_first_token", "p50"),
        "tpot_ms": get("inter_token_latency", "p50"),
        "tokens": tokens,
        "send_gap_ms": send_gap_ms([r["request_start_ns"] / 1e9 for r in recs]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aiperf", required=True, help="the aiperf executable")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--prompt-len", type=int, default=64)
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--pin", action="store_true", help="server on the last core, clients on the others"
    )
    ap.add_argument("--variants", nargs="+", default=["ours", "aiperf", "ours-plain", "aiperf-ours"],
                    choices=["ours", "aiperf", "ours-plain", "aiperf-ours", "ours-aiohttp", "ours-noprobe"])  # fmt: skip
    a = ap.parse_args()
    global MODEL
    model = ensure_tiny_model(TinyModelConfig(), os.path.expanduser("~/.cache/llm-sweep"))
    MODEL = str(model)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model)
    maker = PromptMaker(tok, 0)
    prompts = [maker.prompt(a.prompt_len)[0] for _ in range(a.requests)]
    work = Path(tempfile.mkdtemp(prefix="client-vs-aiperf-"))
    data = work / "prompts.jsonl"
    data.write_text(
        "".join(json.dumps({"text": p, "output_length": a.seq}) + "\n" for p in prompts)
    )
    our_fields = {k: v for k, v in request_body("transformers", MODEL, "", a.seq).items()
                  if k in ("temperature", "generation_config")}  # fmt: skip

    c_max = max(a.concurrency)
    blocks = int(c_max * -(-(a.prompt_len + a.seq) // CB_PAGE_TOKENS) * 1.25 + 0.999)
    port = free_port()
    argv = [sys.executable, "-m", "transformers.cli.transformers", "serve", "--continuous-batching",
            "--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--dtype", "float32",
            "--log-level", "warning", "--cb-num-blocks", str(blocks),
            "--cb-max-batch-tokens", str(min(8192, (a.prompt_len + a.seq) * min(c_max, 8))),
            str(model)]  # fmt: skip
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if a.pin:
        cores = os.sched_getaffinity(0)
        argv = ["taskset", "-c", str(max(cores)), *argv]
        env["OMP_NUM_THREADS"] = "1"
        os.sched_setaffinity(0, cores - {max(cores)})  # this client and AIPerf's processes
    server = ServerProcess(argv, f"http://127.0.0.1:{port}", "/health", "transformers")
    server.start(env=env)
    rows: dict[tuple[str, int], list[dict]] = {}
    try:
        server.wait_healthy(300)
        base = server.base_url
        assert server.proc is not None
        print(f"server: {' '.join(argv)}; {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
        for r in range(a.rounds):
            for c in a.concurrency:
                order = a.variants if r % 2 == 0 else list(reversed(a.variants))
                for v in order:
                    cpu0 = server_cpu(server.proc.pid)
                    if v.startswith("ours"):
                        m = ours(
                            base,
                            prompts,
                            a.seq,
                            c,
                            plain=v == "ours-plain",
                            wire=v != "ours-aiohttp",
                            probe=v != "ours-noprobe",
                        )
                    else:
                        extra = our_fields if v == "aiperf-ours" else None
                        m = aiperf(a.aiperf, base, data, model, a.seq, c, a.requests, extra,
                                   work / f"{v}-c{c}-r{r}")  # fmt: skip
                    # the server's CPU over the run (warm-ups included, the same for both)
                    m["server_cpu_ms_per_tok"] = (
                        (server_cpu(server.proc.pid) - cpu0) * 1e3 / (m["tokens"] + c * a.seq)
                    )
                    # cores the server kept busy: tok/s x its CPU s per token
                    m["busy"] = m["tok_s"] * m["server_cpu_ms_per_tok"] / 1e3
                    m["load"] = os.getloadavg()[0]
                    rows.setdefault((v, c), []).append(m)
                    print(f"round {r} c={c:<3} {v:<12} {m['tok_s']:7.1f} tok/s (span {m['tok_s_span']:7.1f})  TTFT p50 "
                          f"{m['ttft_ms']:6.1f} ms  TPOT p50 {m['tpot_ms']:5.2f} ms  tokens "
                          f"{m['tokens']:.0f}  in flight {m['in_flight']:.2f}  send gap p50 {m['send_gap_ms']:.2f} ms  server CPU {m['server_cpu_ms_per_tok']:.2f} ms/tok  "
                          f"load {m['load']:.2f}", flush=True)  # fmt: skip
    finally:
        server.stop()
    print("\nmedians over rounds:")
    print("| concurrency | client | output tok/s | tok/s, first send -> last token | TTFT p50 ms | TPOT p50 ms | "
          "in flight | send gap p50 ms | server CPU ms/token | server busy |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (v, c), ms in sorted(rows.items(), key=lambda kv: (kv[0][1], a.variants.index(kv[0][0]))):
        med = lambda k, ms=ms: statistics.median(m[k] for m in ms)  # noqa: E731
        print(
            f"| {c} | {v} | {med('tok_s'):.1f} | {med('tok_s_span'):.1f} | {med('ttft_ms'):.1f} | "
            f"{med('tpot_ms'):.2f} | {med('in_flight'):.2f} | {med('send_gap_ms'):.2f} | {med('server_cpu_ms_per_tok'):.2f} | {med('busy'):.2f} |"
        )


if __name__ == "__main__":
    main()
