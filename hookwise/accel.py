"""Which implementation of the hot path runs: the C accelerator or pure Python.

``hookwise._speedups`` (built by pip where a compiler exists) implements the
call site, the call record and the builtin wrapper in C; the pure-Python
classes in ``runtime``, ``call`` and ``loader.wrappers`` are the reference and
the fallback. Both behave the same and both are tested on every version.
"""

import os

PURE_PYTHON = "HOOKWISE_PURE_PYTHON"
"""Environment variable: set it (to anything but empty or 0) to use the pure-Python runtime."""

speedups = None
if os.environ.get(PURE_PYTHON, "") in ("", "0"):
    try:
        from . import _speedups as speedups
    except ImportError:  # not built here: no compiler, or a checkout without build_ext
        speedups = None

ACTIVE = speedups is not None


def describe():
    return "C accelerator" if ACTIVE else "pure Python"
