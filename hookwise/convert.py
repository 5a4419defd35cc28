"""``python -m hookwise.convert RECORDING... --to FORMAT[=PATH]``: the outputs of a recorded run, made later.

RECORDING is a recording file (its children's files beside it are merged
in), several, or a directory of them. ``--to`` is repeatable; FORMAT is
spelled as for ``--listener``: ``jsonl=PATH``, ``chrome=PATH``, ``html=PATH``,
``stats[=PATH]``, ``otel`` (spans exported through the standard OTEL_*
variables, with their recorded times). Every converter is the reader plus one
of the existing outputs; jsonl and chrome are written as the events are read,
so memory is bounded by the deepest nesting, not by the number of calls
(chrome by ``recording.chrome``, the live listener's converter, on a pass of
its own). On a terminal, one updating line on stderr shows how far it is.

Bad input (a missing file, an unknown version, an unknown format): one line
on stderr, exit status 2.
"""

import os
import sys
import time

from .listeners import ListenerSpecError
from .render import Render
from .recording import format as fmt
from .recording.reader import Recording, files_of, read
from .saferepr import Shown

EXIT_BAD_INPUT = 2
FORMATS = ("jsonl", "chrome", "html", "stats", "otel")
USAGE = "usage: python -m hookwise.convert RECORDING... --to FORMAT[=PATH] [--to ...]   (FORMAT: " + ", ".join(FORMATS) + ")"


class UsageError(Exception):
    pass


class _Settings:
    in_child = False

    def __init__(self, render):
        self.render = render


def parse(argv):
    recordings, outputs = [], []
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE + "\n")
            raise SystemExit(0)
        if arg == "--to" or arg.startswith("--to="):
            if arg == "--to":
                index += 1
                if index >= len(argv):
                    raise UsageError("option --to needs a format")
                arg = argv[index]
            else:
                arg = arg[len("--to="):]
            name, has_arg, value = arg.partition("=")
            if name not in FORMATS:
                raise UsageError(f"unknown format {name!r}; expected one of {', '.join(FORMATS)}")
            outputs.append((name, value if has_arg else None))
        elif arg.startswith("-"):
            raise UsageError(f"unknown option {arg!r}")
        else:
            recordings.append(arg)
        index += 1
    if not recordings:
        raise UsageError("no recording given")
    if not outputs:
        raise UsageError("no output given: --to FORMAT[=PATH]")
    return recordings, outputs


def make_outputs(outputs, render):
    settings = _Settings(render)
    made = []
    for name, arg in outputs:
        if name == "jsonl":
            from .listeners import jsonl, require_arg

            made.append(_Jsonl(require_arg("jsonl", arg, "a path"), render=render))
        elif name == "stats":
            from .listeners import stats

            made.append(_Stats(stats.from_spec(arg, settings)))
        elif name == "chrome":
            from .listeners import require_arg

            made.append(_Chrome(require_arg("chrome", arg, "a path")))
        elif name == "html":
            from .listeners import require_arg

            made.append(_Html(require_arg("html", arg, "a path"), render))
        else:
            from .listeners import otel

            made.append(_Otel(otel.from_spec(arg, settings)))
    return made


# -- the outputs, fed from the reader -----------------------------------------------


class _Jsonl:
    def __init__(self, path, render):
        from .listeners.jsonl import JsonlListener

        class Converted(JsonlListener):
            def error(self, call, exc):  # a RecordedError: its rendered text, as the live listener wrote it
                self._write_error(call, exc, exc.shown, exc.type_name)

        self.listener = Converted(path, render=render)
        self.listener.may_buffer()  # written as it is read, in large writes: close() writes the rest

    def event(self, event, call, outcome):
        if event == "start":
            self.listener.start(call)
        elif event != "unfinished":
            getattr(self.listener, event)(call, outcome)

    def close(self):
        self.listener.close()


class _Stats:
    def __init__(self, listener):
        self.listener = listener
        listener._durations.read_tasks = True  # recorded calls carry their task

    def event(self, event, call, outcome):
        _count(self.listener._durations, event, call)

    def close(self):
        self.listener.close()


def _count(durations, event, call):
    """Feed the stats' bookkeeping: the recordings of several processes share it, so ids name the pid."""
    if event == "start":
        durations.call_started(_OfProcess(call))
    elif event == "end":
        durations.call_returned(_OfProcess(call), None)
    elif event == "error":
        durations.call_raised(_OfProcess(call), None)


class _OfProcess:
    """A recorded call whose call and thread ids are qualified by its process's pid."""

    __slots__ = ("call_id", "thread_id", "kind", "task", "target", "duration_ns")

    def __init__(self, call):
        self.call_id = (call.pid, call.call_id)
        self.thread_id = (call.pid, call.thread_id)
        self.kind, self.task, self.target, self.duration_ns = call.kind, call.task, call.target, call.duration_ns


class _Chrome:
    """The trace, by ``recording.chrome``'s converter (the live listener's): each file read chunk by chunk,
    on its own pass, with one time zero for every process of the run."""

    def __init__(self, path):
        from .listeners import _output

        self.output = _output.create(path)
        self.output.append("[\n")

    def convert(self, files, progress):
        from .recording.chrome import ProcessTrace

        recordings = [Recording(path) for path in files]
        origin_wall = min((first_ts(recording) + recording.wall_offset for recording in recordings
                           if recording.event_chunks()), default=0)
        for recording in recordings:
            render = Render(repr_limit=recording.repr_limit, redact=recording.redact)
            trace = ProcessTrace(recording, render, origin_wall - recording.wall_offset, recording.pid,
                                 f"pid {recording.pid}", converted_from="hookwise recording")
            for _, _, offset in recording.event_chunks():
                trace.events(recording.chunk(offset))
                self._flush(trace, progress)
                progress.chunk()
            trace.finish(trace.last_ns)  # calls still open end with the recording
            self._flush(trace)
            recording.close()
        self.closing = trace.closing(0) if recordings else "{}"

    def _flush(self, trace, progress=None):
        if progress is not None:
            progress.events += len(trace.out)
        if trace.out:
            self.output.append_records(trace.out, ",\n")  # each event followed by a comma, as the live trace is
            trace.out.clear()

    def close(self):
        self.output.finish(self.closing + "\n]\n")


def first_ts(recording):
    """The recording's earliest event time (each thread's first event, at most)."""
    firsts = {}
    for _, thread, offset in recording.event_chunks():
        if thread not in firsts:
            data = recording.chunk(offset)
            base = fmt.CHUNK_HEADER.unpack_from(data, 0)[4]
            pos = fmt.CHUNK_HEADER.size
            firsts[thread] = base + fmt.get_z(data, pos + 1)[0] if data[pos] else base
    return min(firsts.values(), default=0)


class _Html:
    """The html report, as the live listener makes it from its own recording: the first CALL_LIMIT calls on
    the timeline, every call in the table."""

    def __init__(self, path, render):
        from .listeners import _output
        from .listeners._stats import Durations
        from .listeners._timeline import Timeline
        from .listeners.html import CALL_LIMIT

        self.output = _output.create(path)
        self.durations = Durations()
        self.durations.read_tasks = True  # recorded calls carry their task
        self.timeline = Timeline(render, limit=CALL_LIMIT)
        self.pid = None

    def event(self, event, call, outcome, render):
        if self.pid is None:
            self.pid = call.pid
        _count(self.durations, event, call)
        self.timeline.event(event, call, outcome)

    def close(self, files):
        from .listeners import html

        # calls still open end with the recording, as in the chrome trace; the page names the recording
        program = os.path.basename(files[0]) if files else "recording"
        layout = self.timeline.layout(self.timeline.last_ns, self.pid or 0, program)
        self.output.write(html.page_text(layout, self.durations.summary()))


class _Otel:
    """Spans with their recorded times: a call's parent is the call open below it on its thread (or task)."""

    def __init__(self, listener):
        self.listener = listener
        self.open = {}  # call key -> span
        self.stacks = {}  # (pid, thread, task) -> [call keys]

    def event(self, event, call, outcome, render):
        listener = self.listener
        key = (call.pid, call.call_id)
        lane = (call.pid, call.thread_id, call.task)
        if event == "start":
            from opentelemetry import trace

            stack = self.stacks.setdefault(lane, [])
            parent = self.open.get(stack[-1]) if stack else None
            context = trace.set_span_in_context(parent) if parent is not None else None
            attributes = listener._start_attributes(call)
            span = listener._tracer.start_span(call.target, context=context, kind=listener._kind_for(attributes),
                                               attributes=attributes, start_time=call.start_ns)
            self.open[key] = span
            if call.kind not in ("generator", "async_generator"):
                stack.append(key)
            return
        span = self.open.pop(key, None)
        stack = self.stacks.get(lane)
        if stack and stack[-1] == key:
            stack.pop()
        if span is None:
            return
        if call.site.semantic is not None:  # an SQL statement's rows, a request's status
            span.set_attributes(listener._outcome_attributes(call.site.semantic.end_fields(call, outcome)))
        if event == "end":
            span.set_attribute("hookwise.result", render.value(outcome))
        elif event == "error":
            attributes = {"exception.type": outcome.type_name, "exception.message": outcome.text,
                          "exception.escaped": "True"}
            span.add_event("exception", attributes, timestamp=call.end_ns)
            span.set_status(listener._status(listener._status_error, f"{outcome.name}: {outcome.text}"))
        span.end(end_time=call.end_ns if call.duration_ns is not None else None)

    def close(self):
        self.listener.close()


class Progress:
    """A single updating line on stderr while converting (only on a terminal): how far, how many events, how fast."""

    EVERY_S = 0.25

    def __init__(self, total_chunks, stream=None):
        self.total = max(total_chunks, 1)
        self.stream = stream  # None: say nothing
        self.chunks = self.events = 0
        self.started = time.monotonic()
        self._said = 0.0  # the first chunk is shown at once

    def chunk(self):
        self.chunks += 1
        self._say()

    def event(self):
        self.events += 1
        if not self.events % 4096:
            self._say()

    def _say(self, force=False):
        if self.stream is None:
            return
        now = time.monotonic()
        if not force and now - self._said < self.EVERY_S:
            return
        self._said = now
        rate = self.events / max(now - self.started, 1e-9)
        done = min(self.chunks / self.total, 1.0)
        self.stream.write(f"\rhookwise convert: {done:4.0%} of the recording, {self.events} events, "
                          f"{rate:,.0f} events/s ")
        self.stream.flush()

    def done(self):
        if self.stream is None:
            return
        elapsed = time.monotonic() - self.started
        self.stream.write(f"\rhookwise convert: {self.events} events in {elapsed:.1f} s" + " " * 30 + "\n")
        self.stream.flush()


def convert(recordings, outputs, progress=None):
    """Write every output of ``recordings``; returns the number of events read.

    chrome outputs read the files on their own pass, chunk by chunk; the others share one pass over
    the events of every file, merged by time.
    """
    files = files_of(recordings)
    first = Recording(files[0])
    render = Render(repr_limit=first.repr_limit, redact=first.redact)
    first.close()
    made = make_outputs(outputs, render)
    chromes = [output for output in made if isinstance(output, _Chrome)]
    merged = [output for output in made if not isinstance(output, _Chrome)]
    if progress is None:
        chunks = 0
        for path in files:
            recording = Recording(path)
            chunks += len(recording.event_chunks())
            recording.close()
        progress = Progress(chunks * (len(chromes) + (1 if merged else 0)))
    for output in chromes:
        output.convert(files, progress)
    count = 0
    if merged:
        for event, call, outcome in read(files, on_chunk=progress.chunk):
            count += 1
            progress.event()
            for output in merged:
                if isinstance(output, (_Jsonl, _Stats)):
                    output.event(event, call, outcome)
                else:
                    output.event(event, call, outcome, render)
    for output in made:
        if isinstance(output, _Html):
            output.close(files)
        else:
            output.close()
    return count


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    progress = None
    try:
        recordings, outputs = parse(argv)
        files = files_of(recordings)
        chunks = 0
        for path in files:  # every file's header checked before anything is written
            recording = Recording(path)
            chunks += len(recording.event_chunks())
            recording.close()
        passes = sum(1 for name, _ in outputs if name == "chrome") + any(name != "chrome" for name, _ in outputs)
        progress = Progress(chunks * passes, sys.stderr if sys.stderr.isatty() else None)
        convert(files, outputs, progress)
    except (UsageError, fmt.RecordingError, ListenerSpecError) as exc:
        _end_line(progress)
        sys.stderr.write(f"hookwise convert: error: {exc}\n")
        return EXIT_BAD_INPUT
    except OSError as exc:
        _end_line(progress)
        sys.stderr.write(f"hookwise convert: error: {exc.strerror or exc}: {getattr(exc, 'filename', '')}\n")
        return EXIT_BAD_INPUT
    progress.done()
    return 0


def _end_line(progress):
    """An error goes on a line of its own, after the progress line if one was shown."""
    if progress is not None and progress.stream is not None and progress.chunks:
        sys.stderr.write("\n")


if __name__ == "__main__":
    sys.exit(main())
