"""The output file of a listener that writes its report at exit (stats, html) or as the run goes (chrome).

The file is created when the listener is created, before the program runs, so
that an unwritable path stops the driver with exit status 2 instead of losing
the report at the end. Creation never follows a symlink planted at the path
(``O_NOFOLLOW``) and goes through hookwise's original ``os.open``, so it is
never reported as one of the program's calls. The report is written to the
descriptor opened then: what sits at the path later does not matter.

Every process of a run writes a report of its own calls: the run's first
process to PATH, each child process (started under hookwise, or forked) to
PATH with its pid before the extension (``trace.json`` -> ``trace.4242.json``),
so no process overwrites another's. A device or a pipe (``/dev/null``) is
shared as it is. The file ends where the report ends (the descriptor is
truncated after the write), so it always holds one complete report. A report
written as the run goes (``append``, then ``finish``) is written the same way,
piece after piece at this process's own offset, and cut where it ends.

A report written as the run goes must stay readable when the process is killed
(SIGKILL, the OOM killer) in the middle of a write. Linux cuts a write to a
regular file only where a page of the file ends (it checks for a fatal signal
before each page it copies; measured here: every cut on 4 KiB boundaries), so
``append_records`` lays records out so that no record crosses a 4 KiB boundary
of the file: one that would is moved to the next boundary and the gap filled
with whitespace, which the report's format allows between records. A killed
process then leaves whole records, and perhaps some of that whitespace. Only
a record longer than 4 KiB can be cut inside.

Must never: reopen the path at exit, write from a process other than the one
that created the file (a forked child inherits the descriptor: it gets its own
file through ``for_forked_child``), or raise at exit.
"""

import os
import stat

from .. import _originals, accel, report, writes

# bound when the listener module is imported, which happens before any hook is
# installed (``_originals`` has neither)
_ftruncate = os.ftruncate
_fstat = os.fstat
_lstat = os.lstat

# the unit in which the kernel may cut a write (see above); larger pages have their edges on these too
PAGE = 4096
_page_layout = accel.speedups.page_layout if accel.ACTIVE else None

CREATE_FLAGS = (
    os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
)


def create(path, in_child=False):
    """Open the report file now; OSError (with the reason) if it cannot be written.

    ``in_child``: this process is a child of the run, and writes beside PATH.
    """
    actual = path_for_child(path, _originals.os_getpid()) if in_child else path
    fd = _originals.os_open(actual, CREATE_FLAGS, 0o666)
    return OutputFile(fd, actual, path)


def path_for_child(path, pid):
    """Where child ``pid`` writes the report that the run's first process writes to ``path``."""
    try:
        mode = _lstat(path).st_mode
    except OSError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode) and not stat.S_ISLNK(mode):
        return path  # /dev/null, a pipe: nothing to overwrite
    root, extension = os.path.splitext(path)
    return f"{root}.{pid}{extension}"


class OutputFile:
    def __init__(self, fd, path, requested_path=None):
        self.path = path  # where this process writes
        self.requested_path = requested_path if requested_path is not None else path  # the PATH of the spec
        self._fd = fd
        self._pid = _originals.os_getpid()
        self._length = 0  # what ``append`` wrote so far
        # appends come inside the program's calls (chrome converts its recording as the run goes):
        # written with the GIL held (hookwise.writes), and a pipe of ours made non-blocking for that
        self._may_block = writes.may_block(fd, ours=True)[0]
        try:
            self._regular = stat.S_ISREG(_fstat(fd).st_mode)
        except OSError:
            self._regular = False

    @property
    def ours(self):
        """True while this process holds the file and has not written it yet."""
        return self._fd is not None and _originals.os_getpid() == self._pid

    def for_forked_child(self):
        """In a forked child: let the parent's file go and open this process's own; None if that fails."""
        fd, self._fd = self._fd, None
        if fd is not None:
            try:
                _originals.os_close(fd)
            except OSError:
                pass
        try:
            return create(self.requested_path, in_child=True)
        except OSError as exc:
            report.warn(f"no report from process {_originals.os_getpid()}: "
                        f"cannot write {path_for_child(self.requested_path, _originals.os_getpid())}: {exc.strerror or exc}")
            return None

    def write(self, text):
        """Write the whole report and close; False when there is nothing to do or it failed."""
        if not self.ours:
            return False
        fd, self._fd = self._fd, None
        data = text.encode("utf-8", "backslashreplace")
        try:
            writes.write_whole(fd, data, self._may_block)
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

    def append(self, text):
        """Write ``text`` after what this process appended so far; False when it does not hold the file or
        the write failed (said once: later pieces are dropped, and ``finish`` cuts the file where it stood)."""
        if not self.ours:
            return False
        return self._append(text.encode("utf-8", "backslashreplace"))

    def append_records(self, records, separator=""):
        """``append`` each of ``records`` (texts) followed by ``separator``, in one write, laid out so that a
        write cut by the death of the process leaves whole records (see the module's doc)."""
        if not self.ours:
            return False
        if not self._regular:  # a pipe or a device: nothing is left behind to read
            return self._append(separator.join(records).encode("utf-8", "backslashreplace") +
                                separator.encode("utf-8", "backslashreplace") if records else b"")
        if _page_layout is not None:  # the same layout, in C, when every record is ASCII (the outputs' JSON is)
            data = _page_layout(records, separator, self._length, PAGE)  # ASCII: the file's bytes
            if data is not None:
                return self._append(data)
        # laid out as text and encoded once: bytes.join lets go of the GIL past 1 MB, str.join never does;
        # an ASCII record's length is its size in the file
        pieces = []
        at = self._length
        for record in records:
            record += separator
            size = len(record) if record.isascii() else len(record.encode("utf-8", "backslashreplace"))
            room = PAGE - at % PAGE
            if size > room and room != PAGE:  # it would cross a boundary: start it at the next one
                pieces.append(" " * (room - 1) + "\n")
                at += room
            pieces.append(record)
            at += size
        return self._append("".join(pieces).encode("utf-8", "backslashreplace"))

    def _append(self, data):
        try:
            writes.write_whole(self._fd, data, self._may_block)
            self._length += len(data)
        except OSError as exc:
            report.warn(f"could not write {self.path}: {exc.strerror or exc}")
            self._fd, fd = None, self._fd
            self._cut(fd)
            return False
        return True

    def finish(self, text=""):
        """Append ``text``, cut the file where the report ends and close it."""
        if self.append(text) is False and not self.ours:
            return False
        fd, self._fd = self._fd, None
        self._cut(fd)
        return True

    def _cut(self, fd):
        try:
            _ftruncate(fd, self._length)
        except OSError:
            pass  # a device or a pipe has no old tail to cut
        try:
            _originals.os_close(fd)
        except OSError:
            pass
