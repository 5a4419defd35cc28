"""What the rewrite must preserve (DESIGN.md), one behaviour per test.

Every test runs the same source twice, plainly and rewritten with every
function hooked and a recording listener attached, and compares what the
program can observe; it also checks the events the listener saw.
"""

import asyncio
import inspect
import pickle
import sys
import textwrap
import traceback

import pytest

from helpers import Recorder, load_plain, load_rewritten


@pytest.fixture
def both(tmp_path):
    """``both(source) -> (plain namespace, hooked namespace, recorder)``; source lives in a real file."""
    counter = [0]

    def build(source, module_name=None):
        counter[0] += 1
        source = textwrap.dedent(source)
        path = tmp_path / f"mod{counter[0]}.py"
        path.write_text(source)
        name = module_name or f"mod{counter[0]}"
        recorder = Recorder()
        plain = load_plain(source, filename=str(path), module_name=name)
        hooked, _ = load_rewritten(source, listeners=[recorder], filename=str(path), module_name=name)
        return plain, hooked, recorder

    return build


def outcome(function, *args, **kwargs):
    try:
        return ("returned", function(*args, **kwargs))
    except BaseException as exc:  # noqa: B902 - comparing whatever escapes
        return ("raised", type(exc).__name__, exc.args)


# -- return values --------------------------------------------------------------


RETURNS = """
def plain(x):
    return x + 1

def implicit(x):
    x += 1

def finally_wins(x):
    try:
        return x
    finally:
        return "finally"

def cancelled_by_break():
    for i in range(3):
        try:
            return i
        finally:
            break
    return "after the loop"

def cancelled_by_continue_then_fall_off():
    for i in range(3):
        try:
            return i
        finally:
            continue

def return_in_except(x):
    try:
        raise ValueError(x)
    except ValueError:
        return "handled"
    finally:
        x = "ignored"

def nested_finally():
    try:
        try:
            return 1
        finally:
            pass
    finally:
        pass
"""


@pytest.mark.parametrize(
    "name, args, result",
    [
        ("plain", (1,), 2),
        ("implicit", (1,), None),
        ("finally_wins", (1,), "finally"),
        ("cancelled_by_break", (), "after the loop"),
        ("cancelled_by_continue_then_fall_off", (), None),
        ("return_in_except", (5,), "handled"),
        ("nested_finally", (), 1),
    ],
)
def test_the_value_really_returned_is_the_one_reported(both, name, args, result):
    plain, hooked, recorder = both(RETURNS)
    assert outcome(plain[name], *args) == outcome(hooked[name], *args) == ("returned", result)
    assert recorder.events[-1] == ("end", name, result)
    assert [event[0] for event in recorder.events] == ["start", "end"]


# -- exceptions -----------------------------------------------------------------


EXCEPTIONS = """
class Custom(Exception):
    pass

def raises(x):
    y = x * 2
    raise Custom("bad", y)

def chained():
    try:
        raises(1)
    except Custom as exc:
        raise KeyError("outer") from exc

def implicit_context():
    try:
        {}["missing"]
    except KeyError:
        1 / 0

def reraises():
    try:
        raises(2)
    except Custom:
        raise

def calls_deep(n):
    if n == 0:
        return [][1]
    return calls_deep(n - 1)

def swallowed():
    try:
        raises(3)
    except Custom:
        pass
    return "fine"
"""


def _formatted(function, *args):
    try:
        function(*args)
    except BaseException as exc:
        return exc, "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    raise AssertionError("no exception")


@pytest.mark.parametrize("name, args", [("raises", (1,)), ("chained", ()), ("implicit_context", ()), ("reraises", ()), ("calls_deep", (3,))])
def test_tracebacks_are_identical_to_the_original(both, name, args):
    plain, hooked, _ = both(EXCEPTIONS)
    plain_exc, plain_text = _formatted(plain[name], *args)
    hooked_exc, hooked_text = _formatted(hooked[name], *args)
    assert hooked_text == plain_text
    assert type(hooked_exc).__name__ == type(plain_exc).__name__ and hooked_exc.args == plain_exc.args


def test_cause_and_context_are_kept(both):
    _, hooked, recorder = both(EXCEPTIONS)
    with pytest.raises(KeyError) as info:
        hooked["chained"]()
    assert type(info.value.__cause__).__name__ == "Custom" and info.value.__suppress_context__
    with pytest.raises(ZeroDivisionError) as info:
        hooked["implicit_context"]()
    assert isinstance(info.value.__context__, KeyError) and not info.value.__suppress_context__
    assert ("error", "implicit_context", "ZeroDivisionError") in recorder.events


def test_the_same_exception_object_reaches_the_caller(both):
    _, hooked, recorder = both(EXCEPTIONS)
    with pytest.raises(Exception) as info:
        hooked["raises"](4)
    assert recorder.calls[-1].exception is info.value
    assert [e[0] for e in recorder.events] == ["start", "error"]


def test_a_swallowed_exception_inside_is_not_an_error(both):
    _, hooked, recorder = both(EXCEPTIONS)
    assert hooked["swallowed"]() == "fine"
    assert recorder.events[-1] == ("end", "swallowed", "fine")
    assert ("error", "raises", "Custom") in recorder.events


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups and except* are new in 3.11")
def test_exception_groups_and_except_star(both):
    plain, hooked, recorder = both(
        """
        def group():
            raise ExceptionGroup("many", [ValueError(1), TypeError(2)])

        def star():
            caught = []
            try:
                group()
            except* ValueError as matched:
                caught.append(repr(matched.exceptions))
            except* TypeError as matched:
                caught.append(repr(matched.exceptions))
            return caught

        def partly():
            try:
                group()
            except* ValueError:
                pass
        """
    )
    assert outcome(plain["star"]) == outcome(hooked["star"])
    plain_exc, plain_text = _formatted(plain["partly"])
    hooked_exc, hooked_text = _formatted(hooked["partly"])
    assert hooked_text == plain_text
    assert ("error", "partly", "ExceptionGroup") in recorder.events


# -- generators and coroutines --------------------------------------------------


GENERATORS = """
log = []

def counter(n):
    log.append("started")
    for i in range(n):
        received = yield i
        if received is not None:
            log.append(("got", received))
    return "exhausted"

def delegating():
    result = yield from counter(2)
    return ("delegated", result)

def guarded():
    try:
        yield 1
        yield 2
    finally:
        log.append("cleanup")
"""


def test_a_generator_starts_when_first_resumed_and_ends_when_exhausted(both):
    _, hooked, recorder = both(GENERATORS)
    generator = hooked["counter"](2)
    assert recorder.events == []
    assert next(generator) == 0
    assert recorder.events == [("start", "counter", {"n": 2})]
    assert generator.send("x") == 1
    with pytest.raises(StopIteration) as stop:
        next(generator)
    assert stop.value.value == "exhausted"
    assert recorder.events[-1] == ("end", "counter", "exhausted")
    assert hooked["log"] == ["started", ("got", "x")]


def test_yield_from_keeps_the_return_value(both):
    plain, hooked, recorder = both(GENERATORS)
    assert list(hooked["delegating"]()) == list(plain["delegating"]()) == [0, 1]
    ends = [event for event in recorder.events if event[0] == "end"]
    assert ends == [("end", "counter", "exhausted"), ("end", "delegating", ("delegated", "exhausted"))]


def test_close_is_a_normal_end_and_throw_an_error(both):
    _, hooked, recorder = both(GENERATORS)
    generator = hooked["guarded"]()
    next(generator)
    generator.close()
    assert recorder.events[-1] == ("end", "guarded", None)
    assert hooked["log"] == ["cleanup"]
    generator = hooked["guarded"]()
    next(generator)
    with pytest.raises(KeyError):
        generator.throw(KeyError("thrown"))
    assert recorder.events[-1] == ("error", "guarded", "KeyError")


def test_an_abandoned_generator_reports_its_end_when_collected(both):
    _, hooked, recorder = both(GENERATORS)
    generator = hooked["guarded"]()
    next(generator)
    del generator
    assert recorder.events[-1] == ("end", "guarded", None)


def test_contextmanager_generators(both):
    source = """
    import contextlib
    events = []
    @contextlib.contextmanager
    def managed(tag):
        events.append(("enter", tag))
        try:
            yield tag.upper()
        except ValueError:
            events.append("handled")
        finally:
            events.append(("exit", tag))

    def use(fail):
        with managed("a") as value:
            if fail:
                raise ValueError("inside")
            return value
    """
    plain, hooked, recorder = both(source)
    for fail in (False, True):
        assert outcome(plain["use"], fail) == outcome(hooked["use"], fail)
    assert plain["events"] == hooked["events"]
    assert [event[:2] for event in recorder.events if event[1] == "managed"] == [
        ("start", "managed"), ("end", "managed"), ("start", "managed"), ("end", "managed")
    ]


def test_coroutines_and_async_generators(both):
    source = """
    import asyncio
    async def double(x):
        await asyncio.sleep(0)
        return x * 2

    async def ticks(n):
        for i in range(n):
            await asyncio.sleep(0)
            yield i
        if n:
            return  # the only return an async generator may have
        yield -1

    async def maybe(flag):
        if flag:
            return
        return "value"

    async def failing():
        await asyncio.sleep(0)
        raise RuntimeError("async failure")

    async def main():
        total = [await double(i) async for i in ticks(3)]
        total.append((await maybe(True), await maybe(False)))
        try:
            await failing()
        except RuntimeError as exc:
            total.append(str(exc))
        return total
    """
    plain, hooked, recorder = both(source)
    expected = [0, 2, 4, (None, "value"), "async failure"]
    assert asyncio.run(hooked["main"]()) == asyncio.run(plain["main"]()) == expected
    assert ("end", "ticks", None) in recorder.events
    assert ("end", "maybe", None) in recorder.events and ("end", "maybe", "value") in recorder.events
    assert ("error", "failing", "RuntimeError") in recorder.events
    assert recorder.events[-1] == ("end", "main", expected)
    assert inspect.iscoroutinefunction(hooked["double"]) and inspect.isasyncgenfunction(hooked["ticks"])


def test_a_cancelled_coroutine_reports_the_cancellation(both):
    source = """
    import asyncio
    async def sleeper():
        await asyncio.sleep(10)

    async def main():
        task = asyncio.ensure_future(sleeper())
        await asyncio.sleep(0)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            return "cancelled"
    """
    _, hooked, recorder = both(source)
    assert asyncio.run(hooked["main"]()) == "cancelled"
    assert ("error", "sleeper", "CancelledError") in recorder.events


# -- classes, closures, decorators -------------------------------------------------


CLASSES = """
import functools

registry = []

class Meta(type):
    def __new__(mcs, name, bases, namespace, **kwargs):
        namespace["made_by_meta"] = True
        return super().__new__(mcs, name, bases, namespace, **kwargs)

class Base(metaclass=Meta):
    def __init_subclass__(cls, tag=None, **kwargs):
        super().__init_subclass__(**kwargs)
        registry.append((cls.__name__, tag))

    def greet(self):
        return "base"

class Child(Base, tag="child"):
    def greet(self):
        return "child+" + super().greet()

    def klass(self):
        return __class__.__name__

    @property
    def prop(self):
        return self.greet()

    @prop.setter
    def prop(self, value):
        self.stored = value

    @classmethod
    def build(cls):
        return cls()

    @staticmethod
    def helper(a, b=2):
        return a + b

    @functools.lru_cache(maxsize=None)
    def cached(self, n):
        return n * n

class Descriptor:
    def __get__(self, instance, owner):
        return ("got", owner.__name__)

    def __set_name__(self, owner, name):
        self.name = name

class UsesDescriptor:
    field = Descriptor()

def counter():
    count = 0
    def increment():
        nonlocal count
        count += 1
        return count
    return increment

TOTAL = 0
def add_to_total(n):
    global TOTAL
    TOTAL += n
    return TOTAL

def decorator(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        return ("wrapped", function(*args, **kwargs))
    return wrapper

@decorator
def decorated(x):
    "decorated doc"
    return x
"""


def test_super_class_cell_metaclass_and_init_subclass(both):
    plain, hooked, recorder = both(CLASSES)
    for namespace in (plain, hooked):
        child = namespace["Child"]()
        assert child.greet() == "child+base"
        assert child.klass() == "Child"
        assert child.prop == "child+base"
        child.prop = 5
        assert child.stored == 5
        assert isinstance(namespace["Child"].build(), namespace["Child"])
        assert namespace["Child"].helper(1) == 3
        assert child.cached(4) == 16 and child.cached(4) == 16
        assert namespace["Child"].made_by_meta
        assert namespace["registry"] == [("Child", "child")]
        assert namespace["UsesDescriptor"].field == ("got", "UsesDescriptor")
    qualnames = [event[1] for event in recorder.events if event[0] == "start"]
    assert "Base.__init_subclass__" in qualnames and "Meta.__new__" in qualnames
    assert "Child.prop" in qualnames and qualnames.count("Child.cached") == 1  # the second call hit the cache
    assert "Descriptor.__get__" in qualnames and "Descriptor.__set_name__" in qualnames


def test_closures_nonlocal_global_and_wraps(both):
    plain, hooked, recorder = both(CLASSES)
    for namespace in (plain, hooked):
        increment = namespace["counter"]()
        assert [increment(), increment()] == [1, 2]
        assert namespace["add_to_total"](5) == 5 and namespace["TOTAL"] == 5
        assert namespace["decorated"](3) == ("wrapped", 3)
        assert namespace["decorated"].__doc__ == "decorated doc"
        assert namespace["decorated"].__wrapped__.__name__ == "decorated"
    assert ("end", "counter.<locals>.increment", 2) in recorder.events
    assert ("end", "decorator.<locals>.wrapper", ("wrapped", 3)) in recorder.events


def test_function_metadata_and_introspection(both):
    plain, hooked, _ = both(CLASSES)
    for name in ("add_to_total", "counter", "decorated"):
        p, h = plain[name], hooked[name]
        assert (h.__name__, h.__qualname__, h.__doc__, h.__module__) == (p.__name__, p.__qualname__, p.__doc__, p.__module__)
        assert inspect.signature(h) == inspect.signature(p)
        assert inspect.getsource(h) == inspect.getsource(p)
        assert h.__code__.co_firstlineno == p.__code__.co_firstlineno
    assert inspect.signature(hooked["Child"].helper) == inspect.signature(plain["Child"].helper)


def test_hooked_functions_and_instances_pickle(both, tmp_path):
    source = """
    class Point:
        def __init__(self, x):
            self.x = x
        def __reduce__(self):
            return (Point, (self.x,))
    def top(y):
        return y
    """
    _, hooked, recorder = both(source, module_name="picklable_mod")
    module = type(sys)("picklable_mod")
    module.__dict__.update(hooked)
    sys.modules["picklable_mod"] = module
    try:
        assert pickle.loads(pickle.dumps(hooked["top"])) is hooked["top"]
        assert pickle.loads(pickle.dumps(hooked["Point"](3))).x == 3
    finally:
        del sys.modules["picklable_mod"]
    assert [event[:2] for event in recorder.events if event[1] == "Point.__reduce__"] == [
        ("start", "Point.__reduce__"), ("end", "Point.__reduce__")
    ]


def test_match_walrus_comprehensions_and_lambdas(both):
    source = """
    def classify(value):
        match value:
            case {"kind": "point", "x": x, "y": y}:
                return ("point", x + y)
            case [first, *rest] if (n := len(rest)) > 1:
                return ("list", first, n)
            case str() as text:
                return ("text", [c for c in text if c.isupper()])
            case _:
                squares = {k: (lambda v: v * v)(k) for k in range(3)}
                return ("other", squares, sum(x for x in squares.values()))
    """
    plain, hooked, recorder = both(source)
    for value in ({"kind": "point", "x": 1, "y": 2}, [1, 2, 3], "HeLLo", 4.5):
        assert outcome(plain["classify"], value) == outcome(hooked["classify"], value)
    assert len([event for event in recorder.events if event[0] == "end"]) == 4


def test_locals_show_the_documented_injected_names(both):
    plain, hooked, _ = both("def f(a):\n    b = 2\n    return sorted(locals())\n")
    assert plain["f"](1) == ["a", "b"]
    assert hooked["f"](1) == ["_hw@call", "a", "b"]


def test_recursion_and_reentrancy(both):
    plain, hooked, recorder = both("def fact(n):\n    return 1 if n <= 1 else n * fact(n - 1)\n")
    assert hooked["fact"](5) == plain["fact"](5) == 120
    assert [event[0] for event in recorder.events] == ["start"] * 5 + ["end"] * 5
    assert [event[2] for event in recorder.events if event[0] == "end"] == [1, 2, 6, 24, 120]


def test_hooked_code_pickled_by_value_unpickles_anywhere(both):
    """cloudpickle and friends pickle a function's code with its constants: the site goes along, switched off."""
    import types

    _, hooked, recorder = both("def f(x):\n    return x + 1\n")
    code = hooked["f"].__code__
    consts = pickle.loads(pickle.dumps(code.co_consts))
    clone = types.FunctionType(code.replace(co_consts=consts), {"__builtins__": __builtins__})
    assert clone(1) == 2
    assert type(consts[[type(c).__name__ for c in code.co_consts].index("Site")]) is types.SimpleNamespace
    assert recorder.events == []  # the clone reports nothing
    assert hooked["f"](1) == 2 and recorder.events[-1] == ("end", "f", 2)
