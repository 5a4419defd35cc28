"""The streaming recording (``--listener record=PATH``) and ``python -m hookwise.convert``."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from helpers import DRIVER, clean_env, read_jsonl, run_driver, run_python

PROGRAM = textwrap.dedent("""
    def f(a, b, password="x", *rest, flag=None, **extra):
        return a + b

    def g(n):
        if n < 0:
            raise ValueError("negative: %d" % n)
        return [f(i, 2.5) for i in range(n)]

    class Box:
        def __init__(self, value):
            self.value = value

    def main():
        g(3)
        try:
            g(-1)
        except ValueError:
            pass
        f("s", "t", "s3cr3t-value", 1, (2, None), flag=b"x", token="hidden", other=[1, 2])
        Box(object())
        return f(10 ** 30, 1)

    main()
""")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One run recorded and, at the same time, written live as jsonl."""
    where = tmp_path_factory.mktemp("recorded")
    (where / "prog.py").write_text(PROGRAM)
    done = run_driver(["--hook", "__main__:*", "--listener", "record=rec.bin", "--listener", "jsonl=live.jsonl",
                       "prog.py"], cwd=where)
    assert done.returncode == 0, done.stderr
    return where


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def convert(*args, cwd=None, env=None):
    env = dict(env if env is not None else clean_env(), PYTHONPATH=ROOT)
    return run_python(["-m", "hookwise.convert", *args], cwd=cwd, env=env)


def _without_time(events):
    for event in events:
        event.pop("ts_ns")
    return events


def test_converted_jsonl_has_the_live_listeners_fields_and_values(recorded):
    done = convert("rec.bin", "--to", "jsonl=conv.jsonl", cwd=recorded)
    assert done.returncode == 0, done.stderr
    live = read_jsonl(recorded / "live.jsonl")
    converted = read_jsonl(recorded / "conv.jsonl")
    assert len(live) == 18
    assert _without_time(converted) == _without_time(live)


def test_secrets_never_reach_the_recording_file(recorded):
    data = (recorded / "rec.bin").read_bytes()
    assert b"s3cr3t" not in data and b"hidden" not in data


def test_every_format_from_one_run(recorded, tmp_path):
    env = clean_env(OTEL_TRACES_EXPORTER="console")
    done = convert("rec.bin", "--to", f"chrome={tmp_path}/t.json", "--to", f"html={tmp_path}/p.html",
                   "--to", f"stats={tmp_path}/s.txt", "--to", "otel", cwd=recorded, env=env)
    assert done.returncode == 0, done.stderr
    trace = json.loads((tmp_path / "t.json").read_text())
    slices = [event for event in trace if event["ph"] == "X"]
    assert sorted(event["name"] for event in slices).count("__main__:f") == 5
    failed = [event for event in slices if event["args"].get("exception_type") == "ValueError"]
    assert [event["args"]["error"] for event in failed] == ["ValueError: negative: -1"]
    main = next(event for event in slices if event["name"] == "__main__:main")
    assert all(main["ts"] <= event["ts"] and event["ts"] + event["dur"] <= main["ts"] + main["dur"]
               for event in slices)
    assert "__main__:f" in (tmp_path / "p.html").read_text()
    assert "__main__:f" in (tmp_path / "s.txt").read_text() and "5 calls" not in ""
    spans = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert len(spans) == 9
    by_id = {span["context"]["span_id"]: span for span in spans}
    g_spans = [span for span in spans if span["name"] == "__main__:g"]
    assert all(by_id[span["parent_id"]]["name"] == "__main__:main" for span in g_spans)


def test_bad_input_is_one_line_and_exit_2(recorded, tmp_path):
    bad_version = tmp_path / "v9.bin"
    data = bytearray((recorded / "rec.bin").read_bytes())
    data[16] = 9
    bad_version.write_bytes(bytes(data))
    for args, words in (
        (["missing.bin", "--to", "jsonl=x"], "does not exist"),
        ([str(bad_version), "--to", "jsonl=x"], "version 9"),
        ([str(recorded / "rec.bin"), "--to", "yaml=x"], "unknown format"),
        ([str(recorded / "prog.py"), "--to", "stats"], "not a hookwise recording"),
    ):
        done = convert(*args, cwd=tmp_path)
        assert done.returncode == 2
        assert len(done.stderr.splitlines()) == 1 and words in done.stderr


KILLED = textwrap.dedent("""
    import sys
    def work(i, text):
        return i * 2
    i = 0
    while True:
        work(i, "x" * (i % 50))
        i += 1
        if i == 2000:
            print("running", flush=True)
""")


def test_a_process_killed_by_sigkill_leaves_every_finished_event(tmp_path):
    (tmp_path / "loop.py").write_text(KILLED)
    process = subprocess.Popen([sys.executable, DRIVER, "--hook", "__main__:work", "--listener", "record=rec.bin",
                                "loop.py"], cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "running\n"
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    done = convert("rec.bin", "--to", "jsonl=out.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    events = read_jsonl(tmp_path / "out.jsonl")
    assert len(events) > 4000
    starts = [event for event in events if event["event"] == "start"]
    assert [event["args"] for event in starts[:3]] == [["0", "''"], ["1", "'x'"], ["2", "'xx'"]]
    assert [event["call_id"] for event in starts] == list(range(1, len(starts) + 1))


FORKING = textwrap.dedent("""
    import os
    def work(i):
        return i
    work(1)
    pid = os.fork()
    if pid == 0:
        work(2)
        os._exit(0)
    os.waitpid(pid, 0)
    work(3)
""")


def test_a_forked_child_writes_its_own_file_and_readers_merge_them(tmp_path):
    (tmp_path / "forks.py").write_text(FORKING)
    done = run_driver(["--hook", "__main__:work", "--listener", "record=rec.bin", "forks.py"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    children = [name for name in os.listdir(tmp_path) if name.startswith("rec.") and name != "rec.bin"]
    assert len(children) == 1
    for source in ("rec.bin", "."):
        done = convert(source, "--to", "jsonl=out.jsonl", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        starts = [event for event in read_jsonl(tmp_path / "out.jsonl") if event["event"] == "start"]
        assert [event["args"] for event in starts] == [["1"], ["2"], ["3"]]
        assert len({event["pid"] for event in starts}) == 2


LONG = textwrap.dedent("""
    def work(i):
        return i
    for i in range(30000):
        work(i)
""")


@pytest.mark.parametrize("ring", [False, True])
def test_record_limit_stops_or_keeps_the_most_recent(tmp_path, ring):
    (tmp_path / "long.py").write_text(LONG)
    options = ["--record-limit", "128K"] + (["--record-ring"] if ring else [])
    done = run_driver(["--hook", "__main__:work", "--listener", "record=rec.bin", *options, "long.py"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert os.path.getsize(tmp_path / "rec.bin") <= 128 * 1024
    assert ("is full" in done.stderr) is not ring
    converted = convert("rec.bin", "--to", "jsonl=out.jsonl", cwd=tmp_path)
    assert converted.returncode == 0, converted.stderr
    starts = [int(event["args"][0]) for event in read_jsonl(tmp_path / "out.jsonl") if event["event"] == "start"]
    assert 1000 < len(starts) < 30000
    assert starts == list(range(starts[0], starts[0] + len(starts)))
    assert (starts[-1] == 29999) is ring and (starts[0] == 0) is not ring


NO_CTYPES = textwrap.dedent("""
    import sys
    sys.modules["_ctypes"] = None  # a Python built without ctypes: import _ctypes fails
    sys.path.insert(0, {root!r})
    from hookwise.cli import main
    sys.exit(main(prog="driver.py"))
""")
SAYS_HOW = "import hookwise.writes\nprint('libc', hookwise.writes._libc_loaded)\n"


def test_the_pure_writer_without_ctypes_maps_with_the_mmap_module_and_writes_the_same(tmp_path):
    # the pure-Python writer maps, unmaps and grows the file through _ctypes (keeping the GIL); a Python
    # without it falls back to the mmap module: the same recording either way, and the same ring
    (tmp_path / "long.py").write_text(LONG + SAYS_HOW)
    (tmp_path / "no_ctypes.py").write_text(NO_CTYPES.format(root=ROOT))
    env = clean_env(HOOKWISE_PURE_PYTHON="1")  # the pure-Python writer, whichever implementation is under test
    results = {}
    for launcher, said in ((DRIVER, "libc True"), ("no_ctypes.py", "libc False")):
        for ring in ([], ["--record-limit", "64K", "--record-ring"]):  # the ring reuses its chunks
            done = run_python([launcher, "--hook", "__main__:work", "--listener", "record=rec.bin", *ring, "long.py"],
                              cwd=tmp_path, env=env)
            assert done.returncode == 0 and done.stdout.split("\n")[0] == said, (done.stdout, done.stderr)
            converted = convert("rec.bin", "--to", "jsonl=out.jsonl", cwd=tmp_path)
            assert converted.returncode == 0, converted.stderr
            results[said, bool(ring)] = [(event["event"], event["call_id"], event.get("args"), event.get("result"))
                                         for event in read_jsonl(tmp_path / "out.jsonl")]
            assert os.path.getsize(tmp_path / "rec.bin") <= 64 * 1024 or not ring
    whole = [(kind, i + 1, [str(i)] if kind == "start" else None, None if kind == "start" else str(i))
             for i in range(30000) for kind in ("start", "end")]
    assert results["libc True", False] == results["libc False", False] == whole
    for said in ("libc True", "libc False"):
        kept = results[said, True]  # the most recent calls (an end whose start was overwritten is left out)
        assert 1000 < len(kept) < len(whole) and kept == whole[-len(kept):]


def test_a_bad_record_limit_is_refused_before_the_program_runs(tmp_path):
    (tmp_path / "long.py").write_text("print('ran')")
    done = run_driver(["--listener", "record=rec.bin", "--record-limit", "lots", "long.py"], cwd=tmp_path)
    assert done.returncode == 2 and "ran" not in done.stdout
    assert done.stderr.count("\n") == 1 and "record_limit" in done.stderr


BOUNDED = textwrap.dedent("""
    import os
    def work(i):
        if i == 3:
            raise ValueError(i)
        return i
    def outer(n):
        for i in range(n):
            try:
                work(i)
            except ValueError:
                pass
        return "done"
    outer(6)  # call 1, and its work(0) to work(5): calls 2 to 7
    pid = os.fork()
    if pid == 0:
        outer(1)
        os._exit(0)
    os.waitpid(pid, 0)
""")
BOUNDED_LISTENER = textwrap.dedent("""
    import sys
    from hookwise.listeners.record import open_writer

    class Bounded:
        # a writer that takes the first four starts, as the html report's takes its first 20,000
        def __init__(self):
            self.writer = open_writer("rec.bin", max_starts=4)
            self.start, self.end, self.error = self.writer.start, self.writer.end, self.writer.error

        def after_fork_in_child(self):
            self.writer.after_fork_in_child()

        def close(self):
            print("skipped", type(self.writer).__name__, self.writer.max_starts, self.writer.skipped, file=sys.stderr)
            self.writer.close()
""")


def test_max_starts_records_the_first_calls_and_only_their_ends(tmp_path):
    (tmp_path / "bounded.py").write_text(BOUNDED)
    (tmp_path / "bounded_listener.py").write_text(BOUNDED_LISTENER)
    done = run_driver(["--hook", "__main__:work", "--hook", "__main__:outer", "--listener", "bounded_listener:Bounded",
                       "bounded.py"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    writer = "RecordWriter" if os.environ.get("HOOKWISE_PURE_PYTHON") else "NativeRecordWriter"
    # the parent skipped work(3), work(4) and work(5); the forked child, which records its own calls, none
    said = sorted(line.split()[1:] for line in done.stderr.splitlines() if line.startswith("skipped "))
    assert said == [[writer, "4", "0"], [writer, "4", "3"]], done.stderr
    converted = convert("rec.bin", "--to", "jsonl=out.jsonl", cwd=tmp_path)  # the child's file merged in
    assert converted.returncode == 0, converted.stderr
    events = read_jsonl(tmp_path / "out.jsonl")
    by_process = {}
    for event in events:
        by_process.setdefault(event["pid"], []).append(
            (event["event"], event["target"].split(":")[1], event.get("args"), event.get("result")))
    parent, child = by_process.values()  # in the order of their first events
    assert parent == [
        ("start", "outer", ["6"], None), ("start", "work", ["0"], None), ("end", "work", None, "0"),
        ("start", "work", ["1"], None), ("end", "work", None, "1"), ("start", "work", ["2"], None),
        ("end", "work", None, "2"),
        ("end", "outer", None, "'done'"),  # the end of a call it started, after the calls it skipped
    ]
    assert child == [("start", "outer", ["1"], None), ("start", "work", ["0"], None), ("end", "work", None, "0"),
                     ("end", "outer", None, "'done'")]


THREADS = textwrap.dedent("""
    import threading
    def work(i):
        return i
    def loop(n):
        for i in range(n):
            work(i)
    threads = [threading.Thread(target=loop, args=(20000,), name=f"worker-{k}") for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
""")


@pytest.fixture(scope="module")
def threaded(tmp_path_factory):
    where = tmp_path_factory.mktemp("threaded")
    (where / "threads.py").write_text(THREADS)
    done = run_driver(["--hook", "__main__:work", "--listener", "record=rec.bin", "threads.py"], cwd=where)
    assert done.returncode == 0, done.stderr
    return where


def test_threads_write_their_own_chunks_and_are_merged_back(threaded):
    done = convert("rec.bin", "--to", "jsonl=out.jsonl", cwd=threaded)
    assert done.returncode == 0 and done.stderr == "", done.stderr  # no progress line when not on a terminal
    events = read_jsonl(threaded / "out.jsonl")
    assert len(events) == 80000
    for name in ("worker-0", "worker-1"):
        starts = [int(event["args"][0]) for event in events if event["event"] == "start" and event["thread_name"] == name]
        assert starts == list(range(20000))
    assert all(a["ts_ns"] <= b["ts_ns"] for a, b in zip(events, events[1:]))


MEASURE = textwrap.dedent("""
    import resource
    from hookwise.convert import convert
    from hookwise.listeners import chrome, jsonl
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    count = convert(["rec.bin"], [("jsonl", "out.jsonl"), ("chrome", "out.json"), ("stats", "stats.txt")])
    print(count, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
""")


def test_converting_needs_memory_for_the_nesting_not_for_the_calls(threaded):
    env = dict(clean_env(), PYTHONPATH=ROOT)
    done = run_python(["-c", MEASURE], cwd=threaded, env=env)
    assert done.returncode == 0, done.stderr
    count, peak = map(int, done.stdout.split())
    assert count == 80000
    assert peak < 8_000_000  # the 40,000 calls kept as slices would be tens of MB
    trace = json.loads((threaded / "out.json").read_text())
    assert sum(1 for event in trace if event["ph"] == "X") == 40000
    assert "__main__:work  40000" in (threaded / "stats.txt").read_text()


def test_on_a_terminal_convert_shows_its_progress_on_one_updating_line(threaded, tmp_path):
    import pty

    primary, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "hookwise.convert", "rec.bin", "--to", f"chrome={tmp_path}/t.json",
                                "--to", f"jsonl={tmp_path}/t.jsonl"], cwd=threaded, stderr=terminal,
                               stdout=subprocess.DEVNULL, env=dict(clean_env(), PYTHONPATH=ROOT))
    os.close(terminal)
    shown = b""
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # the terminal's other end is closed
            break
        if not data:
            break
        shown += data
    os.close(primary)
    assert process.wait(60) == 0
    text = shown.decode()
    assert text.count("\n") == 1 and text.endswith("\n")  # one line, rewritten in place
    updates = [part.strip() for part in text.split("\r") if part.strip()]
    assert len(updates) >= 2, text
    assert all(update.startswith("hookwise convert: ") for update in updates)
    assert re.fullmatch(r"hookwise convert: \d+ events in \d+\.\d s", updates[-1])
    assert any(re.match(r"hookwise convert: +\d+% of the recording, \d+ events, [\d,]+ events/s", u) for u in updates)


def test_a_run_with_more_distinct_strings_than_the_writer_remembers_reads_back_whole(tmp_path):
    # asyncio task names are new for every task of a server: past 65,536 strings the writer stops
    # remembering them (its memory stays bounded) and writes a string again when it needs it
    (tmp_path / "prog.py").write_text(textwrap.dedent("""
        def f(n):
            return n
        for i in range(70000):
            exec(compile("f(i)", f"<generated {i}>", "exec"))  # a caller file of its own each time
        f(-1)
        f(-2)
    """))
    done = run_driver(["--hook", "__main__:f", "--listener", "record=rec.bin", "prog.py"], cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    done = convert("rec.bin", "--to", "jsonl=out.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    starts = [event for event in read_jsonl(tmp_path / "out.jsonl") if event["event"] == "start"]
    assert len(starts) == 70002
    assert [event["caller"]["file"] for event in starts[:70000]] == [f"<generated {i}>" for i in range(70000)]
    assert [event["args"] for event in starts[-2:]] == [["-1"], ["-2"]]
    assert starts[-1]["caller"]["file"] == starts[-2]["caller"]["file"] == str(tmp_path / "prog.py")


VALUES_PROGRAM = textwrap.dedent("""
    import collections, datetime, decimal, enum, functools, random, re, sys

    class Plain:
        pass

    class Shows:
        def __repr__(self):
            return "Shows()"

    Point = collections.namedtuple("Point", "x y")

    class Color(enum.Enum):
        RED = 1

    def f(value):
        return value

    SEED = int(sys.argv[1])
    rng = random.Random(SEED)
    texts = ["", "a", "bob", "O'Brien", "x=1", "user=bob&token=abc", "http://u:pw@h/p", "\\\\n\\\\t", "é€😀",
             "\\\\ud800", "a" * 25, "b" * 300, "c=" * 200, "quote\\"s", "password"]
    leaves = [None, True, False, 0, -1, 2**62, 2**70, 1.5, float("nan"), float("inf"), -0.0, 3j, b"", b"x=1",
              b"\\\\x00\\\\xff" * 40, Plain(), Shows(), f, len, "x".upper, str.join, int, Plain, re.compile("a+"),
              datetime.date(2026, 12, 7), decimal.Decimal("1.5"), Point(1, "p"), Color.RED, range(3), ...,
              bytearray(b"ab"), {1, 2}, frozenset(), functools.partial(f, 1), object()]

    def value(depth):
        roll = rng.random()
        if depth > 5 or roll < 0.4:
            return rng.choice(leaves + texts)
        if roll < 0.6:
            return [value(depth + 1) for _ in range(rng.choice((0, 1, 2, 3, 30)))]
        if roll < 0.8:
            return tuple(value(depth + 1) for _ in range(rng.choice((0, 1, 2, 17, 30))))
        keys = texts + [1, 2.5, None, (1, 2), "token", "session_id", "Password", "a" * 300]
        return {rng.choice(keys): value(depth + 1) for _ in range(rng.choice((0, 1, 2, 3, 40)))}

    for _ in range(500):
        f(value(0))
""")


@pytest.mark.parametrize("seed, limit", [(1, "200"), (2, "20"), (3, "8"), (4, "45")])
def test_every_value_reads_back_as_the_live_outputs_show_it(tmp_path, seed, limit):
    # The C writer stores lists, tuples, dicts, long texts, objects and standard-library reprs itself
    # (format tags 11 to 16) and the reader shows them again: differentially, against the live jsonl,
    # over random nested values with texts to redact, secret keys, cuts at several repr limits
    (tmp_path / "prog.py").write_text(VALUES_PROGRAM)
    done = run_driver(["--hook", "__main__:f", "--repr-limit", limit, "--listener", "record=rec.bin",
                       "--listener", "jsonl=live.jsonl", "prog.py", str(seed)], cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = convert("rec.bin", "--to", "jsonl=conv.jsonl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    live = _without_time(read_jsonl(tmp_path / "live.jsonl"))
    converted = _without_time(read_jsonl(tmp_path / "conv.jsonl"))
    assert len(live) == 1000
    for one, other in zip(live, converted):
        assert one == other
    assert b"hunter2" not in (tmp_path / "rec.bin").read_bytes()
