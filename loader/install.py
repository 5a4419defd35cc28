"""Install hookwise into this process: the one place that picks an engine per target.

- A target whose module is not imported yet is served by the import hook: the
  module is rewritten when the program imports it.
- A target whose module is already imported (by the interpreter's start-up, by
  ``ast``, by the driver) is served at once by attribute replacement, which
  rewrites Python functions in place when their source is at hand and wraps
  everything else.
- ``__main__`` targets are served by the runner, which compiles the program
  through the same loader.

Wildcard module patterns get both: replacement for the matching modules that
are loaded, the import hook for the ones imported later.
"""

import atexit
import sys

from hookwise import report
from hookwise.runtime import REGISTRY

from . import hook, patch


def engine_for(module_name):
    """'rewrite' for a module still to be imported, 'patch' for a loaded one."""
    return "patch" if module_name in sys.modules else "rewrite"


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
        self.installed = False
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
        sys.meta_path.insert(0, self.finder)
        self._undo.append(self._remove_finder)
        patch.patch_loaded_modules(self.targets, REGISTRY, self._undo)
        self.installed = True
        return self

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
        """At exit, after the program's own atexit handlers: flush listeners, report unmatched targets."""
        atexit.register(self.at_exit)

    def at_exit(self):
        REGISTRY.close_listeners()
        if not self.program_started or self.program_crashed:
            return
        for target in REGISTRY.unmatched_targets():
            module_state = "never imported" if target.module_is_literal and target.module not in sys.modules else None
            detail = f" (module {target.module!r} was never imported)" if module_state else ""
            report.warn(f"target {target.text!r} matched nothing{detail}")
