"""``--listener otel``: every hooked call as an OpenTelemetry span.

A span is named after the call's target ("module:qualname") and carries
``code.function`` (qualname), ``code.namespace`` (module), ``thread.id``,
``thread.name``, the caller's ``code.filepath`` / ``code.lineno``, every
argument as ``hookwise.arg.<name>`` (positional arguments of a replaced builtin
as ``hookwise.arg.<index>``) and, on return, ``hookwise.result``; an exception
is recorded as the span's ``exception`` event with status ERROR. Every value
goes through ``settings.render``: secrets are redacted, reprs are bounded.
An SQL statement (``hookwise.semantics``) is a CLIENT span with the semantic
conventions' ``db.system``, ``db.namespace`` and ``db.query.text`` (its
parameters as ``hookwise.db.query.parameters``) and, where the driver counts
them, ``db.response.affected_rows``; an outgoing HTTP request is a CLIENT span
with ``http.request.method``, ``url.full`` (redacted), ``server.address``,
``server.port`` and ``http.response.status_code``.

Where spans go is read from the standard environment: ``OTEL_TRACES_EXPORTER``
(``otlp``, the default, as OTLP over HTTP/protobuf; ``console``; ``none``; a
comma-separated list), the ``OTEL_EXPORTER_OTLP_*`` variables, and the
resource from ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES``. Spans are
batched (``BatchSpanProcessor``) and flushed when hookwise closes its listeners
at exit.

Nesting. A plain function's span is attached to the OpenTelemetry context at
start and detached at end (both happen in the function's own frame), so hooked
calls made inside it are its children, and so are spans the program makes
itself. A coroutine is attached the same way: it runs start to end inside one
asyncio task, whose context belongs to it alone, so concurrent tasks nest
independently; if it is finished from another context (closed by someone
else), that context is left alone. A generator or async generator is only
parented under the context current at its first resume and never attached:
its body runs a piece at a time in its consumer's context, so an attached span
would swallow the consumer's own calls and be detached in the wrong place.
Calls made inside a generator's body are therefore its siblings, not its
children. A new thread starts a new trace unless the program carries the
context over.

Feedback. The batch processor's worker thread runs exporter code (requests,
urllib3, http.client, logging, the SDK) outside any listener callback, so a
program that hooks those modules would see the exporter's own calls as hooked
calls. This listener never turns calls made on the processors' worker threads,
calls made while OpenTelemetry's suppress-instrumentation flag is set (the SDK
sets it around every export), or calls made after ``close()`` into spans:
other listeners still see them as ordinary calls, but nothing the exporter
does can feed spans back into the exporter. One known exception, once and not
a loop: cleanups that the exporter's libraries leave to ``weakref.finalize``
(urllib3 closing its connection pool) run at exit on the main thread before
hookwise closes its listeners, and are spans if their functions are hooked.

Processes. A forked child forgets the spans its parent had open
(``after_fork_in_child``), so it never ends or exports them a second time; it
exports its own. A Python child process that hookwise follows creates its own
listener from the same environment and starts its own traces.

This listener must never: import OpenTelemetry before it is created (the
runtime stays stdlib-only), raise into the program in normal use, end a span
whose start it did not see, detach a context in a place other than where it
was attached, or show a value that did not go through ``settings.render``.
"""

import os
from _thread import get_ident

from .. import _state, semantics
from ..render import Render, exception_type_name
from . import ListenerSpecError, refuse_arg

NAME = "otel"
INSTALL_HINT = "pip install 'hookwise[otel]'"

# The standard variables this module reads itself (the SDK reads the others:
# OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_BSP_*, OTEL_EXPORTER_OTLP_*).
TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
"""Comma-separated exporter names: otlp (the default), console, none."""
OTLP_TRACES_PROTOCOL = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"
"""Must be http/protobuf when set (the only OTLP transport this listener builds)."""
OTLP_PROTOCOL = "OTEL_EXPORTER_OTLP_PROTOCOL"
"""Fallback for OTEL_EXPORTER_OTLP_TRACES_PROTOCOL."""

DEFAULT_EXPORTER = "otlp"
EXPORTERS = ("otlp", "console", "none")
HTTP_PROTOBUF = "http/protobuf"

# Generator-like calls are parented but never attached (see the module docstring).
_UNATTACHED_KINDS = frozenset(("generator", "async_generator"))


def from_spec(arg, settings):
    refuse_arg(NAME, arg)
    _import_sdk()
    exporters = exporters_from_env(os.environ)
    try:
        return OtelListener(exporters, render=settings.render)
    except Exception as exc:
        raise ListenerSpecError(f"listener {NAME!r} could not be created: {type(exc).__name__}: {exc}") from None


def _missing_sdk(exc):
    return ListenerSpecError(f"listener {NAME!r} needs the OpenTelemetry SDK: {INSTALL_HINT} ({exc})")


def _import_sdk():
    try:
        import opentelemetry.context  # noqa: F401
        import opentelemetry.sdk.resources  # noqa: F401
        import opentelemetry.sdk.trace.export  # noqa: F401
        import opentelemetry.trace  # noqa: F401
    except ImportError as exc:
        raise _missing_sdk(exc) from None


def exporter_names(environ):
    """The exporter names OTEL_TRACES_EXPORTER asks for; unset or empty means the default."""
    text = environ.get(TRACES_EXPORTER, "").strip()
    names = [name.strip().lower() for name in text.split(",") if name.strip()] or [DEFAULT_EXPORTER]
    unknown = [name for name in names if name not in EXPORTERS]
    if unknown:
        raise ListenerSpecError(
            f"listener {NAME!r}: {TRACES_EXPORTER}={text} names an exporter it does not know"
            f" ({', '.join(unknown)}); use {', '.join(EXPORTERS)}"
        )
    chosen = []
    for name in names:
        if name != "none" and name not in chosen:
            chosen.append(name)
    return chosen


def exporters_from_env(environ):
    """The span exporters the environment asks for (an empty list for ``none``)."""
    exporters = []
    for name in exporter_names(environ):
        if name == "console":
            exporters.append(_console_exporter())
        else:
            exporters.append(_otlp_exporter(environ))
    return exporters


def _console_exporter():
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    from .. import report

    # One span per line on hookwise's own stderr, never in the program's stdout.
    return ConsoleSpanExporter(out=report.stream(), formatter=lambda span: span.to_json(indent=None) + "\n")


def _otlp_exporter(environ):
    protocol = (environ.get(OTLP_TRACES_PROTOCOL) or environ.get(OTLP_PROTOCOL) or HTTP_PROTOBUF).strip()
    if protocol != HTTP_PROTOBUF:
        raise ListenerSpecError(
            f"listener {NAME!r} sends OTLP over {HTTP_PROTOBUF} only (the protocol asked for is {protocol!r})"
        )
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise _missing_sdk(exc) from None
    try:
        return OTLPSpanExporter()  # endpoint, headers, timeout, compression: from OTEL_EXPORTER_OTLP_*
    except Exception as exc:
        raise ListenerSpecError(f"listener {NAME!r}: the OTLP exporter could not be created: {type(exc).__name__}: {exc}") from None


class OtelListener:
    """Turns calls into spans of a private tracer provider and exports them in batches."""

    def __init__(self, exporters, render=None, resource=None):
        import threading

        from opentelemetry import context, trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        from .. import __version__

        self.render = render if render is not None else Render()
        self._context = context
        self._set_span_in_context = trace.set_span_in_context
        self._status_error = trace.StatusCode.ERROR
        self._status = trace.Status
        self._internal = trace.SpanKind.INTERNAL
        self._client = trace.SpanKind.CLIENT  # a database call, as the semantic conventions have it
        self._server = trace.SpanKind.SERVER  # an incoming request
        self._trace = trace
        # The flag the SDK sets around each export (and instrumentations honour);
        # optional because it is an underscored name.
        self._suppress_key = getattr(context, "_SUPPRESS_INSTRUMENTATION_KEY", None)
        self._open = {}  # call_id -> (span, token or None): only calls whose start was seen
        self._closed = False
        self._worker_ids = set()  # threads of the batch processors: their calls never become spans

        # A private provider, never the global one: the program may set up its
        # own, and it must not be refused. The shared thing is the context, so
        # the program's spans and ours nest into each other.
        self._provider = TracerProvider(
            resource=resource if resource is not None else Resource.create(), shutdown_on_exit=False
        )
        before = {thread.ident for thread in threading.enumerate()}
        for exporter in exporters:
            self._provider.add_span_processor(BatchSpanProcessor(_QuietExporter(exporter)))
        # Each BatchSpanProcessor starts its worker thread in its constructor.
        self._worker_ids.update(thread.ident for thread in threading.enumerate() if thread.ident not in before)
        self._tracer = self._provider.get_tracer("hookwise", __version__)

    # -- events -------------------------------------------------------------
    def start(self, call):
        if self._closed or call.thread_id in self._worker_ids:
            return
        parent = self._context.get_current()
        if self._suppress_key is not None and parent.get(self._suppress_key):
            return
        attributes = self._start_attributes(call)
        kind = self._kind_for(attributes)
        if kind is self._server:  # a request that carries a W3C traceparent continues the caller's trace
            parent = self._continued(attributes.pop("hookwise.traceparent", None), parent)
        # a server span is named "{method}", and "{method} {route}" once the route is known (at its end)
        name = attributes.get("http.request.method", call.target) if kind is self._server else call.target
        span = self._tracer.start_span(name, context=parent, kind=kind, attributes=attributes, start_time=call.start_ns)
        if "url.full" in attributes:  # an outgoing request carries this span's trace context
            self._carry_trace_context(call, span)
        token = None
        if call.kind not in _UNATTACHED_KINDS:
            token = self._context.attach(self._set_span_in_context(span, parent))
        self._open[call.call_id] = (span, token)

    def end(self, call, result):
        entry = self._open.pop(call.call_id, None)
        if entry is None:  # its start was not seen (or not turned into a span)
            return
        span, token = entry
        try:
            if token is not None:
                self._detach(token)
            span.set_attribute("hookwise.result", self.render.value(result))
            outcome = semantics.end_fields(call, result)
            span.set_attributes(self._outcome_attributes(outcome))
            if call.kind == "request":
                self._name_request(span, call, outcome)
                if (outcome.get("status") or 0) >= 500:  # a server span's 5xx answer is its error
                    span.set_status(self._status(self._status_error, f"HTTP {outcome['status']}"))
        finally:
            span.end(end_time=call.end_ns)

    def error(self, call, exc):
        entry = self._open.pop(call.call_id, None)
        if entry is None:
            return
        span, token = entry
        try:
            if token is not None:
                self._detach(token)
            message = self.render.exception_text(exc)
            self._record_exception(span, exc, message, call.end_ns)
            outcome = semantics.error_fields(call, exc)  # an HTTPError's status, a failed request's 500
            span.set_attributes(self._outcome_attributes(outcome))
            if call.kind == "request":
                self._name_request(span, call, outcome)
            span.set_status(self._status(self._status_error, f"{type(exc).__name__}: {message}"))
        finally:
            span.end(end_time=call.end_ns)

    def finding(self, finding):
        """A guard finding: a ``hookwise.finding`` event on the span current where it was found (the request's)."""
        if self._closed:
            return
        span = self._trace.get_current_span()
        fields = finding.as_dict()
        attributes = {"hookwise.finding.rule": finding.rule, "hookwise.finding.severity": finding.severity,
                      "hookwise.finding.action": finding.action, "hookwise.finding.sink": finding.target,
                      "hookwise.finding.sink_call_id": finding.call_id,
                      "hookwise.finding.input": finding.input_value, "hookwise.finding.source": finding.input_source,
                      "hookwise.finding.fragment": finding.fragment}
        if fields["request"] is not None:
            attributes["hookwise.request_id"] = fields["request"]["request_id"]
        if finding.app_caller is not None:
            attributes["code.filepath"] = finding.app_caller.file
            attributes["code.lineno"] = finding.app_caller.line if isinstance(finding.app_caller.line, int) else -1
        span.add_event("hookwise.finding", attributes, timestamp=finding.ts_ns)

    def close(self):
        """Export what is batched and shut the exporters down; later calls make no spans."""
        if self._closed:
            return
        self._closed = True
        with _state.quiet():  # the last batch goes out from this thread: hookwise's work, not the program's
            self._provider.shutdown()

    def after_fork_in_child(self):
        """The child did not see its parent's starts: it must not end (and export again) those spans."""
        import threading

        self._open.clear()
        # Only the forking thread survived the fork; the batch processors' own
        # fork handlers (registered when they were made, before hookwise's, so
        # already run) have started new workers: they are the other threads now.
        current = get_ident()
        self._worker_ids = {thread.ident for thread in threading.enumerate() if thread.ident != current}

    # -- helpers --------------------------------------------------------------
    def _kind_for(self, attributes):
        """CLIENT for a database call or an outgoing request, SERVER for an incoming one."""
        if "url.path" in attributes:
            return self._server
        return self._client if "db.system" in attributes or "url.full" in attributes else self._internal

    @staticmethod
    def _name_request(span, call, outcome):
        """A server span is named "{method} {route}" (the semantic conventions), once the route is known."""
        route = outcome.get("route")
        if route is not None and span.name != call.target:
            span.update_name(f"{span.name} {route}")

    def _continued(self, traceparent, parent):
        """The remote parent a traceparent header names, unless a span of this process is current already."""
        context = _span_context_of(traceparent, self._trace)
        if context is None or self._trace.get_current_span(parent).get_span_context().is_valid:
            return parent
        return self._trace.set_span_in_context(self._trace.NonRecordingSpan(context), parent)

    def _carry_trace_context(self, call, span):
        context = span.get_span_context()
        if context.is_valid:
            value = f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
            semantics.carry_header(call, "traceparent", value)

    @staticmethod
    def _outcome_attributes(outcome):
        """The semantic conventions' attributes of an end's (or an error's) fields: rows, status."""
        attributes = {}
        if "rows" in outcome:
            attributes["db.response.affected_rows"] = outcome["rows"]
        if outcome.get("status") is not None:
            attributes["http.response.status_code"] = outcome["status"]
        if outcome.get("size") is not None:
            attributes["http.response.body.size"] = outcome["size"]
        if outcome.get("route") is not None:
            attributes["http.route"] = outcome["route"]
        return attributes

    def _start_attributes(self, call):
        attributes = {
            "code.function": call.qualname,
            "code.namespace": call.module,
            "thread.id": call.thread_id,
            "thread.name": call.thread_name,
            "hookwise.call_id": call.call_id,
            "hookwise.kind": call.kind,
        }
        caller = call.caller  # only valid inside the callback
        if caller is not None:
            attributes["code.filepath"] = caller.file
            if isinstance(caller.line, int):
                attributes["code.lineno"] = caller.line
            attributes["hookwise.caller.function"] = caller.function
        app_caller = call.app_caller  # the application's own line that led to the call
        if app_caller is not None:
            attributes["hookwise.app_caller.filepath"] = app_caller.file
            if isinstance(app_caller.line, int):
                attributes["hookwise.app_caller.lineno"] = app_caller.line
            attributes["hookwise.app_caller.function"] = app_caller.function
        task = call.task
        if task is not None:
            attributes["hookwise.task"] = task
        request_id = call.request_id
        if request_id is not None:
            attributes["hookwise.request_id"] = request_id
        render = self.render
        if call.site.params is None:  # a replaced builtin: positional arguments have no names
            for index, text in enumerate(render.args(call)):
                attributes[f"hookwise.arg.{index}"] = text
            for name, text in render.kwargs(call).items():
                attributes[f"hookwise.arg.{name}"] = text
        else:
            for name, text in render.arguments(call).items():
                attributes[f"hookwise.arg.{name}"] = text
        meaning = semantics.start_fields(call, render)
        if meaning is not None and meaning[0] == "sql":  # the semantic conventions' database attributes
            fields = meaning[1]
            attributes["db.system"] = fields["system"]
            attributes["db.query.text"] = fields["statement"] or ""
            if fields["database"] is not None:
                attributes["db.namespace"] = fields["database"]
            if fields["params"] is not None:
                attributes["hookwise.db.query.parameters"] = fields["params"]
        elif meaning is not None and meaning[0] == "http":  # an outgoing request: the HTTP client conventions
            fields = meaning[1]
            if fields["method"] is not None:
                attributes["http.request.method"] = fields["method"]
            if fields["url"] is not None:
                attributes["url.full"] = fields["url"]
                attributes.update(_server_of(fields["url"]))
        elif meaning is not None and meaning[0] == "request":  # an incoming request: the HTTP server conventions
            attributes.update(_server_attributes(meaning[1]))
            traceparent = meaning[1]["headers"].get("traceparent")  # ids, no secret: shown as they came
            if traceparent is not None:
                attributes["hookwise.traceparent"] = traceparent
        return attributes

    def _record_exception(self, span, exc, message, timestamp):
        # The event ``span.record_exception`` would add, made by hand: the SDK's
        # method formats the exception (str() of it and of its chained ones) even
        # when its attributes are then replaced, and that str() is the program's
        # code. The message and stack trace here are rendered text.
        import traceback

        try:
            frames = "".join(traceback.format_tb(exc.__traceback__))
        except Exception:
            frames = ""
        attributes = {
            "exception.type": exception_type_name(exc),
            "exception.message": message,
            "exception.stacktrace": f"Traceback (most recent call last):\n{frames}{exception_type_name(exc)}: {message}\n",
            "exception.escaped": "True",
        }
        span.add_event("exception", attributes, timestamp=timestamp)

    def _detach(self, token):
        reset = getattr(getattr(token, "var", None), "reset", None)
        if reset is None:  # a runtime context other than contextvars: its own detach
            self._context.detach(token)
            return
        try:
            reset(token)
        except (ValueError, RuntimeError):
            # A coroutine finished from another context than the one it started
            # in (closed by a finalizer, driven by hand): that context is not
            # ours to change, and the SDK's detach would log an error about it.
            pass


class _QuietExporter:
    """An exporter whose work is hookwise's own: the calls it makes (urllib3's requests under
    ``--preset http``, ``json``) are events of no listener, in the batch thread or at exit."""

    def __init__(self, exporter):
        self._exporter = exporter

    def export(self, spans):
        with _state.quiet():
            return self._exporter.export(spans)

    def shutdown(self, *args, **kwargs):
        with _state.quiet():
            return self._exporter.shutdown(*args, **kwargs)

    def force_flush(self, *args, **kwargs):
        with _state.quiet():
            return self._exporter.force_flush(*args, **kwargs)


def _server_attributes(fields):
    attributes = {"url.path": fields["path"] or "/"}
    if fields["method"] is not None:
        attributes["http.request.method"] = fields["method"]
    if fields["query"]:
        attributes["url.query"] = fields["query"]
    if fields["route"] is not None:
        attributes["http.route"] = fields["route"]
    if fields["client"] is not None:
        attributes["client.address"] = str(fields["client"])
    host = fields["headers"].get("host")
    if host:
        attributes["server.address"] = host.rpartition(":")[0] if host.rpartition(":")[2].isdigit() else host
    agent = fields["headers"].get("user-agent")
    if agent:
        attributes["user_agent.original"] = agent
    return attributes


def _span_context_of(traceparent, trace):
    """The SpanContext a W3C ``traceparent`` header names (version 00), or None."""
    if type(traceparent) is not str:
        return None
    parts = traceparent.strip().split("-")
    if len(parts) < 4 or parts[0] != "00" or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return trace.SpanContext(trace_id, span_id, is_remote=True, trace_flags=trace.TraceFlags(flags & 1))


def _server_of(url):
    """``server.address`` and ``server.port`` of a URL, read by hand (no urllib.parse: it may be hooked)."""
    scheme, _, rest = url.partition("://")
    netloc = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    host, colon, port = netloc.rpartition(":")
    if not colon or host.startswith("[") and not host.endswith("]"):  # no port, or an IPv6 literal alone
        host, port = netloc, ""
    found = {"server.address": host.strip("[]")} if host else {}
    if port.isdigit():
        found["server.port"] = int(port)
    elif scheme in ("http", "https"):
        found["server.port"] = 80 if scheme == "http" else 443
    return found
