"""A lean HTTP/1.1 client for one kind of request: a POST whose answer streams.

The serving client's transport (``workers.serving.client``): a plain asyncio protocol per
keep-alive connection, each request one pre-built ``transport.write`` (its send time taken
right before it), each network read timed in ``data_received`` itself (before any task runs),
the body de-chunked as it comes and parsed only after the answer ended. Per request it costs a
fraction of a general client's work, which matters when a closed loop sends a burst of
hundreds of requests at once. TCP_NODELAY is asyncio's default for TCP sockets.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


class WireError(Exception):
    """kind: connect | disconnected | bad_http."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Answer:
    """A whole answer: its status, its (de-chunked) body, (arrival time, body bytes so far)
    per network read."""

    status: int
    body: bytes
    reads: list[tuple[float, int]]
    content_type: str = ""


class _Answer(asyncio.Protocol):
    """One connection; reads one answer at a time: status, headers, the de-chunked body with
    (arrival time, body bytes so far) per network read."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.reset()

    def reset(self) -> None:
        self.raw = bytearray()  # undecoded bytes
        self.head: tuple[int, dict[str, str]] | None = None
        self.body = bytearray()
        self.reads: list[tuple[float, int]] = []
        self.left: int | None = None  # bytes of the current chunk / of a sized body
        self.chunked = False
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.done.done():
            if self.head is not None and self.left is None and not self.chunked:
                self.done.set_result(None)  # a body that ends with the connection
            else:
                self.done.set_exception(WireError("disconnected", f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.raw += data
        try:
            if self.head is None and not self._read_head():
                return
            before = len(self.body)
            self._read_body()
        except (ValueError, IndexError) as exc:
            if not self.done.done():
                self.done.set_exception(WireError("bad_http", f"unreadable answer: {exc}"))
            return
        if len(self.body) > before:
            self.reads.append((now, len(self.body)))

    def _read_head(self) -> bool:
        while self.raw.startswith(b"\r\n"):  # the end of the last answer's chunked body
            del self.raw[:2]
        end = self.raw.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = self.raw[:end].decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        del self.raw[: end + 4]
        self.head = (status, headers)
        self.chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        if not self.chunked and "content-length" in headers:
            self.left = int(headers["content-length"])
        return True

    def _read_body(self) -> None:
        if not self.chunked:
            if self.left is None:  # until the connection closes
                self.body += self.raw
                self.raw.clear()
                return
            take = self.raw[: self.left]
            self.body += take
            del self.raw[: len(take)]
            self.left -= len(take)
            if self.left == 0 and not self.done.done():
                self.done.set_result(None)
            return
        while True:
            if self.left is None:  # a chunk's size line
                eol = self.raw.find(b"\r\n")
                if eol < 0:
                    return
                self.left = int(self.raw[:eol].split(b";")[0], 16)
                del self.raw[: eol + 2]
                if self.left == 0:  # the last chunk (no trailers expected)
                    if not self.done.done():
                        self.done.set_result(None)
                    return
            if len(self.raw) < self.left + 2:
                take = self.raw[: self.left]
                self.body += take
                del self.raw[: len(take)]
                self.left -= len(take)
                return
            self.body += self.raw[: self.left]
            del self.raw[: self.left + 2]
            self.left = None


class WireSession:
    """Keep-alive connections to one server, reused request after request."""

    def __init__(self) -> None:
        self.idle: dict[tuple[str, int, bool], list[_Answer]] = {}
        self.all: list[_Answer] = []

    async def __aenter__(self) -> WireSession:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for conn in self.all:
            if conn.transport is not None:
                conn.transport.close()

    async def _conn(self, host: str, port: int, tls: bool) -> _Answer:
        pool = self.idle.setdefault((host, port, tls), [])
        while pool:
            conn = pool.pop()
            if not conn.lost:
                conn.reset()
                return conn
        loop = asyncio.get_running_loop()
        try:
            _, conn = await loop.create_connection(
                _Answer, host, port, ssl=ssl.create_default_context() if tls else None
            )
        except OSError as exc:
            raise WireError("connect", f"cannot connect to {host}:{port}: {exc}") from exc
        self.all.append(conn)
        return conn

    async def post(self, url: str, body: bytes, on_send: list[float]) -> Answer:
        """POST ``body`` (JSON) to ``url``; the answer once it ended. ``on_send`` gets the
        time right before the request is written."""
        parts = urlsplit(url)
        tls = parts.scheme == "https"
        host, port = parts.hostname or "127.0.0.1", parts.port or (443 if tls else 80)
        conn = await self._conn(host, port, tls)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                "Content-Type: application/json\r\nAccept: text/event-stream\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")  # fmt: skip
        assert conn.transport is not None
        on_send.append(time.perf_counter())
        conn.transport.write(head.encode("latin-1") + body)
        try:
            await conn.done
        except BaseException:
            conn.transport.close()
            raise
        status, headers = conn.head or (0, {})
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        answer = Answer(status, bytes(conn.body), conn.reads, ctype)
        if not conn.lost and headers.get("connection", "").lower() != "close":
            self.idle[(host, port, tls)].append(conn)  # from now on another request's
        else:
            conn.transport.close()
        return answer
