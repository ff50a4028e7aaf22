"""Layout changes leave behaviour alone: the same sweeps give the same files with the same keys.

The fixtures under tests/fixtures/layout/ were written by ``python -m tests.keyset`` from these
very sweeps run on the code before the layout change (the README's 15-cell matrix on the
simulator, a 2-cell HF sweep and a 2-cell serving sweep). A new key, a lost key, a renamed
file or a changed cell id (its directory name) fails here; a deliberate schema change updates
the fixture in the same commit.

The 15-cell sweep runs here. The other two are the first launches of tests that run those
very sweeps anyway (each a Ray launch with a model or a server), so each is checked there
(``assert_same_shape``): the 2-cell HF sweep in tests/integration/test_launch.py's resume test,
the 2-cell serving sweep in tests/integration/test_serving_sweep.py's transformers-serve resume
test. The three sweeps' overrides are ``tests.keyset.SWEEPS``."""

from __future__ import annotations

from tests.conftest import sweep_dir
from tests.keyset import SWEEPS, assert_same_shape


def test_sweep_gives_the_same_files_and_keys(launch_joined, tmp_path) -> None:
    """The README's 15-cell matrix, joined to the test process's shared Ray."""
    proc = launch_joined("-m", *SWEEPS["sim15"], plots=True)  # the files include the plots
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_same_shape(sweep_dir(tmp_path), "sim15")
