"""report.html: report.md as one self-contained page to browse.

The page is made from the Markdown text of the report (so it has every table and plot of
it), in the subset report.md uses: headings, paragraphs, `>` quotes, `-` lists, pipe tables,
image lines, **bold** and `code`. Plots are embedded as data: URIs; a Content-Security-Policy
forbids loading anything else, so the page never touches the network. Tables sort on a click
of their header and long ones get a filter box (a few lines of inline script); failed/OOM
cells, flagged numbers and SIMULATED sections are coloured and tagged.
"""

from __future__ import annotations

import base64
import functools
import html
import logging
import re
from collections.abc import Sequence
from pathlib import Path

from aggregate.render.html_assets import CSP, SCRIPT, STYLE
from aggregate.tables import FLAG_MARKS, FLAG_MEANINGS, UNKNOWN_FLAG_MARK

log = logging.getLogger(__name__)

REPORT_HTML = "report.html"
FILTER_MIN_ROWS = 10
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)$")
_HEADING = re.compile(r"^(#{1,4}) (.*)$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_FLAG_MARKS = "".join(FLAG_MARKS.values()) + UNKNOWN_FLAG_MARK
_BY_MARK = {mark: FLAG_MEANINGS.get(flag, flag) for flag, mark in FLAG_MARKS.items()}
# A table cell that is a plain number (digits, a sign, a point, thousands commas): no class,
# no title, nothing to escape; most cells of a large sweep's tables are.
_PLAIN_NUMBER = re.compile(r"[-+]?\d[\d.,]*")


def inline(text: str) -> str:
    """Markdown inline -> HTML: `code`, **bold**, and the escapes \\| \\* of our tables."""
    out = []
    for i, part in enumerate(re.split(r"`([^`]*)`", text)):
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
            continue
        part = html.escape(part.replace("\\|", "|").replace("\\*", "\x00"))
        part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
        out.append(part.replace("\x00", "*"))
    return "".join(out)


def _slug(text: str, used: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
    slug, n = base, 1
    while slug in used:
        n += 1
        slug = f"{base}-{n}"
    used.add(slug)
    return slug


def _cells(line: str) -> list[str]:
    return [c.strip() for c in _CELL_SPLIT.split(line.strip().strip("|"))]


def _flag_title(plain: str) -> str:
    """The meanings of the flag marks at the end of a number, for a tooltip."""
    marks = re.search(r"[" + re.escape(_FLAG_MARKS) + r"]+$", plain)
    names = [_BY_MARK.get(m, "unknown flag") for m in (marks.group(0) if marks else "")]
    return html.escape("; ".join(dict.fromkeys(names)), quote=True)


def _td_class(text: str) -> str:
    classes = []
    title = ""
    if re.search(r"\b(FAILED|OOM|REGRESSION)\b", text):
        classes.append("bad")
    if "SIMULATED" in text or text.rstrip().endswith("°"):
        classes.append("sim")
    plain = text.replace("\\*", "*").rstrip()
    if plain and plain[-1] in _FLAG_MARKS and re.search(r"\d", plain):
        classes.append("flag")
        title = f' title="{_flag_title(plain)}"'
    if not re.match(r"^[-+]?\d", plain) and plain not in ("—", "n/a"):
        classes.append("txt" if len(plain) <= 40 else "txt long")  # words: left, long: wrap
    return (f' class="{" ".join(classes)}"' if classes else "") + title


@functools.lru_cache(maxsize=1 << 16)
def _td(text: str) -> str:
    """One table cell's HTML (its class, tooltip and inline markup). Remembered: a large
    sweep's tables repeat most of their texts (a model, a status, a flag's number)."""
    if _PLAIN_NUMBER.fullmatch(text):
        return f"<td>{text}</td>"
    return f"<td{_td_class(text)}>{inline(text)}</td>"


def table_html(lines: list[str], n: int) -> str:
    head, body = _cells(lines[0]), [_cells(row) for row in lines[2:]]
    tid = f"t{n}"
    out = []
    if len(body) >= FILTER_MIN_ROWS:
        out.append(
            f'<input class="filter" type="search" data-table="{tid}" '
            f'placeholder="filter {len(body)} rows" aria-label="filter rows">'
        )
    out.append(f'<div class="scroll"><table class="sortable" id="{tid}"><thead><tr>')
    out += [f'<th title="click to sort">{inline(h)}</th>' for h in head]
    out.append("</tr></thead><tbody>")
    for row in body:
        sim = any("SIMULATED" in c for c in row)
        out.append('<tr class="sim">' if sim else "<tr>")
        out += [_td(c) for c in row]
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def image_html(alt: str, src: str, root: Path) -> str:
    """A figure with the PNG inline; a visible note when it is missing or outside root."""
    path = (root / src).resolve()
    try:
        path.relative_to(root.resolve())
        data = path.read_bytes()
    except (ValueError, OSError) as exc:
        log.warning("report.html: plot %s not embedded: %s", src, exc)
        return f'<p class="bad">plot not available: <code>{html.escape(src)}</code></p>'
    uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    cap = html.escape(alt)
    return f'<figure><img src="{uri}" alt="{cap}"><figcaption>{cap}</figcaption></figure>'


class _Page:
    """Markdown blocks -> HTML blocks, with the sections (h2) wrapped and a contents list."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.body: list[str] = []
        self.toc: list[tuple[int, str, str, bool]] = []
        self.used: set[str] = set()
        self.tables = 0
        self.open_section = False

    def heading(self, level: int, text: str) -> None:
        sim = "SIMULATED" in text
        slug = _slug(text, self.used)
        if level == 2:
            if self.open_section:
                self.body.append("</section>")
            self.body.append(f'<section class="{"sim" if sim else "real"}">')
            self.open_section = True
        if level in (2, 3):
            self.toc.append((level, slug, text, sim))
        badge = ' <span class="badge">SIMULATED</span>' if sim else ""
        self.body.append(f'<h{level} id="{slug}">{inline(text)}{badge}</h{level}>')

    def block(self, kind: str, lines: list[str]) -> None:
        if kind == "table":
            self.tables += 1
            self.body.append(table_html(lines, self.tables))
        elif kind == "quote":
            text = " ".join(line.lstrip(">").strip() for line in lines)
            self.body.append(f'<blockquote class="{"sim" if "SIMULATED" in text else ""}">'
                             f"{inline(text)}</blockquote>")  # fmt: skip
        elif kind == "list":
            items = "".join(f"<li>{inline(line[2:])}</li>" for line in lines)
            self.body.append(f"<ul>{items}</ul>")
        elif kind == "para":
            self.body.append(f"<p>{inline(' '.join(lines))}</p>")

    def add(self, lines: list[str]) -> None:
        kind, block = "", []
        for line in [*lines, ""]:
            heading, image = _HEADING.match(line), _IMAGE.match(line.strip())
            new = ("table" if line.startswith("|") else "quote" if line.startswith(">")
                   else "list" if line.startswith("- ") else "para" if line.strip() else "")  # fmt: skip
            if heading or image or new != kind:
                self.block(kind, block)
                kind, block = "", []
            if heading:
                self.heading(len(heading.group(1)), heading.group(2))
            elif image:
                self.body.append(image_html(image.group(1), image.group(2), self.root))
            elif new:
                kind = new
                block.append(line)
        if self.open_section:
            self.body.append("</section>")

    def panel(self, title: str, body: str) -> None:
        """A section made elsewhere as HTML (e.g. the results store's trend panel)."""
        slug = _slug(title, self.used)
        self.toc.append((2, slug, title, False))
        self.body.append(
            f'<section class="real"><h2 id="{slug}">{inline(title)}</h2>{body}</section>'
        )

    def contents(self) -> str:
        items = []
        for level, slug, text, sim in self.toc:
            cls = f"l{level}" + (" sim" if sim else "")
            items.append(f'<li class="{cls}"><a href="#{slug}">{inline(text)}</a></li>')
        return f"<nav><strong>Contents</strong><ul>{''.join(items)}</ul></nav>"


def build_html(
    report_md: str, sweep_dir: str | Path, panels: Sequence[tuple[str, str]] = ()
) -> str:
    """The whole page; plots linked from the report are read from ``sweep_dir``; ``panels``:
    (title, HTML) sections put after the report's own."""
    page = _Page(Path(sweep_dir))
    page.add(report_md.splitlines())
    for title, body in panels:
        page.panel(title, body)
    title = report_md.splitlines()[0].lstrip("# ").strip() if report_md else "Benchmark report"
    banner = ""
    if "SIMULATED" in report_md:
        banner = ('<div class="banner">SIMULATED cells in this report: their numbers come '
                  "from the simulator and are not measurements.</div>")  # fmt: skip
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title.replace('`', ''))}</title><style>{STYLE}</style></head>"
        f"<body>{banner}{page.contents()}<main>{''.join(page.body)}</main>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
