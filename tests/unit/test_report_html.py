"""report.html: self-contained, every table and plot of report.md (in a real headless
Chromium: tests/integration/test_report_browser.py)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from aggregate import write_outputs
from aggregate.render.html import build_html, inline
from tests.unit.test_aggregate import grid, make_record, oom_record

PNG_1PX = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c63f8cfc0f01f0005000201ff0d2a7c6d0000000049454e44ae426082"
)


def sweep_records() -> list[dict[str, Any]]:
    """Measured and simulated groups, a flagged cell, an OOM and a failure."""
    recs = grid(batches=(1, 2, 4, 8), seqs=(64, 128, 256))
    recs[1]["flags"] = ["unstable"]
    recs.append({**oom_record(), "batch": 16, "cell_id": "0" * 16, "cell_dir": "oom-b16"})
    recs.append(make_record(16, 64, status="failed", error={"type": "E", "message": "boom"}))
    recs += grid(backend="sim", model="llama3_8b")
    return recs


def markdown_tables(md: str) -> int:
    return len(re.findall(r"^\|---", md, flags=re.M))


def test_inline_markdown() -> None:
    assert inline("**bold** `a|b` 1.0\\* x \\| y <z>") == (
        "<strong>bold</strong> <code>a|b</code> 1.0* x | y &lt;z&gt;"
    )


def test_html_has_every_table_and_plot_inline_and_nothing_remote(tmp_path: Path) -> None:
    out = write_outputs(tmp_path, sweep_records(), slo_tpot_ms=1.05)
    md = (tmp_path / "report.md").read_text()
    page = Path(out["report.html"]).read_text()
    assert page.count("<table") == markdown_tables(md) >= 10
    n_plots = len(re.findall(r"^!\[", md, flags=re.M))
    assert n_plots >= 5 and page.count('<img src="data:image/png;base64,') == n_plots
    assert not re.search(r"""(src|href)=["'](?!data:|#)""", page)  # only inline and anchors
    assert "default-src 'none'" in page and "http" not in page.replace("http-equiv", "")
    assert '<section class="sim">' in page and 'class="banner"' in page
    assert re.search(r'<td class="bad[^"]*">OOM \[\d\]</td>', page)
    assert re.search(
        r'<td class="flag[^"]*" title="unstable: E2E coefficient[^"]*">[\d.]+\*</td>', page
    )


def test_missing_or_outside_plot_is_shown_not_read(tmp_path: Path) -> None:
    (tmp_path / "secret.png").write_bytes(PNG_1PX)
    root = tmp_path / "sweep"
    (root / "plots").mkdir(parents=True)
    (root / "plots" / "ok.png").write_bytes(PNG_1PX)
    md = "# R\n\n![a](plots/ok.png)\n\n![b](plots/gone.png)\n\n![c](../secret.png)\n"
    page = build_html(md, root)
    assert page.count("data:image/png;base64,") == 1
    assert "plot not available: <code>plots/gone.png</code>" in page
    assert "plot not available: <code>../secret.png</code>" in page
