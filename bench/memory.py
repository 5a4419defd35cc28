"""Peak memory of record, chrome, html and stats on many calls, against the program's own; the chrome converter's speed.

    python bench/memory.py [CALLS]        (default 5,000,000: the budget of issue 15)

Runs a program that calls a function of one argument CALLS times, plain and
under each listener, each in a fresh process whose peak resident memory
(ru_maxrss) is read by a parent that runs nothing else. Prints the peak and
its excess over the plain run per row (budget: record, chrome and html within
50 MB of the program's own), the CPU time (on a shared machine, wall time
says more about the neighbours), and how fast ``python -m hookwise.convert
--to chrome`` turns the ``record`` run's recording into a trace (events per
second of CPU time).
"""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = """
def tiny(n):
    return n
def main(calls):
    for n in range(calls):
        tiny(n)
main({calls})
"""
PEAK = """
import resource, subprocess, sys
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime)
"""
BUDGET_MB = 50


def peak(args, cwd):
    done = subprocess.run([sys.executable, "-c", PEAK, sys.executable, *args], cwd=cwd, capture_output=True,
                          text=True, check=True)
    memory, seconds = done.stdout.split()
    return int(memory), float(seconds)


def main():
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 5_000_000
    driver = os.path.join(ROOT, "driver.py")
    with tempfile.TemporaryDirectory() as where:
        with open(os.path.join(where, "prog.py"), "w") as handle:
            handle.write(PROGRAM.format(calls=calls))
        plain, plain_s = peak(["prog.py"], where)
        print(f"{calls:,} calls of tiny(n), {sys.version.split()[0]}")
        print(f"{'run':<10} {'peak MB':>8} {'over plain':>11} {'CPU s':>8}  budget")
        print(f"{'plain':<10} {plain / 1e6:8.1f} {'':>11} {plain_s:8.1f}")
        for name, spec in (("record", "record=rec.bin"), ("chrome", "chrome=trace.json"),
                           ("html", "html=report.html"), ("stats", "stats=stats.txt")):
            memory, seconds = peak([driver, "--hook", "__main__:tiny", "--listener", spec, "prog.py"], where)
            over = (memory - plain) / 1e6
            verdict = "" if name == "stats" else ("ok" if over <= BUDGET_MB else f"OVER {BUDGET_MB} MB")
            print(f"{name:<10} {memory / 1e6:8.1f} {over:11.1f} {seconds:8.1f}  {verdict}")
        _, seconds = peak(["-m", "hookwise.convert", os.path.join(where, "rec.bin"), "--to",
                           f"chrome={where}/converted.json"], ROOT)
        print(f"convert --to chrome: {2 * calls / seconds:,.0f} events/s of CPU time, "
              f"{seconds / calls * 1e6:.2f} us per call")


if __name__ == "__main__":
    main()
