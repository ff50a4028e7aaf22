"""Layout changes leave behaviour alone: the same sweeps give the same files with the same keys.

The fixtures under tests/fixtures/layout/ were written by ``python -m tests.keyset`` from these
very sweeps run on the code before the layout change (the README's 15-cell matrix on the
simulator, a 2-cell HF sweep and a 2-cell serving sweep). A new key, a lost key, a renamed
file or a changed cell id (its directory name) fails here; a deliberate schema change updates
the fixture in the same commit.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT, sweep_dir
from tests.keyset import sweep_shape


@pytest.fixture
def launch(launch_joined):
    """This module's launches join the test process's shared Ray (conftest.py)."""
    return launch_joined


FIXTURES = ROOT / "tests" / "fixtures" / "layout"

SWEEPS = {
    "sim15": ["batch=1,2,4,8,16", "seq=64,128,256", "backend=sim"],
    "hf2": ["batch=1,2", "seq=8", "bench=quick"],
    "serve2": [
        "workload=serve",
        "concurrency=1,2",
        "seq=8",
        "prompt_len=16",
        "workload.num_requests=4",
    ],
}


@pytest.mark.parametrize("name", sorted(SWEEPS))
def test_sweep_gives_the_same_files_and_keys(name: str, launch, tmp_path) -> None:
    proc = launch("-m", *SWEEPS[name], plots=True)  # the files include the plots
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = sweep_shape(sweep_dir(tmp_path))
    want = json.loads((FIXTURES / f"{name}.json").read_text())
    for part in want:
        if part in ("csv_columns", "report_headings"):
            assert got[part] == want[part], part
        else:
            missing = sorted(set(want[part]) - set(got[part]))
            extra = sorted(set(got[part]) - set(want[part]))
            assert not missing and not extra, f"{part}: missing {missing}, extra {extra}"
