"""What the embedded default set leaves out: the standard library's own business.

The default set is for the program's commands, files and dynamic code. Two
kinds of its calls are neither, and used to open every run's output:

- dynamic code the standard library generates and runs for itself:
  ``collections.namedtuple`` evaluates the source of each class it makes, and
  ``dataclasses`` executes the ``__init__``, ``__repr__``, ... it writes;
- descriptors it opens internally: ``subprocess`` wraps its pipes with
  ``io.open(fd, ...)``, ``tempfile`` and ``os.fdopen`` do the same with the
  descriptor they already opened (the file's own ``os.open`` is still shown).

Only the default set leaves them out, and only when the call comes straight
from a standard-library module (the caller's globals say which). Explicit
targets (``--hook builtins:eval``) and ``--show-stdlib-internals`` (config
``show_stdlib_internals = true``) show them all.

Each predicate gets the caller's globals (or None) and the call's first
positional argument (or None); the wrappers call it before anything is
reported (``loader/wrappers.py``, ``_speedups.c``). It must not fail, call
hooked code, or look further than these two values.
"""

import sys

from . import _originals

CODE_GENERATORS = frozenset(("collections", "dataclasses"))
"""Standard-library modules whose exec / eval / compile run code they wrote themselves."""

_STDLIB = frozenset(sys.stdlib_module_names)


def generated_code(caller_globals, first_argument):
    """True for exec / eval / compile called by namedtuple's or dataclasses' own code."""
    return type(caller_globals) is dict and caller_globals.get("__name__") in CODE_GENERATORS


def internal_descriptor(caller_globals, first_argument):
    """True for an open of a descriptor (an int, not a path) by a standard-library module."""
    if type(first_argument) is not int or type(caller_globals) is not dict:
        return False
    name = caller_globals.get("__name__")
    return type(name) is str and name.partition(".")[0] in _STDLIB


_FILTERS = (
    (_originals.exec, generated_code),
    (_originals.eval, generated_code),
    (_originals.compile, generated_code),
    (_originals.open, internal_descriptor),  # builtins.open is io.open; os.open takes paths only
)


def filter_for(original):
    """The predicate for a default target's callable, or None when it has none."""
    for callable_, predicate in _FILTERS:
        if original is callable_:
            return predicate
    return None
