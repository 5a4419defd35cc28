"""Bounded, never-failing ``repr`` for arguments, results and exceptions.

A listener must be able to show any value without changing the program:

- a ``__repr__`` that raises, a list of ten million items or a megabyte string
  must neither fail the call nor flood the output: containers and strings are
  cut while they are written, other reprs are cut afterwards;
- showing a value must not run the program's code. A ``__repr__`` can do
  anything: jinja2's loop context creates a coroutine that is never awaited
  (the warning fails its tests), an ORM's query set runs a query. And a
  built-in repr may call the reprs of what it holds: a bound method shows its
  ``self``, an exception its arguments, a ``partial`` its function and
  arguments. So only three kinds of values are shown by their own repr:

  * leaves: numbers, strings, bytes, None, ranges, functions, classes, modules,
    code and other built-in values whose repr shows nothing they contain;
  * values whose class takes its ``__repr__`` from the standard library
    (paths, UUIDs, fractions, threads ...), except the few whose repr shows
    what they hold (``_HOLDERS``; enum members and ChainMaps are shown part
    by part);
  * with ``user_reprs=True`` (``--user-reprs``): everything.

  Containers and wrappers are shown item by item under the same rules
  (lists, tuples, sets, dicts and their subclasses, deques, dict views,
  dataclasses, named tuples, attrs classes, ``SimpleNamespace``, bound
  methods, ``functools.partial``, exceptions, slices); anything else is
  ``<module.Class object at 0x...>``.
"""

import sys
import types

from .redaction import is_wsgi_environ, redact_text, redact_value, wsgi_items

DEFAULT_LIMIT = 200
_ELLIPSIS = "..."
_SECRET = "'***'"
_MAX_DEPTH = 4
_REDACTION_MARGIN = 256  # text past the cut that is still redacted: a secret may straddle it

_SEQUENCES = {list: ("[", "]"), tuple: ("(", ")"), set: ("{", "}"), frozenset: ("frozenset({", "})")}
_PLAIN = frozenset((int, float, bool, type(None), complex))  # reprs that are short, safe and built in
# Built-in types whose repr shows no value they hold (only names, numbers, addresses).
_LEAVES = frozenset((
    int, float, bool, type(None), complex, str, bytes, bytearray, range, memoryview, type(Ellipsis),
    type(NotImplemented), types.FunctionType, types.BuiltinFunctionType, types.MethodDescriptorType,
    types.WrapperDescriptorType, types.MethodWrapperType, types.ClassMethodDescriptorType,
    types.GetSetDescriptorType, types.MemberDescriptorType, types.CodeType, types.ModuleType,
    types.GeneratorType, types.CoroutineType, types.AsyncGeneratorType, types.FrameType, types.TracebackType,
    types.CellType, object,
))
_STDLIB = frozenset(getattr(sys, "stdlib_module_names", ())) | {"builtins"}
_verdicts = {}  # (type, method name) -> may that method run
_ways = {}  # type -> how its values are shown: decided once per type, it is asked for every argument


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


def safestr(value, limit=DEFAULT_LIMIT, user_reprs=False, secret=None):
    """``str(value)`` (an exception's message), with the same rules as ``saferepr``.

    ``secret``, when given, also redacts the text by content (before it is cut,
    so a cut never leaves half a password).
    """
    try:
        if issubclass(type(value), BaseException) and not user_reprs:
            if not may_run(type(value), "__str__"):
                return saferepr(value, limit, secret, user_reprs)
            if all(_is_leafy(arg) for arg in value.args):  # its own str(): it only shows those
                text = str(value)
            else:
                text = ", ".join(saferepr(arg, limit, secret, user_reprs) for arg in value.args)
        else:
            text = str(value) if user_reprs or type(value) in _LEAVES else saferepr(value, limit, secret, user_reprs)
        if secret is not None and type(text) is str:
            text = redact_text(text[: limit + _REDACTION_MARGIN], secret)
    except Exception:
        return saferepr(value, limit, secret, user_reprs)
    return text if len(text) <= limit else text[: max(limit - len(_ELLIPSIS), 0)] + _ELLIPSIS


def _is_leafy(value):
    """A leaf, or a tuple of leaves (a SyntaxError's location: filename, line, offset, text ...)."""
    kind = type(value)
    return kind in _LEAVES or (kind is tuple and all(type(item) in _LEAVES for item in value))


def may_run(kind, name):
    """Whether ``kind``'s method ``name`` is built in or from the standard library."""
    key = (kind, name)
    verdict = _verdicts.get(key)
    if verdict is None:
        method = _inherited(kind, name)
        module = getattr(method, "__module__", None) or ""
        verdict = isinstance(method, (types.WrapperDescriptorType, types.MethodDescriptorType)) or (
            module.partition(".")[0] in _STDLIB
        )
        if len(_verdicts) < 10_000:
            _verdicts[key] = verdict
    return verdict


def _type_name(value):
    try:
        return type(value).__name__
    except Exception:
        return "?"


class Shown:
    """A value that a recording kept as its rendered text (see ``hookwise.recording``): shown as that text."""

    __slots__ = ("text",)

    def __init__(self, text):
        self.text = text


def _repr(value, limit, depth, secret=None, user_reprs=False):
    kind = type(value)
    if kind is Shown:
        return value.text
    if kind is str or kind is bytes or kind is bytearray:
        cut = len(value) > limit
        if secret is not None:  # by content too: URL credentials, secret-named query fields
            value = redact_value(value[: limit + _REDACTION_MARGIN] if cut else value, secret)
        if cut or len(value) > limit:
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
        # a WSGI environ: never the process environment wsgiref copies into it
        items = wsgi_items(value) if is_wsgi_environ(value) else value.items()
        pairs = (
            f"{_repr(key, limit, depth + 1, None, user_reprs)}: "
            f"{_SECRET if secret is not None and secret(key) else _repr(item, limit, depth + 1, secret, user_reprs)}"
            for key, item in items
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
        return _object(value)
    if depth >= _MAX_DEPTH:
        return f"{kind.__qualname__}({_ELLIPSIS})"
    inner = lambda item: _repr(item, limit, depth + 1, secret, user_reprs)  # noqa: E731
    if way == "fields":
        fields = _fields_of(value, kind)
        shown = (f"{name}={_SECRET if secret is not None and secret(name) else '?' if item is _UNREAD else inner(item)}"
                 for name, item in fields)
        return f"{kind.__qualname__}({_join(shown, limit)})"
    if way == "contents":
        return f"{kind.__qualname__}({_repr(_contents(value), limit, depth, secret, user_reprs)})"
    hide = (lambda name: False) if secret is None else secret
    return _WRAPPERS[way](value, kind, inner, limit, hide)


def how_shown(value, user_reprs=False):
    """How ``saferepr`` shows every value of ``type(value)``, decided by type alone (the C writer of
    recordings asks once per type, then shows such values without asking again):

    - ``("object", name)``: as ``<name object at 0x...>`` (``hookwise.recording.format``'s V_OBJECT);
      ``name`` is ``module.Class`` as ``object_repr`` writes it, or as ``object.__repr__`` does when
      that is the type's own repr (``Class`` alone for a builtin);
    - ``("repr", None)``: as its own ``repr()``, a built-in or standard-library one (or any, with
      ``user_reprs``), cut at the limit;
    - ``(None, None)``: some other way (containers, records, wrappers ...).
    """
    kind = type(value)
    if kind is Shown or kind in (str, bytes, bytearray, dict) or kind in _SEQUENCES:
        return None, None
    if kind in _PLAIN or user_reprs:
        return "repr", None
    try:
        way = _ways.get(kind)
        if way is None:
            way = _way_to_show(value, kind)
        if way == "object":
            name = f"{kind.__module__}.{kind.__qualname__}"
        elif way == "repr" and _inherited(kind, "__repr__") is object.__repr__:
            text = object.__repr__(value)  # its own words: "<Class object at 0x...>" for a builtin
            name = text[1 : text.rindex(" object at ")]
        elif way == "repr":
            return "repr", None
        else:
            return None, None
    except Exception:
        return None, None
    return ("object", name) if type(name) is str else (None, None)


def _object(value):
    kind = type(value)
    return f"<{kind.__module__}.{kind.__qualname__} object at {id(value):#x}>"


def object_repr(value):
    """``<module.Class object at 0x...>``: what ``object.__repr__`` shows, run no code of the value's."""
    if type(value) is Shown:
        return value.text
    try:
        return _object(value)
    except Exception:
        return f"<{_type_name(value)} object at {id(value):#x}>"


def _way_to_show(value, kind):
    if kind in _LEAVES:
        way = "repr"
    elif _fields_of(value, kind) is not None:
        way = "fields"
    elif _contents(value) is not None:
        way = "contents"
    elif kind in _WRAPPER_KINDS:
        way = _WRAPPER_KINDS[kind]
    elif _is_argparse_namespace(kind):
        way = "namespace"
    elif issubclass(kind, BaseException):
        # the built-in repr shows each argument's own repr: show the arguments ourselves
        way = "exception" if _inherited(kind, "__repr__") is BaseException.__repr__ else "object"
    elif _is_stdlib_instance(value, "enum", "Enum") and "_name_" in _own_dict(value):
        way = "enum"
    elif _is_stdlib_instance(value, "collections", "ChainMap"):
        way = "chainmap"
    elif any(_is_stdlib_instance(value, module, name) for module, name in _HOLDERS):
        way = "object"
    elif _is_stdlib_instance(value, "socket", "socket") and _inherited(kind, "__repr__") is _socket_repr():
        way = "socket"
    elif _repr_is_trusted(kind):
        way = "repr"
    else:
        way = "object"
    if len(_ways) < 10_000:
        _ways[kind] = way
    return way


# Standard-library classes whose repr shows the reprs of values they hold, and
# that are not shown part by part: they are shown as <module.Class object at 0x...>.
_HOLDERS = (
    ("collections", "UserDict"), ("collections", "UserList"), ("collections", "UserString"),
    ("asyncio", "Future"), ("operator", "itemgetter"), ("operator", "attrgetter"), ("operator", "methodcaller"),
    ("itertools", "repeat"), ("inspect", "Signature"), ("inspect", "Parameter"), ("inspect", "BoundArguments"),
)


def _is_stdlib_instance(value, module, name):
    """isinstance(value, module.name), without importing the module (unloaded, it has no instances)."""
    kind = getattr(sys.modules.get(module), name, None)
    # by type(value) alone: isinstance() falls back to value.__class__, which a lazy proxy computes
    return isinstance(kind, type) and issubclass(type(value), kind)


def _own_dict(value):
    """The instance's own attributes, read without running a property or __getattr__."""
    try:
        return object.__getattribute__(value, "__dict__")
    except (AttributeError, TypeError):
        return {}


def _is_argparse_namespace(kind):
    namespace = getattr(sys.modules.get("argparse"), "Namespace", None)
    return namespace is not None and issubclass(kind, namespace) and _inherited(kind, "__repr__") is _inherited(namespace, "__repr__")


def _repr_is_trusted(kind):
    """A repr written in the standard library, or a built-in repr of a standard-library type.

    (A built-in repr of a third-party extension type may show what it holds.)
    """
    method = _inherited(kind, "__repr__")
    if method is object.__repr__:
        return True  # <module.Class object at 0x...>
    if isinstance(method, (types.WrapperDescriptorType, types.MethodDescriptorType)):
        return (getattr(kind, "__module__", None) or "").partition(".")[0] in _STDLIB
    return may_run(kind, "__repr__")


def _contents(value):
    """What a subclass of a built-in container, a deque or a dict view holds, as a built-in container."""
    kind = type(value)  # never isinstance(value, ...): it reads value.__class__, the program's code
    if issubclass(kind, dict):
        return dict(dict.items(value))
    for base in (list, tuple, set, frozenset):
        if issubclass(kind, base):
            return base(base.__iter__(value))
    deque = getattr(sys.modules.get("collections"), "deque", None)
    if deque is not None and issubclass(kind, deque):
        return list(deque.__iter__(value))
    if type(value) in _DICT_VIEWS:
        return list(value)
    if issubclass(kind, types.MappingProxyType):
        return dict(value.items())
    if _is_stdlib_instance(value, "collections", "UserDict") or _is_stdlib_instance(value, "collections", "UserList"):
        data = _own_dict(value).get("data")
        if type(data) in (dict, list):
            return data
    return None


_DICT_VIEWS = (type({}.keys()), type({}.values()), type({}.items()))


# -- wrappers: built-in values whose repr shows what they hold ---------------------


def _enum_member(value, kind, inner, limit, hide):
    attributes = _own_dict(value)
    return f"<{kind.__qualname__}.{attributes.get('_name_')}: {inner(attributes.get('_value_'))}>"


def _chain_map(value, kind, inner, limit, hide):
    maps = _own_dict(value).get("maps")
    return f"{kind.__qualname__}({_join((inner(mapping) for mapping in maps or ()), limit)})"


def _bound_method(value, kind, inner, limit, hide):
    function = value.__func__
    name = getattr(function, "__qualname__", None) or getattr(function, "__name__", "?")
    return f"<bound method {name} of {inner(value.__self__)}>"


def _partial(value, kind, inner, limit, hide):
    parts = [inner(value.func)] + [inner(arg) for arg in value.args]
    parts += [f"{key}={_SECRET if hide(key) else inner(item)}" for key, item in value.keywords.items()]
    return f"{kind.__module__}.{kind.__qualname__}({_join(parts, limit)})"


def _namespace(value, kind, inner, limit, hide):
    """SimpleNamespace and argparse's Namespace: their reprs show each attribute's repr."""
    items = _own_dict(value).items()
    name = "namespace" if kind is types.SimpleNamespace else kind.__qualname__
    return f"{name}({_join((f'{key}={_SECRET if hide(key) else inner(item)}' for key, item in items), limit)})"


def _exception(value, kind, inner, limit, hide):
    return f"{kind.__qualname__}({_join((inner(arg) for arg in value.args), limit)})"


def _slice(value, kind, inner, limit, hide):
    return f"slice({inner(value.start)}, {inner(value.stop)}, {inner(value.step)})"


def _socket_repr():
    return vars(sys.modules["socket"].socket).get("__repr__")


def _socket(value, kind, inner, limit, hide):
    """What socket.socket's repr shows, read through the C type's own methods.

    Its repr calls ``self.getsockname()``, ``self.fileno()``, ...: attributes a
    program may have replaced on the class (CPython's own test_socket
    replaces ``getsockname`` to inject a connection), which would then run,
    at a moment of hookwise's choosing. ``_socket.socket``'s methods are
    called directly instead.
    """
    module = sys.modules["socket"]
    c_type = module.socket.__mro__[1]
    closed = _plain_attribute(value, "_closed")
    closed = closed is True
    family = module._intenum_converter(c_type.family.__get__(value), module.AddressFamily)
    socket_type = module._intenum_converter(c_type.type.__get__(value), module.SocketKind)
    # %-formatting, as the repr itself does: str() of these enums differs between versions
    text = "<%s.%s%s fd=%i, family=%s, type=%s, proto=%i" % (
        kind.__module__, kind.__qualname__, " [closed]" if closed else "", c_type.fileno(value), family,
        socket_type, c_type.proto.__get__(value))
    if not closed:
        for label, method in (("laddr", c_type.getsockname), ("raddr", c_type.getpeername)):
            try:
                address = method(value)
            except (OSError, AttributeError):
                continue
            if address:
                text += ", %s=%s" % (label, address)
    return text + ">"


_WRAPPERS = {"method": _bound_method, "partial": _partial, "namespace": _namespace, "exception": _exception,
             "slice": _slice, "enum": _enum_member, "chainmap": _chain_map, "socket": _socket}
_WRAPPER_KINDS = {types.MethodType: "method", types.SimpleNamespace: "namespace", slice: "slice"}
try:
    from functools import partial as _partial_type  # functools is loaded with ast, before any hook

    _WRAPPER_KINDS[_partial_type] = "partial"
except ImportError:  # pragma: no cover
    pass


# -- records: dataclasses, named tuples, attrs -------------------------------------


def _fields_of(value, kind):
    """(name, value) pairs of a dataclass, named tuple or attrs instance, read without running its code."""
    try:
        if issubclass(kind, tuple) and isinstance(getattr(kind, "_fields", None), tuple):
            return list(zip(kind._fields, tuple.__iter__(value)))
        names = _record_fields.get(kind, _UNREAD)
        if names is _UNREAD:
            names = _declared_fields(kind)
        if names is not None:
            return [(name, _plain_attribute(value, name)) for name in names]
    except Exception:
        return None
    return None


_record_fields = {}  # type -> the names a dataclass or attrs class shows, or None: decided once per type


def _declared_fields(kind):
    """The names of the fields ``kind`` shows in its repr, as a tuple, if it is a dataclass or an attrs class."""
    names = None
    declared = _inherited(kind, "__dataclass_fields__")
    if isinstance(declared, dict):  # only real fields: not ClassVar or InitVar pseudo-fields
        names = tuple(name for name, field in declared.items() if getattr(field, "repr", True)
                      and getattr(getattr(field, "_field_type", None), "name", "_FIELD") == "_FIELD")
    else:
        declared = _inherited(kind, "__attrs_attrs__")
        if declared is not None:
            names = tuple(attribute.name for attribute in declared if getattr(attribute, "repr", True))
    if len(_record_fields) < 10_000:
        _record_fields[kind] = names
    return names


def _inherited(kind, name):
    """``name`` from the class dicts along the MRO, without running a metaclass's __getattr__."""
    for klass in getattr(kind, "__mro__", (kind,)):
        try:
            namespace = vars(klass)
        except TypeError:
            continue
        if name in namespace:
            return namespace[name]
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


# -- the C accelerator's saferepr -------------------------------------------------

# The reference above stays what the pure-Python runtime runs. With the accelerator, the
# values programs pass most (text, numbers, containers of them, named tuples and the types
# already decided on here) are written in C, with the same text (hookwise/_saferepr.h); it
# hands every other value to _py_repr, whose containers and records come back to it for
# what they hold.
_py_repr, _py_saferepr = _repr, saferepr


def _use_the_accelerator():
    global _repr, saferepr
    from . import accel

    speedups = accel.speedups
    if speedups is not None and hasattr(speedups, "saferepr"):
        speedups.configure_saferepr(_py_repr, _py_saferepr, _ways, _record_fields, Shown, DEFAULT_LIMIT)
        _repr, saferepr = speedups.saferepr_inner, speedups.saferepr


_use_the_accelerator()
