"""``--preset sql`` on PostgreSQL through psycopg 3, sync and async, and psycopg2, against a real server
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


PSYCOPG2_PROGRAM = """\
import io, sys
import psycopg2
import psycopg2.extras

dsn = f"host={sys.argv[1]} user=hookwise dbname=postgres password=dsn-secret"
connection = psycopg2.connect(dsn)
connection.autocommit = True
cursor = connection.cursor()
cursor.execute("drop table if exists users2")
cursor.execute("create table users2 (id int, name text, password text)")
cursor.executemany("insert into users2 values (%s, %s, %s)", [(1, "alice", "pw1"), (2, "bob", "pw2")])
cursor.execute("select name from users2 where id = %(id)s", {"id": 2, "password": "hunter2"})
print(cursor.fetchall(), type(cursor) is psycopg2.extensions.cursor, isinstance(connection, psycopg2.extensions.connection))
cursor.copy_from(io.StringIO("3\\tcarol\\tpw3\\n"), "users2", columns=("id", "name", "password"))
out = io.StringIO()
cursor.copy_to(out, "users2", columns=("id", "name"))
print(out.getvalue().split())
cursor.copy_expert("copy users2 (name) to stdout", out)
cursor.execute("create or replace function named(wanted int) returns text as 'select name from users2 where id = wanted' language sql")
cursor.callproc("named", (1,))
print(cursor.fetchall())
cursor.execute("select 'postgresql://app:s3cret@db/shop' as dsn")
with psycopg2.connect(dsn, cursor_factory=psycopg2.extras.RealDictCursor) as dicts:
    with dicts.cursor() as inner:
        inner.execute("select count(*) as n from users2")
        print([dict(row) for row in inner.fetchall()], type(inner).__name__)
named = psycopg2.connect(dsn, connection_factory=psycopg2.extras.NamedTupleConnection)
inner = named.cursor()
inner.execute("select name from users2 where id = %s", (3,))
print(inner.fetchall(), type(inner).__name__, type(named).__name__)
"""

# (method, statement, params, rows, the program's line)
PSYCOPG2_STATEMENTS = [
    ("execute", "drop table if exists users2", None, None, 9),
    ("execute", "create table users2 (id int, name text, password text)", None, None, 10),
    ("executemany", "insert into users2 values (%s, %s, %s)", "[(1, 'alice', 'pw1'), (2, 'bob', 'pw2')]", 2, 11),
    ("execute", "select name from users2 where id = %(id)s", "{'id': 2, 'password': '***'}", 1, 12),
    ("copy_from", "COPY users2 (id, name, password) FROM stdin", None, 1, 14),
    ("copy_to", "COPY users2 (id, name) TO stdout", None, 3, 16),
    ("copy_expert", "copy users2 (name) to stdout", None, 3, 18),
    ("execute", "create or replace function named(wanted int) returns text as "
                "'select name from users2 where id = wanted' language sql", None, None, 19),
    ("callproc", "named", "(1,)", 1, 20),
    ("execute", "select 'postgresql://app:***@db/shop' as dsn", None, 1, 22),
    ("execute", "select count(*) as n from users2", None, 1, 25),  # through RealDictCursor.execute
    ("execute", "select name from users2 where id = %s", "(3,)", 1, 29),  # NamedTupleConnection's cursor
]


@pytest.mark.parametrize("order", ["imported-after-install", "imported-before-install"])
def test_every_statement_through_psycopg2s_c_cursor(postgresql_server, tmp_path, order):
    (tmp_path / "shop.py").write_text(PSYCOPG2_PROGRAM)
    (tmp_path / "early.py").write_text("import psycopg2, psycopg2.extras\n\nclass Nothing:\n"
                                       "    def end(self, call, result):\n        pass\n")
    extra = ["--listener", "early:Nothing"] if order == "imported-before-install" else []
    result = run_driver(["--preset", "sql", "--strict", "--listener", "jsonl=events.jsonl", "--listener", "console",
                         *extra, "shop.py", postgresql_server], cwd=tmp_path,
                        env=clean_env(PYTHONPATH=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    # the program sees psycopg2's own types and the factories it asked for
    assert result.stdout == ("[('bob',)] True True\n['1', 'alice', '2', 'bob', '3', 'carol']\n[('alice',)]\n"
                             "[{'n': 3}] RealDictCursor\n"
                             "[Record(name='carol')] NamedTupleCursor NamedTupleConnection\n")
    events = read_jsonl(tmp_path / "events.jsonl")
    starts = [event for event in events if event["event"] == "start"]
    assert [(e["target"], e["sql"]["statement"], e["sql"]["params"], e["sql"]["system"], e["sql"]["database"])
            for e in starts] == [(f"psycopg2.extensions:cursor.{method}", statement, params, "postgresql", "postgres")
                                 for method, statement, params, _, _ in PSYCOPG2_STATEMENTS]
    ends = {event["call_id"]: event for event in events if event["event"] == "end"}
    assert [ends[e["call_id"]].get("sql", {}).get("rows") for e in starts] == [r for *_, r, _ in PSYCOPG2_STATEMENTS]
    assert [e["app_caller"]["line"] for e in starts] == [line for *_, line in PSYCOPG2_STATEMENTS]
    # psycopg2.extras' override ran first (RealDictCursor.execute; 3.10 names functions without their class)
    assert starts[-2]["caller"]["file"].endswith("psycopg2/extras.py")
    assert starts[-2]["caller"]["function"] in ("RealDictCursor.execute", "execute")
    assert "hookwise sql #5 COPY users2 (id, name, password) FROM stdin (postgresql postgres) [MainThread] " \
           "from shop.py:14 in <module>" in result.stderr
    written = (tmp_path / "events.jsonl").read_text()
    for secret in ("hunter2", "s3cret", "dsn-secret"):
        assert secret not in written and secret not in result.stderr
