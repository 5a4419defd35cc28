"""Python child processes of a hookwise run get the same hooks and listeners.

The way ``ddtrace-run`` and ``opentelemetry-instrument`` do it: the driver puts
``loader/bootstrap`` (which holds a ``sitecustomize.py``) in front of
``PYTHONPATH`` and the settings in ``HOOKWISE_SETTINGS``. Every Python process
started from the program with that environment (``subprocess`` running
``sys.executable``, ``os.system("python ...")``, ``multiprocessing`` with spawn
or forkserver) imports the bootstrap at start-up, installs the hooks, removes
the bootstrap directory from its ``sys.path`` and runs the ``sitecustomize``
the user already had. Processes made by ``fork`` inherit the hooks directly.

``--no-follow-children`` (or ``follow_children = false``) turns this off.
"""

import os
import sys

from hookwise import own

SETTINGS_VARIABLE = "HOOKWISE_SETTINGS"
"""Environment variable: the parent run's settings, as a Python literal (never executed)."""

ROOT_VARIABLE = "HOOKWISE_ROOT"
"""Environment variable: the directory that holds hookwise's packages, for the bootstrap."""

RERUN_VARIABLE = "HOOKWISE_RERUN"
"""Environment variable: the pid of a child that re-runs itself under the driver (see below)."""

BOOTSTRAP_DIRECTORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bootstrap")
PACKAGES_ROOT = own.ROOT


def prepare(settings):
    """Set this process's environment so that Python children run under hookwise too."""
    if not os.path.isfile(os.path.join(BOOTSTRAP_DIRECTORY, "sitecustomize.py")):
        from hookwise import report

        # an installed copy that lost its bootstrap: children would run unhooked without a word
        report.warn(f"child processes will run without hooks: {BOOTSTRAP_DIRECTORY} holds no sitecustomize.py "
                    "(reinstall hookwise)")
        return
    os.environ[SETTINGS_VARIABLE] = settings.for_children()
    os.environ[ROOT_VARIABLE] = PACKAGES_ROOT
    current = os.environ.get("PYTHONPATH")
    # empty entries stay: in PYTHONPATH an empty entry is the working directory
    entries = [entry for entry in current.split(os.pathsep) if entry != BOOTSTRAP_DIRECTORY] if current else []
    os.environ["PYTHONPATH"] = os.pathsep.join([BOOTSTRAP_DIRECTORY, *entries])


def start_in_child(settings_text):
    """Install hookwise in a child process from its parent's settings; never raises.

    A child that runs a script (``python script.py``) while the settings hook
    ``__main__`` re-runs itself under the driver: Python compiles a script
    before any hook can see it, and the driver is what rewrites ``__main__``.
    A child run with ``-m module`` is served by the import hook directly.
    """
    from hookwise import report
    from hookwise.config import settings_from_text

    from .install import Installation, create_listeners, hide_own_top_level_modules

    if os.environ.get(RERUN_VARIABLE) == str(os.getpid()):
        del os.environ[RERUN_VARIABLE]  # this is the re-run: the driver installs everything
        return
    try:
        settings = settings_from_text(settings_text)
        mode, main = how_this_process_runs()
        if mode == "script" and settings.targets.selector(("__main__",)) is not None:
            try:
                _rerun_under_driver()
            except OSError as exc:  # then the child runs with the other hooks, not those of __main__
                report.warn(f"could not hook __main__ in child process {os.getpid()}: {exc}")
        listeners, per_target = create_listeners(settings, tolerate_failures=True)
        installation = Installation(settings, use_cache=settings.use_cache)
        if mode == "module":
            installation.expect_main_module(main)
        installation.install(listeners, per_target)
        if mode == "other":
            from . import mpmain

            if mpmain.wants_it(settings):
                mpmain.install(installation)
        installation.program_started = True
        installation.report_unmatched = False  # the parent run reports its targets once
        installation.register_exit()
    except Exception as exc:  # a child must run even when hookwise cannot
        report.warn(f"could not install hooks in child process {os.getpid()}: {type(exc).__name__}: {exc}")
    finally:
        hide_own_top_level_modules()


def how_this_process_runs():
    """('script', path), ('module', name) or ('other', None), from the interpreter's command line."""
    argv, original = sys.argv, getattr(sys, "orig_argv", None)
    if not argv or original is None or len(original) < len(argv):
        return "other", None
    if argv[0] == "-m":
        flag = original[len(original) - len(argv)]
        return "module", flag[2:] if flag.startswith("-m") and len(flag) > 2 else flag
    if argv[0] in ("-c", "", "-"):
        return "other", None
    return "script", argv[0]


def _rerun_under_driver():
    """Replace this process with ``python [its options] -m hookwise --from-parent script args``.

    A checkout's ``driver.py`` is run by its path instead: a checkout's packages
    need not be importable from the child's working directory, while an
    installed copy's are, from site-packages.
    """
    original = sys.orig_argv
    options = original[1 : len(original) - len(sys.argv)]
    driver = os.path.join(PACKAGES_ROOT, "driver.py")
    runner = [driver] if os.path.isfile(driver) else ["-m", "hookwise"]
    # orig_argv[0] is often a bare "python" found on PATH; execv does not search PATH
    executable = sys.executable or original[0]
    os.environ[RERUN_VARIABLE] = str(os.getpid())
    os.execv(executable, [original[0], *options, *runner, "--from-parent", *sys.argv])
