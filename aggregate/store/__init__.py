"""The results store: every sweep's records in one DuckDB database, and their history.

db.py: the table, its lock, adding a sweep, reading back, Parquet export. history.py: a
cell's runs over time and the `--baseline` verdict of each step. text.py / trend.py: history
as Markdown (``python -m aggregate history``) and as the trend panel of report.html. cli.py:
the `store` and `history` subcommands. duckdb is imported only by these modules.
"""

from __future__ import annotations

import os
from pathlib import Path

SUBCOMMANDS = ("store", "history")
DB_NAME = "results.duckdb"


def default_db(sweep_dir: str | os.PathLike[str]) -> Path:
    """Where a sweep's rows go unless told: ``results.duckdb`` beside the sweep directory."""
    return Path(sweep_dir).resolve().parent / DB_NAME
