"""Rendering computed answers and folded records: report.md, report.html, the console
summary, the report's tables, and (plots/) the PNG figures. Nothing here computes an answer:
the SLO, Pareto and OOM-frontier answers come in as one ``aggregate.answers.compute.Answers``.
"""
