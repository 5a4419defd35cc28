"""``--listener record=PATH``: every event into a compact binary recording (see ``hookwise.recording``).

``python -m hookwise.convert PATH --to FORMAT`` makes any other output from it
later. ``--record-limit SIZE`` bounds the file, ``--record-ring`` keeps the
most recent SIZE instead of stopping.
"""

import os
import stat

from .. import accel
from . import require_arg

PRIVATE_SUFFIX = ".rec"


def from_spec(arg, settings):
    return open_writer(require_arg("record", arg, "a path"), render=settings.render,
                       limit=getattr(settings, "record_limit", None), ring=getattr(settings, "record_ring", False),
                       in_child=settings.in_child)


def open_writer(path, **options):
    """The writer of a recording at ``path``: the C accelerator's where it is active, else the Python one.

    Both write the same format (``hookwise.recording.format``) and take the same options (``render``,
    ``limit``, ``ring``, ``in_child``, ``chunk_size``, ``max_starts``: see ``RecordWriter``).
    """
    if accel.ACTIVE:
        from ..recording.native import NativeRecordWriter

        return NativeRecordWriter(path, **options)
    from ..recording.writer import RecordWriter

    return RecordWriter(path, **options)


def private_path(output, listener):
    """Where a listener that writes ``output`` (an ``_output.OutputFile``) from a recording of its own keeps
    that recording: beside PATH (``PATH.rec``), or, for a device or a pipe, a temporary file."""
    try:
        regular = stat.S_ISREG(os.stat(output.path).st_mode)
    except OSError:
        regular = False
    if not regular:
        import tempfile  # only here: a device path is rare, and the driver's imports before the hooks count

        return os.path.join(tempfile.gettempdir(), f"hookwise-{listener}-{os.getpid()}-{os.urandom(6).hex()}.rec")
    return output.requested_path + PRIVATE_SUFFIX
