"""Which implementation of the hot path runs: the C accelerator or pure Python.

``hookwise._speedups`` (built by pip where a compiler exists) implements the
call site, the call record and the builtin wrapper in C; the pure-Python
classes in ``runtime``, ``call`` and ``loader.wrappers`` are the reference and
the fallback. Both behave the same and both are tested on every version.
"""

import os

PURE_PYTHON = "HOOKWISE_PURE_PYTHON"
"""Environment variable: set it (to anything but empty or 0) to use the pure-Python runtime."""

BUILD_COMMAND = "python setup.py build_ext --inplace"
"""What builds the accelerator in a checkout (pip builds it when it installs hookwise)."""

def _why_it_does_not_load(exc):
    from importlib.machinery import EXTENSION_SUFFIXES  # loaded at start-up anyway

    here = os.path.dirname(os.path.abspath(__file__))
    if not any(os.path.exists(os.path.join(here, "_speedups" + suffix)) for suffix in EXTENSION_SUFFIXES):
        return "the accelerator hookwise._speedups is not built for this Python"
    return f"the accelerator does not load: {exc}"  # built, yet broken (a missing library, a bad build)


PURE_REQUESTED = os.environ.get(PURE_PYTHON, "") not in ("", "0")
"""The pure-Python runtime was asked for (HOOKWISE_PURE_PYTHON)."""

speedups = None
WHY_PURE = None  # why the pure-Python runtime runs, in words; None while the accelerator does
if PURE_REQUESTED:
    WHY_PURE = f"{PURE_PYTHON} is set"
else:
    try:
        from . import _speedups as speedups
    except ImportError as exc:  # not built here: no compiler, or a checkout without build_ext
        speedups = None
        WHY_PURE = _why_it_does_not_load(exc)

ACTIVE = speedups is not None


def describe():
    return "C accelerator" if ACTIVE else "pure Python"


def explain():
    """``C accelerator``, or ``pure Python, because ...`` (what --version shows)."""
    return "C accelerator" if ACTIVE else f"pure Python, because {WHY_PURE}"
