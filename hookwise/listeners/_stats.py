"""Duration statistics per target: collected cheaply per call, summarized at exit.

A call pays a push when it starts and a pop and an append when it finishes
(no lock: see ``Durations``). Sorting and percentiles happen once, in
``summary()``, when the program exits. The stats listener prints the summary
as a table; the html report shows the same rows.

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

from sys import modules as _modules

from .console import format_duration

COLUMNS = ("target", "calls", "errors", "total", "self", "mean", "p50", "p95", "max")


class _Lane:
    """The calls open in one lane, innermost last, as three parallel lists.

    Only the lane's own thread touches it. Parallel lists of plain values, not
    an object per call: on the hot path every allocation and every attribute
    read shows (``in`` over ``targets`` is a C loop of identity checks).
    """

    __slots__ = ("ids", "targets", "children")

    def __init__(self):
        self.ids = []  # call ids
        self.targets = []
        self.children = []  # the time of the hooked calls each made directly, so far


class Durations:
    """Every finished call's duration, by target, with its total and self time.

    No lock: a lane, and the rows a thread adds to, are only ever touched by
    that thread (the shared dicts are only read and written whole, which the
    GIL makes atomic). So a thread that comes back in here while it is in here
    (the SIGTERM handler closing the listeners, the garbage collector
    finishing a hooked generator during an allocation) cannot deadlock.
    """

    read_tasks = False
    """True: always read ``call.task`` (recorded calls carry it); live calls read it once asyncio is loaded."""

    def __init__(self):
        self._lanes = {}  # (thread, task) -> _Lane
        self._rows = {}  # thread -> {target: [list of duration_ns, errors, total_ns, self_ns]}

    def _lane_key(self, call):
        """(thread, task) where ``call`` nests, or None: it nests nowhere."""
        kind = call.kind
        if kind == "function" or kind == "builtin":
            # outside asyncio there is no task, and reading it costs a lookup per call
            if self.read_tasks or _modules.get("asyncio") is not None:
                return (call.thread_id, call.task)
            return (call.thread_id, None)
        if kind == "coroutine":
            task = call.task
            return (call.thread_id, task) if task is not None else None  # driven by hand: nowhere
        return None  # generators are resumed around unrelated calls

    # The listener callbacks themselves (stats and html use these bound methods
    # as their own): every frame between the runtime and the bookkeeping costs.
    def call_started(self, call):
        key = self._lane_key(call)
        if key is None:
            return
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = _Lane()
        lane.ids.append(call.call_id)
        lane.targets.append(call.target)
        lane.children.append(0)

    def call_raised(self, call, exc):
        self.call_returned(call, None)
        self._rows[call.thread_id][call.target][1] += 1  # errors are rare: they pay the second frame

    def call_returned(self, call, result):
        """The call's time goes to its target (total once per lane, self without its children) and its parent."""
        duration_ns = call.duration_ns
        target = call.target
        outermost, self_ns = True, duration_ns
        key = self._lane_key(call)
        lane = self._lanes.get(key) if key is not None else None
        if lane is not None:
            ids = lane.ids
            call_id = call.call_id
            if ids and ids[-1] == call_id:
                ids.pop()
                lane.targets.pop()
                children = lane.children.pop()
                position = len(ids)
            else:  # nesting broken (two tasks of one name), or it started before asyncio was loaded
                position = ids.index(call_id) if call_id in ids else -1
                if position >= 0:
                    del ids[position], lane.targets[position]
                    children = lane.children.pop(position)
            if position >= 0:
                if position:
                    lane.children[position - 1] += duration_ns
                self_ns = duration_ns - children if duration_ns > children else 0
                outermost = target not in lane.targets
                if not ids and key[1] is not None:  # a task's lane ends with its task
                    self._lanes.pop(key, None)
        thread = call.thread_id
        rows = self._rows.get(thread)
        if rows is None:
            rows = self._rows[thread] = {}
        row = rows.get(target)
        if row is None:
            row = rows[target] = [[], 0, 0, 0]
        row[0].append(duration_ns)
        if outermost:
            row[2] += duration_ns
        row[3] += self_ns

    def after_fork_in_child(self):
        """A forked child counts its own calls: the parent's are in the parent's report."""
        self._lanes = {}
        self._rows = {}

    def summary(self):
        """One ``Row`` per target, the largest total time first."""
        merged = {}
        for rows in list(self._rows.values()):
            for target, (durations, errors, total, own) in list(rows.items()):
                into = merged.get(target)
                if into is None:
                    into = merged[target] = [[], 0, 0, 0]
                into[0].extend(durations)
                into[1] += errors
                into[2] += total
                into[3] += own
        rows = [Row(target, *values) for target, values in merged.items()]
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
