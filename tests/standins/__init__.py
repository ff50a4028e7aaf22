"""Stand-ins the tests (and bench/ scripts) run in place of real servers and engines."""

from __future__ import annotations

from pathlib import Path

# The paced stand-in server, run as a script (``python PACED_SCRIPT --port N``): a server's
# working directory need not be the repository's, so ``-m tests.standins.paced`` may not import.
PACED_SCRIPT = str(Path(__file__).with_name("paced.py"))
# The same on a lean asyncio transport (bench/serving_client.py --server lean).
PACED_LEAN_SCRIPT = str(Path(__file__).with_name("paced_lean.py"))
