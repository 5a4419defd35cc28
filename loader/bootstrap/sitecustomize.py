"""hookwise's bootstrap for Python child processes (see loader/children.py).

Python imports this at start-up when hookwise's driver put this directory on
PYTHONPATH. It installs the parent's hooks, takes this directory back out of
``sys.path`` and then runs the user's own ``sitecustomize``, if there is one.
It must never stop the child from running: any failure is one line on stderr.
"""


def _bootstrap():
    import os
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
    # worked out before the hooks exist: os.path may be hooked, and this is hookwise's work
    shadowed_path = list(sys.path)
    settings = os.environ.get("HOOKWISE_SETTINGS")
    root = os.environ.get("HOOKWISE_ROOT")
    children = None
    if settings and root:
        added = root not in sys.path
        if added:
            sys.path.insert(0, root)
        try:
            from loader import children
        except Exception as exc:
            sys.stderr.write(f"hookwise: could not load hookwise in child process {os.getpid()}: {exc}\n")
        finally:
            if added and root in sys.path:
                sys.path.remove(root)
        if children is not None:
            children.start_in_child(settings)
    _run_shadowed_sitecustomize(shadowed_path)


def _run_shadowed_sitecustomize(path):
    """Run the ``sitecustomize`` this one shadows (found on ``path``), the way site.py would have."""
    import importlib.util
    import sys
    from importlib.machinery import PathFinder

    spec = PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module  # what `import sitecustomize` in site.py then returns
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # site.py's own wording for a failing sitecustomize
        if sys.flags.verbose:
            sys.excepthook(type(exc), exc, exc.__traceback__)
        else:
            sys.stderr.write(f"Error in sitecustomize; set PYTHONVERBOSE for traceback:\n{type(exc).__name__}: {exc}\n")


_bootstrap()
del _bootstrap
