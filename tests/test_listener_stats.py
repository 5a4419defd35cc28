"""``--listener stats``: the per-target table of call durations, end to end through the driver."""

import os
import random
import re

import pytest

from helpers import FIXTURES, read_jsonl, run_driver
from hookwise.listeners._stats import BATCH, RELATIVE_ERROR, Durations, bucket, bucket_middle, nearest_rank
from hookwise.listeners.console import format_duration

WORKLOAD = os.path.join(FIXTURES, "scripts", "report_workload.py")
# what report_workload.py calls: target -> (calls, errors)
EXPECTED = {
    "__main__:main": (1, 0), "__main__:load": (2, 0), "__main__:parse": (8, 2), "__main__:checksum": (6, 0),
    "__main__:numbers": (1, 0), "__main__:slow": (1, 0), "__main__:gather_all": (1, 0), "__main__:fetch": (2, 0),
}
DURATION = r"\d+(?:\.\d+)? (?:ns|us|ms|s)"
ROW = re.compile(rf"^(\S+) +(\d+) +(\d+)" + rf" +({DURATION})" * 6 + "$")
UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}


def run_workload(tmp_path, *listeners, mode="normal"):
    args = ["--hook", "__main__:*"]
    for spec in listeners:
        args += ["--listener", spec]
    return run_driver([*args, WORKLOAD, mode], cwd=tmp_path)


def parse_table(text):
    """(title, header cells, {target: cells}) of the table in ``text``; rows keep their order."""
    lines = [line for line in text.splitlines() if line.strip()]
    start = next(index for index, line in enumerate(lines) if line.startswith("hookwise stats"))
    title, header = lines[start], lines[start + 1].split()
    rows = {}
    for line in lines[start + 2:]:
        match = ROW.match(line)
        if match is None:
            break
        rows[match.group(1)] = match.groups()[1:]
    return title, header, rows


def nanoseconds(text):
    number, unit = text.split()
    return float(number) * UNIT_NS[unit]


def test_the_table_has_a_row_per_target_with_counts_errors_and_the_slowest_total_first(tmp_path):
    result = run_workload(tmp_path, "stats=stats.txt", "jsonl=events.jsonl")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "total 6 fetched [16, 161]\n"
    text = (tmp_path / "stats.txt").read_text()
    title, header, rows = parse_table(text)
    assert title == "hookwise stats: 22 calls of 8 targets, 2 errors; slowest total first"
    assert header == ["target", "calls", "errors", "total", "self", "mean", "p50", "p95", "max"]
    assert {target: (int(cells[0]), int(cells[1])) for target, cells in rows.items()} == EXPECTED
    assert len(text.splitlines()) == 2 + len(EXPECTED)

    # the same numbers, worked out from the events of the same run (no target of it recurses:
    # the two fetches run at once, in two tasks, so both count in the total)
    durations, events = {}, read_jsonl(tmp_path / "events.jsonl")
    for event in events:
        if event["event"] in ("end", "error"):
            durations.setdefault(event["target"], []).append(event["duration_ns"])
    by_total = sorted(durations, key=lambda target: (-sum(durations[target]), target))
    assert list(rows) == by_total
    for target, cells in rows.items():
        values = sorted(durations[target])
        assert cells[2] == format_duration(sum(values)), target
        assert cells[4:] == (
            format_duration(sum(values) // len(values)), format_duration(nearest_rank(values, 50)),
            format_duration(nearest_rank(values, 95)), format_duration(values[-1]),
        ), target
    # self time: a leaf's is its total; a caller's is less, by the hooked calls it made
    for leaf in ("__main__:checksum", "__main__:slow", "__main__:numbers"):
        assert rows[leaf][3] == rows[leaf][2], leaf
    assert nanoseconds(rows["__main__:main"][3]) < nanoseconds(rows["__main__:main"][2])
    assert nanoseconds(rows["__main__:load"][3]) < nanoseconds(rows["__main__:load"][2])  # on its own thread
    # a coroutine in its task: the parse it calls after its await is its child, in the same task
    assert nanoseconds(rows["__main__:fetch"][3]) < nanoseconds(rows["__main__:fetch"][2])
    assert list(rows)[0] == "__main__:main"  # it encloses everything else on MainThread
    assert nanoseconds(rows["__main__:slow"][2]) >= 50e6
    totals = [nanoseconds(cells[2]) for cells in rows.values()]
    assert totals == sorted(totals, reverse=True)


RECURSIVE = """
def leaf(n):
    return n

def fib(n):
    return leaf(n) if n < 2 else fib(n - 1) + fib(n - 2)

def main():
    return fib(12) + fib(3)

print(main())
"""


def test_a_recursive_call_counts_once_in_the_total_and_self_time_is_its_own(tmp_path):
    (tmp_path / "app.py").write_text(RECURSIVE)
    result = run_driver(["--hook", "__main__:*", "--listener", "stats=stats.txt", "--listener", "jsonl=events.jsonl",
                         "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    _, _, rows = parse_table((tmp_path / "stats.txt").read_text())
    ends = [event for event in read_jsonl(tmp_path / "events.jsonl") if event["event"] == "end"]
    starts = {event["call_id"]: event for event in read_jsonl(tmp_path / "events.jsonl") if event["event"] == "start"}

    def took(target, called_from=None):
        return sum(event["duration_ns"] for event in ends if event["target"] == target
                   and (called_from is None or starts[event["call_id"]]["caller"]["function"] == called_from))

    (main,) = [event["duration_ns"] for event in ends if event["target"] == "__main__:main"]
    outer_fib = took("__main__:fib", called_from="main")  # fib(12) and fib(3), each once
    assert list(rows)[:2] == ["__main__:main", "__main__:fib"]  # the caller above the recursion
    assert rows["__main__:fib"][0] == str(sum(1 for event in ends if event["target"] == "__main__:fib"))
    assert rows["__main__:fib"][2] == format_duration(outer_fib)
    assert rows["__main__:fib"][3] == format_duration(outer_fib - took("__main__:leaf"))
    assert rows["__main__:main"][2] == format_duration(main)
    assert rows["__main__:main"][3] == format_duration(main - outer_fib)
    assert rows["__main__:leaf"][2] == rows["__main__:leaf"][3] == format_duration(took("__main__:leaf"))


def test_columns_are_aligned(tmp_path):
    result = run_workload(tmp_path, "stats=stats.txt")
    assert result.returncode == 0, result.stderr
    table = (tmp_path / "stats.txt").read_text().splitlines()[1:]
    header = table[0]
    # every number ends where its heading ends; the targets start where "target" starts
    ends = [match.end() for match in re.finditer(r"\S+", header)][1:]
    for line in table[1:]:
        assert line.startswith("__main__:")
        cell_ends = [match.end() for match in re.finditer(r"\d+(?:\.\d+)?(?: (?:ns|us|ms|s))?(?=\s|$)", line)]
        assert cell_ends[-8:] == ends, line


def test_without_a_path_the_table_goes_to_stderr_after_the_program(tmp_path):
    result = run_workload(tmp_path, "stats")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "total 6 fetched [16, 161]\n"  # the program's own output is untouched
    title, _, rows = parse_table(result.stderr)
    assert title.startswith("hookwise stats: 22 calls of 8 targets")
    assert {target: (int(cells[0]), int(cells[1])) for target, cells in rows.items()} == EXPECTED
    assert result.stderr.startswith("hookwise stats: ")


@pytest.mark.parametrize("mode, status, main_errors", [("exit", 3, 1), ("crash", 1, 1)])
def test_the_table_is_written_when_the_program_exits_or_crashes(tmp_path, mode, status, main_errors):
    result = run_workload(tmp_path, "stats=stats.txt", mode=mode)
    assert result.returncode == status
    if mode == "crash":
        assert "RuntimeError: the program crashed" in result.stderr
    _, _, rows = parse_table((tmp_path / "stats.txt").read_text())
    assert rows["__main__:main"][:2] == ("1", str(main_errors))  # SystemExit and RuntimeError count as errors
    assert rows["__main__:parse"][:2] == ("8", "2")


def test_a_device_path_takes_the_table_silently(tmp_path):
    result = run_workload(tmp_path, "stats=/dev/null")
    assert result.returncode == 0
    assert result.stderr == ""


def test_a_forked_child_counts_its_own_calls_and_says_which_process_it_is(tmp_path):
    (tmp_path / "app.py").write_text(
        "import os\n"
        "def work(n):\n    return n\n"
        "def quiet():\n    pass\n"
        "work(1)\n"
        "pid = os.fork()\n"
        "if pid == 0:\n    work(2); work(3)\n    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
        "second = os.fork()\n"
        "if second == 0:\n    os._exit(0)\n"  # calls nothing hooked: prints nothing
        "os.waitpid(second, 0)\n"
        "print(pid)\n"
    )
    result = run_driver(["--hook", "__main__:work", "--listener", "stats", "--listener", "stats=stats.txt", "app.py"],
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    child = int(result.stdout)
    child_title, _, child_rows = parse_table(result.stderr)
    assert child_title == f"hookwise stats for process {child}: 2 calls of 1 target, 0 errors; slowest total first"
    assert child_rows["__main__:work"][:2] == ("2", "0")
    parent_part = result.stderr[result.stderr.index("hookwise stats: "):]
    title, _, rows = parse_table(parent_part)
    assert title.startswith("hookwise stats: 1 call of 1 target") and rows["__main__:work"][:2] == ("1", "0")
    assert result.stderr.count("hookwise stats") == 2
    assert parse_table((tmp_path / "stats.txt").read_text())[2]["__main__:work"][:2] == ("1", "0")
    assert parse_table((tmp_path / f"stats.{child}.txt").read_text())[2]["__main__:work"][:2] == ("2", "0")


GC_DURING_ADD = """
import gc, sys

def gen():
    yield 1
    yield 2

def f(i):
    return i

class Holder:
    pass

def make_garbage():  # a started hooked generator in a cycle: only the collector finishes it
    holder = Holder()
    holder.gen, holder.me = gen(), holder
    next(holder.gen)

make_garbage()
gc.collect()
gc.set_threshold(int(sys.argv[1]))
make_garbage()
f(0)  # the first end of f allocates its row, and the collector may run right there
gc.set_threshold(700)
print("finished")
"""


def test_the_collector_finishing_a_generator_inside_the_listener_does_not_deadlock(tmp_path):
    # the generator's end re-enters the listener on the same thread, while it holds its lock
    (tmp_path / "app.py").write_text(GC_DURING_ADD)
    for threshold in range(4, 16):
        result = run_driver(["--hook", "__main__:*", "--listener", "stats=stats.txt", "app.py", str(threshold)],
                            cwd=tmp_path, timeout=60)
        assert result.returncode == 0 and result.stdout == "finished\n", (threshold, result.stderr)
        assert "__main__:gen " in (tmp_path / "stats.txt").read_text()


def test_no_finished_call_says_so(tmp_path):
    (tmp_path / "app.py").write_text("print('hi')\n")
    result = run_driver(["--hook", "__main__:nothing", "--listener", "stats", "app.py"], cwd=tmp_path)
    assert result.returncode == 0
    assert "hookwise stats: no hooked call finished" in result.stderr


def test_an_unwritable_path_stops_the_driver_before_the_program(tmp_path):
    result = run_workload(tmp_path, f"stats={tmp_path / 'missing' / 'stats.txt'}")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("hookwise: error: listener 'stats': cannot write the output")
    assert "No such file or directory" in result.stderr and len(result.stderr.splitlines()) == 1


def test_a_symlink_planted_at_the_path_is_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.symlink(victim, tmp_path / "stats.txt")
    result = run_workload(tmp_path, "stats=stats.txt")
    assert result.returncode == 2 and result.stdout == ""
    assert "listener 'stats': cannot write the output 'stats.txt'" in result.stderr
    assert victim.read_text() == "precious\n"


def test_nearest_rank_percentiles():
    values = list(range(1, 101))
    assert [nearest_rank(values, p) for p in (50, 95, 100)] == [50, 95, 100]
    assert nearest_rank([7], 50) == nearest_rank([7], 95) == 7
    assert nearest_rank([1, 2], 50) == 1 and nearest_rank([1, 2], 95) == 2
    assert nearest_rank([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 1000], 95) == 19


class FakeCall:
    kind, task, thread_id = "function", None, 1

    def __init__(self, call_id, target, duration_ns):
        self.call_id, self.target, self.duration_ns = call_id, target, duration_ns


def test_past_a_batch_the_percentiles_come_from_a_bounded_histogram_within_its_stated_error():
    rng = random.Random(15)
    durations = Durations()
    measured = {"__main__:wide": [], "__main__:tight": [], "__main__:few": []}
    for call_id in range(1, 200_001):
        target = ("__main__:wide", "__main__:tight")[call_id % 2] if call_id > 50 else "__main__:few"
        ns = int(rng.lognormvariate(9, 2)) if target == "__main__:wide" else rng.randrange(900, 1100)
        measured[target].append(ns)
        call = FakeCall(call_id, target, ns)
        durations.call_started(call)
        durations.call_returned(call, None)
    rows = {row.target: row for row in durations.summary()}
    for target, values in measured.items():
        values.sort()
        row = rows[target]
        assert (row.calls, row.mean_ns, row.max_ns) == (len(values), sum(values) // len(values), values[-1])
        for percent, shown in ((50, row.p50_ns), (95, row.p95_ns)):
            exact = nearest_rank(values, percent)
            if len(values) < BATCH:
                assert shown == exact
            else:
                assert abs(shown - exact) <= exact * RELATIVE_ERROR, (target, percent, shown, exact)
    # what a target keeps: one batch and a histogram of at most 64 buckets per power of two it spans
    (thread_rows,) = durations._rows.values()
    for target in ("__main__:wide", "__main__:tight"):
        pending, histogram = thread_rows[target][0], thread_rows[target][7]
        spanned = max(measured[target]).bit_length() - min(measured[target]).bit_length() + 1
        assert len(pending) < BATCH and len(histogram) <= 64 * spanned
    assert len(thread_rows["__main__:tight"][7]) < 30  # 900 to 1100 ns: a few buckets of 8 ns
    assert thread_rows["__main__:few"][7] is None  # 50 calls: every duration kept, exact percentiles


def test_a_bucket_stands_for_its_durations_within_the_stated_error():
    for ns in (0, 1, 127, 128, 129, 1000, 65_535, 10**6 + 7, 10**9 + 12_345, 3 * 10**11):
        middle = bucket_middle(bucket(ns))
        assert abs(middle - ns) <= ns * RELATIVE_ERROR, ns
        assert bucket(middle) == bucket(ns)
