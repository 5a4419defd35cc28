"""The runner, end to end in fresh processes: the program must not tell the difference.

Each test runs a fixture program plainly and under ``driver.py`` and compares
what the program saw and did: argv, sys.path[0], the ``__main__`` module,
output, exit status, and the traceback of an uncaught exception.
"""

import json
import os
import signal
import sys

import pytest

from helpers import DRIVER, FIXTURES, ROOT, clean_env, read_jsonl, run_driver, run_python

SCRIPTS = os.path.join(FIXTURES, "scripts")
QUIET = ["--listener", "jsonl=" + os.devnull]  # events go nowhere: stderr stays the program's


def without_hookwise_lines(text):
    return "".join(line for line in text.splitlines(True) if not line.startswith("hookwise"))


@pytest.mark.parametrize("hooks", [[], ["--hook", "__main__:*"], ["--hook", "json:*"]])
def test_a_script_sees_exactly_what_python_shows_it(hooks, tmp_path):
    script = os.path.join(SCRIPTS, "probe_main.py")
    relative = os.path.relpath(script, FIXTURES)
    plain = run_python([relative, "one", "two"], cwd=FIXTURES)
    hooked = run_driver([*hooks, *QUIET, relative, "one", "two"], cwd=FIXTURES)
    assert plain.returncode == hooked.returncode == 0, hooked.stderr
    assert json.loads(hooked.stdout) == json.loads(plain.stdout)
    assert hooked.stderr == plain.stderr == ""


def test_a_module_run_with_dash_m_sees_what_python_shows_it():
    plain = run_python(["-m", "scripts.probe_main", "x"], cwd=FIXTURES)
    hooked = run_driver(["--hook", "__main__:*", *QUIET, "-m", "scripts.probe_main", "x"], cwd=FIXTURES)
    assert plain.returncode == hooked.returncode == 0, hooked.stderr
    assert json.loads(hooked.stdout) == json.loads(plain.stdout)


def test_stdin_is_the_programs():
    args = [os.path.join(SCRIPTS, "probe_main.py"), "--read-stdin"]
    plain = run_python(args, input="piped text\n")
    hooked = run_driver(QUIET + args, input="piped text\n")
    assert json.loads(hooked.stdout)["stdin"] == json.loads(plain.stdout)["stdin"] == "piped text\n"


def test_a_package_and_its_main_module(tmp_path):
    cwd = os.path.join(FIXTURES, "pkgmain")
    log = tmp_path / "events.jsonl"
    for target, args in (("runner", ["a", "b"]), ("runner.tool", ["41"])):
        plain = run_python(["-m", target, *args], cwd=cwd)
        hooked = run_driver(["--hook", "__main__:*", "--listener", f"jsonl={log}", "-m", target, *args], cwd=cwd)
        assert hooked.returncode == plain.returncode == 0, hooked.stderr
        assert hooked.stdout == plain.stdout
        events = read_jsonl(log)
        assert {event["target"] for event in events} == {"__main__:entry" if target == "runner" else "__main__:work"}


def test_a_module_is_hooked_by_its_own_name_when_run_with_dash_m(tmp_path):
    log = tmp_path / "events.jsonl"
    result = run_driver(["--hook", "runner.tool:work", "--listener", f"jsonl={log}", "-m", "runner.tool", "1"],
                        cwd=os.path.join(FIXTURES, "pkgmain"))
    assert result.returncode == 0, result.stderr
    assert [event["target"] for event in read_jsonl(log)] == ["__main__:work", "__main__:work"]


def test_a_directory_with_a_main_module():
    plain = run_python([os.path.join("pkgmain", "runner"), "z"], cwd=FIXTURES)
    hooked = run_driver(QUIET + [os.path.join("pkgmain", "runner"), "z"], cwd=FIXTURES)
    assert plain.returncode == hooked.returncode == 0, hooked.stderr
    assert hooked.stdout == plain.stdout


@pytest.mark.parametrize("hooks", [[], ["--hook", "__main__:*"]])
@pytest.mark.parametrize("args", [["x"], ["open"]])
def test_an_uncaught_exception_is_reported_exactly_as_python_does(hooks, args):
    script = os.path.join(SCRIPTS, "uncaught.py")
    plain = run_python([script, *args])
    hooked = run_driver([*hooks, *QUIET, script, *args])
    assert plain.returncode == hooked.returncode == 1
    assert hooked.stderr == plain.stderr
    assert "driver.py" not in hooked.stderr and "hookwise" not in hooked.stderr


def test_the_default_listener_writes_events_beside_the_same_traceback():
    script = os.path.join(SCRIPTS, "uncaught.py")
    plain = run_python([script, "open"])
    hooked = run_driver([script, "open"])  # default hooks watch open(); console listener on stderr
    assert hooked.returncode == 1
    assert without_hookwise_lines(hooked.stderr) == plain.stderr
    assert "hookwise error" in hooked.stderr and "FileNotFoundError" in hooked.stderr


@pytest.mark.parametrize(
    "args, code",
    [(["code", "0"], 0), (["code", "3"], 3), (["message"], 1), (["syntaxerror-at-runtime"], 1), (["thread"], 0)],
)
def test_exit_status_and_output_are_the_programs(args, code):
    script = os.path.join(SCRIPTS, "exits.py")
    plain = run_python([script, *args])
    hooked = run_driver(QUIET + [script, *args])
    assert plain.returncode == hooked.returncode == code
    assert hooked.stdout == plain.stdout
    assert hooked.stderr == plain.stderr


def test_an_uncaught_keyboard_interrupt_ends_the_process_like_python():
    script = os.path.join(SCRIPTS, "exits.py")
    plain = run_python([script, "interrupt"])
    hooked = run_driver(QUIET + [script, "interrupt"])
    assert plain.returncode == hooked.returncode == -signal.SIGINT
    assert hooked.stderr == plain.stderr


def test_a_script_with_a_syntax_error_fails_like_python():
    script = os.path.join(SCRIPTS, "syntax_error.py")
    plain = run_python([script])
    hooked = run_driver(QUIET + [script])
    assert plain.returncode == hooked.returncode == 1
    assert hooked.stderr == plain.stderr and "SyntaxError" in hooked.stderr
    hooked = run_driver(["--hook", "__main__:*", *QUIET, script])
    assert hooked.stderr == plain.stderr


def test_a_missing_script_fails_like_python(tmp_path):
    plain = run_python(["nope.py"], cwd=tmp_path)
    hooked = run_driver(["nope.py"], cwd=tmp_path)
    assert plain.returncode == hooked.returncode == 2
    assert hooked.stderr == plain.stderr


def test_a_missing_module_fails_like_python(tmp_path):
    plain = run_python(["-m", "no_such_module_here"], cwd=tmp_path)
    hooked = run_driver(QUIET + ["-m", "no_such_module_here"], cwd=tmp_path)
    assert plain.returncode == hooked.returncode == 1
    assert hooked.stderr == plain.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bogus", "x.py"], "unknown option '--bogus'"),
        (["--hook"], "option --hook needs a value"),
        ([], "no program to run"),
        (["--hook", "os:", "x.py"], "has no function after ':'"),
        (["--hook", ":system", "x.py"], "has no module before ':'"),
        (["--hook", "a:b:c", "x.py"], "exactly one ':'"),
        (["--hook", "", "x.py"], "empty target"),
        (["--hook", "hookwise.runtime:Site.start", "x.py"], "inside hookwise itself"),
        (["--listener", "nonsense", "x.py"], "unknown listener 'nonsense'"),
        (["--listener", "no_such_pkg.mod:Thing", "x.py"], "cannot import 'no_such_pkg.mod'"),
        (["--listener", "jsonl", "x.py"], "needs a path"),
        (["--repr-limit", "many", "x.py"], "needs a whole number"),
        (["--repr-limit", "3", "x.py"], "at least 8"),
        (["--listener", "jsonl=/no/such/dir/out.jsonl", "x.py"], "cannot write the output"),
        (["--config", "missing.toml", "x.py"], "does not exist"),
        (["--hook", "builtins:locals", "x.py"], "cannot hook 'builtins:locals'"),
        (["--hook", "subprocess:Popen", "x.py"], None),  # subprocess not loaded yet: decided at import
        (["--hook", "io:TextIOWrapper.write", "x.py"], "is a C type"),
        (["--hook", "os:sep", "x.py"], "not a function"),
    ],
)
def test_bad_input_is_refused_before_the_program_starts(args, message, tmp_path):
    (tmp_path / "x.py").write_text("print('the program ran')\n")
    result = run_driver(args, cwd=tmp_path)
    if message is None:
        assert result.returncode == 0
        return
    assert result.returncode == 2, result.stderr
    assert "the program ran" not in result.stdout
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_class_target_in_a_loaded_module_is_refused(tmp_path):
    (tmp_path / "x.py").write_text("print('ran')\n")
    result = run_driver(["--hook", "collections:OrderedDict", "x.py"], cwd=tmp_path)
    assert result.returncode == 2 and "names a class" in result.stderr


def test_help_and_version():
    result = run_driver(["--help"])
    assert result.returncode == 0 and "--hook TARGET" in result.stdout and "--listener SPEC" in result.stdout
    result = run_driver(["--version"])
    assert result.returncode == 0 and result.stdout.startswith("hookwise ")


def test_options_after_the_script_belong_to_the_script(tmp_path):
    (tmp_path / "x.py").write_text("import sys; print(sys.argv)\n")
    result = run_driver(QUIET + ["x.py", "--hook", "-m", "--version"], cwd=tmp_path)
    assert result.stdout.strip() == "['x.py', '--hook', '-m', '--version']"


def test_python_dash_m_driver_works_too(tmp_path):
    (tmp_path / "x.py").write_text("import os; os.system('true')\n")
    result = run_python(["-m", "driver", str(tmp_path / "x.py")], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert "hookwise start" in result.stderr and "posix:system('true')" in result.stderr


def test_the_programs_own_loader_module_is_not_shadowed_by_hookwise(tmp_path):
    (tmp_path / "loader.py").write_text("WHO = 'the program'\n")
    (tmp_path / "rewriter.py").write_text("WHO = 'the program too'\n")
    (tmp_path / "x.py").write_text("import loader, rewriter; print(loader.WHO, '/', rewriter.WHO)\n")
    result = run_driver(QUIET + ["x.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "the program / the program too"


def test_unmatched_targets_are_reported_at_exit(tmp_path):
    (tmp_path / "x.py").write_text("import json\ndef here(): pass\n")
    result = run_driver(["--hook", "__main__:nothere", "--hook", "json:nosuch", "--hook", "neverimported:f",
                         "--hook", "__main__:here", *QUIET, "x.py"], cwd=tmp_path)
    assert result.returncode == 0
    lines = result.stderr.strip().splitlines()
    assert "hookwise: target '__main__:nothere' matched nothing" in lines
    assert "hookwise: target 'json:nosuch' matched nothing" in lines
    assert "hookwise: target 'neverimported:f' matched nothing (module 'neverimported' was never imported)" in lines
    assert not any("__main__:here" in line for line in lines)


def test_hookwise_leaves_nothing_for_python_to_warn_about_at_exit(tmp_path):
    # a program run with warnings on (-X dev, as pytest and CI often do) sees every
    # unclosed file at exit; hookwise's own stderr and logs must not be among them
    (tmp_path / "x.py").write_text("def f(): return 1\nf()\nprint('done')\n")
    log = tmp_path / "events.jsonl"
    result = run_driver(["--hook", "__main__:f", "--hook", "__main__:missing", "--listener", "console",
                         "--listener", f"jsonl={log}", "--listener", f"stats={tmp_path / 'stats.txt'}", "x.py"],
                        cwd=tmp_path, env=clean_env(PYTHONDEVMODE="1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done\n"
    assert "hookwise: target '__main__:missing' matched nothing" in result.stderr
    assert "Warning" not in result.stderr and "Exception ignored" not in result.stderr, result.stderr


def test_the_console_script_installed_by_pip(tmp_path):
    """`pip install .` gives a `hookwise` command that behaves like driver.py."""
    command = os.path.join(os.path.dirname(sys.executable), "hookwise")
    if not os.path.exists(command):  # not installed in this environment: install it into a fresh venv
        venv = tmp_path / "venv"
        created = run_python(["-m", "venv", str(venv)])
        assert created.returncode == 0, created.stderr
        import subprocess

        installed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", ROOT],
                                   capture_output=True, text=True, timeout=600)
        assert installed.returncode == 0, installed.stderr
        command = str(venv / "bin" / "hookwise")
    script = os.path.join(SCRIPTS, "uncaught.py")
    plain = run_python([script, "x"])
    import subprocess

    hooked = subprocess.run([command, *QUIET, script, "x"], capture_output=True, text=True, env=clean_env(), cwd=tmp_path)
    assert hooked.returncode == 1
    assert hooked.stderr == plain.stderr  # no console-script frame in the traceback


STDIN_PROGRAM = (
    "import json, sys\n"
    "def half(x):\n    return x / 2\n"
    "print(json.dumps([sys.argv, sys.path[0], sorted(globals()), __file__, type(__loader__).__name__, half(3)]))\n"
    "half(len(sys.argv[1:]) - 2)\n"
    "1 / 0 if sys.argv[1:] == ['boom', 'x'] else None\n"
)


@pytest.mark.parametrize("hooks", [[], ["--hook", "__main__:*"]])
def test_a_program_read_from_stdin_runs_like_python(hooks, tmp_path):
    plain = run_python(["-", "boom", "x"], cwd=tmp_path, input=STDIN_PROGRAM)
    hooked = run_driver([*hooks, *QUIET, "-", "boom", "x"], cwd=tmp_path, input=STDIN_PROGRAM)
    assert plain.returncode == hooked.returncode == 1
    assert hooked.stdout == plain.stdout and '"<stdin>"' in plain.stdout
    assert hooked.stderr == plain.stderr


def test_a_compiled_script_runs_like_python(tmp_path):
    (tmp_path / "prog.py").write_text(STDIN_PROGRAM.replace("__file__", "__file__.endswith('.pyc')"))
    compiled = run_python(["-c", "import py_compile; py_compile.compile('prog.py', cfile='prog.pyc')"], cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    (tmp_path / "prog.py").unlink()
    plain = run_python(["prog.pyc", "boom", "x"], cwd=tmp_path)
    hooked = run_driver([*QUIET, "prog.pyc", "boom", "x"], cwd=tmp_path)
    assert plain.returncode == hooked.returncode == 1
    assert hooked.stdout == plain.stdout and "SourcelessFileLoader" in plain.stdout
    assert hooked.stderr == plain.stderr


@pytest.mark.parametrize("hooks", [[], ["--hook", "__main__:*"]])
def test_dash_c_runs_like_python(hooks, tmp_path):
    code = (
        "import sys, json\n"
        "def half(x):\n    return x / 2\n"
        "print(json.dumps([sys.argv, sys.path[0], sorted(globals()), type(__loader__).__name__, __spec__, half(3)]))\n"
        "half(len(sys.argv[1:]) - 2)\n"
        "1 / 0 if sys.argv[1:] == ['boom', 'x'] else None\n"
    )
    plain = run_python(["-c", code, "boom", "x"], cwd=tmp_path)
    hooked = run_driver([*hooks, *QUIET, "-c", code, "boom", "x"], cwd=tmp_path)
    assert plain.returncode == hooked.returncode == 1
    assert hooked.stdout == plain.stdout
    assert hooked.stderr == plain.stderr
    assert '"<string>"' in hooked.stderr or "<string>" in hooked.stderr
