"""jsonl's lines show what the reference renderers say, whichever shortcut wrote them.

With the accelerator, the jsonl listener has the buffer render argument values and
results in C (``LineBuffer.add_call`` with the render settings), and writes an SQL
statement's fields from a remembered head. Here a second listener, run beside it in
the same process, writes what ``Render.args``, ``Render.kwargs``, ``Render.value``
and ``hookwise.semantics`` say of the same calls, and the two must agree: for SQL
statements on two databases, repeated (the remembered head) and not, with every
kind of parameters, passwords in statements and parameters, a statement past its
bound; and for the program's own functions of every parameter layout.
"""

import json

import pytest

from helpers import clean_env, read_jsonl, run_driver

PROGRAM = r'''
import os
import sqlite3
import sys


class Thing:
    def __init__(self, size, *, label="x"):
        self.size = size


def pair(a, b):
    return (a, b)


def spread(first, *rest, token=None, **more):
    return [first, rest, more]


def login(user, password):
    return user.upper()


def nothing():
    return None


here = sys.argv[1]
STATEMENTS = [
    ("select 1", None), ("select 1", ()), ("select 1", []), ("select 1", {}),
    ("select ?, ?", (1, "a")), ("select ?, ?", [2.5, None]),
    ("select :password, :y", {"password": "hunter2", "y": 1}),
    ("select ?", ("postgres://user:pw@host/db",)), ("select ?", (b"\x00bytes",)), ("select ?", ("x" * 500,)),
    ("select 'mysql://root:toor@db/app'", None), ("select 1 -- " + "z" * 5000, None),
    ("select 'Név ü €', ?", ("ü€\U0001f600",)), ('select "quoted\\name", ?', ('tab\there',)),
]
for name in ("a.db", "b.db"):
    connection = sqlite3.connect(os.path.join(here, name))
    connection.execute("create table if not exists t (x)")
    cursor = connection.cursor()
    for _ in range(2):  # the second round finds every head remembered
        for statement, parameters in STATEMENTS:
            if parameters is None:
                cursor.execute(statement)
            else:
                cursor.execute(statement, parameters)
        connection.execute("select ?", (3,))
        cursor.executemany("insert into t values (?)", [(1,), ("two",)])
    connection.close()
for _ in range(2):
    pair(1, "two")
    pair(Thing(3), [1, {"password": "x"}])
    spread(1, 2, "three", token="t0k", extra={"a": 1})
    login("bob", "hunter2")
    nothing()
    Thing(5, label="five")
'''

REFERENCE = r'''
import json
import os

from hookwise import semantics
from hookwise.render import Render


class Reference:
    """What the reference renderers say of each call, one JSON object per event."""

    def __init__(self):
        self.render = Render(repr_limit=int(os.environ["REFERENCE_LIMIT"]))  # the run's --repr-limit
        self.out = open(os.environ["REFERENCE_OUT"], "w")

    def start(self, call):
        render = self.render
        meaning = semantics.start_fields(call, render)
        self.out.write(json.dumps({"call_id": call.call_id, "args": render.args(call), "kwargs": render.kwargs(call),
                                   "meaning": meaning}) + "\n")

    def end(self, call, result):
        self.out.write(json.dumps({"call_id": call.call_id, "result": self.render.value(result)}) + "\n")

    def close(self):
        self.out.close()
'''


@pytest.fixture
def program(tmp_path):
    (tmp_path / "program.py").write_text(PROGRAM)
    (tmp_path / "reference.py").write_text(REFERENCE)
    return tmp_path


@pytest.mark.parametrize("repr_limit", [None, "40", "8"])
def test_every_start_and_end_reads_as_the_reference_renders_it(program, repr_limit):
    log, reference = program / "events.jsonl", program / "reference.jsonl"
    options = ["--preset", "sql", "--hook", "__main__:*", "--listener", f"jsonl={log}", "--listener",
               "reference:Reference"]
    if repr_limit is not None:
        options += ["--repr-limit", repr_limit]
    env = clean_env(PYTHONPATH=str(program), REFERENCE_OUT=str(reference), REFERENCE_LIMIT=repr_limit or "200")
    result = run_driver([*options, str(program / "program.py"), str(program)], cwd=program, env=env)
    assert result.returncode == 0, result.stderr
    assert "hookwise" not in result.stderr, result.stderr
    said = {}
    for line in reference.read_text().splitlines():
        entry = json.loads(line)
        said.setdefault(entry["call_id"], {}).update(entry)
    events = read_jsonl(log)
    statements = [event for event in events if event["event"] == "start" and "sql" in event]
    # on each database: the create, then twice the 14 statements, conn.execute's and executemany's
    assert len(statements) == 2 * (1 + 2 * (14 + 1 + 1)), len(statements)
    assert len({(e["sql"]["database"], e["sql"]["statement"]) for e in statements}) == 2 * 10
    checked = 0
    for event in events:
        expected = said[event["call_id"]]
        if event["event"] == "start":
            assert event["args"] == expected["args"], event
            assert event["kwargs"] == expected["kwargs"], event
            if expected["meaning"] is not None:
                name, fields = expected["meaning"]
                assert event[name] == fields, event
            checked += 1
        elif event["event"] == "end":
            assert event["result"] == expected["result"], event
            checked += 1
    assert checked == len(events) and checked > 2 * len(statements)
    shown = "\n".join(log.read_text().splitlines())
    assert "hunter2" not in shown and "pw@host" not in shown and "toor@db" not in shown and "t0k" not in shown
