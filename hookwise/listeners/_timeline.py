"""Calls recorded with their timing and laid out on tracks where they nest: the model of the html report.

(The chrome trace has the same tracks, made from a recording as it is read: see ``recording.chrome``.)

``Timeline`` takes the ``start`` / ``end`` / ``error`` events. Everything it
shows is read inside those callbacks: the arguments (rendered, so redacted and
bounded), the caller, the thread's name and the asyncio task, and then the
result or the exception. ``layout()`` sorts the calls onto tracks at exit.

The tracks, per thread:

- the thread's own track: the calls made outside any asyncio task. A thread
  runs one function at a time, so these nest by time exactly as they nest by
  call;
- one track per asyncio task on that thread: the calls made inside the task,
  coroutines included. Tasks interleave on their thread at every ``await``, so
  a thread-wide track could not nest them; within one task, the coroutines it
  awaits form a stack, and while one of them is suspended the task runs nothing
  else, so everything inside it again nests by time;
- a "suspended" lane for calls that can be paused and resumed around unrelated
  calls: generators, async generators and coroutines driven outside a task
  (the body of a ``for`` loop over a generator runs while the generator's call
  is open, but was not called by it). Their time says nothing about who called
  whom, so they are packed into rows without nesting. A call that does not nest
  in its track for any other reason (two tasks with the same name) goes there
  too, so no track ever shows a broken nesting.

Times: a slice runs from the call's start to its end on its thread's program
clock (``call.program_ns``, ``call.duration_ns``: the monotonic clock less
hookwise's own time on the thread, so that listeners' time never shows as the
program's), as integer nanoseconds from the Timeline's creation. Each thread's
stamps are kept in order (a stamp is never earlier than the thread's last
one): a call's events come after its caller's start and before its caller's
end, so a child always lies inside its parent even where two stamps were
converted from CPU ticks a nanosecond apart. ``call.duration_ns`` is kept
beside it as ``call_duration_ns``: it is what the stats show. Calls still running at exit (a daemon thread, an unfinished
generator) are shown up to the moment of ``layout()`` and marked unfinished.

Must never: keep references to the program's objects (only rendered text),
read a value outside a callback, or take the lock while rendering.
"""

import os
import sys
from _thread import RLock

from .. import _originals, _state, semantics
from ..call import clock_ns as _clock_ns
from ..render import Render, exception_type_name

# call kinds whose calls can be suspended and resumed around other calls
SUSPENDING_KINDS = frozenset(("generator", "async_generator", "coroutine"))


class Slice:
    """One recorded call, in nanoseconds from the Timeline's origin."""

    __slots__ = (
        "call_id", "target", "kind", "thread_id", "thread_name", "task", "start_ns", "duration_ns",
        "call_duration_ns", "arguments", "caller", "app_caller", "meaning", "result", "error", "exception_type", "unfinished", "depth",
        "request_id",
    )

    def __init__(self, call_id, target, kind, thread_id, thread_name, task, start_ns, arguments, caller,
                 app_caller=None):
        self.call_id = call_id
        self.target = target
        self.kind = kind
        self.thread_id = thread_id
        self.thread_name = thread_name
        self.task = task
        self.start_ns = start_ns
        self.arguments = arguments  # [(name, rendered value), ...]
        self.caller = caller  # "file:line in function", or None
        self.app_caller = app_caller  # the same for the application's own line (call.app_caller)
        self.meaning = None  # ("sql", {fields}) for a call with a meaning of its own (hookwise.semantics)
        self.duration_ns = None  # from the start callback to the end callback
        self.call_duration_ns = None  # the runtime's measure (call.duration_ns)
        self.result = None  # rendered return value
        self.error = None  # "ExceptionType: message"
        self.exception_type = None  # qualified name of the exception's type
        self.unfinished = False
        self.depth = 0  # row within its track, set by layout()
        self.request_id = None  # call_id of the request (web:request) being served when it was made

    @property
    def end_ns(self):
        return self.start_ns + self.duration_ns

    def cut_at(self, now_ns):
        """A copy of this running call that ends at ``now_ns``, marked unfinished."""
        copy = Slice(self.call_id, self.target, self.kind, self.thread_id, self.thread_name, self.task,
                     self.start_ns, self.arguments, self.caller, self.app_caller)
        copy.meaning = self.meaning
        copy.request_id = self.request_id
        copy.duration_ns = max(now_ns - self.start_ns, 0)
        copy.unfinished = True
        return copy


class Track:
    """A row of the report: a thread, an asyncio task on a thread, or a thread's suspended calls."""

    THREAD, TASK, SUSPENDED = "thread", "task", "suspended"

    def __init__(self, kind, thread_id, thread_name, task=None):
        self.kind = kind
        self.thread_id = thread_id
        self.thread_name = thread_name
        self.task = task
        self.slices = []
        self.rows = 0  # 1 + the deepest depth

    @property
    def request_id(self):
        """The request a task's calls were made for (a task its handler created), or None."""
        for piece in self.slices:
            if piece.kind == "request":
                return piece.call_id
            if piece.request_id is not None:
                return piece.request_id
        return None

    @property
    def name(self):
        if self.kind == Track.TASK:
            request_id = self.request_id
            serving = "" if request_id is None else f" (request #{request_id})"
            return f"{self.thread_name} / task {self.task}{serving}"
        if self.kind == Track.SUSPENDED:
            return f"{self.thread_name} / generators, coroutines"
        return self.thread_name


class Layout:
    """What ``Timeline.layout()`` returns: ordered tracks and the numbers around them."""

    def __init__(self, tracks, origin_wall_ns, dropped, pid, program, findings=()):
        self.tracks = tracks
        self.findings = list(findings)  # (ns from time 0, thread_id, thread_name, Finding.as_dict() + more)
        self.origin_wall_ns = origin_wall_ns  # wall clock (ns since the epoch) of time 0
        self.dropped = dropped  # calls not recorded (past the limit)
        self.pid = pid
        self.program = program  # the script's file name, as the program's sys.argv[0] has it at exit


class Timeline:
    """Records calls (the first ``limit`` of them, if given) for a report made at exit."""

    def __init__(self, render=None, limit=None):
        self.render = render if render is not None else Render()
        self.limit = limit
        self.origin_ns = _clock_ns()
        self.origin_wall_ns = _originals.time_ns()
        self._lock = RLock()  # re-entrant, for the reasons given in _stats.Durations
        self._running = {}  # call_id -> Slice
        self._finished = []
        self._findings = []
        self._recorded = 0
        self._dropped = 0
        self._last_ns = {}  # thread id -> its latest stamp: one thread's stamps stay in order

    def _stamp(self, thread_id, program_ns):
        """``program_ns`` from the origin, never earlier than this thread's last stamp."""
        now_ns = program_ns - self.origin_ns
        last = self._last_ns.get(thread_id, now_ns)
        if now_ns < last:
            now_ns = last
        self._last_ns[thread_id] = now_ns
        return now_ns

    # -- events ---------------------------------------------------------------
    def finding(self, finding):
        """A guard finding (hookwise.guard): an instant on its thread's track."""
        now_ns = _clock_ns() - self.origin_ns
        fields = finding.as_dict()
        fields["app_caller"] = _where(finding.app_caller)
        with self._lock:
            self._findings.append((now_ns, finding.thread_id, finding.thread_name, fields))

    def start(self, call):
        now_ns = self._stamp(call.thread_id, call.program_ns)
        if self.limit is not None and self._recorded >= self.limit:
            with self._lock:
                self._dropped += 1
            return
        record = Slice(
            call.call_id, call.target, call.kind, call.thread_id, call.thread_name, call.task,
            now_ns, self._arguments(call), *callers(call),
        )
        record.meaning = semantics.start_fields(call, self.render)
        record.request_id = call.request_id
        with self._lock:
            self._recorded += 1
            self._running[call.call_id] = record

    def end(self, call, result):
        if call.call_id in self._running:  # only this call's thread removes it
            now_ns = self._stamp(call.thread_id, call.program_ns + call.duration_ns)
            outcome = semantics.end_fields(call, result)  # {"rows": N} of an SQL statement
            self._finish(call, now_ns, self.render.value(result), None, None, outcome)

    def error(self, call, exc):
        if call.call_id in self._running:
            now_ns = self._stamp(call.thread_id, call.program_ns + call.duration_ns)
            text = f"{type(exc).__name__}: {self.render.exception_text(exc)}"
            self._finish(call, now_ns, None, text, exception_type_name(exc), semantics.error_fields(call, exc))

    def _finish(self, call, now_ns, result, error, exception_type, outcome=None):
        with self._lock:
            record = self._running.pop(call.call_id, None)
            if record is None:
                return
            if outcome and record.meaning is not None:
                record.meaning = (record.meaning[0], {**record.meaning[1], **outcome})
            record.duration_ns = max(now_ns - record.start_ns, 0)
            record.call_duration_ns = call.duration_ns
            record.result = result
            record.error = error
            record.exception_type = exception_type
            self._finished.append(record)

    def after_fork_in_child(self):
        """A forked child reports its own calls: the parent's are in the parent's report.

        The calls still open on the thread that forked go on in the child too,
        and end there: they stay.
        """
        here = _originals.get_ident()
        self._lock = RLock()  # another thread may have held the parent's at the fork
        self._running = {call_id: record for call_id, record in self._running.items() if record.thread_id == here}
        self._finished = []
        self._findings = []
        self._recorded = len(self._running)
        self._dropped = 0

    def _arguments(self, call):
        render = self.render
        if call.site.params is None:  # a replaced builtin: positions, no parameter names
            shown = [(f"arg{index}", text) for index, text in enumerate(render.args(call))]
            shown.extend(render.kwargs(call).items())
            return shown
        return list(render.arguments(call).items())

    # -- at exit --------------------------------------------------------------
    def layout(self):
        """The recorded calls on their tracks; running calls end now."""
        now_ns = _clock_ns() - self.origin_ns
        with self._lock:
            records = list(self._finished)
            records.extend(record.cut_at(now_ns) for record in self._running.values())
            dropped = self._dropped
            findings = list(self._findings)
        records.sort(key=lambda record: (record.start_ns, -record.duration_ns, record.call_id))
        threads = {}  # (thread_id, thread_name) -> {None: thread track, task: task track, SUSPENDED: lane}
        for record in records:
            lanes = threads.setdefault((record.thread_id, record.thread_name), {})
            if record.kind in SUSPENDING_KINDS and not (record.kind == "coroutine" and record.task is not None):
                key, kind = Track.SUSPENDED, Track.SUSPENDED
            elif record.task is not None:
                key, kind = ("task", record.task), Track.TASK
            else:
                key, kind = None, Track.THREAD
            track = lanes.get(key)
            if track is None:
                track = lanes[key] = Track(kind, record.thread_id, record.thread_name, record.task if kind == Track.TASK else None)
            track.slices.append(record)
        tracks = []
        for _, lanes in sorted(threads.items(), key=_thread_order):
            suspended = lanes.pop(Track.SUSPENDED, None)
            misfits = []
            nested = [lanes.pop(None)] if None in lanes else []
            nested.extend(lanes.values())  # task tracks, in the order their first call started
            for track in nested:
                misfits.extend(_nest(track))
                if track.slices:
                    tracks.append(track)
            if misfits:
                if suspended is None:
                    suspended = Track(Track.SUSPENDED, misfits[0].thread_id, misfits[0].thread_name)
                suspended.slices.extend(misfits)
                suspended.slices.sort(key=lambda record: (record.start_ns, record.call_id))
            if suspended is not None:
                _pack(suspended)
                tracks.append(suspended)
        return Layout(tracks, self.origin_wall_ns, dropped, _originals.os_getpid(), _program_name(), findings)


def _thread_order(item):
    (thread_id, _), lanes = item
    first = min(track.slices[0].start_ns for track in lanes.values())
    return (thread_id != _state.main_thread_id, first)


def _nest(track):
    """Give each slice its depth under the ones enclosing it; return (and drop) those that overlap instead."""
    stack, kept, misfits = [], [], []
    for record in track.slices:  # by start, the longer first when two start together
        while stack and stack[-1].end_ns <= record.start_ns:
            stack.pop()
        if stack and record.end_ns > stack[-1].end_ns:
            misfits.append(record)  # starts inside the top slice but ends after it
            continue
        record.depth = len(stack)
        track.rows = max(track.rows, record.depth + 1)
        stack.append(record)
        kept.append(record)
    track.slices = kept
    return misfits


def _pack(track):
    """Put each slice on the first row free at its start (rows do not mean nesting here)."""
    row_ends = []
    for record in track.slices:
        for row, row_end in enumerate(row_ends):
            if row_end <= record.start_ns:
                break
        else:
            row = len(row_ends)
            row_ends.append(0)
        record.depth = row
        row_ends[row] = max(record.end_ns, record.start_ns + 1)
    track.rows = len(row_ends)


def _program_name():
    argv0 = sys.argv[0] if sys.argv and isinstance(sys.argv[0], str) and sys.argv[0] else "python"
    return os.path.basename(argv0)


def callers(call):
    """(caller, app_caller) of a call, each as "file:line in function" or None."""
    return _where(call.caller), _where(call.app_caller)


def _where(caller):
    if caller is None:
        return None
    return f"{caller.file}:{caller.line} in {caller.function}"
