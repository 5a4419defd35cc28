"""What a call means, for the calls that have a meaning of their own: an SQL statement, an HTTP request.

A site whose defining target is a database API's execute (``sqlite3:Cursor.execute``)
has ``site.semantic``: an object that turns the call into the fields a person
reads, whichever way the target was named (``--preset sql`` or ``--hook``).
Every built-in output asks this module, so they all say the same:

- ``start_fields(call, render)``: ``("sql", {"system", "database", "statement",
  "params"})`` or None. The statement is the text itself, cut at
  ``STATEMENT_LIMIT`` characters (its own bound, larger than ``repr_limit``);
  the parameters are rendered as every value is (bounded, secrets redacted);
  the statement and the database lose the passwords of URLs and DSNs in them.
- ``end_fields(call, result)``: ``{"rows": N}`` where the driver says how many
  rows the statement changed (``cursor.rowcount`` >= 0), else ``{}``.

An outgoing HTTP request (urllib.request, urllib3 and so requests, httpx):
``("http", {"method", "url"})`` at the start, the URL's credentials and
secret-named query parameters redacted, and ``{"status"}`` at the end (or at
an error that carries one: urllib's ``HTTPError``). A semantic's ``end_key``
is the name its end fields go under (``sql``, ``response``).

Read them during the callbacks: they look at the cursor as it is then.
"""

from _functools import partial as _partial
from _weakref import ref as _weakref

from . import accel
from .call import _library_files, is_library_file
from .redaction import REDACTED, redact_credentials, redact_text
from .saferepr import safestr

STATEMENT_LIMIT = 4000
_CUT = "..."


class Sql:
    """An execute-like method of a DB-API cursor or connection: the statement is its first argument."""

    name = "sql"
    end_key = "sql"

    def __init__(self, system, statement="sql", parameters="parameters", database_of=None, statement_of=None):
        self.system = system  # the OpenTelemetry db.system value: sqlite, postgresql, mysql
        self.statement = statement  # keyword names, where a driver's parameters have them
        self.parameters = parameters
        self.database_of = database_of  # (self argument) -> database name or None
        self.statement_of = statement_of or self._statement_and_parameters  # (call) -> (statement, parameters)

    def _statement_and_parameters(self, call):
        args, kwargs = call.args, call.kwargs
        return (args[1] if len(args) > 1 else kwargs.get(self.statement),
                args[2] if len(args) > 2 else kwargs.get(self.parameters))

    def raw_statement(self, call):
        """(system, statement text) of the call, neither cut nor redacted: what the guard tokenizes."""
        return self.system, statement_text(self.statement_of(call)[0])

    def start_fields(self, call, render):
        statement, given = self.statement_of(call)
        database, statement = self.shown_database_and_statement(self.database_now(call), statement, render)
        params = None if self.no_parameters(given) else render.value(given)
        return self.name, {"system": self.system, "database": database, "statement": statement, "params": params}

    def database_now(self, call):
        """The name of the database the call's cursor or connection is on, as the driver says it now; or None."""
        if self.database_of is None:
            return None
        args = call.args
        try:
            return self.database_of(args[0]) if args else None
        except Exception:
            return None

    @staticmethod
    def shown_database_and_statement(database, statement, render):
        """(database, statement) as outputs show them: the statement as text, bounded; neither with a password."""
        statement = statement_text(statement)
        if render.redact:  # a DSN's password in an ATTACH or a connection string: never shown
            statement = statement if statement is None else redact_credentials(statement)
            database = database if database is None else redact_credentials(database)
        return database, statement

    @staticmethod
    def no_parameters(given):
        # None, or a default filled in: mysql-connector's C cursor's empty tuple
        return given is None or (isinstance(given, (tuple, list, dict)) and not given)

    def end_fields(self, call, result):
        try:
            rows = _rowcount(call.args[0], result)
        except Exception:
            return {}
        return {"rows": rows} if type(rows) is int and rows >= 0 else {}

    def error_fields(self, call, exc):
        return {}


def _rowcount(owner, result):
    """What the driver says the statement changed or returned: the cursor's ``rowcount``.

    The cursor is the call's own object (psycopg's executemany returns None,
    PyMySQL's execute a number), or for a connection's shortcut
    (sqlite3's ``conn.execute``) the cursor it returns.
    """
    rows = getattr(owner, "rowcount", None)
    return rows if rows is not None else result.rowcount


class DialectSql(Sql):
    """SQLAlchemy's execution point: ``dialect.do_execute(cursor, statement, parameters, context)``.

    The system is the dialect's (``mariadb`` read as ``mysql``, as the MySQL
    drivers' own events say), the database the one the engine's URL names,
    the rows the cursor's. ``with_parameters`` is False for ``do_execute_no_params``.
    """

    def __init__(self, with_parameters=True):
        names = ("cursor", "statement", "parameters", "context") if with_parameters else ("cursor", "statement", "context")
        self._names = names
        super().__init__(None, statement_of=self._dialect_statement, database_of=None)

    def _dialect_statement(self, call):
        given = dict(zip(self._names, _arguments(call, *self._names)))
        return given["statement"], given.get("parameters")

    def raw_statement(self, call):
        return self._system(call), statement_text(self._dialect_statement(call)[0])

    @staticmethod
    def _system(call):
        dialect = call.args[0] if call.args else None
        return _DIALECT_SYSTEMS.get(getattr(dialect, "name", None), getattr(dialect, "name", None))

    def start_fields(self, call, render):
        name, fields = super().start_fields(call, render)
        fields["system"] = self._system(call)
        database = self._database(call)
        fields["database"] = database if database is None or not render.redact else redact_credentials(database)
        return name, fields

    def _database(self, call):
        try:
            context = dict(zip(self._names, _arguments(call, *self._names)))["context"]
            database = context.root_connection.engine.url.database
        except Exception:
            return None
        return database if type(database) is str else None

    def end_fields(self, call, result):
        cursor = _arguments(call, "cursor")[0]
        rows = getattr(cursor, "rowcount", None)
        return {"rows": rows} if type(rows) is int and rows >= 0 else {}


_DIALECT_SYSTEMS = {"mariadb": "mysql"}


class Http:
    """An outgoing request: ``request_of(call)`` gives (method, url) from the call's arguments.

    ``headers_of(call)`` gives the request's header mapping, where a header
    can still be added (``carry_header``: the otel listener's traceparent).
    """

    name = "http"
    end_key = "response"

    def __init__(self, request_of, status_attribute="status", headers_of=None):
        self.request_of = request_of
        self.status_attribute = status_attribute
        self.headers_of = headers_of

    def _method_and_url(self, call):
        try:
            method, url = self.request_of(call)
        except Exception:
            return None, None
        if type(url) is not str:
            url = None if url is None else safestr(url, STATEMENT_LIMIT)
        return method, url

    def raw_url(self, call):
        """The request's URL, not redacted: what the guard looks for a host in."""
        return self._method_and_url(call)[1]

    def start_fields(self, call, render):
        method, url = self._method_and_url(call)
        if url is not None and render.redact:
            url = redact_text(url, render.is_secret)
        return self.name, {"method": method if type(method) is str else None, "url": url}

    def end_fields(self, call, result):
        if self.status_attribute is None:  # http.client: the answer comes later, from getresponse()
            return {}
        return _status(getattr(result, self.status_attribute, None))

    def error_fields(self, call, exc):
        return _status(getattr(exc, "code", None))  # urllib.error.HTTPError: the server answered


class Request:
    """An incoming request (``web:request``): its one argument is a ``hookwise.web.Request``."""

    name = "request"
    end_key = "response"

    def start_fields(self, call, render):
        request = call.args[0]
        query = request.query
        if query and render.redact:
            query = redact_text(query, render.is_secret)
        return self.name, {
            "method": request.method,
            "path": request.path,
            "query": query or None,
            "route": request.route,
            "client": request.client,
            "headers": shown_headers(request.headers, render),
        }

    def end_fields(self, call, result):
        return self._outcome(call, getattr(result, "status", None), getattr(result, "size", None))

    def error_fields(self, call, exc):
        request = call.args[0]
        return self._outcome(call, request.status, request.size)

    @staticmethod
    def _outcome(call, status, size):
        fields = {"status": status if type(status) is int else None, "size": size if type(size) is int else None}
        route = call.args[0].route
        if type(route) is str:
            fields["route"] = route  # known once the framework has matched it: after the start
        return fields


SHOWN_HEADERS = ("host", "user-agent", "accept", "content-type", "content-length", "referer", "origin",
                 "x-forwarded-for", "x-forwarded-proto", "x-real-ip", "x-request-id", "traceparent",
                 "authorization", "cookie")
"""The request headers outputs show (a fixed allow-list), in this order; the rest are left out."""
_ALWAYS_REDACTED_HEADERS = frozenset(("authorization", "cookie"))


def shown_headers(headers, render):
    """{name: value} of the allow-listed ``headers`` ([(lower-case name, value)]), secrets redacted."""
    found = {}
    for name, value in headers:
        if name in SHOWN_HEADERS and name not in found:
            if type(value) is not str:
                value = safestr(value, render.repr_limit)
            if render.redact:
                value = REDACTED if name in _ALWAYS_REDACTED_HEADERS else redact_text(value, render.is_secret)
            elif len(value) > render.repr_limit:
                value = value[: render.repr_limit] + _CUT
            found[name] = value
    return {name: found[name] for name in SHOWN_HEADERS if name in found}


def _status(value):
    return {"status": value} if type(value) is int else {}


def _arguments(call, *names):
    """The values of the named parameters (positional after self, or keyword), None where absent."""
    args, kwargs = call.args, call.kwargs
    return [args[index + 1] if len(args) > index + 1 else kwargs.get(name) for index, name in enumerate(names)]


def _urllib_request(call):
    fullurl, data = _arguments(call, "fullurl", "data")
    if type(fullurl) is str:
        return ("POST" if data is not None else "GET"), fullurl
    # a urllib.request.Request: the standard library's own attributes
    method = getattr(fullurl, "method", None) or ("POST" if getattr(fullurl, "data", None) is not None else "GET")
    return method, getattr(fullurl, "full_url", None)


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _urllib3_request(call):
    method, url = _arguments(call, "method", "url")
    pool = call.args[0]
    if type(url) is str and url.startswith("/"):  # the pool's own host: the path alone was given
        scheme, host, port = pool.scheme, pool.host, pool.port
        netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
        url = f"{scheme}://{netloc}{url}"
    return method, url


def _httpx_request(call):
    (request,) = _arguments(call, "request")
    return request.method, str(request.url)


def _http_client_request(call):
    method, url = _arguments(call, "method", "url")
    connection = call.args[0]
    if type(url) is str and url.startswith("/"):  # http.client is given the path: the connection has the rest
        scheme = "https" if hasattr(connection, "key_file") or type(connection).__name__ == "HTTPSConnection" else "http"
        host, port = connection.host, connection.port
        netloc = host if port in (None, _DEFAULT_PORTS.get(scheme)) else f"{host}:{port}"
        url = f"{scheme}://{'[' + netloc + ']' if ':' in host and port is None else netloc}{url}"
    return method, url


def _httpx_headers(call):
    (request,) = _arguments(call, "request")
    return request.headers


def _urllib3_headers(call):
    # requests passes its prepared request's headers; None means the pool's own defaults: not ours to change
    return _arguments(call, "method", "url", "body", "headers")[3]


class _UnredirectedHeaders:
    """A urllib.request.Request's headers for this request alone (not copied into a redirect)."""

    def __init__(self, request):
        self.request = request

    def __setitem__(self, name, value):
        self.request.add_unredirected_header(name.capitalize(), value)


def _urllib_headers(call):
    (fullurl,) = _arguments(call, "fullurl")
    # a URL string: the Request is made inside open(), out of reach
    return _UnredirectedHeaders(fullurl) if hasattr(fullurl, "add_unredirected_header") else None


def carry_header(call, name, value):
    """Add header ``name: value`` to the outgoing request ``call`` makes, where it can be added.

    The one place where hookwise changes what a program sends: W3C trace
    context, as every tracing instrumentation adds it. Never raises.
    """
    semantic = call.site.semantic
    headers_of = getattr(semantic, "headers_of", None)
    if headers_of is None:
        return False
    try:
        headers = headers_of(call)
        if headers is None or not hasattr(headers, "__setitem__"):
            return False
        headers[name] = value
    except Exception:
        return False
    return True


def statement_text(statement):
    """The statement as text, bounded by ``STATEMENT_LIMIT``; a non-text statement by its safe str.

    Bytes are read as UTF-8 (PyMySQL builds a batch INSERT as a bytearray, MySQLdb takes bytes).
    """
    if type(statement) in (bytes, bytearray):
        statement = bytes(statement[:STATEMENT_LIMIT * 4]).decode("utf-8", "replace")
    if type(statement) is not str:
        return None if statement is None else safestr(statement, STATEMENT_LIMIT)
    if len(statement) > STATEMENT_LIMIT:
        return statement[: STATEMENT_LIMIT - len(_CUT)] + _CUT
    return statement


# -- sqlite3's database names --------------------------------------------------------
# sqlite3 does not tell a connection's file: the connect stand-in (loader/c_types.py)
# remembers what the program asked for. Keyed by id, dropped when the connection
# goes: weakref callbacks, not a WeakKeyDictionary, whose Python methods the
# program may have hooked.
_sqlite_databases = {}


def remember_sqlite_database(connection, database):
    key = id(connection)
    try:
        reference = _weakref(connection, lambda _, key=key: _sqlite_databases.pop(key, None))
    except TypeError:
        return
    _sqlite_databases[key] = (reference, database if type(database) is str else safestr(database, 1000))


def _sqlite_database(owner):
    connection = getattr(owner, "connection", owner)  # a cursor's connection, or the connection itself
    entry = _sqlite_databases.get(id(connection))
    if entry is None or entry[0]() is not connection:
        return None
    return entry[1]


# -- which targets mean what ---------------------------------------------------------
def _psycopg_database(cursor):
    return cursor.connection.info.dbname  # what libpq says the connection is to


def _text(name):
    """A database name as text: PyMySQL keeps it as bytes once connected."""
    if type(name) is bytes:
        return name.decode("utf-8", "replace")
    return name if type(name) is str or name is None else safestr(name, 1000)


def _pymysql_database(cursor):
    return _text(cursor.connection.db)  # what the program connected to (select_db does not change it)


def _mysqldb_database(cursor):
    return _text(cursor.connection.database)


def _mysql_connector_database(cursor):
    # the attribute, not the `database` property, which asks the server (a query of its own)
    return _text(cursor._connection._database) or None


def _copy_statement(direction, names):
    """``copy_from`` / ``copy_to`` by the COPY statement psycopg2 sends for them (``COPY users (id, name) FROM stdin``)."""

    def statement_of(call):
        given = dict(zip(names, _arguments(call, *names)))
        table, columns = given["table"], given["columns"]
        listed = f" ({', '.join(map(str, columns))})" if columns else ""
        return (None if table is None else f"COPY {table}{listed} {direction}"), None

    return statement_of


_SQLITE = Sql("sqlite", database_of=_sqlite_database)
_PSYCOPG = Sql("postgresql", statement="query", parameters="params", database_of=_psycopg_database)
_PSYCOPG_MANY = Sql("postgresql", statement="query", parameters="params_seq", database_of=_psycopg_database)
_SQLITE_SCRIPT = Sql("sqlite", statement="sql_script", database_of=_sqlite_database)

_PSYCOPG2 = Sql("postgresql", statement="query", parameters="vars", database_of=_psycopg_database)
_PSYCOPG2_MANY = Sql("postgresql", statement="query", parameters="vars_list", database_of=_psycopg_database)
_PSYCOPG2_PROCEDURE = Sql("postgresql", statement="procname", parameters="parameters", database_of=_psycopg_database)
_PSYCOPG2_COPY = Sql("postgresql", database_of=_psycopg_database,
                     statement_of=lambda call: (_arguments(call, "sql")[0], None))  # the file is no parameter
_PSYCOPG2_COPY_FROM = Sql("postgresql", database_of=_psycopg_database,
                          statement_of=_copy_statement("FROM stdin", ("file", "table", "sep", "null", "size", "columns")))
_PSYCOPG2_COPY_TO = Sql("postgresql", database_of=_psycopg_database,
                        statement_of=_copy_statement("TO stdout", ("file", "table", "sep", "null", "columns")))
_PYMYSQL = Sql("mysql", statement="query", parameters="args", database_of=_pymysql_database)
_PYMYSQL_PROCEDURE = Sql("mysql", statement="procname", parameters="args", database_of=_pymysql_database)
_MYSQLDB = Sql("mysql", statement="query", parameters="args", database_of=_mysqldb_database)
_MYSQLDB_PROCEDURE = Sql("mysql", statement="procname", parameters="args", database_of=_mysqldb_database)
_CONNECTOR = Sql("mysql", statement="operation", parameters="params", database_of=_mysql_connector_database)
_CONNECTOR_MANY = Sql("mysql", statement="operation", parameters="seq_params", database_of=_mysql_connector_database)
_CONNECTOR_PROCEDURE = Sql("mysql", statement="procname", parameters="args", database_of=_mysql_connector_database)

_DIALECT = DialectSql()
_DIALECT_NO_PARAMETERS = DialectSql(with_parameters=False)

_URLLIB = Http(_urllib_request, headers_of=_urllib_headers)
_URLLIB3 = Http(_urllib3_request, headers_of=_urllib3_headers)
_HTTPX = Http(_httpx_request, status_attribute="status_code", headers_of=_httpx_headers)
# its headers default to a dict shared by every call: never added to (no traceparent through http.client)
_HTTP_CLIENT = Http(_http_client_request, status_attribute=None)

ROLES = {
    "web:request": Request(),
    "urllib.request:OpenerDirector.open": _URLLIB,
    "urllib3.connectionpool:HTTPConnectionPool.urlopen": _URLLIB3,
    "httpx._client:Client.send": _HTTPX,
    "httpx._client:AsyncClient.send": _HTTPX,
    "http.client:HTTPConnection.request": _HTTP_CLIENT,
    "sqlite3:Cursor.execute": _SQLITE,
    "sqlite3:Cursor.executemany": _SQLITE,
    "sqlite3:Cursor.executescript": _SQLITE_SCRIPT,
    "sqlite3:Connection.execute": _SQLITE,
    "sqlite3:Connection.executemany": _SQLITE,
    "sqlite3:Connection.executescript": _SQLITE_SCRIPT,
    "psycopg.cursor:Cursor.execute": _PSYCOPG,
    "psycopg.cursor:Cursor.executemany": _PSYCOPG_MANY,
    "psycopg.cursor_async:AsyncCursor.execute": _PSYCOPG,
    "psycopg.cursor_async:AsyncCursor.executemany": _PSYCOPG_MANY,
    # SQLAlchemy's execution point (and the dialects' own executemany): the drivers' calls inside it
    # report nothing (runtime.StatementSite), so each statement is reported once, by SQLAlchemy
    "sqlalchemy.engine.default:DefaultDialect.do_execute": _DIALECT,
    "sqlalchemy.engine.default:DefaultDialect.do_executemany": _DIALECT,
    "sqlalchemy.engine.default:DefaultDialect.do_execute_no_params": _DIALECT_NO_PARAMETERS,
    "sqlalchemy.dialects.mysql.mysqldb:MySQLDialect_mysqldb.do_executemany": _DIALECT,
    "sqlalchemy.dialects.postgresql.psycopg2:PGDialect_psycopg2.do_executemany": _DIALECT,
    # psycopg2's C cursor, served through the connections psycopg2.connect makes (loader/psycopg2_types.py)
    "psycopg2.extensions:cursor.execute": _PSYCOPG2,
    "psycopg2.extensions:cursor.executemany": _PSYCOPG2_MANY,
    "psycopg2.extensions:cursor.callproc": _PSYCOPG2_PROCEDURE,
    "psycopg2.extensions:cursor.copy_expert": _PSYCOPG2_COPY,
    "psycopg2.extensions:cursor.copy_from": _PSYCOPG2_COPY_FROM,
    "psycopg2.extensions:cursor.copy_to": _PSYCOPG2_COPY_TO,
    "pymysql.cursors:Cursor.execute": _PYMYSQL,
    "pymysql.cursors:Cursor.executemany": _PYMYSQL,
    "pymysql.cursors:Cursor.callproc": _PYMYSQL_PROCEDURE,
    "MySQLdb.cursors:BaseCursor.execute": _MYSQLDB,
    "MySQLdb.cursors:BaseCursor.executemany": _MYSQLDB,
    "MySQLdb.cursors:BaseCursor.callproc": _MYSQLDB_PROCEDURE,
    # mysql-connector-python: the pure-Python protocol's cursors, and those of its C extension (use_pure=False)
    "mysql.connector.cursor:MySQLCursor.execute": _CONNECTOR,
    "mysql.connector.cursor:MySQLCursor.executemany": _CONNECTOR_MANY,
    "mysql.connector.cursor:MySQLCursor.callproc": _CONNECTOR_PROCEDURE,
    "mysql.connector.cursor:MySQLCursorPrepared.execute": _CONNECTOR,
    "mysql.connector.cursor:MySQLCursorPrepared.executemany": _CONNECTOR_MANY,
    "mysql.connector.cursor_cext:CMySQLCursor.execute": _CONNECTOR,
    "mysql.connector.cursor_cext:CMySQLCursor.executemany": _CONNECTOR_MANY,
    "mysql.connector.cursor_cext:CMySQLCursor.callproc": _CONNECTOR_PROCEDURE,
    "mysql.connector.cursor_cext:CMySQLCursorPrepared.execute": _CONNECTOR,
    "mysql.connector.cursor_cext:CMySQLCursorPrepared.executemany": _CONNECTOR_MANY,
}


def role_of(target):
    """The semantic of the function defined as ``target`` ("module:qualname"), or None."""
    return ROLES.get(target)


def is_statement(target):
    """True when ``target``'s calls are reported once however deep they nest: an SQL statement, an
    outgoing HTTP request (their sites are ``runtime.StatementSite``)."""
    return isinstance(ROLES.get(target), (Sql, Http))


# -- a statement inside a statement ---------------------------------------------------
# code object of a rewritten statement or request function -> its site (binding tells us each one)
_statement_codes = {}


def know_statement_code(site):
    # any site-like object may be bound (the rewriter's tests bind stand-ins without a meaning)
    if isinstance(getattr(site, "semantic", None), (Sql, Http)) and site.code is not None:
        _statement_codes[site.code] = site


def inside_a_statement(frame, name="sql"):
    """True when ``frame``, the caller of a call meaning ``name`` ("sql", "http"), runs inside a
    reported call of the same meaning, in library code.

    The library frames (``hookwise.call.is_library_file``: the standard
    library, installed packages) between the call and the application's code
    are walked outwards: a driver's ``executemany`` reaches its ``execute``
    through a helper or a generator expression, mysql-connector's asks the
    server for its SQL mode from its connection module, SQLAlchemy's
    ``do_execute`` calls the cursor, ``urllib.request`` sends through
    ``http.client``. If one of them is a hooked function of that meaning that
    reports, the call is part of it. A call the program makes itself costs
    one lookup.
    """
    if _inside_in_c is not None:
        return _inside_in_c(frame, name, _statement_codes, _library_files, is_library_file)
    return _inside_a_statement_in_python(frame, name)


def _inside_a_statement_in_python(frame, name):
    # the reference: the accelerator's twin (hookwise/_callers.h) reads the frames without an audit event each
    while frame is not None:
        site = _statement_codes.get(frame.f_code)
        if site is not None and site.semantic.name == name:
            return bool(site.on)
        if not is_library_file(frame.f_code.co_filename):  # cached per file
            return False  # the application's own code: what it runs is its own statement
        frame = frame.f_back
    return False


_inside_in_c = accel.speedups.inside_a_statement if accel.ACTIVE else None


def statement_skip_in_c(other, name, own_globals):
    """The C wrapper's ``skip`` for a statement's site, all in C (loader.wrappers.statement_skip)."""
    return _partial(accel.speedups.statement_skip, other, name, own_globals, _statement_codes, _library_files,
                    is_library_file)


def start_fields(call, render):
    semantic = call.site.semantic
    return None if semantic is None else semantic.start_fields(call, render)


def end_fields(call, result):
    semantic = call.site.semantic
    return {} if semantic is None else semantic.end_fields(call, result)


def error_fields(call, exc):
    semantic = call.site.semantic
    return {} if semantic is None else semantic.error_fields(call, exc)


END_KEYS = {"sql": "sql", "http": "response", "request": "response"}
"""A semantic's name -> the key its end fields go under (also for calls read back from a recording)."""
