"""``--listener chrome=PATH``: a Trace Event Format file, end to end through the driver."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from unittest import mock

import pytest
from hypothesis import given
from hypothesis import strategies as st

from helpers import DRIVER, FIXTURES, ROOT, clean_env, read_jsonl, read_trace, run_driver, run_python
import hookwise
from hookwise.listeners import _output
from hookwise.listeners._jsontext import dumps, for_script_element

WORKLOAD = os.path.join(FIXTURES, "scripts", "report_workload.py")
CALLS = {"main": 1, "load": 2, "parse": 8, "checksum": 6, "numbers": 1, "slow": 1, "gather_all": 1, "fetch": 2}


def run_workload(tmp_path, *listeners, mode="normal"):
    args = ["--hook", "__main__:*"]
    for spec in listeners:
        args += ["--listener", spec]
    return run_driver([*args, WORKLOAD, mode], cwd=tmp_path)


def load_trace(path):
    with open(path) as handle:
        trace = json.load(handle)  # a finished trace is plain JSON: an array of events
    events = trace
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    slices = [e for e in events if e["ph"] == "X"]
    return trace, events, names, slices


def ns(microseconds):
    return round(microseconds * 1000)


def span(event):
    return ns(event["ts"]), ns(event["ts"]) + ns(event["dur"])


def enclosing(slice_, slices):
    """The innermost other slice on the same tid whose time holds ``slice_``'s."""
    start, end = span(slice_)
    around = [other for other in slices if other is not slice_ and other["tid"] == slice_["tid"]
              and span(other)[0] <= start and end <= span(other)[1]]
    return min(around, key=lambda other: ns(other["dur"]), default=None)


def assert_tracks_nest(names, slices):
    for tid in names:
        track = sorted((span(e) for e in slices if e["tid"] == tid), key=lambda s: (s[0], -s[1]))
        stack = []
        for start, end in track:
            while stack and stack[-1] <= start:
                stack.pop()
            assert not stack or end <= stack[-1], f"a slice on {names[tid]} overlaps its neighbour"
            stack.append(end)


def test_every_call_is_one_slice_on_a_named_track_with_its_arguments_and_result(tmp_path):
    result = run_workload(tmp_path, "chrome=trace.json", "jsonl=events.jsonl")
    assert result.returncode == 0, result.stderr
    trace, events, names, slices = load_trace(tmp_path / "trace.json")
    pid = events[0]["pid"]
    assert events[0]["ph"] == "M" and events[0]["tid"] == pid and events[0]["name"] == "process_name"
    assert events[0]["args"]["name"] == "report_workload.py (hookwise)"
    assert events[0]["args"]["hookwise_version"] == hookwise.__version__
    assert abs(int(events[0]["args"]["time_zero_wall_ns"]) - time.time_ns()) < 120e9
    assert all(e["pid"] == pid for e in events)
    # loader-2 starts after loader-1 has ended and often gets its thread id: each still has its own track
    # (the recording names every thread, not every thread id: format 4's THREAD from_seq)
    assert sorted(names.values()) == ["MainThread", "MainThread / task Task-1", "MainThread / task Task-2",
                                      "MainThread / task Task-3", "loader-1", "loader-2"]
    assert all(0 < tid < 2**32 for tid in names)  # trace viewers read tids as 32-bit numbers

    # one X slice per call, except the generator, which is one async b/e pair
    jsonl = read_jsonl(tmp_path / "events.jsonl")
    starts = {e["call_id"]: e for e in jsonl if e["event"] == "start"}
    finished = {e["call_id"]: e for e in jsonl if e["event"] != "start"}
    by_id = {e["args"]["call_id"]: e for e in slices}
    assert len(by_id) == len(slices) == 21
    begins = [e for e in events if e["ph"] == "b"]
    ends = [e for e in events if e["ph"] == "e"]
    assert set(by_id) | {e["id"] for e in begins} == set(starts)
    assert {qualname: sum(e["name"] == f"__main__:{qualname}" for e in slices + begins) for qualname in CALLS} == CALLS

    for call_id, event in by_id.items():
        start, end = starts[call_id], finished[call_id]
        assert event["name"] == start["target"]
        assert names[event["tid"]].split(" / ")[0] == start["thread_name"]
        assert event["args"]["duration_ns"] == end["duration_ns"]  # the runtime's own measure of the call
        if "task" in start:
            assert names[event["tid"]] == f"MainThread / task {start['task']}" == f"MainThread / task {event['args']['task']}"
        assert event["cat"] == ("coroutine" if event["name"] in ("__main__:fetch", "__main__:gather_all") else "function")

    parses = [e for e in slices if e["name"] == "__main__:parse"]
    fine = [e for e in parses if "error" not in e["args"]]
    assert sorted(e["args"]["arguments"]["record"] for e in fine) == ["'a'", "'a'", "'alpha'", "'beta'", "'c'", "'c'"]
    for event in fine:
        record = event["args"]["arguments"]["record"].strip("'")
        assert event["args"]["result"] == str(sum(record.encode()) % 251)
        assert "cname" not in event
    checksums = [e for e in slices if e["name"] == "__main__:checksum"]
    assert sorted(e["args"]["arguments"]["data"] for e in checksums) == ["b'a'", "b'a'", "b'alpha'", "b'beta'", "b'c'", "b'c'"]
    for event in checksums:
        data = event["args"]["arguments"]["data"][2:-1]
        assert event["args"]["result"] == str(sum(data.encode()) % 251)
        assert event["args"]["caller"] == f"{WORKLOAD}:35 in parse"

    # the generator: an async slice that does not break MainThread's nesting
    (begin,), (finish,) = begins, ends
    assert begin["name"] == finish["name"] == "__main__:numbers" and begin["cat"] == finish["cat"] == "hookwise.generator"
    assert begin["id"] == finish["id"] and finish["ts"] >= begin["ts"]
    assert begin["args"]["arguments"] == {"count": "4"} and begin["args"]["result"] == "None"
    # the last event says the trace is complete (a killed run's has none)
    assert events[-1] == {"ph": "M", "pid": pid, "tid": pid, "name": "process_labels",
                          "args": {"labels": "hookwise: complete trace", "events_not_recorded": 0}}
    assert not (tmp_path / "trace.json.rec").exists()  # the recording it was made from is gone


VALUES = textwrap.dedent("""
    import collections

    class Plain:
        pass

    class Shown:
        def __repr__(self):
            return "Shown()"

    def take(a, b, c, d, e, f):
        return (a, Plain())

    for n in range(3):
        take(Plain(), {"k": Plain(), "password": "x"}, [Plain(), 1.5, None] * 2, ("t", Plain()), "s" * 300,
             collections.OrderedDict(a=Plain()))
        take(1.25, float("inf"), b"b" * 300, {1, 2}, Shown(), -0.0)
""")


def test_every_argument_and_result_reads_as_jsonl_shows_it(tmp_path):
    # objects are recorded as their type and address: the trace names the type as the live outputs do
    (tmp_path / "values.py").write_text(VALUES)
    result = run_driver(["--hook", "__main__:take", "--listener", "chrome=trace.json", "--listener",
                         "jsonl=events.jsonl", "values.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, _, _, slices = load_trace(tmp_path / "trace.json")
    events = read_jsonl(tmp_path / "events.jsonl")
    starts = {e["call_id"]: e for e in events if e["event"] == "start"}
    ends = {e["call_id"]: e for e in events if e["event"] == "end"}
    assert len(slices) == len(starts) == 6
    for event in slices:
        call_id = event["args"]["call_id"]
        assert list(event["args"]["arguments"].values()) == starts[call_id]["args"]
        assert event["args"]["result"] == ends[call_id]["result"]
    assert any(e["args"]["arguments"]["a"].startswith("<__main__.Plain object at 0x") for e in slices)


def test_errors_are_marked_red_with_the_exception(tmp_path):
    result = run_workload(tmp_path, "chrome=trace.json")
    assert result.returncode == 0, result.stderr
    _, _, names, slices = load_trace(tmp_path / "trace.json")
    failed = [e for e in slices if "error" in e["args"]]
    assert len(failed) == 2
    for event in failed:
        assert event["name"] == "__main__:parse" and event["cname"] == "terrible"
        assert event["args"]["error"] == "ValueError: bad record 'bad'"
        assert event["args"]["exception_type"] == "ValueError"
        assert "result" not in event["args"]
        assert event["args"]["arguments"] == {"record": "'bad'", "password": "***"}
    assert sorted(names[e["tid"]] for e in failed) == ["loader-1", "loader-2"]
    assert all("cname" not in e for e in slices if "error" not in e["args"])


def test_slices_nest_under_their_callers_on_the_same_track(tmp_path):
    result = run_workload(tmp_path, "chrome=trace.json")
    assert result.returncode == 0, result.stderr
    _, _, names, slices = load_trace(tmp_path / "trace.json")
    # on every track, two slices are either disjoint or one holds the other
    assert_tracks_nest(names, slices)
    # and the slice that holds a call is its caller's
    parents = {}
    for event in slices:
        parent = enclosing(event, slices)
        parents.setdefault(event["name"], set()).add(None if parent is None else parent["name"])
    assert parents["__main__:checksum"] == {"__main__:parse"}
    assert parents["__main__:parse"] == {"__main__:load", "__main__:fetch"}
    assert parents["__main__:load"] == {None}  # each thread's top call
    assert parents["__main__:fetch"] == {None}  # the top of Task-2 and Task-3
    assert parents["__main__:gather_all"] == {None}  # the top of Task-1
    assert parents["__main__:slow"] == {"__main__:main"}
    assert parents["__main__:main"] == {None}
    for event in slices:
        caller = event["args"]["caller"].rsplit(" in ", 1)[1]
        parent = enclosing(event, slices)
        if caller in CALLS:  # called by a hooked function: inside that function's slice
            assert parent is not None and parent["name"] == f"__main__:{caller}"
    # the tasks' slices lie within main's time, on tracks of their own
    main = next(e for e in slices if e["name"] == "__main__:main")
    for event in slices:
        if names[event["tid"]].startswith("MainThread / task"):
            assert span(main)[0] < span(event)[0] and span(event)[1] < span(main)[1]


def test_thousands_of_quick_nested_calls_on_four_threads_all_nest(tmp_path):
    # calls microseconds apart, for long enough that the runtime's clock is re-anchored on the way
    (tmp_path / "app.py").write_text(textwrap.dedent(
        """
        import threading
        def leaf(n):
            return n
        def inner(n):
            return leaf(n) + leaf(n)
        def outer(n):
            return inner(n) + leaf(n)
        def work():
            for n in range(1500):
                outer(n)
        threads = [threading.Thread(target=work, name=f"w{i}") for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        """
    ))
    result = run_driver(["--hook", "__main__:*", "--listener", "chrome=trace.json", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, _, names, slices = load_trace(tmp_path / "trace.json")
    assert len(slices) == 4 * (1 + 1500 * 5)
    assert sorted(names.values()) == ["w0", "w1", "w2", "w3"]
    assert_tracks_nest(names, slices)


@pytest.mark.parametrize("mode, status, exception", [("exit", 3, "SystemExit: 3"), ("crash", 1, "RuntimeError: the program crashed")])
def test_the_file_is_complete_json_when_the_program_exits_or_crashes(tmp_path, mode, status, exception):
    result = run_workload(tmp_path, "chrome=trace.json", mode=mode)
    assert result.returncode == status
    _, _, _, slices = load_trace(tmp_path / "trace.json")
    assert len(slices) == 21
    main = next(e for e in slices if e["name"] == "__main__:main")
    assert main["args"]["error"] == exception and main["cname"] == "terrible"


def test_a_call_still_running_at_exit_ends_at_exit_marked_unfinished(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(
        """
        import threading, time
        def forever():
            time.sleep(60)
        def quick():
            return 1
        threading.Thread(target=forever, name="stuck", daemon=True).start()
        time.sleep(0.05)
        quick()
        """
    ))
    result = run_driver(["--hook", "__main__:*", "--listener", "chrome=trace.json", "app.py"], cwd=tmp_path, timeout=50)
    assert result.returncode == 0, result.stderr
    _, _, names, slices = load_trace(tmp_path / "trace.json")
    stuck = next(e for e in slices if e["name"] == "__main__:forever")
    quick = next(e for e in slices if e["name"] == "__main__:quick")
    assert names[stuck["tid"]] == "stuck" and stuck["args"]["unfinished"] is True
    assert "result" not in stuck["args"] and "error" not in stuck["args"]
    assert span(stuck)[1] >= span(quick)[1]


def test_coroutines_driven_outside_a_task_are_async_slices(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(
        """
        async def step(n):
            return n + 1
        def outer():
            coroutine = step(1)
            try:
                coroutine.send(None)
            except StopIteration as stop:
                return stop.value
        outer()
        """
    ))
    result = run_driver(["--hook", "__main__:*", "--listener", "chrome=trace.json", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, events, _, slices = load_trace(tmp_path / "trace.json")
    assert [e["name"] for e in slices] == ["__main__:outer"] and slices[0]["args"]["result"] == "2"
    begin = next(e for e in events if e["ph"] == "b")
    assert begin["name"] == "__main__:step" and begin["cat"] == "hookwise.coroutine"
    assert begin["args"]["result"] == "2"


def test_a_slice_that_cannot_nest_in_its_track_becomes_an_async_slice(tmp_path):
    # two tasks with one name share a track, and their calls overlap without nesting
    (tmp_path / "app.py").write_text(textwrap.dedent(
        """
        import asyncio
        async def wait(delay):
            await asyncio.sleep(delay)
        async def main():
            first = asyncio.create_task(wait(0.02), name="same")
            await asyncio.sleep(0.005)
            second = asyncio.create_task(wait(0.03), name="same")
            await asyncio.gather(first, second)
        asyncio.run(main())
        """
    ))
    result = run_driver(["--hook", "__main__:wait", "--listener", "chrome=trace.json", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, events, names, slices = load_trace(tmp_path / "trace.json")
    (kept,) = slices
    assert names[kept["tid"]] == "MainThread / task same" and kept["args"]["arguments"] == {"delay": "0.02"}
    begin = next(e for e in events if e["ph"] == "b")
    assert begin["args"]["arguments"] == {"delay": "0.03"} and begin["args"]["task"] == "same"
    assert begin["cat"] == "hookwise.coroutine" and [e["id"] for e in events if e["ph"] == "e"] == [begin["id"]]


FAMILY = """
import os, subprocess, sys
def spawn():
    return int(subprocess.run([sys.executable, "child.py"], capture_output=True, text=True).stdout)
def fork():
    pid = os.fork()
    if pid == 0:
        work("in the fork")
        os._exit(0)
    os.waitpid(pid, 0)
    return pid
def work(what):
    return what.upper()
print(spawn(), fork())
work("in the parent")
"""
CHILD = """
import os
def child_work(n):
    return n * 2
for n in range(3):
    child_work(n)
print(os.getpid())
"""


def test_every_process_of_the_run_writes_its_own_trace_beside_the_first(tmp_path):
    (tmp_path / "family.py").write_text(FAMILY)
    (tmp_path / "child.py").write_text(CHILD)
    result = run_driver(["--hook", "__main__:*", "--listener", "chrome=trace.json", "family.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    spawned, forked = map(int, result.stdout.split())
    assert sorted(path.name for path in tmp_path.glob("trace*.json")) == sorted(
        ["trace.json", f"trace.{spawned}.json", f"trace.{forked}.json"])

    def calls(name):
        _, events, _, slices = load_trace(tmp_path / name)
        return events[0]["pid"], sorted((e["name"].split(":")[1], e["args"].get("result")) for e in slices)

    parent_pid, parent_calls = calls("trace.json")
    assert parent_calls == [("fork", str(forked)), ("spawn", str(spawned)), ("work", "'IN THE PARENT'")]
    assert calls(f"trace.{spawned}.json") == (spawned, [("child_work", "0"), ("child_work", "2"), ("child_work", "4")])
    # the forked child reports its own calls, and the call it was forked in, unfinished there
    pid, forked_calls = calls(f"trace.{forked}.json")
    assert pid == forked and forked_calls == [("fork", None), ("work", "'IN THE FORK'")]
    _, _, _, slices = load_trace(tmp_path / f"trace.{forked}.json")
    assert next(e for e in slices if e["name"] == "__main__:fork")["args"]["unfinished"] is True
    assert parent_pid not in (spawned, forked)


def test_secrets_never_reach_the_file(tmp_path):
    result = run_workload(tmp_path, "chrome=trace.json")
    assert result.returncode == 0, result.stderr
    text = (tmp_path / "trace.json").read_text()
    assert "hunter2" not in text and '"password":"***"' in text


def test_an_unwritable_path_or_a_planted_symlink_stops_the_driver(tmp_path):
    result = run_workload(tmp_path, "chrome=" + str(tmp_path / "no" / "trace.json"))
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("hookwise: error: listener 'chrome': cannot write the output")
    victim = tmp_path / "victim.json"
    victim.write_text("{}")
    os.symlink(victim, tmp_path / "trace.json")
    result = run_workload(tmp_path, "chrome=trace.json")
    assert result.returncode == 2 and result.stdout == "" and victim.read_text() == "{}"
    result = run_workload(tmp_path, "chrome")
    assert result.returncode == 2 and "listener 'chrome' needs a path" in result.stderr


def test_the_output_file_holds_exactly_one_report_even_if_someone_else_wrote_there(tmp_path):
    path = tmp_path / "trace.json"
    path.write_text("x" * 100)
    output = _output.create(str(path))
    assert path.read_text() == ""  # emptied when the run starts
    with open(path, "w") as other:  # another process writes a longer text meanwhile
        other.write("y" * 1000)
    assert output.write('{"traceEvents":[]}') is True
    assert path.read_text() == '{"traceEvents":[]}'
    assert output.write("again") is False  # one report per run


# every record under 4 KiB once written: any text of up to 300 characters (at most 12 bytes each in JSON)
RECORD_TEXTS = st.text(max_size=300) | st.text(alphabet="ab \n", max_size=4000)


@given(st.lists(RECORD_TEXTS, max_size=40), st.integers(0, 5000), st.integers(0, 2), st.booleans())
def test_a_write_cut_where_the_kernel_cuts_it_leaves_whole_records(tmp_path_factory, texts, head, writes, in_c):
    # Linux cuts a write to a regular file, when the process is killed, only at a 4 KiB boundary of the
    # file: whatever boundary the cut falls on, what is left is whole events, and loads (laid out by
    # the accelerator's page_layout, where it is loaded, or by the Python loop)
    path = tmp_path_factory.mktemp("cut") / "trace.json"
    output = _output.create(str(path))
    output.append("[\n" + " " * head)
    events = [{"name": text, "ph": "i", "n": n} for n, text in enumerate(texts)]
    per_write = [events[part::writes + 1] for part in range(writes + 1)]
    with mock.patch.object(_output, "_page_layout", _output._page_layout if in_c else None):
        for part in per_write:  # several writes, each at the offset the last left
            output.append_records([dumps(event) for event in part], ",\n")
    in_order = [event for part in per_write for event in part]
    written = path.read_bytes()

    def load(text):
        return json.loads(text.strip().rstrip(",") + "]")

    assert load(written.decode()) == in_order
    for cut in range(0, len(written) + 1, _output.PAGE):
        if cut > 1:  # past the "[": a viewer loads it, and sees the first events, whole
            loaded = load(written[:cut].decode())
            assert loaded == in_order[:len(loaded)]


def test_records_go_through_a_pipe_unpadded(tmp_path):
    read, write = os.pipe()
    output = _output.OutputFile(write, "pipe")
    output.append_records(["x" * 4000, "y" * 200], ",\n")
    output.finish()
    assert os.read(read, 10_000) == b"x" * 4000 + b",\n" + b"y" * 200 + b",\n"
    os.close(read)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_the_hand_made_json_reads_back_the_same(value):
    text = dumps(value)
    assert text.isascii()
    assert json.loads(text) == value
    assert json.loads(for_script_element(text)) == value
    assert "<" not in for_script_element(text) and ">" not in for_script_element(text)


KILLED = textwrap.dedent("""
    import threading
    def work(i, text):
        return i * 2
    def outer(n):
        for i in range(n):
            work(i, "x" * (i % 50))
    def loop(name):
        i = 0
        while True:
            outer(100)
            i += 1
            if i == 300 and name == "main":
                print("running", flush=True)
    threading.Thread(target=loop, args=("side",), name="side", daemon=True).start()
    loop("main")
""")


def test_a_process_killed_by_sigkill_leaves_a_trace_that_loads_with_the_calls_before_the_kill(tmp_path):
    (tmp_path / "loop.py").write_text(KILLED)
    process = subprocess.Popen([sys.executable, DRIVER, "--hook", "__main__:work", "--hook", "__main__:outer",
                                "--listener", "chrome=trace.json", "loop.py"], cwd=tmp_path, env=clean_env(),
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "running\n"  # 30,000 calls of work made on the main thread
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    text = (tmp_path / "trace.json").read_text()
    assert text.startswith("[\n") and text.rstrip().endswith(",")  # unclosed, each event whole
    events = read_trace(tmp_path / "trace.json")  # closed as the viewers close it
    names = {e["tid"]: e["args"]["name"] for e in events if e["ph"] == "M" and e["name"] == "thread_name"}
    assert events[0]["name"] == "process_name" and events[0]["args"]["name"] == "loop.py (hookwise)"
    slices = [e for e in events if e["ph"] == "X"]
    by_thread = {}
    for event in slices:
        by_thread.setdefault(names[event["tid"]], []).append(event)
    # every retired chunk is in: on the main thread, at least 25,000 calls of work, in order, nested in outer
    works = [e for e in by_thread["MainThread"] if e["name"] == "__main__:work"]
    assert len(works) > 25_000
    assert [e["args"]["arguments"]["i"] for e in works[:3]] == ["0", "1", "2"]
    assert [e["args"]["call_id"] for e in works] == sorted(e["args"]["call_id"] for e in works)
    assert "side" in by_thread
    assert_tracks_nest(names, slices)
    assert not any(e["ph"] == "M" and e["name"] == "process_labels" for e in events)  # not a finished trace
    # the recording beside it holds every finished event: converted, the whole trace
    done = run_python(["-m", "hookwise.convert", "trace.json.rec", "--to", "chrome=whole.json"], cwd=tmp_path,
                      env=clean_env(PYTHONPATH=ROOT))
    assert done.returncode == 0, done.stderr
    whole = [e for e in read_trace(tmp_path / "whole.json") if e["ph"] == "X" and e["name"] == "__main__:work"]
    assert len(whole) > len(slices) - len([e for e in slices if e["name"] == "__main__:outer"])


MANY = textwrap.dedent("""
    def tiny(n):
        return n
    def main(calls):
        for n in range(calls):
            tiny(n)
    main({calls})
""")
MEASURE = textwrap.dedent("""
    import resource, subprocess, sys
    subprocess.run(sys.argv[1:], check=True)
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024)
""")


@pytest.mark.parametrize("listener, calls", [("chrome=trace.json", 50_000), ("html=report.html", 100_000),
                                             ("stats=stats.txt", 100_000)])
def test_memory_stays_bounded_however_many_calls(tmp_path, listener, calls):
    # The whole run used to be kept until exit: chrome took 2 kB a call (377 MB for 200,000 calls), html and
    # stats kept every duration. Now three times the calls take no more memory (bench/memory.py: 5 million).
    def peak(*args):
        done = run_python(["-c", MEASURE, sys.executable, *args], cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        return int(done.stdout.split()[-1])

    peaks = []
    for number in (calls, 3 * calls):
        (tmp_path / "many.py").write_text(MANY.format(calls=number))
        peaks.append(peak(DRIVER, "--hook", "__main__:tiny", "--listener", listener, "many.py"))
        if listener.startswith("chrome"):
            assert sum(1 for e in read_trace(tmp_path / "trace.json") if e["ph"] == "X") == number
    plain = peak("many.py")
    assert peaks[1] - peaks[0] < 6_000_000, [number / 1e6 for number in peaks]
    assert peaks[1] - plain < 50_000_000, (peaks[1] - plain) / 1e6  # html's 20,000 drawn calls are most of it
