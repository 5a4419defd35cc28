"""The calls of a recording laid out on tracks where they nest: the model of the html report.

(The chrome trace has the same tracks, made from a recording as it is read: see ``recording.chrome``.)

``Timeline`` takes the events of a recording as ``recording.reader`` yields
them (the live html report reads its own private recording back at exit;
``python -m hookwise.convert --to html`` reads a ``record`` file), keeps the
first ``limit`` calls that started, each with what the page shows (the
arguments, result and exception as the recording rendered them, the caller,
the thread's name, the asyncio task), and ``layout()`` sorts them onto tracks.

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
clock (the recording's stamps: the monotonic clock less hookwise's own time on
the thread, so that listeners' time never shows as the program's), as integer
nanoseconds from the origin. Each thread's stamps are kept in order (a stamp is
never earlier than the thread's last one): a call's events come after its
caller's start and before its caller's end, so a child always lies inside its
parent even where two stamps were converted from CPU ticks a nanosecond apart.
The recorded duration is kept beside it as ``call_duration_ns``: it is what the
stats show. Calls still running at the end (a daemon thread, an unfinished
generator) are shown up to the ``now_ns`` given to ``layout()`` and marked
unfinished.

Must never: keep more than ``limit`` calls, or anything of a call but its
rendered text.
"""

import os
import sys

from .. import _state, semantics

# call kinds whose calls can be suspended and resumed around other calls
SUSPENDING_KINDS = frozenset(("generator", "async_generator", "coroutine"))


class Slice:
    """One call, in nanoseconds from the Timeline's origin."""

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
        self.duration_ns = None  # from its start stamp to its end stamp (see "Times")
        self.call_duration_ns = None  # the recorded duration (the runtime's call.duration_ns)
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
    """The first ``limit`` calls (None: all) of recorded events, for a page made from them.

    ``origin_ns``: time 0 on the recording's clock, and ``origin_wall_ns`` the wall clock then; None: the
    first event's.
    """

    def __init__(self, render, limit=None, origin_ns=None, origin_wall_ns=None):
        self.render = render
        self.limit = limit
        self.origin_ns = origin_ns
        self.origin_wall_ns = origin_wall_ns
        self._running = {}  # (pid, call_id) -> Slice
        self._finished = []
        self._recorded = 0
        self.dropped = 0  # calls started past the limit
        self._last_ns = {}  # (pid, thread id) -> its latest stamp: one thread's stamps stay in order
        self.last_ns = 0  # the latest stamp of all

    def _stamp(self, thread_id, ns):
        """``ns`` from the origin, never earlier than this thread's last stamp."""
        now_ns = ns - self.origin_ns
        last = self._last_ns.get(thread_id, now_ns)
        if now_ns < last:
            now_ns = last
        self._last_ns[thread_id] = now_ns
        if now_ns > self.last_ns:
            self.last_ns = now_ns
        return now_ns

    def event(self, event, call, outcome):
        """One of ``recording.reader``'s events: "start", "end", "error" or "unfinished"."""
        if self.origin_ns is None:
            self.origin_ns = call.perf_ns
            self.origin_wall_ns = call.start_ns
        if event == "start":
            self._start(call)
        elif event == "end" or event == "error":
            piece = self._running.pop((call.pid, call.call_id), None)
            if piece is not None:
                self._finish(piece, call, outcome, event == "error")
        # "unfinished": still in _running; layout() ends it

    def _start(self, call):
        now_ns = self._stamp((call.pid, call.thread_id), call.perf_ns)
        if self.limit is not None and self._recorded >= self.limit:
            self.dropped += 1
            return
        self._recorded += 1
        render = self.render
        if call.site.params is None:  # a replaced builtin: positions, no parameter names
            arguments = [(f"arg{index}", text) for index, text in enumerate(render.args(call))]
            arguments.extend(render.kwargs(call).items())
        else:
            arguments = list(render.arguments(call).items())
        piece = Slice(call.call_id, call.target, call.kind, call.thread_id, call.thread_name, call.task, now_ns,
                      arguments, *callers(call))
        piece.meaning = semantics.start_fields(call, render)
        piece.request_id = call.request_id
        self._running[(call.pid, call.call_id)] = piece

    def _finish(self, piece, call, outcome, raised):
        now_ns = self._stamp((call.pid, call.thread_id), call.perf_ns + call.duration_ns)
        if piece.meaning is not None:  # {"rows": N} of an SQL statement, a response's status
            outcome_fields = (semantics.error_fields if raised else semantics.end_fields)(call, outcome)
            piece.meaning = (piece.meaning[0], {**piece.meaning[1], **outcome_fields})
        piece.duration_ns = max(now_ns - piece.start_ns, 0)
        piece.call_duration_ns = call.duration_ns
        if raised:
            piece.error = f"{outcome.name}: {outcome.text}"
            piece.exception_type = outcome.type_name
        else:
            piece.result = self.render.value(outcome)
        self._finished.append(piece)

    def layout(self, now_ns, pid, program, findings=(), dropped=0):
        """The calls on their tracks; running calls end at ``now_ns``; ``dropped``: calls not drawn besides
        the ones past the limit."""
        records = list(self._finished)
        records.extend(record.cut_at(now_ns) for record in self._running.values())
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
        return Layout(tracks, self.origin_wall_ns or 0, self.dropped + dropped, pid, program, findings)


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
