"""The answers a sweep's outputs give: the largest load meeting an SLO (slo.py), the
throughput-vs-latency Pareto front (pareto.py), the out-of-memory frontier (frontier.py),
and repeats folded into means with confidence intervals (confidence.py), over what
points.py reads off a record. compute.py computes them all once per output run into one
``Answers``; render/ only formats it.
"""
