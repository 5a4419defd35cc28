"""``--listener jsonl=PATH``: one JSON object per event, one event per line.

Every line has ``event`` ("start", "end" or "error"), ``call_id``, ``target``
("module:qualname"), ``thread_id``, ``thread_name``, ``pid`` and ``ts_ns`` (wall
clock, ns). A start adds ``kind`` ("function", "generator", "coroutine",
"async_generator" or "builtin"), ``args`` (list of reprs), ``kwargs`` (name -> repr),
``caller`` ({"file", "line", "function"} or null), ``app_caller`` (the same
shape: the first frame outwards that is the application's own code, not the
standard library, an installed package or hookwise; null when there is none),
inside an asyncio task ``task``, and for an SQL statement (a DB-API execute:
``hookwise.semantics``) ``sql`` ({"system", "database", "statement",
"params"}; its end adds ``sql`` {"rows"} where the driver counts them), for
an outgoing HTTP request ``http`` ({"method", "url"}; its end, or an error
with a status, adds ``response`` {"status"}), for an incoming request (``web:request``,
kind "request") ``request`` ({"method", "path", "query", "route", "client",
"headers"}; its end or error adds ``response`` {"status", "size"} and, once
the framework matched one, ``request`` {"route"}); an end adds ``duration_ns`` and
``result`` (repr); an error adds ``duration_ns``, ``exception`` (repr) and
``exception_type`` (qualified name). Every event of a call made while a
request is served has ``request_id``: that request's ``call_id``.
Reprs are bounded and never fail. Each start is followed, some lines later, by
exactly one end or error with the same ``call_id`` and ``target`` (except calls
that never finish: a generator abandoned while suspended, a call running in a
daemon thread at exit, ``exec`` and ``os._exit``).

Lines are built by hand (no ``json`` import: the user may be hooking it).

How lines reach the file. The file is opened with O_APPEND: the run's first
process empties it, hookwise's child processes append to it (every line
carries ``pid``), and it is never opened through a symlink planted at its
path. Every write is of whole lines: on a local file system a regular file
takes each write whole, and a pipe each one up to PIPE_BUF, so lines from
threads and processes never tear or interleave (a short write, on a full
disk, is completed by a second one).

With the C accelerator, under the runner (``--listener jsonl=PATH``), lines
are gathered in a buffer of at most 64 KiB (4 KiB, PIPE_BUF, on a pipe or
FIFO) and written together: when it is full, when an event comes 10 ms or
more after its last write, and, when the program goes quiet, by the buffer's
own thread (a bare POSIX thread that never takes the GIL) 10 ms after its last
write; also before ``fork`` and ``exec``, at exit however the process ends
(normal end, ``sys.exit``, an uncaught exception, SIGTERM, ``os._exit``:
``loader.install`` finishes the listeners), and at once for the start of a
call that replaces the process (``os.execv``, ``os.execve``). So no line waits
more than about 10 ms. What a buffer can lose: a process killed by SIGKILL, by
the OOM killer, by another signal whose default action ends it (SIGHUP,
SIGQUIT), or by a crash of the interpreter loses the lines still in its
buffer: at most 64 KiB, all of them from the last 10 ms. After ``close`` (at
exit) every line is written at once. The pure-Python runtime has no such
thread, and writes each line at once; so does a ``JsonlListener`` made
directly (``may_buffer`` is for callers that flush and close it), and the
runner where SIGTERM would not let listeners finish (``hookwise._sigterm_guard``
not built).

Writes keep the GIL (``hookwise.writes``), with the C accelerator and the
pure-Python runtime alike: writing an event does not let the program's other
threads run in the middle of a call. Only a full pipe or FIFO makes a write
wait for its reader, with the GIL released, so that a reader among the
program's own threads can empty it.

Must never: write part of a line, let go of the GIL except for a full pipe,
keep a line longer than its buffer promises, or raise into the program (a
failed write is said once on stderr).
"""

import os

from .. import _originals, accel, report, writes
from ..render import Render, builds_its_first_argument, exception_type_name
from ..semantics import Sql
from . import require_arg
from ._jsontext import dumps

try:
    from _json import encode_basestring_ascii as _quote
except ImportError:  # pragma: no cover - every CPython build has _json

    def _quote(text):
        out = ['"']
        for char in text:
            code = ord(char)
            if char == '"' or char == "\\":
                out.append("\\" + char)
            elif code < 0x20 or code > 0x7E:
                if code > 0xFFFF:
                    code -= 0x10000
                    out.append("\\u%04x\\u%04x" % (0xD800 | (code >> 10), 0xDC00 | (code & 0x3FF)))
                else:
                    out.append("\\u%04x" % code)
            else:
                out.append(char)
        out.append('"')
        return "".join(out)


# The accelerator's json_reprs writes a list of values' safe reprs as JSON strings in one call (saferepr in C)
_json_reprs = getattr(accel.speedups, "json_reprs", None)
_json_kwargs = getattr(accel.speedups, "json_kwargs", None)
_FAST_LIMIT = 1 << 40  # the limits it takes: any a user gives, as an int

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
BUFFER_LIMIT = 64 * 1024
"""Bytes of lines a process keeps before writing them (on a regular file; PIPE_BUF on a pipe)."""
MAX_WAIT_NS = 10_000_000
"""No line waits longer than this after the buffer's last write: an event then writes the buffer with it,
and when the program goes quiet the buffer's own thread writes it."""
_REPLACES_PROCESS = frozenset(("execv", "execve"))  # os's and posix's: their start is written at once
_SQL_HEADS = 1_000  # statements whose JSON is remembered (see _sql_json), each of at most
_SQL_HEAD_STATEMENTS = 2_000  # characters: 4 MB at most, key and JSON


def from_spec(arg, settings):
    return JsonlListener(require_arg("jsonl", arg, "a path"), render=settings.render, append=settings.in_child)


class JsonlListener:
    def __init__(self, path, render=None, append=False):
        self.path = path
        self.render = render if render is not None else Render()
        self._fd = _originals.os_open(path, _FLAGS if append else _FLAGS | os.O_TRUNC, 0o666)
        may_block, self._regular = writes.may_block(self._fd, ours=True)
        self._out = writes.LineBuffer(self._fd, 0, MAX_WAIT_NS, may_block)  # every line at once until may_buffer()
        self._sites = {}  # site -> what its lines share (see _plan): a program has few sites
        self._sql_heads = {}  # (system, database, statement) -> its JSON (see _sql_json)
        limit = self.render.repr_limit
        # values shown by saferepr alone (no name of theirs to redact by) take the accelerator's path
        fast = type(limit) is int and 0 <= limit <= _FAST_LIMIT
        self._json_reprs = _json_reprs if fast else None
        self._json_kwargs = _json_kwargs if fast else None

    def may_buffer(self):
        """Gather lines from now on: every way the process ends will call ``flush`` or ``close``.

        Called by the runner (``loader.install``) once it has made sure of that,
        and by ``hookwise.convert``. Only a buffer that writes its lines when the
        program goes quiet gathers them (the C accelerator's).
        """
        if writes.WRITES_WHEN_QUIET:
            self._out.limit = BUFFER_LIMIT if self._regular else writes.PIPE_BUF

    # -- events -------------------------------------------------------------
    # The members every line of a call starts with (call_id, target, thread, pid, ts_ns,
    # request_id, duration_ns) are written by the buffer's add_call (in C with the
    # accelerator, hookwise.writes otherwise); each method here builds the rest of its line.
    def start(self, call):
        site = call.site
        plan = self._sites.get(site)
        if plan is None:
            plan = self._plan(site)
        target, head, simple, no_kwargs, at_once, builtin = plan
        render = self.render
        values = call.values
        if no_kwargs:
            kwargs = ""
        elif builtin and type(values[1]) is dict and not values[1]:  # a builtin called with no keywords
            kwargs = ""
        else:
            kwargs = self._kwargs_json(call)
        caller = call.caller
        where = _wheres.get(caller) or _where(caller)
        app_caller = call.app_caller
        app_where = where if app_caller is caller or app_caller == caller else _where(app_caller)
        task = call.task
        extra = "" if task is None else f',"task":{_quote(task)}'
        semantic = site.semantic
        if semantic is not None:  # "sql": {"system", "database", "statement", "params"}
            extra += self._sql_json(semantic, call) if type(semantic) is Sql else self._meaning_json(semantic, call)
        tail = f'],"kwargs":{{{kwargs}}},"caller":{where},"app_caller":{app_where}{extra}}}\n'
        try:
            if self._json_reprs is not None and (simple or (builtin and type(values[0]) is tuple)):
                # the accelerator's buffer shows every value itself (saferepr in C): no name to redact by
                self._out.add_call("start", call, target, head, values if simple else values[0], tail,
                                   render.repr_limit, render.secret_rule, render.user_reprs)
            # numbers and None are shown by the buffer itself; any other value by saferepr, here
            elif not (simple and self._out.add_call("start", call, target, head, values, tail, render.repr_limit)):
                self._out.add_call("start", call, target, head + self._args_json(call), None, tail, 0)
        except OSError as exc:
            self._failed(exc)
        if at_once:  # the process is replaced next: nothing may wait
            self.flush()

    def _meaning_json(self, semantic, call):
        """``,"name":{fields}`` of ``semantic.start_fields``."""
        meaning = semantic.start_fields(call, self.render)
        return f',{_quote(meaning[0])}:{dumps(meaning[1])}'

    def _sql_json(self, semantic, call):
        """``_meaning_json`` of a DB-API statement (``semantics.Sql``), its parts that repeat written once.

        A program runs the same statements on the same databases over and over: the
        JSON of (system, database, statement) is remembered, and only the parameters
        are rendered anew. The text is the same as ``_meaning_json``'s (tested).
        """
        statement, given = semantic.statement_of(call)
        database = semantic.database_now(call)
        remembered = type(statement) is str and (database is None or type(database) is str)
        key = (semantic.system, database, statement) if remembered else None
        head = self._sql_heads.get(key) if key is not None else None
        if head is None:
            render = self.render
            fields = {"system": semantic.system}
            fields["database"], fields["statement"] = semantic.shown_database_and_statement(database, statement,
                                                                                              render)
            head = f',"sql":{dumps(fields)[:-1]},"params":'
            if key is not None and len(statement) <= _SQL_HEAD_STATEMENTS and len(self._sql_heads) < _SQL_HEADS:
                self._sql_heads[key] = head
        if semantic.no_parameters(given):
            return head + "null}"
        render = self.render
        fast = self._json_reprs
        if fast is None:
            return f"{head}{_quote(render.value(given))}}}"
        return f"{head}{fast((given,), render.repr_limit, render.secret_rule, render.user_reprs)}}}"

    def _args_json(self, call):
        """The members of "args": render.args(call) as JSON strings, in one call to the accelerator where it can.

        For the calls ``start`` does not hand to the buffer whole: with the accelerator, those
        whose values have names to redact by (a builtin's, handed over, have none).
        """
        render, fast = self.render, self._json_reprs
        layout = call.site.params
        values = call.values
        if fast is None or layout is None or builds_its_first_argument(call):
            return ",".join([_quote(text) for text in render.args(call)])  # __init__'s self: half built
        limit, rule, user_reprs = render.repr_limit, render.secret_rule, render.user_reprs
        names, vararg = layout[0], layout[2]
        shown = fast(values, limit, rule, user_reprs, names)
        if vararg is not None:
            extra = values[len(names)]
            if render.is_secret(vararg):
                more = ",".join(['"***"'] * len(extra))
            else:
                more = fast(tuple(extra), limit, rule, user_reprs)
            shown = f"{shown},{more}" if shown and more else shown or more
        return shown

    def _kwargs_json(self, call):
        """The members of "kwargs": render.kwargs(call) as JSON, in one call to the accelerator where it can."""
        render = self.render
        if self._json_kwargs is not None:
            layout = call.site.params
            mapping = {} if layout is not None and not layout[3] and layout[4] is None else call.kwargs
            if type(mapping) is dict:
                shown = self._json_kwargs(mapping, render.repr_limit, render.secret_rule, render.user_reprs)
                if shown is not None:
                    return shown
        return ",".join([f"{_quote(name)}:{_quote(text)}" for name, text in render.kwargs(call).items()])

    def end(self, call, result):
        site = call.site
        plan = self._sites.get(site)
        if plan is None:
            plan = self._plan(site)
        semantic = site.semantic
        tail = "}\n" if semantic is None else f"{_outcome(semantic, semantic.end_fields(call, result))}}}\n"
        render = self.render
        try:
            if self._json_reprs is not None:  # the buffer shows the result itself (saferepr in C)
                self._out.add_call("end", call, plan[0], ',"result":', (result,), tail, render.repr_limit,
                                   render.secret_rule, render.user_reprs)
            elif not self._out.add_call("end", call, plan[0], ',"result":', (result,), tail, render.repr_limit):
                shown = _quote(render.value(result))  # not plain: shown by saferepr, here
                self._out.add_call("end", call, plan[0], f',"result":{shown}', None, tail, 0)
        except OSError as exc:
            self._failed(exc)

    def error(self, call, exc):
        self._write_error(call, exc, self.render.value(exc), exception_type_name(exc))

    def _write_error(self, call, exc, shown, type_name):
        site = call.site
        plan = self._sites.get(site)
        if plan is None:
            plan = self._plan(site)
        semantic = site.semantic
        extra = "" if semantic is None else _outcome(semantic, semantic.error_fields(call, exc))
        try:
            self._out.add_call("error", call, plan[0], "", None,
                               f',"exception":{_quote(shown)},"exception_type":{_quote(type_name)}{extra}}}\n', 0)
        except OSError as error:
            self._failed(error)

    def finding(self, finding):
        """``{"event": "finding", "rule", "severity", "action", "request", "sink", "input", "fragment", ...}``"""
        fields = finding.as_dict()
        self._add(
            f'{{"event":"finding","rule":{_quote(finding.rule)},"severity":{_quote(finding.severity)},'
            f'"action":{_quote(finding.action)},"request":{dumps(fields["request"])},"sink":{dumps(fields["sink"])},'
            f'"input":{dumps(fields["input"])},"fragment":{_quote(finding.fragment)},'
            f'"app_caller":{_where(finding.app_caller)},"thread_id":{finding.thread_id},'
            f'"thread_name":{_quote(finding.thread_name)},"pid":{finding.pid},"ts_ns":{finding.ts_ns}}}\n',
            finding.ts_ns,
        )

    def _plan(self, site):
        """What every line of ``site`` shares, worked out once: (target, head, simple, no_kwargs, at_once, builtin).

        ``target`` is its JSON text, ``head`` the start's members from ``kind`` to the opening of ``args``.

        ``simple``: the values are the positional arguments, each shown by its
        plain repr (no ``*args``, no secret-named parameter, not an ``__init__``,
        whose ``self`` is half built). ``no_kwargs``: no keyword-only parameter,
        no ``**kwargs``. ``builtin``: a replaced builtin (its values are (args,
        kwargs), without names), not an ``__init__``.
        """
        params = site.params
        render = self.render
        simple = (params is not None and params[2] is None and not params[3] and params[4] is None
                  and not any(render.is_secret(name) for name in params[0])
                  and site.qualname.rpartition(".")[2] != "__init__")
        no_kwargs = params is not None and not params[3] and params[4] is None
        at_once = site.kind == "builtin" and site.qualname in _REPLACES_PROCESS and site.module in ("os", "posix")
        builtin = params is None and site.qualname.rpartition(".")[2] != "__init__"
        plan = (_quote(site.target), f',"kind":{_quote(site.kind)},"args":[', simple, no_kwargs, at_once, builtin)
        if len(self._sites) < 10_000:
            self._sites[site] = plan
        return plan

    # -- output -------------------------------------------------------------
    def _add(self, line, ts_ns):
        try:
            self._out.add(line, ts_ns)
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc):
        report.warn_once(("jsonl", self.path), f"cannot write events to {self.path}: {exc.strerror or exc}")

    def flush(self):
        """Write what waits in the buffer (before ``fork`` and ``exec``)."""
        try:
            self._out.flush()
        except OSError as exc:
            self._failed(exc)

    def after_fork_in_child(self):
        self._out.drop()  # the parent writes what waited at the fork

    def close(self):
        """Write what waits; the file stays open, and later events (daemon threads, finalizers) go out at once."""
        self._out.limit = 0
        self.flush()


_REQUEST_ID = '"request_id":'


def _outcome(semantic, fields):
    """An end's or error's meaning, as JSON members: ``,"sql":{"rows":2}``, ``,"response":{"status":404}``.

    A request's route, matched after its start, goes with its end as ``"request":{"route":...}``.
    """
    if not fields:
        return ""
    route = fields.get("route")
    if route is None:
        return f',{_quote(semantic.end_key)}:{dumps(fields)}'
    fields = {name: value for name, value in fields.items() if name != "route"}
    return f',{_quote(semantic.end_key)}:{dumps(fields)},"request":{dumps({"route": route})}'


_wheres = {}  # Caller -> its JSON: a program's calls come from few lines, each quoted once (bounded)


def _where(caller):
    if caller is None:
        return "null"
    text = _wheres.get(caller)
    if text is None:
        text = f'{{"file":{_quote(caller.file)},"line":{_int(caller.line)},"function":{_quote(caller.function)}}}'
        if len(_wheres) < 10_000:
            _wheres[caller] = text
    return text


def _int(value):
    return value if isinstance(value, int) else "null"
