"""Honest timings: what outputs show as a call's time leaves out hookwise's own time in the hooked calls it made.

Issue 15: "a function calling 10,000 hooked children of about 5 us each shows,
in chrome, html and stats, a duration within 1.3 times its plain duration."
The program times an unhooked twin of the same work in the same process (so the
ratio is taken within one run, whatever else the machine is doing), then runs
the hooked parent; without the accounting its shown time is several times the
plain one (every child's events cost microseconds of listener work).
"""

import os
import textwrap

from helpers import read_jsonl, read_trace, run_driver
from test_recording import convert

PROGRAM = textwrap.dedent("""
    import sys, time

    def spin(ns):
        end = time.perf_counter_ns() + ns
        while time.perf_counter_ns() < end:
            pass

    def child(i):
        spin(5000)
        return i

    def parent(n):
        for i in range(n):
            child(i)

    def plain_child(i):
        spin(5000)
        return i

    def plain_parent(n):
        for i in range(n):
            plain_child(i)

    plain = []
    for _ in range(ROUNDS):  # interleaved, and the fastest of each is compared: the machine may be busy
        began = time.perf_counter_ns()
        plain_parent(10000)
        plain.append(time.perf_counter_ns() - began)
        parent(10000)
    plain.sort()
    print(plain[0], plain[len(plain) // 2])  # the fastest and the median
""").replace("ROUNDS", "5")

TARGETS = ["--hook", "__main__:parent", "--hook", "__main__:child"]
# The C accelerator times everything but the few instructions between the hooked function and its clock
# reads. The pure-Python runtime reads the clock inside its own frames: entering and leaving them, about
# 0.5-1 us a call (more after a heavy listener has cooled the caches), is left in, and the README says so.
BOUND = 1.6 if os.environ.get("HOOKWISE_PURE_PYTHON") else 1.3


def run(tmp_path, *listener_args):
    (tmp_path / "prog.py").write_text(PROGRAM)
    done = run_driver([*TARGETS, *listener_args, "prog.py"], cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    fastest, median = map(int, done.stdout.split()[-2:])
    return fastest, median


def within_bound(measure, attempts=3):
    """``measure()`` gives [(shown, plain), ...]; passes when one attempt has every shown <= BOUND * plain.

    A busy machine (the suite runs two interpreters at once on two cores) can preempt a spinning parent
    in one run and not its plain twin: a run that misses is taken again, up to ``attempts`` times.
    Without the accounting every attempt misses by several times (each child's events cost microseconds).
    """
    seen = []
    for _ in range(attempts):
        pairs = measure()
        if all(shown <= BOUND * plain for shown, plain in pairs):
            return
        seen.append([(shown, plain, round(shown / plain, 2)) for shown, plain in pairs])
    raise AssertionError(f"shown above {BOUND} x plain in every attempt: {seen}")


def stats_row(text, target):
    """``target``'s row of a stats table: {column: text}."""
    header = next(line for line in text.splitlines() if line.startswith("target "))
    row = next(line for line in text.splitlines() if line.startswith(target + " "))
    cells = row.split()
    values = {"target": cells[0], "calls": cells[1], "errors": cells[2]}
    numbers = iter(zip(cells[3::2], cells[4::2]))  # "91.98", "ms"
    for column in header.split()[3:]:
        value, unit = next(numbers)
        values[column] = float(value) * {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}[unit]
    return values


def test_stats_shows_the_parent_within_its_plain_time(tmp_path):
    def measure():
        _, plain = run(tmp_path, "--listener", "stats=stats.txt")
        # the table has no fastest call: its median (p50 of the five) against the plain median
        return [(stats_row((tmp_path / "stats.txt").read_text(), "__main__:parent")["p50"], plain)]

    within_bound(measure)


def test_jsonl_durations_leave_out_hookwise_and_the_end_stamp_stays_the_real_end(tmp_path):
    def measure():
        plain, _ = run(tmp_path, "--listener", "jsonl=events.jsonl")
        events = read_jsonl(tmp_path / "events.jsonl")
        parents = [event for event in events if event["target"] == "__main__:parent"]
        ends = [event for event in parents if event["event"] == "end"]
        assert len(ends) == 5
        # ts_ns are wall-clock moments: the end's is when the call really ended, hookwise's time included
        start, end = parents[:2]
        assert end["ts_ns"] - start["ts_ns"] > end["duration_ns"]
        children = [event for event in events if event["target"] == "__main__:child" and event["event"] == "end"]
        assert len(children) == 50000
        return [(min(end["duration_ns"] for end in ends), plain),
                # each child about 5 us, not 5 plus jsonl's own time
                (sorted(event["duration_ns"] for event in children)[25000], 5_000)]

    within_bound(measure)


def test_a_recording_stores_program_times_so_every_converted_output_is_honest(tmp_path):
    def measure():
        plain, plain_median = run(tmp_path, "--listener", "record=rec.bin")
        done = convert("rec.bin", "--to", "stats=stats.txt", "--to", "chrome=trace.json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        events = read_trace(tmp_path / "trace.json")
        parents = [event for event in events if event.get("name") == "__main__:parent" and event["ph"] == "X"]
        assert len(parents) == 5
        children = [event for event in events if event.get("name") == "__main__:child" and event["ph"] == "X"]
        for parent in parents:  # the children lie inside their parent on the program clock
            inside = [child for child in children if parent["ts"] <= child["ts"] <= parent["ts"] + parent["dur"]]
            assert len(inside) == 10000
            assert max(child["ts"] + child["dur"] for child in inside) <= parent["ts"] + parent["dur"]
        return [(stats_row((tmp_path / "stats.txt").read_text(), "__main__:parent")["p50"], plain_median),
                (min(parent["dur"] for parent in parents) * 1000, plain)]

    within_bound(measure)


def test_the_live_chrome_trace_and_html_report_show_the_parent_within_its_plain_time(tmp_path):
    from test_listener_html import calls_of, page_data

    def measure():
        plain, _ = run(tmp_path, "--listener", "chrome=trace.json", "--listener", "html=report.html")
        events = read_trace(tmp_path / "trace.json")
        parents = [event for event in events if event.get("name") == "__main__:parent" and event["ph"] == "X"]
        assert len(parents) == 5
        # html draws the first 20,000 calls: the first two parents and their children
        drawn = [call for _, call in calls_of(page_data(tmp_path / "report.html"))
                 if call["target"] == "__main__:parent"]
        assert len(drawn) == 2
        return [(min(parent["dur"] for parent in parents) * 1000, plain),
                (min(call["duration"] for call in drawn), plain)]

    within_bound(measure)


def test_a_listener_sees_how_much_was_left_out(tmp_path):
    (tmp_path / "prog.py").write_text(PROGRAM)
    (tmp_path / "seen.py").write_text(textwrap.dedent("""
        import sys
        class Seen:
            def end(self, call, result):
                if call.qualname == "parent":
                    real = call.end_ns - call.start_ns
                    print(call.duration_ns, call.overhead_ns, real, file=sys.stderr)
                    assert call.duration_ns + call.overhead_ns == real
                    assert call.program_ns <= call.perf_ns
    """))
    done = run_driver([*TARGETS, "--listener", "seen:Seen", "--listener", "jsonl=events.jsonl", "prog.py"],
                      cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stderr.splitlines() if line.split() and line.split()[0].isdigit()]
    assert len(lines) == 5, done.stderr
    for duration, overhead, real in (map(int, line) for line in lines):
        assert overhead > 0 and duration + overhead == real
