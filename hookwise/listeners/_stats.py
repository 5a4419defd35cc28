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
        self._lanes = {}  # thread, or (thread, task) in a task -> its open calls, flat: call id, target, children, ...
        self._rows = {}  # thread -> {target: row (see _new_row)}

    # The listener callbacks themselves (stats and html use these bound methods as their own): every
    # frame, attribute read and allocation between the runtime and the bookkeeping shows, so the lane's
    # key is worked out inline in both, and a lane is one flat list of its open calls, innermost last:
    # call id, target, and the time of the hooked calls it made directly so far, for each.
    def call_started(self, call):
        kind = call.kind
        if kind == "function" or kind == "builtin":
            # outside asyncio there is no task, and reading it costs a lookup per call
            task = call.task if self.read_tasks or "asyncio" in _modules else None
        elif kind == "coroutine":
            task = call.task
            if task is None:
                return  # driven by hand: it nests nowhere
        else:
            return  # generators are resumed around unrelated calls: they nest nowhere
        thread = call.thread_id
        key = thread if task is None else (thread, task)  # no tuple to build and hash outside tasks
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = []
        lane += (call.call_id, call.target, 0)

    def call_raised(self, call, exc):
        self.call_returned(call, None)
        self._rows[call.thread_id][call.target][_ERRORS] += 1  # errors are rare: they pay the second frame

    def call_returned(self, call, result):
        """The call's time goes to its target (total once per lane, self without its children) and its parent."""
        duration_ns = call.duration_ns
        target = call.target
        outermost, self_ns = True, duration_ns
        kind = call.kind
        thread = call.thread_id
        if kind == "function" or kind == "builtin":
            task = call.task if self.read_tasks or "asyncio" in _modules else None
            lane = self._lanes.get(thread if task is None else (thread, task))
        elif kind == "coroutine":
            task = call.task
            lane = self._lanes.get((thread, task)) if task is not None else None
        else:
            lane = None
        if lane:
            call_id = call.call_id
            if lane[-3] == call_id:
                children = lane[-1]
                del lane[-3:]
                if lane:
                    lane[-1] += duration_ns  # the caller's children
            else:  # nesting broken (two tasks of one name), or it started before asyncio was loaded
                children = _take_out(lane, call_id, duration_ns)
            if children is not None:
                self_ns = duration_ns - children if duration_ns > children else 0
                outermost = target not in lane  # the lane's ints are never equal to a str
                if not lane and task is not None:  # a task's lane ends with its task
                    self._lanes.pop((thread, task), None)
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


def _take_out(lane, call_id, duration_ns):
    """Take the open call ``call_id`` out of ``lane`` wherever it is: the time of its children, or None
    when it is not there; its duration goes to the call open below it."""
    ids = lane[0::3]
    if call_id not in ids:
        return None
    at = 3 * ids.index(call_id)
    children = lane[at + 2]
    del lane[at : at + 3]
    if at:
        lane[at - 1] += duration_ns
    return children


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
