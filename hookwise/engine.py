"""Import hookwise's engine (the top-level ``loader`` and ``rewriter`` packages) safely.

The design fixes their names, and a program may have modules called ``loader``
or ``rewriter`` of its own. Whoever starts hookwise outside the driver (the
pytest plugin) imports them through ``import_engine``: from beside this
package, whatever ``sys.path`` holds, before the program's code is imported;
afterwards ``hide_engine`` takes the names out of ``sys.modules`` so that the
program's own ``import loader`` finds its own module.
"""

import sys

from .own import ROOT, is_own_module

ENGINE_PACKAGES = ("loader", "rewriter")


class EngineUnavailable(ImportError):
    """Another module already holds one of the engine's names."""


def import_engine():
    """The ``loader`` package (with every submodule hookwise uses loaded), from ROOT."""
    for name in ("loader", "rewriter"):
        module = sys.modules.get(name)
        if module is not None and not is_own_module(name, module):
            raise EngineUnavailable(
                f"a module named {name!r} is already imported ({getattr(module, '__file__', '?')}); "
                "hookwise's own package of that name cannot be loaded"
            )
    inserted = not sys.path or sys.path[0] != ROOT
    if inserted:
        sys.path.insert(0, ROOT)
    try:
        import loader
        import loader.children
        import loader.install
        import loader.run
        import rewriter  # noqa: F401 - loaded now, while the name is ours to take
    finally:
        if inserted:
            try:
                sys.path.remove(ROOT)
            except ValueError:
                pass
    return loader


def hide_engine():
    """Take the engine's names out of ``sys.modules`` (its objects stay alive where they are held).

    Only hookwise's own modules go: a program's ``loader`` imported by then stays.
    """
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] in ENGINE_PACKAGES and is_own_module(name, module):
            del sys.modules[name]
