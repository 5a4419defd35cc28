"""Differential property tests: generated code behaves the same rewritten and original.

hypothesis writes function bodies out of nested if/for/while/try/except/else/
finally blocks with return, break, continue and raise, plus generators driven
with send/throw/close and coroutines. Each is compiled twice, plainly and with
every function hooked, run the same way, and must give the same results,
exceptions and side-effect log. The recorded events must match what happened.

HOOKWISE_EXAMPLES=2000 raises the example count (default 150 per test).
"""

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import load_plain, load_rewritten

# Generated code may misbehave the way real code can (raise while being closed,
# be dropped by hypothesis' shrinker before it ran); Python reports that the same
# for the plain and the rewritten run, and it is not what these tests compare.
pytestmark = [
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("ignore:coroutine 'f' was never awaited:RuntimeWarning"),
]

EXAMPLES = int(os.environ.get("HOOKWISE_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EXCEPTIONS = ("ValueError", "KeyError", "ZeroDivisionError")


@st.composite
def block(draw, depth, in_loop, kind):
    """A list of source lines (already indented relative to the block)."""
    count = draw(st.integers(1, 3))
    lines = []
    for _ in range(count):
        lines.extend(draw(statement(depth, in_loop, kind)))
    return lines


def indent(lines):
    return ["    " + line for line in lines]


@st.composite
def statement(draw, depth, in_loop, kind):
    simple = [
        "log.append(x)",
        "x = (x * 3 + 1) % 97",
        "x += 1",
        f"raise {draw(st.sampled_from(EXCEPTIONS))}(x)",
        "return x" if kind != "async_generator" else "log.append('no return in async generators')",
        "return" if kind != "async_generator" else "pass",
    ]
    if in_loop:
        simple += ["break", "continue"]
    if kind in ("generator", "async_generator"):
        simple += ["x += (yield x) or 0", "yield x * 2"]
    if kind in ("coroutine", "async_generator"):
        simple += ["await tick()"]
    if depth <= 0:
        return [draw(st.sampled_from(simple))]
    choice = draw(st.integers(0, 9))
    inner = lambda loop=in_loop: block(depth - 1, loop, kind)  # noqa: E731
    if choice <= 3:
        return [draw(st.sampled_from(simple))]
    if choice == 4:
        modulus = draw(st.integers(2, 4))
        lines = [f"if x % {modulus} == 0:", *indent(draw(inner()))]
        if draw(st.booleans()):
            lines += ["else:", *indent(draw(inner()))]
        return lines
    if choice == 5:
        return [f"for i{depth} in range({draw(st.integers(0, 3))}):", *indent(draw(inner(True)))]
    if choice == 6:
        return [f"guard{depth} = 0", f"while guard{depth} < {draw(st.integers(1, 3))}:", f"    guard{depth} += 1",
                *indent(draw(inner(True)))]
    # try statements, in every combination of clauses
    lines = ["try:", *indent(draw(inner()))]
    handlers = draw(st.integers(0, 2))
    for _ in range(handlers):
        caught = draw(st.sampled_from(EXCEPTIONS + ("Exception",)))
        lines += [f"except {caught} as exc{depth}:", f"    log.append(type(exc{depth}).__name__)", *indent(draw(inner()))]
    if handlers and draw(st.booleans()):
        lines += ["else:", *indent(draw(inner()))]
    if not handlers or draw(st.booleans()):
        lines += ["finally:", *indent(draw(inner()))]
    return lines


def function_source(kind, body):
    header = {"function": "def f(x, log):", "generator": "def f(x, log):",
              "coroutine": "async def f(x, log):", "async_generator": "async def f(x, log):"}[kind]
    prelude = "import types\n@types.coroutine\ndef tick():\n    yield\n"
    return prelude + "\n".join([header, *indent(body)]) + "\n"


def functions(kind):
    return block(3, False, kind).map(lambda body: function_source(kind, body))


class EventLog:
    def __init__(self):
        self.events = []

    def start(self, call):
        self.events.append(("start", call.call_id))

    def end(self, call, result):
        self.events.append(("end", call.call_id, result))

    def error(self, call, exc):
        self.events.append(("error", call.call_id, type(exc).__name__))


def outcome(run):
    log = []
    try:
        result = ("returned", run(log))
    except Exception as exc:
        result = ("raised", type(exc).__name__, exc.args)
    return result, log


def both(source):
    events = EventLog()
    hooked, _ = load_rewritten(source, listeners=[events], filename="<generated>")
    plain = load_plain(source, filename="<generated>")
    return plain["f"], hooked["f"], events


def assert_paired(events):
    starts = [event for event in events if event[0] == "start"]
    ends = [event for event in events if event[0] != "start"]
    assert len(starts) == len(ends)
    assert [event[1] for event in starts] == sorted({event[1] for event in ends})


@SETTINGS
@given(functions("function"), st.integers(0, 5))
def test_functions(source, x):
    plain, hooked, events = both(source)
    expected = outcome(lambda log: plain(x, log))
    got = outcome(lambda log: hooked(x, log))
    assert got == expected, source
    assert_paired(events.events)
    last = events.events[-1]
    if expected[0][0] == "returned":
        assert last[0] == "end" and last[2] == expected[0][1]
    else:
        assert last[0] == "error" and last[2] == expected[0][1]


def drive_generator(generator_function, x, plan, log):
    """Run a generator by a fixed plan of next/send/throw/close; return what it produced."""
    generator = generator_function(x, log)
    produced = []
    for step in plan:
        try:
            if step == "next":
                produced.append(("yield", next(generator)))
            elif step == "send":
                produced.append(("yield", generator.send(7)))
            elif step == "throw":
                produced.append(("yield", generator.throw(ValueError("thrown"))))
            else:
                generator.close()
                produced.append(("closed",))
        except StopIteration as stop:
            produced.append(("stop", stop.value))
            break
        except Exception as exc:
            produced.append(("raised", type(exc).__name__, exc.args))
            break
    try:
        generator.close()
    except RuntimeError as exc:  # it yielded while being closed: it never finishes
        produced.append(("close-failed", str(exc)))
    return produced


generator_plans = st.lists(st.sampled_from(["next", "next", "send", "throw", "close"]), min_size=1, max_size=6).map(
    lambda plan: ["next", *plan]
)


@SETTINGS
@given(functions("generator"), st.integers(0, 5), generator_plans)
def test_generators(source, x, plan):
    plain, hooked, events = both(source)
    expected = outcome(lambda log: drive_generator(plain, x, plan, log))
    got = outcome(lambda log: drive_generator(hooked, x, plan, log))
    assert got == expected, source
    if not any(step[0] == "close-failed" for step in expected[0][1] if isinstance(step, tuple)):
        assert_paired(events.events)
    # A generator that ignores GeneratorExit is suspended forever and then
    # destroyed without running any more code: its call never ends (documented).


def drive_coroutine(coroutine_function, x, log):
    coroutine = coroutine_function(x, log)
    steps = 0
    while True:
        try:
            coroutine.send(None)
        except StopIteration as stop:
            return ("returned", stop.value, steps)
        steps += 1


@SETTINGS
@given(functions("coroutine"), st.integers(0, 5))
def test_coroutines(source, x):
    plain, hooked, events = both(source)
    assert outcome(lambda log: drive_coroutine(hooked, x, log)) == outcome(lambda log: drive_coroutine(plain, x, log)), source
    assert_paired(events.events)


def drive_async_generator(function, x, log):
    agen = function(x, log)
    produced = []
    for _ in range(8):
        step = agen.__anext__()
        try:
            while True:
                step.send(None)
        except StopIteration as stop:
            produced.append(stop.value)
        except StopAsyncIteration:
            produced.append("exhausted")
            break
    return produced


@SETTINGS
@given(functions("async_generator"), st.integers(0, 5))
def test_async_generators(source, x):
    plain, hooked, events = both(source)
    expected = outcome(lambda log: drive_async_generator(plain, x, log))
    assert outcome(lambda log: drive_async_generator(hooked, x, log)) == expected, source
    if "exhausted" in expected[0][1] if expected[0][0] == "returned" else True:
        assert_paired(events.events)


@pytest.mark.parametrize(
    "body",
    [
        ["for i in range(3):", "    try:", "        return i", "    finally:", "        break", "return 'after'"],
        ["while True:", "    try:", "        return 1", "    finally:", "        x += 1", "        if x < 5:", "            continue"],
        ["try:", "    raise ValueError(x)", "finally:", "    return 'swallowed'"],
        ["try:", "    return 1", "finally:", "    raise KeyError('late')"],
        # a break that cancels a return begun in a finally: the pending return goes on with its own value
        ["try:", "    return", "finally:", "    for i in range(1):", "        try:", "            return x",
         "        finally:", "            break"],
        # ... through two try statements at once, back to the value from before the outer one
        ["try:", "    return 'R1'", "finally:", "    for i in range(1):", "        try:", "            return 'R2'",
         "        finally:", "            try:", "                return 'R3'", "            finally:", "                break"],
        # ... from a loop's else, which jumps out of the enclosing loop
        ["try:", "    return 'R1'", "finally:", "    for i in range(1):", "        try:", "            return 'R2'",
         "        finally:", "            for j in range(0):", "                pass", "            else:", "                break"],
        # a break of a loop inside the finally cancels nothing
        ["try:", "    return 'R1'", "finally:", "    for i in range(1):", "        try:", "            return 'R2'",
         "        finally:", "            for j in range(1):", "                break"],
        ["try:", "    return 'R1'", "finally:", "    while True:", "        try:", "            return 'R2'",
         "        finally:", "            x += 1", "            if x < 3:", "                continue", "            break"],
    ],
)
def test_known_tricky_bodies(body):
    source = function_source("function", body)
    plain, hooked, events = both(source)
    expected = outcome(lambda log: plain(0, log))
    assert outcome(lambda log: hooked(0, log)) == expected
    assert_paired(events.events)
    last = events.events[-1]
    assert last[0] == ("end" if expected[0][0] == "returned" else "error") and last[2] == expected[0][1]
