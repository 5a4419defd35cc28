"""The three ways to start hookwise, and what it says before the program starts.

``python driver.py`` (the checkout), ``python -m hookwise`` and the ``hookwise``
console script run the same runner (``hookwise.cli``); each shows the name the
user typed. Bad input is refused with status 2 before the program runs.
Everything runs in fresh processes against the checkout.
"""

import os
import pty
import shutil
import subprocess
import sys
import textwrap

import pytest

from helpers import DRIVER, ROOT, clean_env, read_jsonl, run_driver, run_python

EXIT_BAD_INPUT = 2


def checkout_env(**extra):
    """A child's environment in which ``import hookwise`` finds this checkout."""
    return clean_env(PYTHONPATH=ROOT, **extra)


def program(tmp_path, name="prog.py", text="print('the program ran')\n"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_usage_names_driver_py_when_started_as_python_driver_py():
    result = run_driver(["--help"])
    assert result.returncode == 0
    assert result.stdout.startswith(f"usage: python {DRIVER} [options] script.py [args...]\n")


def test_usage_names_python_dash_m_hookwise(tmp_path):
    result = run_python(["-m", "hookwise", "--help"], cwd=tmp_path, env=checkout_env())
    assert result.returncode == 0
    assert result.stdout.startswith("usage: python -m hookwise [options] script.py [args...]\n")


def test_usage_names_the_console_script_as_typed(tmp_path):
    # the test venv's own `hookwise` command (pip install . made it)
    script = os.path.join(os.path.dirname(sys.executable), "hookwise")
    result = subprocess.run([script, "--help"], capture_output=True, text=True, cwd=tmp_path, env=clean_env(),
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: hookwise [options] script.py [args...]\n")
    assert "driver.py" not in result.stdout


def test_a_usage_error_names_the_command_typed(tmp_path):
    result = run_python(["-m", "hookwise", "--repr-limit", "x", "prog.py"], cwd=tmp_path, env=checkout_env())
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stderr.startswith("hookwise: error: ")
    assert result.stderr.count("\n") == 1


def test_version_names_the_c_accelerator_when_it_is_built():
    env = clean_env()
    env.pop("HOOKWISE_PURE_PYTHON", None)
    result = run_driver(["--version"], env=env)
    assert result.returncode == 0
    assert result.stdout == "hookwise 0.1.0 (C accelerator)\n"


def test_version_says_why_the_runtime_is_pure_python_when_asked_for():
    result = run_driver(["--version"], env=clean_env(HOOKWISE_PURE_PYTHON="1"))
    assert result.stdout == "hookwise 0.1.0 (pure Python, because HOOKWISE_PURE_PYTHON is set)\n"


@pytest.fixture
def checkout_without_accelerator(tmp_path):
    """A copy of the checkout's code with no compiled extension in it."""
    copy = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("*.so", "__pycache__")
    for name in ("hookwise", "loader", "rewriter"):
        shutil.copytree(os.path.join(ROOT, name), copy / name, ignore=ignore)
    (copy / "tests").mkdir()  # what makes it a checkout, with setup.py
    for name in ("driver.py", "setup.py", "pyproject.toml"):
        shutil.copy(os.path.join(ROOT, name), copy / name)
    return copy


def test_version_says_the_accelerator_is_not_built(checkout_without_accelerator):
    env = clean_env()
    env.pop("HOOKWISE_PURE_PYTHON", None)
    result = run_python([str(checkout_without_accelerator / "driver.py"), "--version"], env=env)
    assert result.stdout == ("hookwise 0.1.0 (pure Python, because the accelerator hookwise._speedups "
                             "is not built for this Python)\n")


def run_on_a_terminal(command, cwd, env):
    """Run ``command`` with stdin/stdout/stderr on a new pseudo-terminal in a new session; its output."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session leader on the terminal pty.fork made
        try:
            os.chdir(cwd)
            os.execve(command[0], command, env)
        finally:
            os._exit(127)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return b"".join(chunks).decode().replace("\r\n", "\n")


def test_a_checkout_without_accelerator_says_so_once_per_terminal_session(checkout_without_accelerator, tmp_path):
    env = clean_env(TMPDIR=str(tmp_path))
    env.pop("HOOKWISE_PURE_PYTHON", None)
    prog = program(tmp_path)
    command = [sys.executable, str(checkout_without_accelerator / "driver.py"), "--listener", "jsonl=" + os.devnull,
               str(prog)]
    # two runs in one session: the shell of the first pty.fork runs both
    shell = ["/bin/sh", "-c", f"{' '.join(command)}; {' '.join(command)}"]
    output = run_on_a_terminal(shell, tmp_path, env)
    notice = [line for line in output.splitlines() if line.startswith("hookwise")]
    assert len(notice) == 1, output
    assert "pure-Python runtime" in notice[0] and "python setup.py build_ext --inplace" in notice[0]
    assert output.count("the program ran\n") == 2
    # a new terminal session is told again
    again = run_on_a_terminal(command, tmp_path, env)
    assert sum(line.startswith("hookwise") for line in again.splitlines()) == 1


def test_the_notice_is_never_printed_when_stderr_is_not_a_terminal(checkout_without_accelerator, tmp_path):
    env = clean_env(TMPDIR=str(tmp_path))
    env.pop("HOOKWISE_PURE_PYTHON", None)
    result = run_python([str(checkout_without_accelerator / "driver.py"), "--listener", "jsonl=" + os.devnull,
                         str(program(tmp_path))], env=env)
    assert result.returncode == 0
    assert result.stdout == "the program ran\n"
    assert result.stderr == ""


def test_the_notice_is_never_printed_when_pure_python_was_asked_for(checkout_without_accelerator, tmp_path):
    env = clean_env(TMPDIR=str(tmp_path), HOOKWISE_PURE_PYTHON="1")
    command = [sys.executable, str(checkout_without_accelerator / "driver.py"), "--listener", "jsonl=" + os.devnull,
               str(program(tmp_path))]
    assert run_on_a_terminal(command, tmp_path, env) == "the program ran\n"


@pytest.mark.parametrize("pattern", ["[abc:x", "os:[z-a]ystem", "mod:f]", "*:[!]"])
def test_a_malformed_pattern_is_refused_before_the_program_starts(pattern, tmp_path):
    result = run_driver(["--hook", pattern, str(program(tmp_path))])
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stdout == ""  # the program never ran
    assert result.stderr.startswith("hookwise: error: ") and "malformed pattern" in result.stderr
    assert result.stderr.count("\n") == 1


def test_config_may_be_dev_null(tmp_path):
    result = run_driver(["--config", os.devnull, "--hook", "__main__:*", "--listener", "jsonl=" + os.devnull,
                         str(program(tmp_path))])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "the program ran\n"


def test_config_that_is_a_directory_is_refused(tmp_path):
    result = run_driver(["--config", str(tmp_path), str(program(tmp_path))])
    assert result.returncode == EXIT_BAD_INPUT
    assert "is a directory" in result.stderr and result.stdout == ""


def test_a_listener_with_only_close_is_accepted(tmp_path):
    (tmp_path / "closing.py").write_text(textwrap.dedent("""
        class Closing:
            def close(self):
                print("closed")
    """))
    result = run_driver(["--hook", "__main__:*", "--listener", "closing:Closing", str(program(tmp_path))],
                        env=clean_env(PYTHONPATH=str(tmp_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "the program ran\nclosed\n"


USER_MODULES = {
    "driver.py": "def drive(n):\n    return n + 1\n",
    "loader.py": "def load(n):\n    return n * 2\n",
    "rewriter/__init__.py": "def rewrite(n):\n    return -n\n",
}
USER_PROGRAM = """
    import driver, loader, rewriter
    print(driver.drive(1), loader.load(2), rewriter.rewrite(3))
"""


@pytest.mark.parametrize("start", ["driver.py", "python -m hookwise"])
def test_the_users_own_driver_loader_and_rewriter_modules_are_hookable(start, tmp_path):
    for name, text in USER_MODULES.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    program(tmp_path, "app.py", USER_PROGRAM)
    log = tmp_path / "events.jsonl"
    options = ["--hook", "driver:*", "--hook", "loader:*", "--hook", "rewriter:*", "--listener", f"jsonl={log}"]
    runner = [DRIVER] if start == "driver.py" else ["-m", "hookwise"]
    result = run_python([*runner, *options, "app.py"], cwd=tmp_path, env=checkout_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout == "2 4 -3\n"
    assert "matched nothing" not in result.stderr
    ends = {event["target"]: event["result"] for event in read_jsonl(log) if event["event"] == "end"}
    assert ends == {"driver:drive": "2", "loader:load": "4", "rewriter:rewrite": "-3"}


def test_a_copy_without_the_child_bootstrap_says_children_run_unhooked(checkout_without_accelerator, tmp_path):
    os.remove(checkout_without_accelerator / "loader" / "bootstrap" / "sitecustomize.py")
    prog = program(tmp_path, text="""
        import subprocess, sys
        subprocess.run([sys.executable, "-c", "print('child ran')"], check=True)
        subprocess.run([sys.executable, "-c", "print('child ran')"], check=True)
    """)
    result = run_python([str(checkout_without_accelerator / "driver.py"), "--listener", "jsonl=" + os.devnull,
                         str(prog)], env=clean_env(HOOKWISE_PURE_PYTHON="1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "child ran\nchild ran\n"
    warnings = result.stderr.splitlines()
    assert len(warnings) == 1 and "child processes will run without hooks" in warnings[0], result.stderr
