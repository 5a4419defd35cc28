"""Install what the tests need and run them on every supported CPython found here.

    python3 tests/run_all.py [pytest arguments...]

For each of CPython 3.10, 3.11, 3.12 and 3.13 found (pyenv's versions, then
``python3.X`` on PATH), a virtual environment under ``.test-venvs/`` gets the
pinned test requirements and this project (``pip install .``, which also checks
the ``hookwise`` console script); the C accelerator is built in place, and the
suite runs twice: with the accelerator, then with the pure-Python runtime
(HOOKWISE_PURE_PYTHON=1). Two interpreters run at a time (the suites are mostly
subprocess-bound). A version that is not installed is skipped with a note;
finding none at all is a failure. The exit status is non-zero when any run
fails.

Before that, what the tests need from outside Python: Debian's chromium (the
html report is checked in a real headless browser), postgresql and
mariadb-server (the sql preset's tests start servers of their own), and
libmariadb-dev, pkg-config and gcc (pip builds mysqlclient from source) are
installed with apt-get when they are missing and this runs as root. After the suites, the quick subset of
the fidelity corpus runs (``tests/corpus.py --quick``: a few stdlib suites and
one package, plainly and fully hooked), then again with ``--guard monitor``;
``--no-corpus`` skips both.

Set HOOKWISE_PYTHONS=3.11,3.12 to pick versions.
"""

import glob
import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENVS = os.path.join(ROOT, ".test-venvs")
REQUIREMENTS = os.path.join(ROOT, "tests", "requirements.txt")
SUPPORTED = ("3.10", "3.11", "3.12", "3.13")
IMPLEMENTATIONS = ("c", "pure")  # the C accelerator, then the pure-Python runtime
# pip builds the project in ./build: two installs at once would share it
_INSTALL_LOCK = threading.Lock()


def find_interpreters():
    """{version: path to a CPython binary of that version}."""
    wanted = os.environ.get("HOOKWISE_PYTHONS")
    versions = [v.strip() for v in wanted.split(",")] if wanted else list(SUPPORTED)
    found = {}
    roots = []
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    if shutil.which("pyenv"):
        try:
            pyenv_root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            pass
    roots.append(os.path.join(pyenv_root, "versions"))
    for version in versions:
        candidates = []
        for root in roots:
            if os.path.isdir(root):
                names = sorted((n for n in os.listdir(root) if n.startswith(version + ".")), key=_version_key, reverse=True)
                candidates.extend(os.path.join(root, n, "bin", "python") for n in names)
        on_path = shutil.which(f"python{version}")
        if on_path:
            candidates.append(on_path)
        for candidate in candidates:
            if _is_cpython(candidate, version):
                found[version] = candidate
                break
    return found


def _version_key(name):
    return tuple(int(part) if part.isdigit() else 0 for part in name.split("."))


def _is_cpython(path, version):
    if not os.access(path, os.X_OK):
        return False
    try:
        out = subprocess.run(
            [path, "-c", "import sys, platform; print(platform.python_implementation(), '%d.%d' % sys.version_info[:2])"],
            capture_output=True, text=True, timeout=30,
        ).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out == ["CPython", version]


def prepare(version, interpreter, log):
    """Make (or reuse) the venv for ``version``; returns its python."""
    venv = os.path.join(VENVS, f"py{version}")
    python = os.path.join(venv, "bin", "python")
    stamp = os.path.join(venv, ".requirements-sha256")
    with open(REQUIREMENTS, "rb") as handle:
        digest = hashlib.sha256(handle.read() + interpreter.encode()).hexdigest()
    current = open(stamp).read() if os.path.exists(stamp) else None
    if current != digest or not os.path.exists(python):
        shutil.rmtree(venv, ignore_errors=True)
        _run([interpreter, "-m", "venv", venv], log)
        _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", REQUIREMENTS], log)
        with open(stamp, "w") as handle:
            handle.write(digest)
    # the project itself, freshly: this is also what provides the `hookwise` command
    with _INSTALL_LOCK:
        _run([python, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
              "--no-build-isolation", "--force-reinstall", ROOT], log)
        # the accelerator beside the sources, for the tests that run the checkout
        _run([python, "setup.py", "-q", "build_ext", "--inplace"], log)
        shutil.rmtree(os.path.join(ROOT, "build"), ignore_errors=True)
    return python


def _run(command, log):
    log.write("$ " + " ".join(command) + "\n")
    log.flush()
    subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=True, cwd=ROOT)


def run_suite(version, interpreter, pytest_args):
    os.makedirs(VENVS, exist_ok=True)
    log_path = os.path.join(VENVS, f"py{version}.log")
    began = time.monotonic()
    with open(log_path, "w") as log:
        try:
            python = prepare(version, interpreter, log)
        except subprocess.CalledProcessError as exc:
            return version, False, f"setup failed ({exc})", log_path, time.monotonic() - began
        summaries, ok = [], True
        for implementation in IMPLEMENTATIONS:
            env = dict(os.environ)
            env.pop("PYTHONDONTWRITEBYTECODE", None)  # the tests decide this themselves
            env.pop("HOOKWISE_PURE_PYTHON", None)
            env["HOOKWISE_TEST_IMPLEMENTATION"] = implementation
            if implementation == "pure":
                env["HOOKWISE_PURE_PYTHON"] = "1"
            log.write(f"$ HOOKWISE_TEST_IMPLEMENTATION={implementation} {python} -m pytest {' '.join(pytest_args)}\n")
            log.flush()
            start = log.tell()
            result = subprocess.run([python, "-m", "pytest", *pytest_args], stdout=log, stderr=subprocess.STDOUT,
                                    cwd=ROOT, env=env)
            log.flush()
            with open(log_path) as handle:
                handle.seek(start)
                tail = [line for line in handle.read().splitlines() if line.strip()]
            summaries.append(f"{implementation}: {tail[-1] if tail else '(no output)'}")
            ok = ok and result.returncode == 0
    return version, ok, " | ".join(summaries), log_path, time.monotonic() - began


def ensure_system_packages():
    """Install Debian's chromium (the html report's browser tests), postgresql and mariadb-server (the
    sql preset's servers), and what building mysqlclient takes, when they are missing and we may."""
    missing = [package for package, present in (
        ("chromium", shutil.which("chromium")),
        ("postgresql", glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        ("mariadb-server", shutil.which("mariadbd", path="/usr/sbin:/usr/bin")),
        ("libmariadb-dev", os.path.exists("/usr/include/mariadb/mysql.h")),
        ("pkg-config", shutil.which("pkg-config")),
        ("gcc", shutil.which("gcc")),
    ) if not present]
    if not missing or not shutil.which("apt-get") or os.geteuid() != 0:
        return
    print(f"installing Debian's {' and '.join(missing)} for the tests ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *missing]):
        subprocess.run(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main():
    arguments = sys.argv[1:]
    run_corpus = "--no-corpus" not in arguments
    arguments = [argument for argument in arguments if argument != "--no-corpus"]
    pytest_args = arguments or ["-q", "-p", "no:cacheprovider"]
    ensure_system_packages()
    interpreters = find_interpreters()
    for version in SUPPORTED:
        if version not in interpreters:
            print(f"python {version}: not installed here, skipped")
    if not interpreters:
        print("no supported CPython (3.10-3.13) found: nothing was tested")
        return 1
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(lambda item: run_suite(item[0], item[1], pytest_args), interpreters.items()))
    failed = False
    for version, ok, summary, log_path, seconds in results:
        print(f"python {version}: {'PASS' if ok else 'FAIL'} in {seconds:.0f}s: {summary}")
        if not ok:
            failed = True
            print(f"---- {log_path} (last 60 lines) ----")
            with open(log_path) as handle:
                print("".join(handle.readlines()[-60:]))
    if run_corpus:
        print("\nfidelity corpus, quick subset (python3 tests/corpus.py --quick):", flush=True)
        corpus = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "corpus.py"), "--quick"], cwd=ROOT)
        failed = failed or corpus.returncode != 0
        print("\nthe same with the guard on (python3 tests/corpus.py --quick --guard monitor):", flush=True)
        guarded = subprocess.run([sys.executable, os.path.join(ROOT, "tests", "corpus.py"), "--quick", "--guard",
                                  "monitor"], cwd=ROOT)
        failed = failed or guarded.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
