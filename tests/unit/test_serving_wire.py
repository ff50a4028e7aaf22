"""In-process: the lean HTTP/1.1 client's answer reader (chunked, sized, until close; reads
timed as they come; a keep-alive connection's leftover bytes)."""

from __future__ import annotations

import asyncio

import pytest

from workers.serving.wire import WireError, _Answer

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: text/event-stream\r\n\r\n"


def feed(*parts: bytes, lost: bool = False) -> _Answer:
    async def go() -> _Answer:
        a = _Answer()
        for p in parts:
            a.data_received(p)
        if lost:
            a.connection_lost(None)
        return a

    return asyncio.run(go())


def test_chunked_body_split_anywhere_is_decoded_and_timed_per_read():
    body = HEAD + b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n"
    for cut in range(1, len(body)):
        a = feed(body[:cut], body[cut:])
        assert a.done.done() and a.done.exception() is None
        assert bytes(a.body) == b"hello world" and a.head[0] == 200
        assert a.reads[-1][1] == 11 and all(t > 0 for t, _ in a.reads)


def test_sized_and_close_delimited_bodies_and_a_leftover_crlf():
    a = feed(b"\r\nHTTP/1.1 500 Oops\r\nContent-Length: 4\r\n\r\nno!!")
    assert a.head[0] == 500 and bytes(a.body) == b"no!!" and a.done.done()
    b = feed(b"HTTP/1.0 200 OK\r\n\r\nab", b"cd", lost=True)
    assert bytes(b.body) == b"abcd" and b.done.exception() is None


def test_a_stream_that_breaks_off_or_is_unreadable():
    a = feed(HEAD + b"5\r\nhel", lost=True)
    with pytest.raises(WireError, match="connection lost"):
        a.done.result()
    b = feed(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert b.done.exception().kind == "bad_http"
