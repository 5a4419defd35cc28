"""The main script again, in multiprocessing's spawn and forkserver children.

Such a child starts as ``python -c "from multiprocessing.spawn import ..."``;
multiprocessing then runs the parent's main script once more, as module
``__mp_main__``, so that the functions the parent sends by name exist there.
It runs it with ``runpy.run_path``, which compiles the file itself: no import
hook sees it, and hooks on ``__main__`` would be lost in the child. So, only
while multiprocessing re-runs the main script, ``runpy.run_path`` gives it
the rewritten code, its sites named ``__main__`` as in the parent. (A main
module run with ``-m`` is re-imported through the import system, where the
finder serves it once it expects that name.)
"""

import runpy
import sys

from hookwise import _originals

from .hook import HookwiseLoader  # at import: once the engine is hidden, "from ." would find another loader


def wants_it(settings):
    """Whether this child is multiprocessing's and ``__main__`` has targets."""
    command = " ".join(getattr(sys, "orig_argv", ()))
    return "multiprocessing" in command and settings.targets.selector(("__main__",)) is not None


def install(installation):
    from multiprocessing import spawn

    rerun_path, rerun_name = spawn._fixup_main_from_path, spawn._fixup_main_from_name

    def _fixup_main_from_path(main_path):
        plain_run_path = runpy.run_path
        runpy.run_path = lambda path_name, init_globals=None, run_name=None: _run_path(
            plain_run_path, installation, path_name, init_globals, run_name)
        try:
            return rerun_path(main_path)
        finally:
            runpy.run_path = plain_run_path

    def _fixup_main_from_name(mod_name):
        installation.expect_main_module(mod_name)
        return rerun_name(mod_name)

    _fixup_main_from_path.__wrapped__ = rerun_path
    _fixup_main_from_name.__wrapped__ = rerun_name
    spawn._fixup_main_from_path = _fixup_main_from_path
    spawn._fixup_main_from_name = _fixup_main_from_name


def _run_path(plain_run_path, installation, path_name, init_globals, run_name):
    code = None
    if isinstance(path_name, str) and path_name.endswith(".py"):
        try:
            with _originals.open(path_name, "rb") as handle:
                source = handle.read()
        except OSError:
            source = None
        if source is not None:
            loader = HookwiseLoader("__main__", path_name, installation, ("__main__",))
            code = loader.instrumented_code(source, path_name)
    if code is None:  # not a plain script, or one that cannot be rewritten: as multiprocessing would
        return plain_run_path(path_name, init_globals, run_name)
    return runpy._run_module_code(code, init_globals, run_name, pkg_name="", script_name=path_name)
