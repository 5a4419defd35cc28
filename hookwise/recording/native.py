"""The C writer of recordings (``hookwise._speedups.Recorder``, in ``_recorder.h``) and what it asks Python.

With the C accelerator, ``--listener record=PATH`` is a ``NativeRecordWriter``:
its ``start``, ``end`` and ``error`` are the C type's own methods, which build
each event from the ``Call`` and store it in the thread's chunk of the file
(format: ``hookwise.recording.format``). What C cannot know it asks the
methods below, once per site, code object, type or string where it can, and
per event only for what needs Python's judgement: a value that is not stored
as itself (its safe repr, exactly as the live outputs render it, redaction
included), text that redaction by content may change, a call's meaning (an
SQL statement), an exception. The pure-Python ``writer.RecordWriter`` writes
the same format and is the reference for what each event holds.

Must never: raise into the program (the C side reports a failing question once
and goes on), or keep the program's objects.
"""

from .. import _originals, report, semantics
from ..accel import speedups
from ..call import is_library_file
from ..listeners._output import path_for_child
from ..render import Render, exception_type_name
from ..saferepr import how_shown, object_repr
from . import format as fmt
from .writer import chunk_size_for, open_recording


def _init_name(qualname):
    return qualname.rpartition(".")[2] == "__init__"


class NativeRecordWriter(speedups.Recorder):
    """A recording written by the C accelerator; the same constructor and life as ``RecordWriter``."""

    def __init__(self, path, render=None, limit=None, ring=False, in_child=False, chunk_size=fmt.DEFAULT_CHUNK_SIZE,
                 max_starts=None):
        self.requested_path = path
        self.render = render if render is not None else Render()
        self.limit = limit
        self.ring = ring
        self.in_child = in_child
        self.chunk_size = chunk_size_for(limit, chunk_size)
        self.path = path_for_child(path, _originals.os_getpid()) if in_child else path
        fd = open_recording(self.path, self.render, self.chunk_size)
        self._fd = fd
        self._closed = False
        super().__init__(fd, self.chunk_size, limit or 0, ring, self.render.repr_limit, bool(self.render.redact), self,
                         -1 if max_starts is None else max_starts)

    on_retire = None
    """None, or ``on_retire(offset, data)``, as ``RecordWriter.on_retire``: called, on its thread, once a
    thread's chunk of events is complete (right after the event that filled it is stored), with its bytes."""

    # -- what the C writer asks -----------------------------------------------------
    def site_plan(self, site):
        """(target, module, qualname, kind, params, secret_mask, first_half_built, semantic, code) of a site."""
        params = site.params
        mask = 0
        if params is not None:
            positional, _, vararg, kwonly, kwarg = params[:5]
            names = list(positional) + ([vararg] if vararg is not None else []) + list(kwonly) + (
                [kwarg] if kwarg is not None else [])
            for index, name in enumerate(names[:64]):
                if self.render.is_secret(name):
                    mask |= 1 << index
            params = (tuple(positional), (), vararg, tuple(kwonly), kwarg)
        return (str(site.target), str(site.module), str(site.qualname), str(site.kind), params, mask,
                params is not None and _init_name(str(site.qualname)), site.semantic is not None,
                site.code)

    def shown(self, value):
        return self.render.value(value)

    def redacts(self, value):
        return self.render.redacts_content(value)

    def object_name(self, value):
        """(how the safe repr shows values of this type: "object", "repr" or None; the name of its
        ``<name object at 0x...>``, or None; ``module.Class`` as ``object_repr`` names a half-built
        ``self`` of this type, or None): see ``saferepr.how_shown``."""
        way, name = how_shown(value, self.render.user_reprs)
        kind = type(value)
        try:
            half = f"{kind.__module__}.{kind.__qualname__}"
        except Exception:
            half = None  # object_repr's own fallback: asked per value (half_built)
        return way, name, half if type(half) is str else None

    def half_built(self, value):
        return object_repr(value)

    def is_secret(self, name):
        return self.render.is_secret(name)

    def library(self, filename):
        return is_library_file(filename)

    def thread_name(self, thread_id):
        from .. import _state

        return _state.thread_name(thread_id)

    def meaning(self, call):
        return semantics.start_fields(call, self.render)

    def end_fields(self, call, result):
        return semantics.end_fields(call, result)

    def error_parts(self, call, exc):
        render = self.render
        return (exception_type_name(exc), render.value(exc), render.exception_text(exc),
                semantics.error_fields(call, exc))

    # -- processes and exit -----------------------------------------------------
    def after_fork_in_child(self):
        """The parent's mappings and file are not ours: a file of this process's own beside PATH."""
        try:
            _originals.os_close(self._fd)
        except OSError:
            pass
        self.path = path_for_child(self.requested_path, _originals.os_getpid())
        try:
            self._fd = open_recording(self.path, self.render, self.chunk_size)
        except OSError as exc:
            self.close_file()
            report.warn(f"no recording from process {_originals.os_getpid()}: {exc.strerror or exc}")
            return
        self.after_fork(self._fd)

    def close(self):
        if self._closed:
            return
        self._closed = True
        self.close_file()
        if self.full:
            how = "--record-ring keeps the most recent events instead" if not self.ring else "no chunk was free"
            report.warn(f"recording {self.path} is full ({self.limit} bytes): {self.dropped} events were not "
                        f"recorded ({how})")
