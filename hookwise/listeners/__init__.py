"""Built-in listeners and the ``--listener SPEC`` resolver.

A spec is ``console``, ``jsonl=PATH``, or ``package.module:attr[=ARG]`` naming a
user's listener: a class (instantiated with ARG when given, else with no
argument) or a ready object.
"""

import importlib
import os
import sys


class ListenerSpecError(ValueError):
    """A listener spec that names nothing usable; the message is one line."""


BUILTIN_NAMES = ("console", "jsonl")


def resolve(spec, cache=None):
    """The listener object for ``spec``; the same spec gives the same object via ``cache``."""
    if cache is not None and spec in cache:
        return cache[spec]
    listener = _create(spec)
    if cache is not None:
        cache[spec] = listener
    return listener


def _create(spec):
    if not isinstance(spec, str) or not spec.strip():
        raise ListenerSpecError(f"empty listener spec; expected one of {', '.join(BUILTIN_NAMES)} or package.module:attr")
    name, has_arg, arg = spec.strip().partition("=")
    if name == "console":
        from .console import ConsoleListener

        return ConsoleListener()
    if name == "jsonl":
        if not has_arg or not arg:
            raise ListenerSpecError("listener 'jsonl' needs a path: --listener jsonl=PATH")
        from .jsonl import JsonlListener

        try:
            return JsonlListener(arg)
        except OSError as exc:
            raise ListenerSpecError(f"cannot write the jsonl output {arg!r}: {exc.strerror or exc}") from None
    if ":" in name:
        return _user_listener(name, arg if has_arg else None)
    raise ListenerSpecError(
        f"unknown listener {name!r}; expected one of {', '.join(BUILTIN_NAMES)} or package.module:attr"
    )


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
    if isinstance(target, type):
        try:
            listener = target(arg) if arg is not None else target()
        except Exception as exc:
            raise ListenerSpecError(f"listener {path!r} could not be created: {type(exc).__name__}: {exc}") from None
    elif arg is not None:
        raise ListenerSpecError(f"listener {path!r} is an object, not a class: it takes no '={arg}'")
    else:
        listener = target
    if not any(callable(getattr(listener, method, None)) for method in ("start", "end", "error")):
        raise ListenerSpecError(f"listener {path!r} has none of the methods start, end, error")
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
