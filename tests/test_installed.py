"""What users install: the wheel, in a fresh venv, run from a directory without the source tree.

A checkout and an editable install find every file beside the sources; an
installed copy has only what the wheel holds (``loader.bootstrap`` was once
left out, and every child process ran unhooked without a word). So: build the
wheel from a copy of the sources with ``pip wheel``, install it into a fresh
venv (with pytest, from the package index), and run each way in: the console
script, ``python -m hookwise``, Python children (subprocess, multiprocessing
spawn), the pytest plugin through its entry point, ``python -m rewriter.dump``,
``python -m hookwise.convert`` and every built-in listener. Nothing here has
the checkout on its path.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from helpers import ROOT, clean_env, read_jsonl

PACKAGES = ("hookwise", "loader", "rewriter")
SOURCE_FILES = ("setup.py", "pyproject.toml", "README.md")


def _run(command, **kwargs):
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{command}: {result.stdout}{result.stderr}"
    return result


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """The wheel ``pip wheel`` builds, from a copy of the sources (so concurrent runs share no build/)."""
    base = tmp_path_factory.mktemp("wheel")
    sources = base / "sources"
    for name in PACKAGES:
        shutil.copytree(os.path.join(ROOT, name), sources / name,
                        ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    for name in SOURCE_FILES:
        shutil.copy(os.path.join(ROOT, name), sources / name)
    wheels = base / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
          "--no-build-isolation", "-w", str(wheels), str(sources)], env=clean_env())
    (built,) = wheels.glob("hookwise-*.whl")
    return built


def _fresh_venv(path, *requirements):
    _run([sys.executable, "-m", "venv", str(path)])
    _run([str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
          *requirements], env=clean_env())
    return path / "bin"


@pytest.fixture(scope="session")
def venv(wheel, tmp_path_factory):
    """bin/ of a fresh venv holding the wheel, and pytest for the plugin."""
    return _fresh_venv(tmp_path_factory.mktemp("installed") / "venv", str(wheel), f"pytest=={pytest.__version__}")


@pytest.fixture(scope="session")
def venv_with_otel(wheel, tmp_path_factory):
    """Another, with the otel extra as a user installs it (pinned as the test requirements pin it)."""
    pins = [line.split(";")[0].strip() for line in open(os.path.join(ROOT, "tests", "requirements.txt"))
            if line.startswith(("opentelemetry-api", "opentelemetry-sdk", "opentelemetry-exporter-otlp"))]
    return _fresh_venv(tmp_path_factory.mktemp("installed-otel") / "venv", f"{wheel}[otel]", *pins)


@pytest.fixture
def workdir(tmp_path):
    """An empty directory outside the checkout, for the program and its outputs."""
    assert not str(tmp_path).startswith(ROOT)
    return tmp_path


def run(command, cwd, **env):
    return subprocess.run(command, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=300)


def write(directory, files):
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))


def test_the_wheel_holds_no_checkout_and_imports_from_site_packages(venv, workdir):
    result = run([str(venv / "python"), "-c",
                  "import hookwise, loader, rewriter, os; from loader import children; "
                  "print(all('site-packages' in m.__file__ for m in (hookwise, loader, rewriter))); "
                  "print(os.path.isfile(os.path.join(children.BOOTSTRAP_DIRECTORY, 'sitecustomize.py')))"],
                 workdir)
    assert result.stdout == "True\nTrue\n", result.stderr
    site_packages = run([str(venv / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                        workdir).stdout.strip()
    assert not os.path.exists(os.path.join(site_packages, "driver.py"))  # the runner is hookwise.cli


def test_the_console_script_names_itself_and_its_runtime(venv, workdir):
    usage = run([str(venv / "hookwise"), "--help"], workdir)
    assert usage.returncode == 0 and usage.stdout.startswith("usage: hookwise [options] script.py")
    version = run([str(venv / "hookwise"), "--version"], workdir)
    if os.environ.get("HOOKWISE_PURE_PYTHON"):
        assert version.stdout == "hookwise 0.1.0 (pure Python, because HOOKWISE_PURE_PYTHON is set)\n"
    else:  # pip built the accelerator
        assert version.stdout == "hookwise 0.1.0 (C accelerator)\n"
    explained = run([str(venv / "hookwise"), "--explain", "json:loads"], workdir)
    assert explained.returncode == 0, explained.stderr
    assert explained.stdout == "json:loads\n  -> json:loads  Python function: rewritten when the program imports json\n"


CHILDREN = {
    "work.py": """
        def double(n):
            return n * 2
    """,
    "app.py": """
        import multiprocessing, subprocess, sys
        import work

        if __name__ == "__main__":
            print(work.double(1), flush=True)
            subprocess.run([sys.executable, "-c", "import work; print(work.double(2))"], check=True)
            with multiprocessing.get_context("spawn").Pool(1) as pool:
                print(pool.apply(work.double, (3,)))
    """,
}


@pytest.mark.parametrize("start", ["hookwise", "python -m hookwise"])
def test_children_are_hooked_from_an_installed_copy(start, venv, workdir):
    write(workdir, CHILDREN)
    log = workdir / "events.jsonl"
    runner = [str(venv / "hookwise")] if start == "hookwise" else [str(venv / "python"), "-m", "hookwise"]
    result = run([*runner, "--hook", "work:double", "--listener", f"jsonl={log}", "app.py"], workdir,
                 PYTHONPATH=str(workdir))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2\n4\n6\n"
    assert result.stderr == ""
    ends = [event for event in read_jsonl(log) if event["event"] == "end"]
    assert sorted(event["result"] for event in ends) == ["2", "4", "6"]
    assert len({event["pid"] for event in ends}) == 3  # the program, its subprocess, the spawned worker


PROJECT = {
    "mylib/__init__.py": "",
    "mylib/calc.py": """
        def square(n):
            return n * n
    """,
    "tests/test_calc.py": """
        import sys
        from mylib.calc import square

        def test_square():
            assert square(3) == 9

        def test_the_session_is_untouched():
            assert not any(type(f).__name__ == "HookwiseFinder" for f in sys.meta_path)
            assert "loader" not in sys.modules and "rewriter" not in sys.modules
    """,
}


def test_the_pytest_plugin_needs_no_dash_p_once_installed(venv, workdir):
    write(workdir, PROJECT)
    log = workdir / "events.jsonl"
    result = run([str(venv / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--hookwise-hook",
                  "mylib.calc:square", "--hookwise-listener", f"jsonl={log}", "tests/test_calc.py::test_square"],
                 workdir, PYTHONPATH=str(workdir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert [event["result"] for event in read_jsonl(log) if event["event"] == "end"] == ["9"]


def test_the_pytest_plugin_changes_nothing_when_not_asked_for(venv, workdir):
    write(workdir, PROJECT)
    result = run([str(venv / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], workdir,
                 PYTHONPATH=str(workdir))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout and "hookwise" not in result.stdout + result.stderr


def test_rewriter_dump_of_a_file(venv, workdir):
    write(workdir, PROJECT)
    result = run([str(venv / "python"), "-m", "rewriter.dump", "mylib/calc.py", "--hook", "mylib.calc:square"],
                 workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# hookwise rewrite of mylib.calc (mylib/calc.py)\n")
    assert "_hookwise_site_0: square" in result.stdout


LISTENED = """
    def fib(n):
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    print(fib(6))
"""


def test_every_built_in_listener_from_an_installed_copy(venv, workdir):
    write(workdir, {"prog.py": LISTENED})
    outputs = {"jsonl": "run.jsonl", "stats": "stats.txt", "chrome": "trace.json", "html": "report.html",
               "record": "run.rec"}
    listeners = ["--listener", "console"]
    for name, path in outputs.items():
        listeners += ["--listener", f"{name}={path}"]
    result = run([str(venv / "hookwise"), "--hook", "__main__:fib", *listeners, "prog.py"], workdir)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "8\n"
    assert result.stderr.count("hookwise start") == 25  # console: fib(6) makes 25 calls
    assert sum(1 for event in read_jsonl(workdir / "run.jsonl") if event["event"] == "end") == 25
    assert "__main__:fib" in (workdir / "stats.txt").read_text()
    trace = json.loads((workdir / "trace.json").read_text())
    assert sum(1 for event in trace if event.get("name") == "__main__:fib") == 25
    assert "__main__:fib" in (workdir / "report.html").read_text()
    recordings = [name for name in os.listdir(workdir) if name.startswith("run.rec")]
    converted = run([str(venv / "python"), "-m", "hookwise.convert", *recordings, "--to", "jsonl=again.jsonl"],
                    workdir)
    assert converted.returncode == 0, converted.stderr
    assert sum(1 for event in read_jsonl(workdir / "again.jsonl") if event["event"] == "end") == 25


def test_the_otel_listener_without_its_extra_is_refused_in_one_line(venv, workdir):
    write(workdir, {"prog.py": LISTENED})
    result = run([str(venv / "hookwise"), "--hook", "__main__:fib", "--listener", "otel", "prog.py"], workdir)
    assert result.returncode == 2
    assert result.stdout == ""  # the program never ran
    assert result.stderr.startswith("hookwise: error: ") and result.stderr.count("\n") == 1
    assert "pip install 'hookwise[otel]'" in result.stderr or "opentelemetry" in result.stderr


def test_the_readmes_guard_example_copied_beside_the_program(venv, workdir):
    # examples/ is not installed; the README says to copy guard.py beside the program
    shutil.copy(os.path.join(ROOT, "examples", "guard.py"), workdir / "guard.py")
    write(workdir, {"app.py": """
        import os
        os.system("echo allowed")
        try:
            os.system("echo one; echo two")
        except PermissionError as exc:
            print("refused:", exc)
    """})
    result = run([str(venv / "hookwise"), "--hook", "os:system", "--listener", "guard:CommandGuard", "app.py"],
                 workdir)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 2 and lines[0] == "allowed"  # the chained command never ran
    assert lines[1].startswith("refused: hookwise guard refused posix:system('echo one; echo two')")


def test_the_otel_listener_with_its_extra_installed(venv_with_otel, workdir):
    write(workdir, {"prog.py": LISTENED})
    result = run([str(venv_with_otel / "hookwise"), "--hook", "__main__:fib", "--listener", "otel", "prog.py"],
                 workdir, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="installed")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "8\n"
    spans = [json.loads(line) for line in result.stderr.splitlines()]
    assert len(spans) == 25 and {span["name"] for span in spans} == {"__main__:fib"}
    assert spans[0]["resource"]["attributes"]["service.name"] == "installed"


def test_the_web_preset_from_an_installed_copy(venv, workdir):
    # wsgiref serving a bare WSGI app: the standard library alone, so the fresh venv needs nothing more
    write(workdir, {"served.py": """\
        import threading, urllib.request
        from wsgiref.simple_server import WSGIRequestHandler, make_server

        def app(environ, start_response):
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"hi " + environ["PATH_INFO"].encode()]

        class Quiet(WSGIRequestHandler):
            def log_message(self, *args):
                pass

        server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
        threading.Thread(target=server.handle_request).start()
        print(urllib.request.urlopen(f"http://127.0.0.1:{server.server_port}/there").read())
    """})
    result = run([str(venv / "hookwise"), "--preset", "web", "--listener", "jsonl=events.jsonl", "served.py"], workdir)
    assert result.returncode == 0 and result.stdout == "b'hi /there'\n", result.stderr
    (start, end) = [event for event in read_jsonl(workdir / "events.jsonl") if event["target"] == "web:request"]
    assert start["request"]["path"] == "/there" and end["response"] == {"status": 200, "size": 9}


def test_the_guard_from_an_installed_copy(venv, workdir):
    write(workdir, {"tool.py": """\
        import os, sys
        os.system("echo hello " + sys.argv[1])
    """})
    benign = run([str(venv / "hookwise"), "--guard", "block", "tool.py", "world"], workdir)
    assert benign.returncode == 0 and benign.stdout == "hello world\n", benign.stderr
    attacked = run([str(venv / "hookwise"), "--guard", "block", "tool.py", "x; echo owned"], workdir)
    assert attacked.returncode == 1 and "owned" not in attacked.stdout
    assert "hookwise finding command-injection (critical) blocked" in attacked.stderr
