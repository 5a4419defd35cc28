"""``--listener html=PATH``: one self-contained HTML page with a timeline of the calls and their statistics.

Written at exit (also after an uncaught exception or ``sys.exit``) to PATH,
which is created when the listener is, before the program starts (a child
process of the run writes its own page beside it, see ``_output``). The page
has everything inline (style, script, data): it opens from a file with no
network.

- The timeline has a lane per thread, per asyncio task and per thread's
  generators and coroutines, laid out as in the chrome trace (see
  ``_timeline``): nested calls one row below their caller, errors red; hover
  for a summary, click for the arguments and the result.
- The table has the ``stats`` listener's rows (see ``_stats``), counting every
  finished call.
- The timeline draws the first ``CALL_LIMIT`` calls (an ancestor always starts
  before its descendants, so none is drawn without its callers); the page says
  how many more there were.

Must never: put a URL or any outside reference into the page, put program
text into the page unescaped, or keep the program's objects.
"""

from .. import __version__
from . import _output, require_arg
from ._html_page import PAGE
from ._jsontext import dumps, for_script_element
from ._stats import COLUMNS, Durations, count, plural
from ._timeline import Timeline
from .console import format_duration

CALL_LIMIT = 20_000  # what a browser still draws and scrolls smoothly as separate elements


def from_spec(arg, settings):
    output = _output.create(require_arg("html", arg, "a path"), in_child=settings.in_child)
    return HtmlReportListener(output, render=settings.render)


class HtmlReportListener(Timeline):
    """Records calls (``Timeline``) and every duration (``Durations``); writes the page in ``close()``."""

    def __init__(self, output, render=None, limit=CALL_LIMIT):
        super().__init__(render, limit=limit)
        self._output = output
        self._durations = Durations()

    def start(self, call):
        Timeline.start(self, call)
        self._durations.call_started(call)

    def end(self, call, result):
        Timeline.end(self, call, result)
        self._durations.call_returned(call, result)

    def error(self, call, exc):
        Timeline.error(self, call, exc)
        self._durations.call_raised(call, exc)

    def after_fork_in_child(self):
        Timeline.after_fork_in_child(self)
        self._durations.after_fork_in_child()
        self._output = self._output.for_forked_child() if self._output is not None else None

    def close(self):
        if self._output is not None and self._output.ours:
            self._output.write(self.page())

    def page(self):
        layout = self.layout()
        program = layout.program
        rows = self._durations.summary()
        calls, errors = count(rows)
        threads = {(track.thread_id, track.thread_name) for track in layout.tracks}
        drawn = sum(len(track.slices) for track in layout.tracks)
        summary = (f"{plural(calls, 'call')} of {plural(len(rows), 'target')}, {plural(errors, 'error')}, "
                   f"on {plural(len(threads), 'thread')}.")
        note = ""
        if layout.dropped:
            note = (f'<p class="note">The timeline shows the first {drawn} calls; {layout.dropped} later calls are only '
                    "counted in the table.</p>")
        # the data as text, call by call: one dict (and one list of its JSON pieces) for all of them at
        # once would be several times the text itself
        head = dumps({"program": program, "pid": layout.pid, "time_zero_wall_ms": layout.origin_wall_ns // 1_000_000})
        data = for_script_element(head[:-1]) + ',"tracks":[' + ",".join(_track_text(track) for track in layout.tracks) + "]}"
        slots = {
            "TITLE": escape(f"hookwise report: {program} (pid {layout.pid})"),
            "SUMMARY": escape(f"{summary} hookwise {__version__}."),
            "TIMELINE_NOTE": note,
            "STATS": _findings_table(layout.findings) + _stats_table(rows),
            "DATA": data,  # escaped piece by piece for the script element
        }
        # one pass over the template: text put into one slot is never searched for another slot
        pieces = PAGE.split("@@")
        pieces[1::2] = [slots[name] for name in pieces[1::2]]
        return "".join(pieces)


def _track_text(track):
    """A track and its calls, as JSON text that can sit in the page's script element."""
    head = dumps({"name": track.name, "kind": track.kind, "thread": track.thread_name, "rows": track.rows})
    calls = ",".join(for_script_element(dumps(_call_data(piece))) for piece in track.slices)
    return for_script_element(head[:-1]) + ',"calls":[' + calls + "]}"


def _call_data(piece):
    return {
        "id": piece.call_id,
        "target": piece.target,
        "kind": piece.kind,
        "task": piece.task,
        "start": piece.start_ns,
        "duration": piece.duration_ns,
        # the runtime's measure of the call, as in the table; the bar spans its stamps on the program clock
        "duration_text": format_duration(piece.duration_ns if piece.unfinished else piece.call_duration_ns),
        "depth": piece.depth,
        "caller": piece.caller,
        "app_caller": piece.app_caller,
        "meaning": None if piece.meaning is None else [piece.meaning[0], [[key, _flat(value)] for key, value in
                                                                         piece.meaning[1].items()]],
        "request_id": piece.request_id,
        "arguments": [list(pair) for pair in piece.arguments],
        "result": piece.result,
        "error": piece.error,
        "unfinished": piece.unfinished,
    }


FINDING_COLUMNS = ("rule", "severity", "action", "request", "sink", "input", "changed", "app caller")


def _findings_table(findings):
    """The guard's findings (hookwise.guard), one row each, before the stats table; nothing without a guard."""
    if not findings:
        return ""
    head = "".join(f"<th>{escape(name)}</th>" for name in FINDING_COLUMNS)
    body = []
    for _, _, _, fields in findings:
        request = fields["request"]
        cells = (fields["rule"], fields["severity"], fields["action"],
                 "" if request is None else f"{request['method']} {request['path']} (#{request['request_id']})",
                 f"{fields['sink']['target']} #{fields['sink']['call_id']}",
                 f"{fields['input']['source']}: {fields['input']['value']}", fields["fragment"],
                 fields["app_caller"] or "")
        body.append("<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in cells) + "</tr>")
    return (f'<h2>Guard findings</h2>\n<table id="findings"><thead><tr>{head}</tr></thead><tbody>\n'
            + "\n".join(body) + "\n</tbody></table>\n")


def _flat(value):
    """A meaning's value as the page shows it: a request's headers as "name: value" lines."""
    if isinstance(value, dict):
        return "\n".join(f"{name}: {item}" for name, item in value.items()) or None
    return value


def _stats_table(rows):
    if not rows:
        return '<p class="note">No hooked call finished.</p>'
    head = "".join(f"<th>{escape(name)}</th>" for name in COLUMNS)
    body = []
    for row in rows:
        cells = row.cells()
        tds = [f"<td>{escape(cells[0])}</td>", f"<td>{cells[1]}</td>",
               f'<td class="errors">{cells[2]}</td>' if row.errors else f"<td>{cells[2]}</td>"]
        tds.extend(f"<td>{escape(cell)}</td>" for cell in cells[3:])
        body.append(f"<tr>{''.join(tds)}</tr>")
    return f'<table id="stats"><thead><tr>{head}</tr></thead><tbody>\n' + "\n".join(body) + "\n</tbody></table>"


def escape(text):
    """Text for HTML content or a quoted attribute: the five special characters as entities."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))

