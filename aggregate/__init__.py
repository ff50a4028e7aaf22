"""Records -> tables, report, plots and comparisons.

Runs anywhere the records are (a laptop with a copied sweep directory): stdlib and
matplotlib only (duckdb for the results store, aggregate/store/), never Ray, torch or
``workers``. Plots import matplotlib and the store duckdb lazily.
"""

from __future__ import annotations

from aggregate.compare import CompareRow, compare, compare_markdown
from aggregate.load import load_records
from aggregate.outputs import write_outputs
from aggregate.summary import summary_table

__all__ = [
    "CompareRow",
    "compare",
    "compare_markdown",
    "load_records",
    "summary_table",
    "write_outputs",
]
