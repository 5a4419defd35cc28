"""The one line a checkout without the C accelerator prints: once per terminal session.

Coverage.py falls back to its Python tracer without a word and shows the
difference only in ``coverage debug sys``; users then run several times slower
without knowing (issue 11 found exactly that). A line on every run would be
the opposite mistake: it lands in logs and in output that other tools compare.
So: only in a source checkout (an installed copy gets the accelerator from
pip, or ``--version`` says why not), only when hookwise's stderr is a
terminal, and only the first time in that terminal session (a marker file in
the temporary directory, named by the session id). Never when the pure
runtime was asked for (HOOKWISE_PURE_PYTHON), never in a child process.
"""

import os

from . import _originals, accel, own, report


def say_once_if_pure_in_checkout():
    if accel.ACTIVE or accel.PURE_REQUESTED or not own.IN_CHECKOUT:
        return
    if not report.stream().isatty() or not _first_time_in_this_session():
        return
    report.warn(f"pure-Python runtime (several times slower per hooked call): {accel.WHY_PURE}; "
                f"'{accel.BUILD_COMMAND}' in {own.ROOT} builds it (said once per terminal session)")


def _first_time_in_this_session():
    try:
        session = os.getsid(0)
    except OSError:
        return True
    # not tempfile.gettempdir(): importing tempfile loads random and shutil before the hooks
    directory = os.environ.get("TMPDIR") or "/tmp"
    marker = os.path.join(directory, f"hookwise-accelerator-notice-{os.getuid()}-{session}")
    try:
        fd = _originals.os_open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    except OSError:
        return True  # no writable temporary directory: say it, rather than never
    os.close(fd)
    return True
