"""The dispatch runtime: what instrumented code calls, and who hears about it.

Each hooked function has one ``Site``. Rewritten code reaches it through a
constant and calls ``site.start(*values)`` on entry, ``site.end(call, result)``
on return and ``site.error(call)`` when an exception leaves the function;
attribute-replacement wrappers call the same three methods. ``site.on`` is
True when some listener wants the function and None otherwise, and then the
injected code does no call at all: ``call = site.on and site.start(...)``
leaves None in ``call``, which ``finally`` tests with ``is not None`` (one
instruction fewer than ``start(...) if on else None`` on 3.10 and 3.11).

Guarantees, each kept here and nowhere else:
- a listener exception never reaches the program; each failing listener is
  reported once on stderr;
- while listeners run on a thread, hooked calls on that thread report nothing
  (a listener that calls hooked code does not recurse), and a call whose start
  was not reported never reports an end;
- ``Blocked`` raised by a ``start`` listener refuses the call: every listener
  still sees the start, then the error, and the caller gets the exception;
- ``GeneratorExit`` ends a generator or coroutine normally (``end`` with None).
"""

import itertools
import types

from . import _originals, _state, accel, report, semantics
from .call import (args_of, arguments_of, callers_in_c, callers_of, changed_arguments_of, frame_running, kwargs_of,
                   new_pure_call, request_id_of, task_of)
from .listener import Blocked, Listener

BUILTIN = "builtin"
_GENERATOR_LIKE = frozenset(("generator", "coroutine", "async_generator"))

_perf_counter_ns = _originals.perf_counter_ns
_get_ident = _originals.get_ident
_exc_info = _originals.exc_info
_busy = _state.busy
_overhead = _state.overhead
_next_call_id = itertools.count(1).__next__


class PurePythonSiteBase:
    """The hot path in Python: the reference for ``hookwise._speedups.SiteBase``."""

    __slots__ = ("on", "_starts", "_ends", "_errors", "_generator_like")

    def __init__(self):
        self._set_dispatch(False, (), (), (), False)

    def _set_dispatch(self, on, starts, ends, errors, generator_like):
        self._starts, self._ends, self._errors = starts, ends, errors
        self._generator_like = generator_like
        self.on = True if on else None

    def start(self, *values):
        """Entry: make the Call and tell the listeners; None when the call is not reported.

        ``values`` are the argument values in the order of the site's params.
        """
        began = _perf_counter_ns()  # first: the rest of this is hookwise's own time
        thread_id = _get_ident()
        if thread_id in _busy:
            return None
        before = _overhead.get(thread_id, 0)
        call = new_pure_call(self, values, _next_call_id(), thread_id, began, before)
        if not self._starts:
            _overhead[thread_id] = before + _perf_counter_ns() - began
            return call
        blocked = None
        _busy[thread_id] = call
        try:
            for listener_start in self._starts:
                try:
                    listener_start(call)
                except Blocked as exc:
                    if blocked is None:
                        blocked = exc
                except Exception as exc:
                    _listener_failed(listener_start, exc)
        finally:
            _busy.pop(thread_id, None)
            _overhead[thread_id] = before + _perf_counter_ns() - began
        if blocked is not None:
            blocked.__traceback__ = None  # the caller gets it as if the call raised it: no listener frames
            self._report_error(call, blocked)
            raise blocked
        return call

    def end(self, call, result):
        ended = _perf_counter_ns()  # first, and the overhead is counted last: see _finish
        _finish(call, ended)
        call.result = result
        if self._ends:
            _dispatch(self._ends, call, result)
        thread_id = _get_ident()
        _overhead[thread_id] = _overhead.get(thread_id, 0) + _perf_counter_ns() - ended

    def error(self, call):
        """Called from the hooked function's ``except`` block; always returns None."""
        ended = _perf_counter_ns()
        exc = _exc_info()[1]
        if self._generator_like and isinstance(exc, GeneratorExit):
            self.end(call, None)
        else:
            self._report_error(call, exc, ended)
        return None

    def _report_error(self, call, exc, ended=None):
        if ended is None:
            ended = _perf_counter_ns()
        _finish(call, ended)
        call.exception = exc
        if self._errors:
            _dispatch(self._errors, call, exc)
        thread_id = _get_ident()
        _overhead[thread_id] = _overhead.get(thread_id, 0) + _perf_counter_ns() - ended


def _finish(call, ended):
    """The call ended at ``ended``: its duration without hookwise's own time inside it.

    Inside it: what this thread's hookwise time (``_state.overhead``) grew by since the call
    started: its own start listeners, and all of each hooked call it made. The callers of this
    read the clock first thing and add their own time to the thread's last thing, so that little
    of hookwise's work goes unmeasured. A call ending on another thread than it began on (a
    generator handed over) cannot tell which of that thread's time was inside it.
    """
    thread_id = _get_ident()
    span = ended - call.perf_ns
    inside = _overhead.get(thread_id, 0) - call._overhead_at_start if thread_id == call.thread_id else 0
    inside = 0 if inside < 0 else span if inside > span else inside
    call.overhead_ns = inside
    call.duration_ns = span - inside


def _dispatch(methods, call, outcome):
    """Run ``method(call, outcome)`` for each end/error listener; failures are reported, not raised."""
    thread_id = _get_ident()  # not the call's: a generator may be finished on another thread
    previous = _busy.get(thread_id)
    _busy[thread_id] = call
    try:
        for method in methods:
            try:
                method(call, outcome)
            except Exception as exc:
                _listener_failed(method, exc)
    finally:
        if previous is None:
            _busy.pop(thread_id, None)
        else:
            _busy[thread_id] = previous


class Site(accel.speedups.SiteBase if accel.ACTIVE else PurePythonSiteBase):
    """One hooked function: its identity, its listeners and the hot-path entry points.

    ``start``/``end``/``error`` and ``on`` come from the base class: C when the
    accelerator is active, ``PurePythonSiteBase`` otherwise.
    """

    __slots__ = ("target", "module", "qualname", "kind", "params", "code", "original", "listeners", "semantic")

    def __init__(self, module, qualname, kind, params, listeners=(), original=None):
        super().__init__()
        self.module = module
        self.qualname = qualname
        self.target = f"{module}:{qualname}"
        self.kind = kind
        self.params = params  # signature layout; None: values are (args, kwargs)
        self.code = None  # code object whose frames are this function's calls
        self.original = original  # the replaced callable (attribute replacement only)
        self.semantic = semantics.role_of(self.target)  # what its calls mean (an SQL statement), or None
        self.set_listeners(listeners)

    def set_listeners(self, listeners):
        self.listeners = tuple(listeners)
        self._set_dispatch(
            bool(self.listeners),
            _methods(self.listeners, "start"),
            _methods(self.listeners, "end"),
            _methods(self.listeners, "error"),
            self.kind in _GENERATOR_LIKE,
        )

    # -- cold path ----------------------------------------------------------
    hooked_frame = frame_running  # the innermost frame, from the one given outwards, that runs this function

    def bind_arguments(self, args, kwargs):
        """Arguments by parameter name for a replaced callable (from its signature)."""
        try:
            import inspect

            bound = inspect.signature(self.original).bind(*args, **kwargs)
            return dict(bound.arguments)
        except Exception:
            named = {f"arg{index}": value for index, value in enumerate(args)}
            named.update(kwargs)
            return named

    def __repr__(self):
        return f"<Site {self.target} ({self.kind}){' on' if self.on else ''}>"

    def __reduce__(self):
        """Pickled (inside a function pickled by value, as cloudpickle does) as a site that is off.

        The unpickled function runs unhooked, in any process, with or without
        hookwise (a standard-library object stands for the site): its injected
        code reads ``on`` and, finding it None, calls nothing.
        """
        return (types.SimpleNamespace, (), {"on": None})


class StatementSite(Site):
    """The site of an SQL statement's call (or an outgoing request's): one made inside another reported
    one of the same meaning is its part.

    A driver's ``executemany`` runs its ``execute`` once per row or batch
    (PyMySQL, mysqlclient, mysql-connector), and SQLAlchemy's ``do_execute``
    runs the driver's: the outer call is the statement the program asked for
    (and the inner ones may have its parameters spliced into their text), so
    only it is reported (``hookwise.semantics.inside_a_statement``). So for
    ``urllib.request``, which sends through ``http.client``.
    Rewritten functions and pure-Python wrappers call ``start``; the C
    wrapper is given the same test as its ``skip`` (loader/wrappers.py).
    """

    __slots__ = ()

    def start(self, *values):
        # 0: here, 1: the hooked function's frame (or the pure wrapper's), 2: its caller
        if semantics.inside_a_statement(_originals.getframe(2), self.semantic.name):
            return None
        return Site.start(self, *values)


_OWNERS = {}  # id(listener method) -> its listener: methods are held by the sites, so ids stay theirs


def _methods(listeners, name):
    """The listeners' ``name`` methods, without the no-ops inherited from ``Listener``.

    A Python method called from the hot path costs a frame even when it does
    nothing: a listener that subclasses ``Listener`` and defines only ``end``
    pays for ``end`` alone.
    """
    inherited_noop = getattr(Listener, name)
    found = []
    for listener in listeners:
        method = getattr(listener, name, None)
        if getattr(method, "__func__", None) is inherited_noop:
            continue
        if callable(method):
            found.append(method)
            _OWNERS[id(method)] = listener
    return tuple(found)


def _listener_failed(method, exc):
    """Say once per listener (whichever of its methods failed first) that it failed."""
    listener = _OWNERS.get(id(method), getattr(method, "__self__", method))
    where = ""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        where = f" at {tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}"
    name = getattr(method, "__name__", "?")
    try:
        text = str(exc)
    except Exception:  # a listener's own exception that cannot describe itself must not reach the program
        text = "(its message could not be read)"
    report.warn_once(
        ("listener", id(listener)),
        f"listener {_describe(listener)} failed in {name}(): {type(exc).__name__}: {text}{where}"
        " (the program goes on; further failures of this listener are not reported)",
    )


def _describe(listener):
    if isinstance(listener, types.ModuleType):
        return listener.__name__
    kind = type(listener)
    return f"{kind.__module__}.{kind.__qualname__}"


# -- the registry: every site of this process and the listeners they get ----


class Registry:
    """Which listeners hear which sites. One per process (``REGISTRY``)."""

    def __init__(self):
        self.sites = []
        self.listeners = []  # hear every hooked call
        self.targets = None  # hookwise.targets.TargetSet
        self.target_listeners = {}  # Target -> listeners that hear only its calls
        self._site_targets = {}  # Site -> the targets that named it

    def configure(self, targets, listeners, target_listeners=None):
        self.targets = targets
        self.listeners = list(listeners)
        self.target_listeners = dict(target_listeners or {})
        for site in self.sites:
            site.set_listeners(self._listeners_for(self._site_targets.get(site, ())))

    def new_site(self, module_names, qualname, kind, params, original=None, extra_targets=()):
        """Create the Site of a function about to be hooked, with its listeners.

        ``module_names[0]`` is the module the function lives in; further names
        are aliases the targets may use (the ``-m`` module run as ``__main__``).
        ``extra_targets`` named the function through an alias of its own.
        """
        matching = self.targets.matching(module_names, qualname) if self.targets is not None else []
        matching += [target for target in extra_targets if target not in matching]
        for target in matching:
            target.matched = True
        kind_of_site = StatementSite if semantics.is_statement(f"{module_names[0]}:{qualname}") else Site
        site = kind_of_site(module_names[0], qualname, kind, params, self._listeners_for(matching), original)
        self.sites.append(site)
        self._site_targets[site] = matching
        return site

    def add_site(self, site, matching):
        """Register a Site made elsewhere (an audit event's), heard by the targets in ``matching``."""
        for target in matching:
            target.matched = True
        site.set_listeners(self._listeners_for(matching))
        self.sites.append(site)
        self._site_targets[site] = list(matching)
        return site

    def targets_of(self, site):
        return list(self._site_targets.get(site, ()))

    def attach(self, site, target):
        """``target`` names ``site`` too (found through another alias): give it its listeners."""
        matching = self._site_targets.setdefault(site, [])
        if target not in matching:
            matching.append(target)
            target.matched = True
            site.set_listeners(self._listeners_for(matching))

    def _listeners_for(self, matching):
        if matching and all(target.private for target in matching):  # only the guard asked for it
            chosen = [listener for listener in self.listeners if getattr(listener, "hears_private_targets", False)]
        else:
            chosen = list(self.listeners)
        for target in matching:
            for listener in self.target_listeners.get(target, ()):
                if listener not in chosen:
                    chosen.append(listener)
        return chosen

    def all_listeners(self):
        seen = list(self.listeners)
        for listeners in self.target_listeners.values():
            seen.extend(listener for listener in listeners if listener not in seen)
        return seen

    def close_listeners(self):
        """Let every listener finish its output; called once at exit.

        Hooked code that a closing listener calls reports nothing: the other
        listeners may be closed already.
        """
        with _state.quiet():
            for listener in self.all_listeners():
                close = getattr(listener, "close", None)
                if callable(close):
                    try:
                        close()
                    except Exception as exc:
                        _listener_failed(close, exc)

    def unmatched_targets(self):
        if self.targets is None:
            return []
        return [target for target in self.targets if not target.matched and not target.quiet]


REGISTRY = Registry()

if accel.ACTIVE:
    accel.speedups.install_methods(Site)  # StatementSite's own start calls Site's
    accel.speedups.configure(
        blocked=Blocked,
        listener_failed=_listener_failed,
        args=args_of,
        kwargs=kwargs_of,
        arguments=arguments_of,
        changed_arguments=changed_arguments_of,
        callers=callers_of,
        callers_c=callers_in_c(),  # its common case, in C, from the same caches
        task=task_of,
        request_id=request_id_of,
        current_request=_state.current_request,
        thread_name=_state.thread_name,
        stand_ins=_state.stand_ins,
        pid=_state.pid,
    )
