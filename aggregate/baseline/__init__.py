"""A sweep against a baseline sweep (``python -m aggregate NEW --baseline OLD``): whether
their environments may be compared (envdiff.py), then cell by cell, with the regression
gate (compare.py)."""
