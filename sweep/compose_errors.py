"""Hydra's composition errors as one `error:` line and exit 2, the way the planner refuses a
setting.

A value of the wrong type in a single run (``batch=1.5``), a key the schema does not have or a
config group option that does not exist fails while Hydra composes the config, before any of
the sweep's hooks run; Hydra would print OmegaConf's multi-line error and exit 1. The entry
point (launch.py) wraps Hydra's reporting with :func:`install`, so these end as the same one
line (naming the setting and what is allowed) that ``-m`` gives, with exit 2 and nothing
written (Hydra creates no directory before it has composed the config).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hydra.errors import (
    ConfigCompositionException,
    MissingConfigException,
    OverrideParseException,
)

from jobs.config import CellConfig
from jobs.values import refusal
from sweep.status import die

_MERGING = re.compile(r"Error merging override (\S+)")
_APPEND = re.compile(r"use \+(\S+)")


def _override_value(text: str) -> tuple[str, Any] | None:
    """(key, value) of an override as Hydra's parser gives them, or None."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        o = OverridesParser.create().parse_override(text)
        return o.key_or_group, o.value()
    except Exception:
        return None


def _flat(text: str) -> str:
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    lines = [
        ln for ln in lines if not ln.startswith(("full_key:", "object_type", "reference_type"))
    ]
    return "; ".join(lines)


def one_line(exc: BaseException) -> str:
    """The message of a composition error, in one line naming the setting."""
    if isinstance(exc, MissingConfigException) and exc.missing_cfg_file:
        group, _, option = exc.missing_cfg_file.rpartition("/")
        where = f"{group}={option}" if group else option
        choices = f": choose one of {', '.join(exc.options)}" if exc.options else ""
        return f"{where} is not allowed: could not find '{exc.missing_cfg_file}'{choices}"
    text = str(exc)
    override = _MERGING.search(text) or _APPEND.search(text)
    parsed = _override_value(override.group(1)) if override else None
    if parsed is not None:
        ours = refusal(CellConfig, *parsed)
        if ours:
            return ours
    cause = exc.__cause__
    if isinstance(exc, OverrideParseException):
        return f"{exc.override} is not allowed: {_flat(text.split('See https')[0])}"
    if cause is not None:
        return f"{_flat(text)}: {_flat(str(cause))}"
    return _flat(text)


def install() -> None:
    """Make Hydra's error reporting turn composition errors into one `error:` line, exit 2.
    Other errors are reported by Hydra as before. Idempotent."""
    import hydra._internal.utils as hydra_utils

    report = hydra_utils.run_and_report
    if getattr(report, "one_line_errors", False):
        return

    def run_and_report(func: Callable[[], Any]) -> Any:
        def translated() -> Any:
            try:
                return func()
            except (ConfigCompositionException, OverrideParseException) as exc:
                die(one_line(exc))

        return report(translated)

    run_and_report.one_line_errors = True  # type: ignore[attr-defined]
    hydra_utils.run_and_report = run_and_report


__all__ = ["install", "one_line"]
