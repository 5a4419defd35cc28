"""``app_caller``: the application's own line that led to a call, next to ``caller``, in every output.

A library installed in a site-packages directory runs the hooked call (as
SQLAlchemy runs a query): ``caller`` is the library's line, ``app_caller`` the
program's. Fresh processes, through the driver.
"""

import json
import os
import re

from helpers import clean_env, read_jsonl, run_driver, run_python

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)

LIBRARY = """\
import json


def run(text):
    return json.loads(text)


def query(connection, statement):
    return connection.execute(statement).fetchall()


def through_two_frames(text):
    return run(text)


def down(depth, text):
    return json.loads(text) if depth == 0 else down(depth - 1, text)
"""

PROGRAM = """\
import json, sqlite3
import libby


def main():
    libby.through_two_frames("[1]")
    json.loads("[2]")
    libby.query(sqlite3.connect(":memory:"), "select 3")


main()
"""


def _setup(tmp_path):
    library = tmp_path / "venv" / "lib" / "site-packages" / "libby"
    library.mkdir(parents=True)
    (library / "__init__.py").write_text(LIBRARY)
    (tmp_path / "prog.py").write_text(PROGRAM)
    return clean_env(PYTHONPATH=os.pathsep.join([str(library.parent), TESTS]))


HOOKS = ["--hook", "json:loads", "--hook", "sqlite3:Connection.execute"]


def _where(caller):
    return None if caller is None else (os.path.basename(caller["file"]), caller["line"], caller["function"])


def _starts_live_and_converted(tmp_path, env, hooks, program):
    """The START events of ``program`` run with ``hooks``: as jsonl wrote them live, and as a recording
    of the same run converts to jsonl (log name -> events)."""
    result = run_driver([*hooks, "--listener", "jsonl=live.jsonl", "--listener", "record=rec.bin", program],
                        cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    converted = run_python(["-m", "hookwise.convert", "rec.bin", "--to", "jsonl=conv.jsonl"], cwd=tmp_path,
                           env=clean_env(PYTHONPATH=ROOT))
    assert converted.returncode == 0, converted.stderr
    return {log: [event for event in read_jsonl(tmp_path / log) if event["event"] == "start"]
            for log in ("live.jsonl", "conv.jsonl")}


def test_jsonl_and_the_recording_name_the_programs_line_past_the_library(tmp_path):
    env = _setup(tmp_path)
    for log, starts in _starts_live_and_converted(tmp_path, env, HOOKS, "prog.py").items():
        seen = [(event["target"], _where(event["caller"]), _where(event["app_caller"])) for event in starts]
        assert seen == [
            ("json:loads", ("__init__.py", 5, "run"), ("prog.py", 6, "main")),  # two library frames away
            ("json:loads", ("prog.py", 7, "main"), ("prog.py", 7, "main")),  # the program's own call: the same
            ("sqlite3:Connection.execute", ("__init__.py", 9, "query"), ("prog.py", 8, "main")),  # a C method
        ], log


def test_console_adds_the_app_line_only_when_a_library_made_the_call(tmp_path):
    env = _setup(tmp_path)
    result = run_driver([*HOOKS, "prog.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    starts = [line for line in result.stderr.splitlines() if line.startswith(("hookwise start", "hookwise sql"))]
    assert len(starts) == 3, result.stderr
    assert re.search(r"from \S+__init__\.py:5 in run \(app: prog\.py:6 in main\)$", starts[0]), starts[0]
    assert starts[1].endswith("from prog.py:7 in main"), starts[1]
    assert starts[2].endswith("in query (app: prog.py:8 in main)"), starts[2]


def test_chrome_html_and_otel_carry_it(tmp_path):
    env = _setup(tmp_path)
    result = run_driver([*HOOKS, "--listener", "chrome=trace.json", "--listener", "html=report.html",
                         "--listener", "otel_memory_listener:MemoryOtel=spans.json", "prog.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    program = str(tmp_path / "prog.py")
    trace = json.loads((tmp_path / "trace.json").read_text())
    slices = [event for event in trace if event.get("ph") == "X"]
    assert [event["args"]["app_caller"] for event in slices] == [
        f"{program}:6 in main", f"{program}:7 in main", f"{program}:8 in main"]
    assert f"{program}:6 in main" in (tmp_path / "report.html").read_text()
    spans = json.loads((tmp_path / "spans.json").read_text())
    assert [(span["attributes"]["hookwise.app_caller.filepath"], span["attributes"]["hookwise.app_caller.lineno"])
            for span in sorted(spans, key=lambda span: span["start_ns"])] == [(program, 6), (program, 7), (program, 8)]


def test_a_run_with_no_application_frame_has_none(tmp_path):
    # python -m json.tool: every frame is the standard library's (or hookwise's)
    (tmp_path / "data.json").write_text("[1]")
    result = run_driver(["--hook", "json:load*", "--listener", "jsonl=events.jsonl", "-m", "json.tool", "data.json"],
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    starts = [event for event in read_jsonl(tmp_path / "events.jsonl") if event["event"] == "start"]
    assert starts and all(event["app_caller"] is None for event in starts), starts
    assert all(os.sep + "json" + os.sep in event["caller"]["file"] for event in starts), starts


DEEP_PROGRAM = """\
import sys
import libby

sys.setrecursionlimit(5000)
libby.down(900, "[4]")
libby.down(1200, "[5]")
"""


def test_it_looks_through_a_thousand_library_frames_at_most(tmp_path):
    # json's pure-Python decoder given deeply nested brackets (CPython 3.13's test_json, with the limit
    # raised to 20,000) made the look at every frame cost the square of the depth: at most 1,000 now,
    # which the default recursion limit never passes
    env = _setup(tmp_path)
    (tmp_path / "deep.py").write_text(DEEP_PROGRAM)
    for log, starts in _starts_live_and_converted(tmp_path, env, ["--hook", "json:loads"], "deep.py").items():
        assert [(_where(event["caller"]), _where(event["app_caller"])) for event in starts] == [
            (("__init__.py", 17, "down"), ("deep.py", 5, "<module>")),  # 900 library frames out
            (("__init__.py", 17, "down"), None),  # 1,200: past the reach
        ], log


def test_it_is_read_while_the_call_is_reported_like_caller(tmp_path):
    # a listener that keeps the Call reads app_caller later: what it read then, or a clear error
    (tmp_path / "keeper.py").write_text(
        "kept = []\n\nclass Keeper:\n    def start(self, call):\n        kept.append(call)\n"
        "        if len(kept) == 1:\n            call.app_caller\n\n"
        "import atexit\n\n@atexit.register\ndef show():\n    print('first', kept[0].app_caller.line)\n"
        "    try:\n        kept[1].app_caller\n    except RuntimeError as exc:\n        print('second', exc)\n")
    (tmp_path / "prog.py").write_text("import json\njson.loads('1')\njson.loads('2')\n")
    result = run_driver(["--hook", "json:loads", "--listener", "keeper:Keeper", "prog.py"], cwd=tmp_path,
                        env=clean_env(PYTHONPATH=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "first 2"
    assert result.stdout.splitlines()[1].startswith("second Call.app_caller is only known while a listener handles")



SHAPES = """\
import json, os, sqlite3, threading
import libby


class Box:
    def get(self, n):
        return n

    @staticmethod
    def make(n):
        return Box()


def leaf(n):
    return n


def gen(n):
    yield leaf(n)


def rec(n):
    return leaf(n) if n == 0 else rec(n - 1)


def main():
    for n in range(3):  # the same places again: answered from the places already seen
        leaf(n)
        rec(3)
        list(map(leaf, [n]))  # through a C function: the caller is the line that called map
        sorted([2, 1], key=leaf)
        list(gen(n))
        Box.make(n).get(n)
        (lambda: leaf(n))()
        libby.through_two_frames("[1]")  # a library's call of json.loads, then a hooked one of ours
        json.loads("[2]")
        sqlite3.connect(":memory:").execute("select 1")  # a C method: hookwise's wrapper kept the frame
        sqlite3.connect(":memory:").cursor().execute("select 2")  # one the program calls itself
        libby.query(sqlite3.connect(":memory:"), "select 3")  # one a library calls
        os.getcwd()  # a replaced builtin
    thread = threading.Thread(target=rec, args=(2,))
    thread.start()
    thread.join()


main()
"""

SAME_ANSWER = """\
import hookwise.accel
import hookwise.call

seen = {"checked": 0, "different": []}


class SameAnswer:
    # caller and app_caller as every listener reads them (in C with the accelerator), against hookwise.call's
    # Python answer read from the same frames
    def start(self, call):
        got = (call.caller, call.app_caller)
        expected = hookwise.call.callers_of(call)
        seen["checked"] += 1
        if got != expected:
            seen["different"].append((call.target, got, expected))

    def close(self):
        print(seen["checked"], hookwise.accel.ACTIVE, seen["different"][:3])
"""


def test_the_accelerator_answers_as_the_python_reference_for_every_shape_of_call(tmp_path):
    env = _setup(tmp_path)
    env["PYTHONPATH"] += os.pathsep + str(tmp_path)
    (tmp_path / "shapes.py").write_text(SHAPES)
    (tmp_path / "same_answer.py").write_text(SAME_ANSWER)
    result = run_driver(["--hook", "__main__:*", "--hook", "json:loads", "--hook", "sqlite3:Connection.execute",
                         "--hook", "sqlite3:Cursor.execute", "--hook", "os:getcwd",
                         "--listener", "same_answer:SameAnswer", "shapes.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    checked, accelerated, different = result.stdout.split(" ", 2)
    assert accelerated == str(not os.environ.get("HOOKWISE_PURE_PYTHON")), "the implementation under test ran"
    assert int(checked) > 50 and different.strip() == "[]", result.stdout


REQUESTS = """\
import http.client, sqlite3, threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import flask


def bare(environ, start_response):
    sqlite3.connect(":memory:").execute("select 1")  # a call made while the request is served
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", 0, bare, handler_class=Quiet)


def ask():
    connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
    connection.request("GET", "/bare")
    connection.getresponse().read()


client = threading.Thread(target=ask)
client.start()
server.handle_request()  # one request: the loop is bounded
client.join()

app = flask.Flask("shapes")


@app.route("/user/<name>")
def user(name):
    sqlite3.connect(":memory:").execute("select 2")
    return name


for name in ("a", "b"):  # the flask test client's hand-over, twice: the second from the places seen
    app.test_client().get(f"/user/{name}")
"""


def test_the_accelerator_answers_as_the_python_reference_for_requests(tmp_path):
    # a request's caller is the server's line that handed it over (web.RequestSite.hooked_frame's walk)
    env = _setup(tmp_path)
    env["PYTHONPATH"] += os.pathsep + str(tmp_path)
    (tmp_path / "requests_shapes.py").write_text(REQUESTS)
    (tmp_path / "same_answer.py").write_text(SAME_ANSWER)
    result = run_driver(["--preset", "web", "--hook", "sqlite3:Connection.execute", "--listener",
                         "same_answer:SameAnswer", "requests_shapes.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    checked, accelerated, different = result.stdout.split(" ", 2)
    assert accelerated == str(not os.environ.get("HOOKWISE_PURE_PYTHON")), "the implementation under test ran"
    assert int(checked) == 6 and different.strip() == "[]", result.stdout
