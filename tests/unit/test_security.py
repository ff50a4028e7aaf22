"""Security defaults: no remote code unless asked, no shell, paths that stay in the sweep dir.
(Ray listening on loopback only is checked in test_sweep_ray.py.)"""

from __future__ import annotations

import json
import shutil

from jobs.config import BenchConfig, CellConfig, DeviceConfig, ModelConfig
from jobs.identity import cell_dir_name, safe_name
from workers import run as measure


def test_trust_remote_code_is_off_by_default(launch_here):
    assert CellConfig().model.trust_remote_code is False
    proc = launch_here("--cfg", "job")
    assert proc.returncode == 0 and "trust_remote_code: false" in proc.stdout


def test_model_code_is_never_run_without_trust_remote_code(tiny_cache, tmp_path):
    """A model directory that ships Python code (auto_map): the code must not run."""
    from workers.tiny import ensure_tiny_model

    src = ensure_tiny_model(ModelConfig().tiny, str(tiny_cache))
    evil = tmp_path / "evil-model"
    shutil.copytree(src, evil)
    marker = tmp_path / "PWNED"
    (evil / "evil_code.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\n"
        "from transformers import LlamaConfig, LlamaForCausalLM\n"
        "class EvilConfig(LlamaConfig):\n    pass\n"
        "class EvilModel(LlamaForCausalLM):\n    pass\n"
    )
    cfg = json.loads((evil / "config.json").read_text())
    cfg["auto_map"] = {
        "AutoConfig": "evil_code.EvilConfig",
        "AutoModelForCausalLM": "evil_code.EvilModel",
    }
    (evil / "config.json").write_text(json.dumps(cfg))
    cell = CellConfig(
        batch=1, seq=2, prompt_len=4,
        model=ModelConfig(path=str(evil)),
        device=DeviceConfig(name="cpu"),
        bench=BenchConfig(warmup=0, iterations=1, max_iterations=1),
    )  # fmt: skip
    measure.run_cell(cell)
    assert not marker.exists(), "code shipped with the model ran without trust_remote_code"


def test_no_shell_interpretation_of_model_path(launch_here, tmp_path):
    marker = tmp_path / "PWNED"
    proc = launch_here(f"model.path='/nonexistent; touch {marker}'")
    assert proc.returncode != 0 and "model.path" in proc.stderr
    proc = launch_here(f"model.path='$(touch {marker})'")
    assert proc.returncode != 0
    assert not marker.exists()


def test_cell_directories_cannot_leave_the_sweep_dir():
    for path in ("/data/../../etc", "/x/..", "/models/a b;c|d`e`", "/m/" + "x" * 300):
        name = cell_dir_name(CellConfig(model=ModelConfig(path=path)))
        assert "/" not in name and not name.startswith(".") and ".." not in name.split("-")
        assert len(name) < 200
    assert safe_name("../../etc/passwd") == "etc_passwd"
    assert "/" not in safe_name("a/b\\c")


def test_report_file_names_are_sanitised():
    from aggregate.tables import GroupKey

    rec = {"model": "../../evil", "backend": "hf", "device": "cpu", "dtype": "x/y",
           "prompt_len": 8}  # fmt: skip
    slug = GroupKey.of(rec).slug()
    assert "/" not in slug and not slug.startswith(".")
