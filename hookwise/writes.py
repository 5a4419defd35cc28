"""How hookwise's outputs write: whole, and without letting the program's other threads run.

Listeners run inside the program's calls. ``os.write`` lets go of the GIL
during the system call, and a thread waiting for the GIL then runs in the
middle of a hooked call: the program's threads interleave as they never do
without hookwise (more-itertools' ``callback_iter`` test, a worker thread
racing the test, lost its race one run in four). So every built-in output
that writes while a call is reported (console, jsonl, hookwise's own
messages) writes through here, with the GIL held:

- with the C accelerator, ``hookwise._speedups.write_whole`` and ``LineBuffer``;
- with the pure-Python runtime, libc's ``write`` and ``poll`` called through
  ``_ctypes`` as Python-API functions (which keep the GIL), loaded by
  ``prepare()`` once the hooks are in place: ``_ctypes`` is one C module that
  imports nothing else (``ctypes`` would import ``struct``, a module a user may
  hook); where it is missing, ``os.write`` is used and lets go of the GIL.

The pure-Python recording writer and the live chrome trace work on files the
same way: ``truncate`` (``ftruncate``), ``SharedMapping`` (``mmap`` and
``munmap``; the mapped bytes are written through a memoryview of a ``_ctypes``
array at their address) and ``read_at`` (``pread``, the C accelerator's
``read_at`` with it) keep the GIL too. Where ``_ctypes`` is missing they are
``os.ftruncate``, ``None`` (the writer then maps with the ``mmap`` module) and
``os.pread``, which let go of it.

A write to a regular file never waits. A pipe, FIFO, terminal or socket that
is full would make a write wait for its reader, perhaps one of the program's
own threads: there the write waits for room with the GIL released (a full
pipe never deadlocks the program), the one moment another thread can run.
A descriptor hookwise opened itself is made non-blocking for that; one it
shares with others (its duplicate of stderr: the flag would change theirs too)
is asked with ``poll`` first and written at most ``PIPE_BUF`` bytes at a time
(``may_block``).

Must never: raise anything but OSError, import a module a user may hook, let
go of the GIL except to wait for a full pipe, or unmap memory twice.
"""

import os
import stat
from _thread import allocate_lock
from errno import EAGAIN as _EAGAIN, EINTR as _EINTR, EWOULDBLOCK as _EWOULDBLOCK  # errno is built in

from . import _originals, accel

PIPE_BUF = getattr(os, "PIPE_BUF", None) or 4096  # Linux: 4096; writes up to this size to a pipe are atomic

if accel.ACTIVE:
    write_whole = accel.speedups.write_whole
    LineBuffer = accel.speedups.LineBuffer
    read_at = accel.speedups.read_at

WRITES_WHEN_QUIET = accel.ACTIVE
"""Whether a ``LineBuffer``'s lines are written when the program goes quiet (by the C one's own thread).
Without that, lines would wait for the program's next event: buffer only where it is True."""


def may_block(fd, ours):
    """Whether writes to ``fd`` need ``may_block`` (see the module docstring); makes our own fd non-blocking.

    Returns (may_block, regular): a regular file takes any write whole at once.
    """
    try:
        regular = stat.S_ISREG(_originals.os_fstat(fd).st_mode)
    except OSError:
        return True, False
    if regular:
        return False, True
    if ours:
        try:
            os.set_blocking(fd, False)
            return False, False
        except OSError:
            pass
    return True, False


# -- the pure-Python runtime: libc through _ctypes, keeping the GIL ------------------

_c_write = _c_poll_now = _c_poll_wait = _pollfd = _addressof = _get_errno = None
_c_ftruncate = _c_mmap = _c_munmap = _c_pread = _Byte = _Char = None  # None: os's functions, the mmap module
_quote = None  # _json.encode_basestring_ascii, once a jsonl line is built here


_libc_loaded = None  # whether the pure-Python path's libc functions are loaded (None: not tried yet)


def prepare():
    """Load what the pure-Python runtime writes with; call it after the hooks are installed.

    Returns whether writes keep the GIL. Cheap: one C module (about 0.5 ms),
    and nothing at all with the C accelerator.
    """
    return True if accel.ACTIVE else _load_libc()


def _load_libc():
    global _libc_loaded, _c_write, _c_poll_now, _c_poll_wait, _pollfd, _addressof, _get_errno
    global _c_ftruncate, _c_mmap, _c_munmap, _c_pread, _Byte, _Char
    if _libc_loaded is not None:
        return _libc_loaded
    try:
        import _ctypes

        class _Int(_ctypes._SimpleCData):
            _type_ = "i"

        class _Short(_ctypes._SimpleCData):
            _type_ = "h"

        class _Size(_ctypes._SimpleCData):
            _type_ = "L"  # size_t and nfds_t: unsigned long on Linux and macOS

        class _SignedSize(_ctypes._SimpleCData):
            _type_ = "l"

        class _Address(_ctypes._SimpleCData):
            _type_ = "P"

        class _PollFd(_ctypes.Structure):
            _fields_ = [("fd", _Int), ("events", _Short), ("revents", _Short)]

        class _Holding(_ctypes.CFuncPtr):  # a "Python API" function: called with the GIL held
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_PYTHONAPI | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = _SignedSize

        class _Releasing(_ctypes.CFuncPtr):  # an ordinary one: the GIL is released during the call
            _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
            _restype_ = _SignedSize

        class _Libc:
            _handle = _ctypes.dlopen(None, getattr(_ctypes, "RTLD_LOCAL", 0))

        # write(fd, data, size) without argtypes, a third of the cost of a call with them: the int
        # arguments go as C ints (a line, or a buffer of 64 KiB, is far below 2 GiB) and bytes as a pointer
        write = _Holding(("write", _Libc))
        poll_now = _Holding(("poll", _Libc))
        poll_wait = _Releasing(("poll", _Libc))
        poll_now.argtypes = poll_wait.argtypes = (_Address, _Size, _Int)
        poll_now.restype = poll_wait.restype = _Int  # an int: -1 read as a long would be 4294967295, "ready"
        _pollfd = _PollFd()
        if _ctypes.sizeof(_SignedSize) == 8:  # off_t is a long on 64-bit Linux, macOS and the BSDs
            class _Byte(_ctypes._SimpleCData):  # arrays of them at a mapping's address: its view
                _type_ = "B"

            class _Char(_ctypes._SimpleCData):  # arrays of them read into: their .raw is bytes
                _type_ = "c"

            _c_ftruncate = _Holding(("ftruncate", _Libc))
            _c_ftruncate.argtypes = (_Int, _SignedSize)
            _c_mmap = _Holding(("mmap", _Libc))
            _c_mmap.argtypes = (_Address, _Size, _Int, _Int, _Int, _SignedSize)
            _c_munmap = _Holding(("munmap", _Libc))
            _c_munmap.argtypes = (_Address, _Size)
            _c_pread = _Holding(("pread", _Libc))
            _c_pread.argtypes = (_Int, _Address, _Size, _SignedSize)
            _c_ftruncate.restype = _c_munmap.restype = _Int  # an int: the upper half of a long is not set
        _c_write, _c_poll_now, _c_poll_wait = write, poll_now, poll_wait
        _addressof, _get_errno = _ctypes.addressof, _ctypes.get_errno
        _libc_loaded = True
    except Exception:  # a Python built without ctypes: os.write, which lets go of the GIL
        _libc_loaded = False
    return _libc_loaded


def _poll(fd, function, timeout):
    # the shared structure serves the calls that keep the GIL; one that waits without it has its own
    pollfd = _pollfd if function is _c_poll_now else type(_pollfd)()
    pollfd.fd = fd
    pollfd.events = _POLLOUT
    pollfd.revents = 0
    return function(_addressof(pollfd), 1, timeout)


_POLLOUT = 4  # the same on Linux, macOS and the BSDs


def _pure_write_whole(fd, data, may_block=False):
    """Write all of ``data`` to ``fd`` with the GIL held; wait for room in a full pipe with it released."""
    if not (_libc_loaded or _load_libc()):
        written = _originals.os_write(fd, data)
        while written < len(data):
            written += _originals.os_write(fd, data[written:])
        return
    if type(data) is not bytes:
        data = bytes(data)
    while data:
        size = len(data)
        if may_block:
            ready = _poll(fd, _c_poll_now, 0)
            if ready == 0:
                _poll(fd, _c_poll_wait, -1)
                continue
            size = min(size, PIPE_BUF)
        written = _c_write(fd, data, size)
        if written > 0:
            data = data[written:]
        elif written < 0:
            error = _get_errno()
            if error in (_EAGAIN, _EWOULDBLOCK):
                _poll(fd, _c_poll_wait, -1)
            elif error != _EINTR:
                raise OSError(error, os.strerror(error))


def _raise_errno():
    error = _get_errno()
    raise OSError(error, os.strerror(error))


def truncate(fd, length):
    """Make the file ``fd`` ``length`` bytes long (``os.ftruncate``), with the GIL held where ``_ctypes`` is."""
    if not (_libc_loaded or _load_libc()) or _c_ftruncate is None:
        return _originals.os_ftruncate(fd, length)
    while _c_ftruncate(fd, length) < 0:
        if _get_errno() != _EINTR:
            _raise_errno()


def _pure_read_at(fd, size, offset):
    """Up to ``size`` bytes of the regular file ``fd`` from ``offset`` (``os.pread``), read with the GIL held
    where ``_ctypes`` is (as the C accelerator's ``read_at``); fewer where the file ends."""
    if not (_libc_loaded or _load_libc()) or _c_pread is None:
        return _originals.os_pread(fd, size, offset)
    if not size:
        return b""
    # a buffer of this size from an earlier read (a fresh one, its pages new to the process each time, made a
    # chunk's read 13 times slower); taken while in use, so that another thread's read makes its own
    buffer = _read_buffers.pop(size, None)
    if buffer is None:
        buffer = (_Char * size)()  # one array type per size, kept by _ctypes
    try:
        done = 0
        while done < size:
            got = _c_pread(fd, _addressof(buffer) + done, size - done, offset + done)
            if got > 0:
                done += got
            elif got == 0:
                break
            elif _get_errno() != _EINTR:
                _raise_errno()
        return buffer.raw if done == size else buffer.raw[:done]
    finally:
        if len(_read_buffers) < 4:  # a reader's few sizes: a chunk, its header, one byte
            _read_buffers[size] = buffer


_read_buffers = {}  # size -> a buffer that _pure_read_at reads into


_PROT_READ_WRITE = 3  # PROT_READ | PROT_WRITE, and MAP_SHARED: the same on Linux, macOS and the BSDs
_MAP_SHARED = 1


class SharedMapping:
    """``size`` bytes of the file ``fd`` from ``offset`` (a multiple of the page size), mapped shared with the
    GIL held: what is stored in ``view``, a writable memoryview of them, is in the file (the kernel's page
    cache) at once, and stays there if the process is killed. Made by ``map_shared``."""

    __slots__ = ("view", "_address", "_size")

    def __init__(self, fd, size, offset):
        address = _c_mmap(None, size, _PROT_READ_WRITE, _MAP_SHARED, fd, offset)
        if address == -1:  # MAP_FAILED (a mapping's address is below 2**63: it shows as itself)
            _raise_errno()
        self._address, self._size = address, size
        self.view = memoryview((_Byte * size).from_address(address)).cast("B")

    def close(self):
        """Unmap the bytes (in a forked child, this process's copy of the mapping only); ``view`` is released
        first, so a later use of it raises ValueError. Once only: the address may be someone else's after."""
        address, self._address = self._address, 0
        if address:
            try:
                self.view.release()
            except BufferError:  # a view of it is still held: left mapped rather than pulled from under it
                return
            _c_munmap(address, self._size)


def map_shared(fd, size, offset):
    """A ``SharedMapping`` of the file, or None where ``_ctypes`` is missing (the ``mmap`` module lets go of
    the GIL: the caller uses it instead)."""
    if not (_libc_loaded or _load_libc()) or _c_mmap is None:
        return None
    return SharedMapping(fd, size, offset)


_UNSET = object()


class PurePythonLineBuffer:
    """Lines gathered and written together: the reference for ``hookwise._speedups.LineBuffer``
    (which also writes them when the program goes quiet; this one does not: its users keep ``limit`` 0).

    ``add(line, now_ns)`` keeps the line; what waits is written, with the GIL
    held, when it holds ``limit`` bytes, when the line would not fit beside
    it, or when ``now_ns`` is ``max_wait_ns`` or more after the last write
    (or before it: the wall clock was stepped back). A line longer than
    ``limit`` is written alone; ``limit`` 0 writes every line at once.
    """

    def __init__(self, fd, limit, max_wait_ns, may_block=False):
        self.fd = fd
        self.limit = limit
        self.max_wait_ns = max_wait_ns
        self.may_block = may_block
        self._lines = []
        self._size = 0
        self._last_write_ns = 0
        self._lock = allocate_lock()  # an uncontended acquire keeps the GIL

    @property
    def pending(self):
        return self._size

    def add(self, line, now_ns):
        if not self.limit:  # every line at once: nothing waits, nothing to guard
            if self._size:
                self.flush()
            write_whole(self.fd, line.encode("utf-8", "backslashreplace"), self.may_block)
            return
        with self._lock:
            if self._size and self._size + len(line) > self.limit:
                self._write_out(now_ns)
            self._lines.append(line)
            self._size += len(line)
            if self._size >= self.limit or not 0 <= now_ns - self._last_write_ns < self.max_wait_ns:
                self._write_out(now_ns)

    def add_call(self, event, call, target, head, values, tail, limit, secret=_UNSET, user_reprs=False):
        """Add the line ``{"event":EVENT,"call_id":..,"target":TARGET,"thread_id":..,"thread_name":..,"pid":..,
        "ts_ns":..[,"request_id":..][,"duration_ns":..]HEAD VALUES TAIL``: the members every jsonl line of
        a call starts with, read from ``call``, then the caller's JSON text. ``ts_ns`` is the call's
        ``start_ns`` for a start and its ``end_ns`` otherwise (which adds ``duration_ns``). ``values``
        (unless None): a tuple of values shown as JSON strings of their reprs, joined by commas, when
        each is plain (int, bool, None, float, with a repr of at most ``limit`` and 31 characters); for any
        other value nothing is added and the answer is False (the caller renders them itself), unless
        ``secret`` and ``user_reprs`` are given: then such a value is shown by its safe repr
        (``saferepr(value, limit, secret, user_reprs)``).
        """
        global _quote
        if _quote is None:
            from _json import encode_basestring_ascii as _quote  # loaded by the listeners that call this anyway
        if values is not None and secret is not _UNSET:
            shown = ",".join([_quote(_shown(value, limit, secret, user_reprs)) for value in values])
        elif values is None:
            shown = ""
        elif not _PLAIN.issuperset(map(type, values)):
            return False
        else:
            try:
                shown = '","'.join(map(repr, values))
            except ValueError:  # an int too long to show
                return False
            if values:
                cap = limit if limit < 31 else 31  # a plain repr is short: 31 characters at most
                if len(shown) > cap and max(map(len, map(repr, values))) > cap:
                    return False
                shown = f'"{shown}"'
        request_id = call.request_id
        request = "" if request_id is None else f',"request_id":{request_id}'
        if event == "start":
            ts_ns = call.start_ns
        else:
            ts_ns = call.end_ns
            request = f'{request},"duration_ns":{call.duration_ns}'
        self.add(
            f'{{"event":"{event}","call_id":{call.call_id},"target":{target},"thread_id":{call.thread_id},'
            f'"thread_name":{_quote(call.thread_name)},"pid":{call.pid},"ts_ns":{ts_ns}{request}{head}{shown}{tail}',
            ts_ns,
        )
        return True

    def flush(self):
        with self._lock:
            self._write_out(self._last_write_ns)

    def drop(self):
        """In a forked child: what waits is the parent's to write (and the parent's threads may have held the lock)."""
        self._lines = []
        self._size = 0
        self._lock = allocate_lock()

    def _write_out(self, now_ns):
        lines, self._lines = self._lines, []
        self._size = 0
        self._last_write_ns = now_ns
        if lines:
            write_whole(self.fd, "".join(lines).encode("utf-8", "backslashreplace"), self.may_block)


_PLAIN = frozenset((int, float, bool, type(None)))  # reprs that are short, plain ASCII and built in


def _shown(value, limit, secret, user_reprs):
    """A value as add_call shows it: a plain value's own short repr, any other's safe repr."""
    if type(value) in _PLAIN:
        try:
            text = repr(value)
        except ValueError:  # an int too long to show
            text = None
        if text is not None and len(text) <= min(limit, 31):
            return text
    from .saferepr import saferepr

    return saferepr(value, limit, secret, user_reprs)

if not accel.ACTIVE:
    write_whole = _pure_write_whole
    LineBuffer = PurePythonLineBuffer
    read_at = _pure_read_at
