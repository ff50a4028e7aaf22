"""Cells, sweeps, placement, the result store and resume: everything but generating tokens."""
