"""Redaction by content: what a value says, not only what its parameter is called.

``saferepr`` hides a value whose parameter or dict key has a secret name
(``password=``, ``{"token": ...}``). A secret also travels inside text:

- credentials in a URL or DSN: ``postgresql://app:hunter2@db/shop`` is shown
  as ``postgresql://app:***@db/shop``;
- a query parameter or form field with a secret name, in a URL or a query
  string: ``/login?user=bob&token=abc`` as ``/login?user=bob&token=***``.

And a WSGI environ holds the whole process environment when wsgiref serves it
(``DATABASE_URL``, API keys): only the keys the WSGI and CGI specifications
define, the request's ``HTTP_*`` headers and servers' dotted extensions
(``wsgi.input``, ``gunicorn.socket``) are shown; the rest is left out.

Must never fail, or run the program's code: it sees str and bytes only (exact
types) and dicts it only reads by key.
"""

import re

REDACTED = "***"

_URL_CREDENTIALS = re.compile(r"(\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s/?#@:]*:)([^\s/?#@]+)(?=@)")
# name=value after the start, ?, &, ; or whitespace: the value runs to the next separator
_FIELD = re.compile(r"((?:^|[?&;\s])([^\s=&;?#/]+)=['\"]?)([^\s&;#'\"]*)")  # a quote around the value stays


_seen = {}  # (secret, text) -> redacted: a program shows the same statements and URLs again and again
_SEEN_LIMIT, _SEEN_TEXT = 4096, 2048


def redact_text(text, secret):
    """``text`` with URL credentials and secret-named fields replaced by ``***`` (``secret(name)`` decides)."""
    if "=" not in text and "://" not in text:
        return text
    key = (secret, text)
    known = _seen.get(key)
    if known is not None:
        return known
    redacted = redact_credentials(text)
    if "=" in redacted:
        redacted = _FIELD.sub(lambda match: match.group(1) + REDACTED if secret(match.group(2)) and match.group(3)
                              else match.group(0), redacted)
    if len(text) <= _SEEN_TEXT:
        if len(_seen) >= _SEEN_LIMIT:
            _seen.clear()  # a bounded cache: many different texts mean little repetition to gain from
        _seen[key] = redacted
    return redacted


def redact_credentials(text):
    """``text`` with the passwords of URLs and DSNs replaced by ``***`` (an SQL statement gets only this)."""
    if "://" in text:
        text = _URL_CREDENTIALS.sub(lambda match: match.group(1) + REDACTED, text)
    return text


def redact_bytes(data, secret):
    """The same for bytes (a request body, a raw URL), read as Latin-1 so that every byte stays itself."""
    if b"://" not in data and b"=" not in data:
        return data
    text = data.decode("latin-1")
    redacted = redact_text(text, secret)
    return data if redacted == text else redacted.encode("latin-1")


def redact_value(value, secret):
    """A str, bytes or bytearray with its secrets hidden by content (the same type back)."""
    kind = type(value)
    if kind is str:
        return redact_text(value, secret)
    redacted = redact_bytes(bytes(value), secret)
    return redacted if kind is bytes else bytearray(redacted)


# -- WSGI environ ---------------------------------------------------------------------

_CGI_KEYS = frozenset((
    "REQUEST_METHOD", "SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "CONTENT_TYPE", "CONTENT_LENGTH",
    "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "SERVER_SOFTWARE", "REMOTE_ADDR", "REMOTE_HOST",
    "REMOTE_PORT", "REMOTE_USER", "AUTH_TYPE", "GATEWAY_INTERFACE", "HTTPS", "REQUEST_URI", "RAW_URI",
))


def is_wsgi_environ(value):
    """True for a dict that is a WSGI environ (PEP 3333 makes wsgi.version and REQUEST_METHOD required)."""
    return type(value) is dict and "wsgi.version" in value and "REQUEST_METHOD" in value


def wsgi_items(environ):
    """The environ's entries a report may show: not those copied from the process environment."""
    return [(key, item) for key, item in environ.items()
            if type(key) is str and (key in _CGI_KEYS or key.startswith("HTTP_") or "." in key)]
