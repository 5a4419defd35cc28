"""``--listener html=PATH``: one self-contained HTML page with a timeline of the calls and their statistics.

Written at exit (also after an uncaught exception, ``sys.exit`` or SIGTERM) to
PATH, which is created when the listener is, before the program starts (a
child process of the run writes its own page beside it, see ``_output``). The
page has everything inline (style, script, data): it opens from a file with no
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

As the run goes, a call costs what ``record`` costs and the stats' bookkeeping:
the first ``CALL_LIMIT`` calls are recorded by the ``record`` listener's writer
into a private recording beside PATH (``PATH.rec``, or a temporary file when
PATH is a device such as /dev/null), which stops taking starts there and goes
on taking the ends of the calls it has (``max_starts``), and every call is
counted by ``Durations``. At exit the page is made from the recording, which
is then removed. A process killed by SIGKILL or the OOM killer leaves no page,
but the recording, with every event it finished: ``python -m hookwise.convert
PATH.rec --to html=PATH`` makes the page from it (its table then counts the
recorded calls only).

Must never: put a URL or any outside reference into the page, put program
text into the page unescaped, keep the program's objects, or do more per call
than the writer and ``Durations`` do.
"""

from .. import __version__, _originals, report
from ..call import clock_ns
from ..recording import format as fmt
from ..recording.reader import Recording, calls_open, merge
from ..render import Render
from . import _output, require_arg
from ._html_page import PAGE
from ._jsontext import dumps, for_script_element
from ._stats import COLUMNS, Durations, count, plural
from ._timeline import Timeline, _program_name, _where
from .console import format_duration
from .record import open_writer, private_path

CALL_LIMIT = 20_000  # what a browser still draws and scrolls smoothly as separate elements


def from_spec(arg, settings):
    output = _output.create(require_arg("html", arg, "a path"), in_child=settings.in_child)
    return HtmlReportListener(output, render=settings.render, in_child=settings.in_child)


class HtmlReportListener:
    """Records the first calls and counts every duration as the run goes; writes the page in ``close()``."""

    def __init__(self, output, render=None, limit=CALL_LIMIT, in_child=False):
        self._output = output
        self.render = render if render is not None else Render()
        self.limit = limit
        self._origin_ns = clock_ns()
        self._origin_wall_ns = _originals.time_ns()
        self._findings = []
        self._forks = []  # (the parent's Recording, the forking thread, {offset: its chunk's bytes at the fork})
        self._closed = False
        self._writer = open_writer(private_path(output, "html"), render=self.render, in_child=in_child,
                                   max_starts=limit)
        self._durations = Durations()
        # The callbacks: plain functions that call the writer's methods (C ones with the accelerator) and
        # the bookkeeping's, with no attribute read between them (both objects stay, across forks too).
        record_start, record_end, record_error = self._writer.start, self._writer.end, self._writer.error
        count_start = self._durations.call_started
        count_end, count_error = self._durations.call_returned, self._durations.call_raised

        def start(call):
            record_start(call)
            count_start(call)

        def end(call, result):
            record_end(call, result)
            count_end(call, result)

        def error(call, exc):
            record_error(call, exc)
            count_error(call, exc)

        self.start, self.end, self.error = start, end, error

    @property
    def recording_path(self):
        return self._writer.path

    def finding(self, finding):
        """A guard finding (hookwise.guard): an instant on its thread's track (findings are few: kept)."""
        fields = finding.as_dict()
        fields["app_caller"] = _where(finding.app_caller)
        self._findings.append((clock_ns() - self._origin_ns, finding.thread_id, finding.thread_name, fields))

    def after_fork_in_child(self):
        """This process writes its own recording and page; the calls open on the forking thread go on here.

        Their starts are in the parent's recording, which the parent goes on writing: it is opened now,
        and the forking thread's latest chunk copied as it is at the fork; the page reads them at exit.
        """
        here = _originals.get_ident()
        try:
            parent = Recording(self._writer.path)
            chunks = sorted(parent._events.get(here, ()))
            kept = {chunks[-1][1]: parent.chunk(chunks[-1][1])} if chunks else {}
            self._forks.append((parent, here, kept))
        except (OSError, fmt.RecordingError):
            pass  # the parent's file is gone: the child's page lacks the calls it was forked in
        self._writer.after_fork_in_child()
        self._durations.after_fork_in_child()
        self._findings = []
        self._output = self._output.for_forked_child() if self._output is not None else None

    def close(self):
        if self._closed or self._output is None or not self._output.ours:
            return
        self._closed = True
        writer = self._writer
        writer.full = True  # what other threads do from now on is not drawn
        try:
            text = self.page()
        except Exception as exc:  # a bug of ours: the recording still has the calls
            report.warn(f"the html report {self._output.path} could not be made ({type(exc).__name__}: {exc}): "
                        f"python -m hookwise.convert {writer.path} --to html=... makes it")
            return
        if self._output.write(text):
            try:
                _originals.os_unlink(writer.path)
            except OSError:
                pass

    def page(self):
        """The page: the recording's calls on the timeline, every call counted in the table."""
        now_ns = clock_ns() - self._origin_ns
        timeline = Timeline(self.render, origin_ns=self._origin_ns, origin_wall_ns=self._origin_wall_ns)
        carried = []
        for parent, thread, kept in self._forks:
            carried = calls_open(parent, thread, kept, carried)
        for call in carried:
            timeline.event("start", call, None)
        recording = Recording(self._writer.path)
        try:
            for event, call, outcome in merge([recording], carried=carried):
                timeline.event(event, call, outcome)
        finally:
            recording.close()
        layout = timeline.layout(now_ns, _originals.os_getpid(), _program_name(), self._findings,
                                 dropped=self._writer.skipped)
        return page_text(layout, self._durations.summary())


def page_text(layout, rows):
    """The html text of a timeline's ``layout`` and the stats ``rows`` of a run (or a recording)."""
    program = layout.program
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

