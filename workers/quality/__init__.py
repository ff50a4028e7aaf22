"""Token checks of a cell, run after its measured window (docs/quality.md): the check prompts
(:mod:`workers.quality.check`) and the task check (:mod:`workers.quality.task`)."""
