"""The environment of workers and single runs: offline, and no foreign progress bars or
advisories in the logs."""

from __future__ import annotations

QUIET_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}

__all__ = ["QUIET_ENV"]
