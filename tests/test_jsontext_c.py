"""The accelerator's json_dumps writes what hookwise.listeners._jsontext's Python encoder writes.

Every event's rendered fields (an SQL statement's, a request's) are encoded by
it. The accelerator is loaded directly, so this runs under either runtime.
"""

import enum

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookwise import _speedups
from hookwise.listeners import _jsontext


class Level(enum.IntEnum):
    HIGH = 3


class Text(str):
    pass


LEAVES = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(), st.builds(Text, st.text()),
                   st.just(Level.HIGH))
DATA = st.recursive(LEAVES, lambda children: st.one_of(
    st.lists(children, max_size=5), st.lists(children, max_size=5).map(tuple),
    st.dictionaries(st.one_of(st.text(), st.integers(), st.none()), children, max_size=5)), max_leaves=30)


@settings(max_examples=500, deadline=None)
@given(DATA)
def test_json_dumps_writes_what_the_python_encoder_writes(value):
    assert _speedups.json_dumps(value) == _jsontext._py_dumps(value)


def test_what_is_not_json_data_is_refused_alike():
    for value in (object(), {"a": [1, {2}]}, b"bytes"):
        with pytest.raises(TypeError, match="not JSON data"):
            _jsontext._py_dumps(value)
        with pytest.raises(TypeError, match="not JSON data"):
            _speedups.json_dumps(value)
