"""The output file of a listener that writes its report once, at exit (stats, chrome, html).

The file is created when the listener is created, before the program runs, so
that an unwritable path stops the driver with exit status 2 instead of losing
the report at the end. Creation never follows a symlink planted at the path
(``O_NOFOLLOW``) and goes through hookwise's original ``os.open``, so it is
never reported as one of the program's calls. The report is written to the
descriptor opened then: what sits at the path later does not matter.

The file ends where the report ends (the descriptor is truncated after the
write): if another process wrote to the same path meanwhile, a longer text of
its own leaves no tail behind ours, and the file is one complete report.

Must never: reopen the path at exit, write from a forked child (it inherited
the descriptor and the parent's recorded calls; the parent writes the report),
or raise at exit.
"""

import os

from .. import _originals, report

# bound when the listener module is imported, which the driver does before any
# hook is installed (``_originals`` has no ftruncate)
_ftruncate = os.ftruncate

CREATE_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)


def create(path):
    """Open ``path`` for a report now; OSError (with the reason) if it cannot be written."""
    fd = _originals.os_open(path, CREATE_FLAGS, 0o666)
    return OutputFile(fd, path)


class OutputFile:
    def __init__(self, fd, path):
        self.path = path
        self._fd = fd
        self._pid = _originals.os_getpid()

    def write(self, text):
        """Write the whole report and close; False when there is nothing to do or it failed."""
        fd, self._fd = self._fd, None
        if fd is None or _originals.os_getpid() != self._pid:
            return False
        data = text.encode("utf-8", "backslashreplace")
        try:
            view = memoryview(data)
            while view:
                written = _originals.os_write(fd, view)
                view = view[written:]
            try:
                _ftruncate(fd, len(data))
            except OSError:
                pass  # a device or a pipe (/dev/null, /dev/stdout) has no old tail to cut
        except OSError as exc:
            report.warn(f"could not write {self.path}: {exc.strerror or exc}")
            return False
        finally:
            try:
                _originals.os_close(fd)
            except OSError:
                pass
        return True
