"""CPU energy from the powercap framework: /sys/class/powercap/intel-rapl:N (package) and their
`dram` sub-zones: energy_uj, wrapping at max_energy_range_uj (AMD Zen exposes the same files)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from workers.device.tools import Unavailable
from workers.energy.integrate import SourceInfo

POWERCAP = Path("/sys/class/powercap")
_ZONE = re.compile(r"^intel-rapl:\d+(:\d+)?$")


class RaplSource:
    """CPU package (and DRAM) energy counters of the powercap framework."""

    def __init__(self, root: Path = POWERCAP) -> None:
        zones = []
        for path in sorted(root.glob("intel-rapl:*")) if root.is_dir() else []:
            name = _read_text(path / "name")
            top = path.name.count(":") == 1
            if _ZONE.match(path.name) and (top and name.startswith("package") or name == "dram"):
                zones.append((path, name))
        if not zones:
            raise Unavailable(f"no RAPL package zone under {root} (no powercap on this host)")
        self.files = [p / "energy_uj" for p, _ in zones]
        for f in self.files:
            if not os.access(f, os.R_OK):
                raise Unavailable(
                    f"{f} is not readable by this user (root only on kernels patched for "
                    "CVE-2020-8694); a root can grant read access to the measuring user"
                )
        wraps = tuple(
            int(_read_text(p / "max_energy_range_uj") or 0) / 1e6 or None for p, _ in zones
        )
        labels = tuple(f"{p.name} ({n})" for p, n in zones)
        self.info = SourceInfo("rapl", "counter", 0.1, 0.001, labels, wraps)

    def read(self) -> list[float | None]:
        out: list[float | None] = []
        for f in self.files:
            try:
                out.append(int(f.read_text().strip()) / 1e6)
            except (OSError, ValueError):
                out.append(None)
        return out

    def events(self) -> None:
        return None

    def close(self) -> None:
        pass


def _read_text(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""
