"""Static cells: timed generate calls of one batch through one backend."""
