"""One streaming request to an OpenAI-compatible ``/v1/completions`` endpoint (aiohttp).

As vLLM's ``benchmarks/serve``: one small request function that returns a per-request
:class:`RequestOutput` (send time, first-token time, each token's arrival time, last-token
time, the server's ``usage``, and the kind of error if any). Times are ``time.perf_counter``
seconds on this process's clock; every text chunk of the stream is one arrival. The metrics
are computed elsewhere, once, from the list of outputs (``workers.serving.metrics``).

Error kinds: ``connect`` (no connection), ``http_NNN`` (an error status; the message is the
body on one line), ``timeout`` (no answer within the request's limit), ``disconnected`` (the
stream broke off), ``stream_error`` (an ``error`` object in the stream), ``bad_stream`` (an
unparsable chunk), ``no_tokens`` (the stream ended without any text), ``not_streaming`` (no
text, and the answer was not an event stream: e.g. one JSON answer).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from workers.serving.diagnosis import http_answer, not_streaming


@dataclass
class RequestInput:
    """What one request asks for (its body is built by the server's dialect)."""

    prompt: str
    prompt_len: int  # tokens of the prompt, by the client's tokenizer
    output_len: int  # tokens asked for (max_tokens, forced where the server can)
    body: dict[str, Any] = field(default_factory=dict)


@dataclass
class RequestOutput:
    """What happened to one request (times in perf_counter seconds)."""

    prompt_len: int = 0
    output_len: int = 0  # tokens asked for
    send_s: float = 0.0
    first_token_s: float | None = None
    token_times_s: list[float] = field(default_factory=list)  # one per text chunk
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


def _data(line: bytes) -> str | None:
    """The payload of one SSE line, or None for blank lines, comments and other fields."""
    text = line.decode("utf-8", errors="replace").strip()
    if not text.startswith("data:"):
        return None
    return text[5:].strip()


def _take(out: RequestOutput, chunk: dict[str, Any], now: float) -> None:
    """Record one parsed chunk: its text's arrival time, its usage, its finish reason."""
    if "error" in chunk and not chunk.get("choices"):
        raise _StreamError(str(chunk["error"]))
    for choice in chunk.get("choices") or []:
        if choice.get("text"):
            if out.first_token_s is None:
                out.first_token_s = now
            out.token_times_s.append(now)
            out.last_token_s = now
        if choice.get("finish_reason"):
            out.finish_reason = choice["finish_reason"]
    usage = chunk.get("usage")
    if usage:
        out.usage_completion_tokens = usage.get("completion_tokens")
        out.usage_prompt_tokens = usage.get("prompt_tokens")


class _StreamError(RuntimeError):
    pass


async def _read_stream(resp: aiohttp.ClientResponse, out: RequestOutput) -> None:
    async for line in resp.content:
        now = time.perf_counter()
        data = _data(line)
        if not data:
            continue
        if data == "[DONE]":
            break
        try:
            chunk = json.loads(data)
        except ValueError:
            out.fail("bad_stream", f"unparsable chunk: {data[:200]}")
            return
        _take(out, chunk, now)


async def send_completion(
    session: aiohttp.ClientSession, url: str, req: RequestInput, timeout_s: float
) -> RequestOutput:
    """POST one streaming completion to ``url`` and time it; never raises for the server's
    problems (they become the output's ``error_kind``)."""
    out = RequestOutput(prompt_len=req.prompt_len, output_len=req.output_len)
    out.send_s = time.perf_counter()
    limit = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with session.post(url, json=req.body, timeout=limit) as resp:
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


def new_session(limit: int) -> aiohttp.ClientSession:
    """A session for one traffic run: at most ``limit`` connections (0: no limit), no overall
    timeout (each request has its own), no proxies from the environment."""
    connector = aiohttp.TCPConnector(limit=limit, force_close=False)
    return aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=None), trust_env=False
    )
