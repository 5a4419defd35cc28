"""``--listener chrome=PATH``: the calls as a Trace Event Format file for ui.perfetto.dev and chrome://tracing.

The file is one JSON object, ``{"traceEvents": [...], "otherData": {...}}``,
written at exit (also after an uncaught exception or ``sys.exit``). PATH is
created when the listener is, before the program starts; a child process of
the run writes its own trace beside it, ``PATH`` with its pid before the
extension (see ``_output``).

- Metadata ("ph": "M"): ``process_name``, then ``thread_name`` and
  ``thread_sort_index`` for every track.
- A call on a thread's track or an asyncio task's track (see ``_timeline``) is
  one complete slice, "ph": "X", with ``ts`` and ``dur`` in microseconds
  (ns / 1000, so exact to the nanosecond), ``pid`` and a ``tid`` of its track.
  ``ts`` and ``dur`` come from one clock read in the listener's callbacks, so
  slices on one track nest exactly as the calls nested; ``args.duration_ns``
  is the runtime's own measure of the call (the number ``stats`` uses). Each
  task gets a track of its own (named "Thread / task Task-2"), because tasks
  interleave on their thread at every ``await``.
- Generators, async generators and coroutines driven outside a task can be
  suspended around unrelated calls; they are async slices ("ph": "b" / "e",
  ``id`` = the call id, ``cat`` "hookwise.generator" and so on), which trace
  viewers draw on tracks of their own, so they never break a thread's nesting.
- ``args`` of a slice: ``call_id``, ``arguments`` (name -> rendered value,
  redacted and bounded), ``caller``, ``app_caller`` (the application's own
  line that led to the call), ``task``, ``duration_ns``, and then ``result``, or
  ``error`` ("ValueError: message") with ``exception_type``; a slice that
  raised also has ``"cname": "terrible"`` (red in chrome://tracing). A call
  still running at exit ends at exit and has ``"unfinished": true``.

``tid`` values are small numbers made up per track (the first track's is the
pid): Perfetto reads pid and tid as 32-bit numbers, and Python's thread ids
do not fit.

Must never: keep the program's objects (only rendered text is kept), use the
``json`` module (see ``_jsontext``), or write anything before exit.
"""

from .. import __version__
from . import _output, require_arg
from ._jsontext import dumps
from ._timeline import Timeline, Track

ERROR_COLOR = "terrible"  # a reserved color name of the trace viewers: red


def from_spec(arg, settings):
    output = _output.create(require_arg("chrome", arg, "a path"), in_child=settings.in_child)
    return ChromeTraceListener(output, render=settings.render)


class ChromeTraceListener(Timeline):
    """Records every call (start, end, error come from ``Timeline``); writes the trace in ``close()``."""

    def __init__(self, output, render=None):
        super().__init__(render)
        self._output = output

    def after_fork_in_child(self):
        Timeline.after_fork_in_child(self)
        self._output = self._output.for_forked_child() if self._output is not None else None

    def close(self):
        if self._output is not None and self._output.ours:
            self._output.write(trace_text(self.layout()))


def trace_text(layout):
    """The whole file: one event per line, so that it is readable and greppable."""
    events = ",\n".join(dumps(event) for event in trace_events(layout))
    other = dumps({
        "hookwise_version": __version__,
        "time_zero_wall_ns": str(layout.origin_wall_ns),  # as text: too many digits for a JSON number
        "calls_not_recorded": layout.dropped,
    })
    return f'{{"traceEvents":[\n{events}\n],\n"otherData":{other}}}\n'


def trace_events(layout):
    pid = layout.pid
    events = [{"ph": "M", "pid": pid, "tid": pid, "name": "process_name", "args": {"name": f"{layout.program} (hookwise)"}}]
    thread_tids = {}  # (thread_id, thread_name) -> tid; task tracks get tids of their own
    next_tid = pid

    def named_track(name, sort_index):
        nonlocal next_tid
        tid, next_tid = next_tid, next_tid + 1
        events.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name", "args": {"name": name}})
        events.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_sort_index", "args": {"sort_index": sort_index}})
        return tid

    slices, spans = [], []
    for index, track in enumerate(layout.tracks):  # a thread's own track comes before its others
        thread = (track.thread_id, track.thread_name)
        if thread not in thread_tids:
            thread_tids[thread] = named_track(track.thread_name, index)
        if track.kind == Track.SUSPENDED:
            spans.extend((thread_tids[thread], piece) for piece in track.slices)
            continue
        tid = thread_tids[thread] if track.kind == Track.THREAD else named_track(track.name, index)
        slices.extend(_complete_slice(piece, pid, tid) for piece in track.slices)
    events.extend(slices)
    for tid, piece in spans:
        events.extend(_async_slice(piece, pid, tid))
    for at_ns, thread_id, thread_name, fields in layout.findings:  # a guard's findings: instants on their thread
        thread = (thread_id, thread_name)
        if thread not in thread_tids:
            thread_tids[thread] = named_track(thread_name, len(layout.tracks))
        events.append({"ph": "i", "s": "t", "pid": pid, "tid": thread_tids[thread], "name": f"finding {fields['rule']}",
                       "cat": "hookwise.finding", "ts": _microseconds(at_ns), "cname": ERROR_COLOR, "args": fields})
    return events


def _complete_slice(piece, pid, tid):
    event = {
        "ph": "X", "pid": pid, "tid": tid, "name": piece.target, "cat": piece.kind,
        "ts": _microseconds(piece.start_ns), "dur": _microseconds(piece.duration_ns), "args": _slice_args(piece),
    }
    if piece.error is not None:
        event["cname"] = ERROR_COLOR
    return event


def _async_slice(piece, pid, tid):
    begin = {
        "ph": "b", "pid": pid, "tid": tid, "id": piece.call_id, "name": piece.target, "cat": f"hookwise.{piece.kind}",
        "ts": _microseconds(piece.start_ns), "args": _slice_args(piece),
    }
    end = {
        "ph": "e", "pid": pid, "tid": tid, "id": piece.call_id, "name": piece.target, "cat": begin["cat"],
        "ts": _microseconds(piece.end_ns),
    }
    if piece.error is not None:
        begin["cname"] = end["cname"] = ERROR_COLOR
    return begin, end


def _slice_args(piece):
    args = {"call_id": piece.call_id, "arguments": dict(piece.arguments)}
    if piece.caller is not None:
        args["caller"] = piece.caller
    if piece.app_caller is not None:
        args["app_caller"] = piece.app_caller
    if piece.task is not None:
        args["task"] = piece.task
    if piece.request_id is not None:
        args["request_id"] = piece.request_id
    if piece.meaning is not None:  # "sql": {system, database, statement, params, rows}
        args[piece.meaning[0]] = piece.meaning[1]
    if piece.unfinished:
        args["unfinished"] = True
        return args
    args["duration_ns"] = piece.call_duration_ns
    if piece.error is not None:
        args["error"] = piece.error
        args["exception_type"] = piece.exception_type
    else:
        args["result"] = piece.result
    return args


def _microseconds(ns):
    # int / int is correctly rounded, and the float's repr is then the exact
    # decimal "1234.567": a child's [ts, ts + dur] stays inside its parent's
    return ns / 1000

