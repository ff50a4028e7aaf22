"""Bounds and specs, a leaf: device peaks with their sources, model cost, roofline arithmetic.
Pure data and arithmetic: no torch, no project package but itself."""
