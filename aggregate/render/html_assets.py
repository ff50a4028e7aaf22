"""The inline style, script and Content-Security-Policy of report.html (see render/html.py).

The policy allows only what is in the page: inline style and script, and data: images.
The script sorts a table on a click of its header (numbers as numbers; text, '—' and 'n/a'
after them) and filters the rows of long tables; it marks each table it set up with
data-ready="1", which the browser test checks.
"""

from __future__ import annotations

CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; base-uri 'none'; form-action 'none'"
)

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d1d1f}
main{margin-left:270px;padding:8px 24px 48px;max-width:1500px}
nav{position:fixed;top:0;left:0;bottom:0;width:250px;overflow:auto;padding:12px;
 background:#f5f5f7;border-right:1px solid #ddd;font-size:12px}
nav ul{list-style:none;padding:0;margin:6px 0}nav li.l3{padding-left:12px}
nav a{color:#0b57d0;text-decoration:none}nav li.sim a{color:#a21caf}
.banner{position:sticky;top:0;z-index:2;margin-left:250px;padding:8px 24px;
 background:#a21caf;color:#fff;font-weight:600}
section{border-left:4px solid transparent;padding-left:10px;margin:8px 0}
section.sim{border-left-color:#a21caf;background:repeating-linear-gradient(135deg,#fff,
 #fff 14px,#fbf0fd 14px,#fbf0fd 28px)}
.badge{background:#a21caf;color:#fff;border-radius:4px;padding:1px 6px;font-size:11px;
 vertical-align:middle}
blockquote{margin:8px 0;padding:6px 12px;border-left:4px solid #999;background:#f5f5f7}
blockquote.sim{border-left-color:#a21caf;background:#fbf0fd}
table{border-collapse:collapse;margin:6px 0 14px;font-size:12px}
th,td{border:1px solid #d0d0d7;padding:3px 7px;text-align:right;white-space:nowrap}
th:first-child,td:first-child,td.txt{text-align:left}
td.long{white-space:normal;min-width:18em;max-width:36em}td:first-child{white-space:nowrap}
div.scroll{overflow-x:auto}
th{background:#eef0f4;cursor:pointer;position:sticky;top:0}
th[data-dir=asc]::after{content:" \\25B2"}th[data-dir=desc]::after{content:" \\25BC"}
tbody tr:nth-child(even){background:#fafafc}tr.sim td:first-child{color:#a21caf}
td.bad{background:#fde2e1;color:#9b1c1c;font-weight:600}
td.flag{background:#fff4ce}td.sim{color:#a21caf}
p.bad{color:#9b1c1c;font-weight:600}
input.filter{display:block;margin:6px 0 2px;padding:3px 6px;width:260px}
figure{margin:8px 0 18px}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:12px;color:#555}code{background:#f0f0f3;padding:0 3px;border-radius:3px}
"""

SCRIPT = """
(function () {
  "use strict";
  function key(cell) {
    var s = cell ? cell.textContent.trim() : "";
    var m = s.replace(/[,x%\\u00b1]/g, "").match(/^[-+]?\\d*\\.?\\d+(e[-+]?\\d+)?/i);
    return m ? [0, parseFloat(m[0]), s] : [1, 0, s.toLowerCase()];
  }
  function cmp(a, b) {
    if (a[0] !== b[0]) { return a[0] - b[0]; }
    if (a[0] === 0 && a[1] !== b[1]) { return a[1] - b[1]; }
    return a[2] < b[2] ? -1 : (a[2] > b[2] ? 1 : 0);
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var heads = table.querySelectorAll("th");
    heads.forEach(function (th, i) {
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var dir = th.getAttribute("data-dir") === "asc" ? -1 : 1;
        heads.forEach(function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", dir === 1 ? "asc" : "desc");
        Array.prototype.slice.call(body.rows).sort(function (a, b) {
          var ka = key(a.cells[i]), kb = key(b.cells[i]);
          return ka[0] !== kb[0] ? ka[0] - kb[0] : dir * cmp(ka, kb);
        }).forEach(function (row) { body.appendChild(row); });
      });
    });
    table.setAttribute("data-ready", "1");
  });
  document.querySelectorAll("input.filter").forEach(function (input) {
    var table = document.getElementById(input.getAttribute("data-table"));
    input.addEventListener("input", function () {
      var q = input.value.toLowerCase();
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        row.hidden = q !== "" && row.textContent.toLowerCase().indexOf(q) < 0;
      });
    });
  });
})();
"""
