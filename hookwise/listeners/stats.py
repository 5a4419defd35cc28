"""``--listener stats`` or ``stats=PATH``: a table of call durations per target, at exit.

    hookwise stats: 2005 calls of 3 targets, 40 errors; slowest total first
    target           calls  errors     total     mean      p50      p95      max
    __main__:main        1       0  40.12 ms  40.12 ms  40.12 ms  40.12 ms  40.12 ms
    __main__:work     2000      40   3.10 ms   1.5 us   1.4 us   2.1 us  35.2 us

One row per target that finished at least one call: how many calls, how many
raised, and their total / mean / median / 95th percentile / longest duration
(see ``_stats`` for the percentile rule). Calls still running at exit are not
counted. The table goes to hookwise's stderr (see ``hookwise.report``), or to
PATH, created when the listener is. A forked child that exits normally
prints nothing: it inherited the parent's numbers, which the parent prints.

Must never: show argument or result values, or cost a call more than an
append (the numbers are worked out at exit).
"""

from .. import _originals, report
from . import _output
from ._stats import Durations, describe, format_table


def from_spec(arg, settings):
    if arg == "":
        arg = None  # ``stats=`` means the default, stderr
    return StatsListener(_output.create(arg) if arg is not None else None)


class StatsListener:
    def __init__(self, output=None):
        self._output = output  # an _output.OutputFile, or None for hookwise's stderr
        self._durations = Durations()
        self._closed = False
        self._pid = _originals.os_getpid()

    def end(self, call, result):
        self._durations.add(call.target, call.duration_ns, False)

    def error(self, call, exc):
        self._durations.add(call.target, call.duration_ns, True)

    def text(self):
        rows = self._durations.summary()
        if not rows:
            return "hookwise stats: no hooked call finished\n"
        return describe(rows) + "\n" + format_table(rows)

    def close(self):
        # a forked child inherited the parent's durations: the parent prints them
        if self._closed or _originals.os_getpid() != self._pid:
            return
        self._closed = True
        text = self.text()
        if self._output is not None:
            self._output.write(text)
        else:
            report.write_line(text)
