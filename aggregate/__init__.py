"""Records -> tables, report, plots and comparisons.

Runs anywhere the records are (a laptop with a copied sweep directory): stdlib and
matplotlib only (duckdb for the results store, aggregate/store/), never Ray, torch or
``workers``. Plots import matplotlib and the store duckdb lazily.

Layout, lowest first (no module imports one above it):
  reader.py, tables.py, serving.py   reading records; what a record's cells, groups, flags
                                     and serving load are
  answers/    the answers (SLO, Pareto front, OOM frontier, repeats folded), computed once
              per output run into one ``Answers`` (answers/compute.py)
  render/     report.md, report.html, the console summary and tables; render/plots/ the PNGs;
              they take the computed ``Answers`` and never recompute one
  baseline/   a sweep against a baseline sweep: environments, cell by cell, the gate
  store/      the results store (DuckDB) and a cell's history across sweeps
  outputs.py  writes every output file; __main__.py and check.py are the two CLIs
"""

from __future__ import annotations

from aggregate.baseline.compare import CompareRow, compare, compare_markdown
from aggregate.outputs import write_outputs
from aggregate.reader import read_records
from aggregate.render.summary import summary_table

__all__ = [
    "CompareRow",
    "compare",
    "compare_markdown",
    "read_records",
    "summary_table",
    "write_outputs",
]
