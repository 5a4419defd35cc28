"""``--preset sql`` through SQLAlchemy: its execution point (``DefaultDialect.do_execute`` and kin)
reports each statement once, and the driver's call inside it reports nothing (runtime.StatementSite).
On sqlite3, on the real PostgreSQL through psycopg2 and on the real MariaDB through PyMySQL; fresh
processes through the driver, in both import orders."""

import pytest

from helpers import clean_env, read_jsonl, run_driver

PROGRAM = """\
import sys
import sqlalchemy
from sqlalchemy import text

engine = sqlalchemy.create_engine(sys.argv[1])
with engine.begin() as connection:
    connection.execute(text("drop table if exists users"))
    connection.execute(text("create table users (id int, name varchar(20), password varchar(20))"))
    connection.execute(text("insert into users values (:id, :name, :password)"),
                       [{"id": 1, "name": "alice", "password": "pw1"}, {"id": 2, "name": "bob", "password": "pw2"}])
    print(connection.execute(text("select name from users where id = :id and password <> :password"),
                             {"id": 2, "password": "hunter2"}).fetchall())
    print(connection.execute(text("update users set name = upper(name)")).rowcount)
    print(connection.exec_driver_sql("select count(*) from users", execution_options={"no_parameters": True}).scalar())
"""

DEFAULT = "sqlalchemy.engine.default:DefaultDialect"
CREATE = "create table users (id int, name varchar(20), password varchar(20))"


def statements(style):
    """(target, statement, params, rows, line) of the program's statements, in a driver's paramstyle."""
    if style == "qmark":  # sqlite3: positional, so no parameter has a name to redact it by
        insert, select = "insert into users values (?, ?, ?)", "select name from users where id = ? and password <> ?"
        many, one = "[(1, 'alice', 'pw1'), (2, 'bob', 'pw2')]", "(2, 'hunter2')"
    else:
        insert = "insert into users values (%(id)s, %(name)s, %(password)s)"
        select = "select name from users where id = %(id)s and password <> %(password)s"
        many = "[{'id': 1, 'name': 'alice', 'password': '***'}, {'id': 2, 'name': 'bob', 'password': '***'}]"
        one = "{'id': 2, 'password': '***'}"
    executemany = ("sqlalchemy.dialects.postgresql.psycopg2:PGDialect_psycopg2.do_executemany" if style == "psycopg2"
                   else "sqlalchemy.dialects.mysql.mysqldb:MySQLDialect_mysqldb.do_executemany" if style == "pymysql"
                   else f"{DEFAULT}.do_executemany")
    # rows where the driver counts them: MySQL's DDL changes 0, a SELECT's rows are known at once but in sqlite3
    ddl = 0 if style == "pymysql" else None
    selected = None if style == "qmark" else 1
    return [
        (f"{DEFAULT}.do_execute", "drop table if exists users", None, ddl, 7),
        (f"{DEFAULT}.do_execute", CREATE, None, ddl, 8),
        (executemany, insert, many, 2, 9),
        (f"{DEFAULT}.do_execute", select, one, selected, 11),
        (f"{DEFAULT}.do_execute", "update users set name = upper(name)", None, 2, 13),
        (f"{DEFAULT}.do_execute_no_params", "select count(*) from users", None, selected, 14),  # no_parameters
    ]


def run(tmp_path, url, order, early_module):
    (tmp_path / "shop.py").write_text(PROGRAM)
    (tmp_path / "early.py").write_text(f"import sqlalchemy, {early_module}\n\nclass Nothing:\n"
                                       "    def end(self, call, result):\n        pass\n")
    extra = ["--listener", "early:Nothing"] if order == "imported-before-install" else []
    result = run_driver(["--preset", "sql", "--strict", "--listener", "jsonl=events.jsonl", "--listener", "console",
                         *extra, "shop.py", url], cwd=tmp_path, env=clean_env(PYTHONPATH=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[('bob',)]\n2\n2\n"
    return result, read_jsonl(tmp_path / "events.jsonl")


def check_program_statements(events, style, system, database):
    starts = [e for e in events if e["event"] == "start"]
    ends = {e["call_id"]: e for e in events if e["event"] == "end"}
    ours = [e for e in starts if e["target"].startswith("sqlalchemy.") and e["app_caller"]["line"] >= 7]
    assert [(e["target"], e["sql"]["statement"], e["sql"]["params"], ends[e["call_id"]].get("sql", {}).get("rows"),
             e["app_caller"]["line"]) for e in ours] == statements(style)
    assert {(e["sql"]["system"], e["sql"]["database"]) for e in ours} == {(system, database)}
    # once each: the driver's own call inside SQLAlchemy's reported nothing
    texts = [e["sql"]["statement"] for e in starts]
    for _, statement, *_ in statements(style):
        assert texts.count(statement) == 1, texts
    # the caller is SQLAlchemy's line, the app_caller the program's
    assert all(e["caller"]["file"].endswith("sqlalchemy/engine/base.py") for e in ours)
    return starts


@pytest.mark.parametrize("order", ["imported-after-install", "imported-before-install"])
def test_sqlalchemy_on_sqlite3(tmp_path, order):
    result, events = run(tmp_path, "sqlite:///shop.db", order, "sqlite3")
    starts = check_program_statements(events, "qmark", "sqlite", "shop.db")
    # all that ran: the dialect's own question on connecting (the driver's call, from SQLAlchemy's code), then ours
    assert [(e["target"], e["sql"]["statement"]) for e in starts][0] == ("sqlite3:Cursor.execute", "PRAGMA read_uncommitted")
    assert len(starts) == 7
    assert "hookwise sql #4 insert into users values (?, ?, ?) params=[(1, 'alice', 'pw1'), (2, 'bob', 'pw2')] " \
           "(sqlite shop.db) [MainThread] from " in result.stderr
    assert "(app: shop.py:9 in <module>)" in result.stderr


@pytest.mark.parametrize("order", ["imported-after-install", "imported-before-install"])
def test_sqlalchemy_on_postgresql_through_psycopg2(postgresql_server, tmp_path, order):
    url = f"postgresql+psycopg2://hookwise@/postgres?host={postgresql_server}"
    result, events = run(tmp_path, url, order, "psycopg2")
    check_program_statements(events, "psycopg2", "postgresql", "postgres")
    assert "hunter2" not in (tmp_path / "events.jsonl").read_text() and "hunter2" not in result.stderr


@pytest.mark.parametrize("order", ["imported-after-install", "imported-before-install"])
def test_sqlalchemy_on_mariadb_through_pymysql(mariadb_server, tmp_path, order):
    url = f"mysql+pymysql://hookwise:hookwise-pw@localhost/shop?unix_socket={mariadb_server}"
    result, events = run(tmp_path, url, order, "pymysql")
    check_program_statements(events, "pymysql", "mysql", "shop")
    written = (tmp_path / "events.jsonl").read_text()
    for secret in ("hunter2", "hookwise-pw"):
        assert secret not in written and secret not in result.stderr


def test_the_driver_alone_names_sqlalchemy_as_its_caller(tmp_path):
    """Without SQLAlchemy's targets the driver's calls report, from SQLAlchemy's frame, for the program's line."""
    (tmp_path / "shop.py").write_text(PROGRAM)
    result = run_driver(["--hook", "sqlite3:Cursor.execute*", "--listener", "jsonl=events.jsonl", "shop.py",
                         "sqlite:///shop.db"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    starts = [e for e in read_jsonl(tmp_path / "events.jsonl") if e["event"] == "start"]
    assert [e["sql"]["statement"] for e in starts][1:] == [s for _, s, *_ in statements("qmark")]
    assert all(e["caller"]["file"].endswith("sqlalchemy/engine/default.py") for e in starts[1:])
    assert [e["app_caller"]["line"] for e in starts[1:]] == [7, 8, 9, 11, 13, 14]
