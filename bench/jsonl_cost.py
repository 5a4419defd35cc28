"""Cost per hooked call of f(a, b) under the live ``jsonl`` listener, against a no-op listener, one run.

    python bench/jsonl_cost.py [CALLS] [RUNS] [OTHER_CHECKOUT]

Runs the same program under the driver three ways (no hook, a no-op
listener, ``jsonl`` to a file in a temporary directory), each RUNS times
(default 5), interleaved, and prints the best time of each and the added time
per call. Times are the process's CPU time around the loop (what the calls
cost, less sensitive to other work on a shared machine than wall time). With OTHER_CHECKOUT (another hookwise tree, its accelerator built
for this Python), its ``jsonl`` runs in the same rounds: a before/after in
one run. The implementation is the one the environment picks
(``HOOKWISE_PURE_PYTHON=1`` for the pure-Python runtime).
"""

import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROGRAM = """
import time
def f(a, b):
    return a + b
def run(n):
    for i in range(n):
        f(i, 2)
start = time.process_time()
run({calls})
print(time.process_time() - start)
"""
NOOP = """
class Noop:
    def start(self, call):
        pass
    def end(self, call, result):
        pass
"""


def timed(args, cwd, root=ROOT):
    done = subprocess.run([sys.executable, os.path.join(root, "driver.py"), *args], cwd=cwd, capture_output=True,
                          text=True, check=True)
    return float(done.stdout.split()[-1])


def main():
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    other = os.path.abspath(sys.argv[3]) if len(sys.argv) > 3 else None
    with tempfile.TemporaryDirectory() as where:
        with open(os.path.join(where, "prog.py"), "w") as handle:
            handle.write(PROGRAM.format(calls=calls))
        with open(os.path.join(where, "noop_listener.py"), "w") as handle:
            handle.write(NOOP)
        hook = ["--hook", "__main__:f", "--listener"]
        plain = noop = jsonl = before = float("inf")
        for _ in range(runs):  # interleaved, so that a burst of load elsewhere hits every row alike
            plain = min(plain, timed(["--hook", "nothing:here", "prog.py"], where))
            noop = min(noop, timed(hook + ["noop_listener:Noop", "prog.py"], where))
            jsonl = min(jsonl, timed(hook + ["jsonl=events.jsonl", "prog.py"], where))
            if other is not None:
                before = min(before, timed(hook + ["jsonl=other.jsonl", "prog.py"], where, other))
        lines = sum(1 for _ in open(os.path.join(where, "events.jsonl"), "rb"))
    per = lambda total: (total - plain) / calls * 1e9
    implementation = "pure" if os.environ.get("HOOKWISE_PURE_PYTHON") else "C"
    print(f"f(a, b) x {calls}, Python {sys.version.split()[0]}, {implementation}, best of {runs}")
    print(f"plain:          {plain:7.3f} s")
    print(f"no-op listener: {noop:7.3f} s {per(noop):7.0f} ns/call added")
    print(f"jsonl:          {jsonl:7.3f} s {per(jsonl):7.0f} ns/call added ({per(jsonl) / per(noop):.1f}x the no-op"
          f" listener; {lines} lines)")
    if other is not None:
        print(f"jsonl, {other}: {before:7.3f} s {per(before):7.0f} ns/call added"
              f" (this checkout's costs {per(jsonl) / per(before):.2f} of it)")


if __name__ == "__main__":
    main()
