"""The C accelerator and the pure-Python runtime: the one under test is the one in use.

tests/run_all.py runs the whole suite twice per interpreter, with
HOOKWISE_TEST_IMPLEMENTATION=c (accelerator built in place) and =pure
(HOOKWISE_PURE_PYTHON=1); these tests make sure each run really exercised
the implementation it claims, and cover what only the C types have.
"""

import ast
import gc
import glob
import os
import pickle
import sys
import textwrap
import time

from helpers import ROOT, Recorder, clean_env, load_rewritten, read_jsonl, run_driver, run_python
from hookwise import accel
from hookwise.call import Call, PurePythonCall


def test_the_implementation_under_test_is_the_one_in_use():
    expected = os.environ.get("HOOKWISE_TEST_IMPLEMENTATION")
    built = glob.glob(os.path.join(ROOT, "hookwise", f"_speedups{sys.implementation.cache_tag.replace('cpython-', '.cpython-')}*"))
    if expected == "c" or (expected is None and built and not os.environ.get(accel.PURE_PYTHON)):
        assert accel.ACTIVE, "the C accelerator was expected but is not in use"
        assert Call is not PurePythonCall
    elif expected == "pure" or os.environ.get(accel.PURE_PYTHON):
        assert not accel.ACTIVE and Call is PurePythonCall
    child = run_python(["-c", "import hookwise.accel as a; print(a.describe())"], cwd=ROOT, env=clean_env())
    assert child.stdout.strip() == accel.describe()


def test_durations_and_timestamps_agree_with_the_clocks():
    recorder = Recorder()
    namespace, _ = load_rewritten("import time\ndef nap(s):\n    time.sleep(s)\n", listeners=[recorder])
    before = time.time_ns()
    namespace["nap"](0.05)
    after = time.time_ns()
    call = recorder.calls[-1]
    assert 45_000_000 <= call.duration_ns <= (after - before) + 1_000_000
    assert before - 1_000_000 <= call.start_ns <= call.end_ns <= after + 1_000_000
    # end_ns is when it really ended; duration_ns leaves out hookwise's own time inside it (its listeners)
    assert call.end_ns - call.start_ns == call.duration_ns + call.overhead_ns
    assert 0 <= call.overhead_ns < 1_000_000


def test_calls_kept_by_a_listener_stay_intact_after_many_more_calls():
    kept = []

    class Keeper:
        def end(self, call, result):
            if len(kept) < 3:
                kept.append(call)

    namespace, _ = load_rewritten("def f(x):\n    return x * 2\n", listeners=[Keeper()])
    for i in range(2000):
        namespace["f"](i)
    assert [(c.arguments, c.result, c.done) for c in kept] == [({"x": 0}, 0, True), ({"x": 1}, 2, True), ({"x": 2}, 4, True)]
    assert len({c.call_id for c in kept}) == 3


def test_cycles_through_a_call_are_collected():
    class Holder:
        pass

    class Cyclic:
        def end(self, call, result):
            result.call = call  # result -> call -> result

    namespace, _ = load_rewritten("def make(cls):\n    return cls()\n", listeners=[Cyclic()])
    import weakref

    made = namespace["make"](Holder)
    probe = weakref.ref(made)
    del made
    gc.collect()
    assert probe() is None


def test_the_wrapper_of_a_builtin_looks_like_it(tmp_path):
    program = textwrap.dedent("""
        import os, pickle, inspect, posix
        class Holder:
            run = os.system   # a builtin in a class does not bind; the wrapper must not either
        print(os.system.__name__, os.system.__qualname__, os.system.__module__, os.system.__doc__ == posix.system.__wrapped__.__doc__)
        print(repr(os.system) == repr(os.system.__wrapped__), pickle.loads(pickle.dumps(os.system)) is os.system)
        print(str(inspect.signature(os.system)), Holder().run("true"))
    """)
    (tmp_path / "program.py").write_text(program)
    result = run_driver(["--hook", "os:system", "--listener", "jsonl=e.jsonl", "program.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["system system posix True", "True True", "(command) 0"]
    assert [e["event"] for e in read_jsonl(tmp_path / "e.jsonl")] == ["start", "end"]


ARGUMENT_SHAPES = """\
import json, os, sqlite3


def plain(a, b=2):
    return a


def star(a, *rest, key=None, **more):
    return a


def only_keywords(*, x, y=1):
    return x


def just_rest(*rest, **more):
    return rest


class Thing:
    def method(self, value, *extra):
        return value


plain(1)
plain(1, b=[3])
star(1)
star(1, 2, 3, key="k", other={"x": 1})
only_keywords(x=1)
just_rest()
just_rest(1, z=2)
Thing().method(5, 6)
json.dumps([1], indent=None)  # a library's Python function
os.getcwd()  # a replaced builtin: (args, kwargs)
sqlite3.connect(":memory:").execute("select ?", (1,))  # a C method's wrapper
"""

SAME_ARGUMENTS = """\
import hookwise.accel
import hookwise.call

seen = {"checked": 0, "different": []}


class SameArguments:
    # args and kwargs as listeners read them (in C with the accelerator) against hookwise.call's Python answer
    def start(self, call):
        got = (call.args, call.kwargs)
        expected = (hookwise.call.args_of(call), hookwise.call.kwargs_of(call))
        seen["checked"] += 1
        if got != expected or type(got[0]) is not type(expected[0]) or type(got[1]) is not type(expected[1]):
            seen["different"].append((call.target, got, expected))

    def close(self):
        print(seen["checked"], hookwise.accel.ACTIVE, seen["different"][:3])
"""


def test_args_and_kwargs_are_the_python_reference_s_for_every_layout(tmp_path):
    (tmp_path / "shapes.py").write_text(ARGUMENT_SHAPES)
    (tmp_path / "same_arguments.py").write_text(SAME_ARGUMENTS)
    result = run_driver(["--hook", "__main__:*", "--hook", "json:dumps", "--hook", "os:getcwd",
                         "--hook", "sqlite3:Connection.execute", "--listener", "same_arguments:SameArguments",
                         "shapes.py"], cwd=tmp_path, env=clean_env(PYTHONPATH=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    checked, accelerated, different = result.stdout.split(" ", 2)
    assert accelerated == str(not os.environ.get(accel.PURE_PYTHON)), "the implementation under test ran"
    assert int(checked) == 11 and different.strip() == "[]", result.stdout


THREADS = """\
import _thread
import threading
import time


def work(label):
    return label


class OwnName(threading.Thread):
    @property
    def name(self):
        return "own-" + self._name


def run(thread):
    thread.start()
    thread.join()


work("main")
threading.current_thread().name = "renamed-main"
work("main renamed")
run(threading.Thread(target=work, args=("named",), name="worker-1"))
run(OwnName(target=work, args=("own property",), name="x"))
done = threading.Event()


def bare():
    work("a thread threading never saw")
    done.set()


_thread.start_new_thread(bare, ())
done.wait(10)
time.sleep(0.05)
"""

SAME_THREAD_NAMES = """\
import hookwise._state
import hookwise.accel

seen = []


class SameThreadNames:
    # thread_name as listeners read it (in C with the accelerator) against hookwise._state's Python answer
    def start(self, call):
        seen.append((call.args[0], call.thread_name, hookwise._state.thread_name(call.thread_id)))

    def close(self):
        print(hookwise.accel.ACTIVE, repr(seen))
"""


def test_thread_names_are_the_python_reference_s(tmp_path):
    (tmp_path / "threads.py").write_text(THREADS)
    (tmp_path / "same_thread_names.py").write_text(SAME_THREAD_NAMES)
    result = run_driver(["--hook", "__main__:work", "--listener", "same_thread_names:SameThreadNames", "threads.py"],
                        cwd=tmp_path, env=clean_env(PYTHONPATH=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    accelerated, seen = result.stdout.split(" ", 1)
    assert accelerated == str(not os.environ.get(accel.PURE_PYTHON)), "the implementation under test ran"
    seen = ast.literal_eval(seen)
    assert [label for label, _, _ in seen] == ["main", "main renamed", "named", "own property",
                                               "a thread threading never saw"]
    assert all(got == expected for _, got, expected in seen), seen
    assert [got for _, got, _ in seen][:4] == ["MainThread", "renamed-main", "worker-1", "own-x"]
    assert seen[4][1].startswith("Thread-") or seen[4][1].startswith("Dummy-"), seen
