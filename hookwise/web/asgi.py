"""An ASGI application, seen: each ``http`` call of it is a request (``web:request``).

``wrap(application)`` gives an ``AsgiApplication`` (an ASGI 3 callable: wrap
after a server has told ASGI 2 from 3). It reports the request's start, passes
the call on with a ``send`` that notes the status and counts the body, and
ends the request when the application returns: under ASGI the response is
complete then. Lifespan and websocket scopes pass straight through.

The route: Starlette's router (and so FastAPI's) leaves the matched route in
the scope (``scope["route"]``), and mounted apps' prefixes in ``root_path``.
"""

from .. import _state
from ..listener import Blocked
from . import (BARE_RAISE_RESTORES_TRACEBACK, FORBIDDEN_BODY, FORBIDDEN_HEADERS, Request, begin, failed, finish,
               hide_own_frame, serving, serving_code)

current_request = _state.current_request


def wrap(application):
    if type(application) is AsgiApplication or application is None:
        return application
    return AsgiApplication(application)


def request_from_scope(scope):
    headers = []
    for item in scope.get("headers") or ():
        try:
            name, value = item
            headers.append((_text(name).lower(), _text(value)))
        except (TypeError, ValueError):
            continue
    client = scope.get("client")
    return Request(
        method=scope.get("method"),
        path=scope.get("path"),
        query=_text(scope.get("query_string", b"")),
        client=client[0] if isinstance(client, (tuple, list)) and client else None,
        protocol="asgi",
        headers=headers,
        scope=scope,
    )


def _text(value):
    return value.decode("latin-1") if isinstance(value, (bytes, bytearray)) else value


def route_in(scope, request):
    """The route a Starlette router matched, with the prefixes of the apps it is mounted in."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    if type(path) is not str:
        return None
    root, served_root = scope.get("root_path") or "", request.root_path
    prefix = root[len(served_root):] if root.startswith(served_root) else ""
    return prefix + path


class AsgiApplication:
    """Stands for an ASGI 3 application; everything but the call is the application's own."""

    __slots__ = ("application",)

    def __init__(self, application):
        self.application = application

    @serving_code
    async def __call__(self, scope, receive, send):
        if not serving() or type(scope) is not dict or scope.get("type") != "http":
            return await self.application(scope, receive, send)  # nobody listens, an inner hand-over, no request
        request = request_from_scope(scope)
        request.root_path = scope.get("root_path") or ""
        try:
            call = begin(request)
        except Blocked:
            await send({"type": "http.response.start", "status": 403,
                        "headers": [(name.lower().encode(), value.encode()) for name, value in FORBIDDEN_HEADERS]})
            await send({"type": "http.response.body", "body": FORBIDDEN_BODY})
            return None
        if call is None:
            return await self.application(scope, receive, send)

        async def noting_send(message):
            kind = message.get("type") if type(message) is dict else None
            if request.blocked is not None and kind in ("http.response.start", "http.response.body"):
                return await _forbid(request, send, kind)  # refused inside: a 403, whatever the app answers
            if kind == "http.response.start":
                request.status = message.get("status")
            elif kind == "http.response.body":
                try:
                    request.size += len(message.get("body", b""))
                except TypeError:
                    pass
            return await send(message)

        if request.keep_body:
            receive = _keeping(receive, request)
        token = current_request.set(request)
        try:
            result = await self.application(scope, receive, noting_send)
        except BaseException as exc:
            request.route = request.route or route_in(scope, request)
            if request.blocked is not None and request.status in (None, 403):
                if request.status is None:
                    await _forbid(request, send, "http.response.start")
                    await _forbid(request, send, "http.response.body")
                finish(call, request)
                return None
            failed(call, request)
            hide_own_frame(_CALL_CODE)
            if BARE_RAISE_RESTORES_TRACEBACK:
                raise exc
            raise
        finally:
            current_request.reset(token)
        request.route = request.route or route_in(scope, request)
        finish(call, request)
        return result

    def __getattr__(self, name):
        return getattr(self.application, name)

    def __repr__(self):
        return repr(self.application)


_CALL_CODE = AsgiApplication.__call__.__code__


async def _forbid(request, send, kind):
    """Send the 403 in place of the application's answer: its start, then one body; the rest is dropped."""
    if kind == "http.response.start" and request.status is None:
        request.status = 403
        await send({"type": "http.response.start", "status": 403,
                    "headers": [(name.lower().encode(), value.encode()) for name, value in FORBIDDEN_HEADERS]})
    elif kind == "http.response.body" and not request.size:
        request.size = len(FORBIDDEN_BODY)
        await send({"type": "http.response.body", "body": FORBIDDEN_BODY, "more_body": False})


def _keeping(receive, request):
    async def keeping_receive():
        message = await receive()
        if type(message) is dict and message.get("type") == "http.request":
            request.keep(message.get("body") or b"")
        return message
    return keeping_receive
