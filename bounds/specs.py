"""Device specs as data: the peaks a roofline bound is computed from.

Each spec gives the peak memory bandwidth, the dense 16-bit (fp16/bf16) tensor FLOP/s and the
memory capacity of ONE chip, with the document the figures come from. The bounds built on them
must never be too strict (a bound that flags an honest measurement is worse than none), so
where sources disagree the highest credible figure is kept and the `note` says so.

`lookup(name)` maps a device name as torch reports it ("NVIDIA H100 80GB HBM3",
"Ascend910B3", ...) or a spec key ("ascend_910b") to a spec. Devices without a spec (CPUs,
unlisted chips) get a spec measured on the device itself (workers/device/bandwidth.py).

Power (`tdp_w`, `idle_w`) feeds the simulator's power model only; measured energy comes from
the device (workers/energy/meter.py).

Pure data: no torch, no project imports (workers/ and aggregate/ both use it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

GB = 10**9
TB = 10**12
GIB = 2**30


@dataclass(frozen=True)
class DeviceSpec:
    key: str  # registry key, e.g. "ascend_910b3" (backend.sim.device_spec takes these)
    name: str  # the name torch reports for this chip (SimDevice.name() returns it)
    peak_bandwidth_bytes_per_s: float  # device memory (HBM) bandwidth, one chip
    peak_flops_per_s: float | None  # dense fp16/bf16 tensor FLOP/s (no sparsity); None: unknown
    memory_bytes: int | None  # device memory capacity
    source: str  # where the figures come from
    note: str = ""  # disagreements between sources and which figure was kept
    # Board power, for the simulator's power model only (workers/backends/sim.py): the rated
    # maximum (TDP) and the draw of an idle chip, with where the figures come from. Never used
    # to judge a measurement.
    tdp_w: float | None = None
    idle_w: float | None = None
    power_source: str = ""


_HUAWEI_910B_NOTE = (
    "Huawei publishes Atlas product sheets but no per-chip 910B datasheet; the 910B figures "
    "here are the ones circulating in vendor-partner material and trade press (not verified "
    "against a Huawei document). HBM bandwidth is quoted anywhere from 0.4 to 1.6 TB/s: "
    "1.6 TB/s, the highest credible figure, is kept so the bound stays an upper bound."
)

_ASCEND_IDLE = (
    "Idle: public `npu-smi info` outputs of idle 910B chips show 69-94 W (tests/fixtures/smi); "
    "70 W kept for every Ascend chip."
)
_HUAWEI_POWER = (
    "910B: 400 W, the figure circulating for the family in trade press and partner material "
    "(not verified against a Huawei document; the same for every variant). " + _ASCEND_IDLE
)
_NVIDIA_IDLE = (
    "Idle: typical nvidia-smi readings of an idle board (an idle H100 SXM reads 69-70 W in "
    "tests/fixtures/smi); approximate."
)

SPECS: dict[str, DeviceSpec] = {
    s.key: s
    for s in (
        DeviceSpec(
            key="ascend_910",
            name="Ascend910A",
            peak_bandwidth_bytes_per_s=1.2288 * TB,
            peak_flops_per_s=320 * TB,
            memory_bytes=32 * GIB,
            source="Huawei Ascend 910 (Hot Chips 31, 2019: 4x HBM2, 256 TFLOPS fp16); "
            "Atlas 800 training server (model 9000) / Atlas 300T training card product pages",
            note="The first-generation 910 (910A, 910 Pro A/B, 910 Premium A) of the Atlas 800T "
            "(model 9000). Bandwidth quoted as 1.2 TB/s or 1228.8 GB/s (4 HBM2 stacks): the "
            "higher kept. FP16 quoted 256 TFLOPS (910A) to 280-320 TFLOPS (Pro variants): 320 "
            "kept for every variant. Figures not re-verified against a datasheet.",
            tdp_w=310,
            idle_w=70,
            power_source="Huawei Ascend 910 launch (Aug 2019): 310 W maximum power. "
            + _ASCEND_IDLE,
        ),
        DeviceSpec(
            key="ascend_910b",
            name="Ascend910B",
            peak_bandwidth_bytes_per_s=1.6 * TB,
            peak_flops_per_s=414 * TB,
            memory_bytes=64 * GIB,
            source="Ascend 910B family, highest of 910B1-910B4 (Atlas 800T A2 / 800I A2 pages)",
            note="Family entry for a name without a variant digit (and the Atlas 800T A2): the "
            "highest bandwidth, FLOP/s and memory of the variants below. " + _HUAWEI_910B_NOTE,
            tdp_w=400,
            idle_w=70,
            power_source=_HUAWEI_POWER,
        ),
        DeviceSpec(
            key="ascend_910b1",
            name="Ascend910B1",
            peak_bandwidth_bytes_per_s=1.6 * TB,
            peak_flops_per_s=414 * TB,
            memory_bytes=64 * GIB,
            source="Ascend 910B1, circulating figures (see note)",
            note="FP16 quoted 400-414 TFLOPS: 414 kept. " + _HUAWEI_910B_NOTE,
            tdp_w=400,
            idle_w=70,
            power_source=_HUAWEI_POWER,
        ),
        DeviceSpec(
            key="ascend_910b2",
            name="Ascend910B2",
            peak_bandwidth_bytes_per_s=1.6 * TB,
            peak_flops_per_s=376 * TB,
            memory_bytes=64 * GIB,
            source="Ascend 910B2, circulating figures (see note)",
            note="FP16 quoted 353-376 TFLOPS: 376 kept. Also matches 910B2C. " + _HUAWEI_910B_NOTE,
            tdp_w=400,
            idle_w=70,
            power_source=_HUAWEI_POWER,
        ),
        DeviceSpec(
            key="ascend_910b3",
            name="Ascend910B3",
            peak_bandwidth_bytes_per_s=1.6 * TB,
            peak_flops_per_s=313 * TB,
            memory_bytes=64 * GIB,
            source="Ascend 910B3, circulating figures; Atlas 800T A2 (2.5 PFLOPS fp16 / 8 chips)",
            note="FP16 quoted 280-313 TFLOPS: 313 kept. " + _HUAWEI_910B_NOTE,
            tdp_w=400,
            idle_w=70,
            power_source=_HUAWEI_POWER,
        ),
        DeviceSpec(
            key="ascend_910b4",
            name="Ascend910B4",
            peak_bandwidth_bytes_per_s=1.6 * TB,
            peak_flops_per_s=280 * TB,
            memory_bytes=32 * GIB,
            source="Ascend 910B4 with 32 GB HBM: https://github.com/vllm-project/vllm-ascend/"
            "issues/129 (maintainer: the only difference of the 910B4 is its 32 GB HBM); "
            "npu-smi shows 910B4 chips with 32768 MB HBM: https://github.com/vllm-project/"
            "vllm-ascend/issues/8746, https://github.com/1Panel-dev/1Panel/issues/9472",
            note="The 64 GB variant reports itself as Ascend910B4-1 (own spec). Bandwidth quoted "
            "0.8-1.6 TB/s: 1.6 TB/s kept. FP16 quoted 256-280 TFLOPS: 280 kept. "
            + _HUAWEI_910B_NOTE,
            tdp_w=400,
            idle_w=70,
            power_source=_HUAWEI_POWER,
        ),
        DeviceSpec(
            key="ascend_910b4_1",
            name="Ascend910B4-1",
            peak_bandwidth_bytes_per_s=1.6 * TB,
            peak_flops_per_s=280 * TB,
            memory_bytes=64 * GIB,
            source="Ascend 910B4-1, the 64 GB 910B4: npu-smi shows 910B4-1 chips with 65536 MB "
            "HBM, https://github.com/Project-HAMi/HAMi-WebUI/issues/47, https://github.com/"
            "Project-HAMi/ascend-device-plugin/issues/128; SoC name in CANN's SoC list, "
            "https://github.com/cannmirror/asc-devkit/blob/40e58b5ac79e2870bd8f2ad9e004b6a1bf54c7c6"
            "/tools/ascc/ascendfe/include/ascc_argument_manager.h",
            note="Compute as the 910B4 (same SoC family); bandwidth and FLOP/s as for the 910B4 "
            "(highest quoted). " + _HUAWEI_910B_NOTE,
            tdp_w=400,
            idle_w=70,
            power_source=_HUAWEI_POWER,
        ),
        DeviceSpec(
            key="ascend_910_93",
            name="Ascend910_9392",
            peak_bandwidth_bytes_per_s=1.6 * TB,
            peak_flops_per_s=400 * TB,
            memory_bytes=64 * GIB,
            source="Atlas A3 (Ascend 910C, SoC names Ascend910_9391/9392/9381/9382/9372/9362 in "
            "CANN's SoC list, https://github.com/cannmirror/asc-devkit/blob/"
            "40e58b5ac79e2870bd8f2ad9e004b6a1bf54c7c6/tools/ascc/ascendfe/include/"
            "ascc_argument_manager.h): per package 8 HBM2E stacks, 3.2 TB/s and 780 TFLOPS "
            "BF16, https://www.techpowerup.com/335749/huawei-prepares-6-nm-ascend-920c-"
            "accelerator-900-teraflops-4000-gb-s-hbm3 ; two dies per package, each its own "
            "device with 64 GB (npu-smi: 65536 MB per chip, https://github.com/vllm-project/"
            "vllm-ascend/issues/2534)",
            note="Per die (= one torch device): half a package. Package FP16 quoted 780-800 "
            "TFLOPS: 400 per die kept, 3.2 TB/s / 2 = 1.6 TB/s. One entry for every A3 SoC "
            "variant; the lower bins (9382, 9372, 9362) get the top bin's figures, so the "
            "bound stays an upper bound. Trade-press figures, not a Huawei datasheet.",
            idle_w=70,
            power_source="No per-die board power found (tdp_w unknown). " + _ASCEND_IDLE,
        ),
        DeviceSpec(
            key="nvidia_a100_40gb_sxm",
            name="NVIDIA A100-SXM4-40GB",
            peak_bandwidth_bytes_per_s=1555 * GB,
            peak_flops_per_s=312 * TB,
            memory_bytes=40 * GIB,
            source="NVIDIA A100 Tensor Core GPU datasheet (A100 40GB SXM)",
            tdp_w=400,
            idle_w=50,
            power_source="A100 datasheet: 400 W max TDP (SXM). " + _NVIDIA_IDLE,
        ),
        DeviceSpec(
            key="nvidia_a100_40gb_pcie",
            name="NVIDIA A100-PCIE-40GB",
            peak_bandwidth_bytes_per_s=1555 * GB,
            peak_flops_per_s=312 * TB,
            memory_bytes=40 * GIB,
            source="NVIDIA A100 Tensor Core GPU datasheet (A100 40GB PCIe)",
            tdp_w=250,
            idle_w=50,
            power_source="A100 datasheet: 250 W max TDP (40GB PCIe). " + _NVIDIA_IDLE,
        ),
        DeviceSpec(
            key="nvidia_a100_80gb_sxm",
            name="NVIDIA A100-SXM4-80GB",
            peak_bandwidth_bytes_per_s=2039 * GB,
            peak_flops_per_s=312 * TB,
            memory_bytes=80 * GIB,
            source="NVIDIA A100 Tensor Core GPU datasheet (A100 80GB SXM)",
            note="Also used for an A100 whose form factor the name does not tell (the highest "
            "A100 bandwidth).",
            tdp_w=400,
            idle_w=50,
            power_source="A100 datasheet: 400 W max TDP (SXM). " + _NVIDIA_IDLE,
        ),
        DeviceSpec(
            key="nvidia_a100_80gb_pcie",
            name="NVIDIA A100 80GB PCIe",
            peak_bandwidth_bytes_per_s=1935 * GB,
            peak_flops_per_s=312 * TB,
            memory_bytes=80 * GIB,
            source="NVIDIA A100 Tensor Core GPU datasheet (A100 80GB PCIe)",
            tdp_w=300,
            idle_w=50,
            power_source="A100 datasheet: 300 W max TDP (80GB PCIe). " + _NVIDIA_IDLE,
        ),
        DeviceSpec(
            key="nvidia_h100_sxm",
            name="NVIDIA H100 80GB HBM3",
            peak_bandwidth_bytes_per_s=3.35 * TB,
            peak_flops_per_s=989.4 * TB,
            memory_bytes=80 * GIB,
            source="NVIDIA H100 Tensor Core GPU datasheet (H100 SXM)",
            note="Datasheet FP16 1979 TFLOPS is with 2:4 sparsity; dense is half.",
            tdp_w=700,
            idle_w=70,
            power_source="H100 datasheet: up to 700 W max TDP (SXM). " + _NVIDIA_IDLE,
        ),
        DeviceSpec(
            key="nvidia_h100_pcie",
            name="NVIDIA H100 PCIe",
            peak_bandwidth_bytes_per_s=2.0 * TB,
            peak_flops_per_s=756 * TB,
            memory_bytes=80 * GIB,
            source="NVIDIA H100 Tensor Core GPU datasheet (H100 PCIe)",
            note="Datasheet FP16 1513 TFLOPS is with sparsity; dense is half.",
            tdp_w=350,
            idle_w=60,
            power_source="H100 datasheet: 300-350 W max TDP (PCIe), 350 W kept. " + _NVIDIA_IDLE,
        ),
        DeviceSpec(
            key="nvidia_h100_nvl",
            name="NVIDIA H100 NVL",
            peak_bandwidth_bytes_per_s=3.9 * TB,
            peak_flops_per_s=835.5 * TB,
            memory_bytes=94 * GIB,
            source="NVIDIA H100 Tensor Core GPU datasheet (H100 NVL)",
            note="Datasheet FP16 1671 TFLOPS is with sparsity; dense is half.",
            tdp_w=400,
            idle_w=60,
            power_source="H100 datasheet: 350-400 W max TDP (NVL), 400 W kept. " + _NVIDIA_IDLE,
        ),
        DeviceSpec(
            key="nvidia_h200",
            name="NVIDIA H200",
            peak_bandwidth_bytes_per_s=4.8 * TB,
            peak_flops_per_s=989.4 * TB,
            memory_bytes=141 * GIB,
            source="NVIDIA H200 Tensor Core GPU datasheet (H200 SXM)",
            note="Datasheet FP16 1979 TFLOPS is with sparsity; dense is half.",
            tdp_w=700,
            idle_w=75,
            power_source="H200 datasheet: up to 700 W max TDP (SXM). " + _NVIDIA_IDLE,
        ),
        DeviceSpec(
            key="nvidia_h200_nvl",
            name="NVIDIA H200 NVL",
            peak_bandwidth_bytes_per_s=4.8 * TB,
            peak_flops_per_s=835.5 * TB,
            memory_bytes=141 * GIB,
            source="NVIDIA H200 Tensor Core GPU datasheet (H200 NVL)",
            note="Datasheet FP16 1671 TFLOPS is with sparsity; dense is half.",
            tdp_w=600,
            idle_w=70,
            power_source="H200 datasheet: up to 600 W max TDP (NVL). " + _NVIDIA_IDLE,
        ),
    )
}

# Other names for a spec (product names rather than chip names).
ALIASES = {
    "atlas_800t": "ascend_910",
    "ascend_910a": "ascend_910",
    "atlas_800t_a2": "ascend_910b",
    "atlas_a3": "ascend_910_93",
    "ascend_910c": "ascend_910_93",
    "nvidia_h100": "nvidia_h100_sxm",
    "nvidia_a100": "nvidia_a100_80gb_sxm",
}

# (pattern on the normalised name, spec key), most specific first. Normalised: lower case,
# without spaces, '-', '_' and '.'. torch_npu reports e.g. "Ascend910B3", "Ascend910ProB";
# torch.cuda e.g. "NVIDIA H100 80GB HBM3", "NVIDIA A100-SXM4-40GB".
_PATTERNS: tuple[tuple[str, str], ...] = (
    (r"ascend910b1", "ascend_910b1"),
    (r"ascend910b2", "ascend_910b2"),
    (r"ascend910b3", "ascend_910b3"),
    (r"ascend910b41$", "ascend_910b4_1"),  # "Ascend910B4-1" (64 GB) without '-'
    (r"ascend910b4$", "ascend_910b4"),
    (r"^ascend91093\d\d$", "ascend_910_93"),  # Atlas A3: "Ascend910_9392" without '_'
    # "Ascend910B" without a digit is ambiguous (CANN also has a first-generation 910B
    # SoC): the 910B family entry is the more generous of the two.
    (r"ascend910b$", "ascend_910b"),
    (r"ascend910(a|proa|prob|premiuma)?$", "ascend_910"),
    (r"h200nvl", "nvidia_h200_nvl"),
    (r"h200", "nvidia_h200"),
    (r"h100.*nvl", "nvidia_h100_nvl"),
    (r"h100.*pcie", "nvidia_h100_pcie"),
    (r"h100", "nvidia_h100_sxm"),
    (r"a100.*pcie.*40gb|a100.*40gb.*pcie", "nvidia_a100_40gb_pcie"),
    (r"a100.*pcie", "nvidia_a100_80gb_pcie"),
    (r"a100.*40gb", "nvidia_a100_40gb_sxm"),
    (r"a100", "nvidia_a100_80gb_sxm"),
)


def _normalise(name: str) -> str:
    return re.sub(r"[\s_\-.]", "", name.lower())


def lookup(device_name: str) -> DeviceSpec | None:
    """The spec of a device name as torch reports it, or of a spec key / alias; else None."""
    if not device_name:
        return None
    key = device_name.strip().lower()
    key = ALIASES.get(key, key)
    if key in SPECS:
        return SPECS[key]
    norm = _normalise(device_name)
    for spec in SPECS.values():
        if norm == _normalise(spec.name):
            return spec
    for pattern, spec_key in _PATTERNS:
        if re.search(pattern, norm):
            return SPECS[spec_key]
    return None


def known_names() -> list[str]:
    """Spec keys and aliases, for usage messages."""
    return sorted([*SPECS, *ALIASES])
