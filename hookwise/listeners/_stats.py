"""Duration statistics per target: collected cheaply per call, summarized at exit.

A call pays a push on ``started`` and a pop and an append on ``finished``,
under a lock. Sorting and percentiles happen once, in ``summary()``, when the
program exits. The stats listener prints the summary as a table; the html
report shows the same rows.

Two times per target, as cProfile has them:

- total: the time its calls took, where a call made while another call of the
  same target runs in the same lane is not counted again (``fib`` called by
  ``main`` shows at most ``main``'s time, however deep it recurses);
- self: the time its calls took minus the time of the hooked calls they made
  directly (each call's own time, added up; recursion cannot count it twice).

Lanes are where calls nest, as the timeline has them (see ``_timeline``): a
thread's calls outside asyncio tasks, and each task's calls. Generators, async
generators and coroutines driven outside a task are paused and resumed around
unrelated calls: they are nobody's parent and nobody's child, and each of
their calls counts whole, in both times.

Percentiles use the nearest-rank method: p95 is the smallest duration that at
least 95% of the calls did not exceed (always one of the measured durations).

Must never: look at argument or result values (statistics are about time), or
do more per call than the bookkeeping above.
"""

from _thread import RLock

from .console import format_duration

COLUMNS = ("target", "calls", "errors", "total", "self", "mean", "p50", "p95", "max")

_UNNESTED_KINDS = frozenset(("generator", "async_generator"))


def lane_of(kind, thread_id, task):
    """Where a call of ``kind`` nests: (thread, task), or None for a call that nests nowhere."""
    if kind in _UNNESTED_KINDS or (kind == "coroutine" and task is None):
        return None
    return (thread_id, task)


class _Open:
    """A call that started and has not finished: its lane's stack holds it."""

    __slots__ = ("target", "lane", "stack", "children_ns")

    def __init__(self, target, lane, stack):
        self.target = target
        self.lane = lane
        self.stack = stack
        self.children_ns = 0  # the time of the hooked calls it made directly, so far


class Durations:
    """Every finished call's duration, by target, with its total and self time."""

    def __init__(self):
        # re-entrant: this thread can come back while holding it, when the SIGTERM handler
        # closes the listeners, or the garbage collector finishes a hooked generator (an
        # end event) during an allocation in here
        self._lock = RLock()
        self._by_target = {}  # target -> [list of duration_ns, errors, total_ns, self_ns]
        self._open = {}  # call_id -> _Open, for the calls that nest in a lane
        self._stacks = {}  # lane -> [_Open, ...], innermost last
        self._running = {}  # (lane, target) -> how many calls of target are open in lane

    def started(self, call_id, target, lane):
        """A call began (``lane`` from ``lane_of``; None: it nests nowhere)."""
        if lane is None:
            return
        with self._lock:
            stack = self._stacks.get(lane)
            if stack is None:
                stack = self._stacks[lane] = []
            opened = _Open(target, lane, stack)
            stack.append(opened)
            self._open[call_id] = opened
            key = (lane, target)
            self._running[key] = self._running.get(key, 0) + 1

    def finished(self, call_id, target, duration_ns, failed):
        """A call ended (``failed``: it raised); its time goes to its target and its parent."""
        with self._lock:
            outermost, self_ns = True, duration_ns
            opened = self._open.pop(call_id, None)
            if opened is not None:
                stack = opened.stack
                position = len(stack) - 1 if stack and stack[-1] is opened else stack.index(opened)
                del stack[position]
                if not stack:  # a task's lane ends with the task: keep no lane for it
                    del self._stacks[opened.lane]
                if position:
                    stack[position - 1].children_ns += duration_ns
                self_ns = max(duration_ns - opened.children_ns, 0)
                key = (opened.lane, target)
                left = self._running.get(key, 1) - 1
                if left:
                    self._running[key] = left
                    outermost = False
                else:
                    self._running.pop(key, None)
            entry = self._by_target.get(target)
            if entry is None:
                entry = self._by_target[target] = [[], 0, 0, 0]
            entry[0].append(duration_ns)
            if failed:
                entry[1] += 1
            if outermost:
                entry[2] += duration_ns
            entry[3] += self_ns

    def after_fork_in_child(self):
        """A forked child counts its own calls: the parent's are in the parent's report."""
        self._lock = RLock()  # another thread may have held the parent's at the fork
        self._by_target = {}
        self._open = {}
        self._stacks = {}
        self._running = {}

    def summary(self):
        """One ``Row`` per target, the largest total time first."""
        with self._lock:
            snapshot = [(target, list(durations), errors, total, own)
                        for target, (durations, errors, total, own) in self._by_target.items()]
        rows = [Row(*entry) for entry in snapshot]
        rows.sort(key=lambda row: (-row.total_ns, row.target))
        return rows


class Row:
    """The statistics of one target's calls (durations in ns)."""

    __slots__ = ("target", "calls", "errors", "total_ns", "self_ns", "mean_ns", "p50_ns", "p95_ns", "max_ns")

    def __init__(self, target, durations, errors, total_ns, self_ns):
        durations.sort()
        count = len(durations)
        self.target = target
        self.calls = count
        self.errors = errors
        self.total_ns = total_ns
        self.self_ns = self_ns
        self.mean_ns = sum(durations) // count  # of each call's whole duration
        self.p50_ns = nearest_rank(durations, 50)
        self.p95_ns = nearest_rank(durations, 95)
        self.max_ns = durations[-1]

    def cells(self):
        """The row as shown: target, counts, then durations with units."""
        return (
            self.target,
            str(self.calls),
            str(self.errors),
            *(format_duration(ns) for ns in (self.total_ns, self.self_ns, self.mean_ns, self.p50_ns, self.p95_ns,
                                              self.max_ns)),
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
