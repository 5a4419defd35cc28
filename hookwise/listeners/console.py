"""``--listener console``: one readable line per event on stderr (the default).

    hookwise start #3 __main__:Test1.div(self=<Test1>, x=10, y=2) [MainThread] from demo.py:41 in main

An SQL statement (``hookwise.semantics``) reads as itself:

    hookwise sql #5 SELECT * FROM users WHERE id = ? params=(3,) (sqlite shop.db) [MainThread] from shop.py:12 in find
    hookwise end   #5 sql (41.0 us)
    hookwise end   #6 sql -> 2 rows (63.2 us)
    hookwise http #7 GET https://api.example.com/v1/users?token=*** [MainThread] from shop.py:20 in sync
    hookwise end   #7 http -> 200 (31.4 ms)

A request a WSGI or ASGI application serves (``web:request``), and what it made:

    hookwise request #12 GET /user?name=bob [Thread-3] from client 127.0.0.1
    hookwise sql #13 SELECT * FROM users WHERE name = ? params=('bob',) (sqlite shop.db) [Thread-3] request #12 from shop.py:30 in user
    hookwise request #12 GET /user?name=bob -> 200 (3.10 ms) route=/user

Arguments still equal to a literal default (``shell=False``, ``bufsize=-1``) are
left out of the line; the JSONL listener records every argument.
    hookwise end   #3 __main__:Test1.div -> 5.0 (12.1 us)
    hookwise error #4 __main__:Test1.div !! ZeroDivisionError: division by zero (9.8 us)

Lines go to hookwise's private duplicate of stderr (see ``hookwise.report``),
so they never end up in output the program captures itself.
"""

import os
from _thread import RLock

from .. import report, semantics
from ..render import Render
from . import refuse_arg


def from_spec(arg, settings):
    refuse_arg("console", arg)
    return ConsoleListener(render=settings.render)


class ConsoleListener:
    def __init__(self, stream=None, render=None):
        self.stream = stream
        self.render = render if render is not None else Render()
        self._lock = RLock()  # re-entrant, for the reasons given in _stats.Durations
        self._cwd = os.getcwd()

    def after_fork_in_child(self):
        # a thread of the parent may have held the lock at the fork: it never lets go in the child
        self._lock = RLock()

    def _write(self, text):
        stream = self.stream if self.stream is not None else report.stream()
        with self._lock:
            stream.write(text + "\n")
            stream.flush()

    def start(self, call):
        meaning = semantics.start_fields(call, self.render)
        if meaning is not None and meaning[0] == "sql":
            line = f"hookwise sql #{call.call_id} {_sql_line(meaning[1])} [{call.thread_name}]"
        elif meaning is not None and meaning[0] == "http":
            fields = meaning[1]
            line = f"hookwise http #{call.call_id} {fields['method'] or '?'} {fields['url'] or '?'} [{call.thread_name}]"
        elif meaning is not None and meaning[0] == "request":  # who asked is the client, not the server's frame
            fields = meaning[1]
            client = "" if fields["client"] is None else f" from client {fields['client']}"
            self._write(f"hookwise request #{call.call_id} {_request_line(fields)} [{call.thread_name}]{client}")
            return
        else:
            line = f"hookwise start #{call.call_id} {call.target}({self._arguments(call)}) [{call.thread_name}]"
        if call.task is not None:
            line += f" task={call.task}"
        request_id = call.request_id
        if request_id is not None:  # made while request #N was served
            line += f" request #{request_id}"
        caller = call.caller
        if caller is not None:
            line += f" from {self._where(caller)}"
        app_caller = call.app_caller
        if app_caller is not None and app_caller != caller:  # the program's line, when a library made the call
            line += f" (app: {self._where(app_caller)})"
        self._write(line)

    def end(self, call, result):
        semantic = call.site.semantic
        if semantic is not None and semantic.name == "sql":  # the statement's outcome, not the cursor's repr
            rows = semantic.end_fields(call, result).get("rows")
            counted = "" if rows is None else f" -> {rows} row{'' if rows == 1 else 's'}"
            self._write(f"hookwise end   #{call.call_id} sql{counted} ({format_duration(call.duration_ns)})")
            return
        if semantic is not None and semantic.name == "http":  # the status, not the response object's repr
            status = semantic.end_fields(call, result).get("status", "?")
            self._write(f"hookwise end   #{call.call_id} http -> {status} ({format_duration(call.duration_ns)})")
            return
        if semantic is not None and semantic.name == "request":  # what was asked, and what was answered
            self._write(self._request_outcome(call, semantic.end_fields(call, result)))
            return
        self._write(
            f"hookwise end   #{call.call_id} {call.target} -> {self.render.value(result)}"
            f" ({format_duration(call.duration_ns)})"
        )

    def error(self, call, exc):
        semantic = call.site.semantic
        if semantic is not None and semantic.name == "request":
            self._write(self._request_outcome(call, semantic.error_fields(call, exc),
                                              f" !! {type(exc).__name__}: {self.render.exception_text(exc)}"))
            return
        if semantic is not None and semantic.name == "http":  # an HTTPError says the status the server gave
            status = semantic.error_fields(call, exc).get("status")
            answered = "" if status is None else f" -> {status}"
            self._write(f"hookwise error #{call.call_id} http{answered} !! {type(exc).__name__}: "
                        f"{self.render.exception_text(exc)} ({format_duration(call.duration_ns)})")
            return
        self._write(
            f"hookwise error #{call.call_id} {call.target} !! {type(exc).__name__}: {self.render.exception_text(exc)}"
            f" ({format_duration(call.duration_ns)})"
        )

    def finding(self, finding):
        """hookwise finding sql-injection (high) blocked: query parameter q "x' OR '1'='1" changes
        sqlite3:Cursor.execute #14 at "'x' OR '1'='1'" in GET /user (request #12) from app.py:20 in user"""
        request = finding.request
        where = "" if request is None else f" in {request['method']} {request['path']} (request #{request['request_id']})"
        app = "" if finding.app_caller is None else f" from {self._where(finding.app_caller)}"
        self._write(f"hookwise finding {finding.rule} ({finding.severity}) {finding.action}: {finding.input_source} "
                    f"{finding.input_value!r} {finding.verb} {finding.target} #{finding.call_id} at {finding.fragment!r}"
                    f"{where}{app}")

    def _request_outcome(self, call, outcome, failure=""):
        # hookwise request #12 GET /user?name=bob -> 200 (3.1 ms) route=/user/<name>
        line = _request_line(semantics.start_fields(call, self.render)[1])
        status = outcome.get("status")
        route = outcome.get("route")
        return (f"hookwise request #{call.call_id} {line} -> {'?' if status is None else status}{failure}"
                f" ({format_duration(call.duration_ns)}){'' if route is None else f' route={route}'}")

    def _arguments(self, call):
        if call.site.params is None:  # a replaced builtin: no parameter names to show
            parts = self.render.args(call)
            parts.extend(f"{name}={value}" for name, value in self.render.kwargs(call).items())
        else:
            parts = [f"{name}={value}" for name, value in self.render.arguments(call, changed_only=True).items()]
        return ", ".join(parts)

    def _where(self, caller):
        return f"{self._path(caller.file)}:{caller.line} in {caller.function}"

    def _path(self, path):
        if path.startswith(self._cwd + os.sep):
            return path[len(self._cwd) + 1 :]
        return path


def _sql_line(fields):
    # one line: the statement's own line breaks and indentation become single spaces
    statement = " ".join((fields["statement"] or "").split())
    line = statement if fields["params"] is None else f"{statement} params={fields['params']}"
    where = fields["system"] if fields["database"] is None else f"{fields['system']} {fields['database']}"
    return f"{line} ({where})"


def _request_line(fields):
    query = fields["query"]
    return f"{fields['method'] or '?'} {fields['path'] or '/'}{'' if not query else '?' + query}"


def format_duration(ns):
    if ns is None:
        return "?"
    if ns < 1_000:
        return f"{ns} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f} us"
    if ns < 1_000_000_000:
        return f"{ns / 1_000_000:.2f} ms"
    return f"{ns / 1_000_000_000:.3f} s"
