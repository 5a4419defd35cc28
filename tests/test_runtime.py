"""The dispatch runtime and the Call record, through rewritten code in this process."""

import asyncio
import io
import os
import sys
import threading
import time

import pytest

from helpers import Recorder, load_rewritten
from hookwise import Blocked, report
from hookwise.runtime import Registry
from hookwise.saferepr import saferepr
from hookwise.targets import TargetSet, parse_target


@pytest.fixture
def messages(monkeypatch):
    """What hookwise says on its own stderr during the test."""
    stream = io.StringIO()
    monkeypatch.setattr(report, "_stream", stream)
    monkeypatch.setattr(report, "_said", set())
    return stream


SOURCE = """
def add(a, b=0, *more, scale=1, **options):
    return (a + b + sum(more)) * scale

class Thing:
    def __init__(self, name):
        self.name = name
    def __repr__(self):
        return f"Thing({self.name!r})"
    def touch(self):
        return helper(self.name)

def helper(value):
    return value.upper()

def caller_of_add():
    return add(1, 2)
"""


def test_call_record_fields(monkeypatch):
    recorder = Recorder()
    namespace, _ = load_rewritten(SOURCE, listeners=[recorder], filename=__file__)
    before = time.time_ns()
    assert namespace["add"](1, 2, 3, 4, scale=2, extra="x") == 20
    call = recorder.calls[-1]
    assert call.target == "hooked:add" and call.module == "hooked" and call.qualname == "add"
    assert call.args == (1, 2, 3, 4)
    assert call.kwargs == {"scale": 2, "extra": "x"}
    assert call.arguments == {"a": 1, "b": 2, "more": (3, 4), "scale": 2, "options": {"extra": "x"}}
    assert call.thread_id == threading.get_ident() and call.thread_name == "MainThread"
    assert call.pid == os.getpid()
    assert before <= call.start_ns <= time.time_ns()
    assert call.duration_ns is not None and call.duration_ns >= 0 and call.result == 20
    assert call.kind == "function" and call.done and call.exception is None


def test_call_ids_are_unique_and_increasing():
    recorder = Recorder()
    namespace, _ = load_rewritten(SOURCE, listeners=[recorder])
    for _ in range(5):
        namespace["add"](1)
    ids = [call.call_id for call in recorder.calls]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_the_caller_is_the_code_that_made_the_call():
    seen = []

    class CallerListener:
        def start(self, call):
            seen.append(call.caller)

    namespace, _ = load_rewritten(SOURCE, listeners=[CallerListener()], filename="/src/app.py")
    namespace["caller_of_add"]()
    # caller_of_add is hooked too: its own caller is this test function
    assert seen[0].function.endswith("test_the_caller_is_the_code_that_made_the_call")
    assert seen[0].file == __file__
    assert seen[1] == ("/src/app.py", 17, "caller_of_add")


def test_request_id_is_the_request_served_in_the_context_of_the_call():
    import contextvars

    from hookwise import _state

    seen = []

    class Served:
        call, call_id = None, 41

    class RequestIds:
        def start(self, call):
            seen.append(call.request_id)

    namespace, _ = load_rewritten(SOURCE, listeners=[RequestIds()])
    namespace["add"](1)  # no request: None
    token = _state.current_request.set(Served())
    try:
        namespace["add"](1)
        contextvars.copy_context().run(namespace["add"], 2)  # a copied context (a task's) carries it
    finally:
        _state.current_request.reset(token)
    contextvars.Context().run(namespace["add"], 3)  # a fresh one does not
    assert seen == [None, 41, 41, None]


def test_the_caller_is_only_known_while_the_call_is_reported():
    recorder = Recorder()
    namespace, _ = load_rewritten(SOURCE, listeners=[recorder])
    namespace["add"](1)
    late = recorder.calls[-1]  # caller, task and request_id were never read during the callbacks
    for name in ("caller", "task", "request_id"):
        with pytest.raises(RuntimeError, match=rf"^Call\.{name} is only known while a listener handles the call"):
            getattr(late, name)

    class KeepsCaller(Recorder):
        def start(self, call):
            call.caller
            super().start(call)

    keeper = KeepsCaller()
    namespace, _ = load_rewritten(SOURCE, listeners=[keeper])
    namespace["add"](1)
    assert keeper.calls[-1].caller.function.endswith("test_the_caller_is_only_known_while_the_call_is_reported")


def test_thread_names_and_ids():
    recorder = Recorder()
    namespace, _ = load_rewritten(SOURCE, listeners=[recorder])
    names = {}

    class Names:
        def start(self, call):
            names[call.call_id] = (call.thread_id, call.thread_name)

    namespace, _ = load_rewritten(SOURCE, listeners=[Names()])
    worker = threading.Thread(target=namespace["add"], args=(1,), name="worker-7")
    worker.start()
    worker.join()
    assert list(names.values()) == [(worker.ident, "worker-7")]


def test_asyncio_task_names():
    tasks = []

    class Tasks:
        def start(self, call):
            tasks.append((call.qualname, call.task))

    namespace, _ = load_rewritten(
        """
        import asyncio
        async def job(n):
            await asyncio.sleep(0)
            return n
        def sync_helper():
            return 1
        async def main():
            sync_helper()
            return await asyncio.gather(asyncio.create_task(job(1), name="first"), asyncio.create_task(job(2), name="second"))
        """,
        listeners=[Tasks()],
    )
    asyncio.run(namespace["main"]())
    assert ("job", "first") in tasks and ("job", "second") in tasks
    main_task = dict(tasks)["main"]
    assert main_task is not None and dict(tasks)["sync_helper"] == main_task
    namespace["sync_helper"]()
    assert tasks[-1] == ("sync_helper", None)


def test_a_failing_listener_is_reported_once_and_never_reaches_the_program(messages):
    class Broken:
        def start(self, call):
            raise ValueError("listener bug")

        def end(self, call, result):
            raise KeyError("another")

    recorder = Recorder()
    namespace, _ = load_rewritten(SOURCE, listeners=[Broken(), recorder])
    for _ in range(3):
        assert namespace["add"](2, 3) == 5
    assert len(recorder.calls) == 3  # the other listener still hears everything
    lines = messages.getvalue().splitlines()
    assert len(lines) == 1
    assert "Broken" in lines[0] and "ValueError: listener bug" in lines[0] and "test_runtime.py" in lines[0]


def test_hooked_code_called_by_a_listener_reports_nothing():
    class Reentrant:
        def __init__(self):
            self.events = []

        def start(self, call):
            self.events.append(("start", call.qualname, saferepr(call.args)))  # runs the hooked __repr__
            if call.qualname == "Thing.touch":
                self.namespace["helper"]("from the listener")

        def end(self, call, result):
            self.events.append(("end", call.qualname))

    listener = Reentrant()
    namespace, _ = load_rewritten(SOURCE, listeners=[listener])
    listener.namespace = namespace
    thing = namespace["Thing"]("a")
    assert thing.touch() == "A"
    assert [event[:2] for event in listener.events] == [
        ("start", "Thing.__init__"), ("end", "Thing.__init__"),
        ("start", "Thing.touch"), ("start", "helper"), ("end", "helper"), ("end", "Thing.touch"),
    ]


def test_a_start_listener_can_block_a_call():
    ran = []

    class Guard:
        def start(self, call):
            if call.arguments.get("value") == "rm -rf /":
                raise Blocked("refused: dangerous command")

    recorder = Recorder()
    namespace, _ = load_rewritten(
        """
        ran = []
        def run(value):
            ran.append(value)
            return "ran"
        """,
        listeners=[Guard(), recorder],
    )
    assert namespace["run"]("ls") == "ran"
    with pytest.raises(Blocked, match="refused") as info:
        namespace["run"]("rm -rf /")
    assert isinstance(info.value, PermissionError)
    assert namespace["ran"] == ["ls"]
    # the later listener saw the start too, then the error
    assert recorder.events[-2:] == [("start", "run", {"value": "rm -rf /"}), ("error", "run", "Blocked")]
    del ran


def test_blocking_a_generator_refuses_its_first_resume():
    class Guard:
        def start(self, call):
            raise Blocked("no")

    namespace, _ = load_rewritten("def gen():\n    yield 1\n", listeners=[Guard()])
    generator = namespace["gen"]()
    with pytest.raises(Blocked):
        next(generator)


def test_no_listener_means_no_call_at_all():
    namespace, sites = load_rewritten(SOURCE, listeners=[])
    assert all(not site.on for site in sites.values())
    assert namespace["add"](1, 2) == 3


def test_per_target_listeners_hear_only_their_target():
    everyone, only_helper = Recorder(), Recorder()
    helper_target = parse_target("hooked:helper", listeners=["spec"])
    registry = Registry()
    registry.configure(TargetSet([parse_target("hooked:*"), helper_target]), [everyone], {helper_target: [only_helper]})
    import rewriter
    from loader import binding

    tree = rewriter.parse(SOURCE, "<t>")
    table = rewriter.instrument(tree, lambda qualname: True)
    code = binding.bind(compile(tree, "<t>", "exec"), binding.create_sites(table, ("hooked",), registry))
    namespace = {}
    exec(code, namespace)
    namespace["Thing"]("x").touch()
    assert [event[1] for event in only_helper.events] == ["helper", "helper"]
    assert {event[1] for event in everyone.events} == {"Thing.__init__", "Thing.touch", "helper"}
    assert helper_target.matched


def test_threads_keep_their_pairs():
    recorder = Recorder()
    lock = threading.Lock()

    class Pairs:
        def __init__(self):
            self.open = {}
            self.bad = []

        def start(self, call):
            with lock:
                self.open[call.call_id] = call.thread_id

        def end(self, call, result):
            with lock:
                if self.open.pop(call.call_id, None) != threading.get_ident():
                    self.bad.append(call.call_id)

    pairs = Pairs()
    namespace, _ = load_rewritten(SOURCE, listeners=[pairs, recorder])
    threads = [threading.Thread(target=lambda: [namespace["add"](i) for i in range(2000)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pairs.open == {} and pairs.bad == []
    assert len(recorder.calls) == 8000


def test_saferepr_never_fails_and_stays_bounded():
    from hookwise.saferepr import saferepr

    class Broken:
        def __repr__(self):
            raise RuntimeError("no repr")

    assert saferepr(Broken(), user_reprs=True) == "<Broken object; repr() raised RuntimeError>"
    huge = list(range(10_000_000))
    began = time.perf_counter()
    text = saferepr(huge, 50)
    assert time.perf_counter() - began < 0.5  # bounded work, not a timing assertion on hookwise speed
    assert len(text) <= 50 and text.startswith("[0, 1, 2")
    assert saferepr("x" * 1000, 20) == "'xxxxxxxxxxxxxxxx..."
    nested = [[[[[["deep"]]]]]]
    assert saferepr(nested) == "[[[[[...]]]]]"
    assert saferepr({"a": (1,), "b": set(), "c": frozenset()}) == "{'a': (1,), 'b': set(), 'c': frozenset()}"
    loop = []
    loop.append(loop)
    assert saferepr(loop).startswith("[[[[")
    assert sys.getrecursionlimit()  # still alive


def test_changed_arguments_leave_out_literal_defaults():
    recorder = Recorder()
    namespace, _ = load_rewritten(
        "def popen(args, bufsize=-1, shell=False, cwd=None, *, text=None, env=ENV):\n    pass\nENV = {}\n"
        "def call(): popen('ls', shell=True, text=False, env={'A': '1'})\n".replace("ENV = {}\n", ""),
        listeners=[recorder],
        namespace={"__name__": "m", "ENV": {}},
    )
    namespace["call"]()
    call = recorder.calls[-1]
    assert call.changed_arguments == {"args": "ls", "shell": True, "text": False, "env": {"A": "1"}}
    assert call.arguments["bufsize"] == -1 and call.arguments["cwd"] is None


def test_showing_values_runs_none_of_the_programs_reprs():
    import argparse
    import collections
    import datetime
    import enum
    import functools
    import pathlib
    import types

    from hookwise.saferepr import safestr

    ran = []

    class Loud:
        def __repr__(self):
            ran.append("repr")
            return "Loud()"

        def method(self):
            pass

    loud = Loud()
    shown = {
        "bound method": (loud.method, "<bound method"),
        "partial": (functools.partial(print, loud, k=loud), "functools.partial(<built-in function print>, <"),
        "exception": (ValueError(loud, 1), "ValueError(<"),
        "namespace": (types.SimpleNamespace(a=loud), "namespace(a=<"),
        "argparse namespace": (argparse.Namespace(a=loud), "Namespace(a=<"),
        "slice": (slice(1, loud), "slice(1, <"),
        "dict view": ({1: loud}.values(), "dict_values([<"),
        "mapping proxy": (types.MappingProxyType({"a": loud}), "mappingproxy({'a': <"),
        "ordered dict": (collections.OrderedDict(a=loud), "OrderedDict({'a': <"),
        "deque": (collections.deque([loud]), "deque([<"),
        "user dict": (collections.UserDict(a=loud), "UserDict({'a': <"),
        "user list": (collections.UserList([loud]), "UserList([<"),
        "chain map": (collections.ChainMap({"a": loud}), "ChainMap({'a': <"),
        "enum member": (enum.Enum("Held", {"A": loud}).A, "<Held.A: <"),
    }
    for label, (value, start) in shown.items():
        text = saferepr(value)
        assert text.startswith(start), (label, text)
        assert "test_runtime" in text and "Loud object at 0x" in text, (label, text)
    assert ran == []
    # values whose repr shows nothing of the program's are shown as python shows them
    for value in (datetime.datetime(2020, 1, 2), pathlib.PurePosixPath("/x"), enum.Enum("E", "A").A, len, Loud, 1.5):
        assert saferepr(value) == repr(value)
    assert (safestr(KeyError("k")), safestr(ValueError("message")), safestr(FileNotFoundError(2, "gone", "f"))) == (
        "'k'", "message", "[Errno 2] gone: 'f'")
    assert saferepr(loud, user_reprs=True) == "Loud()" and ran == ["repr"]


def test_secrets_are_hidden_in_namespaces_partials_and_user_dicts():
    import argparse
    import collections
    import functools
    import types

    from hookwise.render import Render

    secret = Render().is_secret
    shown = [
        saferepr(argparse.Namespace(user="bob", password="hunter2"), secret=secret),
        saferepr(types.SimpleNamespace(api_key="sk-LIVE-123"), secret=secret),
        saferepr(functools.partial(print, "bob", password="hunter2"), secret=secret),
        saferepr(collections.UserDict(token="tok-999"), secret=secret),
    ]
    assert shown == [
        "Namespace(user='bob', password='***')",
        "namespace(api_key='***')",
        "functools.partial(<built-in function print>, 'bob', password='***')",
        "UserDict({'token': '***'})",
    ]


def test_no_op_methods_inherited_from_listener_are_not_called():
    """A Listener subclass pays only for what it defines: each method called costs a frame."""
    from hookwise import Listener
    from hookwise.runtime import _methods

    class OnlyEnd(Listener):
        def end(self, call, result):
            pass

    only_end, with_own_error = OnlyEnd(), OnlyEnd()
    with_own_error.error = lambda call, exc: None  # set on the instance: still the listener's own
    assert _methods([only_end, with_own_error], "start") == ()
    assert _methods([only_end, with_own_error], "error") == (with_own_error.error,)
    assert [method.__func__ for method in _methods([only_end], "end")] == [OnlyEnd.end]

    recorder = Recorder()
    namespace, _ = load_rewritten(SOURCE, listeners=[only_end, recorder])
    assert namespace["add"](1, 2) == 3 and [call.result for call in recorder.calls] == [3]


def test_argument_values_of_any_count_reach_the_call():
    """The C runtime keeps a few values inside the Call and packs more into a tuple: both read the same."""
    source = """
    def none():
        return 0
    def eight(a, b, c, d, e, f, g, h):
        return a + h
    def six(a, b, c, d, e, f):
        return f
    """
    recorder = Recorder()
    namespace, _ = load_rewritten(source, listeners=[recorder])
    assert namespace["none"]() == 0 and namespace["six"](*"abcdef") == "f" and namespace["eight"](*range(8)) == 7
    no_values, six, eight = recorder.calls
    assert no_values.values == () and no_values.args == () and no_values.arguments == {}
    assert six.values == tuple("abcdef") and six.args == tuple("abcdef")
    assert eight.values == tuple(range(8)) and eight.arguments == dict(zip("abcdefgh", range(8)))
    assert six.values is six.values  # made once, then kept


def test_a_cycle_through_a_calls_argument_values_is_collected():
    """The garbage collector sees the values a Call holds, wherever it keeps them."""
    import gc
    import weakref

    class Keeper:
        box = None

        def start(self, call):
            self.box.append(call)  # does not read the values: the C Call still holds them inline

    source = """
    class Node:
        def visit(self, a, b):
            return a
    """
    keeper = Keeper()
    namespace, _ = load_rewritten(source, listeners=[keeper])
    node = namespace["Node"]()
    node.box = keeper.box = []
    assert node.visit(1, 2) == 1  # node -> box -> Call -> node
    keeper.box = None
    alive = weakref.ref(node)
    del node
    gc.collect()
    assert alive() is None


def test_a_collection_while_a_finished_call_is_cleared_is_safe():
    """A value's __del__ may run the collector while the Call that held the value is being cleared."""
    import gc

    freed = []

    class CollectsWhenFreed:
        def __del__(self):
            freed.append(True)
            gc.collect()

    class Keep:
        def __init__(self):
            self.calls = []

        def end(self, call, result):
            self.calls.append(call)

    keep = Keep()
    namespace, _ = load_rewritten("def take(value):\n    return None\n", listeners=[keep])
    for _ in range(3):
        namespace["take"](CollectsWhenFreed())
    assert not freed  # each Call holds the last reference to its argument
    keep.calls.clear()
    assert len(freed) == 3
    assert namespace["take"](1) is None and keep.calls[0].values == (1,)
