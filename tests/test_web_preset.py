"""The web preset: every incoming request of a WSGI or ASGI application is a call of kind
``request`` (``web:request``), and every call made while serving it carries its id.

Fresh processes through the driver, against the apps in tests/fixtures/webapps:
Flask, Django and FastAPI through their test clients, in both import orders,
then real servers (gunicorn, uvicorn, wsgiref) on a Unix socket or 127.0.0.1
under bounded request loops, then every output."""

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from helpers import DRIVER, FIXTURES, ROOT, clean_env, read_jsonl, run_driver, run_python

APPS = os.path.join(FIXTURES, "webapps")
ORDERS = ["imported-after-install", "imported-before-install"]
# A listener module imported before the hooks exist: with it, the frameworks and servers are loaded "early".
EARLY = ("import flask, werkzeug.test, django, django.test.client, fastapi, starlette.testclient, "
         "wsgiref.handlers, gunicorn.workers.base, uvicorn.config, sqlite3\n\n"
         "class Nothing:\n    def end(self, call, result):\n        pass\n")


def env_for(tmp_path, **extra):
    # the checkout first: ``python -m hookwise.convert`` is this one, not an installed copy
    return clean_env(PYTHONPATH=os.pathsep.join((ROOT, APPS, str(tmp_path))), APP_DATABASE=str(tmp_path / "app.db"),
                     **extra)


def run_hooked(tmp_path, program, *args, order="imported-after-install", expect_same=True):
    """Run ``program`` plainly and under ``--preset web --preset sql``; (result, events)."""
    (tmp_path / "program.py").write_text(program)
    (tmp_path / "early.py").write_text(EARLY)
    log = tmp_path / "events.jsonl"
    early = ["--listener", "early:Nothing"] if order == "imported-before-install" else []
    env = env_for(tmp_path)
    result = run_driver(["--preset", "web", "--preset", "sql", "--listener", f"jsonl={log}", "--listener", "console",
                         *early, *args, "program.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    if expect_same:
        (tmp_path / "app.db").unlink(missing_ok=True)
        plain = run_python(["program.py"], cwd=tmp_path, env=env)
        assert result.stdout == plain.stdout
    return result, read_jsonl(log)


def requests_in(events):
    """[(start, end or error)] of the web:request calls, in order."""
    finished = {event["call_id"]: event for event in events if event["event"] != "start"}
    return [(event, finished.get(event["call_id"])) for event in events
            if event["event"] == "start" and event["target"] == "web:request"]


def made_for(events, request_id, target_prefix="sqlite3:"):
    return [event for event in events if event["target"].startswith(target_prefix) and
            event.get("request_id") == request_id]


FLASK_CLIENT = """\
from flask_app import app

client = app.test_client()
client.set_cookie("session", "zz9")
print(client.get("/user/bob?token=abc123&page=2",
                 headers={"Authorization": "Bearer s3cret", "User-Agent": "tests"}).status_code)
print(client.get("/boom").status_code)
print(client.get("/nope").status_code)
print(client.get("/stream").get_data(as_text=True))
"""


@pytest.mark.parametrize("order", ORDERS)
def test_flask_requests_through_the_test_client(tmp_path, order):
    result, events = run_hooked(tmp_path, FLASK_CLIENT, order=order)
    served = requests_in(events)
    assert [start["request"]["path"] for start, _ in served] == ["/user/bob", "/boom", "/nope", "/stream"]
    (user, user_end), (boom, boom_error), (_, nope_end), (stream, stream_end) = served

    assert user["kind"] == "request"
    assert user["request"] == {
        "method": "GET", "path": "/user/bob", "query": "token=***&page=2", "route": None, "client": "127.0.0.1",
        "headers": {"host": "localhost", "user-agent": "tests", "authorization": "***", "cookie": "***"},
    }
    assert user_end["event"] == "end"
    assert user_end["response"] == {"status": 200, "size": len("hello bob, 1 time(s)")}
    assert user_end["request"] == {"route": "/user/<name>"}
    assert "request_id" not in user and "request_id" not in user_end
    statements = made_for(events, user["call_id"])
    assert [event["sql"]["statement"] for event in statements if event["event"] == "start"
            and not event["sql"]["statement"].startswith("create")] == [
        "insert into users values (?)", "select name from users where name = ?"]
    assert {event["event"] for event in statements} == {"start", "end"}  # the ends carry it too

    assert boom_error["event"] == "error"
    assert boom_error["exception_type"] == "ZeroDivisionError"
    assert boom_error["response"]["status"] == 500
    assert boom_error["request"] == {"route": "/boom"}
    assert nope_end["event"] == "end" and nope_end["response"]["status"] == 404 and "request" not in nope_end

    # the streamed body's statements run after the view returned: still the request's
    assert stream_end["response"] == {"status": 200, "size": len("row 0\nrow 1\nrow 2\n")}
    assert [event["sql"]["params"] for event in made_for(events, stream["call_id"]) if event["event"] == "start"
            and event["sql"]["statement"] == "select ?"] == ["(0,)", "(1,)", "(2,)"]

    text = (tmp_path / "events.jsonl").read_text() + result.stderr
    for secret in ("abc123", "s3cret", "zz9"):
        assert secret not in text
    assert re.search(r"^hookwise request #\d+ GET /user/bob\?token=\*\*\*&page=2 -> 200 \(\d.*\) route=/user/<name>$",
                     result.stderr, re.M), result.stderr
    assert re.search(r"^hookwise sql #\d+ insert into users values \(\?\) params=\('bob',\) .* request #%d from "
                     % user["call_id"], result.stderr, re.M), result.stderr
    assert re.search(r"^hookwise request #\d+ GET /boom -> 500 !! ZeroDivisionError: division by zero", result.stderr,
                     re.M)


FASTAPI_CLIENT = """\
from fastapi.testclient import TestClient
from fastapi_app import app

client = TestClient(app, raise_server_exceptions=False)
print(client.get("/items/3?api_key=k-77").json())
print(client.get("/sync/hi").json())
print(client.get("/missing").status_code)
print(client.get("/boom").status_code)
"""


@pytest.mark.parametrize("order", ORDERS)
def test_fastapi_requests_and_the_tasks_they_create(tmp_path, order):
    result, events = run_hooked(tmp_path, FASTAPI_CLIENT, order=order)
    served = requests_in(events)
    assert [start["request"]["path"] for start, _ in served] == ["/items/3", "/sync/hi", "/missing", "/boom"]
    (items, items_end), (sync, sync_end), (_, missing_end), (_, boom_error) = served
    assert items["request"]["query"] == "api_key=***"
    assert items_end["response"]["status"] == 200 and items_end["request"] == {"route": "/items/{item_id}"}
    # the handler's own task, create_task and gather: four statements, all the request's, in other tasks too
    looked_up = [event for event in made_for(events, items["call_id"]) if event["event"] == "start"]
    assert len(looked_up) == 4
    assert len({event["task"] for event in looked_up}) >= 3
    # a sync endpoint runs in a worker thread: the context goes with it
    in_thread = [event for event in made_for(events, sync["call_id"]) if event["event"] == "start"]
    assert len(in_thread) == 1 and in_thread[0]["thread_id"] != sync["thread_id"]
    assert sync_end["request"] == {"route": "/sync/{word}"}
    assert missing_end["event"] == "end" and missing_end["response"]["status"] == 404
    assert boom_error["event"] == "error" and boom_error["exception_type"] == "ValueError"
    assert boom_error["response"]["status"] == 500
    assert "k-77" not in (tmp_path / "events.jsonl").read_text() + result.stderr
    # nothing made outside a request claims one
    assert all("request_id" not in event for event in events if event["target"] == "web:request")


DJANGO_CLIENT = """\
import django_app
from django.test import Client

client = Client(raise_request_exception=False)
print(client.get("/user/bob", {"password": "pw-1"}).content)
print(client.get("/boom").status_code)
print(client.get("/nope").status_code)
"""


@pytest.mark.parametrize("order", ORDERS)
def test_django_requests_through_the_test_client(tmp_path, order):
    result, events = run_hooked(tmp_path, DJANGO_CLIENT, order=order)
    (user, user_end), (_, boom_error), (_, nope_end) = requests_in(events)
    assert user["request"]["query"] == "password=***"
    assert user_end["response"] == {"status": 200, "size": len("hello bob (3)")}
    assert user_end["request"] == {"route": "/user/<str:name>"}
    assert len(made_for(events, user["call_id"])) == 2
    assert boom_error["event"] == "error" and boom_error["exception_type"] == "ZeroDivisionError"
    assert boom_error["response"]["status"] == 500 and boom_error["request"] == {"route": "/boom"}
    assert nope_end["event"] == "end" and nope_end["response"]["status"] == 404


# -- real servers ------------------------------------------------------------------


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def _get(address, path):
    connection = UnixHTTPConnection(address) if isinstance(address, str) else http.client.HTTPConnection(
        *address, timeout=10)
    try:
        connection.request("GET", path, headers={"X-Request-Id": "r-1"})
        answer = connection.getresponse()
        return answer.status, answer.read()
    finally:
        connection.close()


def _wait_for(address, process, log_path, deadline=60):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert process.poll() is None, log_path.read_text()
        try:
            return _get(address, "/ready-check")
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"the server did not answer in {deadline} s: {log_path.read_text()}")


SERVERS = {
    # name: (driver arguments after the options, the app's paths and what they answer)
    "gunicorn-sync-flask": (["-m", "gunicorn", "-w", "1", "-b", "unix:{sock}", "flask_app:app"],
                            [("/user/ann", 200, "/user/<name>", 4)]),
    "gunicorn-gthread-flask": (["-m", "gunicorn", "-w", "1", "-k", "gthread", "--threads", "2", "-b", "unix:{sock}",
                                "flask_app:app"], [("/user/ann", 200, "/user/<name>", 4)]),
    "gunicorn-sync-django": (["-m", "gunicorn", "-w", "1", "-b", "unix:{sock}", "django_app:application"],
                             [("/user/ann", 200, "/user/<str:name>", 1)]),
    "gunicorn-bare-wsgi": (["-m", "gunicorn", "-w", "1", "-b", "unix:{sock}", "bare_apps:wsgi"],
                           [("/any/path", 201, None, 1)]),
    "uvicorn-fastapi": (["-m", "uvicorn", "--uds", "{sock}", "--log-level", "warning", "fastapi_app:app"],
                        [("/items/7", 200, "/items/{item_id}", 4)]),
    "uvicorn-bare-asgi": (["-m", "uvicorn", "--uds", "{sock}", "--log-level", "warning", "bare_apps:asgi"],
                          [("/any/path", 202, None, 1)]),
}


@pytest.mark.parametrize("server", sorted(SERVERS))
def test_requests_served_by_a_real_server(tmp_path, server):
    command, expected = SERVERS[server]
    sock = str(tmp_path / "server.sock")
    log = tmp_path / "events.jsonl"
    output = tmp_path / "server.log"
    with open(output, "w") as handle:
        process = subprocess.Popen(
            [sys.executable, DRIVER, "--preset", "web", "--preset", "sql", "--listener", f"jsonl={log}",
             *[part.format(sock=sock) for part in command]],
            cwd=tmp_path, env=env_for(tmp_path), stdout=handle, stderr=subprocess.STDOUT)
    try:
        _wait_for(sock, process, output)
        answers = [_get(sock, path) for path, *_ in expected for _ in range(3)]  # a bounded request loop
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert [status for status, _ in answers] == [status for _, status, *_ in expected for _ in range(3)]
    events = read_jsonl(log)
    served = [(start, end) for start, end in requests_in(events) if start["request"]["path"] != "/ready-check"]
    assert len(served) == 3 * len(expected), output.read_text()
    for (start, end), (status, body) in zip(served, answers):
        path, expected_status, route, statements = next(item for item in expected if item[0] == start["request"]["path"])
        assert start["request"]["method"] == "GET"
        assert start["request"]["headers"]["x-request-id"] == "r-1"
        assert end["event"] == "end", end
        assert end["response"] == {"status": expected_status, "size": len(body)}
        assert end.get("request", {}).get("route") == route
        made = [event for event in made_for(events, start["call_id"]) if event["event"] == "start"]
        assert len(made) == statements, made


WSGIREF_SERVER = """\
import sys
from wsgiref.simple_server import WSGIRequestHandler, make_server

import bare_apps

class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass

server = make_server("127.0.0.1", 0, bare_apps.wsgi, handler_class=Quiet)
print(server.server_port, flush=True)
for _ in range(int(sys.argv[1])):  # a bounded request loop
    server.handle_request()
"""


def test_requests_served_by_wsgiref_with_the_process_environment_kept_out(tmp_path):
    (tmp_path / "server.py").write_text(WSGIREF_SERVER)
    log = tmp_path / "events.jsonl"
    env = env_for(tmp_path, DATABASE_URL="postgresql://app:hunter2@db/shop", SERVICE_API_KEY="sk-live-999")
    process = subprocess.Popen(
        [sys.executable, DRIVER, "--preset", "web", "--preset", "sql", "--repr-limit", "100000",
         "--listener", f"jsonl={log}", "--listener", "console", "server.py", "2"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    port = int(process.stdout.readline())
    answers = [_get(("127.0.0.1", port), "/a?x=1"), _get(("127.0.0.1", port), "/b")]
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert answers == [(201, b"made /a"), (201, b"made /b")]
    served = requests_in(read_jsonl(log))
    assert [(start["request"]["path"], start["request"]["query"], end["response"]) for start, end in served] == [
        ("/a", "x=1", {"status": 201, "size": 7}), ("/b", None, {"status": 201, "size": 7})]
    text = log.read_text() + stderr
    assert "hunter2" not in text and "sk-live-999" not in text and "DATABASE_URL" not in text


# -- refusing a request ------------------------------------------------------------

REFUSER = """\
from hookwise import Blocked

class RefuseAdmin:
    def start(self, call):
        if call.target == "web:request" and call.args[0].path.startswith("/admin"):
            raise Blocked("no admin from here")
"""

REFUSED_CLIENTS = """\
from fastapi.testclient import TestClient
import django_app, fastapi_app, flask_app
from django.test import Client

flask = flask_app.app.test_client().get("/admin/user/x")
print("flask", flask.status_code, flask.data)
fastapi = TestClient(fastapi_app.app).get("/admin/items/1")
print("fastapi", fastapi.status_code, fastapi.content)
django = Client().get("/admin/user/x")
print("django", django.status_code, django.content)
print("flask ok", flask_app.app.test_client().get("/user/ok").status_code)
"""


def test_a_listener_that_refuses_a_request_answers_403_and_the_app_never_runs(tmp_path):
    (tmp_path / "refuser.py").write_text(REFUSER)
    result, events = run_hooked(tmp_path, REFUSED_CLIENTS, "--listener", "refuser:RefuseAdmin", expect_same=False)
    assert result.stdout.splitlines() == [
        "flask 403 b'Forbidden by hookwise\\n'",
        "fastapi 403 b'Forbidden by hookwise\\n'",
        "django 403 b'Forbidden by hookwise\\n'",
        "flask ok 200",
    ]
    served = requests_in(events)
    assert [(start["request"]["path"], end["event"], end["exception_type"] if end["event"] == "error" else None)
            for start, end in served] == [
        ("/admin/user/x", "error", "hookwise.listener.Blocked"),
        ("/admin/items/1", "error", "hookwise.listener.Blocked"),
        ("/admin/user/x", "error", "hookwise.listener.Blocked"),
        ("/user/ok", "end", None),
    ]
    assert not [event for event in events if event["target"].startswith("sqlite3:") and event.get("request_id")
                in {start["call_id"] for start, _ in served[:3]}]


# -- every output ----------------------------------------------------------------------


def test_chrome_html_otel_and_a_converted_recording_carry_requests(tmp_path):
    (tmp_path / "program.py").write_text(FASTAPI_CLIENT)
    env = env_for(tmp_path)
    env["PYTHONPATH"] += os.pathsep + os.path.dirname(os.path.abspath(__file__))  # the otel memory listener
    env["OTEL_TRACES_EXPORTER"] = "none"
    result = run_driver(["--preset", "web", "--preset", "sql",
                         "--listener", f"chrome={tmp_path / 'trace.json'}", "--listener", f"html={tmp_path / 'r.html'}",
                         "--listener", f"otel_memory_listener:MemoryOtel={tmp_path / 'spans.json'}",
                         "--listener", f"record={tmp_path / 'run.rec'}", "--listener", f"stats={tmp_path / 'stats.txt'}",
                         "program.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    row = next(line.split() for line in (tmp_path / "stats.txt").read_text().splitlines()
               if line.startswith("web:request"))
    assert row[1:3] == ["4", "1"]  # four requests, one failed

    trace = json.loads((tmp_path / "trace.json").read_text())
    slices = [event for event in trace if event.get("ph") == "X"]
    # in the order they came (call ids): the trace is written a thread's chunk at a time, and each thread's
    # stamps are on its own program clock (hookwise's own time left out), which runs behind the others' by
    # what hookwise did on it: requests served by different threads may not sort by ts as they came
    request_slices = sorted((event for event in slices if event["name"] == "web:request"),
                            key=lambda e: e["args"]["call_id"])
    assert [event["args"]["request"]["path"] for event in request_slices] == ["/items/3", "/sync/hi", "/missing",
                                                                             "/boom"]
    first = request_slices[0]["args"]
    assert first["request"]["status"] == 200 and first["request"]["route"] == "/items/{item_id}"
    children = [event for event in slices if event["args"].get("request_id") == first["call_id"]]
    assert len(children) == 4
    names = {event["args"]["name"] for event in trace if event.get("ph") == "M"
             and event["name"] == "thread_name"}
    assert any(f"(request #{first['call_id']})" in name for name in names), names

    page = (tmp_path / "r.html").read_text()
    assert '"request_id": %d' % first["call_id"] in page or '"request_id":%d' % first["call_id"] in page

    spans = json.loads((tmp_path / "spans.json").read_text())
    servers = [span for span in spans if span["attributes"].get("hookwise.kind") == "request"]
    assert [span["name"] for span in servers] == ["GET /items/{item_id}", "GET /sync/{word}", "GET /missing",
                                                 "GET /boom"]
    items = servers[0]
    assert items["attributes"]["http.route"] == "/items/{item_id}"
    assert items["attributes"]["url.path"] == "/items/3" and items["attributes"]["http.response.status_code"] == 200
    inside = [span for span in spans if span["attributes"].get("hookwise.request_id") == items["attributes"]
              ["hookwise.call_id"]]
    assert len(inside) == 4 and all(span["trace_id"] == items["trace_id"] for span in inside)
    assert servers[3]["status"] == "ERROR"

    converted = tmp_path / "converted.jsonl"
    done = run_python(["-m", "hookwise.convert", str(tmp_path / "run.rec"), "--to", f"jsonl={converted}"],
                      cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    events = read_jsonl(converted)
    (items_start, items_end), *_ = requests_in(events)
    assert items_start["request"]["path"] == "/items/3"
    assert items_end["response"]["status"] == 200 and items_end["request"] == {"route": "/items/{item_id}"}
    assert len([event for event in made_for(events, items_start["call_id"]) if event["event"] == "start"]) == 4


# -- trace context ---------------------------------------------------------------------

TRACE_PROGRAM = """\
import http.server, threading
import requests
from flask import Flask

class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (self.headers.get("traceparent") or "none").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

echo = http.server.HTTPServer(("127.0.0.1", 0), Echo)
threading.Thread(target=echo.serve_forever, daemon=True).start()
app = Flask(__name__)

@app.route("/relay")
def relay():
    return requests.get(f"http://127.0.0.1:{echo.server_port}/").text

print(app.test_client().get("/relay", headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}).text)
"""


def test_an_incoming_traceparent_is_continued_and_carried_to_outgoing_requests(tmp_path):
    (tmp_path / "program.py").write_text(TRACE_PROGRAM)
    env = env_for(tmp_path)
    env["PYTHONPATH"] += os.pathsep + os.path.dirname(os.path.abspath(__file__))
    result = run_driver(["--preset", "web", "--preset", "http",
                         "--listener", f"otel_memory_listener:MemoryOtel={tmp_path / 'spans.json'}", "program.py"],
                        cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    spans = json.loads((tmp_path / "spans.json").read_text())
    server = next(span for span in spans if span["attributes"].get("hookwise.kind") == "request")
    client = next(span for span in spans if "url.full" in span["attributes"])
    assert server["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert server["parent_id"] == "b7ad6b7169203331"
    assert client["parent_id"] == server["span_id"]
    # what the echo server received: this trace, the client span as the parent
    assert result.stdout.strip() == f"00-{client['trace_id']}-{client['span_id']}-01"


# -- the target itself -------------------------------------------------------------------


def test_web_targets_are_checked_and_an_unserved_one_is_reported(tmp_path):
    (tmp_path / "program.py").write_text("print('no server here')\n")
    bad = run_driver(["--hook", "web:response", "program.py"], cwd=tmp_path)
    assert bad.returncode == 2 and "web:request" in bad.stderr and "no server here" not in bad.stdout
    quiet = run_driver(["--hook", "web:request", "program.py"], cwd=tmp_path)
    assert quiet.returncode == 0
    assert "target 'web:request' matched nothing (no request was served" in quiet.stderr


UNKNOWN_SERVER = """\
import asyncio, io, sys
import django_app, fastapi_app, flask_app

# a server hookwise has no point for (waitress, hypercorn, a hand-written one) calls the framework itself
def start_response(status, headers, exc_info=None):
    print("status", status)

def environ(path):
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "", "SERVER_NAME": "x", "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "10.1.2.3", "wsgi.input": io.BytesIO(),
            "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.version": (1, 0)}

print(b"".join(flask_app.app(environ("/user/zed"), start_response)))
print(b"".join(django_app.application(environ("/user/zed"), start_response)))

async def main():
    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        print(message["type"], message.get("status", len(message.get("body", b""))))

    scope = {"type": "http", "method": "GET", "path": "/sync/w", "query_string": b"", "headers": [], "root_path": "",
             "scheme": "http", "server": ("x", 80), "client": ("10.4.5.6", 5)}
    await fastapi_app.app(scope, receive, send)

asyncio.run(main())
"""


def test_a_server_hookwise_does_not_know_still_hands_requests_to_the_framework(tmp_path):
    _, events = run_hooked(tmp_path, UNKNOWN_SERVER)
    served = requests_in(events)
    assert [(start["request"]["path"], start["request"]["client"], end["response"]["status"], end["request"]["route"])
            for start, end in served] == [("/user/zed", "10.1.2.3", 200, "/user/<name>"),
                                          ("/user/zed", "10.1.2.3", 200, "/user/<str:name>"),
                                          ("/sync/w", "10.4.5.6", 200, "/sync/{word}")]
