"""JSON text for the reports written at exit, without the ``json`` module.

The program may hook ``json`` (it is an ordinary stdlib module), and calls that
hookwise makes at exit are not covered by the recursion guard; so the reports
are encoded here, from plain dicts, lists, strings and numbers that hookwise
built itself. Strings come out as ASCII, so the text is safe in any encoding.

Must never: call back into user objects (everything given here is already
rendered text), or emit NaN/Infinity (they are not JSON; they become null).
"""

from _json import encode_basestring_ascii as quote  # CPython's own C string encoder

from .. import accel


def dumps(value):
    parts = []
    _encode(value, parts.append)
    return "".join(parts)


_py_dumps = dumps  # the reference; the accelerator's json_dumps writes the same text (every event's fields go here)
if accel.speedups is not None and hasattr(accel.speedups, "json_dumps"):
    dumps = accel.speedups.json_dumps


def _encode(value, emit):
    if isinstance(value, str):
        emit(quote(value))
    elif value is None:
        emit("null")
    elif value is True:
        emit("true")
    elif value is False:
        emit("false")
    elif isinstance(value, int):
        emit(int.__repr__(value))
    elif isinstance(value, float):
        # repr is the shortest text that reads back as the same float: 12.345 stays 12.345
        emit(float.__repr__(value) if value == value and value not in (_INF, -_INF) else "null")
    elif isinstance(value, dict):
        emit("{")
        first = True
        for key, item in value.items():
            if not first:
                emit(",")
            first = False
            emit(quote(str(key)))
            emit(":")
            _encode(item, emit)
        emit("}")
    elif isinstance(value, (list, tuple)):
        emit("[")
        first = True
        for item in value:
            if not first:
                emit(",")
            first = False
            _encode(item, emit)
        emit("]")
    else:
        raise TypeError(f"not JSON data: {type(value).__name__}")


_INF = float("inf")


def for_script_element(text):
    """JSON text that can sit inside an HTML ``<script>`` element: no ``</script>``, no ``<!--``.

    ``<``, ``>`` and ``&`` only occur inside JSON strings here, where their
    ``\\u`` escapes mean the same characters.
    """
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
