"""The C accelerator's saferepr writes exactly what the Python reference writes.

hookwise/_saferepr.h writes the common values itself and hands the rest to
the reference (hookwise.saferepr._py_repr), which comes back to it for what
those hold. Here both are given the same generated values, limits, secret
rules and user_reprs settings, and must give the same text, or the same
exception. The reference is run whole: its recursion goes through _py_repr
alone while it runs.

The accelerator is loaded directly, so this runs under either runtime (the
test suite runs once with each).
"""

import collections
import dataclasses
import functools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hookwise import _speedups
from hookwise import saferepr as module
from hookwise.render import Render

_speedups.configure_saferepr(module._py_repr, module._py_saferepr, module._ways, module._record_fields, module.Shown,
                             module.DEFAULT_LIMIT)


class Plain:
    pass


class Text(str):
    pass


class Items(list):
    def __iter__(self):  # never run by a repr: what the list holds is read through list's own storage
        raise AssertionError("a subclass's __iter__ ran")


class Pair(tuple):
    pass


class Table(dict):
    def items(self):
        raise AssertionError("a subclass's items() ran")


class Loud:
    def __repr__(self):
        return "Loud()"


class Broken:
    def __repr__(self):
        raise RuntimeError("no")


Point = collections.namedtuple("Point", "x password")


@dataclasses.dataclass
class Record:
    name: object
    token: object = None
    hidden: object = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(slots=True)
class Slotted:
    name: object
    password: object = None


def half_made(value):
    record = Record(value)
    del record.token  # a field the record does not hold: the reference shows "?"
    return record


def reference(value, limit, secret, user_reprs):
    """The pure-Python saferepr, its recursion kept in Python."""
    accelerated = module._repr
    module._repr = module._py_repr
    try:
        return module._py_saferepr(value, limit, secret, user_reprs)
    finally:
        module._repr = accelerated


def accelerated(value, limit, secret, user_reprs):
    saved = module._repr
    module._repr = _speedups.saferepr_inner  # what the reference calls back, as with the accelerator on
    try:
        return _speedups.saferepr(value, limit, secret, user_reprs)
    finally:
        module._repr = saved


def outcome(function, *args):
    try:
        return ("text", function(*args))
    except BaseException as exc:  # noqa: BLE001 - the same exception is part of the same behaviour
        return ("raised", type(exc))


SECRET_WORDS = st.sampled_from(["password", "token", "name", "api_key", "x", "Cookie", "id"])
TEXT = st.one_of(
    st.text(max_size=40),
    st.text(alphabet="ab=&?:/@'\" \\\n\té€\U0001f600", max_size=60),
    st.builds(lambda word, value: f"https://u:{value}@h/p?{word}={value}&x=1", SECRET_WORDS, st.text(max_size=10)),
    st.builds(lambda before, word, value, after: f"{before}{word}={value}{after}",
              st.sampled_from(["", "?", "&", " ", "x", "x/", "#", "a\u00a0", "é", "a b", "=", ";"]), SECRET_WORDS,
              st.text(alphabet="ab1 '\"&;#=", max_size=6), st.sampled_from(["", "&id=1", " and x = 1", "#"])),
    st.integers(0, 700).map(lambda n: "x" * n),
    st.integers(0, 700).map(lambda n: "y=" + "z" * n),
)
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.complex_numbers(allow_nan=False), TEXT,
    st.binary(max_size=30), st.builds(lambda t: t.encode("utf-8", "surrogatepass"), TEXT),
    st.builds(bytearray, st.binary(max_size=10)), st.builds(Text, TEXT), st.builds(Plain), st.builds(Loud),
    st.builds(Broken), st.builds(module.Shown, TEXT), st.just(len), st.just(Plain), st.builds(range, st.integers(0, 9)),
)
HASHABLE = st.one_of(st.none(), st.integers(), TEXT, st.binary(max_size=8), SECRET_WORDS)


def containers(children):
    return st.one_of(
        st.lists(children, max_size=6),
        st.lists(children, max_size=6).map(tuple),
        st.sets(HASHABLE, max_size=5),
        st.frozensets(HASHABLE, max_size=5),
        st.dictionaries(st.one_of(SECRET_WORDS, HASHABLE), children, max_size=5),
        st.dictionaries(SECRET_WORDS, children, max_size=3).map(
            lambda d: {"wsgi.version": (1, 0), "REQUEST_METHOD": "GET", "PATH": "/usr/bin", **d}),
        st.builds(Point, children, children),
        st.builds(Record, children, children),
        st.builds(Slotted, children, children),
        st.lists(children, max_size=4).map(Items),
        st.lists(children, max_size=3).map(Pair),
        st.dictionaries(st.one_of(SECRET_WORDS, HASHABLE), children, max_size=4).map(Table),
        st.builds(half_made, children),
        st.builds(lambda items: collections.OrderedDict(items), st.dictionaries(SECRET_WORDS, children, max_size=3)),
        st.builds(lambda args: functools.partial(print, *args), st.lists(children, max_size=2)),
        st.builds(lambda value: ValueError(value), children),
    )


VALUES = st.recursive(LEAVES, containers, max_leaves=25)
SECRETS = st.sampled_from([None, Render().is_secret, Render(redact=("name",)).is_secret])


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(VALUES, st.integers(0, 300), SECRETS, st.booleans())
def test_the_c_saferepr_writes_what_the_reference_writes(value, limit, secret, user_reprs):
    assert outcome(accelerated, value, limit, secret, user_reprs) == outcome(reference, value, limit, secret, user_reprs)


@given(VALUES)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_the_default_limit_and_keyword_calls_are_the_references(value):
    saved = module._repr
    module._repr = _speedups.saferepr_inner
    try:
        assert _speedups.saferepr(value) == reference(value, module.DEFAULT_LIMIT, None, False)
        assert _speedups.saferepr(value, secret=Render().is_secret) == reference(value, module.DEFAULT_LIMIT,
                                                                                 Render().is_secret, False)
    finally:
        module._repr = saved


def test_a_long_container_is_cut_as_the_reference_cuts_it():
    value = [list(range(50))] * 1000 + [{"password": "hunter2", "x": "a" * 500}]
    for limit in (0, 1, 3, 50, 200, 10_000):
        for secret in (None, Render().is_secret):
            assert accelerated(value, limit, secret, False) == reference(value, limit, secret, False)


def test_a_dict_changed_while_shown_says_so_as_the_reference_does():
    grows = {}

    class Grows:
        pass

    # the reference decides a new type in Python (_way_to_show) without running its code; a dict
    # that changes size meanwhile can only come from another thread, simulated here through a key
    # whose secret check adds an entry
    def secret(key):
        grows[len(grows) + 100] = 1
        return False

    said = "<dict object; repr() raised RuntimeError>"
    for show in (accelerated, reference):
        grows.clear()
        grows.update(a=1, b=Grows())
        assert show(grows, 200, secret, False) == said


def test_an_object_s_name_and_address_follow_its_class_s_names_as_they_change():
    # the accelerator remembers "<module.Class object at " per type, for a class with no repr of its own
    # (object.__repr__'s text) and for one whose repr it does not run: a class renamed or moved after a
    # first repr, classes made anew at collected classes' addresses, and names beyond ASCII show as now
    class Bare:
        pass

    class Own:
        def __repr__(self):
            raise AssertionError("the value's own repr ran")

    for kind in (Bare, Own):
        thing = kind()
        shown = []
        for change in (None, None, ("__qualname__", "Other"), ("__module__", "elsewhere"), ("__qualname__", "Név·ü")):
            if change is not None:
                setattr(kind, *change)
            assert accelerated(thing, 300, None, False) == reference(thing, 300, None, False)
            shown.append(accelerated(thing, 300, None, False))
        assert shown[2] == f"<{__name__}.Other object at {hex(id(thing))}>"
        assert shown[4] == f"<elsewhere.Név·ü object at {hex(id(thing))}>"
    # object.__repr__ names a class whose module is builtins by its __name__ alone
    loose = type("Loose", (), {"__module__": "builtins"})()
    for name in (None, "Loose", "Freed"):
        if name is not None:
            type(loose).__name__ = name
        assert accelerated(loose, 300, None, False) == reference(loose, 300, None, False)
        assert accelerated(loose, 300, None, False) == f"<{type(loose).__name__} object at {hex(id(loose))}>"
    for number in range(200):
        made = type(f"Made{number}", (), {})()
        for _ in range(2):
            assert accelerated(made, 300, None, False) == f"<{__name__}.Made{number} object at {hex(id(made))}>"
