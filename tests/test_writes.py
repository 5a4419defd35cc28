"""hookwise.writes: the C LineBuffer and its pure-Python reference write the same bytes."""

import os
import types

import pytest

from hookwise import saferepr, writes
from hookwise.render import Render

try:  # built for every run of the suite; the pure-Python runtime under test only leaves it unused
    from hookwise import _speedups as speedups
except ImportError:
    speedups = None


def buffers(tmp_path):
    """(C buffer, pure buffer) writing every line at once to two files; the C one where it is built."""
    made = []
    for name, kind in (("c", getattr(speedups, "LineBuffer", None)), ("pure", writes.PurePythonLineBuffer)):
        if kind is None:
            continue
        fd = os.open(tmp_path / f"{name}.jsonl", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        made.append((kind(fd, 0, 10_000_000), tmp_path / f"{name}.jsonl", fd))
    return made


NAMES = ["MainThread", 'with "quotes" and \\', "caf\u00e9", "emoji \U0001F600", "control \x01\x7f\n\t"]
VALUES = [0, -1, 7, 10**18, -(2**63), 2**63 - 1, 2**64, 10**400, True, False, None, 1.5, -0.0, float("inf"),
          float("nan"), 1e300, "text", (1, 2), 2.5 + 1j]


SHOWN = ["postgres://app:hunter2@db/shop", {"password": "x", "n": [1] * 50}, object(), b"\x00\xff", "quote ' \" \\"]


def test_the_c_and_the_pure_line_buffer_write_the_same_lines(tmp_path):
    if speedups is not None:  # what the C buffer renders with: saferepr in C, configured as the runtime does
        speedups.configure_saferepr(saferepr._py_repr, saferepr._py_saferepr, saferepr._ways, saferepr._record_fields,
                                    saferepr.Shown, saferepr.DEFAULT_LIMIT)
    made = buffers(tmp_path)
    assert len(made) == 2, "the accelerator is built for the suite"
    answers = {}
    for buffer, path, fd in made:
        said = answers.setdefault(path.name, [])
        for index, name in enumerate(NAMES):
            for request_id in (None, 12):
                for event in ("start", "end", "error"):
                    call = types.SimpleNamespace(call_id=index, thread_id=2**63 + index, thread_name=name, pid=4242,
                                                 start_ns=1_700_000_000_000_000_000, end_ns=1_700_000_000_000_001_234,
                                                 duration_ns=1234, request_id=request_id)
                    for value in VALUES:
                        said.append(buffer.add_call(event, call, '"m:f"', ',"args":[', (value, 3), ']}\n', 200))
                    said.append(buffer.add_call(event, call, '"m:f"', ',"result":', (1,), '}\n', 3))
                    said.append(buffer.add_call(event, call, '"m:f"', ',"result":', (1234,), '}\n', 3))
                    said.append(buffer.add_call(event, call, '"m:f"', ',"x":"\u00e9"', None, '}\n', 0))
                    # with the render settings, a value that is not plain is shown by its safe repr
                    for limit in (8, 200):
                        for secret in (None, Render().is_secret):
                            said.append(buffer.add_call(event, call, '"m:f"', ',"args":[', tuple(VALUES + SHOWN),
                                                        ']}\n', limit, secret, False))
        buffer.flush()
        os.close(fd)
    c_file, pure_file = made[0][1], made[1][1]
    assert answers[c_file.name] == answers[pure_file.name]
    assert c_file.read_bytes() == pure_file.read_bytes()
    assert c_file.read_bytes().count(b"\n") == answers[c_file.name].count(True)


@pytest.mark.parametrize("kind", ["c", "pure"])
def test_a_line_buffer_writes_whole_lines_in_order_and_never_more_than_its_limit(tmp_path, kind):
    if kind == "c" and speedups is None:
        pytest.skip("the accelerator is not built")
    LineBuffer = speedups.LineBuffer if kind == "c" else writes.PurePythonLineBuffer
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    buffer = LineBuffer(write_end, 100, 10**12)
    lines = [f"line {index:03d} {'x' * (index % 40)}\n" for index in range(200)]
    sizes = []
    for index, line in enumerate(lines):
        buffer.add(line, 1 + index)  # within max_wait of the first: only the limit writes
        sizes.append(buffer.pending)
    assert max(sizes) <= 100
    buffer.flush()
    os.close(write_end)
    data = b""
    while chunk := os.read(read_end, 1 << 16):
        data += chunk
    os.close(read_end)
    assert data.decode() == "".join(lines)


@pytest.mark.parametrize("kind", ["c", "pure"])
def test_write_whole_waits_for_room_in_a_full_pipe(tmp_path, kind):
    if kind == "c" and speedups is None:
        pytest.skip("the accelerator is not built")
    import threading

    write_whole = speedups.write_whole if kind == "c" else writes._pure_write_whole
    read_end, write_end = os.pipe()
    data = bytes(range(256)) * 4096  # 1 MiB: many times a pipe's room
    received = []

    def read():
        while chunk := os.read(read_end, 1 << 16):
            received.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    for may_block in (False, True):
        os.set_blocking(write_end, may_block)  # may_block: a blocking pipe, asked with poll first
        write_whole(write_end, data, may_block)
    os.close(write_end)
    reader.join(timeout=60)
    os.close(read_end)
    assert b"".join(received) == data * 2


@pytest.mark.parametrize("kind", ["c", "pure"])
def test_read_at_reads_what_pread_reads_and_less_where_the_file_ends(tmp_path, kind):
    if kind == "c" and speedups is None:
        pytest.skip("the accelerator is not built")
    read_at = speedups.read_at if kind == "c" else writes._pure_read_at
    data = os.urandom(300_000)
    (tmp_path / "data").write_bytes(data)
    fd = os.open(tmp_path / "data", os.O_RDONLY)
    try:
        for size, offset in ((1, 0), (40, 7), (262_144, 4096), (262_144, 200_000), (10, 300_000), (0, 5), (5, 10**9)):
            got = read_at(fd, size, offset)
            assert type(got) is bytes and got == os.pread(fd, size, offset) == data[offset : offset + size]
        with pytest.raises(OSError):
            read_at(-1, 10, 0)
    finally:
        os.close(fd)


def test_a_shared_mapping_stores_into_the_file_at_once_and_unmaps_once(tmp_path):
    # the pure-Python recording writer's chunks: mapped, stored into and unmapped with the GIL held
    fd = os.open(tmp_path / "mapped", os.O_RDWR | os.O_CREAT)
    try:
        writes.truncate(fd, 3 * 4096)
        assert os.fstat(fd).st_size == 3 * 4096
        mapping = writes.map_shared(fd, 4096, 4096)
        assert mapping is not None, "_ctypes is there: the mapping keeps the GIL"
        view = mapping.view
        view[10:15] = b"hello"
        view[9] = 7
        assert os.pread(fd, 8, 4096 + 8) == b"\0\7hello\0"  # in the file (the page cache) at once
        assert bytes(view[9:15]) == b"\7hello"
        mapping.close()
        mapping.close()  # once only: the address may be another mapping's by now
        with pytest.raises(ValueError):
            view[0] = 1  # released before the unmap: an error, never a store into memory that is gone
        with pytest.raises(OSError):
            writes.map_shared(fd, 4096, 1)  # not a multiple of the page size
        with pytest.raises(OSError):
            writes.truncate(-1, 10)
    finally:
        os.close(fd)
