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

A write to a regular file never waits. A pipe, FIFO, terminal or socket that
is full would make a write wait for its reader, perhaps one of the program's
own threads: there the write waits for room with the GIL released (a full
pipe never deadlocks the program), the one moment another thread can run.
A descriptor hookwise opened itself is made non-blocking for that; one it
shares with others (its duplicate of stderr: the flag would change theirs too)
is asked with ``poll`` first and written at most ``PIPE_BUF`` bytes at a time
(``may_block``).

Must never: raise anything but OSError, import a module a user may hook, or
let go of the GIL except to wait for a full pipe.
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
        _pollfd = _PollFd()
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

    def add_call(self, event, call, target, head, values, tail, limit):
        """Add the line ``{"event":EVENT,"call_id":..,"target":TARGET,"thread_id":..,"thread_name":..,"pid":..,
        "ts_ns":..[,"request_id":..][,"duration_ns":..]HEAD VALUES TAIL``: the members every jsonl line of
        a call starts with, read from ``call``, then the caller's JSON text. ``ts_ns`` is the call's
        ``start_ns`` for a start and its ``end_ns`` otherwise (which adds ``duration_ns``). ``values``
        (unless None): a tuple of values shown as JSON strings of their reprs, joined by commas, when
        each is plain (int, bool, None, float, with a repr of at most ``limit`` and 31 characters); for any
        other value nothing is added and the answer is False (the caller renders them itself).
        """
        global _quote
        if _quote is None:
            from _json import encode_basestring_ascii as _quote  # loaded by the listeners that call this anyway
        if values is None:
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

if not accel.ACTIVE:
    write_whole = _pure_write_whole
    LineBuffer = PurePythonLineBuffer
