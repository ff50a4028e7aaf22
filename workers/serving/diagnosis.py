"""What a server did, in one line: its HTTP answer, a probe of one of its paths, the part of
its log that says what went wrong.

A failure record names what the server did (answered HTTP 503 with this first line, answered
without streaming, refused the connection, ...) rather than a guess ("not answering", "no
text"); an HTML error page becomes its text on one line; the log excerpt of a failed server
is the part around its last error line (a traceback, an ``ERROR`` line), not only its last
lines, which may be shutdown noise written after the error.
"""

from __future__ import annotations

import html
import json
import re
import urllib.error
import urllib.request

BODY_CHARS = 200
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<!--.*?-->|<[^>]*>", re.S | re.I)
_ERROR_LINE = re.compile(
    r"Traceback \(most recent call last\)|\b(ERROR|CRITICAL|FATAL)\b|\w(Error|Exception)\b"
    r"|\berror:|\bKilled\b|Segmentation fault|core dumped"
)
_TRACEBACK = "Traceback (most recent call last)"


def _json_message(text: str) -> str | None:
    """The message of a JSON error body ({"error": {"message": ...}}, {"detail": ...})."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    for _ in range(3):
        if not isinstance(data, dict):
            break
        inner = next((data[k] for k in ("error", "detail", "message") if data.get(k)), None)
        if isinstance(inner, str):
            return inner
        data = inner
    return None


def one_line(body: str, limit: int = BODY_CHARS) -> str:
    """A body on one line: an HTML page's text without tags, a JSON error's message, else
    the first non-blank line; at most ``limit`` characters."""
    text = str(body or "").strip()
    if text.startswith("<") or re.search(r"</?(html|body|head|title|h1|p|pre)\b", text, re.I):
        text = " ".join(html.unescape(_TAG.sub(" ", text)).split())
    else:
        text = _json_message(text) or text
        text = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def http_answer(status: int, body: str) -> str:
    """'answered HTTP 503: <the body on one line>'."""
    return f"answered HTTP {status}: {one_line(body)}"


def not_streaming(content_type: str | None) -> str:
    return f"answered without streaming (content-type {content_type or 'none'})"


def probe(url: str, timeout_s: float = 5.0) -> str | None:
    """None when ``url`` answers HTTP 200, else what it did, in one line."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (loopback)
            if resp.status == 200:
                return None
            return http_answer(resp.status, resp.read(4096).decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        try:
            body = exc.read(4096).decode("utf-8", "replace")
        except OSError:
            body = ""
        return http_answer(exc.code, body)
    except TimeoutError:
        return f"did not answer within {timeout_s:g} s"
    except urllib.error.URLError as exc:
        return _unreachable(exc.reason, timeout_s)
    except (OSError, ValueError) as exc:
        return _unreachable(exc, timeout_s)


def _unreachable(reason: object, timeout_s: float) -> str:
    if isinstance(reason, ConnectionRefusedError):
        return "refused the connection (nothing listens there)"
    if isinstance(reason, TimeoutError):
        return f"did not answer within {timeout_s:g} s"
    if isinstance(reason, ConnectionError):
        return f"dropped the connection ({type(reason).__name__})"
    return f"could not be reached ({reason})"


def log_excerpt(text: str, lines: int = 40, context: int = 5) -> str:
    """The part of a log that says what went wrong: its last ``lines`` lines when they hold
    its last error line; else the error (from its traceback's first line) with ``context``
    lines after it, then the log's last lines."""
    all_lines = text.splitlines()
    if not all_lines:
        return ""
    tail_from = max(0, len(all_lines) - lines)
    last_bad = next(
        (i for i in range(len(all_lines) - 1, -1, -1) if _ERROR_LINE.search(all_lines[i])), None
    )
    if last_bad is None or last_bad >= tail_from:
        return "\n".join(all_lines[tail_from:])
    start = last_bad - context
    for i in range(last_bad, max(-1, last_bad - lines), -1):  # the traceback's first line
        if _TRACEBACK in all_lines[i]:
            start = i
            break
    start = max(0, start)
    end = min(len(all_lines), last_bad + context + 1)
    keep_tail = max(10, lines - (end - start))
    tail_from = max(end, len(all_lines) - keep_tail)
    skipped = tail_from - end
    mid = [f"[... {skipped} lines left out ...]"] if skipped else []
    return "\n".join(all_lines[start:end] + mid + all_lines[tail_from:])
