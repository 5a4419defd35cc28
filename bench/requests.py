"""hookwise's request benchmark: the throughput of a web app served plainly and under tracers.

    python3 bench/requests.py --install [--python PYTHON] [--venv DIR]   # once: the pinned venv
    python3 bench/requests.py [--requests N] [--rounds R] [--quick] [--json PATH] [--venv DIR]

Two apps (bench/apps/): Flask under ``gunicorn -w 1`` (sync worker) and FastAPI under
``uvicorn`` (one process, its default asyncio loop and h11). Every request runs four SQL
statements through a cursor on a sqlite3 file in a temp dir (a pragma, a select, an insert, a
count, on a connection of its own, then a commit; the temp dir is on tmpfs where there is one,
so that no fsync is measured) and makes one outgoing HTTP request (Flask: a ``requests`` session;
FastAPI: ``httpx.AsyncClient``) to an upstream server that this script starts on 127.0.0.1
(bench/apps/upstream.py, raw asyncio, answers at once), so the numbers are the app's and its
instrumentation's.

Each app runs under each configuration (CONFIGURATIONS, one line each):

- plain: ``python -m gunicorn ...``;
- hookwise: ``python driver.py --preset security --preset web --listener jsonl=FILE -m gunicorn ...``,
  the checkout's driver under the venv's python (so it measures this checkout), every event
  written to a file in the temp dir; afterwards the file is counted, so a run that hooked
  nothing cannot pass for a fast one;
- ddtrace: ``ddtrace-run python -m gunicorn ...`` with its default integrations, sending its
  traces to a second upstream server standing in for the Datadog agent (DD_TRACE_AGENT_URL), so
  that it encodes and uploads them as it would in production without one being installed;
- guard: the hookwise row with ``--guard block`` (issue 14): every sink checked against the
  request's inputs; held to 85% of plain and compared with
- ddtrace-appsec: ``DD_APPSEC_ENABLED=true ddtrace-run ...``, ddtrace with its AppSec (WAF and
  exploit prevention) on;
- otel: ``opentelemetry-instrument --traces_exporter none --metrics_exporter none
  --logs_exporter none python -m gunicorn ...``, every installed instrumentation on (flask or
  fastapi, wsgi or asgi, sqlite3, requests or httpx). The SDK creates and ends every span but
  exports none: no collector is needed, and otel's number leaves out the export it would do in
  production (a bound in its favour).

A configuration whose tool is not in the venv is reported as "not installed" and skipped.

Each server is started on a free port of 127.0.0.1 and waited for, then warmed up, then a
client in this process (asyncio, a few concurrent connections, kept alive where the server
keeps them: uvicorn does, gunicorn's sync worker closes each) sends a fixed number of requests
and the requests per second are taken from the first sent to the last answered; then the
server gets SIGTERM. Rounds interleave every configuration (in a rotated order each round), a
fresh database for every start, and the table shows the best round of each (on a shared
machine noise only slows a run down) with the median beside it. It prints configuration, req/s,
ratio to plain and the time each adds per request, and the server's own CPU time per request (the
server process and its children, from /proc, over the measured requests; the least of the rounds
and the median): on a machine shared with others, throughput moves with the neighbours' load and
this much less, so it is the column to compare two runs by. It checks the budgets of issues 13 and 14 (hookwise
keeps at least 90% of plain throughput and is faster than ddtrace and otel where they ran; with
the guard, 85% and faster than ddtrace with AppSec), and
writes everything as JSON (bench/results/requests-latest.json unless --json says otherwise).

The venv (bench/.venv-requests, ignored by git through .gitignore's ``.venv*/``) pins every
package in REQUIREMENTS; hookwise itself is not installed into it: its python runs driver.py
from this checkout, and the C accelerator is built for that python only if its .so is missing.

This file is stdlib only, and runs under any python3: the venv's python is the one measured.
(It is named requests.py as issue 13 asks; nothing here imports the ``requests`` package, which
this file would shadow when run as a script.)
"""

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import namedtuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
APPS_DIR = os.path.join(BENCH, "apps")
RESULTS = os.path.join(BENCH, "results")
DRIVER = os.path.join(ROOT, "driver.py")
DEFAULT_VENV = os.path.join(BENCH, ".venv-requests")

# Versions that install together on CPython 3.11 and 3.12; the otel instrumentations pin their
# opentelemetry-instrumentation exactly, so they move together.
OTEL_CONTRIB = "0.66b1"
REQUIREMENTS = [
    "flask==3.1.3", "gunicorn==27.0.1", "requests==2.34.2",
    "fastapi==0.165.0", "uvicorn==0.55.0", "httpx==0.29.0",
    "ddtrace==4.16.0",
    "opentelemetry-api==1.45.1", "opentelemetry-sdk==1.45.1", f"opentelemetry-distro=={OTEL_CONTRIB}",
    *(f"opentelemetry-instrumentation-{name}=={OTEL_CONTRIB}"
      for name in ("flask", "fastapi", "requests", "httpx", "sqlite3", "wsgi", "asgi")),
]
# what the JSON records as installed (the names above and the frameworks' own parts)
REPORTED_PACKAGES = ["flask", "werkzeug", "gunicorn", "requests", "urllib3", "fastapi", "starlette", "uvicorn",
                     "httpx", "ddtrace", "opentelemetry-api", "opentelemetry-sdk", "opentelemetry-distro",
                     "opentelemetry-instrumentation"]

# ------------------------------------------------------------------ what runs

App = namedtuple("App", "name label modules server")
APPS = [
    # the server's command after the python (or driver) that runs it; {port} is filled in
    App("flask", "Flask, gunicorn -w 1 (sync)", ("flask", "gunicorn", "requests"),
        # --no-control-socket: gunicorn 27's control socket is one path per user, which another gunicorn
        # (a test suite's) may hold at the same time; it is the master's, and no part of serving
        ["-m", "gunicorn", "-w", "1", "-b", "127.0.0.1:{port}", "--no-control-socket", "--chdir", APPS_DIR,
         "flask_bench:app"]),
    App("fastapi", "FastAPI, uvicorn (1 process)", ("fastapi", "uvicorn", "httpx"),
        # --log-level warning: uvicorn's access log would otherwise print a line per request
        ["-m", "uvicorn", "--host", "127.0.0.1", "--port", "{port}", "--app-dir", APPS_DIR, "--log-level", "warning",
         "fastapi_bench:app"]),
]

# kind: "plain" is the baseline, "hookwise" rows are held to the budgets, "rival" rows are what they are compared to.
# requires: the executable in the venv's bin without which the row is "not installed".
Configuration = namedtuple("Configuration", "name label kind requires prefix")
HOOKWISE = ["{python}", DRIVER, "--preset", "security", "--preset", "web", "--listener", "jsonl={events}"]
OTEL_FLAGS = ["--traces_exporter", "none", "--metrics_exporter", "none", "--logs_exporter", "none"]
CONFIGURATIONS = [
    Configuration("plain", "plain", "plain", None, ["{python}"]),
    Configuration("hookwise", "hookwise security+web, jsonl", "hookwise", None, HOOKWISE),
    # issue 14: the same, with the guard checking every sink and refusing what it finds
    Configuration("guard", "hookwise security+web, jsonl, --guard block", "hookwise", None,
                  HOOKWISE[:2] + ["--guard", "block"] + HOOKWISE[2:]),
    Configuration("ddtrace", "ddtrace-run (default integrations)", "rival", "ddtrace-run", ["{bin}/ddtrace-run", "{python}"]),
    Configuration("ddtrace-appsec", "ddtrace-run, AppSec on (DD_APPSEC_ENABLED)", "rival", "ddtrace-run",
                  ["env", "DD_APPSEC_ENABLED=true", "{bin}/ddtrace-run", "{python}"]),
    Configuration("otel", "opentelemetry-instrument (no export)", "rival", "opentelemetry-instrument",
                  ["{bin}/opentelemetry-instrument", *OTEL_FLAGS, "{python}"]),
]

BUDGET_RATIOS = {"hookwise": 0.90, "guard": 0.85}  # the share of plain throughput each hookwise row keeps
RIVALS = {"hookwise": ("ddtrace", "otel"), "guard": ("ddtrace-appsec",)}  # what each hookwise row must beat

# ------------------------------------------------------------------ the venv


def venv_python(venv):
    return os.path.join(venv, "bin", "python")


def install(venv, python):
    """Create the venv with `python` and install REQUIREMENTS into it; then the accelerator."""
    if not os.path.exists(venv_python(venv)):
        print(f"creating {venv} with {python} ...", flush=True)
        subprocess.run([python, "-m", "venv", venv], check=True)
    print("installing " + " ".join(REQUIREMENTS), flush=True)
    subprocess.run([venv_python(venv), "-m", "pip", "install", "--disable-pip-version-check", "-q", *REQUIREMENTS],
                   check=True)
    ensure_accelerator(venv_python(venv))


def ensure_accelerator(python):
    """Build the C accelerator for `python` beside the sources, only if its .so is missing.

    The .so files already in hookwise/ stay untouched: others use them while this runs."""
    tag = query(python, "import sys; print(sys.implementation.cache_tag)")
    if any(name.startswith(f"_speedups.{tag}-") for name in os.listdir(os.path.join(ROOT, "hookwise"))):
        return
    print(f"building the C accelerator for {tag} (setup.py build_ext --inplace) ...", flush=True)
    result = subprocess.run([python, "setup.py", "-q", "build_ext", "--inplace"], cwd=ROOT, capture_output=True,
                            text=True)
    if result.returncode != 0:
        print("could not build it; hookwise will run its pure-Python runtime\n" + result.stderr[-2000:])
    shutil.rmtree(os.path.join(ROOT, "build"), ignore_errors=True)


def query(python, code):
    return subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def has_modules(python, modules):
    code = f"import importlib.util, sys; sys.exit(any(importlib.util.find_spec(m) is None for m in {list(modules)!r}))"
    return subprocess.run([python, "-c", code], capture_output=True).returncode == 0


def versions(python):
    code = ("import importlib.metadata as m, json\nfound = {}\n"
            f"for name in {REPORTED_PACKAGES!r}:\n"
            "    try:\n        found[name] = m.version(name)\n    except m.PackageNotFoundError:\n        pass\n"
            "print(json.dumps(found))")
    return json.loads(query(python, code))


def hookwise_runtime(python):
    return query(python, f"import sys; sys.path.insert(0, {ROOT!r}); from hookwise import accel; print(accel.describe())")


# ------------------------------------------------------------------ servers


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_upstream(log):
    """bench/apps/upstream.py in a process of its own (not a thread here: the client's loop stays alone)."""
    process = subprocess.Popen([sys.executable, os.path.join(APPS_DIR, "upstream.py")], stdout=subprocess.PIPE,
                               stderr=log, text=True)
    return process, f"http://127.0.0.1:{int(process.stdout.readline())}"


def stop(process, timeout=30):
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def scratch_dir():
    """Where the database and the event file go: tmpfs where there is one.

    On a disk, sqlite's commits and the WAL checkpoint when each request's connection closes
    fsync, ~1 ms a request here, and the disk's noise would be the largest thing measured."""
    shm = "/dev/shm"
    return shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None


def fresh_database(path):
    """The database every start begins with: 100 items, no visits, WAL (set once, kept by the file)."""
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)
    with sqlite3.connect(path) as connection:
        connection.execute("pragma journal_mode = wal")
        connection.execute("create table items (id integer primary key, name text, price real)")
        connection.execute("create table visits (id integer primary key, item integer)")
        connection.execute("create index visits_item on visits (item)")
        connection.executemany("insert into items values (?, ?, ?)",
                               [(number, f"item {number}", number * 1.5) for number in range(1, 101)])
    connection.close()


def server_command(app, configuration, context, port):
    values = dict(context, port=port)
    return [part.format(**values) for part in configuration.prefix + app.server]


def server_env(context):
    # the runner's own PYTHON*/HOOKWISE* settings stay out; DD_/OTEL_ ones too: each tool runs on its defaults
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHON", "HOOKWISE", "DD_", "OTEL_"))}
    env.update(BENCH_DATABASE=context["database"], BENCH_UPSTREAM=context["upstream"],
               PATH=os.path.dirname(context["python"]) + os.pathsep + env.get("PATH", ""),
               DD_SERVICE="hookwise-bench", OTEL_SERVICE_NAME="hookwise-bench")
    if context.get("agent"):
        env["DD_TRACE_AGENT_URL"] = context["agent"]
    return env


# ------------------------------------------------------------------ the client


class Client:
    """A fixed number of GET requests over a few concurrent connections, as fast as they are answered."""

    def __init__(self, port, concurrency):
        self.port, self.concurrency = port, concurrency

    async def _connection(self, tickets, statuses):
        reader = writer = None
        try:
            while tickets:
                number = tickets.pop()
                for attempt in (1, 2):  # a kept-alive connection the server closed meanwhile: once more, anew
                    try:
                        if writer is None:
                            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                        status, keep = await self._get(reader, writer, f"/items/{number % 100 + 1}")
                        break
                    except (ConnectionError, asyncio.IncompleteReadError):
                        writer = self._close(writer)
                        if attempt == 2:
                            status, keep = 0, False
                statuses.append(status)
                if not keep:
                    writer = self._close(writer)
        finally:
            self._close(writer)

    @staticmethod
    async def _get(reader, writer, path):
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
        await reader.readexactly(int(headers.get("content-length", 0)))  # both apps answer with a length
        return int(lines[0].split()[1]), headers.get("connection") != "close"

    @staticmethod
    def _close(writer):
        if writer is not None:
            writer.close()

    async def _run(self, count):
        tickets, statuses = list(range(count)), []
        began = time.perf_counter()
        await asyncio.gather(*(self._connection(tickets, statuses) for _ in range(self.concurrency)))
        return time.perf_counter() - began, statuses

    def run(self, count):
        """(seconds, [status of each request])"""
        return asyncio.run(self._run(count))


def wait_until_serving(process, port, log_path, deadline=90):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{tail(log_path)}")
        try:
            _, statuses = Client(port, 1).run(1)
            if statuses == [200]:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the server did not answer in {deadline} s:\n{tail(log_path)}")


def tail(path, lines=25):
    with open(path, errors="replace") as handle:
        return "".join(handle.readlines()[-lines:])


def count_events(path):
    """(events, web:request starts) in a jsonl file."""
    events = requests = 0
    with open(path) as handle:
        for line in handle:
            events += 1
            if '"web:request"' in line and '"start"' in line:
                requests += 1
    return events, requests


def cpu_seconds(pid):
    """User and system CPU time of process ``pid`` and its descendants (gunicorn's worker), from /proc;
    None where there is no /proc. Children that ended are not counted: the servers keep theirs."""
    try:
        tick = os.sysconf("SC_CLK_TCK")
        total, pending = 0, [pid]
        while pending:
            current = pending.pop()
            with open(f"/proc/{current}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat(5))
            with open(f"/proc/{current}/task/{current}/children") as handle:
                pending.extend(int(child) for child in handle.read().split())
        return total / tick
    except (OSError, ValueError, IndexError):
        return None


def measure_once(app, configuration, context, count, warmup, concurrency):
    """One server start: {"rps", "errors", ...} for `count` requests after `warmup` of them."""
    fresh_database(context["database"])
    events_path = context["events"]
    if os.path.exists(events_path):
        os.unlink(events_path)
    port = free_port()
    log_path = os.path.join(context["tmpdir"], f"{app.name}-{configuration.name}.log")
    with open(log_path, "w") as log:
        process = subprocess.Popen(server_command(app, configuration, context, port), cwd=context["tmpdir"],
                                   env=server_env(context), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # our Ctrl-C reaches it only through stop()
    try:
        wait_until_serving(process, port, log_path)
        client = Client(port, concurrency)
        client.run(warmup)  # imports done lazily, caches, the upstream connection, the tracers' first flush
        cpu_before = cpu_seconds(process.pid)
        seconds, statuses = client.run(count)
        cpu_after = cpu_seconds(process.pid)
    finally:
        stop(process)
    sample = {"rps": count / seconds, "seconds": seconds, "errors": sum(status != 200 for status in statuses)}
    if cpu_before is not None and cpu_after is not None:  # the server's own CPU time per request
        sample["cpu_us"] = (cpu_after - cpu_before) / count * 1e6
    if any("{events}" in part for part in configuration.prefix):  # the rows that write the event file
        sample["events"], sample["requests_seen"] = count_events(events_path)
        sample["requests_sent"] = warmup + count + 1  # and at least one readiness check
        os.unlink(events_path)
    suspicious = [line.strip() for line in open(log_path, errors="replace")
                  if any(word in line for word in ("Traceback", "ERROR", "Error", "error", "WARNING"))]
    if suspicious:
        sample["log"] = suspicious[:3]
    return sample


# ------------------------------------------------------------------ report


def summarise(samples):
    """The row of one configuration: its best and median round, or why it has none."""
    failures = [sample["failed"] for sample in samples if "failed" in sample]
    samples = [sample for sample in samples if "failed" not in sample]
    if not samples:
        return f"failed: {failures[0]}"
    rates = [sample["rps"] for sample in samples]
    summary = {"best_rps": max(rates), "median_rps": statistics.median(rates), "rounds_rps": rates,
               "errors": sum(sample["errors"] for sample in samples)}
    cpu = [sample["cpu_us"] for sample in samples if "cpu_us" in sample]
    if cpu:
        summary["cpu_us"], summary["median_cpu_us"], summary["rounds_cpu_us"] = min(cpu), statistics.median(cpu), cpu
    if "events" in samples[0]:
        summary["events_per_request"] = samples[0]["events"] / max(samples[0]["requests_seen"], 1)
        summary["requests_seen"] = samples[0]["requests_seen"]
        summary["requests_sent"] = samples[0]["requests_sent"]
    if failures:
        summary["failed_rounds"] = failures
    logs = [line for sample in samples for line in sample.get("log", [])]
    if logs:
        summary["log"] = logs[:3]
    return summary


def budgets(results):
    """(app, description, measured, limit, ok) for each budget of issue 13 that could be checked."""
    checks = []
    for app in APPS:
        rows = results.get(app.name)
        if not isinstance(rows, dict):  # the app itself is not installed
            continue
        plain = rows.get("plain")
        for configuration in CONFIGURATIONS:
            if configuration.kind != "hookwise" or configuration.name not in rows:
                continue
            if not isinstance(rows[configuration.name], dict):  # it failed: every budget is missed
                checks.append((app.name, f"{configuration.name} ran ({rows[configuration.name]})", 0.0, 1.0, False))
                continue
            ours = rows[configuration.name]["best_rps"]
            limit = BUDGET_RATIOS[configuration.name]
            if isinstance(plain, dict):
                ratio = ours / plain["best_rps"]
                checks.append((app.name, f"{configuration.name} keeps >= {limit:.0%} of plain", ratio,
                               limit, ratio >= limit))
            for rival in CONFIGURATIONS:
                if rival.name in RIVALS[configuration.name] and isinstance(rows.get(rival.name), dict):
                    ratio = ours / rows[rival.name]["best_rps"]
                    checks.append((app.name, f"{configuration.name} faster than {rival.name} (req/s ratio)", ratio,
                                   1.0, ratio > 1.0))
    return checks


def print_report(results, checks, header):
    print("\n" + header)
    for app in APPS:
        rows = results.get(app.name)
        if rows is None:
            continue
        print(f"\n{app.label}:")
        if isinstance(rows, str):
            print(f"  {rows}")
            continue
        plain = rows.get("plain")
        print(f"  {'configuration':38s} {'req/s':>8s} {'median':>8s} {'ratio':>6s} {'added/req':>10s} "
              f"{'cpu/req':>9s} {'median':>8s}  notes")
        for configuration in CONFIGURATIONS:
            row = rows.get(configuration.name)
            if not isinstance(row, dict):
                print(f"  {configuration.label:38s} {row or 'not measured'}")
                continue
            best = row["best_rps"]
            ratio = added = ""
            if isinstance(plain, dict):
                ratio = f"{best / plain['best_rps']:.2f}"
                added = f"{(1 / best - 1 / plain['best_rps']) * 1e6:.0f} us"
            notes = []
            if row["errors"]:
                notes.append(f"{row['errors']} failed requests")
            if "failed_rounds" in row:
                notes.append(f"{len(row['failed_rounds'])} round(s) failed to start")
            if "events_per_request" in row:
                notes.append(f"{row['events_per_request']:.1f} events/request")
                if row["requests_seen"] < row["requests_sent"]:  # a hook that missed requests measures less
                    notes.append(f"saw only {row['requests_seen']} of {row['requests_sent']} requests as web:request")
            if "log" in row:
                notes.append(f"log: {row['log'][0][:60]}")
            cpu = f"{row['cpu_us']:.0f} us" if "cpu_us" in row else ""
            cpu_median = f"{row['median_cpu_us']:.0f} us" if "cpu_us" in row else ""
            print(f"  {configuration.label:38s} {best:8.0f} {row['median_rps']:8.0f} {ratio:>6s} {added:>10s} "
                  f"{cpu:>9s} {cpu_median:>8s}  " + "; ".join(notes))
    print("\nbudgets (issue 13; the best round of each):")
    for app, text, value, limit, ok in checks:
        print(f"  [{'ok' if ok else 'OVER'}] {app}: {text}: {value:.2f} (limit {limit})")
    if not checks:
        print("  none could be checked: nothing of hookwise's rows ran beside plain or a rival")


# ------------------------------------------------------------------ main


def available(python, bin_dir):
    """{app: True or why not}, {configuration: True or why not}."""
    apps = {app.name: True if has_modules(python, app.modules) else "not installed (" + ", ".join(app.modules) + ")"
            for app in APPS}
    configurations = {}
    for configuration in CONFIGURATIONS:
        if configuration.requires and not os.path.exists(os.path.join(bin_dir, configuration.requires)):
            configurations[configuration.name] = "not installed"
        else:
            configurations[configuration.name] = True
    return apps, configurations


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", action="store_true", help="create the venv with the pinned packages, then stop")
    parser.add_argument("--python", default=sys.executable, help="the python the venv is made with (--install)")
    parser.add_argument("--venv", default=DEFAULT_VENV, help=f"the venv to measure with (default {DEFAULT_VENV})")
    parser.add_argument("--requests", type=int, default=2000, help="requests measured per server start")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of every configuration")
    parser.add_argument("--concurrency", type=int, default=4, help="concurrent client connections")
    parser.add_argument("--quick", action="store_true", help="300 requests, one round (a smoke run)")
    parser.add_argument("--only", action="append", help="only these apps or configurations (repeatable)")
    parser.add_argument("--json", help="where to write the numbers (default bench/results/requests-latest.json)")
    options = parser.parse_args(argv)
    if options.install:
        install(os.path.abspath(options.venv), options.python)
        return 0
    count, rounds = (300, 1) if options.quick else (options.requests, options.rounds)
    warmup = max(50, count // 10)

    python = venv_python(os.path.abspath(options.venv))
    if not os.path.exists(python):
        print(f"no venv at {options.venv} (python3 bench/requests.py --install makes it): measuring with "
              f"{sys.executable}, whatever it has installed")
        python = sys.executable
    bin_dir = os.path.dirname(python)
    ensure_accelerator(python)
    apps, configurations = available(python, bin_dir)
    chosen = set(options.only or [])
    apps_run = [app for app in APPS if apps[app.name] is True and (not chosen & {a.name for a in APPS} or app.name in chosen)]
    configurations_run = [c for c in CONFIGURATIONS if configurations[c.name] is True
                          and (not chosen & {c.name for c in CONFIGURATIONS} or c.name in chosen)]

    results = {app.name: apps[app.name] if apps[app.name] is not True else
               {c.name: configurations[c.name] for c in CONFIGURATIONS if configurations[c.name] is not True}
               for app in APPS if apps[app.name] is not True or app in apps_run}
    samples = {(app.name, c.name): [] for app in apps_run for c in configurations_run}
    with tempfile.TemporaryDirectory(prefix="hookwise-bench-requests-", dir=scratch_dir()) as tmpdir:
        with open(os.path.join(tmpdir, "upstream.log"), "w") as upstream_log:
            upstream, upstream_url = start_upstream(upstream_log)
            agent = None
            try:
                context = {"python": python, "bin": bin_dir, "tmpdir": tmpdir, "upstream": upstream_url,
                           "database": os.path.join(tmpdir, "bench.db"), "events": os.path.join(tmpdir, "events.jsonl")}
                if any(c.name.startswith("ddtrace") for c in configurations_run):
                    agent, context["agent"] = start_upstream(upstream_log)
                for round_number in range(rounds):
                    # a rotated order each round: no configuration always follows the same one
                    shift = round_number % max(len(configurations_run), 1)
                    order = configurations_run[shift:] + configurations_run[:shift]
                    for app in apps_run:
                        for configuration in order:
                            label = f"round {round_number + 1}/{rounds} {app.name:8s} {configuration.name:9s}"
                            try:
                                sample = measure_once(app, configuration, context, count, warmup,
                                                      options.concurrency)
                            except RuntimeError as exc:
                                # one server that would not start costs its row, not the rounds measured
                                print(f"{label} FAILED: {exc}", flush=True)
                                sample = {"failed": str(exc).splitlines()[-1]}
                            else:
                                print(f"{label} {sample['rps']:7.0f} req/s", flush=True)
                            samples[(app.name, configuration.name)].append(sample)
            finally:
                stop(upstream)
                if agent is not None:
                    stop(agent)
    for (app_name, configuration_name), taken in samples.items():
        results[app_name][configuration_name] = summarise(taken)

    checks = budgets(results)
    implementation = hookwise_runtime(python)
    installed = versions(python)
    py_version = query(python, "import platform; print(platform.python_version())")
    header = (f"request benchmark: CPython {py_version} on {platform.machine()} ({os.cpu_count()} cores), hookwise "
              f"runtime: {implementation}; {count} requests after {warmup} warm-up, {options.concurrency} "
              f"connections, best of {rounds} round(s)")
    print_report(results, checks, header)
    print("\ninstalled: " + ", ".join(f"{name} {version}" for name, version in installed.items()))
    record = {
        "python": py_version,
        "machine": platform.machine(),
        "cores": os.cpu_count(),
        "hookwise_runtime": implementation,
        "settings": {"requests": count, "warmup": warmup, "rounds": rounds, "concurrency": options.concurrency},
        "packages": installed,
        "configurations": {c.name: {"label": c.label, "kind": c.kind, "prefix": c.prefix} for c in CONFIGURATIONS},
        "results": results,
        "budgets": [{"app": app, "budget": text, "value": value, "limit": limit, "ok": ok}
                    for app, text, value, limit, ok in checks],
    }
    path = options.json or os.path.join(RESULTS, "requests-latest.json")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as handle:
        json.dump(record, handle, indent=2)
    print(f"\nnumbers written to {path}")
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
