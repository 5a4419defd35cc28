"""Build script for the optional C accelerator; everything else is in pyproject.toml.

The extension is optional: where no compiler is available (or on a platform
other than POSIX CPython), pip installs hookwise without it and the pure-Python
runtime is used. HOOKWISE_PURE_PYTHON=1 selects the pure-Python runtime even
when the extension is built.
"""

import os
import platform

from setuptools import Extension, setup

extensions = []
if os.name == "posix" and platform.python_implementation() == "CPython" and not os.environ.get("HOOKWISE_NO_EXTENSION"):
    extensions.append(Extension("hookwise._speedups", ["hookwise/_speedups.c"], optional=True))

setup(ext_modules=extensions)
