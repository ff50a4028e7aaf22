"""The paced stand-in on a lean HTTP/1.1 transport, for the client-overhead benchmark.

    python tests/standins/paced_lean.py --port 8000 --ttft-ms 50 --itl-ms 10 [--uvloop]

Same requests, checks, pacing, chunks and ``/stats`` as ``paced.py`` (its ``_wanted`` and
``_chunk``), on raw non-blocking sockets instead of aiohttp, and with each request's start
taken from the kernel: the receive timestamp of its first bytes (``SO_TIMESTAMPING``, software
receive time, converted to ``time.perf_counter``'s clock), where ``paced.py`` takes it when
its handler runs. So a wave of 64 or 256 requests that arrives while the stand-in is busy
writing other streams' tokens is timed from its arrival, and the first token is still due
``--ttft-ms`` after it (then one every ``--itl-ms``): the stand-in's own queue is not counted
as the client's. Where the kernel gives no timestamp, the time the process read the bytes.
Only ``/health``, ``/stats`` and streaming ``/v1/completions``; no faults, no metrics:
``bench/serving_client.py --server lean`` runs it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from paced import _chunk, _parser, _wanted  # noqa: E402

SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)
RX_SOFTWARE = (1 << 3) | (1 << 4)  # SOF_TIMESTAMPING_RX_SOFTWARE | SOF_TIMESTAMPING_SOFTWARE
# CLOCK_REALTIME (the kernel's timestamps) -> perf_counter (CLOCK_MONOTONIC, the client's clock)
REALTIME_TO_PERF = time.time() - time.perf_counter()
STATS: list[dict[str, Any]] = []


def _answer(status: int, body: bytes, ctype: bytes = b"application/json") -> bytes:
    reason = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}[status]
    return (b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
            % (status, reason, ctype, len(body)) + body)  # fmt: skip


def _framed(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


class Conn:
    """One client connection: reads requests (and the kernel's receive time of their first
    bytes), answers, streams tokens from timers."""

    count = 0

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop, ttft_s: float,
                 itl_s: float) -> None:  # fmt: skip
        self.sock, self.loop, self.ttft_s, self.itl_s = sock, loop, ttft_s, itl_s
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, RX_SOFTWARE)
        except OSError:
            pass
        self.raw, self.out = bytearray(), bytearray()
        self.t0: float | None = None  # perf_counter clock: this request's first bytes came
        self.closed = False
        loop.add_reader(sock.fileno(), self.on_read)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.loop.remove_reader(self.sock.fileno())
            self.loop.remove_writer(self.sock.fileno())
            self.sock.close()

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        if self.out:
            self.out += data
            return
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.close()
            return
        if n < len(data):
            self.out += data[n:]
            self.loop.add_writer(self.sock.fileno(), self.on_write)

    def on_write(self) -> None:
        try:
            n = self.sock.send(self.out)
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        del self.out[:n]
        if not self.out:
            self.loop.remove_writer(self.sock.fileno())

    def on_read(self) -> None:
        try:
            data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(48))
        except BlockingIOError:
            return
        except OSError:
            self.close()
            return
        if not data:
            self.close()
            return
        arrived = time.perf_counter()
        for level, kind, blob in anc:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(blob) >= 16:
                sec, nsec = struct.unpack("qq", blob[:16])
                if sec:
                    arrived = min(arrived, sec + nsec / 1e9 - REALTIME_TO_PERF)
        if self.t0 is None:
            self.t0 = arrived
        self.raw += data
        while True:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.raw[:end]).decode("latin-1").split("\r\n")
            method, path, _ = head[0].split(" ", 2)
            length = 0
            for line in head[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            if len(self.raw) < end + 4 + length:
                return
            body = bytes(self.raw[end + 4 : end + 4 + length])
            del self.raw[: end + 4 + length]
            t0, self.t0 = self.t0, (arrived if self.raw else None)
            self._handle(method, path, body, t0)

    def _handle(self, method: str, path: str, body: bytes, t0: float) -> None:
        if method == "GET" and path == "/health":
            self.write(_answer(200, b'{"status":"ok"}'))
        elif method == "GET" and path == "/stats":
            self.write(_answer(200, json.dumps(STATS).encode()))
        elif method == "POST" and path == "/v1/completions":
            try:
                req = json.loads(body)
                n = _wanted(req)
            except ValueError as exc:
                self.write(_answer(400, json.dumps({"error": {"message": str(exc)}}).encode()))
                return
            self._stream(req, n, t0)
        else:
            self.write(_answer(404, b"{}"))

    def _stream(self, req: dict[str, Any], n: int, t0: float) -> None:
        Conn.count += 1
        rid, words, times = f"cmpl-{Conn.count}", len(req["prompt"].split()), []
        base = self.loop.time() - (time.perf_counter() - t0)  # t0 on the loop's clock
        self.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")  # fmt: skip

        def token(k: int) -> None:
            self.write(_framed(_chunk(rid, text=f" t{k}")))
            times.append(time.perf_counter() - t0)
            if k + 1 < n:
                self.loop.call_at(base + self.ttft_s + (k + 1) * self.itl_s, token, k + 1)
                return
            usage = {"prompt_tokens": words, "completion_tokens": n, "total_tokens": words + n}
            self.write(_framed(_chunk(rid, finish="length", usage=usage))
                       + _framed(b"data: [DONE]\n\n") + b"0\r\n\r\n")  # fmt: skip
            gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
            STATS.append({"ttft_s": times[0], "gaps_s": gaps, "start_s": t0,
                          "seed": req.get("seed")})  # fmt: skip

        self.loop.call_at(base + self.ttft_s, token, 0)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((args.host, args.port))
        listener.listen(4096)
        listener.setblocking(False)
        conns: list[Conn] = []

        def accept() -> None:
            while True:
                try:
                    sock, _ = listener.accept()
                except BlockingIOError:
                    return
                conns.append(Conn(sock, loop, args.ttft_ms / 1e3, args.itl_ms / 1e3))

        loop.add_reader(listener.fileno(), accept)
        print(f"paced (lean) server on {args.host}:{args.port}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
