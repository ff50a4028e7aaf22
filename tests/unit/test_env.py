"""The CANN version a record carries: a plain version string from either install layout."""

from __future__ import annotations

from pathlib import Path

from workers.env import cann_version

# ascend_toolkit_install.info as CANN writes it (copied from `cat .../ascend_toolkit_install.info`
# outputs posted in vllm-project/vllm-ascend issues)
OLD_INFO = """package_name=Ascend-cann-toolkit
version=8.3.RC2
innerversion=V100R001C23SPC002B210
compatible_version=[V100R001C15],[V100R001C18],[V100R001C19],[V100R001C20],[V100R001C21],[V100R001C23]
arch=aarch64
os=linux
path=/usr/local/Ascend/ascend-toolkit/8.3.RC2/aarch64-linux
"""
NEW_INFO = OLD_INFO.replace("8.3.RC2", "8.5.0").replace(
    "/usr/local/Ascend/ascend-toolkit/8.5.0", "/usr/local/Ascend/cann-8.5.0"
)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_old_layout_ascend_toolkit_latest(tmp_path):
    write(tmp_path / "ascend-toolkit/8.3.RC2/aarch64-linux/ascend_toolkit_install.info", OLD_INFO)
    (tmp_path / "ascend-toolkit/latest").symlink_to(tmp_path / "ascend-toolkit/8.3.RC2")
    assert cann_version({}, tmp_path) == "8.3.RC2"


def test_new_layout_cann_version_dir(tmp_path):
    write(tmp_path / "cann-8.5.0/x86_64-linux/ascend_toolkit_install.info", NEW_INFO)
    assert cann_version({}, tmp_path) == "8.5.0"
    (tmp_path / "cann").symlink_to(tmp_path / "cann-8.5.0")
    assert cann_version({}, tmp_path) == "8.5.0"


def test_set_env_sh_variables_come_first(tmp_path):
    write(tmp_path / "cann-8.5.0/aarch64-linux/ascend_toolkit_install.info", NEW_INFO)
    custom = tmp_path / "opt/toolkit"
    write(custom / "aarch64-linux/ascend_toolkit_install.info", OLD_INFO)
    assert cann_version({"ASCEND_HOME_PATH": str(custom)}, tmp_path) == "8.3.RC2"
    assert cann_version({"ASCEND_TOOLKIT_HOME": str(tmp_path / "nowhere")}, tmp_path) == "8.5.0"


def test_version_cfg_gives_the_plain_cann_version(tmp_path):
    """Older toolkits also carry version.cfg: `runtime_running_version=[7.1.0.3.220:8.0.RC2]`
    must record 8.0.RC2, not the bracketed pair."""
    cfg = "# version: 1.0\nruntime_running_version=[7.1.0.3.220:8.0.RC2]\n"
    write(tmp_path / "ascend-toolkit/latest/version.cfg", cfg)
    assert cann_version({}, tmp_path) == "8.0.RC2"


def test_version_from_the_directory_name_and_none(tmp_path):
    assert cann_version({}, tmp_path) is None
    (tmp_path / "cann-9.0.0").mkdir()
    (tmp_path / "cann-8.5.0").mkdir()
    assert cann_version({}, tmp_path) == "9.0.0"  # the newest installed
    write(tmp_path / "cann-9.0.0/aarch64-linux/ascend_toolkit_install.info", "version=garbage\n")
    assert cann_version({}, tmp_path) == "9.0.0"
