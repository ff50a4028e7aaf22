"""The PNG figures (headless matplotlib: Figure + Agg, no pyplot state; imported lazily).

names.py says where each figure goes (the report links those paths without drawing);
save.py writes one; static.py, serving.py and answers.py draw them.
"""
