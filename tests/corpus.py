"""Fidelity at scale: real test suites pass unchanged under full instrumentation.

    python3 tests/corpus.py [--quick] [--python 3.12 ...] [--entry json --entry attrs ...] [--pure] [--guard monitor]

For each entry and each Python, the entry's own test suite runs twice: plainly,
and under driver.py with every function and method of the package under test
hooked and a JSONL listener recording every call. The pass/fail/skip/error
counts must be identical, and the event log must show calls of the package
(a run that recorded none tested nothing). One table row per entry; the exit
status is non-zero on any difference.

Entries: CPython's own regression tests for pure-Python stdlib modules (already
installed with every interpreter), and the test suites shipped in the sdists of
pure-Python packages, downloaded with pip at pinned versions into
``.corpus-cache/`` and installed with their test needs in a venv per Python.

``--quick`` is the subset CI runs (a few stdlib suites and one package).
``--guard monitor`` runs the hooked side with the guard on too (hookwise.guard:
every sink of the security preset checked at each call); CI runs the quick
subset that way as well.
"""

import argparse
import collections
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
DRIVER = os.path.join(ROOT, "driver.py")
CACHE = os.path.join(ROOT, ".corpus-cache")

sys.path.insert(0, HERE)
from run_all import find_interpreters  # noqa: E402


class Entry:
    def __init__(self, name, hooks, command, package=None, requirements=(), tests="tests", since=None, pytest_args=()):
        self.name = name
        self.hooks = hooks  # targets: every function of the package under test
        self.command = command  # how its suite runs, after `python`
        self.package = package  # "name==version" of an sdist, or None for the stdlib
        self.requirements = requirements
        self.tests = tests
        self.since = since  # first Python that has this test suite
        self.pytest_args = pytest_args


def stdlib(name, modules, test=None, since=None):
    hooks = []
    for module in modules:
        hooks += [f"{module}:*", f"{module}.*:*"]
    # regrtest, as CPython runs its own suites: some (test_decimal) set themselves up only there
    return Entry(name, hooks, ["-m", "test", "-v", test or f"test_{name}"], since=since)


def package(name, requirement, modules, requirements=(), tests="tests", pytest_args=()):
    hooks = []
    for module in modules:
        hooks += [f"{module}:*", f"{module}.*:*"]
    return Entry(name, hooks, None, requirement, requirements, tests, pytest_args=pytest_args)


ENTRIES = [
    stdlib("json", ["json"]),
    stdlib("textwrap", ["textwrap"]),
    stdlib("difflib", ["difflib"]),
    stdlib("statistics", ["statistics"]),
    stdlib("string", ["string"]),
    stdlib("csv", ["csv"]),
    stdlib("email", ["email"]),
    stdlib("heapq", ["heapq"]),
    stdlib("bisect", ["bisect"]),
    stdlib("dataclasses", ["dataclasses"]),
    stdlib("argparse", ["argparse"]),
    stdlib("pathlib", ["pathlib"]),
    stdlib("pprint", ["pprint"]),
    stdlib("tomllib", ["tomllib"], since=(3, 11)),
    stdlib("decimal", ["_pydecimal"]),
    stdlib("copy", ["copy"]),
    stdlib("calendar", ["calendar"]),
    stdlib("base64", ["base64"]),
    stdlib("fnmatch", ["fnmatch"]),
    stdlib("urllib.parse", ["urllib.parse"], test="test_urlparse"),
    stdlib("zoneinfo", ["zoneinfo"]),
    stdlib("typing", ["typing"]),
    # socket.socket's methods come from the C type _socket.socket: hooked on the Python subclass
    Entry("socket", ["socket:*"] + [f"socket:socket.{method}" for method in (
        "connect", "connect_ex", "bind", "listen", "send", "sendall", "sendto", "recv", "recv_into", "recvfrom",
        "setsockopt", "getsockopt", "settimeout", "shutdown", "getpeername", "getsockname")],
        ["-m", "test", "-v", "test_socket", "-i", "*VSOCK*"]),  # VSOCK sockets hang in containers
    # sqlite3's C types, served through the connections sqlite3.connect makes (loader/c_types.py)
    Entry("sqlite3", ["sqlite3:*", "sqlite3.*:*"] + [f"sqlite3:Connection.{method}" for method in (
        "execute", "executemany", "executescript", "cursor", "commit", "close")] + [
        f"sqlite3:Cursor.{method}" for method in (
            "execute", "executemany", "executescript", "fetchone", "fetchmany", "fetchall")],
        ["-m", "test", "-v", "test_sqlite3"], since=(3, 11)),
    package("more-itertools", "more-itertools==10.5.0", ["more_itertools"]),
    package("attrs", "attrs==24.2.0", ["attr", "attrs"], ["hypothesis==6.155.2", "cloudpickle==3.1.0"]),
    package("jinja2", "jinja2==3.1.6", ["jinja2"], ["markupsafe==3.0.2", "trio==0.27.0"]),
    package("click", "click==8.1.7", ["click"]),
    # its conftest uses a hook argument pytest 9 removed
    package("boltons", "boltons==25.0.0", ["boltons"], ["pytest==8.3.5"]),
    package("toolz", "toolz==1.0.0", ["toolz", "tlz"], tests="toolz/tests"),
    package("pyparsing", "pyparsing==3.1.4", ["pyparsing"], ["railroad-diagrams==3.0.1", "jinja2==3.1.4"]),
]
QUICK = ("json", "textwrap", "bisect", "csv", "more-itertools")
TEST_REQUIREMENTS = ["pytest==9.0.3"]


# -------------------------------------------------------------- results of a run

def unittest_counts(output):
    """{'tests', 'failures', 'errors', 'skipped', ...} from unittest's summary."""
    counts = collections.Counter()
    ran = re.findall(r"^Ran (\d+) tests?", output, re.M)
    if not ran:
        return None
    counts["tests"] = int(ran[-1])
    status = re.findall(r"^(OK|FAILED)(?: \((.*)\))?$", output, re.M)
    if status:
        for part in (status[-1][1] or "").split(","):
            if "=" in part:
                key, value = part.strip().split("=")
                counts[key.strip()] = int(value)
    return dict(counts)


def pytest_counts(output):
    """{'passed', 'failed', 'skipped', 'error', 'xfailed', ...} from pytest's last line."""
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|error|skipped)", line)]
    if not lines:
        return None
    counts = {}
    for number, word in re.findall(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed|warnings?|deselected)", lines[-1]):
        if word.startswith("warning"):
            continue
        counts[word.rstrip("s") if word.startswith("error") else word] = int(number)
    return counts


class EventCounter(threading.Thread):
    """Reads a JSONL event stream from a named pipe while the hooked run writes it.

    A fully hooked test suite records millions of calls: the events are
    checked as they come (calls of the package, starts without an end) and
    never stored. Every line must parse, which also proves none was torn.
    """

    def __init__(self, path, modules, keep=None):
        super().__init__(daemon=True)
        self.path = path
        self.prefixes = tuple(f"{module}:" for module in modules) + tuple(f"{module}." for module in modules)
        self.keep = keep
        self.calls = 0
        self.events = 0
        self.open_calls = set()
        self.bad_lines = 0

    def run(self):
        kept = open(self.keep, "wb") if self.keep else None
        # reopened until the writers are gone for good: child processes open it too
        while True:
            with open(self.path, "rb") as stream:
                for line in stream:
                    if kept:
                        kept.write(line)
                    try:
                        self.count(line)
                    except Exception as exc:  # keep draining: a dead reader would block the writers
                        self.bad_lines += 1
                        self.failure = f"{type(exc).__name__}: {exc}"
            if self.done:
                break
        if kept:
            kept.close()

    done = False
    failure = None

    # the JSONL listener writes its fields in this order: reading them off the
    # front of the line is much faster than json.loads, which only every
    # thousandth line gets (every line is still checked to be one whole object)
    _FRONT = re.compile(
        rb'\{"event":"(start|end|error)","call_id":(\d+),"target":("(?:[^"\\]|\\.)*"),'
        rb'"thread_id":\d+,"thread_name":"(?:[^"\\]|\\.)*","pid":(\d+),'
    )

    def count(self, line):
        found = self._FRONT.match(line)
        if found is None or not line.endswith(b"}\n"):
            self.bad_lines += 1
            return
        self.events += 1
        if self.events % 1000 == 0:
            try:
                json.loads(line)
            except ValueError:
                self.bad_lines += 1
        kind, call_id, target, pid = found.groups()
        key = (pid, call_id)
        if kind == b"start":
            # a generator or coroutine may be abandoned and never finish, as without hookwise
            if b',"kind":"function",' in line or b',"kind":"builtin",' in line:
                self.open_calls.add(key)
            if json.loads(target).startswith(self.prefixes):
                self.calls += 1
        else:
            self.open_calls.discard(key)

    def finish(self):
        self.done = True
        # wake the reader if it waits in open() for a writer; without a reader, do not wait
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass
        self.join(timeout=60)


# -------------------------------------------------------------- environments

def run(command, cwd, env, timeout):
    began = time.monotonic()
    try:
        result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
        output, code = result.stdout + result.stderr, result.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = f"{exc.stdout or ''}{exc.stderr or ''}\nTIMEOUT after {timeout}s", -1
    return output, code, time.monotonic() - began


def base_env(pure):
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "HOOKWISE"))}
    if pure:
        env["HOOKWISE_PURE_PYTHON"] = "1"
    return env


def sdist_dir(entry, python, log):
    """The unpacked sdist of an entry (downloaded once into the cache)."""
    downloads = os.path.join(CACHE, "sdists")
    os.makedirs(downloads, exist_ok=True)
    name, _, version = entry.package.partition("==")
    stem = f"{name.replace('-', '_')}-{version}"
    unpacked = [path for path in (os.path.join(downloads, stem), os.path.join(downloads, f"{name}-{version}")) if os.path.isdir(path)]
    if unpacked:
        return unpacked[0]
    # only this distribution as an sdist: its build backend may come as a wheel
    subprocess.run([python, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", name, "-d", downloads,
                    entry.package], check=True, stdout=log, stderr=subprocess.STDOUT)
    for archive in os.listdir(downloads):
        lowered = archive.lower()
        if lowered.endswith(".tar.gz") and lowered.startswith((stem.lower(), f"{name.lower()}-{version}")):
            with tarfile.open(os.path.join(downloads, archive)) as tar:
                tar.extractall(downloads)
            for candidate in (os.path.join(downloads, stem), os.path.join(downloads, f"{name}-{version}")):
                if os.path.isdir(candidate):
                    return candidate
    raise RuntimeError(f"could not unpack the sdist of {entry.package}")


def package_python(entry, version, interpreter, log):
    """A venv for (entry, Python) with the package and its test needs installed."""
    venv = os.path.join(CACHE, "venvs", f"{entry.name}-py{version}")
    python = os.path.join(venv, "bin", "python")
    source = sdist_dir(entry, interpreter, log)
    # an entry's own pin of a test requirement (an old pytest) wins over the default
    pinned = {requirement.split("=")[0].lower() for requirement in entry.requirements}
    requirements = [r for r in TEST_REQUIREMENTS if r.split("=")[0].lower() not in pinned] + list(entry.requirements)
    stamp = os.path.join(venv, ".ready")
    wanted = " ".join([entry.package, *requirements])
    if not os.path.exists(stamp) or open(stamp).read() != wanted:
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([interpreter, "-m", "venv", venv], check=True, stdout=log, stderr=subprocess.STDOUT)
        subprocess.run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", source,
                        *requirements], check=True, stdout=log, stderr=subprocess.STDOUT)
        with open(stamp, "w") as out:
            out.write(wanted)
    return python, source


# -------------------------------------------------------------- one entry

def check_entry(entry, version, interpreter, pure, timeout, keep_logs, log, guard=None):
    env = base_env(pure)
    scratch = tempfile.mkdtemp(prefix=f"hookwise-corpus-{entry.name}-")
    try:
        if entry.package is None:
            python, cwd, command, counts_of = interpreter, scratch, entry.command, unittest_counts
        else:
            python, cwd = package_python(entry, version, interpreter, log)
            command = ["-m", "pytest", entry.tests, "-q", "-p", "no:cacheprovider", *entry.pytest_args]
            counts_of = pytest_counts
        events = os.path.join(scratch, "events.jsonl")
        os.mkfifo(events)
        modules = sorted({hook.split(":")[0].rstrip(".*") for hook in entry.hooks})
        counter = EventCounter(events, modules, os.path.join(CACHE, f"events-{entry.name}-py{version}.jsonl") if keep_logs else None)
        counter.start()
        hooks = [arg for hook in entry.hooks for arg in ("--hook", hook)]
        if guard is not None:
            hooks += ["--guard", guard]
        plain_out, plain_code, plain_time = run([python, *command], cwd, env, timeout)
        hooked_out, hooked_code, hooked_time = run([python, DRIVER, *hooks, "--listener", f"jsonl={events}", *command],
                                                   cwd, env, timeout * 4)
        counter.finish()
        calls, unpaired = counter.calls, len(counter.open_calls)
        plain, hooked = counts_of(plain_out), counts_of(hooked_out)
        problems = []
        if plain is None:
            problems.append("the plain run gave no summary")
        if plain != hooked:
            problems.append(f"counts differ: plain {plain}, hooked {hooked}")
        if plain_code != hooked_code:
            problems.append(f"exit status {plain_code} plainly, {hooked_code} hooked")
        if calls == 0:
            problems.append("no call of the package was recorded")
        if unpaired:
            problems.append(f"{unpaired} starts without an end")
        if counter.bad_lines:
            problems.append(f"{counter.bad_lines} event lines did not parse" + (f" ({counter.failure})" if counter.failure else ""))
        log.write(f"\n===== {entry.name} on {version}: plain ({plain_code}) =====\n{plain_out[-5000:]}\n")
        log.write(f"===== {entry.name} on {version}: hooked ({hooked_code}) =====\n{hooked_out[-20000:]}\n")
        log.flush()
        # same results, but failing ones: the entry no longer shows hookwise running a passing suite
        plain_fails = plain_code != 0 or any((plain or {}).get(key) for key in ("failures", "errors", "failed", "error"))
        return {"entry": entry.name, "python": version, "plain": plain, "hooked": hooked, "calls": calls,
                "plain_s": plain_time, "hooked_s": hooked_time, "problems": problems, "plain_fails": plain_fails}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def describe(counts):
    if not counts:
        return "-"
    return " ".join(f"{key}={value}" for key, value in sorted(counts.items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK)} (what CI runs)")
    parser.add_argument("--entry", action="append", help="run only this entry (repeatable)")
    parser.add_argument("--python", action="append", help="only this Python version, e.g. 3.12 (repeatable)")
    parser.add_argument("--pure", action="store_true", help="use the pure-Python runtime")
    parser.add_argument("--timeout", type=int, default=900, help="seconds for a plain run (hooked runs get 4x)")
    parser.add_argument("--keep-logs", action="store_true", help="keep the event logs in .corpus-cache/")
    parser.add_argument("--guard", choices=("monitor",), help="hooked runs with the guard on as well")
    options = parser.parse_args(argv)
    wanted = set(options.entry or (QUICK if options.quick else [entry.name for entry in ENTRIES]))
    entries = [entry for entry in ENTRIES if entry.name in wanted]
    if options.python:
        os.environ["HOOKWISE_PYTHONS"] = ",".join(options.python)
    interpreters = find_interpreters()
    if not interpreters:
        print("no supported CPython found")
        return 1
    os.makedirs(CACHE, exist_ok=True)
    log_path = os.path.join(CACHE, "corpus.log")
    failures = 0
    plain_failures = []
    print(f"{'entry':16s} {'python':6s} {'plain':42s} {'hooked':42s} {'calls':>9s} {'time':>13s}  verdict")
    with open(log_path, "w") as log:
        for version, interpreter in interpreters.items():
            for entry in entries:
                if entry.since and tuple(map(int, version.split("."))) < entry.since:
                    continue
                try:
                    result = check_entry(entry, version, interpreter, options.pure, options.timeout, options.keep_logs,
                                         log, options.guard)
                except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
                    result = {"entry": entry.name, "python": version, "plain": None, "hooked": None, "calls": 0,
                              "plain_s": 0, "hooked_s": 0, "problems": [f"setup failed: {exc}"]}
                if result["problems"]:
                    verdict = "DIFF: " + "; ".join(result["problems"])
                elif result.get("plain_fails"):
                    verdict = "OK, SAME FAILURES: the plain run fails too"
                    plain_failures.append(f"{entry.name} on {version}")
                else:
                    verdict = "OK"
                failures += bool(result["problems"])
                timing = f"{result['plain_s']:5.1f}s/{result['hooked_s']:5.1f}s"
                print(f"{entry.name:16s} {version:6s} {describe(result['plain']):42s} {describe(result['hooked']):42s} "
                      f"{result['calls']:9d} {timing:>13s}  {verdict}", flush=True)
    if plain_failures:
        print(f"\nfailing without hookwise (pick a version whose suite passes): {', '.join(plain_failures)}")
    print(f"\nfull output of every run: {log_path}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
