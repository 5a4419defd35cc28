"""Differential tests on whole generated programs: classes, super(), closures,
decorators, match, walrus, exception chains, printed output, an event loop.

Each example is a module hypothesis writes from a template: a base class and a
subclass whose method calls ``super()`` through a ``functools.wraps``
decorator, a closure factory with ``nonlocal`` state, a plain function, a
coroutine run by ``asyncio.run`` in two concurrent tasks, and generated bodies
for each (if/for/while/try/match, walrus, raise ... from, print). It runs once
as is and once with every function hooked and a recording listener; results,
exceptions with their ``__cause__``/``__context__`` chains, printed output,
side effects and the traceback's (line, function) pairs must be identical.

HOOKWISE_EXAMPLES raises the example count (default 150), as in test_differential.
"""

import asyncio
import contextlib
import io
import os
import traceback

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import Recorder, load_plain, load_rewritten

EXAMPLES = int(os.environ.get("HOOKWISE_EXAMPLES", "150"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
EXCEPTIONS = ("ValueError", "KeyError", "ZeroDivisionError")

pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def indent(lines, by=1):
    return ["    " * by + line for line in lines]


@st.composite
def body(draw, depth, in_loop, is_async):
    lines = []
    for _ in range(draw(st.integers(1, 3))):
        lines.extend(draw(statement(depth, in_loop, is_async)))
    return lines


@st.composite
def statement(draw, depth, in_loop, is_async):
    simple = [
        "log.append(x)",
        "x = (x * 3 + 1) % 97",
        "print('at', x)",
        "x = helper(x)",
        "log.append(twice(x))",
        f"raise {draw(st.sampled_from(EXCEPTIONS))}(x)",
        f"raise {draw(st.sampled_from(EXCEPTIONS))}(x) from KeyError('cause', x)",
        "if (y := x % 4) == 1: log.append(('walrus', y))",
        "return x",
        "return",
    ]
    if in_loop:
        simple += ["break", "continue"]
    if is_async:
        simple += ["await asyncio.sleep(0)", "x = await nested(x)"]
    if depth <= 0 or draw(st.integers(0, 9)) <= 3:
        return [draw(st.sampled_from(simple))]
    inner = lambda loop=in_loop: body(depth - 1, loop, is_async)  # noqa: E731
    choice = draw(st.integers(0, 4))
    if choice == 0:
        lines = [f"if x % {draw(st.integers(2, 4))} == 0:", *indent(draw(inner()))]
        if draw(st.booleans()):
            lines += ["else:", *indent(draw(inner()))]
        return lines
    if choice == 1:
        return [f"for i{depth} in range({draw(st.integers(0, 3))}):", *indent(draw(inner(True)))]
    if choice == 2:
        return ["match x % 3:",
                "    case 0:", *indent(draw(inner()), 2),
                f"    case 1 | 2 if x > {draw(st.integers(0, 9))}:", *indent(draw(inner()), 2),
                "    case _:", *indent(draw(inner()), 2)]
    if choice == 3:
        return [f"guard{depth} = 0", f"while guard{depth} < {draw(st.integers(1, 3))}:", f"    guard{depth} += 1",
                *indent(draw(inner(True)))]
    lines = ["try:", *indent(draw(inner()))]
    handlers = draw(st.integers(0, 2))
    for _ in range(handlers):
        caught = draw(st.sampled_from(EXCEPTIONS + ("Exception",)))
        lines += [f"except {caught} as exc{depth}:", f"    log.append(repr(exc{depth}))", *indent(draw(inner()))]
    if handlers and draw(st.booleans()):
        lines += ["else:", *indent(draw(inner()))]
    if not handlers or draw(st.booleans()):
        lines += ["finally:", *indent(draw(inner()))]
    return lines


TEMPLATE = '''
import asyncio
import functools


def logged(function):
    @functools.wraps(function)
    def wrapper(self, x, log):
        log.append(("enter", function.__qualname__))
        return function(self, x, log)
    return wrapper


def make_helper(start):
    total = start

    def helper(value):
        nonlocal total
        total += value
        if total % 7 == 6:
            raise ValueError("helper", total)
        return total % 50

    return helper


def twice(value):
    return [value, value]


class Base:
    def method(self, x, log):
{base}


class Child(Base):
    @logged
    def method(self, x, log):
        x = super().method(x, log) or 0
{child}


def function(x, log):
    helper = make_helper(x)
{function}


async def nested(value):
    await asyncio.sleep(0)
    return (value + 1) % 50


async def coroutine(x, log):
    helper = make_helper(x)
{coroutine}


async def both(x, log):
    return await asyncio.gather(coroutine(x, log), coroutine(x + 1, log), return_exceptions=True)
'''


@st.composite
def programs(draw):
    parts = {}
    for name, is_async in (("base", False), ("child", False), ("function", False), ("coroutine", True)):
        prelude = ["helper = make_helper(x)"] if name in ("base", "child") else []
        parts[name] = "\n".join(indent(prelude + draw(body(2, False, is_async)), 2 if name in ("base", "child") else 1))
    return TEMPLATE.format(**parts)


def chain(exc, depth=0):
    """An exception as comparable data, with its cause and context, a few levels deep."""
    if exc is None or depth > 3:
        return None
    return (type(exc).__name__, repr(exc.args), chain(exc.__cause__, depth + 1), chain(exc.__context__, depth + 1),
            exc.__suppress_context__)


def observe(namespace, filename, x):
    """What the program does: results or exception chains, output, side effects, traceback lines."""
    log = []
    out = io.StringIO()
    seen = []
    for entry in (lambda: namespace["Child"]().method(x, log), lambda: namespace["function"](x, log),
                  lambda: asyncio.run(namespace["both"](x, log))):
        try:
            with contextlib.redirect_stdout(out):
                result = entry()
            seen.append(("returned", repr(result) if not isinstance(result, list) else repr([chain(r) if isinstance(r, BaseException) else r for r in result])))
        except Exception as exc:
            frames = [(frame.lineno, frame.name) for frame in traceback.extract_tb(exc.__traceback__)
                      if frame.filename == filename]
            seen.append(("raised", chain(exc), frames))
    return seen, log, out.getvalue()


@SETTINGS
@given(programs(), st.integers(0, 30))
def test_generated_programs_behave_the_same_hooked(source, x):
    filename = "<generated-program>"
    plain = load_plain(source, filename=filename)
    recorder = Recorder()
    hooked, _ = load_rewritten(source, listeners=[recorder], filename=filename)
    assert observe(hooked, filename, x) == observe(plain, filename, x), source
    starts = sum(1 for event in recorder.events if event[0] == "start")
    assert starts == len(recorder.events) - starts  # every start ended
