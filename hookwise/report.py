"""hookwise's own messages to the user: one line each, on the real stderr.

Messages go to a private duplicate of file descriptor 2 taken when hookwise is
installed, so they neither mix into a ``sys.stderr`` the program replaced (a
test capturing its own output) nor vanish when the program redirects fd 2.
"""

import sys

from . import _originals

PREFIX = "hookwise: "

_stream = None
_said = set()


def open_stream():
    """Take the private duplicate of stderr now (call this before the program runs)."""
    global _stream
    if _stream is None:
        try:
            fd = _originals.os_dup(2)
            _stream = _originals.os_fdopen(fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace")
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
    """Say ``message`` the first time ``key`` is seen, and never again."""
    if key in _said:
        return False
    _said.add(key)
    warn(message)
    return True
