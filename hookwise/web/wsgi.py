"""A WSGI application, seen: each call of it is a request (``web:request``).

``wrap(application)`` gives a ``WsgiApplication``: called as the application
is, it reports the request's start, passes the call on with a
``start_response`` that notes the status, and returns the application's body
inside a ``Body`` that counts the bytes the server sends and ends the request
when the server closes it (PEP 3333: a server calls ``close()`` when it is
done, whatever happened). Calls made while the body is produced (a streamed
response) belong to the request too.

A body that is the server's own ``wsgi.file_wrapper`` is handed back as it is
(the server sends the file with ``sendfile``): its request ends at once, with
the size the ``Content-Length`` header gave.
"""

from _weakref import ref as _weakref

from .. import _state
from ..listener import Blocked
from . import (BARE_RAISE_RESTORES_TRACEBACK, FORBIDDEN_BODY, FORBIDDEN_HEADERS, Request, begin, failed, finish,
               hide_own_frame, serving, serving_code, status_code)

current_request = _state.current_request


def wrap(application):
    """``application`` whose calls are requests; an application wrapped already is given back."""
    if type(application) is WsgiApplication or application is None:
        return application
    return WsgiApplication(application)


def request_from_environ(environ):
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    headers = []
    for key, value in environ.items():
        if type(key) is str and key.startswith("HTTP_"):
            headers.append((key[5:].replace("_", "-").lower(), value))
    for key, name in (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length")):
        if environ.get(key):
            headers.append((name, environ[key]))
    return Request(
        method=environ.get("REQUEST_METHOD"),
        path=_as_text(path),
        query=_as_text(environ.get("QUERY_STRING", "")),
        client=environ.get("REMOTE_ADDR") or None,
        protocol="wsgi",
        headers=headers,
        environ=environ,
    )


def content_length(headers):
    """The Content-Length of WSGI response headers, or None."""
    try:
        for name, value in headers:
            if type(name) is str and name.lower() == "content-length":
                return int(value)
    except (TypeError, ValueError):
        pass
    return None


def _as_text(value):
    # WSGI gives the path as bytes decoded as Latin-1 (PEP 3333): read them as the UTF-8 they usually are
    if type(value) is not str:
        return value
    try:
        return value.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return value


class WsgiApplication:
    """Stands for a WSGI application; everything but the call is the application's own."""

    __slots__ = ("application", "bodies")

    def __init__(self, application, bodies=None):
        self.application = application
        self.bodies = bodies  # a list that gets each Body: a test client ends them when it returns

    @serving_code
    def __call__(self, environ, start_response):
        if not serving() or type(environ) is not dict:  # nobody listens, or an inner hand-over of a request
            return self.application(environ, start_response)
        request = request_from_environ(environ)
        try:
            call = begin(request)
        except Blocked:
            start_response("403 Forbidden", list(FORBIDDEN_HEADERS))
            return [FORBIDDEN_BODY]
        if call is None:
            return self.application(environ, start_response)

        def noting_start_response(status, headers, *exc_info):
            if request.blocked is not None:  # refused inside: a 403, whatever the application answers
                return _forbid(request, start_response, exc_info)
            request.status = status_code(status)
            request.content_length = content_length(headers)
            return start_response(status, headers, *exc_info)

        if request.keep_body and environ.get("wsgi.input") is not None:
            request.body_stream = environ["wsgi.input"] = KeepingInput(environ["wsgi.input"], request)
        token = current_request.set(request)
        try:
            body = self.application(environ, noting_start_response)
        except BaseException as exc:
            if request.blocked is not None and request.status in (None, 403):
                _forbid(request, start_response, (type(exc), exc, exc.__traceback__))
                finish(call, request)
                return [FORBIDDEN_BODY]
            failed(call, request)
            hide_own_frame(_CALL_CODE)
            if BARE_RAISE_RESTORES_TRACEBACK:
                raise exc
            raise
        finally:
            current_request.reset(token)
        if request.blocked is not None:
            _close(body)
            if request.status is None:
                _forbid(request, start_response, ())
            body = [FORBIDDEN_BODY]
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and type(body) is file_wrapper:
            request.size = request.content_length
            finish(call, request)
            return body
        body = Body(body, request, call)
        if self.bodies is not None:
            self.bodies.append(body)
        return body

    def __getattr__(self, name):
        return getattr(self.application, name)

    def __repr__(self):
        return repr(self.application)


_CALL_CODE = WsgiApplication.__call__.__code__


def _forbid(request, start_response, exc_info):
    request.status = 403
    request.content_length = len(FORBIDDEN_BODY)
    if exc_info:
        start_response("403 Forbidden", list(FORBIDDEN_HEADERS), exc_info)
    else:
        start_response("403 Forbidden", list(FORBIDDEN_HEADERS))
    return _discard


def _discard(data):
    """The write() of a refused request: what the application writes is not sent."""


def _close(body):
    close = getattr(body, "close", None)
    if close is not None:
        close()


class KeepingInput:
    """``wsgi.input`` as the application reads it, with what it read kept on the request (bounded).

    It holds its request weakly: the request holds the environ, which holds this
    stand-in, and a cycle would leave every guarded request (its environ and
    inputs) to the cyclic garbage collector, a full collection every few hundred
    requests. The request lives while it is served.
    """

    __slots__ = ("_stream", "_request")

    def __init__(self, stream, request):
        self._stream = stream
        self._request = _weakref(request)

    def _keep(self, data):
        request = self._request()
        if request is not None:
            request.keep(data)

    def read(self, *args):
        data = self._stream.read(*args)
        self._keep(data)
        return data

    def readline(self, *args):
        data = self._stream.readline(*args)
        self._keep(data)
        return data

    def readinto(self, buffer):
        count = self._stream.readinto(buffer)
        if count:
            self._keep(bytes(memoryview(buffer)[:count]))
        return count

    def read1(self, *args):
        data = self._stream.read1(*args)
        self._keep(data)
        return data

    def readlines(self, *args):
        lines = self._stream.readlines(*args)
        for line in lines:
            self._keep(line)
        return lines

    def __iter__(self):
        for line in self._stream:
            self._keep(line)
            yield line

    def __getattr__(self, name):
        return getattr(self._stream, name)


class Body:
    """The application's body: counted as the server sends it; closing it ends the request."""

    __slots__ = ("_body", "_iterator", "_request", "_call")

    def __init__(self, body, request, call):
        self._body = body
        self._iterator = None
        self._request = request
        self._call = call

    def __iter__(self):
        return self

    def __next__(self):
        request = self._request
        token = current_request.set(request)
        try:
            if self._iterator is None:
                self._iterator = iter(self._body)
            chunk = next(self._iterator)
        except StopIteration:
            self._end()  # the last byte is out: the response is complete (close() still runs in the request)
            raise
        except BaseException as exc:
            self._fail()
            hide_own_frame(_NEXT_CODE)
            if BARE_RAISE_RESTORES_TRACEBACK:
                raise exc
            raise
        finally:
            current_request.reset(token)
        try:
            request.size += len(chunk)
        except TypeError:
            pass
        return chunk

    def close(self):
        close = getattr(self._body, "close", None)
        token = current_request.set(self._request)
        try:
            if close is not None:
                close()
        except BaseException as exc:
            self._fail()
            hide_own_frame(_CLOSE_CODE)
            if BARE_RAISE_RESTORES_TRACEBACK:
                raise exc
            raise
        finally:
            current_request.reset(token)
        self._end()

    def __len__(self):  # a server may ask a list body its length (one chunk: Content-Length)
        return len(self._body)

    def end_now(self):
        """A test client that reads the body when asked, maybe never: a body of a known length ends now.

        A streamed one (no Content-Length) ends when it is read to its end or
        closed, and the calls that make it are the request's.
        """
        if self._call is not None and self._request.content_length is not None:
            self._request.size = self._request.content_length
            self._end()

    def _end(self):
        call, self._call = self._call, None
        if call is not None:
            finish(call, self._request)

    def _fail(self):
        call, self._call = self._call, None
        if call is not None:
            failed(call, self._request)

    def __getattr__(self, name):
        return getattr(self._body, name)


_NEXT_CODE = Body.__next__.__code__
_CLOSE_CODE = Body.close.__code__
