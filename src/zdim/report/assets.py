"""The report page's inline style sheet and script (no external files: the page is self-contained)."""

CSS = """
:root{--fg:#1d2330;--muted:#667085;--line:#e4e7ec;--bg:#f7f8fa;--card:#fff;--accent:#1f6feb;--warn:#b54708}
*{box-sizing:border-box}body{margin:0;font:15px/1.5 -apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
color:var(--fg);background:var(--bg)}.wrap{max-width:1200px;margin:0 auto;padding:0 20px}
header{background:#0f1729;color:#fff;padding:14px 0 0;position:sticky;top:0;z-index:2}
header .brand{font-weight:700;letter-spacing:.5px;color:#8ab4ff}header .title{font-size:18px;font-weight:600;margin-left:8px}
header .muted{color:#98a2b3;margin-left:8px;font-size:13px}
nav{display:flex;flex-wrap:wrap;gap:4px 14px;padding-top:8px!important;padding-bottom:8px!important;font-size:13px}
nav a{color:#c7d7fe;text-decoration:none}nav a:hover{color:#fff}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px;margin:18px 0}
h2{margin:0 0 8px;font-size:19px}h3{font-size:15px;margin:18px 0 6px}.intro{color:var(--muted);margin:0 0 12px}
.answer{display:flex;align-items:center;gap:18px}.big{font-size:56px;font-weight:700;color:var(--accent);line-height:1}
.label{color:var(--muted);font-size:13px;text-transform:uppercase;letter-spacing:.4px}.rule{font-size:14px}
.rationale{font-size:15.5px;max-width:900px;margin:10px 0;padding-left:22px}.rationale li{margin:2px 0}
.alert{background:#fef3f2;border:2px solid #f04438;color:#912018;border-radius:8px;padding:10px 14px;margin:0 0 14px}
.alert-head{font-weight:700;font-size:16px}.alert ul{margin:6px 0 0;padding-left:20px}
.tuned-test{font-weight:600}
.warn{background:#fffaeb;border:1px solid #fedf89;color:var(--warn);border-radius:8px;padding:8px 12px;margin:10px 0}
.two{display:grid;grid-template-columns:minmax(0,1fr) minmax(0,1fr);gap:20px;align-items:start}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(440px,1fr));gap:16px}
figure{margin:0}figure img{max-width:100%;height:auto;display:block}figcaption{color:var(--muted);font-size:13px}
table{border-collapse:collapse;font-size:13.5px}.kv th{text-align:left;color:var(--muted);font-weight:500;
padding:3px 14px 3px 0;vertical-align:top}.kv td{padding:3px 0}
.sizes{margin:10px 0}.sizes caption{text-align:left;color:var(--muted);font-size:13px}.sizes th,.sizes td{padding:2px 10px;text-align:right}.sizes tr.chosen td{font-weight:600}.sizes td:last-child{text-align:left}
pre.cmd{background:#0f1729;color:#e6edf3;padding:10px 12px;border-radius:8px;white-space:pre-wrap;word-break:break-all}
.scroll{overflow-x:auto}.trials th,.trials td{padding:5px 10px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
.trials th{cursor:pointer;user-select:none;background:#f2f4f7;position:sticky;top:0}.trials th:first-child,.trials td:first-child,
.trials td:nth-child(4){text-align:left}.trials th.asc::after{content:" ▲"}.trials th.desc::after{content:" ▼"}
tr.rec td{background:#eef4ff}tr.failed td{color:var(--warn)}
.images th{text-align:right;padding:2px 10px 2px 0;color:var(--muted);font-weight:500;white-space:nowrap}
.images img.strip{image-rendering:pixelated;display:block;max-width:none}.images tr.rec th{color:var(--accent);font-weight:700}
details{border-bottom:1px solid var(--line);padding:6px 0}summary{cursor:pointer}
.badge{font-size:11px;border-radius:10px;padding:1px 8px;background:#ecfdf3;color:#067647}
.badge.failed{background:#fef3f2;color:#b42318}.badge.pruned{background:#f2f4f7;color:#475467}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(270px,1fr));gap:10px}
.card{border:1px solid var(--line);border-radius:8px;padding:6px 8px}.card a{font-size:13px}
.spark{max-width:100%;height:auto}.small{font-size:12px;color:var(--muted)}.muted{color:var(--muted)}footer{padding:10px 20px 30px;font-size:12.5px}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.92em}
@media (max-width:720px){.two{grid-template-columns:1fr}.grid{grid-template-columns:1fr}.big{font-size:44px}
section{padding:14px}body{font-size:14px}}
"""

JS = """
document.querySelectorAll('table.sortable').forEach(function (table) {
  var heads = table.querySelectorAll('th');
  heads.forEach(function (th) {
    function sort() {
      var col = +th.dataset.col, asc = !th.classList.contains('asc');
      heads.forEach(function (h) { h.classList.remove('asc', 'desc'); });
      th.classList.add(asc ? 'asc' : 'desc');
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[col].dataset.sort, y = b.cells[col].dataset.sort;
        var nx = x === '' ? NaN : +x, ny = y === '' ? NaN : +y, r;
        if (!isNaN(nx) && !isNaN(ny)) { r = nx - ny; }
        else if (isNaN(nx) !== isNaN(ny)) { return isNaN(nx) ? 1 : -1; }
        else { r = a.cells[col].textContent.localeCompare(b.cells[col].textContent); }
        return asc ? r : -r;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    }
    th.addEventListener('click', sort);
    th.addEventListener('keydown', function (e) { if (e.key === 'Enter') { sort(); } });
  });
});
document.querySelectorAll('a[href^="#trial-"]').forEach(function (a) {
  a.addEventListener('click', function () {
    var d = document.getElementById(a.getAttribute('href').slice(1));
    if (d) { d.open = true; }
  });
});
"""

__all__ = ["CSS", "JS"]
