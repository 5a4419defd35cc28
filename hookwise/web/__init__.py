"""Incoming requests as calls: the ``web:request`` target (``--preset web``).

Every request that a WSGI or ASGI application serves becomes one call of kind
``request`` of the ``web:request`` site: its start when the server hands the
request to the application, its end when the response is complete (the body's
last byte, or the application's return under ASGI), with every output's usual
fields. What it means is in ``hookwise.semantics`` (``Request``): method, path,
query, route, client and an allow-list of headers at the start; status and size
at the end.

- The call's one argument is a ``Request``: what the server said (method, path,
  query, client, headers, the raw ``environ`` or ``scope``), and the route,
  filled in when the framework matches one (``points``). A listener sees the
  real values; outputs render them redacted.
- Its result is a ``Response`` (status, size). A request the application
  failed (an exception left it, or a framework turned one into a 5xx answer) is
  an ``error`` with that exception.
- While a request is served, ``current_request`` (a contextvar) holds it: the
  serving thread, and the asyncio tasks its handler awaits or creates, see it,
  so every call made for it has ``Call.request_id``.
- A ``start`` listener that raises ``Blocked`` refuses the request: the client
  gets a 403 with a short plain body; the application never sees it.

Where requests are seen (``points``): the servers' hand-over to the
application (wsgiref, gunicorn, uvicorn, werkzeug's server) and the test
clients (werkzeug/Flask, Django, Starlette/FastAPI, httpx's transports), so a
bare WSGI or ASGI callable is seen as well as a framework's. A request seen at
two of them (a server serving a test client's app) is one request: an inner
hand-over inside a request being served passes straight through.
"""

import sys
from dataclasses import dataclass, field

from .. import _state
from ..call import frames_by_codes
from ..listener import Blocked
from ..runtime import REGISTRY, Site

current_request = _state.current_request

MODULE = "web"
KIND = "request"
_PARAMS = (("request",), 0, None, (), None)  # one positional parameter, as binding lays them out

BODY_LIMIT = 64 * 1024
"""The most of a request body kept for a listener (the guard's form and JSON fields)."""
FORBIDDEN_BODY = b"Forbidden by hookwise\n"
FORBIDDEN_HEADERS = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(FORBIDDEN_BODY)))]


@dataclass(eq=False)
class Request:
    """One incoming request, as the server handed it to the application."""

    method: str
    path: str
    query: str
    client: object  # the client's address, or None
    route: object = None  # the framework's route pattern, once matched
    protocol: str = field(default="wsgi", repr=False)  # "wsgi" or "asgi"
    headers: list = field(default_factory=list, repr=False)  # [(lower-case name, value)], as received
    environ: object = field(default=None, repr=False)  # the WSGI environ, or None
    scope: object = field(default=None, repr=False)  # the ASGI scope, or None
    call: object = field(default=None, repr=False)  # its Call, while reported
    call_id: object = field(default=None, repr=False)
    status: object = field(default=None, repr=False)  # the response's status code, once given
    size: int = field(default=0, repr=False)  # body bytes sent so far
    exception: object = field(default=None, repr=False)  # what a framework turned into a 5xx answer
    root_path: str = field(default="", repr=False)
    content_length: object = field(default=None, repr=False)  # what the response headers say
    keep_body: bool = field(default=False, repr=False)  # set by a start listener (the guard): keep ``body``
    body: object = field(default=None, repr=False)  # the body as far as the application read it (bounded)
    body_stream: object = field(default=None, repr=False)  # the stand-in stream that keeps it
    blocked: object = field(default=None, repr=False)  # the Blocked a listener raised inside: answered 403

    def keep(self, chunk):
        """Keep ``chunk`` of the body the application just read (up to ``BODY_LIMIT`` bytes)."""
        if self.body is None:
            self.body = bytearray()
        room = BODY_LIMIT - len(self.body)
        if room > 0 and chunk:
            self.body += chunk[:room]  # an ASGI scope's root_path as served

    def header(self, name):
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(eq=False)
class Response:
    """The result of a request's call: its status code and body size (None where unknown)."""

    status: object
    size: object


class RequestSite(Site):
    """The site of ``web:request``: its calls' caller is the server code that handed the request over."""

    __slots__ = ()

    def hooked_frame(self, frame):
        while frame is not None and frame.f_code not in _SERVING_CODES:
            frame = frame.f_back
        return frame


_SERVING_CODES = set()  # the code objects of the hand-overs (wsgi, asgi, points): a request's frames
frames_by_codes[RequestSite.hooked_frame] = _SERVING_CODES  # the C accelerator makes hooked_frame's walk itself
_site = None
_waiting_targets = []  # targets that have not seen a request yet: "matched nothing" at exit until one comes


def serving_code(function):
    """Mark ``function`` as a hand-over: its frame is where a request's call runs."""
    _SERVING_CODES.add(function.__code__)
    return function


def start(targets):
    """Report requests to the listeners of ``targets`` (the run's ``web:`` targets)."""
    global _site
    if _site is None:
        _site = RequestSite(MODULE, KIND, KIND, _PARAMS)
        _site.code = begin.__code__  # not None: callers are found through hooked_frame
        REGISTRY.add_site(_site, targets)
        for target in targets:
            target.matched = False
        _waiting_targets[:] = targets


def stop():
    global _site
    _site = None


def serving():
    """Whether a new request would be reported: someone listens, and none is being served in this context."""
    site = _site
    return site is not None and site.on is not None and current_request.get() is None


def begin(request):
    """Report the start of ``request``; its Call, or None when it is not reported.

    None too inside a request already being served (the same request seen at
    an inner hand-over). Raises ``Blocked`` when a listener refuses it.
    """
    site = _site
    if site is None or not site.on or current_request.get() is not None:
        return None
    if _waiting_targets:
        for target in _waiting_targets:
            target.matched = True
        del _waiting_targets[:]
    call = site.start(request)
    if call is not None:
        request.call = call
        request.call_id = call.call_id
    return call


def finish(call, request):
    """The response is complete: an end; an error when a framework answered 5xx for an exception,
    or when a listener refused something the request asked for (answered 403)."""
    site = call.site
    exception = request.blocked or request.exception
    if request.blocked is not None or (exception is not None and (request.status is None or request.status >= 500)):
        _report_exception(site, call, exception)
    else:
        site.end(call, Response(request.status, request.size))
    request.call = None


def failed(call, request):
    """The application raised (call inside the ``except`` block): the server answers 500 if it still can."""
    if request.status is None:
        request.status = 500
    call.site.error(call)
    request.call = None


def _report_exception(site, call, exception):
    # site.error reads the exception being handled: raise it here, then give it back untouched
    traceback, context = exception.__traceback__, exception.__context__
    try:
        raise exception
    except BaseException:
        site.error(call)
    finally:
        exception.__traceback__, exception.__context__ = traceback, context


def status_code(status):
    """The code of a WSGI status line ("404 Not Found"), or None."""
    try:
        return int(str(status).split(None, 1)[0])
    except (ValueError, IndexError):
        return None


def hide_own_frame(code):
    """Drop the frame running ``code`` from the top of the exception being handled (as without hookwise)."""
    exc = sys.exc_info()[1]
    tb = exc.__traceback__ if exc is not None else None
    if tb is not None and tb.tb_frame.f_code is code:
        exc.__traceback__ = tb.tb_next


BARE_RAISE_RESTORES_TRACEBACK = sys.version_info < (3, 11)
"""On 3.10 a bare ``raise`` re-raises the traceback saved at the ``except``: raise the exception itself."""

__all__ = ["Blocked", "Request", "Response", "current_request", "begin", "finish", "failed"]
