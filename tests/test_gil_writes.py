"""No built-in output lets another thread run in the middle of a hooked call.

``os.write`` (and every other system call that Python wraps) lets go of the
GIL, and a thread waiting for it then runs inside the hooked call: the program's
threads interleave as they never do without hookwise (more-itertools'
``callback_iter`` test lost its race one run in four under the jsonl listener).

The program below sets a state just before a hooked call and clears it just
after, in a loop; a watcher thread counts how often it finds the state set.
The switch interval is raised so far that the interpreter never takes the GIL
from a thread by itself: a thread runs only where another lets go of it (a
sleep, a system call). Without hookwise the watcher never finds the state set;
with an output that writes through ``os.write`` it finds it set again and again
(the user listener below, which shows that the test can fail). The program
sleeps now and then outside the call, so the watcher does get to look.

Each case runs in a fresh process, with the implementation under test (C
accelerator, or pure Python under HOOKWISE_PURE_PYTHON=1), and the program
says which one ran. The recording (``record``, and the live ``chrome`` and
``html``, which record as the run goes) grows its file, maps and unmaps its
chunks and reads them back with system calls: the C accelerator makes them
itself, the pure-Python runtime through ``_ctypes`` (``hookwise.writes``), both
with the GIL held.
"""

import fcntl
import os
import subprocess
import sys
import threading
import time

import pytest

from helpers import DRIVER, clean_env, read_jsonl, run_python

PROGRAM = """
import sys, threading, time

def hooked(n):
    return n

state = [False]
looks = [0, 0]  # the watcher's looks while the state was set; all its looks
watching = [True]

def watch():
    while watching[0]:
        looks[1] += 1
        if state[0]:
            looks[0] += 1
        time.sleep(0.00005)  # lets go of the GIL, and wants it back 50 us later

sys.setswitchinterval(1000)  # the interpreter never switches threads by itself during the test
watcher = threading.Thread(target=watch, name="watcher")
watcher.start()
for i in range({calls}):
    state[0] = True
    hooked(i)
    state[0] = False
    if i % 50 == 0:
        time.sleep(0.0002)  # outside the call: the watcher runs here
watching[0] = False
watcher.join()
import hookwise.accel
print(looks[0], looks[1], hookwise.accel.ACTIVE)
"""

USER_LISTENER = """
import os

class WritesWithOsWrite:
    # os.write lets go of the GIL: what the built-in outputs must not do
    def __init__(self):
        self.fd = os.open("user.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND)

    def start(self, call):
        os.write(self.fd, b"s" * 4095 + b"\\n")

    def end(self, call, result):
        os.write(self.fd, b"e" * 4095 + b"\\n")
"""

CALLS = 20_000


def run_program(tmp_path, listener_args, calls=CALLS, extra_args=()):
    """Run the program under the driver; (looks while the state was set, all looks, its stderr)."""
    (tmp_path / "app.py").write_text(PROGRAM.format(calls=calls))
    (tmp_path / "user_listener.py").write_text(USER_LISTENER)
    env = clean_env(PYTHONPATH=str(tmp_path))
    with open(tmp_path / "stderr.txt", "wb") as stderr:  # a regular file: console lines never wait for a reader
        done = subprocess.run([sys.executable, DRIVER, "--hook", "__main__:hooked", *listener_args, *extra_args,
                               "app.py"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True,
                              timeout=300)
    errors = (tmp_path / "stderr.txt").read_text(errors="replace")
    assert done.returncode == 0, errors[-3000:]
    seen, looks, accelerated = done.stdout.split()
    assert accelerated == str(not os.environ.get("HOOKWISE_PURE_PYTHON")), "the implementation under test ran"
    assert int(looks) >= 50, f"the watcher hardly ran ({looks} looks): the test shows nothing"
    return int(seen), int(looks), errors


OUTPUTS = {
    "console": ["--listener", "console"],
    "default listener": [],
    "jsonl": ["--listener", "jsonl=events.jsonl"],
    "stats": ["--listener", "stats=stats.txt"],
    "chrome": ["--listener", "chrome=trace.json"],
    "html": ["--listener", "html=report.html"],
}


@pytest.mark.parametrize("output", sorted(OUTPUTS))
def test_no_built_in_output_lets_another_thread_run_in_the_middle_of_a_call(tmp_path, output):
    seen, looks, errors = run_program(tmp_path, OUTPUTS[output])
    assert seen == 0, f"the watcher ran {seen} times (of {looks}) in the middle of a hooked call under {output}"
    if output == "jsonl":
        events = read_jsonl(tmp_path / "events.jsonl")
        assert len(events) == 2 * CALLS and {event["event"] for event in events} == {"start", "end"}
    elif output in ("console", "default listener"):
        assert errors.count("hookwise end ") == CALLS


def test_the_recording_lets_no_other_thread_run_in_the_middle_of_a_call(tmp_path):
    # a small ring makes the writer map a chunk every few hundred events
    seen, looks, _ = run_program(tmp_path, ["--listener", "record=run.rec"], calls=100_000,
                                 extra_args=["--record-limit", "64K", "--record-ring"])
    assert seen == 0, f"the watcher ran {seen} times (of {looks}) in the middle of a hooked call under record"


def test_jsonl_to_a_pipe_being_read_lets_no_other_thread_run_in_the_middle_of_a_call(tmp_path):
    fifo = tmp_path / "events.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # opened first: the program's open does not wait
    try:
        # room for every line, so that a reader slowed by a loaded machine never fills the pipe (a full
        # pipe is the one place a write waits with the GIL released: it may not deadlock the program)
        size = fcntl.fcntl(reader, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
        calls = min(CALLS, size // 800)
        received = []
        finished = threading.Event()

        def read():
            while True:
                try:
                    data = os.read(reader, 1 << 16)
                except BlockingIOError:
                    data = None
                if data:
                    received.append(data)
                elif finished.is_set():
                    return
                else:
                    time.sleep(0.001)

        thread = threading.Thread(target=read)
        thread.start()
        try:
            seen, looks, _ = run_program(tmp_path, ["--listener", f"jsonl={fifo}"], calls=calls)
        finally:
            finished.set()
            thread.join(timeout=60)
    finally:
        os.close(reader)
    assert seen == 0, f"the watcher ran {seen} times (of {looks}) in the middle of a hooked call"
    lines = b"".join(received).decode().splitlines()
    assert len(lines) == 2 * calls  # every line came through the pipe, whole


def test_the_watcher_does_see_an_output_that_writes_with_os_write(tmp_path):
    # the same program finds what it looks for: a listener whose os.write lets go of the GIL
    results = []
    for _ in range(3):  # the watcher must win a race to run there: one run in three is plenty
        seen, looks, _ = run_program(tmp_path, ["--listener", "user_listener:WritesWithOsWrite"])
        results.append((seen, looks))
        if seen > 0:
            return
    pytest.fail(f"the watcher never ran in the middle of a call that writes with os.write: {results}")


def test_without_hookwise_the_watcher_never_sees_the_state_set(tmp_path):
    (tmp_path / "app.py").write_text(PROGRAM.replace("import hookwise.accel\n", "").replace(
        "hookwise.accel.ACTIVE", "None").format(calls=CALLS))
    done = run_python([str(tmp_path / "app.py")], cwd=tmp_path, env=clean_env())
    assert done.returncode == 0, done.stderr
    seen, looks, _ = done.stdout.split()
    assert int(looks) >= 50 and int(seen) == 0
