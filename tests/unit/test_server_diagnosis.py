"""What a failed server did, said in one line: HTTP errors, HTML pages, answers without
streaming, the log part that holds the error; each cell's own server log; the stale partial
results of a killed sweep. Servers here are `tests.standins.talking` in a thread of this
process, on 127.0.0.1 (issue 22, "Servers misdiagnosed" and "Leftovers")."""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

import pytest

from aggregate.leftovers import PARTIAL_RESULTS, SWEEP_LOCK, remove_stale_partial
from jobs.config import from_values
from tests.standins.talking import HTML_PAGE, serve
from workers import model_cache
from workers import run as measure
from workers.serving.diagnosis import log_excerpt, one_line, probe
from workers.serving.process import ServerFailed, ServerProcess, free_port


@pytest.fixture
def talking():
    """`talking(mode)`: the base URL of a talking server in this process."""
    servers = []

    def _start(mode: str) -> str:
        port = free_port()
        servers.append(serve(port, mode))
        return f"http://127.0.0.1:{port}"

    yield _start
    for s in servers:
        s.shutdown()
        s.server_close()
    model_cache.drop_models()


def url_cell(tiny_cache: Path, url: str):
    return from_values({
        "workload": {"name": "serve", "num_requests": 2, "warmup_requests": 0},
        "server": {"kind": "url", "url": url, "api": "vllm", "request_timeout_s": 20},
        "model": {"cache_dir": str(tiny_cache)}, "device": {"name": "cpu"},
        "seq": 4, "prompt_len": 4, "concurrency": 1,
    })  # fmt: skip


def first_line(rec: dict) -> str:
    return rec["error"]["message"].splitlines()[0]


def test_an_html_page_a_json_error_and_a_text_body_become_one_line():
    page = one_line(HTML_PAGE)
    assert page.startswith("500 Internal Server Error Internal Server Error The engine crashed")
    assert "<" not in page and "color" not in page and "\n" not in page and len(page) <= 200
    assert one_line('{"error": {"message": "max_tokens too large", "code": 400}}') == (
        "max_tokens too large"
    )
    assert one_line("loading the model\nplease wait") == "loading the model"
    assert one_line("x" * 500).endswith("…") and len(one_line("x" * 500)) == 200
    assert one_line("") == "(empty body)"


def test_a_probe_says_what_the_server_did(talking):
    assert probe(talking("ok") + "/health") is None
    assert probe(talking("health503") + "/health") == "answered HTTP 503: loading the model"
    assert probe(f"http://127.0.0.1:{free_port()}/health").startswith("refused the connection")


def test_a_server_answering_http_errors_is_not_called_silent(talking, tiny_cache):
    rec = measure.run_cell(url_cell(tiny_cache, talking("down500")))
    assert rec["status"] == "failed"
    line = first_line(rec)
    assert "answers errors" in line and "not answering" not in line, line
    assert "/health answered HTTP 500: 500 Internal Server Error" in line
    assert "<" not in rec["error"]["message"]
    nobody = measure.run_cell(url_cell(tiny_cache, f"http://127.0.0.1:{free_port()}"))
    assert "is not answering" in first_line(nobody) and "refused the connection" in first_line(
        nobody
    )


def test_an_html_error_page_of_a_request_is_one_line(talking, tiny_cache):
    rec = measure.run_cell(url_cell(tiny_cache, talking("html500")))
    assert rec["status"] == "failed"
    message = rec["error"]["message"]
    assert "\n" not in message and "<" not in message and len(message) < 400, message
    assert "answered HTTP 500: 500 Internal Server Error" in message
    assert "illegal memory access" in message


def test_an_answer_without_streaming_says_so(talking, tiny_cache):
    rec = measure.run_cell(url_cell(tiny_cache, talking("json")))
    assert rec["status"] == "failed"
    assert "answered without streaming (content-type application/json)" in first_line(rec)
    assert "no text" not in rec["error"]["message"]


def test_the_log_excerpt_holds_the_error_line_not_only_the_noise_after_it():
    lines = ["starting", "Traceback (most recent call last):", '  File "x.py", line 1',
             "ValueError: boom"] + [f"noise {k}" for k in range(80)]  # fmt: skip
    part = log_excerpt("\n".join(lines), lines=40)
    assert "ValueError: boom" in part and "Traceback (most recent call last):" in part
    assert part.splitlines()[-1] == "noise 79" and "lines left out" in part
    assert len(part.splitlines()) <= 45
    quiet = "\n".join(f"line {k}" for k in range(100))
    assert log_excerpt(quiet, lines=40).splitlines() == [f"line {k}" for k in range(60, 100)]
    exc = ServerFailed("could not start", "exit code 1\nsecond line", part)
    assert str(exc).splitlines()[0] == "server could not start: exit code 1 second line"
    assert "ValueError: boom" in str(exc)


def test_a_reused_servers_cell_log_holds_only_its_own_lines(tmp_path):
    proc = ServerProcess([], "http://127.0.0.1:1", "/health", "talking")
    proc.log_path = tmp_path / "server.log"
    proc.log_path.write_text("server started\nrequest 1: cell A\n")
    start = proc.log_size()
    with proc.log_path.open("a") as f:
        f.write("request 2: cell B\n")
    second = proc.cell_log(start)
    assert "request 2: cell B" in second
    assert "cell A" not in second and "server started" not in second
    assert proc.cell_log(0).startswith("server started")


def _hold_lock(sweep: Path) -> int:
    fd = os.open(sweep / SWEEP_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_a_stale_partial_is_removed_and_a_live_ones_is_kept(tmp_path):
    partial = tmp_path / PARTIAL_RESULTS
    partial.write_text('{"cell_dir": "a"}\n')
    fd = _hold_lock(tmp_path)  # a live sweep
    try:
        assert remove_stale_partial(tmp_path) is None and partial.is_file()
    finally:
        os.close(fd)
    assert remove_stale_partial(tmp_path) == partial and not partial.exists()
    # No lock file: stale when older than the newest record.
    (tmp_path / SWEEP_LOCK).unlink()
    partial.write_text("{}\n")
    old = time.time() - 60
    os.utime(partial, (old, old))
    (tmp_path / "cell").mkdir()
    (tmp_path / "cell" / "record.json").write_text("{}")
    assert remove_stale_partial(tmp_path) == partial
    partial.write_text("{}\n")  # newer than every record: may be a sweep's
    assert remove_stale_partial(tmp_path) is None and partial.is_file()


def test_aggregate_and_a_sweeps_start_remove_the_stale_partial(tmp_path):
    from aggregate.__main__ import main
    from sweep.finish import SweepResults

    partial = tmp_path / PARTIAL_RESULTS
    partial.write_text('{"cell_dir": "gone"}\n')
    (tmp_path / SWEEP_LOCK).write_text("pid 1")  # left by a killed sweep, not held
    main([str(tmp_path), "--quiet", "--no-plots"])  # no record: exit 2, the partial is gone
    assert not partial.exists()
    partial.write_text('{"cell_dir": "gone"}\n')
    SweepResults(tmp_path)
    assert not partial.exists()


@pytest.mark.parametrize(
    ("what", "log", "taken"),
    [
        ("could not start", "OSError: [Errno 98] Address already in use", True),
        ("could not start", "ERROR:    [Errno 98] error while attempting to bind on address "
                            "('127.0.0.1', 30000): address already in use", True),  # uvicorn
        ("could not start", "ValueError: port_base at 30005 is not available in 30 seconds. "
                            "port_base is used by a process already.", True),  # SGLang
        ("could not start", "Port is already in use. dist_init_port=None port_base=30005", True),
        ("could not start", "torch_npu detected, but NPU device is not available or visible.",
         False),
        ("could not start", "ValueError: the checkpoint has 3 layers, the config says 4", False),
        ("hung", "OSError: [Errno 98] Address already in use", False),  # alive: not this case
    ],
)  # fmt: skip
def test_a_taken_port_is_told_from_other_start_failures(what, log, taken) -> None:
    from workers.serving.server import port_taken

    assert port_taken(ServerFailed(what, "exit code 1", log)) is taken
