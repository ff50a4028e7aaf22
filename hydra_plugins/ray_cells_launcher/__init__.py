"""Hydra launcher that runs each job of a multirun on a long-lived Ray actor per device."""
