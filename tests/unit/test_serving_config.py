"""Serving cells' config: validation, identity (static ids unchanged), server reuse keys,
the engines' command lines against their real argument parsers where they import."""

from __future__ import annotations

import json
import re

import pytest

from jobs.config import CellConfig, ConfigError, from_values
from jobs.identity import PlannedCell, cell_id, model_key
from jobs.record import FLAT_KEYS, Outcome, Status, build_record
from workers.serving.engines import request_body, server_argv


def serve(**values) -> CellConfig:
    values.setdefault("workload", {"name": "serve"})
    return from_values(values)


def test_static_cell_ids_are_unchanged():
    # The id of the default static cell before serving cells existed (main at e463453).
    assert cell_id(CellConfig()) == "535a234aef0a4fb5"
    static = PlannedCell.of(CellConfig())
    assert static.cell_dir == "tiny-hf-auto-b4-s128-p32-535a234a"
    # A compiled cell's id from before backend.hf.compile_backend (main at 914784c): the
    # default backend (inductor) keeps it, another backend is another cell (and is refused
    # without compile: tests/unit/test_bad_input.py).
    compiled = {"backend": {"hf": {"compile": True}}}
    assert cell_id(from_values(compiled)) == "32f7d4b0efa314c7"
    traced = {"backend": {"hf": {"compile": True, "compile_backend": "eager"}}}
    assert cell_id(from_values(traced)) != "32f7d4b0efa314c7"
    assert cell_id(from_values({"backend": {"hf": {"compile": False}}})) == "535a234aef0a4fb5"


def test_serving_identity_and_server_reuse_key():
    a, b = serve(concurrency=1, seq=64), serve(concurrency=8, seq=64)
    assert cell_id(a) != cell_id(b)
    assert model_key(a) == model_key(b)  # one server for every load level
    other = serve(concurrency=1, seq=64, server={"transformers": {"cb_num_blocks": 64}})
    assert model_key(other) != model_key(a)
    # Options of other servers, the static backend and client timeouts do not change what is
    # measured (backend=sim does: the simulator's serving mode, tests/unit/test_sim_serving.py).
    same = serve(concurrency=1, seq=64, server={"vllm": {"max_num_seqs": 4}},
                 backend={"name": "sglang"}, batch=16)  # fmt: skip
    assert cell_id(same) == cell_id(a)
    slow = serve(concurrency=1, seq=64, server={"request_timeout_s": 5})
    assert cell_id(slow) == cell_id(a)
    assert PlannedCell.of(a).cell_dir.startswith("tiny-serve-transformers-auto-c1-s64-p32-")
    rate = PlannedCell.of(serve(request_rate=2.5, seq=64))
    assert "-r2.5-" in rate.cell_dir


@pytest.mark.parametrize(
    "values, message",
    [
        ({"concurrency": 4}, "add workload=serve"),
        ({"workload": {"name": "serve"}, "concurrency": 0}, "concurrency=0"),
        ({"workload": {"name": "serve"}, "request_rate": -1.0}, "request_rate=-1.0"),
        ({"workload": {"name": "serve"}, "request_rate": float("inf")}, "finite"),
        ({"workload": {"name": "serve", "burstiness": 0}}, "workload.burstiness"),
        ({"workload": {"name": "serve", "num_requests": 0}}, "duration_s"),
        ({"workload": {"name": "serve", "prefix_len": 40}, "prompt_len": 32}, "prefix_len"),
        ({"workload": {"name": "serve", "seq_dist": {"dist": "zipf"}}}, "seq_dist.dist"),
        ({"workload": {"name": "batch"}}, "workload='batch'"),
        ({"server": {"kind": "tgi"}}, "server='tgi'"),
        ({"server": {"kind": "url"}}, "server.url=None"),
        ({"server": {"url": "localhost:8000"}}, "server.url='localhost:8000'"),
        ({"server": {"kind": "sglang", "url": "http://h:1"}}, "only for server=url"),
        ({"server": {"kind": "command"}}, "server.command"),
        ({"slo": {"ttft_ms": -5}}, "slo.ttft_ms"),
    ],
)
def test_bad_serving_input_names_the_setting(values, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        from_values(values)


def test_server_url_selects_the_url_kind_and_default_load():
    cell = serve(server={"url": "http://127.0.0.1:9000"})
    assert cell.server.kind == "url" and cell.concurrency == 1


def test_serving_record_keys():
    cell = serve(concurrency=4, seq=64, slo={"ttft_ms": 500})
    rec = build_record(cell, Outcome(status=Status.OK, fields={"output_tokens_per_s": 10.0}))
    assert set(FLAT_KEYS) <= set(rec)
    assert rec["workload"] == "serve" and rec["batch"] is None
    assert rec["backend"] == "serve-transformers" and rec["server"] == "transformers"
    assert rec["concurrency"] == 4 and rec["slo_ttft_ms"] == 500 and rec["slo_tpot_ms"] is None
    static = build_record(CellConfig(), Outcome())
    assert static["workload"] == "static" and static["concurrency"] is None


def test_request_bodies_force_exact_lengths_each_servers_way():
    tf = request_body("transformers", "m", "hi", 8)
    assert "ignore_eos" not in tf and "min_tokens" not in tf  # transformers serve rejects them
    assert json.loads(tf["generation_config"]) == {
        "max_new_tokens": 8, "eos_token_id": -1, "do_sample": False
    }  # fmt: skip
    for api in ("sglang", "vllm"):
        body = request_body(api, "m", "hi", 8)
        assert body["min_tokens"] == 8 and body["ignore_eos"] is True and body["max_tokens"] == 8
    plain = request_body("openai", "m", "hi", 8)
    assert set(plain) == {"model", "prompt", "max_tokens", "temperature", "stream",
                          "stream_options"}  # fmt: skip


def test_transformers_argv_parses_with_the_real_cli():
    typer = pytest.importorskip("typer")
    from transformers.cli.transformers import app

    cell = serve(server={"transformers": {"cb_num_blocks": 32, "attn_implementation": "sdpa"}})
    argv = server_argv(cell, "cpu", "/models/tiny", 8123)
    assert argv[1:4] == ["-m", "transformers.cli.transformers", "serve"]
    group = app if hasattr(app, "commands") else typer.main.get_command(app)
    serve_cmd = group.commands["serve"]
    ctx = serve_cmd.make_context("serve", list(argv[4:]))
    assert ctx.params["port"] == 8123 and ctx.params["host"] == "127.0.0.1"
    assert ctx.params["continuous_batching"] is True and ctx.params["cb_num_blocks"] == 32
    assert ctx.params["force_model"] == "/models/tiny" and ctx.params["device"] == "cpu"
    with pytest.raises(Exception, match="ignore"):  # the parser really rejects bad flags
        serve_cmd.make_context("serve", ["--ignore-eos"])


def test_sglang_argv_parses_with_server_args():
    server_args = pytest.importorskip("sglang.srt.server_args")
    import argparse

    cell = serve(server={"kind": "sglang", "sglang": {"tp_size": 2}})
    argv = server_argv(cell, "npu", "/models/llama", 30000)
    parser = argparse.ArgumentParser()
    server_args.ServerArgs.add_cli_args(parser)
    args = parser.parse_args(argv[3:])
    assert args.attention_backend == "ascend" and args.tp_size == 2 and args.port == 30000


def test_sglang_argv_has_the_engine_backends_ascend_arguments():
    cell = serve(server={"kind": "sglang"})
    argv = server_argv(cell, "npu", "/models/llama", 30000)
    assert argv[1:3] == ["-m", "sglang.launch_server"]
    assert "--skip-tokenizer-init" not in argv  # prompts are text
    for flag, value in (("--device", "npu"), ("--attention-backend", "ascend"),
                        ("--port", "30000"), ("--dtype", "float16")):  # fmt: skip
        assert argv[argv.index(flag) + 1] == value
    assert "--disable-radix-cache" in argv


def test_vllm_argv_parses_with_vllms_parser(monkeypatch):
    monkeypatch.setenv("VLLM_TARGET_DEVICE", "cpu")  # vLLM's parser asks for a device type
    cli_args = pytest.importorskip("vllm.entrypoints.common.cli_args")  # vllm 0.33
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    cell = serve(server={"kind": "vllm", "vllm": {"max_num_seqs": 8}})
    argv = server_argv(cell, "cuda", "/models/llama", 8000)
    parser = cli_args.make_arg_parser(FlexibleArgumentParser())
    args = parser.parse_args(argv[5:])
    assert args.max_num_seqs == 8 and args.port == 8000


def test_command_argv_fills_its_placeholders():
    cell = serve(server={"kind": "command", "command": ["{python}", "-m", "x", "--port", "{port}",
                                                        "--model", "{model_path}"]})  # fmt: skip
    argv = server_argv(cell, "npu", "/m", 9)
    assert argv[1:] == ["-m", "x", "--port", "9", "--model", "/m"]


def test_command_and_url_servers_have_identities():
    a = serve(server={"kind": "command", "command": ["x", "{port}"], "extra_args": ["--a"]})
    b = serve(server={"kind": "command", "command": ["x", "{port}"], "extra_args": ["--b"]})
    assert cell_id(a) != cell_id(b) and model_key(a) != model_key(b)
    assert a.server.label() == "command command=['x', '{port}'] extra_args=['--a']"
    url = serve(server={"url": "http://127.0.0.1:9000"})
    assert url.server.label() == "url http://127.0.0.1:9000" and cell_id(url)


def test_missing_engines_give_their_install_hint(monkeypatch):
    from sweep.validate import check_serving

    # sglang's and vLLM's code is installed here for the contract tests: a host without them.
    monkeypatch.setattr("sweep.validate.installed", lambda module: module not in ("sglang", "vllm"))
    for kind, hint in (("sglang", "pip install '.[sglang]'"), ("vllm", "pip install vllm")):
        with pytest.raises(ConfigError, match=re.escape(hint)):
            check_serving(serve(server={"kind": kind}))
    with pytest.raises(ConfigError, match="model.path=DIR"):
        check_serving(serve(model={"name": "llama3_8b", "load_format": "dummy"}))


@pytest.mark.parametrize(
    "args, message",
    [
        (["concurrency=2"], "error: concurrency and request_rate are serving axes"),
        (["workload=serve", "server=vllm"], "error: server=vllm needs vLLM"),
        (["workload=serve", "workload.burstiness=0"], "error: workload.burstiness=0.0"),
        (["workload=serve", "server.url=ftp://x"], "error: server.url='ftp://x'"),
    ],
)
def test_bad_serving_input_exits_with_one_line_and_writes_nothing(
    launch_here, tmp_path, monkeypatch, args, message
):
    # vLLM's code is installed here for its contract tests: the host is made to lack it.
    monkeypatch.setattr("sweep.validate.installed", lambda module: module != "vllm")
    proc = launch_here("-m", *args, "concurrency=1,2" if "concurrency=2" not in args else "seq=8")
    assert proc.returncode != 0
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and message.removeprefix("error: ") in lines[0], proc.stderr[-2000:]
    assert not list(tmp_path.rglob("record.json"))
