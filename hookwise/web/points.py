"""Where requests are seen: the servers' and test clients' hand-over to the application, and
what frameworks know about a request (its route, the exception behind a 5xx answer).

``POINTS`` maps a module name to the function that installs its points once
the module has run (``loader.web`` calls it at once for a loaded module, or
right after the import). Each point replaces one attribute, with an undo step;
the replacement calls the original and is a stand-in, never a change of
behaviour: the application gets the same arguments (its own ``start_response``
and ``send`` seen through a note-taker), and returns what it returns.

Servers: wsgiref (``BaseHandler.run``: also Django's runserver), gunicorn's
WSGI workers (``Worker.load_wsgi``) and its ASGI worker, uvicorn
(``Config.load``, after it has told WSGI, ASGI 2 and 3 apart), werkzeug's
development server (Flask's ``app.run``). Test clients: werkzeug's
(``run_wsgi_app``: Flask's test client), Starlette's (FastAPI's), httpx's WSGI
and ASGI transports, and Django's, which calls its handler without WSGI.
Frameworks: ``Flask.wsgi_app``, Django's WSGI and ASGI handlers and
``Starlette.__call__``, so that any other server's requests are seen too.
"""

import functools

from .. import _state
from ..listener import Blocked
from . import BARE_RAISE_RESTORES_TRACEBACK, asgi, begin, failed, finish, hide_own_frame, serving_code, wsgi

current_request = _state.current_request


def _replace(holder, name, make, undo):
    original = holder.__dict__.get(name) if isinstance(holder, type) else getattr(holder, name, None)
    if original is None or getattr(original, "__hookwise_web__", False):
        return
    replacement = make(original)
    replacement.__hookwise_web__ = True
    functools.update_wrapper(replacement, original)
    setattr(holder, name, replacement)
    undo.append(lambda: setattr(holder, name, original))


def _after(original, wrap_attribute, wrap):
    """A method that runs ``original``, then wraps ``self.<wrap_attribute>`` with ``wrap``."""
    def replacement(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        application = getattr(self, wrap_attribute, None)
        if application is not None:
            setattr(self, wrap_attribute, wrap(application))
        return result
    return replacement


# -- servers ---------------------------------------------------------------------
def _wsgiref(module, undo):
    def make(original):
        def run(self, application):
            return original(self, wsgi.wrap(application))
        return run
    _replace(module.BaseHandler, "run", make, undo)


def _gunicorn_base(module, undo):
    def make(original):
        def load_wsgi(self):
            original(self)
            # gunicorn's own WSGI workers only: another project's worker (uvicorn's) serves ASGI with it
            if type(self).__module__.startswith("gunicorn.") and getattr(self, "wsgi", None) is not None:
                self.wsgi = wsgi.wrap(self.wsgi)
        return load_wsgi
    _replace(module.Worker, "load_wsgi", make, undo)


def _gunicorn_asgi(module, undo):
    _replace(module.ASGIWorker, "load_wsgi", lambda original: _after(original, "asgi", asgi.wrap), undo)


def _uvicorn(module, undo):
    _replace(module.Config, "load", lambda original: _after(original, "loaded_app", asgi.wrap), undo)


def _werkzeug_serving(module, undo):
    _replace(module.BaseWSGIServer, "__init__", lambda original: _after(original, "app", wsgi.wrap), undo)


# -- test clients ------------------------------------------------------------------
def _werkzeug_test(module, undo):
    def make(original):
        def run_wsgi_app(app, *args, **kwargs):
            bodies = []
            result = original(wsgi.WsgiApplication(app, bodies), *args, **kwargs)
            for body in bodies:
                body.end_now()
            return result
        return run_wsgi_app
    _replace(module, "run_wsgi_app", make, undo)


def _starlette_testclient(module, undo):
    _replace(module._TestClientTransport, "__init__", lambda original: _after(original, "app", asgi.wrap), undo)


def _httpx_asgi(module, undo):
    _replace(module.ASGITransport, "__init__", lambda original: _after(original, "app", asgi.wrap), undo)


def _httpx_wsgi(module, undo):
    _replace(module.WSGITransport, "__init__", lambda original: _after(original, "app", wsgi.wrap), undo)


def _django_test_client(module, undo):
    """Django's test client calls its handler with the environ alone and gets the response object."""
    def make_sync(original):
        @serving_code
        def __call__(self, environ):
            request = wsgi.request_from_environ(environ)
            try:
                call = begin(request)
            except Blocked:
                return _django_forbidden(environ)
            if call is None:
                return original(self, environ)
            if request.keep_body and environ.get("wsgi.input") is not None:
                request.body_stream = environ["wsgi.input"] = wsgi.KeepingInput(environ["wsgi.input"], request)
            token = current_request.set(request)
            try:
                response = original(self, environ)
            except BaseException as exc:
                if request.blocked is not None:
                    return _django_refused(request, call, environ)
                failed(call, request)
                hide_own_frame(__call__.__code__)
                if BARE_RAISE_RESTORES_TRACEBACK:
                    raise exc
                raise
            finally:
                current_request.reset(token)
            if request.blocked is not None:
                return _django_refused(request, call, environ)
            _note_django_response(request, response)
            finish(call, request)
            return response
        return __call__

    def make_async(original):
        @serving_code
        async def __call__(self, scope):
            request = asgi.request_from_scope(scope)
            try:
                call = begin(request)
            except Blocked:
                from django.core.handlers.asgi import ASGIRequest

                response = _django_forbidden()
                response.asgi_request = ASGIRequest(scope, scope.get("_body_file") or _empty_body())
                return response
            if call is None:
                return await original(self, scope)
            token = current_request.set(request)
            try:
                response = await original(self, scope)
            except BaseException as exc:
                failed(call, request)
                hide_own_frame(__call__.__code__)
                if BARE_RAISE_RESTORES_TRACEBACK:
                    raise exc
                raise
            finally:
                current_request.reset(token)
            _note_django_response(request, response)
            finish(call, request)
            return response
        return __call__

    _replace(module.ClientHandler, "__call__", make_sync, undo)
    _replace(module.AsyncClientHandler, "__call__", make_async, undo)


def _note_django_response(request, response):
    request.status = getattr(response, "status_code", None)
    try:
        request.size = None if getattr(response, "streaming", False) else len(response.content)
    except Exception:
        request.size = None


def _empty_body():
    import io

    return io.BytesIO()


def _django_forbidden(environ=None):
    from django.http import HttpResponseForbidden

    from . import FORBIDDEN_BODY

    response = HttpResponseForbidden(FORBIDDEN_BODY, content_type="text/plain; charset=utf-8")
    if environ is not None:
        from django.core.handlers.wsgi import WSGIRequest

        response.wsgi_request = WSGIRequest(environ)  # what the test client reads of every response
    return response


def _django_refused(request, call, environ):
    """A request a listener refused inside: the 403, whatever Django made of the exception."""
    response = _django_forbidden(environ)
    request.status, request.size = 403, len(response.content)
    finish(call, request)
    return response


# -- the frameworks' own entry points ------------------------------------------------
# Any other server (waitress, hypercorn, daphne, a hand-written one) still hands the request to the
# framework: there it is seen too. Inside a request seen already (a server's hand-over) they pass it on.
def _wsgi_entry(original):
    def entry(self, environ, start_response):
        return wsgi.WsgiApplication(functools.partial(original, self))(environ, start_response)
    return entry


def _asgi_entry(original):
    async def entry(self, scope, receive, send):
        return await asgi.AsgiApplication(functools.partial(original, self))(scope, receive, send)
    return entry


def _flask_entry(module, undo):
    _replace(module.Flask, "wsgi_app", _wsgi_entry, undo)


def _django_wsgi_entry(module, undo):
    _replace(module.WSGIHandler, "__call__", _wsgi_entry, undo)


def _django_asgi_entry(module, undo):
    _replace(module.ASGIHandler, "__call__", _asgi_entry, undo)


def _starlette_entry(module, undo):
    _replace(module.Starlette, "__call__", _asgi_entry, undo)


# -- what frameworks know ------------------------------------------------------------
def _flask_ctx(module, undo):
    def make(original):
        def match_request(self):
            result = original(self)
            request = current_request.get()
            rule = getattr(getattr(self, "request", None), "url_rule", None)
            if request is not None and rule is not None:
                request.route = getattr(rule, "rule", None)
            return result
        return match_request
    _replace(module.RequestContext, "match_request", make, undo)


def _flask_app(module, undo):
    _flask_entry(module, undo)

    def make(original):
        def handle_exception(self, e):
            request = current_request.get()
            if request is not None:
                request.exception = e  # the exception Flask answers with a 500
            return original(self, e)
        return handle_exception
    _replace(module.Flask, "handle_exception", make, undo)


def _django_base(module, undo):
    def make(original):
        def resolve_request(self, request):
            match = original(self, request)
            served = current_request.get()
            route = getattr(match, "route", None)
            if served is not None and type(route) is str:
                # Django's routes are relative to the site's root: shown from it, as the others' are
                served.route = route if route.startswith(("/", "^")) else "/" + route
            return match
        return resolve_request
    _replace(module.BaseHandler, "resolve_request", make, undo)


def _django_exception(module, undo):
    def make(original):
        def response_for_exception(request, exc):
            served = current_request.get()
            if served is not None:
                served.exception = exc  # kept only if the answer is a 5xx (web.finish)
            return original(request, exc)
        return response_for_exception
    _replace(module, "response_for_exception", make, undo)


POINTS = {
    "wsgiref.handlers": _wsgiref,
    "gunicorn.workers.base": _gunicorn_base,
    "gunicorn.workers.gasgi": _gunicorn_asgi,
    "uvicorn.config": _uvicorn,
    "werkzeug.serving": _werkzeug_serving,
    "werkzeug.test": _werkzeug_test,
    "starlette.testclient": _starlette_testclient,
    "httpx._transports.asgi": _httpx_asgi,
    "httpx._transports.wsgi": _httpx_wsgi,
    "django.test.client": _django_test_client,
    "flask.ctx": _flask_ctx,
    "flask.app": _flask_app,
    "django.core.handlers.base": _django_base,
    "django.core.handlers.wsgi": _django_wsgi_entry,
    "django.core.handlers.asgi": _django_asgi_entry,
    "starlette.applications": _starlette_entry,
    "django.core.handlers.exception": _django_exception,
}
"""Module name -> installs its points (``install(module, undo)``)."""
