"""The C accelerator's chrome converter writes exactly what the Python loop writes.

hookwise/_chrome.h converts the common events of a chunk (a START of a known
site on its thread's track, the END of the call on top of it) and hands every
other event to ProcessTrace.events' Python loop, which stays the reference.
Here one recording is converted twice in this process, with the C path and
without it, and the two traces must be the same bytes. The recordings are made
by real programs under the driver, with every shape the converter knows:
nesting, recursion, threads, asyncio tasks, generators, errors, SQL, secrets,
long and odd values, builtins, and calls left open.

The accelerator is loaded directly, so this runs under either runtime (the
recording is made by the runtime under test; the test suite runs once with each).
"""

import textwrap

import pytest

from helpers import clean_env, run_driver
from hookwise import _speedups, convert
from hookwise.recording import chrome
from hookwise.recording import format as fmt

PROGRAM = textwrap.dedent('''
    import asyncio, os, sqlite3, sys, threading
    from collections import namedtuple

    Point = namedtuple("Point", "x y")

    class Thing:
        def __init__(self, name):
            self.name = name

        def method(self, n, *rest, scale=1.5, **extra):
            return n * scale

    def leaf(n, text="", password="hunter2"):
        return n

    def values(a, b, c, d, e, f, g, h):
        return {"a": a, "b": [b] * 40}

    def deep(n):
        return leaf(n) if n == 0 else deep(n - 1)

    def fails(n):
        raise ValueError(f"bad {n}")

    def gen(n):
        for i in range(n):
            yield leaf(i)

    async def task_work(n):
        await asyncio.sleep(0)
        return leaf(n)

    async def main_async():
        await asyncio.gather(*(task_work(n) for n in range(5)))

    def worker(k):
        for n in range(200):
            deep(n % 7)

    def main():
        for n in range(300):
            leaf(n, "x" * (n % 300), password="p")
            deep(n % 12)
            leaf(-2 ** 62 + n, "\\u65e5\\u672c\\ud800 \\n\\"q\\"", 1.0 / (n + 1))
            leaf(n, 'say "hi"' + "y" * (n % 20), "it's" * (n % 5) + "\\\\ \\t")  # quotes, escapes
        values(None, True, False, 10 ** 30, b"bytes", (1, "two", None), Point(1, 2), Thing("t"))
        values(1.5, float("nan"), -0.0, "z" * 5000, bytearray(b"ab"), {"k": "v", "password": "x"}, {1, 2}, ...)
        Thing("u").method(3, 4, 5, scale=2, more="yes")
        list(gen(5))
        for n in range(3):
            try:
                fails(n)
            except ValueError:
                pass
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        asyncio.run(main_async())
        connection = sqlite3.connect(":memory:")
        connection.execute("create table t (a, b)")
        connection.execute("insert into t values (?, ?)", (1, "one"))
        connection.execute("select * from t where a = ?", (1,)).fetchall()
        os.path.join("a", "b")
        deep(1)

    main()
''')


def convert_both(tmp_path, monkeypatch, recording):
    traces = {}
    for name, common in (("c", _speedups.chrome_events), ("python", None)):
        monkeypatch.setattr(chrome, "_common_events", common)
        out = tmp_path / f"{name}.json"
        assert convert.main([str(recording), "--to", f"chrome={out}"]) == 0
        traces[name] = out.read_bytes()
    return traces


@pytest.mark.parametrize("limit", ["200", "12"])
def test_the_c_path_writes_the_python_loops_trace_byte_for_byte(tmp_path, monkeypatch, limit):
    (tmp_path / "prog.py").write_text(PROGRAM)
    done = run_driver(["--hook", "__main__:*", "--preset", "sql", "--hook", "os.path:join", "--repr-limit", limit,
                       "--listener", "record=run.rec", "prog.py"], cwd=tmp_path, env=clean_env())
    assert done.returncode == 0, done.stderr
    traces = convert_both(tmp_path, monkeypatch, tmp_path / "run.rec")
    assert traces["c"].count(b'"ph":"X"') > 5000
    assert traces["c"] == traces["python"]


KILLED = textwrap.dedent('''
    import os, signal
    def leaf(n):
        return n
    def outer(n):
        for i in range(n):
            leaf(i)
        if n == 3:
            os.kill(os.getpid(), signal.SIGKILL)  # calls left open: outer, and main
    def main():
        for n in range(5):
            outer(n)
    main()
''')


def test_calls_left_open_by_a_killed_process_end_alike(tmp_path, monkeypatch):
    (tmp_path / "prog.py").write_text(KILLED)
    done = run_driver(["--hook", "__main__:*", "--listener", "record=run.rec", "prog.py"], cwd=tmp_path,
                      env=clean_env())
    assert done.returncode == -9, done.stderr
    traces = convert_both(tmp_path, monkeypatch, tmp_path / "run.rec")
    assert traces["c"].count(b'"unfinished":true') == 2
    assert traces["c"] == traces["python"]


def test_what_is_not_a_trace_is_refused():
    # the trace is read at the first event that needs it (here an END: its open call is looked up)
    with pytest.raises(AttributeError, match="_sites"):
        _speedups.chrome_events(object(), bytes([fmt.END, 0, 1]), 0, 0, ((1, 0), None))
    with pytest.raises(TypeError, match="chrome_events"):
        _speedups.chrome_events(object(), b"", 0, 0)
