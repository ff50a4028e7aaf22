"""The server's own books of a cell: its Prometheus ``/metrics``, scraped before and after the
measured requests (and sampled while they run, for peaks of its gauges).

Metric names, as the engines define them (checked against their code):

* vLLM (``vllm/v1/metrics/loggers.py``, ``PrometheusStatLogger``; spec decoding in
  ``vllm/v1/spec_decode/metrics.py``): ``vllm:time_to_first_token_seconds``,
  ``vllm:inter_token_latency_seconds`` (before it, ``vllm:time_per_output_token_seconds``),
  ``vllm:num_preemptions_total``, ``vllm:kv_cache_usage_perc`` (before 0.9:
  ``vllm:gpu_cache_usage_perc``; 1 = full), ``vllm:prefix_cache_hits_total`` /
  ``vllm:prefix_cache_queries_total`` (tokens), ``vllm:num_requests_running`` / ``_waiting``,
  ``vllm:spec_decode_num_accepted_tokens_total`` / ``vllm:spec_decode_num_draft_tokens_total``.
* SGLang (``python/sglang/srt/observability/metrics_collector.py``; ``srt/metrics/collector.py``
  in older releases): ``sglang:time_to_first_token_seconds``,
  ``sglang:inter_token_latency_seconds``, ``sglang:num_retracted_requests_total`` (its
  preemptions), ``sglang:token_usage`` (KV pool use, 0..1), ``sglang:cached_tokens_total`` /
  ``sglang:prompt_tokens_total`` (prefix-cache hits over prompt tokens),
  ``sglang:num_running_reqs`` / ``sglang:num_queue_reqs``, ``sglang:spec_accept_rate`` (a gauge:
  its mean over the samples).
* ``transformers serve`` exports no metrics: every key is null (unknown).

The server's TTFT starts when the engine has the request (after HTTP and tokenization); the
client's when it sends. ``client_server_disagree`` when the client's TTFT mean and the server's
differ by more than the client's own overhead (``CLIENT_OVERHEAD_S`` plus the cell's event-loop
lag p99) plus 10% of the server's mean.
"""

from __future__ import annotations

import threading
from typing import Any

from workers.serving import prometheus as prom

SAMPLE_PERIOD_S = 0.5
# The client's TTFT error measured against the paced stand-in (docs/benchmarks.md section 8).
CLIENT_OVERHEAD_S = 0.002
DISAGREE_FRACTION = 0.10

# What each book is called, first name found wins.
NAMES: dict[str, tuple[str, ...]] = {
    "ttft": ("vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds"),
    "itl": ("vllm:inter_token_latency_seconds", "vllm:time_per_output_token_seconds",
            "sglang:inter_token_latency_seconds"),
    "preemptions": ("vllm:num_preemptions_total", "sglang:num_retracted_requests_total"),
    "kv_usage": ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "sglang:token_usage"),
    "prefix_hits": ("vllm:prefix_cache_hits_total", "sglang:cached_tokens_total"),
    "prefix_queries": ("vllm:prefix_cache_queries_total", "sglang:prompt_tokens_total"),
    "spec_accepted": ("vllm:spec_decode_num_accepted_tokens_total",),
    "spec_drafted": ("vllm:spec_decode_num_draft_tokens_total",),
    "spec_rate": ("sglang:spec_accept_rate",),
    "running": ("vllm:num_requests_running", "sglang:num_running_reqs"),
    "waiting": ("vllm:num_requests_waiting", "sglang:num_queue_reqs"),
}  # fmt: skip
SAMPLED = tuple(n for book in ("kv_usage", "spec_rate", "running", "waiting") for n in NAMES[book])
SERVER_KEYS = (
    "server_metrics", "server_requests",
    "server_ttft_s_mean", "server_ttft_s_p50", "server_ttft_s_p99",
    "server_itl_s_mean", "server_itl_s_p50", "server_itl_s_p99",
    "server_preemptions", "server_kv_cache_usage_peak", "server_prefix_cache_hit_rate",
    "server_spec_acceptance", "server_running_peak", "server_waiting_peak",
)  # fmt: skip


def _name(s: prom.Samples, book: str) -> str | None:
    names = {n for n, _ in s}
    for name in NAMES[book]:
        if name in names or f"{name}_count" in names:
            return name
    return None


def _delta(before: prom.Samples, after: prom.Samples, book: str) -> float | None:
    name = _name(after, book)
    if name is None:
        return None
    return (prom.value(after, name) or 0.0) - (prom.value(before, name) or 0.0)


def _ratio(num: float | None, den: float | None) -> float | None:
    return num / den if (num is not None and den) else None


class Books:
    """Scrapes ``base_url/metrics`` around one cell's measured requests."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.rstrip("/") + "/metrics"
        self.before: prom.Samples | None = None
        self.samples: list[prom.Samples] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """The first scrape, then samples every SAMPLE_PERIOD_S (none if no metrics)."""
        self.before = prom.scrape(self.url)
        if self.before is None:
            return
        self._thread = threading.Thread(target=self._sample, name="server-books", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        """Gauges only, the other lines skipped unparsed: this thread shares the client's
        interpreter, and its work would show as the client's loop lag."""
        while not self._stop.wait(SAMPLE_PERIOD_S):
            s = prom.scrape(self.url, timeout_s=SAMPLE_PERIOD_S * 4, only=SAMPLED)
            if s is not None:
                self.samples.append(s)

    def stop(self) -> dict[str, Any]:
        """The last scrape; the record's server_* keys (all null when there are no books)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        after = prom.scrape(self.url) if self.before is not None else None
        if self.before is None or after is None:
            return dict.fromkeys(SERVER_KEYS)
        return server_fields(self.before, after, [self.before, *self.samples, after])


def _peak(samples: list[prom.Samples], book: str) -> float | None:
    seen = [v for s in samples if (n := _name(s, book)) and (v := prom.value(s, n)) is not None]
    return max(seen) if seen else None


def server_fields(
    before: prom.Samples, after: prom.Samples, samples: list[prom.Samples]
) -> dict[str, Any]:
    """The server_* keys from two scrapes around a cell and the samples in between."""
    out: dict[str, Any] = dict.fromkeys(SERVER_KEYS)
    ttft_name, itl_name = _name(after, "ttft"), _name(after, "itl")
    if ttft_name is None:
        return out
    out["server_metrics"] = ttft_name.split(":", 1)[0]  # vllm / sglang
    ttft = prom.histogram_delta(before, after, ttft_name)
    out["server_requests"] = ttft["count"]
    for k in ("mean", "p50", "p99"):
        out[f"server_ttft_s_{k}"] = ttft[k]
    if itl_name is not None:
        itl = prom.histogram_delta(before, after, itl_name)
        for k in ("mean", "p50", "p99"):
            out[f"server_itl_s_{k}"] = itl[k]
    out["server_preemptions"] = _delta(before, after, "preemptions")
    out["server_kv_cache_usage_peak"] = _peak(samples, "kv_usage")
    out["server_prefix_cache_hit_rate"] = _ratio(
        _delta(before, after, "prefix_hits"), _delta(before, after, "prefix_queries")
    )
    spec = _ratio(_delta(before, after, "spec_accepted"), _delta(before, after, "spec_drafted"))
    if spec is None:
        rates = [v for s in samples if (v := prom.value(s, "sglang:spec_accept_rate"))]
        spec = sum(rates) / len(rates) if rates else None
    out["server_spec_acceptance"] = spec
    out["server_running_peak"] = _peak(samples, "running")
    out["server_waiting_peak"] = _peak(samples, "waiting")
    return out


def disagrees(client_ttft_mean: float | None, fields: dict[str, Any]) -> bool:
    """The client's TTFT mean and the server's differ by more than the client's overhead
    (CLIENT_OVERHEAD_S + the cell's loop-lag p99) + DISAGREE_FRACTION of the server's."""
    server = fields.get("server_ttft_s_mean")
    if client_ttft_mean is None or server is None:
        return False
    overhead = CLIENT_OVERHEAD_S + (fields.get("client_loop_lag_s_p99") or 0.0)
    return abs(client_ttft_mean - server) > overhead + DISAGREE_FRACTION * server
