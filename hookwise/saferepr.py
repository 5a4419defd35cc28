"""Bounded, never-failing ``repr`` for arguments, results and exceptions.

A listener must be able to show any value without changing the program:

- a ``__repr__`` that raises, a list of ten million items or a megabyte string
  must neither fail the call nor flood the output: built-in containers and
  strings are cut while they are written, other reprs are cut afterwards;
- showing a value must not run the program's code. A ``__repr__`` can do
  anything: jinja2's loop context creates a coroutine that is never awaited
  (the warning fails its test suite), an ORM's query set runs a query. So the
  reprs that run are those of built-in types and of the standard library;
  objects whose class defines its own ``__repr__`` elsewhere are shown as
  ``<module.Class object at 0x...>``, except dataclasses, named tuples and
  attrs classes, which are shown field by field without running their code.
  ``user_reprs=True`` (``--user-reprs``) calls every ``__repr__``.
"""

import sys
import types

DEFAULT_LIMIT = 200
_ELLIPSIS = "..."
_SECRET = "'***'"
_MAX_DEPTH = 4

_SEQUENCES = {list: ("[", "]"), tuple: ("(", ")"), set: ("{", "}"), frozenset: ("frozenset({", "})")}
_PLAIN = frozenset((int, float, bool, type(None), complex))  # reprs that are short, safe and built in
_C_METHODS = (types.WrapperDescriptorType, types.MethodDescriptorType, types.BuiltinFunctionType,
              types.MethodWrapperType)
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | {"builtins"}
_verdicts = {}  # (type, method name) -> may that method run


def saferepr(value, limit=DEFAULT_LIMIT, secret=None, user_reprs=False):
    """``repr(value)`` in at most ``limit`` characters; never raises an Exception.

    ``secret(key)``, when given, hides the values of dict entries whose key it
    accepts, at any depth: ``{'password': '***'}``.
    """
    try:
        kind = type(value)
        # the common arguments first: a few hundred nanoseconds count on every call
        text = repr(value) if kind in _PLAIN else _repr(value, limit, 0, secret, user_reprs)
    except Exception as exc:  # a broken __repr__ is the program's business, not ours
        text = f"<{_type_name(value)} object; repr() raised {_type_name(exc)}>"
    if len(text) > limit:
        text = text[: max(limit - len(_ELLIPSIS), 0)] + _ELLIPSIS
    return text


def safestr(value, limit=DEFAULT_LIMIT, user_reprs=False):
    """``str(value)`` (an exception's message), with the same rules as ``saferepr``."""
    try:
        if user_reprs or may_run(type(value), "__str__"):
            text = str(value)
        else:
            return saferepr(value, limit, None, user_reprs)
    except Exception:
        return saferepr(value, limit, None, user_reprs)
    return text if len(text) <= limit else text[: max(limit - len(_ELLIPSIS), 0)] + _ELLIPSIS


def may_run(kind, name):
    """Whether ``kind``'s method ``name`` is built in or from the standard library."""
    key = (kind, name)
    verdict = _verdicts.get(key)
    if verdict is None:
        method = None
        for klass in getattr(kind, "__mro__", (kind,)):  # without running a metaclass's __getattr__
            if name in vars(klass):
                method = vars(klass)[name]
                break
        module = getattr(method, "__module__", None) or ""
        verdict = isinstance(method, _C_METHODS) or module.partition(".")[0] in _STDLIB
        if len(_verdicts) < 10_000:
            _verdicts[key] = verdict
    return verdict


def _type_name(value):
    try:
        return type(value).__name__
    except Exception:
        return "?"


def _repr(value, limit, depth, secret=None, user_reprs=False):
    kind = type(value)
    if kind is str or kind is bytes or kind is bytearray:
        if len(value) > limit:
            return repr(value[:limit]) + _ELLIPSIS
        return repr(value)
    if kind in _SEQUENCES:
        if depth >= _MAX_DEPTH and value:
            return _SEQUENCES[kind][0] + _ELLIPSIS + _SEQUENCES[kind][1]
        if kind is set and not value:
            return "set()"
        if kind is frozenset and not value:
            return "frozenset()"
        opening, closing = _SEQUENCES[kind]
        items = _join((_repr(item, limit, depth + 1, secret, user_reprs) for item in value), limit)
        if kind is tuple and len(value) == 1:
            items += ","
        return opening + items + closing
    if kind is dict:
        if depth >= _MAX_DEPTH and value:
            return "{" + _ELLIPSIS + "}"
        pairs = (
            f"{_repr(key, limit, depth + 1, None, user_reprs)}: "
            f"{_SECRET if secret is not None and secret(key) else _repr(item, limit, depth + 1, secret, user_reprs)}"
            for key, item in value.items()
        )
        return "{" + _join(pairs, limit) + "}"
    if user_reprs:
        return repr(value)
    way = _ways.get(kind)
    if way is None:
        way = _way_to_show(value, kind)
    if way == "repr":
        return repr(value)
    if way == "object":
        return f"<{kind.__module__}.{kind.__qualname__} object at {id(value):#x}>"
    # Containers are shown item by item, so that what they hold is shown by the
    # same rules: a standard-library repr would call each item's own __repr__.
    fields = _fields_of(value, kind) if way == "fields" else None
    if fields is not None:
        if depth >= _MAX_DEPTH:
            return f"{kind.__qualname__}({_ELLIPSIS})"
        shown = (
            f"{name}={_SECRET if secret is not None and secret(name) else '?' if item is _UNREAD else _repr(item, limit, depth + 1, secret, user_reprs)}"
            for name, item in fields
        )
        return f"{kind.__qualname__}({_join(shown, limit)})"
    inside = _contents(value) if way == "contents" else None
    if inside is not None:
        return f"{kind.__qualname__}({_repr(inside, limit, depth, secret, user_reprs)})"
    if may_run(kind, "__repr__"):
        return repr(value)
    return f"<{kind.__module__}.{kind.__qualname__} object at {id(value):#x}>"


_ways = {}  # type -> how its values are shown: decided once per type, it is asked for every argument


def _way_to_show(value, kind):
    if _fields_of(value, kind) is not None:
        way = "fields"
    elif _contents(value) is not None:
        way = "contents"
    elif may_run(kind, "__repr__"):
        way = "repr"
    else:
        way = "object"
    if len(_ways) < 10_000:
        _ways[kind] = way
    return way


def _contents(value):
    """What a subclass of a built-in container, or a deque, holds, as the built-in container."""
    if isinstance(value, dict):
        return dict(dict.items(value))
    for base in (list, tuple, set, frozenset):
        if isinstance(value, base):
            return base(base.__iter__(value))
    deque = getattr(sys.modules.get("collections"), "deque", None)
    if deque is not None and isinstance(value, deque):
        return list(deque.__iter__(value))
    return None


def _fields_of(value, kind):
    """(name, value) pairs of a dataclass, named tuple or attrs instance, read without running its code."""
    try:
        if isinstance(value, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
            return list(zip(kind._fields, tuple.__iter__(value)))
        declared = vars(kind).get("__dataclass_fields__") or _inherited(kind, "__dataclass_fields__")
        if isinstance(declared, dict):  # only real fields: not ClassVar or InitVar pseudo-fields
            names = [name for name, field in declared.items() if getattr(field, "repr", True)
                     and getattr(getattr(field, "_field_type", None), "name", "_FIELD") == "_FIELD"]
            return [(name, _plain_attribute(value, name)) for name in names]
        declared = _inherited(kind, "__attrs_attrs__")
        if declared is not None:
            return [(attribute.name, _plain_attribute(value, attribute.name)) for attribute in declared
                    if getattr(attribute, "repr", True)]
    except Exception:
        return None
    return None


def _inherited(kind, name):
    for klass in kind.__mro__:
        if name in vars(klass):
            return vars(klass)[name]
    return None


_UNREAD = object()  # shown as "?": a field that only code could produce


def _plain_attribute(value, name):
    """An attribute read from the instance's dict or slot: no property or __getattr__ runs."""
    try:
        namespace = object.__getattribute__(value, "__dict__")
    except AttributeError:
        namespace = None
    if isinstance(namespace, dict) and name in namespace:
        return namespace[name]
    descriptor = _inherited(type(value), name)
    if isinstance(descriptor, types.MemberDescriptorType):
        try:
            return descriptor.__get__(value, type(value))
        except AttributeError:
            return _UNREAD
    return _UNREAD


def _join(parts, limit):
    out = []
    size = 0
    for part in parts:
        if size > limit:
            out.append(_ELLIPSIS)
            break
        out.append(part)
        size += len(part) + 2
    return ", ".join(out)
