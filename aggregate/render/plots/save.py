"""Writing a figure: one PNG at 100 dpi, atomically."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from jobs.files import atomic_write_bytes


def save_png(fig: Any, path: Path) -> str:
    """``fig`` as a PNG at ``path`` (written atomically); returns the path written."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return atomic_write_bytes(path, buf.getvalue())
