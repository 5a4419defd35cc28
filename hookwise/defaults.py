"""The embedded defaults: what the original project watched, and where it says so.

Used when no hook and no preset is named anywhere (command line, config
file): the ``commands``, ``files`` and ``code`` presets (``hookwise.presets``),
on the console. All of them are served by attribute replacement or, for
``subprocess``, by rewriting it when it is imported.
"""

from . import presets

DEFAULT_TARGETS = tuple(presets.targets_of(presets.DEFAULT))
DEFAULT_LISTENERS = ("console",)
