"""`python -m aggregate.check`: published rows against the roofline bound, exit codes, usage
errors, and the source article's two tables (docs/article_tables/)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
from pathlib import Path

import pytest

from aggregate.check import EXIT_IMPOSSIBLE, EXIT_OK, EXIT_USAGE, run
from bounds.roofline import bounds_for, shipped_model_config
from bounds.specs import SPECS
from tests.conftest import ROOT

TABLES = ROOT / "docs" / "article_tables"


def check(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m aggregate.check ARGS`, run in this process (the real command line:
    tests/integration/test_processes.py)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run(list(args))
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code if isinstance(exc.code, int) else EXIT_USAGE
    argv = ["python", "-m", "aggregate.check", *args]
    return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "table.csv"
    path.write_text(text)
    return str(path)


def test_possible_and_impossible_rows(tmp_path):
    b = bounds_for(
        shipped_model_config("llama3_8b"), "float16", SPECS["nvidia_h100_sxm"], 1, 128, 32
    )
    table = write(
        tmp_path,
        "batch,seq,latency_s,tokens_per_s\n"
        f"1,128,{2 * b.e2e_s},{0.5 * b.output_tokens_per_s}\n"  # half the bound: fine
        f"1,128,{0.5 * b.e2e_s},\n"  # twice as fast as physics
        f"1,128,,{3 * b.output_tokens_per_s}\n",
    )
    proc = check(table, "--model", "llama3_8b", "--device", "NVIDIA H100 80GB HBM3")
    assert proc.returncode == EXIT_IMPOSSIBLE, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[-4].endswith("possible") and "IMPOSSIBLE" not in lines[-4]
    assert "IMPOSSIBLE: latency 0.50x its lower bound" in lines[-3]
    assert "IMPOSSIBLE: 3.0x the tokens/s bound" in lines[-2]
    assert lines[-1] == "2 of 3 rows impossible on nvidia_h100_sxm"


def test_all_possible_exits_0(tmp_path, capsys):
    table = write(tmp_path, "batch,seq_len,e2e_s\n1,16,10.0\n8,16,10.0\n")
    assert run([table, "--model", "llama3_8b", "--device", "nvidia_h200"]) == EXIT_OK
    assert "0 of 2 rows impossible" in capsys.readouterr().out


def test_model_config_path(tmp_path, capsys):
    cfg = tmp_path / "m"
    cfg.mkdir()
    (cfg / "config.json").write_text(json.dumps(shipped_model_config("llama3_8b")))
    table = write(tmp_path, "batch,seq,throughput\n1,128,1000\n")
    assert run([table, "--model-config", str(cfg), "--device", "ascend_910b"]) == EXIT_IMPOSSIBLE
    assert capsys.readouterr().out.startswith("m float16")


@pytest.mark.parametrize(
    "text, args, message",
    [
        (
            "batch,seq,latency_s\n1,8,1\n",
            ["--model", "gpt5"],
            "known models are llama3_70b, llama3_8b",
        ),
        ("batch,seq,latency_s\n1,8,1\n", ["--device", "TPU v9"], "known devices are "),
        ("batch,latency_s\n1,1\n", [], "missing seq or seq_len"),
        ("batch,seq\n1,8\n", [], "a latency (latency_s, e2e_s, latency) or throughput"),
        ("batch,seq,latency_s\n1,eight,1\n", [], "line 2"),
        ("batch,seq,latency_s\n", [], "no rows"),
        ("batch,seq,latency_s\n1,8,1\n", ["--dtype", "float4"], "unknown dtype"),
    ],
)
def test_usage_errors_exit_2(tmp_path, capsys, text, args, message):
    table = write(tmp_path, text)
    base = {"--model": "llama3_8b", "--device": "atlas_800t"}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    argv = [table, *[x for kv in base.items() for x in kv]]
    assert run(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    if "known devices" in message:
        assert "ascend_910" in err and "nvidia_h100_sxm" in err


def test_article_batch_table_is_impossible_on_atlas_800t():
    proc = check(str(TABLES / "batch_seq128.csv"), "--model", "llama3_8b", "--device", "atlas_800t")
    assert proc.returncode == EXIT_IMPOSSIBLE
    assert proc.stdout.splitlines()[-1] == "5 of 5 rows impossible on ascend_910"
    # batch 16: 27,500 tokens/s published, bound ~1,284
    assert re.search(r"27500\.0\s+1284\.4\s+IMPOSSIBLE: 21\.4x the tokens/s bound", proc.stdout)


def test_article_stress_table_is_impossible_on_atlas_800t(capsys):
    argv = [str(TABLES / "stress.csv"), "--model", "llama3_8b", "--device", "atlas_800t"]
    assert run(argv) == EXIT_IMPOSSIBLE
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "15 of 15 rows impossible on ascend_910"
    # batch 1, seq 64: 1,704 tokens/s published, bound ~82
    assert re.search(r"1704\.2\s+81\.8\s+IMPOSSIBLE: 20\.8x the tokens/s bound", out)


def test_article_tables_even_on_the_most_generous_910b_figures(capsys):
    # 1.6 TB/s: the three batch-16 stress rows need ~100% of peak bandwidth (within the 2%
    # tolerance); every other row is still impossible
    assert run([str(TABLES / "stress.csv"), "--model", "llama3_8b", "--device", "ascend_910b"]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "12 of 15 rows impossible on ascend_910b"
    assert (
        run([str(TABLES / "batch_seq128.csv"), "--model", "llama3_8b", "--device", "ascend_910b"])
        == 1
    )
    assert capsys.readouterr().out.splitlines()[-1] == "5 of 5 rows impossible on ascend_910b"
