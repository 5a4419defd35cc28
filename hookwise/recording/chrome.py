"""The chrome trace of a recording, made as its events are read: the one converter behind
``--listener chrome=PATH`` (chunk by chunk as the run goes, the rest at exit) and
``python -m hookwise.convert --to chrome=PATH``.

The output is the Trace Event Format's JSON array form: ``[`` then one event
per line, each followed by a comma. Viewers (ui.perfetto.dev, chrome://tracing)
accept the array without its closing ``]`` (the format allows it for exactly
this), so the file loads at any moment of the run, after a SIGKILL too; a
finished trace ends with its last event and ``]``.

- Metadata ("ph": "M"): first ``process_name`` (its ``args`` also carry
  ``hookwise_version`` and ``time_zero_wall_ns``, the wall clock of ts 0 as
  text), then ``thread_name`` and ``thread_sort_index`` for each track as it
  first appears, and, when the trace is finished, ``process_labels`` saying so
  (with ``events_not_recorded``).
- A call on a thread's track or an asyncio task's track is one complete slice,
  "ph": "X", ``ts`` and ``dur`` in microseconds (ns / 1000: exact to the ns).
  A track is a thread's calls outside tasks, or one task's calls (tasks
  interleave on their thread at every ``await``): their calls nest, so a slice
  is written when its call ends. Its parent is the call open below it on its
  track when it started; a child's slice is kept inside its parent's (the
  parent's start and end are taken as bounds), so every track nests exactly.
- Generators, async generators and coroutines driven outside a task are paused
  and resumed around unrelated calls: they are async slices ("b" / "e", ``id``
  the call id, ``cat`` "hookwise.generator" and so on) on their thread's
  track. So is a call that cannot nest on its track (two tasks of one name
  share one): when a call ends while calls that started after it on its track
  are still open, those become async slices.
- ``args``: ``call_id``, ``arguments`` (name -> rendered value), ``caller``,
  ``app_caller``, ``task``, ``request_id``, a meaning's fields (``sql``,
  ``http``, ``request``), ``duration_ns`` (the runtime's measure, end minus
  start as recorded), then ``result``, or ``error`` ("ValueError: message") and
  ``exception_type`` with ``"cname": "terrible"`` (red) on the slice. A call
  still open at the end ends there, ``"unfinished": true``.
- ``tid`` values are made up per track (the first is the pid): Perfetto reads
  pid and tid as 32-bit numbers, and Python's thread ids do not fit.

Values are rendered as every output renders them (``Render``): a recording
keeps the common values themselves and everything else as its rendered text.

Memory: the calls still open (the deepest nesting on each track, plus calls
whose end was read before their start: a generator finished on another thread),
the recording's strings, one chunk of events and its text. Never the number of
calls.

Must never: read a chunk the writer has not finished with (the live listener
hands over retired chunks only, and the rest at exit), keep the program's
objects, or use the ``json`` module (see ``listeners._jsontext``).
"""

from .. import __version__, accel
from ..listeners._jsontext import dumps, quote
from ..saferepr import Shown
from . import format as fmt

ERROR_COLOR = "terrible"  # a reserved color name of the trace viewers: red
SUSPENDING_KINDS = frozenset(("generator", "async_generator", "coroutine"))

_START, _END, _ERROR = fmt.START, fmt.END, fmt.ERROR
_V_NONE, _V_FALSE, _V_TRUE, _V_INT, _V_STR, _V_SHOWN, _V_REDACTED = (
    fmt.V_NONE, fmt.V_FALSE, fmt.V_TRUE, fmt.V_INT, fmt.V_STR, fmt.V_SHOWN, fmt.V_REDACTED)
_HEADER = fmt.CHUNK_HEADER.size
_CALLERS_KEPT = 100_000  # rendered callers remembered, by (file, line, function) ids
TASK_TRACKS = 10_000
"""Tracks of asyncio tasks per process: the calls of later tasks are async slices on their thread's track
(a server runs millions of tasks; a track each would grow without bound, and no viewer shows that many)."""

# an open call: a list, written in place (hookwise/_chrome.h makes and reads them too)
_TS, _TRACK, _SITE, _ARGS, _CHILD_END, _MEANING, _ALONE, _THREAD, _CALL_ID, _RECORDED_TS = range(10)

# the common events in C, up to the first that is not (hookwise/_chrome.h); this loop converts that one
_common_events = accel.speedups.chrome_events if accel.ACTIVE else None


class _Site:
    """What every slice of one recorded site shares, rendered once."""

    __slots__ = ("name", "kind", "head", "async_head", "suspending", "names", "secret", "vararg", "kwarg", "builtin")

    def __init__(self, site, render):
        self.name = quote(site.target)
        self.kind = site.kind
        self.head = f'"name":{self.name},"cat":{quote(site.kind)}'
        self.async_head = f'"name":{self.name},"cat":{quote("hookwise." + site.kind)}'
        self.suspending = site.kind in SUSPENDING_KINDS
        params = site.params
        self.builtin = params is None
        if params is None:
            self.names = self.secret = ()
            self.vararg = self.kwarg = -1
            return
        positional, _, vararg, kwonly, kwarg = params[:5]
        names = list(positional)
        self.vararg = self.kwarg = -1
        if vararg is not None:
            self.vararg = len(names)
            names.append(vararg)
        names.extend(kwonly)
        if kwarg is not None:
            self.kwarg = len(names)
            names.append(kwarg)
        self.names = [quote(name) + ":" for name in names]
        self.secret = [render.is_secret(name) for name in names]


class ProcessTrace:
    """The slices of one recorded process, written through ``out`` (a list of text, one event per item).

    ``events(data)`` converts one chunk's bytes; ``finish(now_ns)`` ends the
    calls still open. Timestamps are the recording's: ``origin_ns`` is ts 0.
    """

    def __init__(self, recording, render, origin_ns, pid, program, converted_from=None):
        self.recording = recording
        self.render = render
        self.origin_ns = origin_ns
        self.pid = pid
        self.program = program
        self.converted_from = converted_from
        self.limit = render.repr_limit
        self._sites = {}  # recording's site id -> _Site
        self._callers = {}  # (file, line, function) ids -> quoted "file:line in function"
        self._tids = {}  # ((thread id, from_seq), task or None) -> tid: a thread id is reused by later threads
        self._thread_names = {}  # (thread id, from_seq) -> a name not from the recording (a finding's)
        self._open = {}  # call id -> open call (a list, see _TS ...)
        self._stacks = {}  # track -> [open calls that nest there, innermost last]
        self._early = {}  # call id -> (end ts, tail of args, error, outcome): an end read before its start
        self._task_tracks = 0
        self._named = False
        self.last_ns = origin_ns  # the latest event read
        self.out = []

    # -- tracks ------------------------------------------------------------------
    def _process_events(self):
        args = {"name": f"{self.program} (hookwise)", "hookwise_version": __version__,
                "time_zero_wall_ns": str(self.origin_ns + self.recording.wall_offset)}
        if self.converted_from is not None:
            args["converted_from"] = self.converted_from
        self.out.append(dumps({"ph": "M", "pid": self.pid, "tid": self.pid, "name": "process_name", "args": args}))
        self._named = True

    def _tid(self, track, request=None):
        """The tid of a track, (thread, task or None); its metadata is written the first time.

        ``request``: the request a task's track serves (its first call's), named with it.
        """
        tid = self._tids.get(track)
        if tid is None:
            if not self._named:
                self._process_events()
            (thread, from_seq), task = track
            tid = self._tids[track] = self.pid + len(self._tids)
            thread_name = self._thread_names.get((thread, from_seq))
            if thread_name is None:
                self.recording.refresh()
                thread_name = self.recording.thread_at(thread, from_seq)[1]
            name = thread_name
            if task is not None:
                self._task_tracks += 1
                name = f"{thread_name} / task {task}"
                if request is not None:
                    name += f" (request #{request})"
            # the main thread's tracks first, then in the order they appeared
            order = len(self._tids) + (0 if thread_name == "MainThread" else 1_000_000)
            self.out.append(f'{{"ph":"M","pid":{self.pid},"tid":{tid},"name":"thread_name",'
                            f'"args":{{"name":{quote(name)}}}}}')
            self.out.append(f'{{"ph":"M","pid":{self.pid},"tid":{tid},"name":"thread_sort_index",'
                            f'"args":{{"sort_index":{order}}}}}')
        return tid

    def _site(self, number):
        site = self._sites.get(number)
        if site is None:
            recorded = self.recording.sites.get(number)
            if recorded is None:
                self.recording.refresh()
                recorded = self.recording.sites.get(number)
                if recorded is None:
                    return None
            site = self._sites[number] = _Site(recorded, self.render)
        return site

    def _string(self, number):
        strings = self.recording.strings
        text = strings.get(number)
        if text is None:
            self.recording.refresh()
            text = strings.get(number, "?")
        return text

    # -- values ------------------------------------------------------------------
    def _cut(self, text):
        limit = self.limit
        return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."

    def _value(self, data, pos):
        """(the value's rendered text, as JSON; the position after it)."""
        tag = data[pos]
        pos += 1
        if tag == _V_INT:
            byte = data[pos]
            if byte < 0x80:
                number = (byte >> 1) ^ -(byte & 1)
                pos += 1
            else:
                number, pos = fmt.get_z(data, pos)
            text = str(number)
            return ('"' + text + '"', pos) if len(text) <= self.limit else (quote(self._cut(text)), pos)
        if tag == _V_STR:
            length = data[pos]
            if length < 0x80:
                pos += 1
            else:
                length, pos = fmt.get_u(data, pos)
            text = bytes(data[pos : pos + length]).decode("utf-8", "surrogatepass")
            return quote(self._cut(repr(text))), pos + length
        if tag == _V_NONE:
            return '"None"', pos
        if tag == _V_SHOWN:
            text, pos = fmt.get_text(data, pos)
            return quote(self._cut(text)), pos
        if tag == _V_REDACTED:
            return '"***"', pos
        if tag == _V_TRUE:
            return '"True"', pos
        if tag == _V_FALSE:
            return '"False"', pos
        value, pos = fmt.get_value(data, pos - 1, Shown, self.recording.strings)  # an object names its type
        return quote(self.render.value(value)), pos

    def _where(self, file_id, line, function_id):
        """The quoted "file:line in function" of string ids (kept by the ids as recorded: each + 1)."""
        key = (file_id + 1, line, function_id + 1)
        text = self._callers.get(key)
        if text is None:
            if len(self._callers) >= _CALLERS_KEPT:
                self._callers.clear()
            text = self._callers[key] = quote(f"{self._string(file_id)}:{line} in {self._string(function_id)}")
        return text

    # -- events ------------------------------------------------------------------
    def events(self, data):
        """Convert the events of one chunk (its bytes, header included)."""
        if len(data) < _HEADER or data[:4] != fmt.CHUNK_MAGIC:
            return
        # One loop with the common cases inline (a varint of one byte, a small int): this runs per event.
        get_u, get_z, value, where = fmt.get_u, fmt.get_z, self._value, self._where
        sites, opened, early, stacks, tids = self._sites, self._open, self._early, self._stacks, self._tids
        callers = self._callers
        seq, thread, ts = fmt.CHUNK_HEADER.unpack_from(data, 0)[2:]
        lane = (thread, self.recording.thread_at(thread, seq)[0])  # which thread of that id
        origin, pid, append, limit = self.origin_ns, self.pid, self.out.append, self.limit
        pos, end = _HEADER, len(data)
        common, thread_track = _common_events, (lane, None)
        # events this loop converts before the C path is asked again: none while it converts, more and more
        # while it takes none (a chunk of calls in asyncio tasks, which it leaves to this loop, each of them)
        skip, backoff = 0, 1
        while pos < end:
            if skip:
                skip -= 1
            elif common is not None:
                before = pos
                pos, ts = common(self, data, pos, ts, thread_track)
                if pos >= end:
                    break
                if pos == before:
                    skip, backoff = backoff, min(backoff * 2, 64)
                else:
                    backoff = 1
            tag = data[pos]
            if not tag:
                break
            delta = data[pos + 1]  # dt, a zigzag varint: the varints are read inline, this runs per event
            pos += 2
            if delta > 0x7F:
                delta &= 0x7F
                shift = 7
                while True:
                    byte = data[pos]
                    pos += 1
                    delta |= (byte & 0x7F) << shift
                    if byte < 0x80:
                        break
                    shift += 7
            ts += (delta >> 1) ^ -(delta & 1)
            call_id = data[pos]
            pos += 1
            if call_id > 0x7F:
                call_id &= 0x7F
                shift = 7
                while True:
                    byte = data[pos]
                    pos += 1
                    call_id |= (byte & 0x7F) << shift
                    if byte < 0x80:
                        break
                    shift += 7
            if tag == _START:
                site_id = data[pos]
                pos += 1
                if site_id > 0x7F:
                    site_id, pos = get_u(data, pos - 1)
                file_id = data[pos]
                pos += 1
                if file_id > 0x7F:
                    file_id, pos = get_u(data, pos - 1)
                line = data[pos]
                pos += 1
                if line > 0x7F:
                    byte = data[pos]
                    if byte < 0x80:
                        line = (line & 0x7F) | byte << 7
                        pos += 1
                    else:
                        line, pos = get_u(data, pos - 1)
                function_id = data[pos]
                pos += 1
                if function_id > 0x7F:
                    function_id, pos = get_u(data, pos - 1)
                app = data[pos]
                pos += 1
                if app > 0x7F:
                    app, pos = get_u(data, pos - 1)
                if app > 1:
                    app_line, pos = get_u(data, pos)
                    app_function, pos = get_u(data, pos)
                task_id = data[pos]
                pos += 1
                if task_id > 0x7F:
                    task_id, pos = get_u(data, pos - 1)
                request = data[pos]
                pos += 1
                if request > 0x7F:
                    request, pos = get_u(data, pos - 1)
                count = data[pos]
                pos += 1
                if count > 0x7F:
                    count, pos = get_u(data, pos - 1)
                site = sites.get(site_id) or self._site(site_id)
                if site is None or site.builtin:
                    values = []
                    for _ in range(count):
                        item, pos = fmt.get_value(data, pos, Shown, self.recording.strings)
                        values.append(item)
                    arguments = self._builtin_arguments(values)
                else:
                    names, secret, parts = site.names, site.secret, []
                    for index in range(count):
                        if data[pos] == _V_INT:
                            number = data[pos + 1]
                            pos += 2
                            if number > 0x7F:
                                number &= 0x7F
                                shift = 7
                                while True:
                                    byte = data[pos]
                                    pos += 1
                                    number |= (byte & 0x7F) << shift
                                    if byte < 0x80:
                                        break
                                    shift += 7
                            text = f'"{(number >> 1) ^ -(number & 1)}"'
                            if len(text) - 2 > limit:
                                text = quote(self._cut(text[1:-1]))
                        else:
                            text, pos = value(data, pos)
                        if index < len(names):
                            parts.append(names[index] + ('"***"' if secret[index] else text))
                    arguments = ",".join(parts)
                meaning = None
                if data[pos]:
                    meaning_id, pos = get_u(data, pos)
                    fields, pos = fmt.get_fields(data, pos, self.recording.strings)
                    meaning = (self._string(meaning_id - 1), fields)
                else:
                    pos += 1
                if site is None:
                    continue
                if file_id:
                    caller = callers.get((file_id, line, function_id)) or where(file_id - 1, line, function_id - 1)
                    args = f'"call_id":{call_id},"arguments":{{{arguments}}},"caller":{caller}'
                    if app == 1:
                        args += ',"app_caller":' + caller
                else:
                    args = f'"call_id":{call_id},"arguments":{{{arguments}}}'
                if app > 1:
                    args += ',"app_caller":' + where(app - 2, app_line, app_function - 1)
                task = None
                if task_id:
                    task = self._string(task_id - 1)
                    args += ',"task":' + quote(task)
                if request:
                    args += f',"request_id":{request - 1}'
                call = [ts, None, site, args, ts, meaning, False, lane, call_id, ts]
                opened[call_id] = call
                if site.suspending and not (task is not None and site.kind == "coroutine"):
                    call[_ALONE] = True
                else:
                    track = call[_TRACK] = (lane, task)
                    stack = stacks.get(track)
                    if stack is None:
                        if task is not None and track not in tids:
                            if self._task_tracks >= TASK_TRACKS:
                                call[_ALONE] = True
                                continue
                            # a task's track is named after the request its first call serves, if any
                            self._tid(track, call_id if site.kind == "request" else (request - 1 if request else None))
                        stack = stacks[track] = [call]
                    else:
                        if stack and stack[-1][_TS] > ts:
                            call[_TS] = call[_CHILD_END] = stack[-1][_TS]  # never before its parent
                        stack.append(call)
                if early and call_id in early:
                    self._end(opened.pop(call_id), *early.pop(call_id))
                continue
            if tag == _END:
                if data[pos] == _V_INT:
                    number = data[pos + 1]
                    pos += 2
                    if number > 0x7F:
                        number &= 0x7F
                        shift = 7
                        while True:
                            byte = data[pos]
                            pos += 1
                            number |= (byte & 0x7F) << shift
                            if byte < 0x80:
                                break
                            shift += 7
                    tail = f',"result":"{(number >> 1) ^ -(number & 1)}"'
                    if len(tail) - 12 > limit:
                        tail = ',"result":' + quote(self._cut(tail[11:-1]))
                else:
                    result, pos = value(data, pos)
                    tail = ',"result":' + result
                error = None
            elif tag == _ERROR:
                type_id, pos = get_u(data, pos)
                _, pos = fmt.get_text(data, pos)  # its repr: the trace shows its text
                text, pos = fmt.get_text(data, pos)
                type_name = self._string(type_id)
                error = quote(f"{type_name.rpartition('.')[2]}: {text}")
                tail = f',"error":{error},"exception_type":{quote(type_name)}'
            else:
                raise fmt.RecordingError(f"unknown event record {tag}")
            outcome = None
            if data[pos]:
                outcome, pos = fmt.get_fields(data, pos, self.recording.strings)
            else:
                pos += 1
            call = opened.pop(call_id, None)
            if call is None:
                early[call_id] = (ts, tail, error, outcome)
                continue
            track = call[_TRACK]
            if track is not None and call[_MEANING] is None and error is None and track[1] is None:
                stack = stacks[track]
                if stack[-1] is call and call[_CHILD_END] <= ts:
                    # the common case, inline: a call on its thread's track that returned inside its parent
                    stack.pop()
                    if stack:
                        parent = stack[-1]
                        if ts > parent[_CHILD_END]:
                            parent[_CHILD_END] = ts
                    start = call[_TS]
                    tid = tids.get(track) or self._tid(track)
                    append(f'{{"ph":"X","pid":{pid},"tid":{tid},{call[_SITE].head},"ts":{(start - origin) / 1000},'
                           f'"dur":{(ts - start) / 1000},"args":{{{call[_ARGS]},"duration_ns":{ts - call[_RECORDED_TS]}'
                           f'{tail}}}}}')
                    continue
            self._end(call, ts, tail, error, outcome)
        if ts > self.last_ns:
            self.last_ns = ts

    def _builtin_arguments(self, values):
        """A replaced builtin's arguments (inside the braces): its positional values as arg0, arg1 ..., then
        its keywords."""
        render, parts = self.render, []
        if values and type(values[0]) is tuple:
            parts.extend(f'"arg{index}":{quote(render.value(item))}' for index, item in enumerate(values[0]))
        if len(values) > 1 and type(values[1]) is dict:
            parts.extend(f"{quote(str(name))}:{quote(render.named(name, item))}" for name, item in values[1].items())
        return ",".join(parts)

    def _end(self, call, ts, tail, error, outcome):
        duration_ns = ts - call[_RECORDED_TS]
        end = ts if ts > call[_CHILD_END] else call[_CHILD_END]
        if not call[_ALONE]:
            track = call[_TRACK]
            stack = self._stacks.get(track)
            if stack and stack[-1] is call:
                stack.pop()
            elif stack and any(other is call for other in stack):
                # calls that started after it on its track are still open: they cannot nest there
                while stack[-1] is not call:
                    stack.pop()[_ALONE] = True
                stack.pop()
            else:
                call[_ALONE] = True  # it was one of those
            if not call[_ALONE]:
                if stack:
                    parent = stack[-1]
                    if end > parent[_CHILD_END]:
                        parent[_CHILD_END] = end
                elif track[1] is not None:
                    del self._stacks[track]  # a task's track is done when its last call is
        self._write(call, end, f',"duration_ns":{duration_ns if duration_ns > 0 else 0}{tail}', error, outcome)

    def _write(self, call, end, tail, error, outcome):
        site, meaning, args = call[_SITE], call[_MEANING], call[_ARGS]
        if meaning is not None:
            fields = {**meaning[1], **outcome} if outcome else meaning[1]
            args += f",{quote(meaning[0])}:{dumps(fields)}"
        start, origin = call[_TS], self.origin_ns
        color = f',"cname":"{ERROR_COLOR}"' if error else ""
        if call[_ALONE]:
            where = f'"pid":{self.pid},"tid":{self._tid((call[_THREAD], None))},"id":{call[_CALL_ID]},{site.async_head}'
            self.out.append(f'{{"ph":"b",{where},"ts":{(start - origin) / 1000},"args":{{{args}{tail}}}{color}}}')
            self.out.append(f'{{"ph":"e",{where},"ts":{(max(end, start) - origin) / 1000}{color}}}')
            return
        self.out.append(f'{{"ph":"X","pid":{self.pid},"tid":{self._tid(call[_TRACK])},{site.head},'
                        f'"ts":{(start - origin) / 1000},"dur":{(end - start) / 1000 if end > start else 0.0},'
                        f'"args":{{{args}{tail}}}{color}}}')

    def finish(self, now_ns):
        """End every call still open at ``now_ns``, marked unfinished (children first, so parents hold them)."""
        for stack in list(self._stacks.values()):
            while stack:
                call = stack.pop()
                end = max(now_ns, call[_CHILD_END], call[_TS])
                if stack and end > stack[-1][_CHILD_END]:
                    stack[-1][_CHILD_END] = end
                self._open.pop(call[_CALL_ID], None)
                self._write(call, end, ',"unfinished":true', None, None)
        for call in list(self._open.values()):
            self._write(call, max(now_ns, call[_CHILD_END], call[_TS]), ',"unfinished":true', None, None)
        self._open.clear()
        self._stacks.clear()
        self._early.clear()
        if not self._named:
            self._process_events()

    def closing(self, not_recorded):
        """The last event of a finished trace (returned, not added to ``out``): a process label that says so
        (a killed run's trace has none)."""
        label = "hookwise: complete trace"
        if not_recorded:
            label += f", {not_recorded} events not recorded"
        return dumps({"ph": "M", "pid": self.pid, "tid": self.pid, "name": "process_labels",
                      "args": {"labels": label, "events_not_recorded": not_recorded}})

    def finding(self, at_ns, thread, thread_name, fields):
        """A guard's finding (hookwise.guard): an instant on its thread's track."""
        if thread not in self.recording.thread_names:
            self.recording.refresh()
        names = self.recording.thread_names.get(thread)
        lane = (thread, names[-1][0] if names else 0)  # the thread that has the id now
        if not names:
            self._thread_names.setdefault(lane, thread_name)
        tid = self._tid((lane, None))
        self.out.append(dumps({"ph": "i", "s": "t", "pid": self.pid, "tid": tid, "name": f"finding {fields['rule']}",
                               "cat": "hookwise.finding", "ts": (at_ns - self.origin_ns) / 1000,
                               "cname": ERROR_COLOR, "args": fields}))

    def for_forked_child(self, recording, pid, thread):
        """In a forked child: its own recording and trace; the calls open on ``thread`` (the one that forked)
        go on here, the rest were the parent's."""
        self.recording = recording
        self.pid = pid
        self._sites, self._callers, self._tids, self._early = {}, {}, {}, {}
        self._task_tracks = 0
        self._named = False
        self.out = []
        self._open = {call_id: call for call_id, call in self._open.items() if call[_THREAD][0] == thread}
        self._stacks = {track: stack for track, stack in self._stacks.items() if track[0][0] == thread}
