"""Cost per hooked call of f(a, b): the record, stats and html listeners against a no-op Python listener, one run.

    python bench/record_cost.py [CALLS]

Runs the same program under the driver five ways (no hook, a no-op listener,
``record``, ``stats``, ``html``) and prints the added time per call and the
ratio, plus the recording's size per call. (``html`` records the first 20,000
calls and counts all of them as ``stats`` does.)
"""

import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = """
import time
def f(a, b):
    return a + b
def run(n):
    for i in range(n):
        f(i, 2)
start = time.perf_counter()
run({calls})
print(time.perf_counter() - start)
"""
NOOP = """
class Noop:
    def start(self, call):
        pass
    def end(self, call, result):
        pass
"""


def timed(args, cwd):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "driver.py"), *args], cwd=cwd, capture_output=True,
                          text=True, check=True)
    return float(done.stdout.split()[-1])


def main():
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    with tempfile.TemporaryDirectory() as where:
        with open(os.path.join(where, "prog.py"), "w") as handle:
            handle.write(PROGRAM.format(calls=calls))
        with open(os.path.join(where, "noop_listener.py"), "w") as handle:
            handle.write(NOOP)
        hook = ["--hook", "__main__:f", "--listener"]
        plain = min(timed(["--hook", "nothing:here", "prog.py"], where) for _ in range(3))
        noop = min(timed(hook + ["noop_listener:Noop", "prog.py"], where) for _ in range(3))
        record = min(timed(hook + ["record=rec.bin", "prog.py"], where) for _ in range(3))
        stats = min(timed(hook + ["stats=stats.txt", "prog.py"], where) for _ in range(3))
        html = min(timed(hook + ["html=report.html", "prog.py"], where) for _ in range(3))
        size = os.path.getsize(os.path.join(where, "rec.bin"))
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hookwise.convert", os.path.join(where, "rec.bin"), "--to",
                        f"jsonl={where}/out.jsonl"], cwd=ROOT, check=True)
        converted = time.perf_counter() - started
    per = lambda total: (total - plain) / calls * 1e9
    print(f"f(a, b) x {calls}, implementation: {'pure' if os.environ.get('HOOKWISE_PURE_PYTHON') else 'C'}")
    print(f"no-op listener: {per(noop):7.0f} ns/call added")
    print(f"record:         {per(record):7.0f} ns/call added ({per(record) / per(noop):.1f}x the no-op listener)")
    print(f"stats:          {per(stats):7.0f} ns/call added ({per(stats) / per(noop):.1f}x the no-op listener)")
    print(f"html:           {per(html):7.0f} ns/call added ({per(html) / per(noop):.1f}x the no-op listener)")
    print(f"recording size: {size / calls:.1f} bytes/call (file {size} bytes, chunks preallocated)")
    print(f"convert to jsonl: {converted:.2f} s, {2 * calls / converted:,.0f} events/s")


if __name__ == "__main__":
    main()
