"""docs/cluster.md's KubeRay examples hold what the launcher needs: accelerators declared to
Ray as many as the pod got from the device plugin (Ascend: Ray's NPU resource against
huawei.com/Ascend910; NVIDIA: num-gpus against nvidia.com/gpu), an entrypoint that runs
`python launch.py -m`, and a hydra.sweep.dir on a volume mounted in the head pod (the driver
writes the results there)."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

DOC = Path(__file__).parents[2] / "docs" / "cluster.md"
DEVICE = {"huawei.com/Ascend910": "NPU", "nvidia.com/gpu": "GPU"}


def documents() -> list[dict]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.S)
    return [d for b in blocks for d in yaml.safe_load_all(b) if d]


def by_kind(kind: str) -> list[dict]:
    return [d for d in documents() if d.get("kind") == kind]


def declared(params: dict) -> dict[str, float]:
    """What `ray start` is told: rayStartParams resources (a JSON string KubeRay quotes once
    more) and num-gpus."""
    out: dict[str, float] = {}
    if "resources" in params:
        out.update(json.loads(json.loads(params["resources"])))
    if "num-gpus" in params:
        out["GPU"] = float(params["num-gpus"])
    return out


def pod_devices(template: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for c in template["spec"]["containers"]:
        for name, n in (c.get("resources", {}).get("limits") or {}).items():
            if name in DEVICE:
                out[DEVICE[name]] = out.get(DEVICE[name], 0) + float(n)
    return out


def mounts(template: dict) -> dict[str, str]:
    """mountPath -> claim of every volume mounted in the pod's containers."""
    claims = {
        v["name"]: (v.get("persistentVolumeClaim") or {}).get("claimName")
        for v in template["spec"].get("volumes", [])
    }
    return {
        m["mountPath"]: claims.get(m["name"])
        for c in template["spec"]["containers"]
        for m in c.get("volumeMounts", [])
    }


def cluster_specs() -> list[tuple[str, dict]]:
    specs = [(d["metadata"]["name"], d["spec"]) for d in by_kind("RayCluster")]
    specs += [(d["metadata"]["name"], d["spec"]["rayClusterSpec"]) for d in by_kind("RayJob")
              if "rayClusterSpec" in d["spec"]]  # fmt: skip
    return specs


def test_the_doc_has_both_examples():
    assert len(by_kind("RayCluster")) >= 1 and len(by_kind("RayJob")) >= 2
    kinds = {k for _, spec in cluster_specs() for g in spec["workerGroupSpecs"]
             for k in pod_devices(g["template"])}  # fmt: skip
    assert kinds == {"NPU", "GPU"}


@pytest.mark.parametrize(
    "name, spec", cluster_specs(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_ray_is_told_what_the_pod_got(name, spec):
    for group in spec["workerGroupSpecs"]:
        got = pod_devices(group["template"])
        assert got, f"{name}/{group['groupName']}: no accelerator limit"
        said = declared(group["rayStartParams"])
        for kind, n in got.items():
            assert said.get(kind) == n, f"{name}/{group['groupName']}: {kind} {said} vs {n}"
        assert group["replicas"] >= 1
    head = spec["headGroupSpec"]
    assert not pod_devices(head["template"])  # the head runs the driver, no cells
    assert head["rayStartParams"].get("num-cpus") == "0"


def _cluster_of(job: dict) -> dict:
    if "rayClusterSpec" in job["spec"]:
        return job["spec"]["rayClusterSpec"]
    want = job["spec"]["clusterSelector"]["ray.io/cluster"]
    found = [d["spec"] for d in by_kind("RayCluster") if d["metadata"]["name"] == want]
    assert found, f"clusterSelector names {want}, which the doc does not define"
    return found[0]


@pytest.mark.parametrize("job", by_kind("RayJob"), ids=lambda j: j["metadata"]["name"])
def test_jobs_run_the_sweep_into_shared_storage(job):
    argv = shlex.split(job["spec"]["entrypoint"])
    assert argv[:3] == ["python", "launch.py", "-m"]
    assert "working_dir" in yaml.safe_load(job["spec"]["runtimeEnvYAML"])
    sweep_dir = next(a.split("=", 1)[1] for a in argv if a.startswith("hydra.sweep.dir="))
    head = _cluster_of(job)["headGroupSpec"]["template"]
    shared = {path: claim for path, claim in mounts(head).items() if claim}
    assert any(sweep_dir.startswith(path.rstrip("/") + "/") for path in shared), (
        f"{sweep_dir} is on no volume of the head pod ({shared})"
    )
    device = next(a.split("=", 1)[1] for a in argv if a.startswith("device="))
    groups = _cluster_of(job)["workerGroupSpecs"]
    kinds = {k for g in groups for k in pod_devices(g["template"])}
    assert {"npu": "NPU", "cuda": "GPU"}[device] in kinds
    for g in groups:  # the model path is on every worker's volume too
        model = next(a.split("=", 1)[1] for a in argv if a.startswith("model.path="))
        assert any(model.startswith(p.rstrip("/") + "/") for p in mounts(g["template"]))
