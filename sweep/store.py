"""The end of a sweep adds its records to the results store (aggregate/store/).

``hydra.launcher.app_options.store``: true (the default) writes ``results.duckdb`` beside
the sweep directory, a path writes that database, false writes none. Writing the store never
fails the sweep nor touches its outputs: a store that cannot be written (locked too long, a
database error, duckdb missing) is one warning line, and the report goes without its trend
panel.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aggregate.store import default_db

log = logging.getLogger(__name__)


def store_path(option: Any, sweep_dir: str | os.PathLike[str]) -> Path | None:
    """The database the option names: true -> beside the sweep, a path -> it, false -> none."""
    if option is True or (isinstance(option, str) and option.lower() == "true"):
        return default_db(sweep_dir)
    if not option or (isinstance(option, str) and option.lower() in ("false", "none", "null")):
        return None
    return Path(str(option)).expanduser()


def store_sweep(
    db: Path | None, sweep_dir: str | os.PathLike[str], rows: Sequence[dict[str, Any]]
) -> Path | None:
    """Add the sweep's rows to ``db``; the database when it holds them, else None (warned)."""
    if db is None:
        return None
    try:
        from aggregate.store.db import add_records  # duckdb only when a store is written

        new = add_records(db, sweep_dir, rows)
    except Exception as exc:  # never fail or lose the sweep for its store
        print(f"warning: results store {db} not written: {type(exc).__name__}: {exc}",
              file=sys.stderr, flush=True)  # fmt: skip
        log.debug("results store %s", db, exc_info=True)
        return None
    print(f"results store: {new} new record(s) -> {db}")
    return db
