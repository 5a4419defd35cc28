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
Each line is written with one ``write`` to a file opened with O_APPEND, as it
happens: on a local file system a regular file takes each such write whole,
so lines from threads and processes do not interleave or tear (a short write,
on a full disk, is completed by a second one), and nothing is waiting in a
buffer when the process ends by a signal, ``os._exit``, ``exec`` or ``fork``.
With the C accelerator the write holds the GIL, so that writing an event
does not let the program's other threads run in the middle of a call. The
first process truncates the file; hookwise's child processes append to it
(every line carries ``pid``). The file is never opened through a symlink
planted at its path.
"""

import os
import stat

from .. import _originals, accel, report, semantics
from ..render import Render, exception_type_name
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


_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def from_spec(arg, settings):
    return JsonlListener(require_arg("jsonl", arg, "a path"), render=settings.render, append=settings.in_child)


class JsonlListener:
    def __init__(self, path, render=None, append=False):
        self.path = path
        self.render = render if render is not None else Render()
        self._fd = _originals.os_open(path, _FLAGS if append else _FLAGS | os.O_TRUNC, 0o666)
        self._write_whole = _write_whole_for(self._fd)

    # -- events -------------------------------------------------------------
    def start(self, call):
        render = self.render
        args = ",".join(_quote(text) for text in render.args(call))
        kwargs = ",".join(f"{_quote(name)}:{_quote(text)}" for name, text in render.kwargs(call).items())
        caller = call.caller
        where = _where(caller)
        app_caller = call.app_caller
        app_where = where if app_caller == caller else _where(app_caller)
        task = call.task
        extra = "" if task is None else f',"task":{_quote(task)}'
        meaning = semantics.start_fields(call, render)
        if meaning is not None:  # "sql": {"system", "database", "statement", "params"}
            extra += f',{_quote(meaning[0])}:{dumps(meaning[1])}'
        self._write(
            f'{{"event":"start",{self._common(call, call.start_ns)},"kind":"{call.kind}","args":[{args}],'
            f'"kwargs":{{{kwargs}}},"caller":{where},"app_caller":{app_where}{extra}}}\n'
        )

    def end(self, call, result):
        semantic = call.site.semantic
        extra = "" if semantic is None else _outcome(semantic, semantic.end_fields(call, result))
        self._write(
            f'{{"event":"end",{self._common(call, call.end_ns)},"duration_ns":{call.duration_ns},'
            f'"result":{_quote(self.render.value(result))}{extra}}}\n'
        )

    def error(self, call, exc):
        self._write_error(call, exc, self.render.value(exc), exception_type_name(exc))

    def _write_error(self, call, exc, shown, type_name):
        semantic = call.site.semantic
        extra = "" if semantic is None else _outcome(semantic, semantic.error_fields(call, exc))
        self._write(
            f'{{"event":"error",{self._common(call, call.end_ns)},"duration_ns":{call.duration_ns},'
            f'"exception":{_quote(shown)},"exception_type":{_quote(type_name)}{extra}}}\n'
        )

    def finding(self, finding):
        """``{"event": "finding", "rule", "severity", "action", "request", "sink", "input", "fragment", ...}``"""
        fields = finding.as_dict()
        self._write(
            f'{{"event":"finding","rule":{_quote(finding.rule)},"severity":{_quote(finding.severity)},'
            f'"action":{_quote(finding.action)},"request":{dumps(fields["request"])},"sink":{dumps(fields["sink"])},'
            f'"input":{dumps(fields["input"])},"fragment":{_quote(finding.fragment)},'
            f'"app_caller":{_where(finding.app_caller)},"thread_id":{finding.thread_id},'
            f'"thread_name":{_quote(finding.thread_name)},"pid":{finding.pid},"ts_ns":{finding.ts_ns}}}\n'
        )

    def _common(self, call, ts_ns):
        request_id = call.request_id  # the request being served when the call was made
        return (
            f'"call_id":{call.call_id},"target":{_name(call.target)},"thread_id":{call.thread_id},'
            f'"thread_name":{_name(call.thread_name)},"pid":{call.pid},"ts_ns":{ts_ns}'
            f'{"" if request_id is None else f",{_REQUEST_ID}{request_id}"}'
        )

    # -- output -------------------------------------------------------------
    def _write(self, line):
        try:
            self._write_whole(self._fd, line.encode("utf-8", "backslashreplace"))
        except OSError as exc:
            report.warn_once(("jsonl", self.path), f"cannot write events to {self.path}: {exc.strerror or exc}")

    def close(self):
        """Nothing is buffered; the file stays open for events after exit handlers ran."""


def _write_whole_for(fd):
    """How to write a line to ``fd``: without letting other threads run, where the C accelerator can.

    Our own descriptor of a pipe or FIFO becomes non-blocking, so that a full
    pipe makes the accelerator wait for room with the GIL released instead
    of holding it.
    """
    if accel.speedups is None:
        return report.write_all  # os.write: lets other threads run
    try:
        if not stat.S_ISREG(_originals.os_fstat(fd).st_mode):
            os.set_blocking(fd, False)
    except OSError:
        return report.write_all
    return accel.speedups.write_whole


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
_quoted_names = {}  # a target's or thread's name -> its JSON string (bounded)


def _where(caller):
    if caller is None:
        return "null"
    text = _wheres.get(caller)
    if text is None:
        text = f'{{"file":{_quote(caller.file)},"line":{_int(caller.line)},"function":{_quote(caller.function)}}}'
        if len(_wheres) < 10_000:
            _wheres[caller] = text
    return text


def _name(name):
    text = _quoted_names.get(name)
    if text is None:
        text = _quote(name)
        if len(_quoted_names) < 10_000:
            _quoted_names[name] = text
    return text


def _int(value):
    return value if isinstance(value, int) else "null"
