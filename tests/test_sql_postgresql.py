"""``--preset sql`` on PostgreSQL through psycopg 3, sync and async, against a real server
(Debian's postgresql, started once for the run on a Unix socket: ``postgresql_server``
in conftest.py). Fresh processes through the driver, in both import orders."""

import json
import os

import pytest

from helpers import clean_env, read_jsonl, run_driver

TESTS = os.path.dirname(os.path.abspath(__file__))

PROGRAM = """\
import asyncio, os, sys
import psycopg

where = dict(host=sys.argv[1], user="hookwise", dbname="postgres")
with psycopg.connect(**where, autocommit=True) as connection:
    connection.execute("drop table if exists users")
    connection.execute("create table users (id int, name text, password text)")
    with connection.cursor() as cursor:
        cursor.executemany("insert into users values (%s, %s, %s)", [(1, "alice", "pw1"), (2, "bob", "pw2")])
        cursor.execute("select name from users where id = %(id)s", {"id": 2, "password": "pw2"})
        print(cursor.fetchall())
    print(connection.execute("update users set name = upper(name)").rowcount)


async def main():
    async with await psycopg.AsyncConnection.connect(**where) as connection:
        async with connection.cursor() as cursor:
            await cursor.execute("select count(*) from users where name <> %s", ("CAROL",))
            return await cursor.fetchone()


print(asyncio.run(main()))
"""

STATEMENTS = [
    ("psycopg.cursor:Cursor.execute", "drop table if exists users", None, None),
    ("psycopg.cursor:Cursor.execute", "create table users (id int, name text, password text)", None, None),
    ("psycopg.cursor:Cursor.executemany", "insert into users values (%s, %s, %s)",
     "[(1, 'alice', 'pw1'), (2, 'bob', 'pw2')]", 2),
    ("psycopg.cursor:Cursor.execute", "select name from users where id = %(id)s", "{'id': 2, 'password': '***'}", 1),
    ("psycopg.cursor:Cursor.execute", "update users set name = upper(name)", None, 2),
    ("psycopg.cursor_async:AsyncCursor.execute", "select count(*) from users where name <> %s", "('CAROL',)", 1),
]


@pytest.mark.parametrize("order", ["imported-after-install", "imported-before-install"])
def test_every_statement_through_psycopg_with_its_database_params_and_rows(postgresql_server, tmp_path, order):
    (tmp_path / "shop.py").write_text(PROGRAM)
    (tmp_path / "early.py").write_text("import psycopg\n\nclass Nothing:\n    def end(self, call, result):\n        pass\n")
    extra = ["--listener", "early:Nothing"] if order == "imported-before-install" else []
    result = run_driver(["--preset", "sql", "--strict", "--listener", "jsonl=events.jsonl", "--listener", "console",
                         *extra, "shop.py", postgresql_server], cwd=tmp_path,
                        env=clean_env(PYTHONPATH=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[('bob',)]\n2\n(2,)\n"
    events = read_jsonl(tmp_path / "events.jsonl")
    starts = [event for event in events if event["event"] == "start"]
    assert [(e["target"], e["sql"]["statement"], e["sql"]["params"], e["sql"]["system"], e["sql"]["database"])
            for e in starts] == [(target, statement, params, "postgresql", "postgres")
                                 for target, statement, params, _ in STATEMENTS]
    ends = {event["call_id"]: event for event in events if event["event"] == "end"}
    assert [ends[e["call_id"]].get("sql", {}).get("rows") for e in starts] == [rows for *_, rows in STATEMENTS]
    assert starts[-1]["kind"] == "coroutine" and starts[-1]["task"]
    assert [e["app_caller"]["line"] for e in starts] == [6, 7, 9, 10, 12, 18]
    assert "hookwise sql #3 insert into users values (%s, %s, %s) params=[(1, 'alice', 'pw1'), (2, 'bob', 'pw2')] " \
           "(postgresql postgres) [MainThread] from " in result.stderr


def test_otel_spans_name_the_postgresql_database(postgresql_server, tmp_path):
    (tmp_path / "shop.py").write_text(PROGRAM)
    result = run_driver(["--preset", "sql", "--listener", "otel_memory_listener:MemoryOtel=spans.json", "shop.py",
                         postgresql_server], cwd=tmp_path, env=clean_env(PYTHONPATH=TESTS))
    assert result.returncode == 0, result.stderr
    spans = sorted(json.loads((tmp_path / "spans.json").read_text()), key=lambda span: span["start_ns"])
    assert [(span["attributes"]["db.system"], span["attributes"]["db.namespace"], span["attributes"]["db.query.text"])
            for span in spans] == [("postgresql", "postgres", statement) for _, statement, _, _ in STATEMENTS]
