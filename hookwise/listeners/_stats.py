"""Duration statistics per target: collected cheaply per call, summarized at exit.

A call pays a push when it starts and a pop and an append when it finishes
(no lock: see ``Durations``); one call in ``BATCH`` also counts a batch of
durations into a histogram. Percentiles are worked out once, in
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

Memory is bounded per target, whatever the number of calls. Errors, total
and self time are running sums. A target's durations (on each thread) are
kept as they are in batches of ``BATCH``; each full batch is counted in the
target's histogram (sorted once, then one step per bucket it touches), with
``2 ** BUCKET_BITS`` buckets per power of two (``bucket``), next to the exact
count, sum and maximum of what it counted. A target of a long run holds one
batch and at most a few thousand histogram counters (a few hundred for
durations that stay within a thousandfold of each other).

Percentiles use the nearest-rank method: p95 is the smallest duration that at
least 95% of the calls did not exceed. While a target has had fewer than
``BATCH`` calls on each thread, p50 and p95 are exactly one of the measured
durations; after that, each is the middle of the histogram bucket that holds
the exact value (never above the maximum), within ``RELATIVE_ERROR`` (1/128,
under 0.8%) of it. The count, mean and max are always exact.

Must never: look at argument or result values (statistics are about time), or
do more per call than the bookkeeping above.
"""

from bisect import bisect_left as _bisect_left
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


BATCH = 256
"""Durations of one target (on one thread) kept as they are before they are counted in its histogram."""
BUCKET_BITS = 6
"""log2 of the histogram's buckets per power of two."""
RELATIVE_ERROR = 1 / (1 << (BUCKET_BITS + 1))
"""Once a target's durations are in its histogram: how far (relatively) p50 and p95 can be from the exact
nearest-rank value."""
_TOP = BUCKET_BITS + 1  # significant bits a bucket keeps: 64 to 127 is the top of every bucket


def bucket(ns):
    """The histogram bucket of a duration: durations under 128 ns are their own bucket; longer ones
    keep their 7 leading bits, as ``(shift << 7) | top``, so a bucket is 1/64 of its power of two wide."""
    shift = ns.bit_length() - _TOP
    return ns if shift <= 0 else (shift << _TOP) | (ns >> shift)


def bucket_middle(key):
    """The duration that stands for bucket ``key``: its middle (within RELATIVE_ERROR of any duration in it)."""
    shift = key >> _TOP
    if shift <= 0:
        return key
    low = (key & ((1 << _TOP) - 1)) << shift
    return low + (1 << (shift - 1))


# A row, per thread and target, is a list read and written in place on the hot path:
# the durations not yet counted in the histogram, errors, total, self, then the histogram's
# count, sum and maximum of the durations it counted, and the histogram (None until the first batch).
_DURATIONS, _ERRORS, _TOTAL, _SELF, _COUNT, _SUM, _MAX, _HISTOGRAM = range(8)


def _new_row():
    return [[], 0, 0, 0, 0, 0, 0, None]


def _fold(row):
    """Count the row's kept durations in its histogram (a batch: sorted once, then one step per bucket)."""
    batch, row[_DURATIONS] = row[_DURATIONS], []
    if not batch:
        return
    batch.sort()
    histogram = row[_HISTOGRAM]
    if histogram is None:
        histogram = row[_HISTOGRAM] = {}
    row[_COUNT] += len(batch)
    row[_SUM] += sum(batch)
    if batch[-1] > row[_MAX]:
        row[_MAX] = batch[-1]
    start, end = 0, len(batch)
    while start < end:
        ns = batch[start]
        shift = ns.bit_length() - _TOP
        if shift <= 0:
            key, above = ns, ns + 1
        else:
            top = ns >> shift
            key, above = (shift << _TOP) | top, (top + 1) << shift
        stop = _bisect_left(batch, above, start)
        histogram[key] = histogram.get(key, 0) + stop - start
        start = stop


class Durations:
    """Every finished call's duration, by target, with its total and self time, in bounded memory.

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
        self._rows = {}  # thread -> {target: row (see _new_row)}

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
        self._rows[call.thread_id][call.target][_ERRORS] += 1  # errors are rare: they pay the second frame

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
            row = rows[target] = _new_row()
        if outermost:
            row[2] += duration_ns  # _TOTAL
        row[3] += self_ns  # _SELF
        durations = row[0]  # _DURATIONS
        durations.append(duration_ns)
        if len(durations) >= BATCH:
            _fold(row)

    def after_fork_in_child(self):
        """A forked child counts its own calls: the parent's are in the parent's report."""
        self._lanes = {}
        self._rows = {}

    def summary(self):
        """One ``Row`` per target, the largest total time first."""
        merged = {}
        for rows in list(self._rows.values()):
            for target, row in list(rows.items()):
                into = merged.get(target)
                if into is None:
                    into = merged[target] = _new_row()
                _merge(into, list(row))  # a copy: the thread may go on adding to its row
        rows = [Row(target, values) for target, values in merged.items()]
        rows.sort(key=lambda row: (-row.total_ns, row.target))
        return rows


def _merge(into, row):
    into[_DURATIONS].extend(row[_DURATIONS])
    for index in (_ERRORS, _TOTAL, _SELF, _COUNT, _SUM):
        into[index] += row[index]
    into[_MAX] = max(into[_MAX], row[_MAX])
    if row[_HISTOGRAM] is not None:
        if into[_HISTOGRAM] is None:
            into[_HISTOGRAM] = {}
        histogram = into[_HISTOGRAM]
        for key, number in list(row[_HISTOGRAM].items()):
            histogram[key] = histogram.get(key, 0) + number


class Row:
    """The statistics of one target's calls (durations in ns)."""

    __slots__ = ("target", "calls", "errors", "total_ns", "self_ns", "mean_ns", "p50_ns", "p95_ns", "max_ns")

    def __init__(self, target, row):
        self.target = target
        self.errors = row[_ERRORS]
        self.total_ns = row[_TOTAL]
        self.self_ns = row[_SELF]
        if row[_HISTOGRAM] is None:  # every duration is still here: exact percentiles
            durations = sorted(row[_DURATIONS])
            self.calls = len(durations)
            self.mean_ns = sum(durations) // self.calls  # of each call's whole duration
            self.p50_ns = nearest_rank(durations, 50)
            self.p95_ns = nearest_rank(durations, 95)
            self.max_ns = durations[-1]
            return
        row = list(row)
        row[_HISTOGRAM] = dict(row[_HISTOGRAM])
        _fold(row)
        self.calls = row[_COUNT]
        self.mean_ns = row[_SUM] // self.calls
        self.max_ns = row[_MAX]
        buckets = sorted(row[_HISTOGRAM].items())
        self.p50_ns = min(bucket_middle(histogram_rank(buckets, self.calls, 50)), self.max_ns)
        self.p95_ns = min(bucket_middle(histogram_rank(buckets, self.calls, 95)), self.max_ns)

    def cells(self):
        """The row as shown: target, counts, then durations with units."""
        return (
            self.target,
            str(self.calls),
            str(self.errors),
            *(format_duration(ns) for ns in (self.total_ns, self.self_ns, self.mean_ns, self.p50_ns, self.p95_ns,
                                              self.max_ns)),
        )


def histogram_rank(buckets, count, percent):
    """The bucket that holds the ``percent``-th percentile (nearest-rank) of ``count`` durations.

    ``buckets``: (bucket, how many) in ascending order.
    """
    rank = max(-(-percent * count // 100), 1)
    seen = 0
    for key, number in buckets:
        seen += number
        if seen >= rank:
            return key
    return buckets[-1][0]


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
