"""report.html: self-contained, every table and plot of report.md, and it works in a real
headless Chromium (skipped, with the reason, where no Chromium is installed:
`apt-get install -y chromium` on Debian)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from aggregate import write_outputs
from aggregate.render.html import build_html, inline
from tests.chromium import Chromium, find_chromium
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


CHROMIUM = find_chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium on PATH (Debian: apt-get install -y chromium)"
)

SORT_COLUMN = """(() => {
  const t = [...document.querySelectorAll('table')].find(
      t => t.tHead.rows[0].cells[0].textContent === 'batch' &&
           t.tHead.rows[0].cells[3].textContent === 'average throughput tokens/s' &&
           t.tBodies[0].textContent.includes('OOM'));
  const col = i => [...t.tBodies[0].rows].map(r => r.cells[i].textContent);
  t.tHead.rows[0].cells[3].click(); const up = col(3);
  t.tHead.rows[0].cells[3].click(); const down = col(3);
  return [up, down];
})()"""


@needs_chromium
def test_report_html_renders_in_headless_chromium(tmp_path: Path) -> None:
    write_outputs(tmp_path, sweep_records(), slo_tpot_ms=1.05)
    md = (tmp_path / "report.md").read_text()
    with Chromium(CHROMIUM) as browser:
        browser.open((tmp_path / "report.html").as_uri())
        n_tables = browser.evaluate("document.querySelectorAll('table').length")
        assert n_tables == markdown_tables(md)
        assert browser.evaluate("document.querySelectorAll('table[data-ready]').length") == n_tables
        rows = browser.evaluate("document.querySelectorAll('tbody tr').length")
        assert rows > 50
        images = "[...document.images].map(i => i.complete && i.naturalWidth > 100)"
        loaded = browser.evaluate(images)
        assert loaded and all(loaded)
        banner = browser.evaluate("document.querySelector('.banner').innerText")
        assert "SIMULATED" in banner
        assert browser.evaluate("document.querySelectorAll('td.bad').length") >= 2
        up, down = browser.evaluate(SORT_COLUMN)
        ups = [float(v.rstrip("*")) for v in up if v[0].isdigit()]
        downs = [float(v.rstrip("*")) for v in down if v[0].isdigit()]
        assert ups == sorted(ups) and downs == sorted(ups, reverse=True) and len(ups) >= 10
        assert not up[-1][0].isdigit()  # '—' after the numbers, both ways
        assert not down[-1][0].isdigit()
        assert browser.console_errors() == []


@needs_chromium
def test_the_browser_check_sees_errors(tmp_path: Path) -> None:
    """The harness is not blind: a script error and a blocked remote image are reported."""
    page = build_html("# R\n\nx\n", tmp_path).replace(
        "</main>", '</main><img src="https://example.invalid/x.png"><script>noSuchFn()</script>'
    )
    (tmp_path / "bad.html").write_text(page)
    with Chromium(CHROMIUM) as browser:
        browser.open((tmp_path / "bad.html").as_uri())
        errors = "\n".join(browser.console_errors())
    assert "noSuchFn" in errors or "ReferenceError" in errors
    assert "example.invalid" in errors
