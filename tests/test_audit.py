"""audit:EVENT targets (PEP 578): events become calls of kind 'audit', a start
listener's Blocked makes the audited operation raise, and they reach what
attribute replacement cannot. Fresh driver processes, a real server on 127.0.0.1."""

import socket
import textwrap
import threading

from helpers import read_jsonl, run_driver

GUARD = """\
from hookwise import Blocked

class RefuseAll:
    def start(self, call):
        if call.kind == "audit" and call.target in ("audit:os.system", "audit:socket.connect"):
            raise Blocked(f"refused {call.target}")
"""


def write(tmp_path, program):
    (tmp_path / "program.py").write_text(textwrap.dedent(program))
    (tmp_path / "guard.py").write_text(GUARD)


def test_an_audit_event_is_a_call_of_kind_audit_with_the_tables_argument_names(tmp_path):
    write(tmp_path, """\
        import os
        print(os.system("true"))
    """)
    log = tmp_path / "events.jsonl"
    result = run_driver(["--hook", "audit:os.system", "--listener", f"jsonl={log}", "program.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "0\n"
    events = read_jsonl(log)
    assert [(e["event"], e["target"]) for e in events] == [("start", "audit:os.system"), ("end", "audit:os.system")]
    start = events[0]
    assert start["kind"] == "audit"
    assert start["args"] == ["b'true'"] and start["kwargs"] == {}, start
    assert start["caller"]["file"].endswith("program.py") and start["caller"]["line"] == 2
    console = run_driver(["--hook", "audit:os.system", "program.py"], cwd=tmp_path)
    assert "audit:os.system(command=b'true') [MainThread] from program.py:2 in <module>" in console.stderr


def test_blocked_refuses_os_system_even_through_a_reference_taken_before_hookwise(tmp_path):
    # the listener module is imported before the hooks exist; it keeps os.system where
    # attribute replacement cannot reach it (a class attribute of an already-loaded module)
    (tmp_path / "early.py").write_text("import os\nclass Holder:\n    run = staticmethod(os.system)\n"
                                       "class Nothing:\n    def end(self, call, result):\n        pass\n")
    write(tmp_path, """\
        import early, sys
        try:
            early.Holder.run("echo RAN > ran.txt")
        except PermissionError as exc:
            print("refused:", exc)
        import os
        print(os.path.exists("ran.txt"))
    """)
    result = run_driver(["--hook", "audit:os.system", "--listener", "early:Nothing",
                         "--listener", "guard:RefuseAll", "program.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "refused: refused audit:os.system\nFalse\n"
    assert not (tmp_path / "ran.txt").exists()


def test_blocked_socket_connect_never_reaches_the_server(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            accepted.append(connection)

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    write(tmp_path, f"""\
        import socket
        for attempt in range(2):
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", {port}))
                print("connected")
            except PermissionError as exc:
                print("refused:", exc)
            finally:
                s.close()
    """)
    try:
        plain = run_driver(["--hook", "audit:nothing.here", "program.py"], cwd=tmp_path)
        assert plain.stdout == "connected\nconnected\n", plain.stderr
        stop.wait(0.5)
        reached_plainly = len(accepted)
        log = tmp_path / "events.jsonl"
        result = run_driver(["--hook", "audit:socket.*", "--listener", "guard:RefuseAll",
                             "--listener", f"jsonl={log}", "program.py"], cwd=tmp_path)
        stop.wait(0.5)
    finally:
        stop.set()
        thread.join(5)
        server.close()
        for connection in accepted:
            connection.close()
    assert reached_plainly == 2
    assert result.returncode == 0, result.stderr
    assert result.stdout == "refused: refused audit:socket.connect\n" * 2
    assert len(accepted) == reached_plainly  # no connection reached the server under the guard
    connects = [e for e in read_jsonl(log) if e["target"] == "audit:socket.connect"]
    assert [e["event"] for e in connects] == ["start", "error", "start", "error"]


def test_hookwises_own_work_raises_no_audit_event(tmp_path):
    write(tmp_path, "print('hi')\n")
    log = tmp_path / "events.jsonl"
    result = run_driver(["--hook", "audit:open", "--hook", "audit:os.*", "--listener", f"jsonl={log}",
                         "--listener", f"chrome={tmp_path / 'trace.json'}", "program.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hi\n"
    assert read_jsonl(log) == []
