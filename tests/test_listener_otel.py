"""The OpenTelemetry listener (``--listener otel``), with the real SDK.

In-process tests drive ``OtelListener`` with code that hookwise rewrote and an
in-memory exporter: nesting, generators, coroutines and asyncio tasks, errors,
redaction, and what the listener must never do. End-to-end tests run one
program (threads, nested calls, a generator, concurrent asyncio tasks, errors)
through the driver and read its spans back three ways: from memory, from a
local OTLP/HTTP receiver that decodes the protobuf payloads, and from the
console exporter; each is checked by the same ``check_program_spans``.
"""

import contextvars
import http.server
import json
import logging
import os
import textwrap
import threading
import time

import pytest
from opentelemetry import context as otel_context
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from helpers import ROOT, Recorder, clean_env, load_rewritten, read_jsonl, run_driver, run_python
from hookwise import Blocked
from hookwise.listeners import BUILTIN, ListenerSpecError
from hookwise.listeners.otel import OtelListener, exporter_names, from_spec
from hookwise.render import Render
from otel_memory_listener import span_record

TESTS = os.path.join(ROOT, "tests")
FILENAME = "/app/hooked.py"


# -- in-process helpers ----------------------------------------------------------


class Checked:
    """Delegates to a listener and keeps every exception it raises (the runtime would hide them)."""

    def __init__(self, listener):
        self.listener = listener
        self.failures = []

    def _call(self, method, *args):
        try:
            getattr(self.listener, method)(*args)
        except Exception as exc:  # pragma: no cover - only on failure
            self.failures.append((method, repr(exc)))
            raise

    def start(self, call):
        self._call("start", call)

    def end(self, call, result):
        self._call("end", call, result)

    def error(self, call, exc):
        self._call("error", call, exc)


class Hooked:
    """Rewritten source run with an OtelListener exporting to memory."""

    def __init__(self, render=None, extra=(), exporters=None):
        self.exporter = InMemorySpanExporter()
        self.listener = OtelListener(exporters if exporters is not None else [self.exporter], render=render)
        self.checked = Checked(self.listener)
        self.extra = list(extra)

    def run(self, source, namespace=None):
        self.namespace, _ = load_rewritten(
            source, listeners=[self.checked, *self.extra], filename=FILENAME, namespace=namespace
        )
        return self.namespace

    def spans(self):
        """Close the listener (flushing the batch processor) and return the exported spans."""
        self.listener.close()
        assert self.checked.failures == []
        return [span_record(span) for span in self.exporter.get_finished_spans()]


def run_hooked(source, **options):
    hooked = Hooked(**options)
    try:
        hooked.run(source)
    finally:
        spans = hooked.spans()
    return spans


def named(spans, qualname):
    return [span for span in spans if span["name"] == f"hooked:{qualname}"]


def one(spans, qualname):
    found = named(spans, qualname)
    assert len(found) == 1, (qualname, found)
    return found[0]


def arg(span, name):
    return span["attributes"].get(f"hookwise.arg.{name}")


def line_of(source, text):
    """1-based line of the first line of dedented ``source`` that contains ``text``."""
    for number, line in enumerate(textwrap.dedent(source).splitlines(), 1):
        if text in line:
            return number
    raise AssertionError(text)


# -- the listener in-process ---------------------------------------------------------


def test_otel_is_a_builtin_listener_that_takes_no_value():
    assert BUILTIN["otel"] == "hookwise.listeners.otel"
    with pytest.raises(ListenerSpecError, match=r"listener 'otel' takes no value \(got otel=x\)"):
        from_spec("x", None)


def test_the_exporter_names_follow_otel_traces_exporter():
    assert exporter_names({}) == ["otlp"]  # the specification's default
    assert exporter_names({"OTEL_TRACES_EXPORTER": " "}) == ["otlp"]
    assert exporter_names({"OTEL_TRACES_EXPORTER": "console"}) == ["console"]
    assert exporter_names({"OTEL_TRACES_EXPORTER": "Console, otlp,console"}) == ["console", "otlp"]
    assert exporter_names({"OTEL_TRACES_EXPORTER": "none"}) == []
    with pytest.raises(ListenerSpecError, match="does not know .*zipkin.*; use otlp, console, none"):
        exporter_names({"OTEL_TRACES_EXPORTER": "otlp,zipkin"})


NESTED = """
def leaf(x, password=None):
    return {"x": x, "token": "t0k3n-value"}

def branch(n):
    out = []
    for i in range(n):
        out.append(leaf(i, password="hunter2"))
    return len(out)

branch(2)
"""


def test_nested_calls_are_child_spans_with_code_thread_and_argument_attributes():
    spans = run_hooked(NESTED)
    assert len(spans) == 3
    branch = one(spans, "branch")
    leaves = named(spans, "leaf")
    assert branch["parent_id"] is None
    assert [leaf["parent_id"] for leaf in leaves] == [branch["span_id"]] * 2
    assert {leaf["trace_id"] for leaf in leaves} == {branch["trace_id"]}
    assert all(branch["start_ns"] <= leaf["start_ns"] <= leaf["end_ns"] <= branch["end_ns"] for leaf in leaves)

    attributes = leaves[0]["attributes"]
    assert attributes["code.function"] == "leaf" and attributes["code.namespace"] == "hooked"
    assert attributes["thread.id"] == threading.get_ident()
    assert attributes["thread.name"] == threading.current_thread().name
    assert attributes["code.filepath"] == FILENAME
    assert attributes["code.lineno"] == line_of(NESTED, "out.append(leaf(")
    assert attributes["hookwise.caller.function"] == "branch"
    assert attributes["hookwise.kind"] == "function"
    assert [arg(leaf, "x") for leaf in leaves] == ["0", "1"]
    assert arg(leaves[0], "password") == "***"
    assert attributes["hookwise.result"] == "{'x': 0, 'token': '***'}"
    assert branch["attributes"]["code.lineno"] == line_of(NESTED, "branch(2)")
    assert branch["attributes"]["hookwise.result"] == "2" and arg(branch, "n") == "2"
    assert branch["attributes"]["hookwise.call_id"] < attributes["hookwise.call_id"]
    assert all(span["status"] == "UNSET" and span["events"] == [] for span in spans)
    text = json.dumps(spans)
    assert "hunter2" not in text and "t0k3n" not in text


def test_an_error_is_recorded_with_error_status_and_bounded_text():
    source = """
    STR_CALLS = []

    class Hostile(Exception):
        def __str__(self):
            STR_CALLS.append(1)
            raise RuntimeError("no str for you")

    def fail(kind):
        if kind == "hostile":
            raise Hostile()
        raise ValueError("x" * 500)

    def outer():
        for kind in ("long", "hostile"):
            try:
                fail(kind)
            except Exception:
                pass
        return f"recovered, str() ran {len(STR_CALLS)} times"

    outer()
    """
    spans = run_hooked(source, render=Render(repr_limit=40))
    outer = one(spans, "outer")
    long, hostile = named(spans, "fail")
    # the program's __str__ never ran: the exception is described by its safe repr
    assert outer["status"] == "UNSET" and outer["attributes"]["hookwise.result"] == "'recovered, str() ran 0 times'"
    assert long["parent_id"] == hostile["parent_id"] == outer["span_id"]
    assert "hookwise.result" not in long["attributes"]

    message = "x" * 37 + "..."
    assert long["status"] == "ERROR" and long["status_description"] == "ValueError: " + message
    [event] = long["events"]
    assert event["name"] == "exception"
    assert event["attributes"]["exception.type"] == "ValueError"
    assert event["attributes"]["exception.message"] == message
    assert event["attributes"]["exception.escaped"] == "True"
    trace = event["attributes"]["exception.stacktrace"]
    assert trace.startswith("Traceback (most recent call last):\n") and trace.endswith("ValueError: " + message + "\n")
    assert f'File "{FILENAME}", line {line_of(source, "raise ValueError")}, in fail' in trace
    assert "x" * 41 not in json.dumps(spans)

    # an exception whose str() raises still leaves an exception event
    assert hostile["status"] == "ERROR" and hostile["status_description"] == "Hostile: Hostile()"  # its repr
    [event] = hostile["events"]
    assert event["name"] == "exception" and event["attributes"]["exception.type"] == "hooked.Hostile"
    assert event["attributes"]["exception.message"] == "Hostile()"


def test_a_blocked_call_is_an_error_span_and_the_context_is_restored():
    class Guard:
        def start(self, call):
            if call.qualname == "danger":
                raise Blocked("not today")

    source = """
    def danger():
        return "ran"

    def after():
        return 1

    try:
        danger()
    except PermissionError:
        pass
    after()
    """
    spans = run_hooked(source, extra=[Guard()])  # ours starts (and attaches) before the guard refuses
    danger, after = one(spans, "danger"), one(spans, "after")
    assert danger["status"] == "ERROR" and danger["status_description"] == "Blocked: not today"
    assert danger["events"][0]["attributes"]["exception.type"] == "hookwise.listener.Blocked"
    assert after["parent_id"] is None  # the refused call's span did not stay current


GENERATOR = """
def leaf(x):
    return x

def numbers(n):
    for i in range(n):
        yield leaf(i)
    return "done"

def consume():
    total = 0
    for value in numbers(2):
        total += leaf(value + 10)
    return total

consume()
leaf(99)
"""


def test_a_generator_is_parented_where_it_starts_but_never_attached():
    spans = run_hooked(GENERATOR)
    consume, numbers = one(spans, "consume"), one(spans, "numbers")
    leaves = {arg(span, "x"): span for span in named(spans, "leaf")}
    assert sorted(leaves) == ["0", "1", "10", "11", "99"]
    assert numbers["parent_id"] == consume["span_id"]
    assert numbers["attributes"]["hookwise.kind"] == "generator"
    assert numbers["attributes"]["hookwise.result"] == "'done'"
    # the consumer's own calls are not the generator's children...
    assert leaves["10"]["parent_id"] == leaves["11"]["parent_id"] == consume["span_id"]
    # ...and the generator's body runs in its consumer's context: siblings too
    assert leaves["0"]["parent_id"] == leaves["1"]["parent_id"] == consume["span_id"]
    assert leaves["0"]["attributes"]["hookwise.caller.function"] == "numbers"
    assert numbers["start_ns"] <= leaves["0"]["start_ns"] and leaves["11"]["end_ns"] <= numbers["end_ns"]
    assert leaves["99"]["parent_id"] is None  # nothing stayed attached


def test_a_generator_started_on_one_thread_and_finished_on_another():
    source = """
    import threading

    def numbers():
        yield 1
        yield 2

    def leaf():
        return 0

    def outer():
        g = numbers()
        next(g)
        thread = threading.Thread(target=list, args=(g,), name="finisher")
        thread.start()
        thread.join()
        return leaf()

    outer()
    leaf()
    """
    spans = run_hooked(source)
    outer, numbers = one(spans, "outer"), one(spans, "numbers")
    inner, last = named(spans, "leaf")
    assert numbers["parent_id"] == outer["span_id"] and numbers["status"] == "UNSET"
    assert numbers["attributes"]["thread.name"] == threading.current_thread().name  # where it started
    assert inner["parent_id"] == outer["span_id"] and last["parent_id"] is None


def test_an_async_generator_is_parented_but_never_attached():
    source = """
    import asyncio

    def leaf(x):
        return x

    async def ticks(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield leaf(i)

    async def consume():
        total = 0
        async for value in ticks(2):
            total += leaf(value + 10)
        return total

    asyncio.run(consume())
    """
    spans = run_hooked(source)
    consume, ticks = one(spans, "consume"), one(spans, "ticks")
    assert ticks["parent_id"] == consume["span_id"]
    assert ticks["attributes"]["hookwise.kind"] == "async_generator"
    assert consume["attributes"]["hookwise.kind"] == "coroutine"
    leaves = {arg(span, "x"): span for span in named(spans, "leaf")}
    assert sorted(leaves) == ["0", "1", "10", "11"]
    assert {span["parent_id"] for span in leaves.values()} == {consume["span_id"]}
    assert {span["attributes"]["hookwise.task"] for span in spans} == {consume["attributes"]["hookwise.task"]}


# five tasks, each awaiting ``step`` twice with interleaved sleeps; ``leaf`` comes from the program
TASKS = """
async def step(task, delay):
    await asyncio.sleep(delay)
    return leaf(task)

async def handler(task):
    first = await step(task, 0.004 * (5 - task))
    await asyncio.sleep(0.001)
    return first + await step(task, 0.001 * task)

async def serve():
    handlers = []
    for task in range(5):
        handlers.append(handler(task))
    return await asyncio.gather(*handlers)
"""

CONCURRENT = """
import asyncio

def leaf(task):
    return task

""" + TASKS + """
asyncio.run(serve())
"""


def check_concurrent_tasks(spans, prefix, leaf_param="task"):
    def select(qualname):
        return [span for span in spans if span["name"] == f"{prefix}:{qualname}"]

    [serve] = select("serve")
    ids = {span["span_id"]: span for span in spans}
    handlers = select("handler")
    assert len(handlers) == 5 and {span["parent_id"] for span in handlers} == {serve["span_id"]}
    # they really ran at the same time
    assert max(span["start_ns"] for span in handlers) < min(span["end_ns"] for span in handlers)
    tasks = {span["attributes"]["hookwise.task"] for span in handlers}
    assert len(tasks) == 5 and serve["attributes"]["hookwise.task"] not in tasks
    steps = select("step")
    assert len(steps) == 10
    for step in steps:
        handler = ids[step["parent_id"]]
        assert handler["name"] == f"{prefix}:handler"
        assert arg(handler, "task") == arg(step, "task")
        assert handler["attributes"]["hookwise.task"] == step["attributes"]["hookwise.task"]
    leaves = select("leaf")
    assert len(leaves) == 10
    for leaf in leaves:
        step = ids[leaf["parent_id"]]
        assert step["name"] == f"{prefix}:step" and arg(step, "task") == arg(leaf, leaf_param)
    assert {span["trace_id"] for span in spans} == {serve["trace_id"]}


def test_concurrent_asyncio_tasks_nest_per_task():
    check_concurrent_tasks(run_hooked(CONCURRENT), "hooked")


class Pause:
    def __await__(self):
        yield


def test_a_coroutine_finished_from_another_context_leaves_both_contexts_alone(caplog):
    source = """
    def leaf(where):
        return where

    async def job():
        leaf("inside")
        await Pause()
        return "done"
    """
    hooked = Hooked()
    namespace = hooked.run(source, namespace={"__name__": "hooked", "Pause": Pause})
    coro = namespace["job"]()
    other = contextvars.Context()
    with caplog.at_level(logging.DEBUG):
        other.run(coro.send, None)  # started (and attached) in `other`...
        with pytest.raises(StopIteration):
            coro.send(None)  # ...finished in this one: its token cannot be reset here
        namespace["leaf"]("here")
    spans = hooked.spans()
    job = one(spans, "job")
    leaves = {arg(span, "where"): span for span in named(spans, "leaf")}
    assert job["attributes"]["hookwise.result"] == "'done'"
    assert leaves["'inside'"]["parent_id"] == job["span_id"]
    assert leaves["'here'"]["parent_id"] is None  # this context never had the job attached
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_calls_whose_start_was_not_seen_are_never_ended():
    source = """
    from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, attach, detach, set_value

    def quiet():
        return 1

    def loud():
        return 2

    token = attach(set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    quiet()
    detach(token)
    loud()
    """
    recorder = Recorder()
    hooked = Hooked(extra=[recorder])
    hooked.run(source)
    spans = hooked.spans()
    assert [span["name"] for span in spans] == ["hooked:loud"]  # instrumentation suppressed: no span, no end
    assert [event[:2] for event in recorder.events] == [("start", "quiet"), ("end", "quiet"), ("start", "loud"), ("end", "loud")]

    # a listener told of ends and errors it never saw start ignores them
    stranger = Hooked()
    for call in recorder.calls:
        stranger.listener.end(call, None)
        stranger.listener.error(call, ValueError("never started here"))
    assert stranger.spans() == []


def test_calls_after_close_make_no_spans_and_late_ends_are_harmless():
    source = """
    def numbers():
        yield 1
        yield 2

    def leaf():
        return 0

    pending = numbers()
    next(pending)
    leaf()
    """
    hooked = Hooked()
    namespace = hooked.run(source)
    spans = hooked.spans()  # closes
    assert [span["name"] for span in spans] == ["hooked:leaf"]
    assert list(namespace["pending"]) == [2]  # its end arrives after close
    namespace["leaf"]()
    assert hooked.checked.failures == []
    assert len(hooked.exporter.get_finished_spans()) == 1


class FeedbackExporter(InMemorySpanExporter):
    """An exporter that calls hooked code while exporting, as urllib3 or requests would when hooked.

    Were those calls turned into spans, each export would make work for the
    next one, forever (a flush exports until the queue is empty): past
    ``LIMIT`` exports it stops calling hooked code, so that such a loop ends
    and the test fails instead of hanging.
    """

    LIMIT = 200

    def __init__(self):
        super().__init__()
        self.hooked = None
        self.exports = 0
        self.threads = set()

    def export(self, spans):
        self.exports += 1
        self.threads.add(threading.current_thread().name)
        if self.hooked is not None and self.exports <= self.LIMIT:
            self.hooked(len(spans))
        return super().export(spans)


def test_the_exporters_own_calls_never_become_spans(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "5")  # the worker exports every 5 ms while the program runs
    exporter = FeedbackExporter()
    recorder = Recorder()
    hooked = Hooked(extra=[recorder], exporters=[exporter])
    hooked.exporter = exporter
    namespace = hooked.run("def encode(n):\n    return n\n\ndef work(i):\n    return i\n")
    exporter.hooked = namespace["encode"]
    for i in range(20):
        namespace["work"](i)
        time.sleep(0.01)
    spans = hooked.spans()
    assert sorted(arg(span, "i") for span in spans) == sorted(str(i) for i in range(20))
    assert {span["name"] for span in spans} == {"hooked:work"}
    assert 3 <= exporter.exports < FeedbackExporter.LIMIT
    assert threading.current_thread().name not in exporter.threads
    # the exporter's calls are hookwise's own work: no other listener hears them either
    assert [event for event in recorder.events if event[1] == "encode"] == []


def test_a_flush_asked_for_by_a_program_thread_makes_no_spans_of_the_exporters_calls(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")  # only the flush below exports before close
    exporter = FeedbackExporter()
    hooked = Hooked(exporters=[exporter])
    hooked.exporter = exporter
    namespace = hooked.run("def encode(n):\n    return n\n\ndef work(i):\n    return i\n")
    exporter.hooked = namespace["encode"]
    namespace["work"](1)
    # Recent SDKs export on the flushing thread, under their suppress-instrumentation
    # flag; older ones hand the flush to the worker. Either way: one export, no new span.
    hooked.listener._provider.force_flush()
    assert exporter.exports == 1
    namespace["work"](2)  # this thread still makes spans afterwards
    spans = hooked.spans()
    assert [(span["name"], arg(span, "i")) for span in spans] == [("hooked:work", "1"), ("hooked:work", "2")]


def test_the_programs_own_spans_and_hookwise_spans_nest_into_each_other():
    app_exporter = InMemorySpanExporter()
    app_provider = TracerProvider()
    app_provider.add_span_processor(SimpleSpanProcessor(app_exporter))
    source = """
    def handle():
        return query()

    def query():
        with tracer.start_as_current_span("app.db"):
            return inner()

    def inner():
        return 1

    with tracer.start_as_current_span("app.request"):
        handle()
    """
    hooked = Hooked()
    hooked.run(source, namespace={"__name__": "hooked", "tracer": app_provider.get_tracer("app")})
    spans = hooked.spans()
    app = {span.name: span_record(span) for span in app_exporter.get_finished_spans()}
    handle, query, inner = one(spans, "handle"), one(spans, "query"), one(spans, "inner")
    assert handle["parent_id"] == app["app.request"]["span_id"]
    assert query["parent_id"] == handle["span_id"]
    assert app["app.db"]["parent_id"] == query["span_id"]
    assert inner["parent_id"] == app["app.db"]["span_id"]
    assert otel_context.get_current() == {}  # everything detached


# -- end to end through the driver ------------------------------------------------------

APP = """
import asyncio
import threading


def leaf(x, password=None):
    return x * 2


def branch(n, token="t0k3n-default"):
    total = 0
    for i in range(n):
        total += leaf(i, password="hunter2")
    return total


def fail(reason):
    raise ValueError("refused: " + reason)


def worker(k):
    branch(k)
    try:
        fail("worker-%d" % k)
    except ValueError:
        pass


def numbers(n):
    for i in range(n):
        yield leaf(i)


def consume():
    total = 0
    for value in numbers(2):
        total += value
    return total


""" + TASKS + """

print("branch", branch(3))
threads = []
for k in (1, 2):
    threads.append(threading.Thread(target=worker, args=(k,), name="worker-%d" % k))
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print("consume", consume())
print("serve", asyncio.run(serve()))
try:
    fail("main")
except ValueError as exc:
    print("caught", exc)
"""
APP_STDOUT = "branch 6\nconsume 2\nserve [0, 4, 8, 12, 16]\ncaught refused: main\n"
APP_SPANS = 4 + 4 + 5 + 4 + 26 + 1  # main branch, worker-1, worker-2, consume, serve, fail


CALLER_FILES = {"worker": "threading.py", "serve": "events.py", "handler": "events.py"}


def check_program_spans(spans, app_path):
    """What the APP program's run must have produced, whichever way the spans were exported."""
    assert len(spans) == APP_SPANS, sorted(span["name"] for span in spans)
    ids = {span["span_id"]: span for span in spans}
    assert len(ids) == len(spans)
    for span in spans:
        module, _, qualname = span["name"].partition(":")
        attributes = span["attributes"]
        assert module == "__main__" and attributes["code.namespace"] == "__main__"
        assert attributes["code.function"] == qualname
        expected_file = CALLER_FILES.get(qualname)
        if expected_file is None:
            assert attributes["code.filepath"] == app_path
        else:  # started by the standard library: a thread's run(), the event loop running a task
            assert attributes["code.filepath"].endswith(os.sep + expected_file), attributes
        assert isinstance(attributes["code.lineno"], int) and attributes["hookwise.caller.function"]
        assert isinstance(attributes["thread.id"], int) and attributes["thread.name"]
        if span["parent_id"] is not None:  # nothing dangles, and children share the trace
            assert ids[span["parent_id"]]["trace_id"] == span["trace_id"]
    text = json.dumps(spans)
    assert "hunter2" not in text and "t0k3n" not in text

    def select(qualname, **where):
        return [
            span for span in spans
            if span["name"] == f"__main__:{qualname}"
            and all(span["attributes"].get(key.replace("_", ".")) == value for key, value in where.items())
        ]

    def children(parent, qualname=None):
        return [
            span for span in spans
            if span["parent_id"] == parent["span_id"] and (qualname is None or span["name"] == f"__main__:{qualname}")
        ]

    # the main thread's nested calls
    [branch] = select("branch", thread_name="MainThread")
    assert branch["parent_id"] is None and arg(branch, "n") == "3" and arg(branch, "token") == "***"
    assert branch["attributes"]["hookwise.result"] == "6"
    leaves = children(branch)
    assert [arg(leaf, "x") for leaf in leaves] == ["0", "1", "2"]
    assert {arg(leaf, "password") for leaf in leaves} == {"***"}
    assert [leaf["attributes"]["hookwise.result"] for leaf in leaves] == ["0", "2", "4"]
    assert {leaf["attributes"]["code.lineno"] for leaf in leaves} == {line_of(APP, "total += leaf(i")}
    main_thread_id = branch["attributes"]["thread.id"]

    # each worker thread: its own trace, nested calls and an error
    for k in (1, 2):
        [worker] = select("worker", thread_name=f"worker-{k}")
        assert worker["parent_id"] is None and worker["attributes"]["thread.id"] != main_thread_id
        [inner_branch] = children(worker, "branch")
        assert len(children(inner_branch, "leaf")) == k
        [fail] = children(worker, "fail")
        assert fail["status"] == "ERROR" and fail["status_description"] == f"ValueError: refused: worker-{k}"
        [event] = fail["events"]
        assert event["name"] == "exception"
        assert event["attributes"]["exception.type"] == "ValueError"
        assert event["attributes"]["exception.message"] == f"refused: worker-{k}"
        assert {span["attributes"]["thread.name"] for span in [inner_branch, fail, *children(inner_branch)]} == {f"worker-{k}"}
    assert len({span["trace_id"] for span in select("worker")}) == 2

    # the generator: parented where it started, its body's calls are its siblings
    [consume] = select("consume")
    [numbers] = children(consume, "numbers")
    assert numbers["attributes"]["hookwise.kind"] == "generator"
    assert numbers["attributes"]["code.lineno"] == line_of(APP, "for value in numbers(2)")
    assert [arg(leaf, "x") for leaf in children(consume, "leaf")] == ["0", "1"]
    assert children(numbers) == []

    # asyncio: per-task nesting
    check_concurrent_tasks([span for span in spans if span["attributes"].get("hookwise.task")
                            or span["name"] == "__main__:serve"], "__main__", leaf_param="x")
    [serve] = select("serve")
    assert serve["parent_id"] is None and serve["attributes"]["hookwise.kind"] == "coroutine"

    # the main thread's uncaught-then-caught error
    [fail] = select("fail", thread_name="MainThread")
    assert fail["parent_id"] is None and fail["status"] == "ERROR"
    assert fail["attributes"]["code.lineno"] == line_of(APP, 'fail("main")')
    assert all(span["status"] == "UNSET" for span in spans if span["name"] != "__main__:fail")


def write_app(tmp_path, text=APP):
    (tmp_path / "app.py").write_text(textwrap.dedent(text))
    return str(tmp_path / "app.py")


def test_end_to_end_with_the_in_memory_exporter(tmp_path):
    app = write_app(tmp_path)
    result = run_driver(
        ["--hook", "__main__:*", "--listener", "otel_memory_listener:MemoryOtel=spans.json", "app.py"],
        cwd=tmp_path, env=clean_env(PYTHONPATH=TESTS),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == APP_STDOUT and result.stderr == ""
    spans = json.loads((tmp_path / "spans.json").read_text())
    check_program_spans(spans, app)
    assert spans[0]["resource"]["service.name"].startswith("unknown_service")


# -- a local OTLP/HTTP receiver ------------------------------------------------------------


def _value(any_value):
    kind = any_value.WhichOneof("value")
    if kind == "string_value":
        return any_value.string_value
    if kind == "int_value":
        return any_value.int_value
    if kind == "bool_value":
        return any_value.bool_value
    if kind == "double_value":
        return any_value.double_value
    raise AssertionError(f"unexpected attribute value {any_value}")


def _attributes(key_values):
    return {item.key: _value(item.value) for item in key_values}


STATUS_NAMES = {0: "UNSET", 1: "OK", 2: "ERROR"}


def otlp_records(request):
    """span_record-like dicts from one ExportTraceServiceRequest."""
    records = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                records.append({
                    "name": span.name,
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_id": span.parent_span_id.hex() or None,
                    "start_ns": span.start_time_unix_nano,
                    "end_ns": span.end_time_unix_nano,
                    "attributes": _attributes(span.attributes),
                    "status": STATUS_NAMES[span.status.code],
                    "status_description": span.status.message or None,
                    "events": [{"name": event.name, "attributes": _attributes(event.attributes)} for event in span.events],
                    "resource": resource,
                    "scope": scope_spans.scope.name,
                    "kind": span.kind,
                })
    return records


class Receiver:
    """An OTLP/HTTP trace receiver on 127.0.0.1 (random port), decoding every request."""

    def __init__(self):
        self.requests = []  # (path, content type, ExportTraceServiceRequest)
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.requests.append((self.path, self.headers["Content-Type"], request))
                reply = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="otlp-receiver", daemon=True)
        self.thread.start()

    def spans(self):
        return [record for _, _, request in self.requests for record in otlp_records(request)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def otel_env(**values):
    return clean_env(**{key: value for key, value in values.items()})


def test_end_to_end_over_otlp_http(tmp_path, receiver):
    app = write_app(tmp_path)
    env = otel_env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url,  # OTEL_TRACES_EXPORTER unset: otlp is the default
        OTEL_SERVICE_NAME="billing",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment=test,team=payments",
    )
    result = run_driver(["--hook", "__main__:*", "--listener", "otel", "app.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == APP_STDOUT and result.stderr == ""
    assert receiver.requests, "nothing was exported"
    assert {(path, kind) for path, kind, _ in receiver.requests} == {("/v1/traces", "application/x-protobuf")}
    spans = receiver.spans()
    check_program_spans(spans, app)
    resource = spans[0]["resource"]
    assert resource["service.name"] == "billing"
    assert resource["deployment.environment"] == "test" and resource["team"] == "payments"
    assert resource["telemetry.sdk.name"] == "opentelemetry"
    assert {span["scope"] for span in spans} == {"hookwise"}
    assert {span["kind"] for span in spans} == {1}  # SPAN_KIND_INTERNAL


def test_otlp_traces_endpoint_redaction_and_repr_limit_through_the_driver(tmp_path, receiver):
    write_app(tmp_path, """
        def login(user, pin, *, api_key=None, headers=None):
            return {"session": "s3cr3t-session", "user": user, "note": "n" * 300}

        login("ada", "p1n-code", api_key="k-123", headers={"Authorization": "Bearer b34rer"})
    """)
    env = otel_env(OTEL_TRACES_EXPORTER="otlp", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=receiver.url + "/custom/traces",
                   OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")  # the traces endpoint wins
    result = run_driver(["--hook", "__main__:login", "--listener", "otel", "--redact", "pin", "--repr-limit", "60",
                         "app.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert [path for path, _, _ in receiver.requests] == ["/custom/traces"]
    [span] = receiver.spans()
    assert arg(span, "user") == "'ada'" and arg(span, "pin") == "***" and arg(span, "api_key") == "***"
    assert arg(span, "headers") == "{'Authorization': '***'}"
    shown = span["attributes"]["hookwise.result"]
    assert shown.startswith("{'session': '***', 'user': 'ada', 'note': 'nnn") and len(shown) == 60
    for secret in ("p1n-code", "k-123", "b34rer", "s3cr3t"):
        assert secret not in json.dumps(span)


def test_console_exporter_prints_spans_on_hookwises_stderr(tmp_path):
    app = write_app(tmp_path)
    result = run_driver(["--hook", "__main__:*", "--listener", "otel", "app.py"], cwd=tmp_path,
                        env=otel_env(OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="shop"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == APP_STDOUT  # the program's output is untouched
    lines = result.stderr.splitlines()
    assert len(lines) == APP_SPANS  # one span per line
    spans = []
    for line in lines:
        span = json.loads(line)
        status = span["status"]
        spans.append({
            "name": span["name"],
            "trace_id": span["context"]["trace_id"][2:],
            "span_id": span["context"]["span_id"][2:],
            "parent_id": span["parent_id"][2:] if span["parent_id"] else None,
            "start_ns": span["start_time"],
            "end_ns": span["end_time"],
            "attributes": span["attributes"],
            "status": status["status_code"],
            "status_description": status.get("description"),
            "events": [{"name": event["name"], "attributes": event["attributes"]} for event in span["events"]],
            "resource": span["resource"]["attributes"],
        })
    for span in spans:  # the console's timestamps are ISO strings; order them as the checker does
        span["start_ns"], span["end_ns"] = _iso_ns(span["start_ns"]), _iso_ns(span["end_ns"])
    check_program_spans(spans, app)
    assert spans[0]["resource"]["service.name"] == "shop"


def _iso_ns(text):
    from datetime import datetime, timezone

    stamp = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return int(stamp.timestamp()) * 1_000_000_000 + stamp.microsecond * 1000


def test_exporter_none_exports_nothing_and_changes_nothing(tmp_path):
    write_app(tmp_path)
    result = run_driver(["--hook", "__main__:*", "--listener", "otel", "app.py"], cwd=tmp_path,
                        env=otel_env(OTEL_TRACES_EXPORTER="none"))
    assert result.returncode == 0 and result.stdout == APP_STDOUT and result.stderr == ""


def test_console_and_otlp_together(tmp_path, receiver):
    write_app(tmp_path, "def f(n):\n    return n\n\nfor i in range(3):\n    f(i)\n")
    env = otel_env(OTEL_TRACES_EXPORTER="console,otlp", OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url)
    result = run_driver(["--hook", "__main__:f", "--listener", "otel", "app.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    printed = [json.loads(line)["context"]["span_id"][2:] for line in result.stderr.splitlines()]
    assert sorted(printed) == sorted(span["span_id"] for span in receiver.spans()) and len(printed) == 3


# -- failing before the program starts ----------------------------------------------------------


def test_a_python_without_the_sdk_fails_before_the_program_with_exit_2(tmp_path):
    write_app(tmp_path, "print('ran')\n")
    # -S: no site-packages at all, so no OpenTelemetry (hookwise itself needs only the standard library)
    result = run_python(["-S", os.path.join(ROOT, "driver.py"), "--listener", "otel", "app.py"], cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("hookwise: error: listener 'otel' needs the OpenTelemetry SDK: pip install 'hookwise[otel]' (")
    # the SDK is not imported before a spec names it: other listeners work without it
    plain = run_python(["-S", os.path.join(ROOT, "driver.py"), "--hook", "os:getcwd", "--listener", "jsonl=e.jsonl",
                        "app.py"], cwd=tmp_path)
    assert plain.returncode == 0 and plain.stdout == "ran\n", plain.stderr


def test_a_missing_otlp_exporter_package_is_named_when_otlp_is_asked_for(tmp_path):
    shadow = tmp_path / "shadow" / "opentelemetry" / "exporter"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('opentelemetry-exporter-otlp-proto-http is not installed')\n")
    write_app(tmp_path, "def f():\n    return 1\n\nprint(f())\n")
    path = str(tmp_path / "shadow")
    result = run_driver(["--hook", "__main__:f", "--listener", "otel", "app.py"], cwd=tmp_path,
                        env=otel_env(PYTHONPATH=path, OTEL_TRACES_EXPORTER="otlp"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("hookwise: error: listener 'otel' needs the OpenTelemetry SDK: pip install 'hookwise[otel]'"
                             " (opentelemetry-exporter-otlp-proto-http is not installed)\n")
    console = run_driver(["--hook", "__main__:f", "--listener", "otel", "app.py"], cwd=tmp_path,
                         env=otel_env(PYTHONPATH=path, OTEL_TRACES_EXPORTER="console"))
    assert console.returncode == 0 and console.stdout == "1\n", console.stderr
    assert json.loads(console.stderr)["name"] == "__main__:f"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"OTEL_TRACES_EXPORTER": "zipkin"}, "hookwise: error: listener 'otel': OTEL_TRACES_EXPORTER=zipkin names an exporter"
                                             " it does not know (zipkin); use otlp, console, none"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "hookwise: error: listener 'otel' sends OTLP over http/protobuf only"
                                                  " (the protocol asked for is 'grpc')"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
          "OTEL_TRACES_EXPORTER": "none"}, None),
    ],
)
def test_bad_exporter_settings_fail_before_the_program(tmp_path, env, message):
    write_app(tmp_path, "print('ran')\n")
    result = run_driver(["--listener", "otel", "app.py"], cwd=tmp_path, env=otel_env(**env))
    if message is None:
        assert result.returncode == 0 and result.stdout == "ran\n", result.stderr
    else:
        assert result.returncode == 2 and result.stdout == "" and result.stderr == message + "\n"


def test_otel_with_a_value_is_refused_by_the_driver(tmp_path):
    write_app(tmp_path, "print('ran')\n")
    result = run_driver(["--listener", "otel=console", "app.py"], cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "hookwise: error: listener 'otel' takes no value (got otel=console)\n"


# -- no feedback from the exporter, and fork ----------------------------------------------------------

FEEDBACK_APP = """
import time

def work(i):
    return i

for i in range(30):
    work(i)
    time.sleep(0.01)
"""


def test_hooking_the_exporters_own_modules_makes_no_feedback_loop(tmp_path, receiver):
    write_app(tmp_path, FEEDBACK_APP)
    env = otel_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="10")  # export every 10 ms
    hooks = ["__main__:work", "http.client:*", "urllib3.*:*", "requests.*:*", "socket:*", "threading:Event.wait",
             "opentelemetry.*:*"]
    args = [item for hook in hooks for item in ("--hook", hook)]
    started = time.monotonic()
    result = run_driver([*args, "--listener", "otel", "--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path,
                        env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 30
    assert len(receiver.requests) >= 3  # the worker exported again and again while the program ran
    spans = receiver.spans()
    work = [span for span in spans if span["name"] == "__main__:work"]
    assert sorted(arg(span, "i") for span in work) == sorted(str(i) for i in range(30))
    assert not [span for span in spans if span["attributes"]["thread.name"].startswith("OtelBatch")]
    # One thing of the exporter's does run on the program's thread: urllib3's pool finalizer,
    # which weakref runs at exit (its atexit hook was registered after hookwise's, so it runs
    # first). Once per pool, not a loop: nothing else of the exporter's became a span.
    ids = {span["span_id"]: span for span in spans}
    roots = []
    for span in spans:
        if span in work:
            continue
        while span["parent_id"] is not None:
            span = ids[span["parent_id"]]
        roots.append(span["span_id"])
    assert len(set(roots)) <= 1
    for root_id in set(roots):
        root = ids[root_id]
        assert root["name"] == "urllib3.connectionpool:_close_pool_connections"
        assert root["attributes"]["hookwise.caller.function"] in ("finalize.__call__", "__call__")  # 3.10: no qualname
    # the exporter's calls were hooked, and reported as ordinary calls to the other listener
    events = read_jsonl(tmp_path / "events.jsonl")
    exporter_threads = {event["thread_name"] for event in events if not event["target"].startswith("__main__")}
    assert any(name.startswith("OtelBatch") for name in exporter_threads), exporter_threads
    assert any(event["target"].startswith(("http.client:", "urllib3.", "requests.")) for event in events)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_exports_its_own_spans_and_never_ends_its_parents(tmp_path, receiver):
    write_app(tmp_path, """
        import os
        import warnings

        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork() with the exporter's thread running

        def child_work():
            return "child"

        def run():
            pid = os.fork()
            if pid == 0:
                child_work()
                return "in child"
            os.waitpid(pid, 0)
            return "in parent"

        print(run())
    """)
    result = run_driver(["--hook", "__main__:*", "--listener", "otel", "app.py"], cwd=tmp_path,
                        env=otel_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url))
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == ["in child", "in parent"]
    spans = receiver.spans()
    assert sorted(span["name"] for span in spans) == ["__main__:child_work", "__main__:run"]
    run, child = sorted(spans, key=lambda span: span["name"], reverse=True)
    assert run["attributes"]["hookwise.result"] == "'in parent'"  # the child did not end the parent's span
    assert child["parent_id"] == run["span_id"] and child["trace_id"] == run["trace_id"]
    assert child["attributes"]["hookwise.result"] == "'child'"


def test_a_python_child_process_exports_its_own_spans(tmp_path, receiver):
    (tmp_path / "child.py").write_text("def child_work(n):\n    return n + 1\n\nprint(child_work(1))\n")
    write_app(tmp_path, """
        import subprocess
        import sys

        def parent():
            return subprocess.run([sys.executable, "child.py"], check=True).returncode

        print("parent", parent())
    """)
    result = run_driver(["--hook", "__main__:*", "--listener", "otel", "app.py"], cwd=tmp_path,
                        env=otel_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_SERVICE_NAME="jobs"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2\nparent 0\n"
    spans = {span["name"]: span for span in receiver.spans()}
    assert sorted(spans) == ["__main__:child_work", "__main__:parent"]
    child, parent = spans["__main__:child_work"], spans["__main__:parent"]
    assert child["attributes"]["code.filepath"] == str(tmp_path / "child.py")
    assert child["attributes"]["hookwise.result"] == "2"
    assert {child["resource"]["service.name"], parent["resource"]["service.name"]} == {"jobs"}
    assert child["parent_id"] is None  # another process: its own trace (no context crosses exec)


def test_the_exporters_own_requests_are_no_event_of_any_listener(tmp_path, receiver):
    # with urllib3 and json hooked, the OTLP exporter's own requests (its batch thread, and the
    # last batch sent at exit from the main thread) must not reach jsonl: they are hookwise's work
    (tmp_path / "app.py").write_text("import json\nfor i in range(3):\n    json.dumps(i)\n")
    env = otel_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="1")
    result = run_driver(["--preset", "http", "--hook", "json:*", "--listener", "otel", "--listener", "jsonl=e.jsonl",
                         "app.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert receiver.requests, "nothing was exported"
    starts = [event for event in read_jsonl(tmp_path / "e.jsonl") if event["event"] == "start"]
    assert [(event["target"], event["args"]) for event in starts] == [("json:dumps", [str(i)]) for i in range(3)]
