"""What is hookwise's own code: decided by file, not by module name.

The design fixes the top-level names ``loader`` and ``rewriter`` (and the
checkout's ``driver.py``). A program may have modules of those names: they are
the program's, and hookable like any other. Only ``hookwise`` itself is ours by
name as well, since a target inside it cannot be served (the runtime cannot
watch itself).
"""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The directory that holds hookwise's packages: a checkout, or site-packages."""

IN_CHECKOUT = os.path.isfile(os.path.join(ROOT, "setup.py")) and os.path.isdir(os.path.join(ROOT, "tests"))
"""True when hookwise runs from its source tree rather than an installed copy."""

DIRECTORIES = tuple(os.path.join(ROOT, package) + os.sep for package in ("hookwise", "loader", "rewriter"))
# an installed copy has no driver.py: a site-packages driver.py is some other project's
FILES = (os.path.join(ROOT, "driver.py"),) if IN_CHECKOUT else ()
LOCATIONS = DIRECTORIES + FILES
"""Prefixes of hookwise's files, for ``str.startswith`` on a code object's filename."""

PACKAGE = "hookwise"


def is_own_file(filename):
    """True for a file of hookwise's packages or the checkout's driver.py (an absolute path)."""
    return filename.startswith(DIRECTORIES) or filename in FILES


def is_own_name(name):
    """True for ``hookwise`` and its submodules: the one name that is never the program's."""
    return name == PACKAGE or name.startswith(PACKAGE + ".")


def is_own_module(name, module):
    """True when the loaded ``module`` (known as ``name``) is hookwise's code.

    Reads ``__file__`` from the module's dict, never through attribute access:
    a module's ``__getattr__`` (PEP 562) is the program's code. The name is
    compared as it is, never through ``os.path``: hookwise asks this while the
    program runs, and ``posixpath`` may be hooked (imported modules' files are
    absolute: site.py makes ``sys.path`` so).
    """
    if is_own_name(name):
        return True
    try:
        filename = vars(module).get("__file__")
    except TypeError:
        return False
    return type(filename) is str and is_own_file(filename)
