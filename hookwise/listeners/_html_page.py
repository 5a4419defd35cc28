"""The fixed parts of the html report: its page, style and the script that draws the timeline.

``html.py`` fills the slots (``@@NAME@@``) with escaped text and the calls as
JSON. The script reads that JSON and draws one lane per track: a bar per call,
placed by its start and length, one row down per level of nesting; errors red,
calls still running at exit striped, generator-like calls dashed; hover shows a
summary, a click (or opening ``report.html#call-ID``) shows the arguments and
the result in the side panel. It then writes how many bars it drew into
``#bar-count`` (tests read it from the DOM).

Must never: reference anything outside the page (no URL at all: no fonts,
scripts, styles or images from elsewhere), or put data into the page as HTML
(``textContent`` only, so no argument or result can inject markup).
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>@@TITLE@@</title>
<style>
:root { --row: 20px; --label: 270px; --ink: #1f2328; --muted: #656d76; --line: #d0d7de; --error: #cf222e; }
* { box-sizing: border-box; }
body { margin: 0; font: 13px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--ink); background: #f6f8fa; }
header { padding: 12px 18px; background: #24292f; color: #fff; }
header h1 { margin: 0; font-size: 17px; font-weight: 600; }
header p { margin: 2px 0 0; color: #c9d1d9; }
main { display: grid; grid-template-columns: minmax(0, 1fr) 340px; gap: 12px; padding: 12px 18px; }
section, aside { background: #fff; border: 1px solid var(--line); border-radius: 6px; }
h2 { margin: 0; padding: 8px 12px; font-size: 14px; border-bottom: 1px solid var(--line); }
.toolbar { display: flex; gap: 8px; align-items: center; padding: 6px 12px; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
.toolbar button { font: inherit; padding: 1px 9px; border: 1px solid var(--line); border-radius: 4px; background: #f6f8fa; cursor: pointer; }
.legend { margin-left: auto; display: flex; gap: 10px; color: var(--muted); }
.swatch { display: inline-block; width: 12px; height: 10px; margin-right: 3px; vertical-align: -1px; border-radius: 2px; background: hsl(210, 55%, 65%); }
.lanes { overflow-x: auto; overflow-y: auto; max-height: 560px; }
.lanes-inner { position: relative; }
.track { display: flex; border-bottom: 1px solid #eaeef2; }
.track.task .label { padding-left: 22px; font-weight: 400; }
.track.suspended .label { padding-left: 22px; font-weight: 400; font-style: italic; }
.label { flex: none; width: var(--label); position: sticky; left: 0; z-index: 2; background: #fff; padding: 2px 8px;
         border-right: 1px solid var(--line); white-space: nowrap; overflow: hidden; text-overflow: ellipsis; font-weight: 600; }
.lane { position: relative; flex: 1; min-height: var(--row); overflow: hidden; }
.axis .lane { height: 22px; }
.tick { position: absolute; top: 0; bottom: 0; border-left: 1px solid var(--line); padding-left: 3px; color: var(--muted); font-size: 11px; white-space: nowrap; }
.bar { position: absolute; height: calc(var(--row) - 2px); margin-top: 1px; min-width: 1px; padding: 0 4px; border-radius: 3px;
       overflow: hidden; white-space: nowrap; text-overflow: clip; font-size: 11px; line-height: calc(var(--row) - 2px);
       color: #0d1117; cursor: pointer; border: 1px solid rgba(0, 0, 0, .18); }
.bar:hover { outline: 2px solid #0969da; z-index: 1; }
.bar.selected { outline: 2px solid #0969da; z-index: 1; }
.bar.error, .swatch.error { background: var(--error) !important; color: #fff; border-color: #82071e; }
.bar.unfinished, .swatch.unfinished { background-image: repeating-linear-gradient(135deg, rgba(255,255,255,.55) 0 4px, transparent 4px 8px); }
.bar.suspending, .swatch.suspending { border-style: dashed; border-color: #57606a; }
#details { padding: 0 0 8px; align-self: start; position: sticky; top: 12px; max-height: calc(100vh - 24px); overflow: auto; }
#details .hint { color: var(--muted); padding: 8px 12px; margin: 0; }
#details h3 { margin: 0; padding: 6px 12px 0; font-size: 12px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
#details dl { margin: 0; padding: 8px 12px; display: grid; grid-template-columns: 88px minmax(0, 1fr); gap: 3px 8px; }
#details dt { color: var(--muted); }
#details dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; white-space: pre-wrap; overflow-wrap: anywhere; }
#details dd.error { color: var(--error); font-weight: 600; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 4px 12px; text-align: right; border-bottom: 1px solid #eaeef2; font-variant-numeric: tabular-nums; white-space: nowrap; }
th { color: var(--muted); font-weight: 600; }
th:first-child, td:first-child { text-align: left; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
td.errors { color: var(--error); font-weight: 600; }
.stats { grid-column: 1 / -1; }
.note { color: var(--muted); padding: 6px 12px; margin: 0; }
</style>
</head>
<body>
<header>
<h1>@@TITLE@@</h1>
<p>@@SUMMARY@@ <span id="started"></span></p>
</header>
<main>
<section class="timeline">
<h2>Timeline</h2>
<div class="toolbar">
<button type="button" id="zoom-out" title="zoom out">&minus;</button>
<button type="button" id="zoom-in" title="zoom in">+</button>
<button type="button" id="zoom-fit" title="fit the whole run">fit</button>
<span><span id="bar-count" data-bars="0">0</span> calls drawn</span>
<span class="legend"><span><span class="swatch"></span>call</span><span><span class="swatch error"></span>raised</span>
<span><span class="swatch unfinished"></span>running at exit</span><span><span class="swatch suspending"></span>generator / coroutine</span></span>
</div>
@@TIMELINE_NOTE@@
<div class="lanes" id="lanes"><div class="lanes-inner" id="lanes-inner"><noscript><p class="note">The timeline needs JavaScript; the table below does not.</p></noscript></div></div>
</section>
<aside id="details"><h2>Call</h2><p class="hint">Click a bar to see its arguments and its result. Hover for a summary.</p></aside>
<section class="stats">
<h2>Calls by target (slowest total first)</h2>
@@STATS@@
</section>
</main>
<script type="application/json" id="hookwise-data">@@DATA@@</script>
<script>
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("hookwise-data").textContent);
  var inner = document.getElementById("lanes-inner");
  var details = document.getElementById("details");
  var zoom = 1, selected = null, drawn = 0, errors = 0;
  var first = Infinity, last = 0;
  data.tracks.forEach(function (track) {
    track.calls.forEach(function (call) {
      first = Math.min(first, call.start);
      last = Math.max(last, call.start + call.duration);
    });
  });
  if (first === Infinity) { first = 0; last = 1; }
  var span = Math.max(last - first, 1);

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }
  function percent(ns) { return (ns / span * 100) + "%"; }
  function hue(text) {
    var hash = 0;
    for (var i = 0; i < text.length; i++) hash = (hash * 31 + text.charCodeAt(i)) | 0;
    return Math.abs(hash) % 360;
  }
  function timeText(ns) {
    if (ns < 1e3) return Math.round(ns) + " ns";
    if (ns < 1e6) return (ns / 1e3).toFixed(1) + " us";
    if (ns < 1e9) return (ns / 1e6).toFixed(2) + " ms";
    return (ns / 1e9).toFixed(3) + " s";
  }

  function drawAxis() {
    var row = element("div", "track axis");
    row.appendChild(element("div", "label", "time since first call"));
    var lane = element("div", "lane");
    var rough = span / (8 * zoom), step = Math.pow(10, Math.floor(Math.log10(rough)));
    if (rough / step >= 5) step *= 5; else if (rough / step >= 2) step *= 2;
    for (var t = 0; t <= span; t += step) {
      var tick = element("div", "tick", "+" + timeText(t));
      tick.style.left = percent(t);
      lane.appendChild(tick);
    }
    row.appendChild(lane);
    return row;
  }

  function show(call, track, bar) {
    if (selected) selected.classList.remove("selected");
    selected = bar;
    bar.classList.add("selected");
    details.textContent = "";
    details.appendChild(element("h2", "", call.target));
    // the call, its arguments (by parameter name) and its outcome, each a list of its own,
    // so that a parameter named like a field ("caller") is never mistaken for it
    function list(heading, pairs) {
      if (heading) details.appendChild(element("h3", "", heading));
      var names = element("dl");
      pairs.forEach(function (pair) {
        if (pair[1] === null || pair[1] === undefined || pair[1] === "") return;
        names.appendChild(element("dt", "", pair[0]));
        names.appendChild(element("dd", pair[2] || "", String(pair[1])));
      });
      details.appendChild(names);
    }
    list("", [
      ["call", "#" + call.id + " (" + call.kind + ")"], ["thread", track.thread], ["task", call.task],
      ["request", call.request_id === null ? null : "#" + call.request_id],
      ["started", "+" + timeText(call.start - first)],
      ["duration", call.duration_text + (call.unfinished ? " (still running at exit)" : "")], ["caller", call.caller],
      ["app caller", call.app_caller === call.caller ? null : call.app_caller]
    ]);
    if (call.meaning !== null) list(call.meaning[0], call.meaning[1]);  // an SQL statement's fields
    list("arguments", call.arguments.length ? call.arguments : [["", "(none)"]]);
    if (call.error !== null) list("outcome", [["raised", call.error, "error"]]);
    else if (!call.unfinished) list("outcome", [["returned", call.result]]);
  }

  function drawTrack(track) {
    var row = element("div", "track " + track.kind);
    var label = element("div", "label", track.name);
    label.title = track.name;
    row.appendChild(label);
    var lane = element("div", "lane");
    lane.style.height = "calc(var(--row) * " + Math.max(track.rows, 1) + ")";
    track.calls.forEach(function (call) {
      var bar = element("div", "bar", call.target.split(":").pop());
      bar.id = "call-" + call.id;
      bar.style.left = percent(call.start - first);
      bar.style.width = percent(call.duration);
      bar.style.top = "calc(var(--row) * " + call.depth + ")";
      bar.style.background = "hsl(" + hue(call.target) + ", 55%, 68%)";
      if (call.error !== null) { bar.classList.add("error"); errors++; }
      if (call.unfinished) bar.classList.add("unfinished");
      if (call.kind !== "function" && call.kind !== "builtin") bar.classList.add("suspending");
      bar.title = call.target + "  " + call.duration_text +
        (call.error !== null ? "\\nraised " + call.error : (call.unfinished ? "\\nstill running at exit" : "\\nreturned " + call.result));
      bar.addEventListener("click", function () { show(call, track, bar); });
      lane.appendChild(bar);
      drawn++;
    });
    row.appendChild(lane);
    return row;
  }

  function draw() {
    inner.textContent = "";
    inner.style.width = "calc(var(--label) + (100% - var(--label)) * " + zoom + ")";
    inner.appendChild(drawAxis());
    drawn = 0; errors = 0;
    data.tracks.forEach(function (track) { inner.appendChild(drawTrack(track)); });
    var count = document.getElementById("bar-count");
    count.textContent = String(drawn);
    count.setAttribute("data-bars", String(drawn));
    count.setAttribute("data-error-bars", String(errors));
  }

  document.getElementById("zoom-in").addEventListener("click", function () { zoom *= 2; draw(); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoom = Math.max(1, zoom / 2); draw(); });
  document.getElementById("zoom-fit").addEventListener("click", function () { zoom = 1; draw(); });
  document.getElementById("started").textContent = "Started " + new Date(data.time_zero_wall_ms).toLocaleString() + ".";
  draw();
  // a link to one call: report.html#call-12 opens with that call's details shown
  var wanted = /^#call-(\\d+)$/.exec(location.hash);
  if (wanted) {
    var bar = document.getElementById("call-" + wanted[1]);
    if (bar) bar.click();
  }
  document.body.setAttribute("data-rendered", "yes");
})();
</script>
</body>
</html>
"""
