"""Bad input through a real `python launch.py` subprocess: exit 2, one `error:` line naming the
setting, no traceback, nothing written. The whole table (tests/unit/test_bad_input.py) runs
the same code in-process; here a single run, a sweep, and what needs a Ray cluster to refuse."""

from __future__ import annotations

import pytest

from tests.unit.test_bad_input import _fill

CASES = [
    # (overrides, words the message must contain)
    (["batch=0"], ["batch=0", ">= 1"]),
    (["-m", "batch=1,0"], ["batch=0", ">= 1"]),
    (["-m", "model.path={gpt2}", "seq=8,64"], ["prompt_len + seq", "64 positions"]),
    # a type error in a single run: Hydra's merge error, as the one line a sweep gives
    (["batch=1.5"], ["batch=1.5", "Integer"]),
    (["-m", "backend=sim", "slo.ttft_ms=nan"], ["slo.ttft_ms=nan", "finite"]),
    # the project directory over what Ray ships (its limit lowered to 200 kB for this launch:
    # the checkout is ~2 MB): Ray's reason and what is largest, not Ray's traceback. On a
    # private Ray: a cluster that has the package already (the shared one) is not sent it.
    (
        ["-m", "batch=1", "backend=sim", "device=cpu", "bench=quick"],
        ["hydra.launcher.ship_working_dir", "exceeds", "largest there: ", ".rayignore"],
        {"RAY_max_grpc_message_size": "200000"},
    ),
]
# A device the cluster does not have: refused once the launch has joined Ray (the test
# process's shared CPU-only cluster, tests/integration/conftest.py; a private Ray refuses it
# the same way, as a sweep that asks for more than a node has).
ON_RAY = [
    (["-m", "batch=1", "device=cuda"], ["GPU", "no node"]),
    (
        [
            "-m",
            "batch=1,2",
            "seq=8",
            "backend=sim",
            "device=npu",
            "model=llama3_8b",
            "model.load_format=dummy",
            "bench=quick",
        ],
        ["NPU", "no node"],
    ),  # fmt: skip
]


def _params():
    """Each case with its launch's extra environment ({} unless it gives one) and whether
    it joins the shared cluster."""
    for cases, joined in ((CASES, False), (ON_RAY, True)):
        for overrides, words, *extra in cases:
            env = extra[0] if extra else {}
            name = " ".join(overrides) + "".join(f" {k}={v}" for k, v in env.items())
            yield pytest.param(overrides, words, env, joined, id=name)


@pytest.mark.parametrize("overrides,words,env,joined", list(_params()))
def test_bad_input_exits_2_with_one_error_line(request, tmp_path, overrides, words, env, joined):
    launch = request.getfixturevalue("launch_joined" if joined else "launch")
    proc = launch(*_fill(overrides, tmp_path), timeout=120, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr[-3000:]
    for word in words:
        assert word in errors[0], f"{word!r} not in:\n{out[-2000:]}"
    assert "Traceback" not in out, out[-3000:]
    assert not list(tmp_path.rglob("record.json"))
    assert not list(tmp_path.rglob("results.jsonl"))
    assert not (tmp_path / "outputs").exists()
    assert not (tmp_path / "multirun").exists()  # a refused sweep leaves no directory
