"""CPython's audit events (PEP 578) as targets: ``audit:EVENT``, shell wildcards allowed.

The interpreter raises an audit event from inside the operation itself
(``socket.connect`` from the C method, ``os.system`` from ``posix.system``,
``open`` from ``io.open``), whoever calls it and however it was reached: a
reference taken before hookwise started, C code calling C code, ``ctypes``.
Each event a target names becomes a call of kind ``audit`` of a Site named
``audit:EVENT``: a start with the event's arguments under the names of the
audit events table (``hookwise.audit_events``), then at once an end. A start
listener that raises ``Blocked`` makes the audited operation raise it.

Costs and rules, kept here:
- an audit hook cannot be removed, so one is added only when an audit target
  exists, at most once per process (``start``); ``stop`` leaves it inert;
- an event that no target names costs the hook one set lookup: names are
  resolved against the targets (wildcards included) the first time they are
  seen, and kept in ``_ignored`` or ``_sites``;
- hookwise's own work raises no event to listeners: events raised while its
  listeners or quiet code run on the thread (the runtime's busy guard), and
  events whose innermost Python frame (past the import system's frames and
  the pure-Python wrappers, which act for their caller) is hookwise's code:
  its runner, its import machinery and bytecode cache, its exit handling.
"""

import os
import sys

from . import _originals, _state, accel, report
from .audit_events import names_for
from .own import is_own_file
from .runtime import REGISTRY, Site

MODULE = "audit"
"""The module part of an audit target: ``audit:socket.connect``."""

KIND = "audit"

_IMPORT_SYSTEM_FILES = frozenset(
    ("<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>", "<frozen zipimport>")
)

# the standard library's directories (``encodings`` is never frozen and always loaded), without site-packages
_STDLIB_PREFIXES = tuple({os.path.dirname(os.path.dirname(sys.modules["encodings"].__file__)) + os.sep})
_SITE_PACKAGES_PREFIXES = tuple(prefix + "site-packages" + os.sep for prefix in _STDLIB_PREFIXES) + tuple(
    prefix + "dist-packages" + os.sep for prefix in _STDLIB_PREFIXES
)

_get_ident = _originals.get_ident
_getframe = _originals.getframe

_ignored = set()  # event names no target names (the hook's one lookup)
_sites = {}  # event name -> its AuditSite; (event name, argument count) for an odd count
_callers = {}  # thread id -> the frame that raised the event being reported there
_file_kinds = {}  # co_filename -> _OWN / _OTHER / _STDLIB / _IMPORT_SYSTEM
_targets = []
_transparent_codes = frozenset()
_live = False
_hook_added = False

_OWN, _OTHER, _STDLIB, _IMPORT_SYSTEM = 0, 1, 2, 3

if accel.ACTIVE:
    _dispatching = accel.speedups.dispatching
    _set_quiet = accel.speedups.set_quiet

    def _busy_here():
        return _dispatching() is not None

    def _enter_quiet():
        _set_quiet(True)

    def _leave_quiet():
        _set_quiet(False)

else:
    _busy = _state.busy
    _QUIET = _state._QUIET

    def _busy_here():
        return _get_ident() in _busy

    def _enter_quiet():
        _busy[_get_ident()] = _QUIET

    def _leave_quiet():
        _busy.pop(_get_ident(), None)


class AuditSite(Site):
    """The Site of one audit event: its calls' caller is the frame that raised the event."""

    __slots__ = ()

    def hooked_frame(self, frame):
        """The frame just inside the event's caller (``callers_of`` reports the next one out)."""
        target = _callers.get(_get_ident())
        if target is None:
            return None
        while frame is not None and frame.f_back is not target:
            frame = frame.f_back
        return frame


def _hookwise_audit_hook(event, args):
    # the whole cost of an event that no target names: one set lookup
    if event in _ignored:
        return
    _report(event, args)


_HOOK_CODE = _hookwise_audit_hook.__code__


def start(targets, transparent_codes=()):
    """Report the events ``targets`` (audit targets) name; the hook is added once per process.

    ``transparent_codes``: code objects of hookwise frames that act for their
    caller (the pure-Python wrappers of attribute replacement).
    """
    global _targets, _transparent_codes, _live, _hook_added
    _targets = list(targets)
    _transparent_codes = frozenset(transparent_codes)
    _ignored.clear()
    _sites.clear()
    _live = bool(_targets)
    if _live and not _hook_added:
        sys.addaudithook(_hookwise_audit_hook)
        _hook_added = True


def stop():
    """Leave the hook inert (it cannot be removed): every event is ignored again."""
    global _live, _targets
    _live = False
    _targets = []
    _sites.clear()


def _report(event, args):
    if not _live:
        _ignored.add(event)
        return
    site = _sites.get(event)
    if (site is not None and site.on is None) or _busy_here():
        return
    thread_id = _get_ident()
    _enter_quiet()  # what this does raises events of its own (reading frames, making the Site)
    try:
        if site is None:
            site = _new_site(event, len(args))
            if site is None or site.on is None:
                return
        frame = _raising_frame(_getframe(2))
        if _is_own_work(frame):
            return
        if len(args) != len(site.params[0]):
            site = _site_for_count(event, len(args))
    except Exception as exc:  # a failure inside hookwise never breaks the audited operation
        report.warn_once(("audit", "failed"), f"audit event {event!r} not reported: {type(exc).__name__}: {exc}")
        return
    finally:
        _leave_quiet()
    _callers[thread_id] = frame
    try:
        call = site.start(*args)  # Blocked from a start listener leaves here: the operation raises it
        if call is not None:
            site.end(call, None)
    finally:
        _callers.pop(thread_id, None)


def _raising_frame(frame):
    """The frame that caused the event: past the import system's frames and hookwise's wrappers."""
    while frame is not None and (frame.f_code in _transparent_codes or _file_kind(frame.f_code) == _IMPORT_SYSTEM):
        frame = frame.f_back
    return frame


def _is_own_work(frame):
    """Whether hookwise's code caused the event raised in ``frame``.

    Outwards from ``frame``, through the standard library's frames (the
    import system's included: what a standard-library module does while
    hookwise imports it, reads a source with ``linecache`` or sets
    ``os.environ`` is hookwise's work), up to the first frame that is the
    program's (a module outside the standard library, or ``__main__``, which
    may be a standard-library module run with ``-m``) or hookwise's.
    """
    transparent = _transparent_codes
    while frame is not None:
        code = frame.f_code
        if code not in transparent:
            kind = _file_kind(code)
            if kind == _OWN:
                return True
            if kind == _OTHER or frame.f_globals.get("__name__") == "__main__":
                return False
        frame = frame.f_back
    return False


def _file_kind(code):
    filename = code.co_filename
    kind = _file_kinds.get(filename)
    if kind is None:
        if filename in _IMPORT_SYSTEM_FILES:
            kind = _IMPORT_SYSTEM
        elif is_own_file(filename):
            kind = _OWN
        elif filename.startswith("<frozen ") or (
            filename.startswith(_STDLIB_PREFIXES) and not filename.startswith(_SITE_PACKAGES_PREFIXES)
        ):
            kind = _STDLIB
        else:
            kind = _OTHER
        _file_kinds[filename] = kind
    return kind


def _new_site(event, count):
    """The Site of a new event name, or None (and the name ignored from now on) if no target names it."""
    matching = [target for target in _targets if target.matches_qualname(event)]
    if not matching:
        _ignored.add(event)
        return None
    site = _make_site(event, count, matching)
    _sites[event] = site
    return site


def _site_for_count(event, count):
    """An event raised with another number of arguments than its first time: a Site of its own."""
    key = (event, count)
    site = _sites.get(key)
    if site is None:
        site = _sites[key] = _make_site(event, count, REGISTRY.targets_of(_sites[event]))
    return site


def _make_site(event, count, matching):
    params = (names_for(event, count), 0, None, (), None)
    site = AuditSite(MODULE, event, KIND, params)
    site.code = _HOOK_CODE  # not None: callers_of asks hooked_frame (see AuditSite)
    return REGISTRY.add_site(site, matching)
