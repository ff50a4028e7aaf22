"""Stand-ins the tests (and bench/ scripts) run in place of real servers and engines."""
