"""Named sets of targets: ``--preset NAME`` (repeatable), config ``presets = [...]``.

A preset's targets are quiet: one whose module is not installed (or not on this
platform) adds nothing and reports nothing, so ``--preset sql`` is safe on a
program that has no database at all. What their calls mean is rendered by
``hookwise.semantics`` (an SQL statement reads as one), whichever way they
were named.

With no hook and no preset named anywhere, ``DEFAULT`` applies: the embedded
default set of the project hookwise grew from.
"""

COMMANDS = (
    "os:system",
    "os:popen",
    "subprocess:Popen.__init__",
    "os:execv",
    "os:execve",
    "os:execl",
    "os:execle",
    "os:execlp",
    "os:execlpe",
    "os:execvp",
    "os:execvpe",
    "os:spawnv",
    "os:spawnve",
    "os:spawnl",
    "os:spawnle",
    "os:spawnlp",
    "os:spawnlpe",
    "os:spawnvp",
    "os:spawnvpe",
    "os:posix_spawn",
    "os:posix_spawnp",
)

FILES = (
    "builtins:open",
    "io:open",
    "os:open",
)

CODE = (
    "builtins:exec",
    "builtins:eval",
    "builtins:compile",
    "importlib:import_module",
    "marshal:loads",
)

# conn.execute(...) runs the cursor's execute (loader/c_types.py): the cursor
# methods alone report each statement once, from connections and cursors alike
SQL = (
    "sqlite3:Cursor.execute",
    "sqlite3:Cursor.executemany",
    "sqlite3:Cursor.executescript",
    # psycopg 3: conn.execute(...) runs a cursor's execute too
    "psycopg.cursor:Cursor.execute",
    "psycopg.cursor:Cursor.executemany",
    "psycopg.cursor_async:AsyncCursor.execute",
    "psycopg.cursor_async:AsyncCursor.executemany",
    # SQLAlchemy: where every statement it runs goes to the driver; the driver's call
    # inside it reports nothing then (runtime.StatementSite): one event per statement
    "sqlalchemy.engine.default:DefaultDialect.do_execute",
    "sqlalchemy.engine.default:DefaultDialect.do_executemany",
    "sqlalchemy.engine.default:DefaultDialect.do_execute_no_params",
    "sqlalchemy.dialects.mysql.mysqldb:MySQLDialect_mysqldb.do_executemany",  # PyMySQL's dialect too
    "sqlalchemy.dialects.postgresql.psycopg2:PGDialect_psycopg2.do_executemany",
    # psycopg2: methods of its C cursor (loader/psycopg2_types.py)
    "psycopg2.extensions:cursor.execute",
    "psycopg2.extensions:cursor.executemany",
    "psycopg2.extensions:cursor.callproc",
    "psycopg2.extensions:cursor.copy_expert",
    "psycopg2.extensions:cursor.copy_from",
    "psycopg2.extensions:cursor.copy_to",
    # the MySQL drivers: their executemany runs their execute per row or batch,
    # which reports nothing then (runtime.StatementSite): one event per call
    "pymysql.cursors:Cursor.execute",
    "pymysql.cursors:Cursor.executemany",
    "pymysql.cursors:Cursor.callproc",
    "MySQLdb.cursors:BaseCursor.execute",
    "MySQLdb.cursors:BaseCursor.executemany",
    "MySQLdb.cursors:BaseCursor.callproc",
    "mysql.connector.cursor:MySQLCursor.execute",
    "mysql.connector.cursor:MySQLCursor.executemany",
    "mysql.connector.cursor:MySQLCursor.callproc",
    "mysql.connector.cursor:MySQLCursorPrepared.execute",
    "mysql.connector.cursor:MySQLCursorPrepared.executemany",
    "mysql.connector.cursor_cext:CMySQLCursor.execute",
    "mysql.connector.cursor_cext:CMySQLCursor.executemany",
    "mysql.connector.cursor_cext:CMySQLCursor.callproc",
    "mysql.connector.cursor_cext:CMySQLCursorPrepared.execute",
    "mysql.connector.cursor_cext:CMySQLCursorPrepared.executemany",
)

# one event per request: urllib3 is what requests sends through; http.client's request
# is reported when the program calls it, and is part of urllib.request's call otherwise
HTTP = (
    "urllib.request:OpenerDirector.open",
    "http.client:HTTPConnection.request",
    "urllib3.connectionpool:HTTPConnectionPool.urlopen",
    "httpx._client:Client.send",
    "httpx._client:AsyncClient.send",
)

# every incoming request of a WSGI or ASGI application (hookwise.web)
WEB = ("web:request",)

DESERIALIZATION = (
    "pickle:loads",
    "pickle:load",
    "audit:pickle.find_class",  # every global a pickle stream imports, Unpickler subclasses included
    "marshal:loads",
    "marshal:load",
    "shelve:open",
    "yaml:load",
    "yaml:load_all",
    "yaml:unsafe_load",
    "yaml:unsafe_load_all",
    "yaml:full_load",
    "yaml:full_load_all",
)

NETWORK = (
    "socket:socket.connect",
    "socket:socket.connect_ex",
    "socket:socket.bind",
    "socket:socket.accept",
    "socket:socket.sendto",
    "socket:create_connection",
    "socket:getaddrinfo",
    "socket:gethostbyname",
    "socket:gethostbyname_ex",
    "socket:gethostbyaddr",
    "socket:getnameinfo",
)

PRESETS = {
    "commands": COMMANDS,
    "files": FILES,
    "code": CODE,
    "sql": SQL,
    "http": HTTP,
    "deserialization": DESERIALIZATION,
    "network": NETWORK,
    "web": WEB,
    "security": COMMANDS + FILES + CODE + SQL + HTTP + DESERIALIZATION + NETWORK,
}
"""Name -> its targets. ``security`` is all the others together but ``web``."""

DEFAULT = ("commands", "files", "code")


def targets_of(names):
    """The targets of the presets ``names``, each once, in order (KeyError for an unknown name)."""
    chosen = []
    for name in names:
        for text in PRESETS[name]:
            if text not in chosen:
                chosen.append(text)
    return chosen
