"""Built-in listeners and the ``--listener SPEC`` resolver.

A spec is ``NAME[=ARG]``:

- a built-in listener: ``console``, ``jsonl=PATH`` (and the others in
  ``BUILTIN``), each made by its module's ``from_spec(arg, settings)``;
- a plugin that names itself in the ``hookwise.listeners`` entry-point group;
- ``package.module:attr[=ARG]``: a user's listener, a class (instantiated with
  ARG when given, else with no argument) or a ready object.

Plugins and user listeners are created the same way. Nothing is imported until
a spec names it.
"""

import importlib
import os
import sys


class ListenerSpecError(ValueError):
    """A listener spec that names nothing usable; the message is one line."""


def require_arg(name, arg, what):
    """For ``from_spec``: the ARG of ``name=ARG``, or a one-line error naming what is missing."""
    if not arg:
        raise ListenerSpecError(f"listener {name!r} needs {what}: --listener {name}=...")
    return arg


def refuse_arg(name, arg):
    if arg is not None:
        raise ListenerSpecError(f"listener {name!r} takes no value (got {name}={arg})")


# name -> module holding ``from_spec(arg, settings)``, which checks its own ARG
BUILTIN = {
    "console": "hookwise.listeners.console",
    "jsonl": "hookwise.listeners.jsonl",
    "stats": "hookwise.listeners.stats",
    "chrome": "hookwise.listeners.chrome",
    "html": "hookwise.listeners.html",
    "otel": "hookwise.listeners.otel",
    "record": "hookwise.listeners.record",
}

ENTRY_POINT_GROUP = "hookwise.listeners"


def resolve(spec, settings, cache=None):
    """The listener object for ``spec``; the same spec gives the same object via ``cache``."""
    if cache is not None and spec in cache:
        return cache[spec]
    listener = _create(spec, settings)
    if cache is not None:
        cache[spec] = listener
    return listener


def _create(spec, settings):
    if not isinstance(spec, str) or not spec.strip():
        raise ListenerSpecError(f"empty listener spec; expected {_expected()}")
    name, has_arg, arg = spec.strip().partition("=")
    arg = arg if has_arg else None
    if name in BUILTIN:
        module = importlib.import_module(BUILTIN[name])
        try:
            return module.from_spec(arg, settings)
        except ListenerSpecError:
            raise
        except OSError as exc:
            raise ListenerSpecError(f"listener {name!r}: cannot write the output {arg!r}: {exc.strerror or exc}") from None
    if ":" in name:
        return _user_listener(name, arg)
    plugin = _entry_point(name)
    if plugin is not None:
        return _instantiate(plugin, name, arg)
    raise ListenerSpecError(f"unknown listener {name!r}; expected {_expected()}")


def _expected():
    return f"one of {', '.join(BUILTIN)}, an installed plugin, or package.module:attr"


def _entry_point(name):
    """The object a ``hookwise.listeners`` entry point named ``name`` refers to, or None."""
    try:
        from importlib.metadata import entry_points
    except ImportError:  # pragma: no cover - always there on 3.10+
        return None
    try:
        found = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    except Exception:
        return None
    if not found:
        return None
    try:
        return found[0].load()
    except Exception as exc:
        raise ListenerSpecError(f"listener plugin {name!r} ({found[0].value}) failed to load: {type(exc).__name__}: {exc}") from None


def _user_listener(path, arg):
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise ListenerSpecError(f"listener {path!r} must look like package.module:attr")
    module = _import_user_module(module_name, path)
    target = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ListenerSpecError(f"listener {path!r}: module {module_name!r} has no attribute {attribute!r}") from None
    return _instantiate(target, path, arg)


def _instantiate(target, label, arg):
    if isinstance(target, type):
        try:
            listener = target(arg) if arg is not None else target()
        except Exception as exc:
            raise ListenerSpecError(f"listener {label!r} could not be created: {type(exc).__name__}: {exc}") from None
    elif arg is not None:
        raise ListenerSpecError(f"listener {label!r} is an object, not a class: it takes no '={arg}'")
    else:
        listener = target
    # close() alone is a listener too: one that only acts when the run ends
    if not any(callable(getattr(listener, method, None)) for method in ("start", "end", "error", "close")):
        raise ListenerSpecError(f"listener {label!r} has none of the methods start, end, error, close")
    return listener


def _import_user_module(module_name, path):
    """Import a listener's module from the program's path, or else the current directory."""
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ListenerSpecError(f"listener {path!r}: cannot import {module_name!r}: {exc}") from None
    except Exception as exc:
        raise ListenerSpecError(f"listener {path!r}: importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    finally:
        if added:
            try:
                sys.path.remove(cwd)
            except ValueError:
                pass
