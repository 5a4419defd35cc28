"""Built-in listeners and user listeners, end to end through the driver."""

import json
import os
import re
import subprocess
import textwrap

import pytest

from helpers import ROOT, clean_env, read_jsonl, run_driver


def write(path, text):
    path.write_text(textwrap.dedent(text))


THREADED = """
import threading

def work(n):
    if n % 50 == 7:
        raise ValueError(n)
    return n * 2

def worker(offset):
    for n in range(offset, offset + 500):
        try:
            work(n)
        except ValueError:
            pass

threads = [threading.Thread(target=worker, args=(i * 1000,), name=f"worker-{i}") for i in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
"""


def test_jsonl_from_many_threads_is_whole_lines_with_every_pair(tmp_path):
    write(tmp_path / "app.py", THREADED)
    result = run_driver(["--hook", "__main__:work", "--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    events = read_jsonl(tmp_path / "events.jsonl")  # every line parses: nothing torn or interleaved
    assert len(events) == 4000
    starts = {e["call_id"]: e for e in events if e["event"] == "start"}
    finished = {e["call_id"]: e for e in events if e["event"] in ("end", "error")}
    assert starts.keys() == finished.keys() and len(starts) == 2000
    for call_id, start in starts.items():
        assert finished[call_id]["target"] == start["target"] == "__main__:work"
        assert finished[call_id]["thread_id"] == start["thread_id"]
        assert start["thread_name"].startswith("worker-")
    errors = [e for e in finished.values() if e["event"] == "error"]
    assert len(errors) == 40 and all(e["exception_type"] == "ValueError" for e in errors)
    assert len({e["pid"] for e in events}) == 1 and events[0]["pid"] != os.getpid()


GIL_WATCH = """
import sys, threading, time
def work(n):
    return n
progress = [0]
def spin():
    while True:
        progress[0] += 1
sys.setswitchinterval(0.5)  # this thread runs only when the GIL is let go, or after half a second
threading.Thread(target=spin, daemon=True).start()
time.sleep(0.01)
before = progress[0]
for i in range(50):  # 100 lines: they fit in a pipe's buffer, so a FIFO never makes us wait
    work(i)
    if progress[0] != before:
        break
import hookwise.accel
print(progress[0] - before, hookwise.accel.ACTIVE)
"""


@pytest.mark.parametrize("target", ["file", "fifo"])
def test_jsonl_writes_let_no_other_thread_run_in_the_middle_of_a_call(tmp_path, target):
    # a write that lets go of the GIL changes how the program's threads interleave
    # (more-itertools' callback_iter test then lost its race one run in four).
    # A promise of the C accelerator (the suite runner always builds it), so the child
    # uses it in both runs; the pure-Python runtime writes with os.write, which lets go
    # of the GIL (README, known limits), and whether another thread then runs is chance.
    write(tmp_path / "app.py", GIL_WATCH)
    path = tmp_path / "events.jsonl"
    reader = None
    if target == "fifo":
        os.mkfifo(path)
        reader = subprocess.Popen(["cat", str(path)], stdout=subprocess.DEVNULL)
    env = clean_env()
    env.pop("HOOKWISE_PURE_PYTHON", None)
    try:
        result = run_driver(["--hook", "__main__:work", "--listener", f"jsonl={path}", "app.py"], cwd=tmp_path, env=env)
    finally:
        if reader is not None:
            reader.wait(timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "True"]
    if target == "file":
        assert len(read_jsonl(path)) == 100


def test_jsonl_reprs_are_bounded_and_never_fail(tmp_path):
    write(
        tmp_path / "app.py",
        """
        class Hostile:
            def __repr__(self):
                raise RuntimeError("no repr for you")

        def take(value, big):
            return Hostile()

        take(Hostile(), "x" * 100_000)
        """,
    )
    result = run_driver(["--hook", "__main__:take", "--listener", "jsonl=events.jsonl", "--user-reprs", "app.py"],
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    start, end = read_jsonl(tmp_path / "events.jsonl")
    assert start["args"][0] == "<Hostile object; repr() raised RuntimeError>"
    assert len(start["args"][1]) <= 200 and start["args"][1].endswith("...")
    assert end["result"] == "<Hostile object; repr() raised RuntimeError>"


def test_the_console_listener_prints_one_line_per_event(tmp_path):
    write(
        tmp_path / "app.py",
        """
        def divide(a, b):
            return a / b
        divide(6, 3)
        try:
            divide(1, 0)
        except ZeroDivisionError:
            pass
        """,
    )
    result = run_driver(["--hook", "__main__:divide", "app.py"], cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert len(lines) == 4
    assert lines[0] == "hookwise start #1 __main__:divide(a=6, b=3) [MainThread] from app.py:4 in <module>"
    assert lines[1].startswith("hookwise end   #1 __main__:divide -> 2.0 (")
    assert lines[2] == "hookwise start #2 __main__:divide(a=1, b=0) [MainThread] from app.py:6 in <module>"
    assert lines[3].startswith("hookwise error #2 __main__:divide !! ZeroDivisionError: division by zero (")


def test_a_user_listener_class_by_import_path(tmp_path):
    write(
        tmp_path / "mylisteners.py",
        """
        import json
        class Tally:
            def __init__(self, path="tally.json"):
                self.path, self.counts = path, {}
            def end(self, call, result):
                self.counts[call.target] = self.counts.get(call.target, 0) + 1
            def close(self):
                with open(self.path, "w") as handle:
                    json.dump(self.counts, handle)
        INSTANCE = Tally("instance.json")
        """,
    )
    write(tmp_path / "app.py", "def f(): pass\nfor _ in range(3): f()\n")
    result = run_driver(["--hook", "__main__:f", "--listener", "mylisteners:Tally=counted.json",
                         "--listener", "mylisteners:INSTANCE", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "counted.json").read_text()) == {"__main__:f": 3}
    assert json.loads((tmp_path / "instance.json").read_text()) == {"__main__:f": 3}


def test_bad_user_listeners_are_refused_before_the_program(tmp_path):
    write(tmp_path / "mylisteners.py", "class Explodes:\n    def __init__(self):\n        raise OSError('no disk')\n"
                                       "class Useless:\n    pass\n")
    write(tmp_path / "app.py", "print('ran')\n")
    for spec, message in (("mylisteners:Explodes", "could not be created: OSError: no disk"),
                          ("mylisteners:Useless", "none of the methods start, end, error"),
                          ("mylisteners:Missing", "has no attribute 'Missing'")):
        result = run_driver(["--listener", spec, "app.py"], cwd=tmp_path)
        assert result.returncode == 2 and result.stdout == ""
        assert message in result.stderr and len(result.stderr.splitlines()) == 1


BROKEN_LISTENERS = """
import sys

class Broken:
    def start(self, call):
        raise ZeroDivisionError('always')

def start(call):
    raise ZeroDivisionError('always')

def end(call, result):
    raise ZeroDivisionError('always')

class Bag:
    pass

bag = Bag()  # an object whose methods are plain functions stored on it
bag.start, bag.end = start, end
this_module = sys.modules[__name__]

class Mute(Exception):
    def __str__(self):
        raise RuntimeError('cannot say')

class Tongueless:
    def end(self, call, result):
        raise Mute()
"""


@pytest.mark.parametrize("spec, described, message", [
    ("mylisteners:Broken", "mylisteners.Broken", "ZeroDivisionError: always"),
    ("mylisteners:this_module", "mylisteners", "ZeroDivisionError: always"),
    ("mylisteners:bag", "mylisteners.Bag", "ZeroDivisionError: always"),
    ("mylisteners:Tongueless", "mylisteners.Tongueless", "Mute: (its message could not be read)"),
])
def test_a_listener_that_always_fails_is_reported_once_and_changes_nothing(tmp_path, spec, described, message):
    write(tmp_path / "mylisteners.py", BROKEN_LISTENERS)
    write(tmp_path / "app.py", "import sys\ndef f(n): return n\nprint(sum(f(i) for i in range(100)))\nsys.exit(5)\n")
    plain = run_driver(["--hook", "__main__:f", "--listener", "jsonl=/dev/null", "app.py"], cwd=tmp_path)
    result = run_driver(["--hook", "__main__:f", "--listener", spec, "app.py"], cwd=tmp_path)
    assert result.returncode == plain.returncode == 5
    assert result.stdout == plain.stdout == "4950\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and f"listener {described} failed in " in lines[0] and message in lines[0], lines


def test_the_guard_example_blocks_chained_shell_commands(tmp_path):
    write(
        tmp_path / "app.py",
        """
        import os
        print("safe:", os.system("true"))
        try:
            os.system("true; echo pwned")
        except PermissionError as exc:
            print("refused:", type(exc).__name__)
        """,
    )
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = run_driver(["--hook", "os:system", "--listener", "examples.guard:CommandGuard", "--listener", "jsonl=e.jsonl",
                         "app.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["safe: 0", "refused: Blocked"]
    assert "pwned" not in result.stdout
    events = [(e["event"], e.get("exception_type")) for e in read_jsonl(tmp_path / "e.jsonl")]
    assert events == [("start", None), ("end", None), ("start", None), ("error", "hookwise.listener.Blocked")]


def test_an_uncaught_block_shows_no_hookwise_frame(tmp_path):
    write(tmp_path / "app.py", "import os\nos.system('a && b')\n")
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = run_driver(["--hook", "os:system", "--listener", "examples.guard:CommandGuard", "app.py"], cwd=tmp_path, env=env)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip(" ~^")]  # 3.13 underlines the call
    assert lines == [
        "Traceback (most recent call last):",
        f'  File "{tmp_path / "app.py"}", line 2, in <module>',
        "    os.system('a && b')",
        "hookwise.listener.Blocked: hookwise guard refused posix:system('a && b'): it chains commands",
    ]


def test_the_demo_with_the_embedded_defaults(tmp_path):
    plain_run = run_driver(["--listener", "jsonl=" + str(tmp_path / "e.jsonl"), os.path.join(ROOT, "examples", "demo.py"), "a1"],
                           cwd=tmp_path)
    assert plain_run.returncode == 0, plain_run.stderr
    starts = [e for e in read_jsonl(tmp_path / "e.jsonl") if e["event"] == "start"]
    targets = [e["target"] for e in starts]
    assert targets.count("subprocess:Popen.__init__") == 2
    assert targets.count("posix:system") == 2  # one direct, one from the exec'd code
    assert "builtins:exec" in targets
    opened = [e["args"][0] for e in starts if e["target"] == "io:open"]
    assert any("hookwise-demo.txt" in path for path in opened)
    shell = [e for e in starts if e["target"] == "subprocess:Popen.__init__"][1]
    assert shell["args"][1] == "'echo hello from a shell command'" and shell["args"][9] == "True"  # shell=True
    assert re.fullmatch(r"<subprocess\.Popen object at 0x[0-9a-f]+>", shell["args"][0])  # not a half-built repr


def test_the_self_of_an_init_is_shown_without_running_its_repr(tmp_path):
    # When __init__ starts, its object is half built: its class's repr would read
    # attributes that do not exist yet (the demo showed subprocess.Popen's as
    # "repr() raised AttributeError"), even where the program's reprs may run.
    write(
        tmp_path / "app.py",
        """
        class Point:
            def __init__(self, x):
                self.x = x
            def __repr__(self):
                return f"Point({self.x})"
            def moved(self, dx):
                return Point(self.x + dx)
        Point(1).moved(2)
        """,
    )
    result = run_driver(["--user-reprs", "--hook", "__main__:Point.*", "--listener", "jsonl=e.jsonl",
                         "--listener", "console", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    starts = {(e["target"], e["call_id"]): e["args"] for e in read_jsonl(tmp_path / "e.jsonl") if e["event"] == "start"}
    built = [args for (target, _), args in starts.items() if target == "__main__:Point.__init__"]
    assert len(built) == 2
    for args in built:
        assert re.fullmatch(r"<__main__\.Point object at 0x[0-9a-f]+>", args[0])
    assert starts[("__main__:Point.moved", 2)] == ["Point(1)", "2"]
    assert re.search(r"Point\.__init__\(self=<__main__\.Point object at 0x[0-9a-f]+>, x=1\)", result.stderr)
    assert "Point.moved(self=Point(1), dx=2)" in result.stderr
    assert "raised" not in result.stderr


def test_the_demo_with_its_toml_hooks(tmp_path):
    config = os.path.join(ROOT, "examples", "hookwise.toml")
    result = run_driver(["--config", config, "--listener", "jsonl=" + str(tmp_path / "e.jsonl"),
                         os.path.join(ROOT, "examples", "demo.py")], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    events = read_jsonl(tmp_path / "e.jsonl")
    user = [(e["event"], e["target"]) for e in events if e["target"].startswith("__main__")]
    assert user == [
        ("start", "__main__:Test1.func_test_user_code"), ("end", "__main__:Test1.func_test_user_code"),
        ("start", "__main__:Test1.func_test_user_code"), ("error", "__main__:Test1.func_test_user_code"),
        ("start", "__main__:Test1.Nested.scale"), ("end", "__main__:Test1.Nested.scale"),
        ("start", "__main__:func_test_user_code_non_class"), ("end", "__main__:func_test_user_code_non_class"),
    ]
    first = next(e for e in events if e["target"] == "__main__:Test1.func_test_user_code")
    assert first["args"] == ["<__main__.Test1 object at " + first["args"][0].split(" at ")[1], "10", "2", "1", "1"]
    assert first["kwargs"] == {"name": "'Tester Name'"}


def test_secrets_are_redacted_and_values_bounded_in_jsonl_and_console(tmp_path):
    write(
        tmp_path / "app.py",
        """
        def login(user, password, *, api_key=None, headers=None, note=""):
            return {"session": "s3cr3t-session", "user": user}
        login("ada", "hunter2", api_key="k-123", headers={"Authorization": "Bearer t0k3n"}, note="n" * 500)
        """,
    )
    result = run_driver(["--hook", "__main__:login", "--listener", "jsonl=e.jsonl", "--listener", "console",
                         "--redact", "note", "--repr-limit", "40", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    start, end = read_jsonl(tmp_path / "e.jsonl")
    assert start["args"] == ["'ada'", "***"]
    assert start["kwargs"] == {"api_key": "***", "headers": "{'Authorization': '***'}", "note": "***"}
    assert end["result"] == "{'session': '***', 'user': 'ada'}"
    for secret in ("hunter2", "k-123", "t0k3n", "s3cr3t"):
        assert secret not in result.stderr and secret not in (tmp_path / "e.jsonl").read_text()
    assert "password=***" in result.stderr and "api_key=***" in result.stderr


def test_the_redaction_list_is_configurable(tmp_path):
    write(tmp_path / "hookwise.toml", 'hooks = ["__main__:f"]\nlisteners = ["jsonl=e.jsonl"]\nredact = ["pin"]\nrepr_limit = 10\n')
    write(tmp_path / "app.py", "def f(pin, password): return 'x' * 50\nf(1234, 'visible-now')\n")
    result = run_driver(["app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    start, end = read_jsonl(tmp_path / "e.jsonl")
    assert start["args"] == ["***", "'visibl..."]
    assert end["result"] == "'xxxxxx..." and len(end["result"]) == 10


def test_a_listener_plugin_is_found_through_its_entry_point(tmp_path):
    site = tmp_path / "site"
    (site / "tally_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "tally_plugin-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: tally-plugin\nVersion: 1.0\n")
    (site / "tally_plugin-1.0.dist-info" / "entry_points.txt").write_text("[hookwise.listeners]\ntally = tally_plugin:Tally\n")
    write(site / "tally_plugin.py", """
        class Tally:
            def __init__(self, path="tally.txt"):
                self.path, self.count = path, 0
            def end(self, call, result):
                self.count += 1
            def close(self):
                with open(self.path, "w") as handle:
                    handle.write(str(self.count))
    """)
    write(tmp_path / "app.py", "def f(): pass\nfor _ in range(4): f()\n")
    env = dict(os.environ, PYTHONPATH=str(site))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    result = run_driver(["--hook", "__main__:f", "--listener", "tally=counted.txt", "app.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "counted.txt").read_text() == "4"
    result = run_driver(["--hook", "__main__:f", "--listener", "nosuchplugin", "app.py"], cwd=tmp_path, env=env)
    assert result.returncode == 2 and "unknown listener 'nosuchplugin'" in result.stderr


def test_per_target_listeners_from_the_config_file(tmp_path):
    write(tmp_path / "hookwise.toml", """
        hooks = [
            "__main__:work",
            { target = "os:system", listeners = ["examples.guard:CommandGuard", "jsonl=guarded.jsonl"] },
        ]
        listeners = ["jsonl=all.jsonl"]
    """)
    write(tmp_path / "app.py", """
        import os
        def work():
            return os.system("true")
        work()
        try:
            os.system("true && echo pwned")
        except PermissionError:
            print("blocked")
    """)
    env = dict(os.environ, PYTHONPATH=ROOT)
    result = run_driver(["app.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "blocked"
    guarded = read_jsonl(tmp_path / "guarded.jsonl")
    assert {e["target"] for e in guarded} == {"posix:system"} and len(guarded) == 4
    everything = read_jsonl(tmp_path / "all.jsonl")
    assert {e["target"] for e in everything} == {"posix:system", "__main__:work"}


def test_showing_a_value_never_runs_the_programs_repr_by_default(tmp_path):
    write(
        tmp_path / "app.py",
        """
        import dataclasses, collections, enum, pathlib
        effects = []

        class Lazy:
            def __repr__(self):
                effects.append("repr ran")  # an ORM would run a query here
                return "Lazy()"

        @dataclasses.dataclass
        class Point:
            x: int
            secret_token: str
            tag: Lazy

        Pair = collections.namedtuple("Pair", "left right")
        Color = enum.Enum("Color", "RED")

        def take(*values):
            return values

        take(Lazy(), Point(1, "hidden", Lazy()), Pair(1, Lazy()), Color.RED, pathlib.PurePosixPath("/tmp"))
        print(effects)
        """,
    )
    result = run_driver(["--hook", "__main__:take", "--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # no repr of the program's ran
    start = read_jsonl(tmp_path / "events.jsonl")[0]
    lazy, point, pair, color, path = start["args"]
    assert lazy.startswith("<__main__.Lazy object at 0x")
    assert point.startswith("Point(x=1, secret_token='***', tag=<__main__.Lazy object at 0x")
    assert pair.startswith("Pair(left=1, right=<__main__.Lazy object at 0x")
    assert color == "<Color.RED: 1>" and path == "PurePosixPath('/tmp')"  # standard-library reprs run
    result = run_driver(["--hook", "__main__:take", "--listener", "jsonl=events.jsonl", "--user-reprs", "app.py"],
                        cwd=tmp_path)
    assert result.stdout.strip() == str(['repr ran'] * 6)  # three values, in the start's args and the end's result
    assert read_jsonl(tmp_path / "events.jsonl")[0]["args"][0] == "Lazy()"


# Stands in for a wall-clock step (NTP, a virtual machine resumed): CLOCK_REALTIME
# jumps by whatever the program writes into realtime_step_ns; the monotonic clock does not.
REALTIME_STEP_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
long long realtime_step_ns = 0;
int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *) = 0;
    if (!real) real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
    int rc = real(id, ts);
    if (rc == 0 && id == CLOCK_REALTIME && realtime_step_ns) {
        long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + realtime_step_ns;
        ts->tv_sec = ns / 1000000000LL;
        ts->tv_nsec = ns % 1000000000LL;
    }
    return rc;
}
"""

STEPPED_CLOCK_APP = """
import ctypes, time
def work():
    return time.time_ns()
unstepped = work()
ctypes.c_longlong.in_dll(ctypes.CDLL(None), "realtime_step_ns").value = 3600 * 10**9
before = time.time_ns()
inside = work()
print(unstepped, before, inside, time.time_ns())
"""


def test_event_times_follow_the_wall_clock_when_it_is_stepped(tmp_path):
    # CI caught a fixed wall-minus-monotonic offset stamping a call 64 µs before
    # a time.time_ns() read ahead of it, after the virtual machine's clock moved
    (tmp_path / "step.c").write_text(REALTIME_STEP_SHIM)
    subprocess.run(["cc", "-shared", "-fPIC", "-o", str(tmp_path / "step.so"), str(tmp_path / "step.c"), "-ldl"], check=True)
    write(tmp_path / "app.py", STEPPED_CLOCK_APP)
    env = clean_env(LD_PRELOAD=str(tmp_path / "step.so"))
    result = run_driver(["--hook", "__main__:work", "--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    unstepped, before, inside, after = map(int, result.stdout.split())
    assert before - unstepped >= 3600 * 10**9  # the wall clock did jump an hour
    start, end = read_jsonl(tmp_path / "events.jsonl")[2:]
    assert (start["event"], end["event"]) == ("start", "end")
    assert before <= start["ts_ns"] <= inside <= end["ts_ns"] <= after
