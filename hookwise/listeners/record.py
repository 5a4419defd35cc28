"""``--listener record=PATH``: every event into a compact binary recording (see ``hookwise.recording``).

``python -m hookwise.convert PATH --to FORMAT`` makes any other output from it
later. ``--record-limit SIZE`` bounds the file, ``--record-ring`` keeps the
most recent SIZE instead of stopping.
"""

from ..recording.writer import RecordWriter
from . import require_arg


def from_spec(arg, settings):
    return RecordWriter(require_arg("record", arg, "a path"), render=settings.render,
                        limit=getattr(settings, "record_limit", None), ring=getattr(settings, "record_ring", False),
                        in_child=settings.in_child)
