"""The C accelerator reads a recording's values as hookwise.recording.format's reference reads them.

hookwise/_recvalues.h reads every value tag of the format (its docstring is the
specification); for what it does not read the same way (a cut value, a number
past 64 bits, an unknown tag) it answers NotImplemented, and the reference
reads it. Here generated values of every tag, encoded as the writers encode
them, whole and cut anywhere, are read by both: the same value and position, or
NotImplemented where the reference raises.

The accelerator is loaded directly, so this runs under either runtime.
"""

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hookwise import _speedups
from hookwise.recording import format as fmt


def shown(text):
    return ("shown", text)


STRINGS = {0: "email.message.Message", 1: "pkg.Thing", 7: "x\u00e9y"}


def put_text(out, text):
    data = text.encode("utf-8", "surrogatepass")
    fmt.put_u(out, len(data))
    out += data


# a value to encode: (tag, payload), built into bytes by encode()
LEAF = st.one_of(
    st.tuples(st.just(fmt.V_NONE), st.none()),
    st.tuples(st.sampled_from([fmt.V_TRUE, fmt.V_FALSE, fmt.V_REDACTED]), st.none()),
    st.tuples(st.just(fmt.V_INT), st.integers(-(1 << 63), (1 << 63) - 1)),
    st.tuples(st.just(fmt.V_FLOAT), st.floats(allow_nan=False)),
    st.tuples(st.sampled_from([fmt.V_STR, fmt.V_SHOWN, fmt.V_CUT]), st.text()),
    st.tuples(st.sampled_from([fmt.V_BYTES, fmt.V_BYTES_CUT]), st.binary(max_size=40)),
    st.tuples(st.just(fmt.V_OBJECT), st.tuples(st.sampled_from([0, 1, 7]), st.integers(0, (1 << 64) - 1))),
)
VALUES = st.recursive(LEAF, lambda children: st.one_of(
    st.tuples(st.just(fmt.V_TUPLE), st.lists(children, max_size=4)),
    st.tuples(st.just(fmt.V_DICT), st.lists(st.tuples(st.text(max_size=5), children), max_size=4)),
    st.tuples(st.just(fmt.V_SEQ), st.tuples(st.sampled_from([0, 1]), st.lists(children, max_size=4))),
    st.tuples(st.just(fmt.V_MAP), st.lists(st.tuples(  # keys as the writer stores a dict's: hashable
        st.one_of(st.none(), LEAF), st.one_of(st.just(fmt.V_REDACTED), children)), max_size=4)),
), max_leaves=12)


def encode(value, out):
    tag, payload = value
    out.append(tag)
    if tag == fmt.V_INT:
        fmt.put_z(out, payload)
    elif tag == fmt.V_FLOAT:
        out += struct.pack("<d", payload)
    elif tag in (fmt.V_STR, fmt.V_SHOWN, fmt.V_CUT):
        put_text(out, payload)
    elif tag in (fmt.V_BYTES, fmt.V_BYTES_CUT):
        fmt.put_u(out, len(payload))
        out += payload
    elif tag == fmt.V_OBJECT:
        fmt.put_u(out, payload[0])
        fmt.put_u(out, payload[1])
    elif tag == fmt.V_TUPLE:
        fmt.put_u(out, len(payload))
        for item in payload:
            encode(item, out)
    elif tag == fmt.V_DICT:
        fmt.put_u(out, len(payload))
        for key, item in payload:
            put_text(out, key)
            encode(item, out)
    elif tag == fmt.V_SEQ:
        out.append(payload[0])
        for item in payload[1]:
            encode(item, out)
        out.append(fmt.V_STOP)
    elif tag == fmt.V_MAP:
        for key, item in payload:
            if key is None:
                out.append(fmt.V_STOP_KEY)
            else:
                encode(key, out)
            if item == fmt.V_REDACTED:
                out.append(fmt.V_REDACTED)
            else:
                encode(item, out)
        out.append(fmt.V_STOP)
    return out


def same(a, b):
    """Equal, NaN and the sign of zero included (a float field can hold any double)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, (tuple, list)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[key], b[key]) for key in a)
    return a == b


def read_both(data, pos, strings):
    try:
        expected = fmt._get_value(data, pos, shown, strings)
    except (IndexError, KeyError, UnicodeDecodeError, fmt.RecordingError, struct.error) as exc:
        expected = exc
    got = _speedups.read_value(data, pos, shown, strings)
    return expected, got


@settings(max_examples=400, deadline=None)
@given(VALUES, st.binary(max_size=3), st.sampled_from([STRINGS, None]))
def test_every_value_reads_the_same(value, before, strings):
    data = bytes(before) + bytes(encode(value, bytearray()))
    expected, got = read_both(data, len(before), strings)
    assert not isinstance(expected, Exception), expected  # what the writers write, the reference reads
    assert got is not NotImplemented and same(got, expected)


@settings(max_examples=300, deadline=None)
@given(VALUES, st.data())
def test_a_value_cut_anywhere_reads_the_same_or_is_left_to_the_reference(value, data):
    whole = bytes(encode(value, bytearray()))
    cut = whole[: data.draw(st.integers(0, len(whole)))]
    expected, got = read_both(memoryview(cut), 0, STRINGS)
    if isinstance(expected, Exception):
        assert got is NotImplemented
    else:
        assert got is NotImplemented or same(got, expected)


def test_what_the_reference_refuses_is_left_to_it():
    assert _speedups.read_value(b"\x63", 0, shown) is NotImplemented  # an unknown tag
    assert _speedups.read_value(b"\x03" + b"\xff" * 10 + b"\x01", 0, shown) is NotImplemented  # past 64 bits
    assert fmt.get_value(b"\x03" + b"\xff" * 10 + b"\x01", 0, shown) == (-(1 << 70), 12)  # the reference reads it
    with pytest.raises(fmt.RecordingError, match="unknown value tag 99"):
        fmt.get_value(b"\x63", 0, shown)


def test_an_object_whose_type_name_is_not_in_the_strings_raises_as_the_reference_does():
    data = bytes([fmt.V_OBJECT, 5, 1])
    with pytest.raises(KeyError):
        _speedups.read_value(data, 0, shown, STRINGS)
    with pytest.raises(KeyError):
        fmt._get_value(data, 0, shown, STRINGS)
