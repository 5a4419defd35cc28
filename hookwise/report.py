"""hookwise's own messages to the user: one line each, on the real stderr.

Messages go to a private duplicate of file descriptor 2 taken when hookwise is
installed, so they neither mix into a ``sys.stderr`` the program replaced (a
test capturing its own output) nor vanish when the program redirects fd 2.
The duplicate is written with plain writes rather than wrapped in a file
object: a file object left open at exit makes Python print a ResourceWarning
into the program's output, and closing it early would lose the last messages.
Writes keep the GIL (``hookwise.writes``): a message, or a ``console`` line,
written inside a hooked call does not let the program's other threads run
there.
"""

import os
import sys
from _thread import allocate_lock

from . import _originals, writes

PREFIX = "hookwise: "

_stream = None
_said = set()
_said_lock = allocate_lock()


class FdWriter:
    """The little of a text file hookwise needs, on a raw file descriptor.

    Each ``write`` is one write of the whole text, with the GIL held, so a
    line written in one call is not interleaved with another thread's or
    process's line (on a pipe, for lines up to PIPE_BUF, 4096 bytes on Linux).
    """

    def __init__(self, fd):
        self.fd = fd
        self._may_block = writes.may_block(fd, ours=False)[0]  # stderr's flags are shared: never changed

    def write(self, text):
        writes.write_whole(self.fd, text.encode("utf-8", "backslashreplace"), self._may_block)
        return len(text)

    def flush(self):
        pass

    def fileno(self):
        return self.fd

    def isatty(self):
        return _originals.os_isatty(self.fd)


def open_stream():
    """Take the private duplicate of stderr now (call this before the program runs)."""
    global _stream
    if _stream is None:
        try:
            _stream = FdWriter(_originals.os_dup(2))
        except OSError:
            _stream = sys.__stderr__ or sys.stderr
    return _stream


def stream():
    return _stream if _stream is not None else open_stream()


def write_line(text):
    """Write one line to hookwise's stderr; never raises."""
    try:
        out = stream()
        out.write(text if text.endswith("\n") else text + "\n")
        out.flush()
    except Exception:
        pass


def warn(message):
    write_line(PREFIX + message)


def warn_once(key, message):
    """Say ``message`` the first time ``key`` is seen, and never again (threads may race here)."""
    with _said_lock:
        if key in _said:
            return False
        _said.add(key)
    warn(message)
    return True


def _after_fork_in_child():
    global _said_lock
    _said_lock = allocate_lock()  # another thread may have held it at the fork


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
