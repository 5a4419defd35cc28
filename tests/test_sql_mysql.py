"""``--preset sql`` on MariaDB through PyMySQL, mysqlclient (MySQLdb) and mysql-connector-python
(its pure-Python protocol and its C extension), against a real server (Debian's mariadb-server,
started once for the run on a Unix socket: ``mariadb_server`` in conftest.py). Fresh processes
through the driver, in both import orders.

A driver's ``executemany`` runs its ``execute`` per row or batch (with the values spliced into the
text for a multi-row INSERT), and mysql-connector's asks the server for its SQL mode meanwhile:
those inner calls are parts of the statement the program asked for, and report nothing.
"""

import pytest

from helpers import clean_env, read_jsonl, run_driver

PROGRAM = """\
import sys

driver, socket = sys.argv[1], sys.argv[2]
login = dict(unix_socket=socket, user="hookwise", password="hookwise-pw", database="shop", autocommit=True)
if driver == "pymysql":
    import pymysql
    connection = pymysql.connect(**login)
elif driver == "mysqlclient":
    import MySQLdb
    connection = MySQLdb.connect(**login)
else:
    import mysql.connector
    connection = mysql.connector.connect(**login, use_pure=driver == "connector-pure")
cursor = connection.cursor(buffered=True) if driver.startswith("connector") else connection.cursor()
cursor.execute("drop table if exists users")
cursor.execute("create table users (id int, name text, password text)")
cursor.executemany("insert into users values (%s, %s, %s)", [(1, "alice", "pw1"), (2, "bob", "pw2")])
cursor.executemany("update users set name = %s where id = %s", [("ALICE", 1), ("BOB", 2)])
cursor.execute("select name from users where id = %(id)s", {"id": 2, "password": "hunter2"})
print(list(cursor.fetchall()))
cursor.execute("select 'mysql://app:s3cret@db/shop' as dsn, %s as again", ("mysql://app:s3cret@db/shop",))
print(len(cursor.fetchall()))
cursor.execute("drop procedure if exists named")
cursor.execute("create procedure named(in wanted int) select name from users where id = wanted")
cursor.callproc("named", (1,))
if driver.startswith("connector"):
    print([list(result.fetchall()) for result in cursor.stored_results()])
else:
    print([list(cursor.fetchall())])
cursor.close()
connection.close()
"""

# the class whose methods run, and the module the early listener imports
DRIVERS = {
    "pymysql": ("pymysql.cursors:Cursor", "pymysql"),
    "mysqlclient": ("MySQLdb.cursors:BaseCursor", "MySQLdb"),
    "connector-pure": ("mysql.connector.cursor:MySQLCursor", "mysql.connector"),
    "connector-c": ("mysql.connector.cursor_cext:CMySQLCursor", "mysql.connector"),
}

DSN = "mysql://app:***@db/shop"
# (method, statement, params, rows, line of the program)
STATEMENTS = [
    ("execute", "drop table if exists users", None, 0, 15),
    ("execute", "create table users (id int, name text, password text)", None, 0, 16),
    ("executemany", "insert into users values (%s, %s, %s)", "[(1, 'alice', 'pw1'), (2, 'bob', 'pw2')]", 2, 17),
    ("executemany", "update users set name = %s where id = %s", "[('ALICE', 1), ('BOB', 2)]", 2, 18),
    ("execute", "select name from users where id = %(id)s", "{'id': 2, 'password': '***'}", 1, 19),
    ("execute", f"select '{DSN}' as dsn, %s as again", f"('{DSN}',)", 1, 21),
    ("execute", "drop procedure if exists named", None, 0, 23),
    ("execute", "create procedure named(in wanted int) select name from users where id = wanted", None, 0, 24),
    ("callproc", "named", "(1,)", 1, 25),
]


@pytest.mark.parametrize("order", ["imported-after-install", "imported-before-install"])
@pytest.mark.parametrize("driver", list(DRIVERS))
def test_every_statement_once_with_its_database_params_and_rows(mariadb_server, tmp_path, driver, order):
    cursor_class, module = DRIVERS[driver]
    (tmp_path / "shop.py").write_text(PROGRAM)
    (tmp_path / "early.py").write_text(f"import {module}\n\nclass Nothing:\n    def end(self, call, result):\n        pass\n")
    extra = ["--listener", "early:Nothing"] if order == "imported-before-install" else []
    result = run_driver(["--preset", "sql", "--strict", "--listener", "jsonl=events.jsonl", "--listener", "console",
                         *extra, "shop.py", driver, mariadb_server], cwd=tmp_path,
                        env=clean_env(PYTHONPATH=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[('BOB',)]\n1\n[[('ALICE',)]]\n"
    events = read_jsonl(tmp_path / "events.jsonl")
    starts = [event for event in events if event["event"] == "start"]
    assert [(e["target"], e["sql"]["statement"], e["sql"]["params"], e["sql"]["system"], e["sql"]["database"])
            for e in starts] == [(f"{cursor_class}.{method}", statement, params, "mysql", "shop")
                                 for method, statement, params, _, _ in STATEMENTS]
    ends = {event["call_id"]: event for event in events if event["event"] == "end"}
    assert [ends[e["call_id"]]["sql"].get("rows") for e in starts] == [rows for *_, rows, _ in STATEMENTS]
    assert [e["app_caller"]["line"] for e in starts] == [line for *_, line in STATEMENTS]
    assert [e["caller"]["line"] for e in starts] == [line for *_, line in STATEMENTS]
    assert "hookwise sql #3 insert into users values (%s, %s, %s) params=[(1, 'alice', 'pw1'), (2, 'bob', 'pw2')] " \
           "(mysql shop) [MainThread] from shop.py:17 in <module>" in result.stderr
    assert "hookwise end   #4 sql -> 2 rows" in result.stderr
    # the secret-named parameter and the URL's password: in no output
    written = (tmp_path / "events.jsonl").read_text()
    for secret in ("hunter2", "s3cret", "hookwise-pw"):
        assert secret not in written and secret not in result.stderr


def test_a_driver_used_alone_is_heard_without_the_preset(mariadb_server, tmp_path):
    """--hook on execute alone: PyMySQL's executemany then reports each execute it runs, as the statements they are."""
    (tmp_path / "shop.py").write_text(PROGRAM)
    result = run_driver(["--hook", "pymysql.cursors:Cursor.execute", "--listener", "jsonl=events.jsonl", "shop.py",
                         "pymysql", mariadb_server], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    starts = [e for e in read_jsonl(tmp_path / "events.jsonl") if e["event"] == "start"]
    statements = [e["sql"]["statement"] for e in starts]
    # the INSERT as one statement of spliced values (PyMySQL's own batch), the UPDATE once per row
    assert "insert into users values (1, 'alice', 'pw1'),(2, 'bob', 'pw2')" in statements
    assert statements.count("update users set name = %s where id = %s") == 2
    assert {e["caller"]["file"].rpartition("/")[2] for e in starts} == {"shop.py", "cursors.py"}
