"""Duration statistics per target: collected cheaply per call, summarized at exit.

``Durations.add`` is all a call pays: one append under a lock. Sorting and
percentiles happen once, in ``summary()``, when the program exits. The stats
listener prints the summary as a table; the html report shows the same rows.

Percentiles use the nearest-rank method: p95 is the smallest duration that at
least 95% of the calls did not exceed (always one of the measured durations).

Must never: look at argument or result values (statistics are about time), or
do more than an append per call.
"""

from _thread import RLock

from .console import format_duration

COLUMNS = ("target", "calls", "errors", "total", "mean", "p50", "p95", "max")


class Durations:
    """Every finished call's duration, by target, and how many of them raised."""

    def __init__(self):
        # re-entrant: this thread can come back while holding it, when the SIGTERM handler
        # closes the listeners, or the garbage collector finishes a hooked generator (an
        # end event) during an allocation in here
        self._lock = RLock()
        self._by_target = {}  # target -> [list of duration_ns, number of errors]

    def add(self, target, duration_ns, failed):
        with self._lock:
            entry = self._by_target.get(target)
            if entry is None:
                entry = self._by_target[target] = [[], 0]
            entry[0].append(duration_ns)
            if failed:
                entry[1] += 1

    def after_fork_in_child(self):
        """A forked child counts its own calls: the parent's are in the parent's report."""
        self._lock = RLock()  # another thread may have held the parent's at the fork
        self._by_target = {}

    def summary(self):
        """One ``Row`` per target, the largest total time first."""
        with self._lock:
            snapshot = [(target, list(durations), errors) for target, (durations, errors) in self._by_target.items()]
        rows = [Row(target, durations, errors) for target, durations, errors in snapshot]
        rows.sort(key=lambda row: (-row.total_ns, row.target))
        return rows


class Row:
    """The statistics of one target's calls (durations in ns)."""

    __slots__ = ("target", "calls", "errors", "total_ns", "mean_ns", "p50_ns", "p95_ns", "max_ns")

    def __init__(self, target, durations, errors):
        durations.sort()
        count = len(durations)
        self.target = target
        self.calls = count
        self.errors = errors
        self.total_ns = sum(durations)
        self.mean_ns = self.total_ns // count
        self.p50_ns = nearest_rank(durations, 50)
        self.p95_ns = nearest_rank(durations, 95)
        self.max_ns = durations[-1]

    def cells(self):
        """The row as shown: target, counts, then durations with units."""
        return (
            self.target,
            str(self.calls),
            str(self.errors),
            *(format_duration(ns) for ns in (self.total_ns, self.mean_ns, self.p50_ns, self.p95_ns, self.max_ns)),
        )


def nearest_rank(sorted_values, percent):
    """The ``percent``-th percentile of ascending ``sorted_values`` (nearest-rank)."""
    rank = -(-percent * len(sorted_values) // 100)  # ceil without floats
    return sorted_values[max(rank, 1) - 1]


def format_table(rows):
    """Aligned text: target left-aligned, every number right-aligned, a header line first."""
    table = [COLUMNS] + [row.cells() for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(len(COLUMNS))]
    lines = []
    for line in table:
        cells = [line[0].ljust(widths[0])]
        cells.extend(cell.rjust(width) for cell, width in zip(line[1:], widths[1:]))
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def describe(rows, process=None):
    """The one-line title above the table (naming the process, for a child of the run)."""
    calls, errors = count(rows)
    who = "" if process is None else f" for process {process}"
    return (f"hookwise stats{who}: {plural(calls, 'call')} of {plural(len(rows), 'target')}, "
            f"{plural(errors, 'error')}; slowest total first")


def count(rows):
    """(calls, errors) over all rows."""
    return sum(row.calls for row in rows), sum(row.errors for row in rows)


def plural(number, word):
    return f"{number} {word}{'s' if number != 1 else ''}"
