"""The guard in real runs: deliberately vulnerable Flask, Django and FastAPI apps
(tests/fixtures/vulnerable) served by their test clients and by gunicorn and
uvicorn, the classic payload of every rule detected under ``--guard monitor``
and refused with a 403 under ``--guard block`` (the command, query or request
never running), benign look-alikes never matching, and findings in every
output. Fresh processes through the driver."""

import http.server
import json
import os
import pickle
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.parse

import pytest

from helpers import DRIVER, FIXTURES, ROOT, clean_env, read_jsonl, run_driver, run_python

APPS = os.path.join(FIXTURES, "vulnerable")


class RunsACommand:
    """Pickled, it makes the unpickler run a command: the classic pickle payload."""

    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def attacks(port):
    """(name, method, path, body, rule): the classic payload of each rule, for the Flask app."""
    internal = f"127.0.0.1:{port}"
    return [
        ("shell separator", "GET", "/ping?host=" + urllib.parse.quote("127.0.0.1; touch pwned-cmd-1"), None,
         "command-injection"),
        ("substitution", "GET", "/ping?host=" + urllib.parse.quote("$(touch pwned-cmd-2)"), None, "command-injection"),
        ("backquotes", "GET", "/ping?host=" + urllib.parse.quote("`touch pwned-cmd-3`"), None, "command-injection"),
        ("dot dot", "GET", "/read?name=" + urllib.parse.quote("../../../../../../etc/passwd"), None, "path-traversal"),
        ("absolute path", "GET", "/read?name=" + urllib.parse.quote("/etc/passwd"), None, "path-traversal"),
        ("quote breaking", "GET", "/delete?name=" + urllib.parse.quote("x' OR '1'='1"), None, "sql-injection"),
        ("union select", "GET", "/user?name=" + urllib.parse.quote("x' UNION SELECT secret FROM users --"), None,
         "sql-injection"),
        ("metadata", "GET", "/fetch?url=" + urllib.parse.quote("http://169.254.169.254/latest/meta-data/"), None, "ssrf"),
        ("loopback", "GET", "/fetch?url=" + urllib.parse.quote(f"http://{internal}/loopback"), None, "ssrf"),
        ("decimal loopback", "GET", "/fetch?url=" + urllib.parse.quote(f"http://2130706433:{port}/decimal"), None,
         "ssrf"),
        ("ipv6 loopback", "GET", "/fetch?url=" + urllib.parse.quote(f"http://[::1]:{port}/ipv6"), None, "ssrf"),
        ("pickle running a command", "POST", "/load", pickle.dumps(RunsACommand("touch pwned-pickle")),
         "unsafe-deserialization"),
        ("__import__ in eval", "GET", "/calc?expr=" + urllib.parse.quote("__import__('os').system('touch pwned-code')"),
         None, "code-injection"),
    ]


BENIGN = [
    ("O'Brien, parameterised", "GET", "/user-safe?name=" + urllib.parse.quote("O'Brien"), None),
    ("a file name with dots inside the root", "GET", "/read?name=report.v2.txt", None),
    ("a shell command built with shlex.quote", "GET", "/ping-safe?host=" + urllib.parse.quote("x; touch pwned-safe"),
     None),
    ("a public URL", "GET", "/fetch?url=" + urllib.parse.quote("http://93.184.216.34:9/"), None),
    ("a JSON body with quotes", "POST", "/note", json.dumps({"text": "he said \"hi\" and 'bye'; -- x"}).encode()),
    ("a repr-quoted value in eval", "GET", "/calc-safe?expr=" + urllib.parse.quote("__import__('os')"), None),
    ("a plain name", "GET", "/user?name=bob", None),
]

CLIENT = """\
import json, sys
from flask_vuln import app

client = app.test_client()
for method, path, body in json.loads(open("requests.json").read()):
    data = None if body is None else bytes.fromhex(body)
    headers = {"Content-Type": "application/json"} if path == "/note" else {}
    answer = client.open(path, method=method, data=data, headers=headers)
    print(answer.status_code, flush=True)
"""


class Upstream:
    """A local HTTP server that counts the requests that reach it (the SSRF targets)."""

    def __enter__(self):
        hits = self.hits = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_port
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self.server.shutdown()
        self.server.server_close()


def env_for(tmp_path):
    return clean_env(PYTHONPATH=os.pathsep.join((ROOT, APPS)), APP_DATABASE=str(tmp_path / "vuln.db"))


def seed(tmp_path, names=("ann", "bob")):
    import sqlite3

    with sqlite3.connect(tmp_path / "vuln.db") as connection:
        connection.execute("create table if not exists users(name text, secret text)")
        connection.executemany("insert into users values (?, 'hunter2')", [(name,) for name in names])


def run_client(tmp_path, requests, *options, env=None):
    (tmp_path / "client.py").write_text(CLIENT)
    (tmp_path / "requests.json").write_text(json.dumps(
        [(method, path, None if body is None else body.hex()) for method, path, body in requests]))
    log = tmp_path / "events.jsonl"
    result = run_driver([*options, "--listener", f"jsonl={log}", "client.py"], cwd=tmp_path,
                        env=env if env is not None else env_for(tmp_path))
    assert result.returncode == 0, result.stderr
    findings = [event for event in read_jsonl(log) if event["event"] == "finding"]
    return result, [int(line) for line in result.stdout.split()], findings


def users(tmp_path):
    import sqlite3

    with sqlite3.connect(tmp_path / "vuln.db") as connection:
        return connection.execute("select count(*) from users").fetchone()[0]


def pwned(tmp_path):
    return sorted(path.name for path in tmp_path.glob("pwned-*"))


def test_monitor_finds_every_classic_payload_and_changes_nothing(tmp_path):
    seed(tmp_path)
    with Upstream() as upstream:
        cases = attacks(upstream.port)
        result, statuses, findings = run_client(tmp_path, [case[1:4] for case in cases], "--guard", "monitor")
        hits = list(upstream.hits)
    by_path = {}
    for finding in findings:
        by_path.setdefault(finding["request"]["path"], []).append(finding)
    for (name, _, path, _, rule), status in zip(cases, statuses):
        route = path.split("?")[0]
        assert any(finding["rule"] == rule for finding in by_path.get(route, ())), (name, by_path.get(route))
    assert {finding["action"] for finding in findings} == {"monitored"}
    # monitor changes nothing: every payload did what it does
    assert pwned(tmp_path) == ["pwned-cmd-1", "pwned-cmd-2", "pwned-cmd-3", "pwned-code", "pwned-pickle"]
    assert sorted(hits) == ["/decimal", "/loopback"]  # (the IPv6 loopback was refused: the upstream has IPv4 only)
    assert users(tmp_path) == 0  # the injected delete ran
    assert "hookwise: guard: " in result.stderr and "(monitor: nothing blocked)" in result.stderr


def test_block_refuses_every_classic_payload_with_a_403_before_the_sink_runs(tmp_path):
    seed(tmp_path)
    with Upstream() as upstream:
        cases = attacks(upstream.port)
        result, statuses, findings = run_client(tmp_path, [case[1:4] for case in cases], "--guard", "block")
        hits = list(upstream.hits)
    assert statuses == [403] * len(cases), result.stderr
    assert pwned(tmp_path) == []  # no command, no pickle payload, no eval ran
    assert hits == []  # no internal request left
    assert users(tmp_path) == 2  # the injected delete never ran
    assert {finding["action"] for finding in findings} == {"blocked"}
    counts = {}
    for finding in findings:
        counts[finding["rule"]] = counts.get(finding["rule"], 0) + 1
    summary = re.search(r"^hookwise: guard: (\d+) findings, (\d+) blocked: (.*)$", result.stderr, re.M)
    assert summary and int(summary.group(1)) == len(findings) == int(summary.group(2))
    assert summary.group(3) == ", ".join(f"{rule} {count}" for rule, count in
                                         sorted(counts.items(), key=lambda item: -item[1]))


def test_benign_look_alikes_give_no_finding(tmp_path):
    seed(tmp_path)
    result, statuses, findings = run_client(tmp_path, [case[1:] for case in BENIGN], "--guard", "block")
    assert findings == [], findings
    assert statuses[:3] == [200, 200, 200] and statuses[4:] == [200, 200, 200]
    assert statuses[3] == 502  # the public address is not reachable from here: the app says so, the guard says nothing
    assert "hookwise: guard" not in result.stderr


def test_an_internal_service_the_app_calls_with_an_input_in_its_path_gives_no_finding(tmp_path):
    # found by the request benchmark: /items/42 made the app call http://127.0.0.1:42817/price/42, and the
    # input "42", which also begins the port, was taken for the host: every request refused
    seed(tmp_path)
    with Upstream() as upstream:
        env = dict(env_for(tmp_path), APP_UPSTREAM=f"http://127.0.0.1:{upstream.port}")
        requests = [("GET", f"/price/{str(upstream.port)[:2]}", None), ("GET", "/price/1", None)]
        result, statuses, findings = run_client(tmp_path, requests, "--guard", "block", env=env)
        hits = list(upstream.hits)
    assert findings == [] and statuses == [200, 200], (findings, result.stderr)
    assert hits == [f"/price/{str(upstream.port)[:2]}", "/price/1"]


def test_a_finding_in_every_output(tmp_path):
    seed(tmp_path)
    path = "/user?name=" + urllib.parse.quote("x' OR '1'='1")
    env = env_for(tmp_path)
    env["PYTHONPATH"] += os.pathsep + os.path.dirname(os.path.abspath(__file__))
    (tmp_path / "client.py").write_text(CLIENT)
    (tmp_path / "requests.json").write_text(json.dumps([["GET", path, None]]))
    result = run_driver(["--guard", "block", "--preset", "web", "--listener", "console",
                         "--listener", f"jsonl={tmp_path / 'events.jsonl'}",
                         "--listener", f"chrome={tmp_path / 'trace.json'}", "--listener", f"html={tmp_path / 'r.html'}",
                         "--listener", f"otel_memory_listener:MemoryOtel={tmp_path / 'spans.json'}", "client.py"],
                        cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    events = read_jsonl(tmp_path / "events.jsonl")
    (finding,) = [event for event in events if event["event"] == "finding"]
    request = next(event for event in events if event.get("target") == "web:request" and event["event"] == "start")
    assert finding["rule"] == "sql-injection" and finding["severity"] == "high" and finding["action"] == "blocked"
    assert finding["request"] == {"method": "GET", "path": "/user", "request_id": request["call_id"]}
    assert finding["sink"]["target"] == "sqlite3:Cursor.execute"
    assert finding["sink"]["arguments"]["arg1"].startswith("\"select name from users where name = 'x' OR")
    assert finding["input"] == {"value": "x' OR '1'='1", "source": "query parameter name"}
    assert finding["fragment"] == "'x' OR '1'='1'"
    assert finding["app_caller"]["file"].endswith("flask_vuln.py") and finding["app_caller"]["function"] == "user"
    request_end = next(event for event in events if event.get("target") == "web:request" and event["event"] != "start")
    assert request_end["event"] == "error" and request_end["response"]["status"] == 403
    assert request_end["exception_type"] == "hookwise.listener.Blocked"
    # only what was asked for is reported besides: the requests, not the guard's own sinks
    assert {event["target"] for event in events if event["event"] != "finding"} == {"web:request"}

    assert re.search(r"^hookwise finding sql-injection \(high\) blocked: query parameter name \"x' OR '1'='1\" changes "
                     r"sqlite3:Cursor.execute #\d+ at \"'x' OR '1'='1'\" in GET /user \(request #\d+\) from .*flask_vuln"
                     r"\.py:\d+ in user$", result.stderr, re.M), result.stderr
    trace = json.loads((tmp_path / "trace.json").read_text())
    (instant,) = [event for event in trace if event.get("ph") == "i"]
    assert instant["name"] == "finding sql-injection" and instant["args"]["input"]["source"] == "query parameter name"
    page = (tmp_path / "r.html").read_text()
    assert '<table id="findings">' in page and "query parameter name: x&#39; OR &#39;1&#39;=&#39;1" in page
    spans = json.loads((tmp_path / "spans.json").read_text())
    events_on_spans = [event for span in spans for event in span["events"] if event["name"] == "hookwise.finding"]
    assert len(events_on_spans) == 1 and events_on_spans[0]["attributes"]["hookwise.finding.rule"] == "sql-injection"


FRAMEWORK_CLIENTS = {
    "fastapi": """\
import json, sys
from fastapi.testclient import TestClient
import fastapi_vuln

client = TestClient(fastapi_vuln.app, raise_server_exceptions=False)
for method, path, body in json.loads(open("requests.json").read()):
    answer = client.request(method, path, content=None if body is None else bytes.fromhex(body))
    print(answer.status_code, flush=True)
""",
    "django": """\
import json, sys
import django_vuln
from django.test import Client

client = Client(raise_request_exception=False)
for method, path, body in json.loads(open("requests.json").read()):
    answer = client.generic(method, path, b"" if body is None else bytes.fromhex(body))
    print(answer.status_code, flush=True)
""",
}

FRAMEWORK_ATTACKS = [
    ("GET", "/ping?host=" + urllib.parse.quote("1; touch pwned-cmd"), None, "command-injection"),
    ("GET", "/read?name=" + urllib.parse.quote("../../../../../../etc/passwd"), None, "path-traversal"),
    ("GET", "/user?name=" + urllib.parse.quote("x' OR '1'='1"), None, "sql-injection"),
    ("GET", "/calc?expr=" + urllib.parse.quote("__import__('os').system('touch pwned-code')"), None, "code-injection"),
]
FRAMEWORK_BENIGN = [("GET", "/user-safe?name=" + urllib.parse.quote("O'Brien"), None),
                    ("GET", "/read?name=report.v2.txt", None)]


@pytest.mark.parametrize("framework", sorted(FRAMEWORK_CLIENTS))
@pytest.mark.parametrize("mode", ["monitor", "block"])
def test_django_and_fastapi_through_their_test_clients(tmp_path, framework, mode):
    requests = [case[:3] for case in FRAMEWORK_ATTACKS] + FRAMEWORK_BENIGN
    if framework == "fastapi":
        requests.append(("POST", "/load", pickle.dumps(RunsACommand("touch pwned-pickle"))))
    (tmp_path / "client.py").write_text(FRAMEWORK_CLIENTS[framework])
    (tmp_path / "requests.json").write_text(json.dumps(
        [(method, path, None if body is None else body.hex()) for method, path, body in requests]))
    log = tmp_path / "events.jsonl"
    result = run_driver(["--guard", mode, "--listener", f"jsonl={log}", "client.py"], cwd=tmp_path,
                        env=env_for(tmp_path))
    assert result.returncode == 0, result.stderr
    statuses = [int(line) for line in result.stdout.split()]
    findings = [event for event in read_jsonl(log) if event["event"] == "finding"]
    found = {(finding["request"]["path"], finding["rule"]) for finding in findings}
    expected = {(path.split("?")[0], rule) for _, path, _, rule in FRAMEWORK_ATTACKS}
    if framework == "fastapi":
        expected.add(("/load", "unsafe-deserialization"))
    assert found == expected
    attacked = len(FRAMEWORK_ATTACKS)
    assert statuses[attacked:attacked + 2] == [200, 200]  # the benign twins
    if mode == "block":
        assert statuses[:attacked] == [403] * attacked and pwned(tmp_path) == []
        if framework == "fastapi":
            assert statuses[-1] == 403
    else:
        assert 403 not in statuses
        assert "pwned-cmd" in pwned(tmp_path) and "pwned-code" in pwned(tmp_path)


# -- real servers ------------------------------------------------------------------


def _serve(tmp_path, command, mode):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    output = open(tmp_path / "server.log", "w")
    process = subprocess.Popen(
        [sys.executable, DRIVER, "--guard", mode, "--listener", f"jsonl={tmp_path / 'events.jsonl'}",
         *[part.format(port=port) for part in command]],
        cwd=tmp_path, env=env_for(tmp_path), stdout=output, stderr=subprocess.STDOUT)
    return process, port, output


def _get(port, path):
    import http.client

    deadline = time.monotonic() + 60
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", path)
            answer = connection.getresponse()
            return answer.status, answer.read()
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
        finally:
            connection.close()


SERVED = {
    "gunicorn-flask": ["-m", "gunicorn", "-w", "1", "-b", "127.0.0.1:{port}", "flask_vuln:app"],
    "uvicorn-fastapi": ["-m", "uvicorn", "--port", "{port}", "--log-level", "warning", "fastapi_vuln:app"],
}


@pytest.mark.parametrize("server", sorted(SERVED))
def test_a_real_server_answers_403_to_attacks_and_200_to_the_rest(tmp_path, server):
    seed(tmp_path)
    process, port, output = _serve(tmp_path, SERVED[server], "block")
    try:
        answers = [_get(port, path) for _, path, _, _ in FRAMEWORK_ATTACKS[:3]]
        benign = [_get(port, path) for _, path, _ in FRAMEWORK_BENIGN]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
        output.close()
    assert [status for status, _ in answers] == [403, 403, 403], (tmp_path / "server.log").read_text()
    assert all(body == b"Forbidden by hookwise\n" for _, body in answers)
    assert [status for status, _ in benign] == [200, 200]
    assert pwned(tmp_path) == []
    findings = [event for event in read_jsonl(tmp_path / "events.jsonl") if event["event"] == "finding"]
    assert [finding["rule"] for finding in findings] == ["command-injection", "path-traversal", "sql-injection"]


# -- outside a request, and the settings ------------------------------------------------

SCRIPT = """\
import os, sys
os.system("echo hello " + sys.argv[1])
print("after")
"""


def test_outside_a_request_the_command_line_is_the_input(tmp_path):
    (tmp_path / "tool.py").write_text(SCRIPT)
    benign = run_driver(["--guard", "block", "tool.py", "world"], cwd=tmp_path)
    assert benign.returncode == 0 and benign.stdout == "hello world\nafter\n" and "finding" not in benign.stderr
    attacked = run_driver(["--guard", "block", "tool.py", "x; touch pwned-argv"], cwd=tmp_path)
    assert attacked.returncode == 1 and attacked.stdout == ""
    assert pwned(tmp_path) == []
    assert "hookwise finding command-injection (critical) blocked: command-line argument 1 'x; touch pwned-argv'" in \
        attacked.stderr
    assert "hookwise.listener.Blocked: hookwise guard: command-injection blocked" in attacked.stderr
    monitored = run_driver(["--guard", "monitor", "tool.py", "x; touch pwned-argv"], cwd=tmp_path)
    assert monitored.returncode == 0 and monitored.stdout == "hello x\nafter\n" and pwned(tmp_path) == ["pwned-argv"]


def test_outside_a_request_the_lines_read_on_stdin_are_inputs(tmp_path):
    (tmp_path / "filter.py").write_text(
        "import subprocess, sys\nfor line in sys.stdin:\n"
        "    print(subprocess.run('echo got ' + line.strip(), shell=True, capture_output=True, text=True).stdout,"
        " end='')\nprint(sys.stdin.isatty(), sys.stdin.encoding)\n")
    plain = run_python(["filter.py"], cwd=tmp_path, input="one\ntwo\n")
    benign = run_driver(["--guard", "block", "filter.py"], cwd=tmp_path, input="one\ntwo\n")
    assert benign.returncode == 0 and benign.stdout == plain.stdout == "got one\ngot two\nFalse utf-8\n"
    attacked = run_driver(["--guard", "block", "filter.py"], cwd=tmp_path, input="one\n$(touch pwned-stdin)\n")
    assert attacked.returncode == 1 and attacked.stdout == "got one\n" and pwned(tmp_path) == []
    assert "blocked: standard input line 2 '$(touch pwned-stdin)'" in attacked.stderr


def test_a_file_named_on_the_command_line_is_no_traversal(tmp_path):
    (tmp_path / "cat.py").write_text("import sys\nprint(open(sys.argv[1]).readline().strip())\n")
    result = run_driver(["--guard", "block", "cat.py", "/etc/hostname"], cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.strip() and "finding" not in result.stderr


def test_the_guard_table_in_the_config_and_bad_settings(tmp_path):
    (tmp_path / "tool.py").write_text(SCRIPT)
    (tmp_path / "hookwise.toml").write_text('[guard]\nmode = "block"\nrules = ["sql-injection"]\n')
    only_sql = run_driver(["tool.py", "x; echo more"], cwd=tmp_path)
    assert only_sql.returncode == 0 and only_sql.stdout == "hello x\nmore\nafter\n"  # command injection not enabled
    (tmp_path / "hookwise.toml").write_text('[guard]\nmode = "block"\n')
    blocked = run_driver(["tool.py", "x; echo more"], cwd=tmp_path)
    assert blocked.returncode == 1 and "command-injection blocked" in blocked.stderr
    for options, message in ((["--guard", "shout"], "guard mode must be monitor or block, not 'shout'"),
                             (["--config", "bad.toml"], "unknown guard rule 'xss'")):
        (tmp_path / "bad.toml").write_text('[guard]\nmode = "monitor"\nrules = ["xss"]\n')
        result = run_driver([*options, "tool.py", "world"], cwd=tmp_path)
        assert result.returncode == 2 and result.stdout == "" and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


NO_CYCLES = """\
import gc, json
from flask_vuln import app

client = app.test_client()
body = json.dumps({"text": "a note"}).encode()
client.post("/note", data=body, headers={"Content-Type": "application/json"})
gc.collect()
gc.set_debug(gc.DEBUG_SAVEALL)
for _ in range(20):
    assert client.post("/note", data=body, headers={"Content-Type": "application/json"}).status_code == 200
    assert client.get("/user?name=bob").status_code == 200
gc.collect()
print(json.dumps(sorted({type(o).__module__ + "." + type(o).__qualname__ for o in gc.garbage
                         if type(o).__module__.startswith("hookwise")})))
"""


def test_a_guarded_request_leaves_nothing_for_the_cyclic_collector(tmp_path):
    # the request, its environ and the stand-in that keeps the body it read made a cycle: every request
    # went to the cyclic collector, and a server under the guard ran a full collection every few hundred
    seed(tmp_path)
    (tmp_path / "cycles.py").write_text(NO_CYCLES)
    options = ["--guard", "monitor", "--preset", "web", "--listener", "jsonl=events.jsonl"]
    result = run_driver([*options, "cycles.py"], cwd=tmp_path, env=env_for(tmp_path))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == []
    notes = [e for e in read_jsonl(tmp_path / "events.jsonl") if e["event"] == "start" and e.get("kind") == "request"]
    assert len(notes) == 41
