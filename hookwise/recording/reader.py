"""Reading recordings back: the events of a run's files, merged by time, as ``Call``-like records.

``read(paths)`` takes files, a run's directory, or PATH itself (its
children's ``PATH.PID.ext`` files beside it are found and merged), and
yields ``(event, call, outcome)`` with event "start", "end" or "error", in the
order of their timestamps (``merge`` does the same for recordings already
open: one process's own file, read by its live html report). The ``RecordedCall`` has what a live ``Call``
offers to the built-in outputs; values kept as text come back as
``saferepr.Shown``, so the outputs' ``Render`` shows exactly the same text.

Memory: one chunk per thread being merged (read with ``pread``, never mapped:
a mapped file's pages would count in the process's memory as they are read)
and the calls still open (the deepest nesting), never the number of calls.
"""

import glob
import heapq
import os

from .. import writes
from ..call import Caller, args_of, arguments_of, changed_arguments_of, kwargs_of
from ..saferepr import Shown
from ..semantics import END_KEYS
from . import format as fmt

# a read that keeps the GIL (the live chrome trace reads its recording inside the program's calls: see
# hookwise.writes); os.pread, which lets go of it, where the pure-Python runtime has no _ctypes
_pread = writes.read_at


class RecordedSite:
    __slots__ = ("target", "module", "qualname", "kind", "params", "semantic")

    def __init__(self, target, module, qualname, kind, params):
        self.target, self.module, self.qualname, self.kind, self.params = target, module, qualname, kind, params
        self.semantic = None  # a Replayed, once a call of it carried a meaning


class Replayed:
    """What the recorded calls of a site mean (an SQL statement), as the recording stored it."""

    def __init__(self, name):
        self.name = name
        self.end_key = END_KEYS.get(name, name)

    def start_fields(self, call, render):
        meaning = call.recorded_meaning
        return None if meaning is None else (self.name, meaning)  # None: the writer could not tell it

    def end_fields(self, call, result):
        try:
            return call.recorded_outcome
        except AttributeError:  # not ended (yet)
            return {}

    error_fields = end_fields

    def bind_arguments(self, args, kwargs):
        named = {f"arg{index}": value for index, value in enumerate(args)}
        named.update(kwargs)
        return named


class RecordedCall:
    __slots__ = ("site", "call_id", "thread_id", "thread_name", "pid", "perf_ns", "start_ns", "duration_ns",
                 "values", "caller", "app_caller", "task", "request_id", "result", "exception", "wall_offset",
                 "recorded_meaning", "recorded_outcome")

    target = property(lambda self: self.site.target)
    module = property(lambda self: self.site.module)
    qualname = property(lambda self: self.site.qualname)
    kind = property(lambda self: self.site.kind)
    args = property(args_of)
    kwargs = property(kwargs_of)
    arguments = property(arguments_of)
    changed_arguments = property(changed_arguments_of)
    end_ns = property(lambda self: None if self.duration_ns is None else self.start_ns + self.duration_ns)
    program_ns = property(lambda self: self.perf_ns)  # recorded on the program clock (see ``format``)
    done = property(lambda self: self.duration_ns is not None)


class RecordedError:
    """Stands for an exception: its type's name, its repr and its text as they were rendered."""

    __slots__ = ("type_name", "shown", "text")

    def __init__(self, type_name, shown, text):
        self.type_name, self.shown, self.text = type_name, shown, text

    @property
    def name(self):
        return self.type_name.rpartition(".")[2]


class Recording:
    """One process's file: its header, string table and per-thread event chunks.

    Chunks are read with ``pread`` one at a time (``chunk``), never mapped
    whole: converting a recording of any size keeps one chunk per thread in
    memory. ``live=True`` reads a file its writer is still writing:
    ``refresh()`` then picks up the chunks and meta records added since.
    """

    def __init__(self, path, live=False):
        self.path = path
        self.live = live
        try:
            self._file = open(path, "rb")
            header = self._file.read(fmt.HEADER_SIZE)
        except OSError as exc:
            raise fmt.RecordingError(f"cannot read recording {path!r}: {exc.strerror or exc}") from None
        self._fd = self._file.fileno()
        if len(header) < fmt.HEADER.size or header[:16] != fmt.MAGIC:
            raise fmt.RecordingError(f"{path!r} is not a hookwise recording")
        _, version, self.chunk_size, self.pid, self.wall_offset, self.repr_limit, n_redact = fmt.HEADER.unpack_from(header)
        self.version = version
        if version not in fmt.READABLE:
            raise fmt.RecordingError(f"{path!r} is a recording of format version {version}; this hookwise reads "
                                     f"versions {', '.join(map(str, fmt.READABLE))} only")
        pos, self.redact = fmt.HEADER.size, []
        for _ in range(n_redact):
            length = int.from_bytes(header[pos : pos + 2], "little")
            self.redact.append(header[pos + 2 : pos + 2 + length].decode("utf-8", "replace"))
            pos += 2 + length
        self.strings, self.sites = {}, {}
        self.thread_names = {}  # thread id -> [(from_seq, name)], ascending: see thread_at
        self._events = {}  # thread -> [(seq, offset)]
        self._meta = []  # (seq, offset) of the meta chunks, in order
        self._meta_at = (0, fmt.CHUNK_HEADER.size)  # where reading the meta records goes on: (index, pos)
        self._scanned = fmt.HEADER_SIZE  # the offset of the first chunk not looked at yet
        self.refresh()

    def chunk(self, offset):
        """The bytes of the chunk at ``offset`` (shorter if the file ends before its end)."""
        return _pread(self._fd, self.chunk_size, offset)

    def refresh(self):
        """Take in the chunks and meta records written since the last look."""
        offset, new_meta = self._scanned, False
        # each chunk's header read in turn up to the end (no stat of the file: reads that keep the GIL only)
        while len(_pread(self._fd, 1, offset + self.chunk_size - 1)) == 1:
            magic, kind, seq, thread, _ = fmt.CHUNK_HEADER.unpack(_pread(self._fd, fmt.CHUNK_HEADER.size, offset))
            if magic == fmt.CHUNK_MAGIC and seq:
                if kind == fmt.CHUNK_META:
                    self._meta.append((seq, offset))
                    new_meta = True
                else:
                    self._events.setdefault(thread, []).append((seq, offset))
            elif self.live:
                break  # being set up by the writer right now: look again next time
            offset += self.chunk_size
        self._scanned = offset
        if new_meta:
            self._meta.sort()
        self._read_meta()

    def event_chunks(self):
        """(seq, thread, offset) of every chunk of events, in the order the writer took them."""
        return sorted((seq, thread, offset) for thread, chunks in self._events.items() for seq, offset in chunks)

    def _read_meta(self):
        index, pos = self._meta_at
        while index < len(self._meta):
            data = self.chunk(self._meta[index][1])
            pos = self._read_meta_records(data, pos)
            if index + 1 == len(self._meta):
                break  # the writer may add to this one yet
            index, pos = index + 1, fmt.CHUNK_HEADER.size
        self._meta_at = (index, pos)

    def _read_meta_records(self, data, pos):
        """Read the meta records of one chunk's ``data`` from ``pos`` on; returns where they stop."""
        get_u, strings, end = fmt.get_u, self.strings, len(data)
        while pos < end and data[pos]:
            tag = data[pos]
            pos += 1
            if tag == fmt.STRING:
                number, pos = get_u(data, pos)
                strings[number], pos = fmt.get_text(data, pos)
            elif tag == fmt.SITE:
                fields = []
                for _ in range(6):
                    value, pos = get_u(data, pos)
                    fields.append(value)
                number, target, module, qualname, kind, has_params = fields
                params = None
                if has_params:
                    count, pos = get_u(data, pos)
                    positional = []
                    for _ in range(count):
                        value, pos = get_u(data, pos)
                        positional.append(strings[value])
                    vararg, pos = get_u(data, pos)
                    count, pos = get_u(data, pos)
                    kwonly = []
                    for _ in range(count):
                        value, pos = get_u(data, pos)
                        kwonly.append(strings[value])
                    kwarg, pos = get_u(data, pos)
                    params = (tuple(positional), (), strings[vararg - 1] if vararg else None, tuple(kwonly),
                              strings[kwarg - 1] if kwarg else None)
                self.sites[number] = RecordedSite(strings[target], strings[module], strings[qualname],
                                                  strings[kind], params)
            elif tag == fmt.THREAD:
                thread, pos = get_u(data, pos)
                name, pos = get_u(data, pos)
                from_seq = 0
                if self.version >= 4:
                    from_seq, pos = get_u(data, pos)
                names = self.thread_names.setdefault(thread, [])
                names.append((from_seq, strings[name]))
                names.sort()
            else:
                raise fmt.RecordingError(f"{self.path!r}: unknown meta record {tag}")
        return pos

    def thread_at(self, thread, seq):
        """(from_seq, name) of the thread whose events the chunk ``seq`` of ``thread`` holds.

        Thread ids are reused: each thread that had the id has a THREAD record of its own, from the
        chunk its events start in. (0, "Thread-ID") when the recording names none (a ring recording
        may have lost nothing but its events; a killed writer may not have named it yet).
        """
        found = (0, f"Thread-{thread}")
        for from_seq, name in self.thread_names.get(thread, ()):
            if from_seq > seq:
                break
            found = (from_seq, name)
        return found

    def thread_events(self, thread, on_chunk=None, kept=None):
        """A generator of (ts, tag, data, pos) for one thread's events, in order; ``data`` is the chunk's
        bytes and ``pos`` is just after dt.

        The consumer parses the record and sends back the position after it. ``kept``: {offset: bytes}
        of chunks to read as they were copied (a forked child's copy of its parent's chunk at the fork).
        """
        for _, offset in sorted(self._events[thread]):
            data = kept[offset] if kept is not None and offset in kept else self.chunk(offset)
            if on_chunk is not None:
                on_chunk()
            if len(data) < fmt.CHUNK_HEADER.size:
                continue
            base = fmt.CHUNK_HEADER.unpack_from(data, 0)[4]
            pos, end, ts = fmt.CHUNK_HEADER.size, len(data), base
            while pos < end and data[pos]:
                tag = data[pos]
                delta, pos = fmt.get_z(data, pos + 1)
                ts += delta
                pos = yield (ts, tag, data, pos)

    def streams(self):
        return [self.thread_events(thread) for thread in self._events]

    def close(self):
        self._file.close()


def files_of(paths):
    """The recordings named: files, directories (every recording in them), and each PATH's children's files."""
    found = []
    for path in paths:
        if os.path.isdir(path):
            candidates = sorted(os.path.join(path, name) for name in os.listdir(path))
            candidates = [name for name in candidates if os.path.isfile(name) and _is_recording(name)]
            if not candidates:
                raise fmt.RecordingError(f"no recording in directory {path!r}")
        elif not os.path.exists(path):
            raise fmt.RecordingError(f"recording {path!r} does not exist")
        else:
            root, extension = os.path.splitext(path)
            children = [name for name in sorted(glob.glob(glob.escape(root) + ".*" + glob.escape(extension)))
                        if name[len(root) + 1 : len(name) - len(extension)].isdigit()]
            candidates = [path] + children
        found.extend(name for name in candidates if name not in found)
    return found


def _is_recording(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(16) == fmt.MAGIC
    except OSError:
        return False


def read(paths, on_chunk=None):
    """Every event of the recordings, merged by wall-clock time: (event, call, outcome).

    ``on_chunk()``, when given, is called as each chunk of events is taken up (a converter's progress).
    """
    return merge([Recording(path) for path in files_of(paths)], on_chunk)


def merge(recordings, on_chunk=None, carried=()):
    """``read`` for recordings already open. ``carried``: calls started before the first recording's
    events (a forked child's calls open at the fork, read from its parent's file: see ``calls_open``),
    whose END or ERROR may be in it; they are not yielded as started."""
    heap = []
    for number, recording in enumerate(recordings):
        for thread in recording._events:
            _push(heap, recording, number, thread, recording.thread_events(thread, on_chunk), None)
    open_calls = {(0, call.call_id): call for call in carried}  # (file number, call_id) -> RecordedCall
    while heap:
        wall, number, order, ts, tag, thread, data, pos, stream = heapq.heappop(heap)
        recording = recordings[number]
        call_id, pos = fmt.get_u(data, pos)
        if tag == fmt.START:
            call, pos = _start(recording, data, pos, call_id, thread, ts)
            if call is not None:
                open_calls[(number, call_id)] = call
                yield "start", call, None
        else:
            call = open_calls.pop((number, call_id), None)
            outcome, fields, pos = _outcome(recording, tag, data, pos)
            if call is not None:  # a ring recording may have lost the start
                call.duration_ns = ts - call.perf_ns
                call.recorded_outcome = fields
                if tag == fmt.END:
                    call.result = outcome
                    yield "end", call, outcome
                else:
                    call.exception = outcome
                    yield "error", call, outcome
        _push(heap, recording, number, thread, stream, pos)
    for call in open_calls.values():
        yield "unfinished", call, None


def _outcome(recording, tag, data, pos):
    """An END's (result, fields, pos) or an ERROR's (RecordedError, fields, pos), from just after its call id."""
    if tag == fmt.END:
        result, pos = fmt.get_value(data, pos, Shown, recording.strings)
        fields, pos = fmt.get_fields(data, pos, recording.strings)
        return result, fields, pos
    type_id, pos = fmt.get_u(data, pos)
    shown, pos = fmt.get_text(data, pos)
    text, pos = fmt.get_text(data, pos)
    fields, pos = fmt.get_fields(data, pos, recording.strings)
    return RecordedError(recording.strings[type_id], shown, text), fields, pos


def calls_open(recording, thread, kept=None, carried=()):
    """The calls started on ``thread`` (``carried``, then its STARTs in ``recording``) that its events there
    do not end, in the order they started: the calls a forked child's thread was in at the fork.

    ``kept``: as for ``Recording.thread_events`` (the parent goes on writing its chunk after the fork).
    """
    open_calls = {call.call_id: call for call in carried}
    if thread not in recording._events:
        return list(open_calls.values())
    stream = recording.thread_events(thread, kept=kept)
    pos = None
    while True:
        try:
            ts, tag, data, pos = stream.send(pos) if pos is not None else next(stream)
        except StopIteration:
            break
        call_id, pos = fmt.get_u(data, pos)
        if tag == fmt.START:
            call, pos = _start(recording, data, pos, call_id, thread, ts)
            if call is not None:
                open_calls[call_id] = call
        else:
            pos = _outcome(recording, tag, data, pos)[2]
            open_calls.pop(call_id, None)
    return list(open_calls.values())


_order = iter(range(1 << 62)).__next__


def _push(heap, recording, number, thread, stream, pos):
    try:
        item = stream.send(pos) if pos is not None else next(stream)
    except StopIteration:
        return
    ts, tag, data, at = item
    heapq.heappush(heap, (ts + recording.wall_offset, number, _order(), ts, tag, thread, data, at, stream))


def _start(recording, data, pos, call_id, thread, ts):
    strings, get_u = recording.strings, fmt.get_u
    site_id, pos = get_u(data, pos)
    file_id, pos = get_u(data, pos)
    line, pos = get_u(data, pos)
    function_id, pos = get_u(data, pos)
    app_file_id, pos = get_u(data, pos)
    if app_file_id > 1:
        app_line, pos = get_u(data, pos)
        app_function_id, pos = get_u(data, pos)
    task_id, pos = get_u(data, pos)
    request, pos = get_u(data, pos)
    count, pos = get_u(data, pos)
    values = []
    for _ in range(count):
        value, pos = fmt.get_value(data, pos, Shown, strings)
        values.append(value)
    meaning_id, pos = get_u(data, pos)
    if meaning_id:
        meaning, pos = fmt.get_fields(data, pos, strings)
    site = recording.sites.get(site_id)
    if site is None:
        return None, pos
    call = RecordedCall()
    call.recorded_meaning = None
    if meaning_id:
        call.recorded_meaning = meaning
        if site.semantic is None:
            site.semantic = Replayed(strings[meaning_id - 1])
    call.site = site
    call.call_id = call_id
    call.thread_id = thread
    call.thread_name = recording.thread_at(thread, fmt.CHUNK_HEADER.unpack_from(data, 0)[2])[1]
    call.pid = recording.pid
    call.perf_ns = ts
    call.wall_offset = recording.wall_offset
    call.start_ns = recording.wall_offset + ts
    call.duration_ns = None
    call.values = tuple(values)
    call.caller = Caller(strings[file_id - 1], line, strings[function_id - 1]) if file_id else None
    if app_file_id == 0:
        call.app_caller = None
    elif app_file_id == 1:
        call.app_caller = call.caller
    else:
        call.app_caller = Caller(strings[app_file_id - 2], app_line, strings[app_function_id - 1])
    call.task = strings[task_id - 1] if task_id else None
    call.request_id = request - 1 if request else None
    call.result = None
    call.exception = None
    return call, pos
