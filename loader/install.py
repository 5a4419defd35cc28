"""Install hookwise into this process; ``Installation.install`` is the one place
that decides which engine serves a target:

- a target whose module is not imported yet is served by the import hook: the
  module is rewritten when the program imports it;
- a target whose module is already imported (by the interpreter's start-up, by
  ``ast``, by the driver, by a listener) is served at once by attribute
  replacement (``loader.patch``), which rewrites Python functions in place when
  their source is at hand and wraps everything else;
- ``__main__`` targets are served by the runner, which compiles the program
  through the same loader.

Wildcard module patterns get both: replacement for the matching modules that
are loaded, the import hook for the ones imported later.
"""

import atexit
import os
import signal
import sys
from _thread import get_ident

from hookwise import _state, report, writes
from hookwise.listeners import ListenerSpecError, resolve
from hookwise.runtime import REGISTRY

from . import audit, hook, patch, web


class Installation:
    """The hooks of one process: settings, the finder, and how to undo it all."""

    def __init__(self, settings, use_cache=True):
        self.settings = settings
        self.targets = settings.targets
        self.use_cache = use_cache
        self.finder = hook.HookwiseFinder(self)
        self._code_settings = settings.code_key()
        self._main_candidates = ()
        self._undo = []
        self.integrations = {}  # module name -> installs what hookwise.web sees in it (loader.web)
        self.installed = False
        self.report_unmatched = True  # children leave it to their parent run
        self._closed = False
        self._closing = False  # close_listeners is running
        self._then = None  # what to run once it is done (see close_listeners)
        self.program_started = False  # set by the runner: unmatched targets only mean something then
        self.program_crashed = False  # an uncaught exception: its traceback stays the last word

    # -- questions the import hook asks ----------------------------------------
    def cache_key(self, module_names):
        return hook.cache_key(self._code_settings, module_names)

    def expect_main_module(self, name):
        """The program runs module ``name`` with -m: its code is ``__main__``'s."""
        self._main_candidates = (name, name + ".__main__")

    def is_main_candidate(self, fullname):
        return fullname in self._main_candidates

    def take_main(self, fullname):
        """True once: for the first non-package spec of the -m module."""
        if fullname in self._main_candidates:
            self._main_candidates = ()
            return True
        return False

    # -- install / uninstall -----------------------------------------------------
    def install(self, listeners, target_listeners=None):
        if self.installed:
            return self
        REGISTRY.configure(self.targets, listeners, target_listeners)
        # modules imported from now on: the import hook; those loaded already: replacement
        sys.meta_path.insert(0, self.finder)
        self._undo.append(self._remove_finder)
        patch.patch_loaded_modules(self.targets, REGISTRY, self._undo)
        audit.install(self.targets, self._undo)  # audit:EVENT targets: CPython's audit hook
        web.install(self, self._undo)  # web:request targets: the servers' and frameworks' points
        if self.settings.strict:
            self._refuse_unmatched_in_loaded_modules()
        self.installed = True
        with _state.quiet():  # the pure-Python runtime's GIL-holding writes, loaded once the hooks are in place
            writes.prepare()
        return self

    def _refuse_unmatched_in_loaded_modules(self):
        """--strict: a literal target whose module is loaded and holds nothing it names stops the run now."""
        for target in self.targets:
            module = sys.modules.get(target.module) if target.module_is_literal else None
            if module is not None and not target.matched and not target.quiet and target.qualname_is_literal:
                self.uninstall()
                raise patch.PatchError(f"--strict: {patch.unmatched_message(target, module)}")

    def serve_imported(self, module, names, rewritten=False):
        """A module a target can name has just run its code: serve what the rewrite did not.

        The same attribute replacement as for a module loaded before
        installation (``patch.patch_module``), then a word on every literal
        target that names this module and matched nothing in it. Called by the
        import hook's loaders before the importer sees the module; a failure
        here is hookwise's and never breaks the import.
        """
        if not self.installed:
            return
        refused = []
        try:
            refused = patch.patch_module(module, names, self.targets, REGISTRY, self._undo, rewritten)
        except Exception as exc:
            report.warn_once(("serve", module.__name__),
                             f"could not hook the targets of module {module.__name__!r}: {type(exc).__name__}: {exc}")
        if self.integrations:
            web.serve(self, module, self._undo)
        if self.settings.strict:
            self._fail_the_import(module, names, refused)
        for target, exc in refused:  # said once; the "matches nothing" line would contradict it
            report.warn_once(("unmatched", target.text), str(exc))
        self._report_unmatched_in(module, names)

    def _unmatched_in(self, module, names):
        return [target for target in self.targets
                if target.module_is_literal and target.module in names and not target.matched and not target.quiet]

    def _report_unmatched_in(self, module, names):
        for target in self._unmatched_in(module, names):
            report.warn_once(("unmatched", target.text), patch.unmatched_message(target, module))

    def _fail_the_import(self, module, names, refused):
        """--strict: the import of a module whose target cannot be served fails, naming the target.

        A guard that silently vanishes is worse than none: the program stops
        at the import rather than running unguarded.
        """
        reasons = [str(exc) for _, exc in refused]
        refused_targets = {target for target, _ in refused}
        reasons += [patch.unmatched_message(target, module) for target in self._unmatched_in(module, names)
                    if target not in refused_targets and target.qualname_is_literal]
        if reasons:
            raise ImportError(f"hookwise --strict: {'; '.join(reasons)}", name=module.__name__)

    def uninstall(self):
        """Undo everything, newest first (tests and the pytest plugin use this)."""
        while self._undo:
            restore = self._undo.pop()
            try:
                restore()
            except Exception as exc:
                report.warn(f"could not undo a hook: {type(exc).__name__}: {exc}")
        patch.forget_wrappers()
        self.installed = False

    def _remove_finder(self):
        try:
            sys.meta_path.remove(self.finder)
        except ValueError:
            pass

    # -- exit -----------------------------------------------------------------
    def register_exit(self):
        """Let listeners finish their output however the process ends.

        - at exit, after the program's own atexit handlers (normal end,
          ``sys.exit``, an uncaught exception, SIGINT's KeyboardInterrupt);
        - on SIGTERM, when its handler is the default one: the listeners finish,
          then the default action ends the process as it would have;
        - before ``os._exit`` (how multiprocessing's forked children end);
        - after ``fork``, in the child: listeners drop what they hold for the
          parent (``after_fork_in_child``), so nothing is written twice.

        Once all of these are in place, listeners that can gather their
        output in a buffer (``may_buffer``: jsonl) are told they may: they
        are also flushed before ``fork`` and before ``exec`` replaces the
        process. Where SIGTERM would end the process without them
        (``hookwise._sigterm_guard`` is not built), they are not told.
        """
        atexit.register(self.at_exit)
        _finish_before_os_exit(self.close_listeners, self._undo)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(before=self.flush_listeners, after_in_child=_listeners_after_fork)
        covered = _finish_on_sigterm(self.close_listeners)  # after the fork hook above: see _hold_sigterm_across_fork
        buffering = [listener for listener in REGISTRY.all_listeners()
                     if callable(getattr(listener, "may_buffer", None))]
        if covered and buffering:
            _flush_before_exec(self.flush_listeners, self._undo)
            for listener in buffering:
                listener.may_buffer()

    def flush_listeners(self):
        """Let the listeners that buffer (``may_buffer``) write what waits: before ``fork`` and ``exec``.

        Never raises. A user's listener is asked only if it takes part in
        that protocol: its own ``flush`` may mean anything else.
        """
        if self._closed:
            return
        with _state.quiet():
            for listener in REGISTRY.all_listeners():
                flush = getattr(listener, "flush", None)
                if callable(flush) and callable(getattr(listener, "may_buffer", None)):
                    try:
                        flush()
                    except Exception as exc:
                        report.warn_once(("flush", id(listener)), f"listener {type(listener).__name__} failed to "
                                         f"write its buffer: {type(exc).__name__}: {exc}")

    def close_listeners(self, then=None):
        """Close every listener, once; then run ``then`` (the SIGTERM handler's way to die).

        A signal handler can interrupt a close under way (SIGTERM while
        ``os._exit`` closes the listeners: a multiprocessing pool being
        terminated): it must not end the process before the listeners are
        closed, so its ``then`` runs when the interrupted close is done.
        """
        if self._closing:
            self._then = then
            return
        if not self._closed:
            self._closed = True
            self._closing = True
            try:
                REGISTRY.close_listeners()
            finally:
                self._closing = False
        then, self._then = then or self._then, None
        if then is not None:
            then()

    def at_exit(self):
        self.close_listeners()
        if not self.program_started or self.program_crashed or not self.report_unmatched:
            return
        for message in self.unmatched_messages():
            report.warn(message)

    def unmatched_messages(self):
        """One line per target that matched nothing (yet), saying why where it is known."""
        messages = []
        for target in REGISTRY.unmatched_targets():
            never_imported = target.module_is_literal and target.module not in sys.modules
            detail = f" (module {target.module!r} was never imported)" if never_imported else ""
            if target in self.targets.audit_targets:
                detail = audit.UNMATCHED_DETAIL
            elif target in self.targets.web_targets:
                detail = web.UNMATCHED_DETAIL
            messages.append(f"target {target.text!r} matched nothing{detail}")
        return messages


# -- listeners ------------------------------------------------------------------


def create_listeners(settings, tolerate_failures=False):
    """(listeners for every target, {target: its own listeners}); the same spec gives the same object.

    A child process tolerates a listener it cannot create (reported once);
    the driver stops with the error instead, before the program starts.
    """
    cache = {}

    def make(spec):
        try:
            return [resolve(spec, settings, cache)]
        except ListenerSpecError as exc:
            if not tolerate_failures:
                raise
            report.warn_once(("listener", spec), f"listener {spec!r} left out in process {os.getpid()}: {exc}")
            return []

    listeners = [listener for spec in settings.listener_specs for listener in make(spec)]
    if settings.guard is not None:  # it hears every target, its own included (hookwise.guard)
        from hookwise.guard import Guard

        listeners.append(Guard(settings.guard, settings.render))
    per_target = {}
    for target in settings.targets:
        if target.listeners:
            per_target[target] = [listener for spec in target.listeners for listener in make(spec)]
    return listeners, per_target


def hide_own_top_level_modules():
    """Let the program import its own ``loader`` or ``rewriter``: hookwise's are only held, not named."""
    from hookwise.engine import hide_engine

    hide_engine()


def _listeners_after_fork():
    # quiet: what the listeners do here (open their own files, read the parent's recording) is not the
    # program's, even when the fork was made inside a hooked call
    with _state.quiet():
        for listener in REGISTRY.all_listeners():
            after_fork = getattr(listener, "after_fork_in_child", None)
            if callable(after_fork):
                try:
                    after_fork()
                except Exception as exc:
                    report.warn(f"listener {type(listener).__name__} failed after fork: {type(exc).__name__}: {exc}")


SIGTERM_START_MS = 200
"""How long the Python SIGTERM handler may take to start before the watchdog ends the process."""
SIGTERM_FINISH_MS = 5000
"""How long, once started, it may take to finish the listeners."""


def _finish_on_sigterm(finish):
    """Finish the listeners on SIGTERM when the program left its default action in place.

    Only with the watchdog of ``hookwise._sigterm_guard``: without it, a
    SIGTERM that CPython cannot hand to the Python handler in time leaves a
    process alive that the default action would have ended (see that module).
    Where the guard is not built, SIGTERM keeps its default action and only the
    listeners that write as they go (jsonl, console) have the whole run.
    Known, documented cost: ``signal.getsignal(SIGTERM)`` shows this handler.
    Returns whether SIGTERM leaves the listeners time to finish: this handler
    is in place, or SIGTERM was not the default action to begin with (ignored).
    """
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return True
    guard = _sigterm_guard()
    if guard is None:
        return False

    def die():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)  # die of it, as without hookwise

    def on_sigterm(signum, frame):
        guard.mark_handler_started()
        finish(then=die)  # once the listeners are closed, also when this handler interrupted their close

    try:
        signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread: nothing to do from here
        return False
    try:
        guard.install(SIGTERM_START_MS, SIGTERM_FINISH_MS)
    except OSError as exc:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        report.warn_once("sigterm-guard", f"listeners will not finish on SIGTERM: {exc}")
        return False
    _hold_sigterm_across_fork(guard)
    return True


def _sigterm_guard():
    try:
        from hookwise import _sigterm_guard
    except ImportError:  # not built here (no compiler)
        return None
    return _sigterm_guard if _sigterm_guard.AVAILABLE else None


def _hold_sigterm_across_fork(guard):
    """Keep a SIGTERM sent to a just-forked child from being lost.

    Python drops the signals a new child received before it was ready (so
    they are not handled twice), and the child has no watchdog thread until
    it starts its own. So the forking thread blocks SIGTERM around ``fork``:
    the child gets it once its watchdog runs, and this child hook, registered
    after the listeners' own, lets the handler see a child whose listeners
    are already reset.
    """
    if not (hasattr(os, "register_at_fork") and hasattr(signal, "pthread_sigmask")):
        return
    saved = {}  # thread id -> its mask before the fork: threads may fork at the same time

    def before():
        saved[get_ident()] = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})

    def after_in_parent():
        mask = saved.pop(get_ident(), None)  # in the child, the forking thread keeps its id
        if mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def after_in_child():
        try:
            guard.after_fork_in_child()
        except OSError as exc:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            report.warn_once("sigterm-guard", f"listeners will not finish on SIGTERM in process {os.getpid()}: {exc}")
        after_in_parent()

    os.register_at_fork(before=before, after_in_parent=after_in_parent, after_in_child=after_in_child)


def _finish_before_os_exit(finish, undo):
    """``os._exit`` skips atexit: finish the listeners first, wherever it is called from."""
    import posix

    original = posix._exit

    def _exit(status):
        try:
            finish()
        finally:  # whatever a listener does, the process ends as asked
            original(status)

    _exit.__wrapped__ = original
    for module in (os, posix):
        if module.__dict__.get("_exit") is original:
            setattr(module, "_exit", _exit)
            undo.append(lambda module=module: setattr(module, "_exit", original))


def _flush_before_exec(flush, undo):
    """``os.execv`` and ``os.execve`` (every ``os.exec*`` ends in one of them) replace the process
    without exit handlers: let buffering listeners write first. A failed exec returns to the program
    as before."""
    import posix

    for name in ("execv", "execve"):
        original = getattr(posix, name, None)
        if original is None:
            continue

        def replace(*args, _original=original, **kwargs):
            flush()
            return _original(*args, **kwargs)

        replace.__name__ = replace.__qualname__ = name
        replace.__doc__ = original.__doc__
        replace.__wrapped__ = original
        for module in (os, posix):
            if module.__dict__.get(name) is original:
                setattr(module, name, replace)
                undo.append(lambda module=module, name=name, original=original: setattr(module, name, original))

