"""report.html works in a real headless Chromium (a browser process: the integration tier;
skipped, with the reason, where no Chromium is installed: `apt-get install -y chromium` on
Debian)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aggregate import write_outputs
from aggregate.render.html import build_html
from tests.chromium import Chromium, find_chromium
from tests.unit.test_report_html import markdown_tables, sweep_records

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
