"""A headless Chromium driven over the DevTools protocol on a pipe (--remote-debugging-pipe):
no port, no websocket library. Used by the report.html test and docs/ screenshots.

Chromium reads NUL-terminated JSON commands on fd 3 and writes replies and events on fd 4.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-extensions", "--disable-default-apps", "--mute-audio",
)  # fmt: skip
# A guard against a hung browser, not a measurement: generous on a loaded machine.
REPLY_TIMEOUT_S = 120.0


def _high_pipe() -> tuple[int, int]:
    r, w = os.pipe()
    high = fcntl.fcntl(r, fcntl.F_DUPFD_CLOEXEC, 10), fcntl.fcntl(w, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(r)
    os.close(w)
    return high


def find_chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless browser with one page; collects the page's console errors."""

    def __init__(self, binary: str, width: int = 1400, height: int = 1000) -> None:
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-")
        # Both child ends above fd 9, so the shell's `3<&N 4>&M` cannot overwrite one
        # with the other.
        to_child_r, self._w = _high_pipe()
        self._r, from_child_w = _high_pipe()
        argv = [binary, *FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-pipe",
                f"--window-size={width},{height}", "about:blank"]  # fmt: skip
        # The child gets our pipe ends as its fds 3 (commands in) and 4 (replies out): bash's
        # redirections do it (dash takes one-digit fds only), no Python between fork and exec.
        shell = f'exec "$0" "$@" 3<&{to_child_r} 4>&{from_child_w}'
        self.proc = subprocess.Popen(
            [shutil.which("bash") or "/bin/bash", "-c", shell, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(to_child_r, from_child_w),
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.session: str | None = None
        self.events: list[dict[str, Any]] = []

    # --- protocol -------------------------------------------------------------------------
    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._r], [], [], max(left, 0))
            if not ready:
                raise TimeoutError("chromium did not answer")
            chunk = os.read(self._r, 1 << 16)
            if not chunk:
                raise RuntimeError("chromium closed its DevTools pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: dict | None = None, browser: bool = False) -> dict:
        """A command; its result (events that arrive meanwhile are kept in ``events``)."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not browser:
            msg["sessionId"] = self.session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            if "method" in reply:
                self.events.append(reply)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        for i, event in enumerate(self.events):
            if event["method"] == method:
                return self.events.pop(i)
        while True:
            msg = self._read_message(deadline)
            if msg.get("method") == method:
                return msg
            if "method" in msg:
                self.events.append(msg)

    # --- page -----------------------------------------------------------------------------
    def open(self, url: str) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"}, browser=True)
        attached = self.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}, True
        )
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")
        self.send("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def console_errors(self) -> list[str]:
        """Exceptions, console.error/warn calls and error log entries (CSP, failed loads)."""
        self.send("Runtime.evaluate", {"expression": "1"})  # drain pending events
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                details = p["exceptionDetails"]
                thrown = details.get("exception", {}).get("description", "")
                out.append(f"exception: {details.get('text')} {thrown}")
            elif e["method"] == "Runtime.consoleAPICalled" and p.get("type") in (
                "error",
                "warning",
                "assert",
            ):
                args = " ".join(
                    str(a.get("value", a.get("description"))) for a in p.get("args", [])
                )
                out.append(f"console.{p['type']}: {args}")
            elif e["method"] == "Log.entryAdded" and p["entry"].get("level") in (
                "error",
                "warning",
            ):
                out.append(
                    f"log {p['entry']['level']}: {p['entry'].get('text')} {p['entry'].get('url', '')}"
                )
        return out

    def screenshot(self, path: Path, full: bool = True) -> None:
        """PNG of the viewport, or of the whole page (up to 4000 px) with ``full``."""
        params: dict[str, Any] = {"format": "png"}
        if full:
            height = self.evaluate("document.documentElement.scrollHeight")
            width = self.evaluate("document.documentElement.scrollWidth")
            clip = {"x": 0, "y": 0, "width": width, "height": min(height, 4000), "scale": 1}
            params.update(captureBeyondViewport=True, clip=clip)
        shot = self.send("Page.captureScreenshot", params)
        path.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        try:
            self.send("Browser.close", browser=True)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._r, self._w):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    """`python -m tests.chromium REPORT.html OUT.png [HEIGHT]`: a screenshot of the page's
    top (HEIGHT px, default 2400), and its console errors on stderr (exit 1 if any)."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    binary = find_chromium()
    if len(args) not in (2, 3) or binary is None:
        print(main.__doc__ if binary else "no chromium on PATH", file=sys.stderr)
        return 2
    with Chromium(binary, height=int(args[2]) if len(args) == 3 else 2400) as browser:
        browser.open(Path(args[0]).resolve().as_uri())
        browser.screenshot(Path(args[1]), full=False)
        errors = browser.console_errors()
    for e in errors:
        print(e, file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
