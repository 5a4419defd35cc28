"""Build script for the optional C extensions; everything else is in pyproject.toml.

hookwise._speedups is the accelerator of the hot path; hookwise._sigterm_guard
is the watchdog without which listeners are not finished on SIGTERM.

Both are optional: where no compiler is available (or on a platform other
than POSIX CPython), pip installs hookwise without them; the pure-Python
runtime is used and SIGTERM keeps its default action. HOOKWISE_PURE_PYTHON=1
selects the pure-Python runtime even when the accelerator is built.
"""

import os
import platform

from setuptools import Extension, setup

extensions = []
if os.name == "posix" and platform.python_implementation() == "CPython" and not os.environ.get("HOOKWISE_NO_EXTENSION"):
    # _recorder.h (the C writer of recordings), _saferepr.h (saferepr's common values) and _callers.h
    # (caller and app_caller), _chrome.h (the chrome converter's common events) and _recvalues.h (a
    # recording's values, read) are part of _speedups.c
    extensions.append(Extension("hookwise._speedups", ["hookwise/_speedups.c"], depends=["hookwise/_recorder.h", "hookwise/_saferepr.h", "hookwise/_callers.h", "hookwise/_chrome.h", "hookwise/_recvalues.h"],
                                optional=True))
    # the watchdog that lets listeners finish on SIGTERM safely (loader/install.py)
    extensions.append(Extension("hookwise._sigterm_guard", ["hookwise/_sigterm_guard.c"], optional=True))

setup(ext_modules=extensions)
