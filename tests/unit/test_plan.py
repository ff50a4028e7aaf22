"""Planning a job into its cell, once: typed values, unknown keys, the resolved device in the
identity, sweep directory names, and the one record builder."""

from __future__ import annotations

import pytest

from jobs.config import CellConfig, ConfigError, DeviceConfig, from_values
from jobs.identity import PlannedCell, cell_id
from jobs.record import FLAG_MEANINGS, Flag, Outcome, Status, build_record
from sweep.plan import plan_cell, sweep_name


def test_values_are_converted_like_omegaconf_and_checked():
    cell = from_values({"batch": "4", "backend": {"sim": {"efficiency": 1}}, "model": {}})
    assert cell.batch == 4 and cell.backend.sim.efficiency == 1.0
    with pytest.raises(ConfigError, match="batch='x' is not allowed.*Integer"):
        from_values({"batch": "x"})
    with pytest.raises(ConfigError, match="batch=0 is not allowed"):
        from_values({"batch": 0})


def test_unknown_keys_name_the_closest_known_one():
    with pytest.raises(
        ConfigError, match=r"batchh is not a known setting \(did you mean batch\?\)"
    ):
        from_values({"batchh": 16})
    with pytest.raises(ConfigError, match=r"model\.dtpye .*did you mean model\.dtype"):
        from_values({"model": {"dtpye": "float16"}})


def test_auto_is_resolved_into_the_identity():
    """device=auto measured on a CPU is the same measurement as device=cpu: one id, one dir."""
    auto = plan_cell({"device": {"name": "auto"}}, lambda: "cpu")
    cpu = plan_cell({"device": {"name": "cpu"}}, lambda: "npu")  # not asked: not auto
    assert auto.cell.device.name == "cpu"
    assert auto.cell_id == cpu.cell_id and auto.cell_dir == cpu.cell_dir
    assert "-cpu-" in auto.cell_dir and "-auto-" not in auto.cell_dir
    npu = plan_cell({"device": {"name": "auto"}}, lambda: "npu")
    assert npu.cell_id != auto.cell_id


def test_a_planned_cell_is_computed_once_and_matches_the_cell():
    cell = CellConfig(batch=3, device=DeviceConfig(name="cpu"))
    planned = PlannedCell.of(cell)
    assert planned.cell_id == cell_id(cell) and planned.cell_dir.endswith(planned.cell_id[:8])


def test_sweep_names_follow_the_overrides():
    a = sweep_name(["batch=1,2", "seq=4,8", "hydra.launcher.ray.num_cpus=2"])
    assert a == "batch-1+2_seq-4+8"
    assert sweep_name(["seq=4,8", "batch=1,2"]) == a  # however the command is written
    assert sweep_name(["seq=8,4", "batch=2,1,1"]) == a  # ... and its values ordered
    assert sweep_name(["batch=1,2", "seq=4,8", "slo.ttft_ms=50"]) == a  # an SLO re-scores
    assert sweep_name(["batch=1,2", "seq=4,8", "cluster=existing"]) == a  # not a cell setting
    assert sweep_name(["batch=1,2", "seq=4,16"]) != a
    odd = sweep_name(["model.path=/data/My Model", "batch=1"])
    assert "/" not in odd and " " not in odd and len(odd.rsplit("-", 1)[1]) == 8
    assert sweep_name(["model.path=/data/My_Model", "batch=1"]) != odd
    assert len(sweep_name([f"batch={','.join(map(str, range(500)))}"])) <= 80
    assert sweep_name([]) == "default"


def test_every_flag_has_a_meaning_a_mark_and_records_take_only_known_flags():
    from aggregate.tables import FLAG_MARKS

    assert set(FLAG_MEANINGS) == set(Flag)
    assert set(FLAG_MARKS) == {f.value for f in Flag}
    assert len(set(FLAG_MARKS.values())) == len(FLAG_MARKS)  # one mark, one flag
    cell = CellConfig(device=DeviceConfig(name="cpu"))
    rec = build_record(cell, Outcome(status=Status.OK, flags=[Flag.UNSTABLE, "unstable"]))
    assert rec["flags"] == ["unstable"] and rec["status"] == "ok"
    with pytest.raises(ValueError):
        build_record(cell, Outcome(flags=["no_such_flag"]))


def test_the_driver_commit_goes_into_records():
    cell = CellConfig(device=DeviceConfig(name="cpu"))
    out = Outcome(env={"host": "w1", "git_commit": None})
    rec = build_record(cell, out, code={"git_commit": "abc123", "git_dirty": True})
    assert rec["env"]["git_commit"] == "abc123" and rec["env"]["git_dirty"] is True
    assert rec["env"]["host"] == "w1"


def test_sweep_names_can_be_passed_back_as_the_sweep_dir(tmp_path, monkeypatch, caplog):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from sweep.plan import resumable_sweep_name

    parser = OverridesParser.create()
    for overrides in (["batch=1,2", "seq=4,8"], ["model.path=/data/My Model", "batch=1"],
                      ["+batchh=16,32"], ["request_rate=0.5,2", "workload=serve"]):  # fmt: skip
        name = sweep_name(overrides)
        o = parser.parse_override(f"hydra.sweep.dir=multirun/{name}")
        assert o.value() == f"multirun/{name}", name
    # a sweep named the earlier way is resumed in its directory, and said so
    monkeypatch.chdir(tmp_path)
    (tmp_path / "multirun" / "batch=1,2_seq=4,8").mkdir(parents=True)
    assert resumable_sweep_name(["seq=4,8", "batch=1,2"]) == "batch=1,2_seq=4,8"
    assert "named the earlier way" in caplog.text
    assert resumable_sweep_name(["seq=8,4", "batch=1,2"]) == "batch-1+2_seq-4+8"
