"""Bounded, never-failing ``repr`` for arguments, results and exceptions.

A listener must be able to show any value without changing the program: a
``__repr__`` that raises, a list of ten million items or a megabyte string must
neither fail the call nor flood the output. Built-in containers and strings are
cut while they are being written, so their cost is bounded too; any other object
gets its own ``repr()``, cut afterwards.
"""

DEFAULT_LIMIT = 200
_ELLIPSIS = "..."
_SECRET = "'***'"
_MAX_DEPTH = 4

_SEQUENCES = {list: ("[", "]"), tuple: ("(", ")"), set: ("{", "}"), frozenset: ("frozenset({", "})")}


def saferepr(value, limit=DEFAULT_LIMIT, secret=None):
    """``repr(value)`` in at most ``limit`` characters; never raises an Exception.

    ``secret(key)``, when given, hides the values of dict entries whose key it
    accepts, at any depth: ``{'password': '***'}``.
    """
    try:
        text = _repr(value, limit, 0, secret)
    except Exception as exc:  # a broken __repr__ is the program's business, not ours
        text = f"<{_type_name(value)} object; repr() raised {_type_name(exc)}>"
    if len(text) > limit:
        text = text[: max(limit - len(_ELLIPSIS), 0)] + _ELLIPSIS
    return text


def _type_name(value):
    try:
        return type(value).__name__
    except Exception:
        return "?"


def _repr(value, limit, depth, secret=None):
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
        items = _join((_repr(item, limit, depth + 1, secret) for item in value), limit)
        if kind is tuple and len(value) == 1:
            items += ","
        return opening + items + closing
    if kind is dict:
        if depth >= _MAX_DEPTH and value:
            return "{" + _ELLIPSIS + "}"
        pairs = (
            f"{_repr(key, limit, depth + 1)}: {_SECRET if secret is not None and secret(key) else _repr(item, limit, depth + 1, secret)}"
            for key, item in value.items()
        )
        return "{" + _join(pairs, limit) + "}"
    return repr(value)


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
