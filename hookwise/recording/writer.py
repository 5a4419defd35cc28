"""The Python writer of recordings (``--listener record=PATH``); the format is in ``format``.

Each thread writes its events into a chunk of its own, a shared mapping
(MAP_SHARED) of one region of the file: no per-call allocation outlives the
call, memory is a chunk per thread whatever the run's length, and a process
killed by SIGKILL leaves every record it finished in the page cache. The file
is grown, and each chunk mapped and unmapped, with the GIL held
(``hookwise.writes``: libc's ``ftruncate``, ``mmap`` and ``munmap`` through
``_ctypes``), so recording never lets another thread run in the middle of a
call; a Python without ``_ctypes`` maps with the ``mmap`` module and
``os.ftruncate``, which let go of it once per chunk. Strings
(targets, files, functions, parameter names) are interned: each is written
once, to a meta chunk, under the lock, before the event that names it.

``limit`` bounds the file: when it is full the recording stops (``full`` is
set, and ``close`` says so); with ``ring``, the oldest event chunk that no
thread holds is reused instead (meta chunks are never reused).

``max_starts`` bounds the calls recorded instead (the html report's timeline
draws its first calls): the first ``max_starts`` STARTs are recorded and the
later ones skipped (counted in ``skipped``); a call's END or ERROR is recorded
when its id is not above the last recorded START's. Call ids grow as calls
start, so the calls started before the bound end in the recording and the
later ones leave nothing (a call given its id just before the last recorded
START but reported just after it leaves its END alone, which readers pass
over). A forked child records its own first ``max_starts`` calls, and the
ends of those open on the forking thread.

Must never: write from a forked child into its parent's mappings (the child
opens its own file), raise into the program, keep the program's objects, or
touch a chunk's view once it is unmapped.
"""

import mmap
import os
from _thread import _local, allocate_lock

from .. import _originals, report, semantics, writes
from ..call import clock_ns, parameter_names, wall_offset_ns
from ..listeners._output import path_for_child
from ..render import REDACTED, Render, exception_type_name
from ..saferepr import object_repr
from . import format as fmt

_FLAGS = os.O_RDWR | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_ftruncate = os.ftruncate  # at open, before the program runs (a chunk's: writes.truncate, keeping the GIL)
_pwrite = os.pwrite
_TEXT = (str, bytes, tuple)  # what redaction by content may change (a tuple of them)


STRINGS_KEPT = 65536  # strings remembered at most (the C writer's REC_STRINGS_KEPT)


def chunk_size_for(limit, chunk_size=fmt.DEFAULT_CHUNK_SIZE):
    """The chunk size of a recording bounded to ``limit`` bytes (None: unbounded): at least eight chunks fit."""
    if limit is not None:
        chunk_size = max(4096, min(chunk_size, (limit // 8) // 4096 * 4096))
    return chunk_size


def open_recording(path, render, chunk_size):
    """Create the file at ``path`` (never through a symlink planted there) with its header; its descriptor."""
    fd = _originals.os_open(path, _FLAGS, 0o666)
    header = bytearray(fmt.HEADER.pack(fmt.MAGIC, fmt.VERSION, chunk_size, _originals.os_getpid(), wall_offset_ns(),
                                       render.repr_limit, len(render.redact)))
    for word in render.redact:
        data = word.encode("utf-8")[:0xFFFF]
        header += len(data).to_bytes(2, "little") + data
    try:
        _ftruncate(fd, fmt.HEADER_SIZE)
        _pwrite(fd, bytes(header[: fmt.HEADER_SIZE]), 0)
    except OSError:
        _originals.os_close(fd)
        raise
    return fd


def _map_chunk(fd, size, offset):
    """(a writable view of ``size`` bytes of the file from ``offset``, mapped shared; the function that
    unmaps them): kept with the GIL held where ``_ctypes`` is, else the ``mmap`` module's."""
    shared = writes.map_shared(fd, size, offset)
    if shared is not None:
        return shared.view, shared.close
    mapping = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=offset)
    return mapping, mapping.close


class _Chunk:
    __slots__ = ("index", "map", "unmap", "pos", "last_ts", "thread", "seq")

    def __init__(self, index, mapping, unmap, thread, base_ts, seq=0):
        self.seq = seq
        self.index = index
        self.map = mapping  # its bytes: a memoryview, or an mmap (slices of either are stored the same way)
        self.unmap = unmap
        self.pos = fmt.CHUNK_HEADER.size
        self.last_ts = base_ts
        self.thread = thread


class RecordWriter:
    def __init__(self, path, render=None, limit=None, ring=False, in_child=False, chunk_size=fmt.DEFAULT_CHUNK_SIZE,
                 max_starts=None):
        self.requested_path = path
        self.render = render if render is not None else Render()
        self.ring = ring
        self.chunk_size = chunk_size_for(limit, chunk_size)
        self.limit = limit
        self.in_child = in_child
        self.max_starts = max_starts
        self._last_started = 0  # the largest call id whose START was taken in (with max_starts)
        self._open(path_for_child(path, _originals.os_getpid()) if in_child else path)

    def _open(self, path):
        self.path = path
        self._pid = _originals.os_getpid()
        self._fd = open_recording(path, self.render, self.chunk_size)
        self._lock = allocate_lock()
        self._threads = {}  # thread id -> its current _Chunk
        self._meta = None
        self._strings = {}
        self._n_strings = 0
        self._sites = {}  # id(site) -> (site id, site): the site is kept so its id is never reused
        self._local = _local()  # .named: this thread's THREAD record is written (thread ids are reused)
        self._chunks = 0  # chunks allocated in the file
        self._seq = 0
        self._event_chunks = []  # ring: event chunk indexes, oldest first
        self.full = False
        self.dropped = 0
        self.closed = False
        self._starts = 0  # STARTs taken in, against max_starts
        self.skipped = 0  # STARTs past max_starts

    # -- chunks ---------------------------------------------------------------
    def _new_chunk(self, kind, thread):
        """A fresh mapped chunk (under the lock), or None when the file is full."""
        size = self.chunk_size
        if self.limit is not None and fmt.HEADER_SIZE + (self._chunks + 1) * size > self.limit:
            if not self.ring or kind != fmt.CHUNK_EVENTS:
                return None
            held = {chunk.index for chunk in self._threads.values()}
            index = next((i for i in self._event_chunks if i not in held), None)
            if index is None:
                return None
            self._event_chunks.remove(index)
            mapping, unmap = _map_chunk(self._fd, size, fmt.HEADER_SIZE + index * size)
            mapping[:] = bytes(size)  # a reused chunk starts empty
        else:
            index = self._chunks
            writes.truncate(self._fd, fmt.HEADER_SIZE + (index + 1) * size)  # the new chunk: zero bytes
            self._chunks += 1
            mapping, unmap = _map_chunk(self._fd, size, fmt.HEADER_SIZE + index * size)
        self._seq += 1
        base_ts = clock_ns()
        mapping[: fmt.CHUNK_HEADER.size] = fmt.CHUNK_HEADER.pack(fmt.CHUNK_MAGIC, kind, self._seq, thread, base_ts)
        if kind == fmt.CHUNK_EVENTS:
            self._event_chunks.append(index)
        return _Chunk(index, mapping, unmap, thread, base_ts, self._seq)

    def _put(self, chunk, record):
        """Store ``record`` (tag first in ``record``) with its tag last; False if it does not fit."""
        pos = chunk.pos
        end = pos + len(record)
        if end > self.chunk_size:
            return False
        chunk.map[pos + 1 : end] = record[1:]
        chunk.map[pos] = record[0]
        chunk.pos = end
        return True

    def _meta_record(self, record):
        # under the lock
        if self._meta is None or not self._put(self._meta, record):
            if self._meta is not None:
                self._meta.unmap()
            self._meta = self._new_chunk(fmt.CHUNK_META, 0)
            if self._meta is None or not self._put(self._meta, record):
                self._stop()
                return False
        return True

    def _string(self, text):
        number = self._strings.get(text)
        if number is None:
            with self._lock:
                number = self._strings.get(text)
                if number is None:
                    number = self._n_strings
                    record = bytearray((fmt.STRING,))
                    fmt.put_u(record, number)
                    fmt.put_text(record, text)
                    if not self._meta_record(record):
                        return 0
                    self._n_strings += 1
                    # past STRINGS_KEPT a new string is written again each time (asyncio task names are
                    # new for every task of a server: the file grows with them, memory does not)
                    if len(self._strings) < STRINGS_KEPT:
                        self._strings[text] = number
        return number

    def _site(self, site):
        known = self._sites.get(id(site))
        if known is not None:
            return known[0]
        ids = [self._string(str(getattr(site, name))) for name in ("target", "module", "qualname", "kind")]
        record = bytearray((fmt.SITE,))
        number = len(self._sites)
        fmt.put_u(record, number)
        for value in ids:
            fmt.put_u(record, value)
        params = site.params
        fmt.put_u(record, params is not None)
        if params is not None:
            positional, _, vararg, kwonly, kwarg = params[:5]
            fmt.put_u(record, len(positional))
            for name in positional:
                fmt.put_u(record, self._string(name))
            fmt.put_u(record, 0 if vararg is None else self._string(vararg) + 1)
            fmt.put_u(record, len(kwonly))
            for name in kwonly:
                fmt.put_u(record, self._string(name))
            fmt.put_u(record, 0 if kwarg is None else self._string(kwarg) + 1)
        with self._lock:
            known = self._sites.get(id(site))
            if known is not None:
                return known[0]
            if self._meta_record(record):
                self._sites[id(site)] = (number, site)
        return number

    def _stop(self):
        self.full = True

    def _event(self, thread_id, ts, record):
        """Store an event record whose bytes after the tag start with nothing: dt goes in here."""
        if self.full or _originals.os_getpid() != self._pid:
            self.dropped += 1
            return
        chunk = self._threads.get(thread_id)
        for _ in range(2):
            if chunk is not None:
                out = bytearray((record[0],))
                fmt.put_z(out, ts - chunk.last_ts)
                out += record[1:]
                if self._put(chunk, out):
                    chunk.last_ts = ts
                    return
            chunk = self._next_chunk(thread_id, chunk)
            if chunk is None:
                self.dropped += 1
                return
        self.dropped += 1  # larger than a chunk

    on_retire = None
    """None, or ``on_retire(offset, data)``: called with the file offset and the bytes of a thread's chunk
    of events once it is complete (the thread went on to its next chunk), outside the writer's lock, on
    that thread. The live chrome trace converts the chunk then (from ``data``: reading the file would let
    another thread run). The C writer calls it the same way."""

    def _next_chunk(self, thread_id, full):
        """The thread's next chunk of events, after ``full`` (its chunk that is full, or None); None when the
        file is full."""
        data = None
        if full is not None:
            if self.on_retire is not None:
                data = bytes(full.map[: full.pos])
            full.unmap()
        with self._lock:
            chunk = self._new_chunk(fmt.CHUNK_EVENTS, thread_id)
            if chunk is None:
                self._threads.pop(thread_id, None)
                self._stop()
            else:
                self._threads[thread_id] = chunk
        if data is not None:
            self.on_retire(fmt.HEADER_SIZE + full.index * self.chunk_size, data)
        return chunk

    # -- values ---------------------------------------------------------------
    def _value(self, out, value, name=None):
        render = self.render
        if name is not None and render.is_secret(name):
            out.append(fmt.V_REDACTED)
        elif fmt.is_plain(value, render.repr_limit) and not (type(value) in _TEXT and render.redacts_content(value)):
            fmt.put_plain(out, value)
        else:
            fmt.put_shown(out, render.value(value))

    def _where(self, out, caller, file_offset):
        """A Caller as file (string id + ``file_offset``), line and function (string id + 1)."""
        fmt.put_u(out, self._string(str(caller.file)) + file_offset)
        fmt.put_u(out, caller.line if isinstance(caller.line, int) and caller.line >= 0 else 0)
        fmt.put_u(out, self._string(str(caller.function)) + 1)

    def _dict(self, out, mapping):
        render = self.render
        out.append(fmt.V_DICT)
        fmt.put_u(out, len(mapping))
        for key, value in mapping.items():
            fmt.put_text(out, str(key))
            if render.is_secret(key):
                fmt.put_shown(out, REDACTED)
            else:
                self._value(out, value)

    def _tuple(self, out, items):
        out.append(fmt.V_TUPLE)
        fmt.put_u(out, len(items))
        for item in items:
            self._value(out, item)

    # -- events ---------------------------------------------------------------
    def _past_max_starts(self, call_id):
        """Whether this START is past ``max_starts`` (skipped); else it is counted (under the lock: another
        thread may be starting a call too)."""
        with self._lock:
            if self._starts >= self.max_starts:
                self.skipped += 1
                return True
            self._starts += 1
            if call_id > self._last_started:
                self._last_started = call_id
        return False

    def start(self, call):
        if self.max_starts is not None and self._past_max_starts(call.call_id):
            return
        if self.full:
            self.dropped += 1
            return
        thread_id = call.thread_id
        if not self._local.__dict__.get("named"):
            self._name_thread(thread_id, call.thread_name)
        site = call.site
        record = bytearray((fmt.START,))
        fmt.put_u(record, call.call_id)
        fmt.put_u(record, self._site(site))
        caller = call.caller
        if caller is None:
            record += b"\0\0\0"
        else:
            self._where(record, caller, 1)
        app_caller = call.app_caller
        if app_caller is None:
            record.append(0)
        elif app_caller is caller or app_caller == caller:
            record.append(1)
        else:
            self._where(record, app_caller, 2)  # 0 and 1 say "none" and "the caller itself"
        task = call.task
        fmt.put_u(record, 0 if task is None else self._string(str(task)) + 1)
        request_id = call.request_id
        fmt.put_u(record, 0 if request_id is None else request_id + 1)
        values = call.values
        params = site.params
        fmt.put_u(record, len(values))
        if params is None:
            self._tuple(record, values[0])
            self._dict(record, values[1])
        else:
            positional, _, vararg, _, kwarg = params[:5]
            names = parameter_names(params)
            init = site.qualname.rpartition(".")[2] == "__init__"
            for index, (name, value) in enumerate(zip(names, values)):
                if self.render.is_secret(name):
                    record.append(fmt.V_REDACTED)
                elif index == 0 and init and positional:
                    fmt.put_shown(record, object_repr(value))  # half built: see render.builds_its_first_argument
                elif name == vararg and index == len(positional):
                    self._tuple(record, value)
                elif name == kwarg and index == len(names) - 1:
                    self._dict(record, value)
                else:
                    self._value(record, value)
        meaning = semantics.start_fields(call, self.render) if site.semantic is not None else None
        if meaning is None:
            record.append(0)
        else:
            fmt.put_u(record, self._string(meaning[0]) + 1)
            fmt.put_fields(record, meaning[1], self._string)
        self._event(thread_id, call.program_ns, record)

    def _name_thread(self, thread_id, name):
        """THREAD for this thread, from a chunk of its own: a thread that had its id before keeps its
        chunks and its name (the C writer does the same; see ``format``'s THREAD)."""
        chunk = self._next_chunk(thread_id, self._threads.get(thread_id))
        if chunk is None:
            return
        record = bytearray((fmt.THREAD,))
        fmt.put_u(record, thread_id)
        fmt.put_u(record, self._string(name))
        fmt.put_u(record, chunk.seq)
        with self._lock:
            self._meta_record(record)
        self._local.named = True

    def end(self, call, result):
        if self.max_starts is not None and call.call_id > self._last_started:
            return  # its START was skipped
        thread_id = _originals.get_ident()
        if not self._local.__dict__.get("named"):  # a generator finished on a thread that started nothing
            from .. import _state

            self._name_thread(thread_id, _state.thread_name(thread_id))
        record = bytearray((fmt.END,))
        fmt.put_u(record, call.call_id)
        self._value(record, result)
        fmt.put_fields(record, semantics.end_fields(call, result), self._string)
        self._event(thread_id, call.program_ns + call.duration_ns, record)

    def error(self, call, exc):
        if self.max_starts is not None and call.call_id > self._last_started:
            return
        thread_id = _originals.get_ident()
        if not self._local.__dict__.get("named"):
            from .. import _state

            self._name_thread(thread_id, _state.thread_name(thread_id))
        render = self.render
        record = bytearray((fmt.ERROR,))
        fmt.put_u(record, call.call_id)
        fmt.put_u(record, self._string(exception_type_name(exc)))
        fmt.put_text(record, render.value(exc))
        fmt.put_text(record, render.exception_text(exc))
        fmt.put_fields(record, semantics.error_fields(call, exc), self._string)
        self._event(thread_id, call.program_ns + call.duration_ns, record)

    # -- processes and exit ---------------------------------------------------
    def after_fork_in_child(self):
        """The parent's mappings are not ours: forget them (unmapping here leaves the parent's alone), open our file."""
        for chunk in list(self._threads.values()) + ([self._meta] if self._meta else []):
            try:
                chunk.unmap()
            except Exception:
                pass
        try:
            _originals.os_close(self._fd)
        except OSError:
            pass
        try:
            self._open(path_for_child(self.requested_path, _originals.os_getpid()))
        except OSError as exc:
            self.full = True
            report.warn(f"no recording from process {_originals.os_getpid()}: {exc.strerror or exc}")

    def close(self):
        if self.closed or _originals.os_getpid() != self._pid:
            return
        self.closed = True
        if self.full:
            how = "--record-ring keeps the most recent events instead" if not self.ring else "no chunk was free"
            report.warn(f"recording {self.path} is full ({self.limit} bytes): {self.dropped} events were not "
                        f"recorded ({how})")
