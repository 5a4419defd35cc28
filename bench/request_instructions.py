"""What a request costs, counted in instructions: the Flask app of bench/requests.py under callgrind.

    python3 bench/request_instructions.py [--venv DIR] [--only NAME ...] [--json PATH] [--keep DIR]

Throughput on a shared 2-core machine moves with the neighbours' load by as much as
hookwise costs (bench/requests.py's rounds differ by 10-20%). Instructions do not:
valgrind's callgrind counts every instruction the process runs, the same from one run
to the next, so a change of a few percent in what a request costs shows up plainly.

The app (bench/apps/flask_bench.py: four SQL statements on a sqlite3 file, one outgoing
request to bench/apps/upstream.py) is served in-process by Flask's test client, not by
gunicorn: one process, no client, nothing but the request's own work. Each configuration
runs twice under callgrind, with 20 and with 120 measured requests after 100 to warm up;
the difference over 100 is the instructions per request, startup and imports left out (a run
outside valgrind first writes the caches of rewritten modules and .pyc files).
Configurations (CONFIGURATIONS): plain; hookwise as bench/requests.py runs it
(``--preset security --preset web --listener jsonl=FILE``); the same with a listener that
does nothing (what the hooks, the request model and the semantic sites cost without an
output); and with ``--guard block``. It prints instructions per request and each one's
ratio to plain. These are not throughput: a request served by gunicorn costs less than
one through the test client, so the same added instructions are a larger share there.

``--keep DIR`` keeps each run's callgrind output there (``NAME.20.out``, ``NAME.120.out``), for
``callgrind_annotate --inclusive=yes``: the difference of a C function's count between the two runs,
over 100, is what it costs a request (``dispatch``: the listeners, ``wrapper_vectorcall``: the
C wrappers).

Needs valgrind, and the venv of bench/requests.py (``python3 bench/requests.py --install``).
Each configuration takes about a minute. Stdlib only; runs under any python3.
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
DRIVER = os.path.join(ROOT, "driver.py")
WARMUP = 100
SHORT, LONG = 20, 120

SERVE = """\
import os, sys
sys.path.insert(0, {apps!r})
import flask_bench
client = flask_bench.app.test_client()
for number in range({warmup} + int(os.environ["BENCH_REQUESTS"])):
    answer = client.get(f"/items/{{number % 100 + 1}}")
    assert answer.status_code == 200, answer.status_code
"""

# Its methods are its own, not hookwise.Listener's no-ops, which the runtime does not call at all: this row
# measures calling a listener, as a listener that writes something is called.
NOTHING = """\
class Nothing:
    def start(self, call):
        pass

    def end(self, call, result):
        pass

    def error(self, call, exc):
        pass
"""

PRESETS = ["--preset", "security", "--preset", "web"]
CONFIGURATIONS = {
    "plain": [],
    "hookwise": [DRIVER, *PRESETS, "--listener", "jsonl={tmp}/events.jsonl"],
    "no-op listener": [DRIVER, *PRESETS, "--listener", "nothing:Nothing"],
    "guard": [DRIVER, "--guard", "block", *PRESETS, "--listener", "jsonl={tmp}/events.jsonl"],
}


def _requests_module():
    # bench/requests.py's database and upstream server, loaded by path: its name would shadow the package
    spec = importlib.util.spec_from_file_location("bench_requests", os.path.join(BENCH, "requests.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def warm_caches(python, arguments, tmp, env):
    """One run outside valgrind first: hookwise's cache of rewritten modules and Python's .pyc files are
    written then, not inside the first measured run (that alone is hundreds of millions of instructions)."""
    command = [python, *[part.format(tmp=tmp) for part in arguments], os.path.join(tmp, "serve.py")]
    result = subprocess.run(command, env=dict(env, BENCH_REQUESTS="0"), cwd=tmp, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"request_instructions: {' '.join(command)} failed:\n{result.stderr[-2000:]}")


def instructions(python, arguments, tmp, env, requests, out):
    command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--trace-children=no",
               python, *[part.format(tmp=tmp) for part in arguments], os.path.join(tmp, "serve.py")]
    result = subprocess.run(command, env=dict(env, BENCH_REQUESTS=str(requests)), cwd=tmp,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    found = re.search(r"Collected : (\d+)", result.stderr)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"request_instructions: {' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return int(found.group(1))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", default=os.path.join(BENCH, ".venv-requests"))
    parser.add_argument("--only", action="append", choices=sorted(CONFIGURATIONS), help="run only these")
    parser.add_argument("--json", help="write the numbers here too")
    parser.add_argument("--keep", metavar="DIR", help="keep the callgrind output files here")
    options = parser.parse_args(argv)
    if shutil.which("valgrind") is None:
        raise SystemExit("request_instructions: valgrind is not installed")
    python = os.path.join(options.venv, "bin", "python")
    if not os.path.exists(python):
        raise SystemExit(f"request_instructions: no venv at {options.venv} (python3 bench/requests.py --install)")
    helpers = _requests_module()
    chosen = options.only or list(CONFIGURATIONS)
    if options.keep:
        os.makedirs(options.keep, exist_ok=True)
        options.keep = os.path.abspath(options.keep)
    results = {}
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as tmp:
        with open(os.path.join(tmp, "serve.py"), "w") as serve:
            serve.write(SERVE.format(apps=os.path.join(BENCH, "apps"), warmup=WARMUP))
        with open(os.path.join(tmp, "nothing.py"), "w") as nothing:
            nothing.write(NOTHING)
        with open(os.path.join(tmp, "upstream.log"), "w") as log:
            upstream, url = helpers.start_upstream(log)
            try:
                for name in chosen:
                    database = os.path.join(tmp, "bench.sqlite")
                    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "HOOKWISE"))}
                    env.update(BENCH_DATABASE=database, BENCH_UPSTREAM=url, PYTHONHASHSEED="0", PYTHONPATH=tmp)
                    helpers.fresh_database(database)
                    warm_caches(python, CONFIGURATIONS[name], tmp, env)
                    counts = []
                    for requests in (SHORT, LONG):
                        helpers.fresh_database(database)
                        out = os.path.join(options.keep or tmp, f"{name.replace(' ', '-')}.{requests}.out")
                        counts.append(instructions(python, CONFIGURATIONS[name], tmp, env, requests, out))
                    results[name] = (counts[1] - counts[0]) // (LONG - SHORT)
                    print(f"  {name:16s} {results[name]:>12,} instructions/request", flush=True)
            finally:
                helpers.stop(upstream)
    if "plain" in results:
        print("ratio to plain: " + ", ".join(f"{name} {count / results['plain']:.3f}"
                                             for name, count in results.items() if name != "plain"))
    if options.json:
        with open(options.json, "w") as out:
            json.dump({"python": helpers.query(python, "import sys; print(sys.version.split()[0])"),
                       "instructions_per_request": results}, out, indent=1)


if __name__ == "__main__":
    main()
