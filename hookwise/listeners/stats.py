"""``--listener stats`` or ``stats=PATH``: a table of call durations per target, at exit.

    hookwise stats: 2005 calls of 3 targets, 40 errors; slowest total first
    target           calls  errors     total      self     mean      p50      p95      max
    __main__:main        1       0  40.12 ms  37.02 ms  40.12 ms  40.12 ms  40.12 ms  40.12 ms
    __main__:work     2000      40   3.10 ms   3.10 ms   1.5 us   1.4 us   2.1 us  35.2 us

One row per target that finished at least one call: how many calls, how many
raised, their total time (a recursive call counted once, as cProfile's
cumulative time) and self time (without the hooked calls they made), and the
mean / median / 95th percentile / longest duration of one call (see ``_stats``
for both times and the percentile rule). Calls still running at exit are not
counted. The table goes to hookwise's stderr (see ``hookwise.report``), or to
PATH, created when the listener is. Every process of the run counts its own
calls: a child process (started under hookwise, or forked) prints its own
table titled with its pid, when it finished a hooked call, or writes it beside
PATH (see ``_output``).

Must never: show argument or result values, or do more per call than
``Durations`` books (the numbers are worked out at exit).
"""

from .. import _originals, report
from . import _output
from ._stats import Durations, describe, format_table


def from_spec(arg, settings):
    if arg == "":
        arg = None  # ``stats=`` means the default, stderr
    output = _output.create(arg, in_child=settings.in_child) if arg is not None else None
    return StatsListener(output, child=settings.in_child)


class StatsListener:
    def __init__(self, output=None, child=False):
        self._output = output  # an _output.OutputFile, or None for hookwise's stderr
        self._to_stderr = output is None
        self._durations = Durations()
        self._pid = _originals.os_getpid()
        self._child = child  # a child process of the run: its table names it
        self._closed = False
        # the callbacks are the bookkeeping's own methods: no frame of ours in between
        self.start = self._durations.call_started
        self.end = self._durations.call_returned
        self.error = self._durations.call_raised

    def after_fork_in_child(self):
        self._durations.after_fork_in_child()
        self._pid = _originals.os_getpid()
        self._child = True
        if self._output is not None:
            self._output = self._output.for_forked_child()

    def text(self):
        rows = self._durations.summary()
        process = self._pid if self._child else None
        if not rows:
            who = "" if process is None else f" for process {process}"
            return f"hookwise stats{who}: no hooked call finished\n"
        return describe(rows, process) + "\n" + format_table(rows)

    def close(self):
        # without the runtime's fork handler, a forked child would hold the parent's numbers
        if self._closed or _originals.os_getpid() != self._pid:
            return
        self._closed = True
        if self._to_stderr:
            if self._child and not self._durations.summary():
                return  # a child that called nothing hooked (a helper process) says nothing
            report.write_line(self.text())
        elif self._output is not None:
            self._output.write(self.text())
