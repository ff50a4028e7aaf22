"""The launcher's settings (RayCellsLauncherConf), typed and checked before anything starts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

PROGRESS_MODES = ("auto", "on", "off")


class SettingsError(ValueError):
    """A launcher setting has a value that is not allowed; the message names it."""


@dataclass
class Settings:
    """The launcher's settings, typed. Their defaults and meanings are RayCellsLauncherConf's
    (ray_cells_launcher.py), which Hydra always passes whole."""

    ray: Any
    app: str | None
    app_options: dict[str, Any]
    resume: bool
    max_retries: int
    job_timeout_s: float
    stall_timeout_s: float
    ship_working_dir: bool
    progress: str
    keep_job_configs: bool
    fleet: bool = False

    def __post_init__(self) -> None:
        def bad(key: str, allowed: str) -> SettingsError:
            value = getattr(self, key)
            return SettingsError(f"hydra.launcher.{key}={value!r} is not allowed: {allowed}")

        if isinstance(self.max_retries, bool) or self.max_retries < 0:
            raise bad("max_retries", "a whole number >= 0")
        if not math.isfinite(self.job_timeout_s) or self.job_timeout_s < 0:
            raise bad("job_timeout_s", "finite seconds >= 0 (0: no limit)")
        if not math.isfinite(self.stall_timeout_s) or self.stall_timeout_s <= 0:
            raise bad("stall_timeout_s", "finite seconds > 0")
        if self.progress not in PROGRESS_MODES:
            raise bad("progress", f"choose one of {', '.join(PROGRESS_MODES)}")

    @classmethod
    def of(cls, params: dict[str, Any]) -> Settings:
        known = {f for f in cls.__dataclass_fields__ if f in params}
        s = cls(**{k: params[k] for k in known})
        s.app_options = dict(s.app_options or {})
        return s
