"""A small OpenAI-compatible completions server (standard library only) that misbehaves on
request and says in its log what it does, for the tests of how a failed server is reported.

    python tests/standins/talking.py --port 8000 --mode ok

Modes: ``ok`` (a streaming answer of ``max_tokens`` chunks), ``html500`` (completions answer
HTTP 500 with an HTML error page), ``json`` (completions answer 200 without streaming, as
``application/json``), ``health503`` (the health path answers 503 "loading"), ``down500``
(health and /v1/models answer 500 with an HTML page), ``crash`` (a traceback at start, then
60 lines of shutdown noise, exit 1). Every request is logged as one line ``request N: PATH
MARK`` (``--mark`` tells servers or cells apart). ``--error-on-term``: on SIGTERM it writes
``ERROR: stuck in <...>`` and exits (what a hung engine says when it is stopped).

``serve(port, mode)`` runs the same server in a thread of the calling process.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HTML_PAGE = """<!DOCTYPE html>
<html>
<head><title>500 Internal Server Error</title><style>body { color: red; }</style></head>
<body>
<h1>Internal Server Error</h1>
<p>The engine crashed:
   CUDA error: an illegal memory access was encountered</p>
<hr><address>talking/1.0</address>
</body>
</html>
"""


class Talking(BaseHTTPRequestHandler):
    mode = "ok"
    mark = ""
    count = 0
    lock = threading.Lock()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's name)
        pass  # one line per request is written by _note

    def _note(self) -> None:
        with self.lock:  # the line whole: print writes its text and its newline apart, and
            type(self).count += 1  # two handler threads' lines ran into each other
            n = type(self).count
            sys.stdout.write(f"request {n}: {self.path} {self.mark}".rstrip() + "\n")
            sys.stdout.flush()

    def _answer(self, status: int, body: str, ctype: str) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._note()
        if self.mode == "down500":
            return self._answer(500, HTML_PAGE, "text/html")
        if self.path == "/health" and self.mode == "health503":
            return self._answer(503, "loading the model\nplease wait", "text/plain")
        if self.path == "/v1/models":
            return self._answer(200, json.dumps({"data": [{"id": "talking"}]}), "application/json")
        return self._answer(200, "{}", "application/json")

    def do_POST(self) -> None:  # noqa: N802 (http.server's name)
        self._note()
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
        if self.mode == "html500":
            return self._answer(500, HTML_PAGE, "text/html; charset=utf-8")
        n = int(body.get("max_tokens") or 1)
        if self.mode == "json":
            choice = {"index": 0, "text": " t" * n, "finish_reason": "length"}
            return self._answer(200, json.dumps({"choices": [choice]}), "application/json")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        for k in range(n):
            chunk = {"choices": [{"index": 0, "text": f" t{k}", "finish_reason": None}]}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
        usage = {"prompt_tokens": 1, "completion_tokens": n, "total_tokens": n + 1}
        last = {"choices": [{"index": 0, "text": "", "finish_reason": "length"}], "usage": usage}
        self.wfile.write(f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode())
        self.close_connection = True


def make_server(port: int, mode: str, mark: str = "") -> ThreadingHTTPServer:
    handler = type("TalkingHandler", (Talking,), {"mode": mode, "mark": mark, "count": 0})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    return server


def serve(port: int, mode: str) -> ThreadingHTTPServer:
    """The server in a daemon thread of this process (``shutdown()`` and ``server_close()``
    it when done)."""
    server = make_server(port, mode)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _crash() -> None:
    print("talking server starting", flush=True)
    print("Traceback (most recent call last):", flush=True)
    print('  File "engine.py", line 7, in load', flush=True)
    print("ValueError: the checkpoint has 3 layers, the config says 4", flush=True)
    for k in range(60):
        print(f"shutting down helper {k}", flush=True)
    raise SystemExit(1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--mode", default="ok")
    p.add_argument("--mark", default="")
    p.add_argument("--error-on-term", action="store_true")
    a = p.parse_args()
    if a.mode == "crash":
        _crash()
    if a.error_on_term:

        def on_term(signum: int, frame: Any) -> None:
            print("ERROR: stuck in all_reduce (rank 0 waits for rank 1)", flush=True)
            sys.exit(1)

        signal.signal(signal.SIGTERM, on_term)
    print(f"talking server on port {a.port} mode {a.mode}", flush=True)
    make_server(a.port, a.mode, a.mark).serve_forever()


if __name__ == "__main__":
    main()
