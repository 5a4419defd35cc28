"""The call record: everything a listener learns about one call of a hooked function.

A ``Call`` is created when a hooked function starts and filled in when it ends.
Cheap facts are captured at once (ids, thread, clock, the argument values);
everything else is derived on first use, so that a listener that does not look
at the caller or the argument names does not pay for them.

Fields that depend on the moment (``caller``, ``task``) are only known while
the call is being reported: read them inside ``start``/``end``/``error`` if you
want to keep them; later they return what was read then, or None.
"""

from . import _originals, _state

# wall clock = monotonic clock + this offset; one clock read per event is enough
_WALL_OFFSET_NS = _originals.time_ns() - _originals.perf_counter_ns()
_MISSING = object()


class Caller(tuple):
    """Where a call came from: (file, line, function)."""

    __slots__ = ()

    def __new__(cls, file, line, function):
        return tuple.__new__(cls, (file, line, function))

    file = property(lambda self: self[0])
    line = property(lambda self: self[1])
    function = property(lambda self: self[2])

    def __repr__(self):
        return f"Caller(file={self[0]!r}, line={self[1]!r}, function={self[2]!r})"


class Call:
    """One call of a hooked function."""

    __slots__ = (
        "site",
        "call_id",
        "thread_id",
        "pid",
        "perf_ns",
        "values",
        "duration_ns",
        "result",
        "exception",
        "_caller",
        "_task",
        "_thread_name",
    )

    def __init__(self, site, values, call_id, thread_id, perf_ns):
        self.site = site
        self.values = values
        self.call_id = call_id
        self.thread_id = thread_id
        self.perf_ns = perf_ns
        self.pid = _state.pid
        self.duration_ns = None
        self.result = None
        self.exception = None
        self._caller = _MISSING
        self._task = _MISSING
        self._thread_name = None

    # -- what was called --------------------------------------------------
    @property
    def target(self):
        """``module:qualname`` of the function (where it is defined)."""
        return self.site.target

    @property
    def module(self):
        return self.site.module

    @property
    def qualname(self):
        return self.site.qualname

    @property
    def kind(self):
        """'function', 'generator', 'coroutine', 'async_generator' or 'builtin'."""
        return self.site.kind

    # -- when ---------------------------------------------------------------
    @property
    def start_ns(self):
        """Wall-clock time of the start, in ns since the epoch."""
        return _WALL_OFFSET_NS + self.perf_ns

    @property
    def end_ns(self):
        return None if self.duration_ns is None else _WALL_OFFSET_NS + self.perf_ns + self.duration_ns

    @property
    def done(self):
        return self.duration_ns is not None

    # -- the arguments ----------------------------------------------------
    @property
    def args(self):
        """Positional arguments (positional parameters, then ``*args``)."""
        layout = self.site.params
        if layout is None:
            return self.values[0]
        positional, _, vararg = layout[:3]
        count = len(positional)
        args = self.values[:count]
        if vararg is not None:
            args += self.values[count]
        return args

    @property
    def kwargs(self):
        """Keyword arguments (keyword-only parameters, then ``**kwargs``)."""
        layout = self.site.params
        if layout is None:
            return self.values[1]
        positional, _, vararg, kwonly, kwarg = layout[:5]
        index = len(positional) + (vararg is not None)
        kwargs = dict(zip(kwonly, self.values[index : index + len(kwonly)]))
        if kwarg is not None:
            kwargs.update(self.values[-1])
        return kwargs

    @property
    def arguments(self):
        """Every argument by parameter name, in signature order."""
        layout = self.site.params
        if layout is None:
            return self.site.bind_arguments(*self.values)
        positional, _, vararg, kwonly, kwarg = layout[:5]
        names = list(positional)
        if vararg is not None:
            names.append(vararg)
        names.extend(kwonly)
        if kwarg is not None:
            names.append(kwarg)
        return dict(zip(names, self.values))

    @property
    def changed_arguments(self):
        """``arguments`` without those still equal to their literal default (for display)."""
        arguments = self.arguments
        layout = self.site.params
        if layout is None or len(layout) < 6:
            return arguments
        for name, default in layout[5]:
            if name in arguments:
                value = arguments[name]
                try:
                    same = type(value) is type(default) and value == default
                except Exception:
                    same = False
                if same:
                    del arguments[name]
        return arguments

    # -- where and who -----------------------------------------------------
    @property
    def thread_name(self):
        if self._thread_name is None:
            self._thread_name = _state.thread_name(self.thread_id)
        return self._thread_name

    @property
    def caller(self):
        """``Caller(file, line, function)`` of the code that made the call, or None."""
        if self._caller is _MISSING:
            self._caller = self._find_caller() if _state.local.busy is self else None
        return self._caller

    @property
    def task(self):
        """Name of the asyncio task that made the call, or None outside of one."""
        if self._task is _MISSING:
            self._task = _state.current_task_name() if _state.local.busy is self else None
        return self._task

    def _find_caller(self):
        frame = self.site.hooked_frame(_originals.getframe(2))
        if frame is None or frame.f_back is None:
            return None
        caller = frame.f_back
        code = caller.f_code
        return Caller(code.co_filename, caller.f_lineno, getattr(code, "co_qualname", code.co_name))

    def __repr__(self):
        state = "running" if self.duration_ns is None else ("raised" if self.exception is not None else "returned")
        return f"<Call #{self.call_id} {self.target} {state}>"

