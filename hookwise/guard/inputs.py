"""What the guard treats as untrusted input, each value with where it came from.

In a request (``hookwise.web.Request``): query parameters, path segments,
cookies, a few headers a client sets freely, and the body as the application
reads it (form fields, JSON leaves; bounded). Outside a request: the
program's command-line arguments. An ``Input`` is ``(value, source)``:
``("1; id", "query parameter host")``.

Parsing here never consumes what the application reads: the body is the copy
``hookwise.web`` keeps while the application reads it (``Request.body``).
"""

import sys
from urllib.parse import parse_qsl, unquote

MAX_INPUTS = 200  # per request: a body with more leaves is not read past them
MAX_JSON_DEPTH = 8
_HEADERS = ("user-agent", "referer", "x-forwarded-for", "x-forwarded-host", "x-original-url", "x-rewrite-url")


class Input(tuple):
    __slots__ = ()

    def __new__(cls, value, source):
        return tuple.__new__(cls, (value, source))

    value = property(lambda self: self[0])
    source = property(lambda self: self[1])


def of_request(request):
    """The inputs of ``request``, the body's as far as the application has read it (cached per body size)."""
    cached = getattr(request, "guard_inputs", None)
    body = request.body
    size = None if body is None else len(body)
    if cached is not None and cached[0] == size:
        return cached[1]
    found = []
    _add(found, parse_qsl(request.query or "", keep_blank_values=True), "query parameter")
    for index, segment in enumerate(part for part in (request.path or "").split("/") if part):
        found.append(Input(unquote(segment), f"path segment {index + 1}"))
    cookie = request.header("cookie")
    if cookie:
        pairs = [piece.strip().partition("=") for piece in cookie.split(";") if "=" in piece]
        _add(found, [(name, unquote(value)) for name, _, value in pairs], "cookie")
    for name in _HEADERS:
        value = request.header(name)
        if value:
            found.append(Input(value, f"header {name}"))
    if body:
        found.extend(_body_inputs(request, bytes(body)))
    found = [item for item in found if item.value][:MAX_INPUTS]
    request.guard_inputs = (size, found)
    return found


def of_process():
    """Outside a request: the command-line arguments the program was given."""
    return [Input(value, f"command-line argument {index}") for index, value in enumerate(sys.argv[1:], 1)
            if isinstance(value, str) and value]


def _add(found, pairs, kind):
    for name, value in pairs:
        found.append(Input(value, f"{kind} {name}"))


def _body_inputs(request, body):
    kind = (request.header("content-type") or "").lower()
    text = body.decode("utf-8", "replace")
    if "json" in kind:
        try:
            import json

            document = json.loads(text)
        except ValueError:
            return [Input(text, "body")]
        leaves = []
        _json_leaves(document, "", leaves, 0)
        return leaves
    if "x-www-form-urlencoded" in kind:
        found = []
        _add(found, parse_qsl(text, keep_blank_values=True), "form field")
        return found
    return [Input(text, "body")] if len(text) <= 65536 else []


def _json_leaves(value, path, leaves, depth):
    if len(leaves) >= MAX_INPUTS or depth > MAX_JSON_DEPTH:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            _json_leaves(item, f"{path}.{key}" if path else str(key), leaves, depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _json_leaves(item, f"{path}[{index}]", leaves, depth + 1)
    elif isinstance(value, str):
        leaves.append(Input(value, f"json field {path or '(document)'}"))
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        leaves.append(Input(str(value), f"json field {path or '(document)'}"))
