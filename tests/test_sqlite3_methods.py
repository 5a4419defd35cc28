"""Methods of sqlite3's C types as targets: served through the connections sqlite3.connect makes.

Fresh processes, a real database file, both import orders, and the program
must see what it sees without hookwise (see loader/c_types.py).
"""

import os
import textwrap

import pytest

from helpers import FIXTURES, read_jsonl, run_driver, run_python

APP = os.path.join(FIXTURES, "sqlite_app", "app.py")
CONNECTION_METHODS = ["execute", "executemany", "executescript", "cursor", "commit", "close"]
CURSOR_METHODS = ["execute", "executemany", "executescript", "fetchone", "fetchmany", "fetchall"]
TARGETS = [f"sqlite3:Connection.{m}" for m in CONNECTION_METHODS] + [f"sqlite3:Cursor.{m}" for m in CURSOR_METHODS]
EARLY = "import sqlite3\n\nclass Nothing:\n    def end(self, call, result):\n        pass\n"


def run_app(tmp_path, *options, crash=False, name="app.db"):
    database = tmp_path / name
    args = [*options, APP, str(database)] + (["crash"] if crash else [])
    return run_driver(args, cwd=tmp_path)


@pytest.fixture
def early_listener(tmp_path):
    (tmp_path / "early.py").write_text(EARLY)
    return ["--listener", "early:Nothing"]


@pytest.mark.parametrize("order", ["imported-after-install", "imported-before-install"])
def test_every_statement_is_reported_and_the_program_sees_no_difference(order, tmp_path, early_listener):
    plain = run_app(tmp_path, "--hook", "nomodule:nothing", name="plain.db")
    log = tmp_path / "events.jsonl"
    options = [arg for target in TARGETS for arg in ("--hook", target)] + ["--listener", f"jsonl={log}"]
    if order == "imported-before-install":
        options += early_listener
    hooked = run_app(tmp_path, *options, name="hooked.db")
    assert plain.returncode == 0, plain.stderr
    assert hooked.returncode == 0, hooked.stderr
    assert hooked.stdout == plain.stdout
    assert "connection True Connection sqlite3" in hooked.stdout
    assert "types True True <class 'sqlite3.Connection'>" in hooked.stdout
    assert "direct True (3,)" in hooked.stdout
    assert "own factory Audited True audited (2,)" in hooked.stdout
    assert "matches nothing" not in hooked.stderr and "matched nothing" not in hooked.stderr, hooked.stderr
    events = read_jsonl(log)
    starts = [event for event in events if event["event"] == "start"]
    assert {event["target"] for event in starts} == set(TARGETS)
    assert len([e for e in events if e["event"] in ("end", "error")]) == len(starts)
    statements = [(event["target"], event["args"][1]) for event in starts if event["target"].endswith("execute")]
    # conn.execute is "make a cursor, run its execute": both report, the cursor's nested in the connection's
    assert ("sqlite3:Connection.execute", "'select count(*) from items'") in statements
    assert ("sqlite3:Cursor.execute", "'select count(*) from items'") in statements
    assert ("sqlite3:Cursor.execute", "'select name from items where id > ?'") in statements
    assert ("sqlite3:Connection.execute", "'select 3'") in statements  # a sqlite3.Connection(...) made directly
    # every call the program made names the program's line as its caller (not hookwise's stand-ins)
    for event in starts:
        file = event["caller"]["file"]
        assert file == APP or "sqlite3" in file, event  # iterdump's queries come from sqlite3/dump.py


def test_a_failing_statement_has_the_same_traceback(tmp_path):
    plain = run_app(tmp_path, "--hook", "nomodule:nothing", crash=True, name="plain.db")
    hooked = run_app(tmp_path, *[a for t in TARGETS for a in ("--hook", t)], "--listener", "jsonl=events.jsonl",
                     crash=True, name="hooked.db")
    assert plain.returncode == hooked.returncode == 1
    assert "sqlite3.OperationalError: no such column: nope" in plain.stderr
    assert hooked.stderr == plain.stderr
    errors = [e for e in read_jsonl(tmp_path / "events.jsonl") if e["event"] == "error"]
    assert [e["target"] for e in errors] == ["sqlite3:Cursor.execute", "sqlite3:Connection.execute"]


GUARD = """
from hookwise import Blocked

class NoUnion:
    def start(self, call):
        statement = call.args[1] if len(call.args) > 1 else ""
        if isinstance(statement, str) and "union select" in statement.lower():
            raise Blocked("UNION SELECT refused")
"""

INJECTED = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1])
conn.execute("create table users (name text, password text)")
conn.execute("insert into users values ('alice', 'secret')")
conn.commit()
name = "x' UNION SELECT password, name FROM users --"
for how in ("shortcut", "cursor"):
    try:
        query = f"select name, name from users where name = '{name}'"
        rows = conn.execute(query).fetchall() if how == "shortcut" else conn.cursor().execute(query).fetchall()
        print(how, "ran", rows)
    except PermissionError as exc:
        print(how, "refused:", exc)
print(conn.execute("select name from users").fetchall())
"""


@pytest.mark.parametrize("targets", [["sqlite3:Cursor.execute"], ["sqlite3:Connection.execute", "sqlite3:Cursor.execute"]])
def test_a_guard_blocks_a_union_select_through_both_shortcuts(targets, tmp_path):
    (tmp_path / "guard.py").write_text(textwrap.dedent(GUARD))
    (tmp_path / "injected.py").write_text(textwrap.dedent(INJECTED))
    options = [a for t in targets for a in ("--hook", t)] + ["--listener", "guard:NoUnion"]
    result = run_driver([*options, "injected.py", str(tmp_path / "users.db")], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "shortcut refused: UNION SELECT refused", "cursor refused: UNION SELECT refused", "[('alice',)]"]


WARNED = """
import sqlite3, sys, warnings

class Factory(sqlite3.Connection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)  # 3.13 warns here for the C __init__'s positional arguments

warnings.simplefilter(sys.argv[1])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    sqlite3.connect(":memory:", 5.0).close()  # 3.13 deprecates positional arguments after database
    sqlite3.connect(":memory:", 5.0, 0, None, True, Factory).close()
print([(w.category.__name__, w.filename, w.lineno, str(w.message)) for w in caught])
sqlite3.connect(":memory:", 5.0).close()
print("no error")
"""


def test_warnings_of_connect_name_the_programs_line(tmp_path):
    (tmp_path / "warned.py").write_text(WARNED)
    for action in ("default", "error"):
        plain = run_python(["warned.py", action], cwd=tmp_path)
        hooked = run_driver(["--hook", "sqlite3:Cursor.execute", "--hook", "sqlite3:connect", "--listener",
                             "jsonl=events.jsonl", "warned.py", action], cwd=tmp_path)
        assert hooked.returncode == plain.returncode, hooked.stderr
        assert hooked.stdout == plain.stdout
        assert hooked.stderr == plain.stderr  # with "error": the same traceback, no hookwise frame
