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
    """Outside a request: the command-line arguments the program was given, and the lines it read on stdin."""
    found = [Input(value, f"command-line argument {index}") for index, value in enumerate(sys.argv[1:], 1)
             if isinstance(value, str) and value]
    found.extend(Input(line, f"standard input line {number}") for number, line in _stdin_lines)
    return found


# -- standard input ---------------------------------------------------------------------
MAX_STDIN_LINES = 100  # the most recent lines are kept, each cut at MAX_STDIN_LINE characters
MAX_STDIN_LINE = 4096
_stdin_lines = []  # (line number, text without its newline)
_stdin_count = [0]


def keep_stdin():
    """Put a stand-in in front of ``sys.stdin`` that keeps the lines the program reads (bounded).

    Everything else is the real stream's: its ``buffer``, ``fileno()`` and
    ``isatty()``. (Reading ``sys.stdin.buffer`` or the descriptor directly,
    and ``input()`` at an interactive terminal, go past it.)
    """
    stream = sys.stdin
    if stream is not None and not isinstance(stream, KeepingStdin):
        sys.stdin = KeepingStdin(stream)


def _kept(text):
    if not isinstance(text, str) or not text:
        return
    for line in text.splitlines():
        _stdin_count[0] += 1
        if line:
            _stdin_lines.append((_stdin_count[0], line[:MAX_STDIN_LINE]))
    del _stdin_lines[:-MAX_STDIN_LINES]


class KeepingStdin:
    __slots__ = ("_stream",)

    def __init__(self, stream):
        self._stream = stream

    def readline(self, *args):
        line = self._stream.readline(*args)
        _kept(line)
        return line

    def read(self, *args):
        text = self._stream.read(*args)
        _kept(text)
        return text

    def readlines(self, *args):
        lines = self._stream.readlines(*args)
        for line in lines:
            _kept(line)
        return lines

    def __iter__(self):
        return self

    def __next__(self):
        line = self._stream.readline()
        if not line:
            raise StopIteration
        _kept(line)
        return line

    def __getattr__(self, name):
        return getattr(self._stream, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return self._stream.__exit__(*exc_info)


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
