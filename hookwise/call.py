"""The call record: everything a listener learns about one call of a hooked function.

A ``Call`` is created when a hooked function starts and filled in when it ends.
Cheap facts are captured at once (ids, thread, clock, the argument values);
everything else is derived on first use, so that a listener that does not look
at the caller or the argument names does not pay for them.

Fields that depend on the moment (``caller``, ``task``) are only known while
the call is being reported: read them inside ``start``/``end``/``error`` if you
want to keep them; later they return what was read then, and raise
RuntimeError (saying so) when nothing was.

Two implementations share the helpers below: ``PurePythonCall`` here, and the C
type of ``hookwise._speedups`` (whose lazy fields call these same helpers).
``Call`` is whichever is active (see ``hookwise.accel``).
"""

import os as _os
import sys as _sys

from . import _originals, _state, accel, own

_MISSING = object()
_sys_modules = _sys.modules

if accel.ACTIVE:
    clock_ns = accel.speedups.clock_ns
    wall_offset_ns = accel.speedups.wall_offset_ns
else:
    clock_ns = _originals.perf_counter_ns

    def wall_offset_ns():
        """The wall clock minus ``clock_ns()``, now.

        Calls are stamped with the monotonic clock alone; their wall-clock times
        are worked out when first read, with the offset of that moment: the wall
        clock can be stepped (NTP, a virtual machine resumed), and a fixed offset
        would put every later call off by the step.
        """
        before = clock_ns()
        wall = _originals.time_ns()
        return wall - (before + clock_ns()) // 2


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


# -- the lazy fields, shared by both implementations ------------------------------


def args_of(call):
    """Positional arguments (positional parameters, then ``*args``)."""
    layout = call.site.params
    if layout is None:
        return call.values[0]
    positional, _, vararg = layout[:3]
    count = len(positional)
    args = call.values[:count]
    if vararg is not None:
        args += call.values[count]
    return args


def kwargs_of(call):
    """Keyword arguments (keyword-only parameters, then ``**kwargs``)."""
    layout = call.site.params
    if layout is None:
        return call.values[1]
    positional, _, vararg, kwonly, kwarg = layout[:5]
    index = len(positional) + (vararg is not None)
    kwargs = dict(zip(kwonly, call.values[index : index + len(kwonly)]))
    if kwarg is not None:
        kwargs.update(call.values[-1])
    return kwargs


def arguments_of(call):
    """Every argument by parameter name, in signature order."""
    layout = call.site.params
    if layout is None:
        return call.site.bind_arguments(*call.values)
    return dict(zip(parameter_names(layout), call.values))


def parameter_names(layout):
    """The names of a site's parameter layout, in the order its values come."""
    positional, _, vararg, kwonly, kwarg = layout[:5]
    names = list(positional)
    if vararg is not None:
        names.append(vararg)
    names.extend(kwonly)
    if kwarg is not None:
        names.append(kwarg)
    return names


def changed_arguments_of(call):
    """``arguments`` without those still equal to their literal default (for display)."""
    arguments = arguments_of(call)
    layout = call.site.params
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


APP_CALLER_REACH = 1000
"""The library frames ``app_caller`` looks through at most. A look at every frame out to the program's
line would make a library's deep recursion (json's pure-Python decoder given 20,000 nested brackets, with
the recursion limit raised for it) cost the square of its depth. The default recursion limit is 1,000: a
program that keeps it always gets its line."""


def callers_of(call):
    """(caller, app_caller) of ``call``, from one look at the frames; read during its callbacks.

    ``caller``: Caller(file, line, function) of the code that made the call.
    ``app_caller``: the same for the first frame, from the caller outwards, that
    is the application's own code: not the standard library, not an installed
    package (site-packages, dist-packages), not hookwise. The line of the
    program that led to the call (a query run by SQLAlchemy names the
    program's line that asked for it); the caller itself when the program made
    the call (the common case: one lookup); None when every frame is library
    code (``python -m http.server``), or when the application's line is more
    than ``APP_CALLER_REACH`` library frames out.
    """
    site = call.site
    code = site.code
    if code is not None and type(site).hooked_frame is frame_running:  # the common case, without more frames
        frame = _originals.getframe(1)
        while frame is not None and frame.f_code is not code:
            frame = frame.f_back
        frame = frame.f_back if frame is not None else None
        if _state.stand_ins:
            frame = _past_stand_ins(frame)
    else:
        frame = _caller_frame(call)
    if frame is None:
        return _NO_CALLERS
    known = _place(frame)
    if known[2] is not None:
        return known[2]
    app = _first_app_frame(frame.f_back, _library_files, is_library_file, APP_CALLER_REACH)
    return known[1], None if app is None else _place(app)[1]


def callers_in_c():
    """What the C accelerator's twin of ``callers_of`` reads (hookwise/_callers.h): the caches it shares
    with this module, the functions that fill them, the walk it stands for and the reach."""
    return (_places, _place, _library_files, is_library_file, frame_running, APP_CALLER_REACH, frames_by_codes)


frames_by_codes = {}
"""A Site class's ``hooked_frame`` -> the code objects it looks for: a hooked frame found as the innermost
frame running one of them (``web.RequestSite``'s hand-overs). The C accelerator walks to it itself; the
Python ``hooked_frame`` stays the reference and must do just that."""


def _place(frame):
    """(code, Caller, (caller, caller) or None for library code) of the line ``frame`` runs.

    A program makes its calls from few places: each place's Caller is made once, and the
    (caller, caller) answer of an application line is shared by every call made there.
    """
    code = frame.f_code
    place = (id(code), frame.f_lasti)
    known = _places.get(place)
    if known is None or known[0] is not code:  # the code object is kept in the entry: its id is not reused
        caller = _caller_at(frame)
        known = (code, caller, None if is_library_file(caller[0]) else (caller, caller))
        if len(_places) < 10_000:
            _places[place] = known
    return known


def _first_app_frame_in_python(frame, library_files, is_library, reach):
    """The first frame from ``frame`` outwards in the application's code, at most ``reach`` frames out."""
    for _ in range(reach):
        if frame is None:
            break
        filename = frame.f_code.co_filename
        library = library_files.get(filename)
        if library is None:
            library = is_library(filename)
        if not library:
            return frame
        frame = frame.f_back
    return None


_first_app_frame = accel.speedups.first_app_frame if accel.ACTIVE else _first_app_frame_in_python


def frame_running(site, frame):
    """The innermost frame, from ``frame`` outwards, that runs ``site.code`` (``Site.hooked_frame``)."""
    code = site.code
    while frame is not None and frame.f_code is not code:
        frame = frame.f_back
    return frame


def _caller_frame(call):
    site = call.site
    if site.code is not None:
        frame = site.hooked_frame(_originals.getframe(1))
        frame = frame.f_back if frame is not None else None
    else:  # a C wrapper has no frame: it kept its caller's
        frame = call._frame
    return _past_stand_ins(frame)


def _past_stand_ins(frame):
    stand_ins = _state.stand_ins
    while frame is not None and stand_ins and id(frame.f_globals) in stand_ins:
        frame = frame.f_back  # hookwise's Python version of a C method: the program called that
    return frame


def _caller_at(frame):
    code = frame.f_code
    return Caller(code.co_filename, frame.f_lineno, getattr(code, "co_qualname", code.co_name))


# Decided by prefix and substring alone: os.path may be hooked, and this runs inside callbacks.
_STDLIB = _os.path.dirname(_os.__file__) + _os.sep
_LIBRARY_PREFIXES = (_STDLIB, "<frozen ") + own.DIRECTORIES
_PACKAGE_DIRECTORIES = (_os.sep + "site-packages" + _os.sep, _os.sep + "dist-packages" + _os.sep)
_library_files = {}  # filename -> True for library code (a bounded set: the program's files)
_places = {}  # (id(code), instruction offset) -> (code, Caller, (caller, caller) or None for library code)
_NO_CALLERS = (None, None)


def is_library_file(filename):
    """True for the standard library, an installed package, or hookwise; False for the application."""
    known = _library_files.get(filename)
    if known is None:
        known = _library_files[filename] = (
            filename.startswith(_LIBRARY_PREFIXES)
            or filename in own.FILES
            or any(part in filename for part in _PACKAGE_DIRECTORIES)
        )
    return known


def task_of(call):
    if "asyncio" not in _sys_modules:  # no event loop without asyncio: the common case, without another frame
        return None
    return _state.current_task_name()


def request_id_of(call):
    """The ``call_id`` of the request served in this context (``hookwise.web``), or None.

    A contextvar: the thread that serves the request, and the asyncio tasks
    its handler awaits or creates, which copy the context. The request's own
    call is not made while it is served: None.
    """
    request = _state.current_request.get()
    if request is None or request.call is call:
        return None
    return request.call_id


# -- the pure-Python record ------------------------------------------------------


class PurePythonCall:
    """One call of a hooked function (made by ``new_pure_call``: the class has no ``__init__``)."""

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
        "_app_caller",
        "_task",
        "_request_id",
        "_thread_name",
        "_wall_offset",  # set when a wall-clock time is first read (no cost on calls nobody times)
        "_overhead_at_start",  # hookwise's own time on the thread before the call (_state.overhead)
        "overhead_ns",
    )

    _frame = None

    target = property(lambda self: self.site.target, doc="``module:qualname`` of the function (where it is defined).")
    module = property(lambda self: self.site.module)
    qualname = property(lambda self: self.site.qualname)
    kind = property(lambda self: self.site.kind, doc="'function', 'generator', 'coroutine', 'async_generator' or 'builtin'.")
    def _wall_offset_ns(self):
        # read when first asked, then kept: end_ns - start_ns is the duration exactly
        try:
            return self._wall_offset
        except AttributeError:
            self._wall_offset = wall_offset_ns()
            return self._wall_offset

    start_ns = property(lambda self: self._wall_offset_ns() + self.perf_ns, doc="Wall-clock time of the start, in ns.")
    program_ns = property(lambda self: self.perf_ns - self._overhead_at_start,
                          doc="The start on the thread's program clock: ``clock_ns()`` less hookwise's own time "
                              "on the thread before the call. Timelines place calls by it.")
    end_ns = property(lambda self: None if self.duration_ns is None
                      else self._wall_offset_ns() + self.perf_ns + self.duration_ns + self.overhead_ns,
                      doc="Wall-clock time of the end, in ns (``duration_ns`` leaves hookwise's own time out).")
    done = property(lambda self: self.duration_ns is not None)
    args = property(args_of, doc=args_of.__doc__)
    kwargs = property(kwargs_of, doc=kwargs_of.__doc__)
    arguments = property(arguments_of, doc=arguments_of.__doc__)
    changed_arguments = property(changed_arguments_of, doc=changed_arguments_of.__doc__)

    @property
    def thread_name(self):
        if self._thread_name is None:
            self._thread_name = _state.thread_name(self.thread_id)
        return self._thread_name

    @property
    def caller(self):
        """``Caller(file, line, function)`` of the code that made the call, or None."""
        if self._caller is _MISSING:
            self._read_moment("caller")
        return self._caller

    @property
    def app_caller(self):
        """``Caller`` of the application's own line that led to the call (see ``callers_of``), or None."""
        if self._app_caller is _MISSING:
            self._read_moment("app_caller")
        return self._app_caller

    @property
    def task(self):
        """Name of the asyncio task that made the call, or None outside of one."""
        if self._task is _MISSING:
            self._read_moment("task")
        return self._task

    @property
    def request_id(self):
        """``call_id`` of the request (``web:request``) being served when the call was made, or None."""
        if self._request_id is _MISSING:
            self._read_moment("request_id")
        return self._request_id

    def _read_moment(self, name):
        # caller, app_caller, task and request_id are known only while the call is reported; kept once read
        if _state.busy_here() is not self:
            raise RuntimeError(_too_late(name))
        if name == "task":
            self._task = task_of(self)
        elif name == "request_id":
            self._request_id = request_id_of(self)
        else:
            self._caller, self._app_caller = callers_of(self)

    def __repr__(self):
        state = "running" if self.duration_ns is None else ("raised" if self.exception is not None else "returned")
        return f"<Call #{self.call_id} {self.target} {state}>"


def _too_late(name):
    # the same words as the C type's (hookwise/_speedups.c, call_cached_moment)
    return (f"Call.{name} is only known while a listener handles the call: read it in "
            "start(), end() or error() (once read, it is kept)")


def new_pure_call(site, values, call_id, thread_id, perf_ns, overhead_at_start=0):
    """A running PurePythonCall.

    The class has no ``__init__``: one would run in a frame entered from C
    (``type.__call__`` cannot inline it before 3.13), which on 3.12 was a fifth
    of a pure-Python hooked call with a no-op listener. Here the fields are
    filled in this function's own frame instead.
    """
    call = PurePythonCall()
    call.site = site
    call.values = values
    call.call_id = call_id
    call.thread_id = thread_id
    call.perf_ns = perf_ns
    call.pid = _state.pid
    call.duration_ns = None
    call.overhead_ns = None
    call._overhead_at_start = overhead_at_start
    call.result = None
    call.exception = None
    call._caller = _MISSING
    call._app_caller = _MISSING
    call._task = _MISSING
    call._request_id = _MISSING
    call._thread_name = None
    return call


Call = accel.speedups.Call if accel.ACTIVE else PurePythonCall
