"""The project directory Ray ships to its workers (hydra.launcher.ship_working_dir): when Ray
refuses it (over its size limit: a model or a virtual environment inside the project), the
launch says so in one line with what is largest there, walked as Ray walks it. The refusal
itself, from a real Ray: tests/integration/test_bad_input.py."""

from __future__ import annotations

import os

from ray.exceptions import RuntimeEnvSetupError

from hydra_plugins.ray_cells_launcher import _cluster


def _file(path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)  # sparse: its size is what Ray counts, no bytes written


def test_largest_entries_are_those_ray_ships(tmp_path):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    _file(project / "launch.py", 1_000)
    _file(project / "docs" / "a.md", 20_000)
    _file(project / "docs" / "deep" / "b.md", 30_000)
    _file(project / "weights" / "model.safetensors", 5_000_000)
    _file(project / ".venv" / "big.so", 9_000_000)  # our excludes
    _file(project / "multirun" / "x" / "record.json", 8_000_000)
    _file(project / "ignored" / "big.bin", 7_000_000)  # .gitignore
    _file(project / "private.bin", 6_000_000)  # .rayignore
    (project / ".gitignore").write_text("ignored/\n")
    (project / ".rayignore").write_text("private.bin\n")
    _file(elsewhere / "env" / "lib.so", 3_000_000)
    os.symlink(elsewhere, project / "linked")  # Ray follows it: its files are shipped too

    got = _cluster.shipped_sizes(str(project), top=3)
    assert got == [("weights", 5_000_000), ("linked", 3_000_000), ("docs", 50_000)]
    assert len(_cluster.shipped_sizes(str(project), top=10)) == 6  # + launch.py, the 2 ignore files


def test_refusal_is_one_line_with_the_setting_the_reason_and_the_ways_out(tmp_path):
    _file(tmp_path / "weights" / "w.bin", 3 * 2**20)
    refused = RuntimeEnvSetupError(
        f"Failed to upload working_dir {tmp_path} to the Ray cluster: Package size (3.00MiB) "
        "exceeds the maximum size of 0.19MiB. To exclude large files, add them to ..."
    )
    msg = str(_cluster.unshippable(refused, str(tmp_path)))
    assert "\n" not in msg
    assert msg.startswith("hydra.launcher.ship_working_dir=true: ")
    assert "(Package size (3.00MiB) exceeds the maximum size of 0.19MiB)" in msg
    assert "largest there: weights (3.0 MiB)." in msg
    assert ".gitignore or .rayignore" in msg and "ship_working_dir=false" in msg
