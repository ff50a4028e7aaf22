"""One streaming request to an OpenAI-compatible ``/v1/completions`` endpoint.

As vLLM's ``benchmarks/serve``: one small request function that returns a per-request
:class:`RequestOutput` (send time, first-token time, each token's arrival time, last-token
time, the server's ``usage``, and the kind of error if any). Times are ``time.perf_counter``
seconds (CLOCK_MONOTONIC: one clock for every process of the host); every text chunk of the
stream is one arrival. The metrics are computed elsewhere, once, from the list of outputs
(``workers.serving.metrics``).

Transport: the lean HTTP/1.1 client of ``workers.serving.wire`` (``new_session``'s default:
about a third of aiohttp's CPU per request, docs/benchmarks.md section 8), or aiohttp
(``new_session(..., wire=False)``). The send time is when the request's bytes are handed to
the socket, not when the client began it (``queued_s``): a request that waits in a busy client
(a closed loop sends many at once) does not count that wait as the server's.

Hot path: each network read is only timed and kept (in the protocol's ``data_received`` with
the lean client; when the read returns with aiohttp); the SSE lines are split and their JSON
parsed after the stream ended, and each data line gets the time of the read that completed
it. Where the server reports a running ``usage`` in its text chunks (vLLM's
``stream_options.continuous_usage_stats``), the tokens each chunk carried are kept
(``chunk_tokens``); else only the final ``usage`` is known. TCP_NODELAY is set on both
transports' sockets; ``run_async`` uses uvloop where installed.

Error kinds: ``connect`` (no connection), ``http_NNN`` (an error status; the message is the
body on one line), ``timeout`` (no answer within the request's limit), ``disconnected`` (the
stream broke off), ``stream_error`` (an ``error`` object in the stream), ``bad_stream`` (an
unparsable chunk), ``no_tokens`` (the stream ended without any text), ``not_streaming`` (no
text, and the answer was not an event stream: e.g. one JSON answer).
"""

from __future__ import annotations

import asyncio
import bisect
import json
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp

from workers.serving.diagnosis import http_answer, not_streaming
from workers.serving.wire import WireError, WireSession

T = TypeVar("T")


@dataclass
class RequestInput:
    """What one request asks for (its body is built by the server's dialect)."""

    prompt: str
    prompt_len: int  # tokens of the prompt, by the client's tokenizer
    output_len: int  # tokens asked for (max_tokens, forced where the server can)
    body: dict[str, Any] = field(default_factory=dict)
    _payload: bytes | None = field(default=None, repr=False, compare=False)

    def payload(self) -> bytes:
        """The body as JSON bytes (built once: requests are reused round-robin)."""
        if self._payload is None:
            self._payload = json.dumps(self.body).encode()
        return self._payload


@dataclass
class RequestOutput:
    """What happened to one request (times in perf_counter seconds)."""

    prompt_len: int = 0
    output_len: int = 0  # tokens asked for
    queued_s: float = 0.0  # when the client began the request
    send_s: float = 0.0  # when its body was handed to the socket (TTFT and E2E start here)
    first_token_s: float | None = None
    token_times_s: list[float] = field(default_factory=list)  # one per text chunk
    chunk_tokens: list[int] | None = None  # tokens each text chunk carried, where reported
    last_token_s: float | None = None
    usage_completion_tokens: int | None = None  # the server's count (stream usage)
    usage_prompt_tokens: int | None = None
    finish_reason: str | None = None
    error_kind: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error_kind is None

    @property
    def client_tokens(self) -> int:
        return len(self.token_times_s)

    @property
    def output_tokens(self) -> int:
        """Generated tokens: the server's count where it reports one, else the client's."""
        if self.usage_completion_tokens is not None:
            return self.usage_completion_tokens
        return self.client_tokens

    @property
    def ttft_s(self) -> float | None:
        return None if self.first_token_s is None else self.first_token_s - self.send_s

    @property
    def e2e_s(self) -> float | None:
        return None if self.last_token_s is None else self.last_token_s - self.send_s

    def fail(self, kind: str, message: str) -> RequestOutput:
        self.error_kind, self.error = kind, message[:500]
        return self


def _events(buf: bytes, reads: list[tuple[float, int]]) -> Iterator[tuple[float, bytes]]:
    """(arrival time, payload) of each SSE ``data:`` line: the time of the read that
    brought the line's last byte (``reads``: (time, bytes received so far), in order)."""
    ends = [n for _, n in reads]
    pos = 0
    for line in buf.split(b"\n"):
        pos += len(line) + 1
        line = line.strip()
        if line.startswith(b"data:"):
            at = bisect.bisect_left(ends, min(pos, len(buf)))
            yield reads[min(at, len(reads) - 1)][0], line[5:].strip()


def _take(out: RequestOutput, chunk: dict[str, Any], now: float, counts: list[int]) -> None:
    """Record one parsed chunk: its text's arrival time, its usage, its finish reason."""
    if "error" in chunk and not chunk.get("choices"):
        raise _StreamError(str(chunk["error"]))
    texts = 0
    for choice in chunk.get("choices") or []:
        if choice.get("text"):
            texts += 1
        if choice.get("finish_reason"):
            out.finish_reason = choice["finish_reason"]
    if texts:
        if out.first_token_s is None:
            out.first_token_s = now
        out.token_times_s.append(now)
        out.last_token_s = now
    usage = chunk.get("usage")
    if usage:
        done = usage.get("completion_tokens")
        if texts and isinstance(done, int):  # a running count: this chunk's tokens
            counts.append(done - (out.usage_completion_tokens or 0))
        out.usage_completion_tokens = done
        out.usage_prompt_tokens = usage.get("prompt_tokens")


class _StreamError(RuntimeError):
    pass


async def _read_stream(resp: aiohttp.ClientResponse, out: RequestOutput) -> None:
    """Take the bytes as they come (timed), then parse them."""
    content, clock = resp.content, time.perf_counter
    reads: list[tuple[float, int]] = []
    parts: list[bytes] = []
    size = 0
    while True:
        data = await content.readany()
        now = clock()
        if not data:
            break
        parts.append(data)
        size += len(data)
        reads.append((now, size))
    _parse(out, b"".join(parts), reads)


def _parse(out: RequestOutput, buf: bytes, reads: list[tuple[float, int]]) -> None:
    counts: list[int] = []
    for now, data in _events(buf, reads):
        if not data:
            continue
        if data == b"[DONE]":
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            out.fail("bad_stream", f"unparsable chunk: {data[:200]!r}")
            return
        _take(out, chunk, now, counts)
    if counts and len(counts) == len(out.token_times_s):
        out.chunk_tokens = counts


async def send_completion(
    session: aiohttp.ClientSession | WireSession, url: str, req: RequestInput, timeout_s: float
) -> RequestOutput:
    """POST one streaming completion to ``url`` and time it; never raises for the server's
    problems (they become the output's ``error_kind``)."""
    out = RequestOutput(prompt_len=req.prompt_len, output_len=req.output_len)
    out.queued_s = out.send_s = time.perf_counter()  # send_s: set again when written
    if isinstance(session, WireSession):
        return await _send_wire(session, url, req, out, timeout_s)
    limit = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with session.post(url, json=req.body, timeout=limit, trace_request_ctx=out) as resp:
            if resp.status != 200:
                text = await resp.text(errors="replace")
                return out.fail(f"http_{resp.status}", http_answer(resp.status, text))
            ctype = resp.content_type
            await _read_stream(resp, out)
    except asyncio.TimeoutError:  # aiohttp's per-request limit (TimeoutError on 3.11+)
        return out.fail("timeout", f"no complete answer within {timeout_s:g} s")
    except _StreamError as exc:
        return out.fail("stream_error", str(exc))
    except aiohttp.ClientConnectorError as exc:
        return out.fail("connect", str(exc))
    except (aiohttp.ClientError, ConnectionError) as exc:
        return out.fail("disconnected", f"{type(exc).__name__}: {exc}")
    if out.ok and not out.token_times_s and not ctype.startswith("text/event-stream"):
        out.fail("not_streaming", not_streaming(ctype))  # e.g. one JSON answer
    elif out.ok and not out.token_times_s:
        out.fail("no_tokens", "the stream ended without any text")
    return out


async def _send_wire(
    session: WireSession, url: str, req: RequestInput, out: RequestOutput, timeout_s: float
) -> RequestOutput:
    sent: list[float] = []
    try:
        ans = await asyncio.wait_for(session.post(url, req.payload(), sent), timeout_s)
    except asyncio.TimeoutError:
        return out.fail("timeout", f"no complete answer within {timeout_s:g} s")
    except WireError as exc:
        return out.fail("bad_stream" if exc.kind == "bad_http" else exc.kind, str(exc))
    finally:
        if sent:
            out.send_s = sent[0]
    if ans.status != 200:
        text = ans.body.decode("utf-8", errors="replace")
        return out.fail(f"http_{ans.status}", http_answer(ans.status, text))
    try:
        _parse(out, ans.body, ans.reads)
    except _StreamError as exc:
        return out.fail("stream_error", str(exc))
    if out.ok and not out.token_times_s and not ans.content_type.startswith("text/event-stream"):
        out.fail("not_streaming", not_streaming(ans.content_type))  # e.g. one JSON answer
    elif out.ok and not out.token_times_s:
        out.fail("no_tokens", "the stream ended without any text")
    return out


async def _written(session: Any, ctx: Any, params: Any) -> None:
    """aiohttp's ``on_request_chunk_sent``: called right before the body goes to the socket
    (with the headers, which aiohttp holds back until then)."""
    out = ctx.trace_request_ctx
    if isinstance(out, RequestOutput):
        out.send_s = time.perf_counter()


def new_session(limit: int, wire: bool = True) -> aiohttp.ClientSession | WireSession:
    """A session for one traffic run: at most ``limit`` connections (0: no limit), no overall
    timeout (each request has its own), no proxies from the environment; each request's
    ``send_s`` is taken when its body is written (``queued_s``: when the client began it)."""
    if wire:
        return WireSession()
    connector = aiohttp.TCPConnector(limit=limit, force_close=False)
    trace = aiohttp.TraceConfig()
    trace.on_request_chunk_sent.append(_written)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None), trust_env=False,
        trace_configs=[trace],
    )  # fmt: skip


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` on uvloop's event loop where uvloop is installed (the serve extra);
    the standard loop otherwise."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)
