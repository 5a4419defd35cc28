"""--strict: fail closed. A target that cannot be hooked stops the run; one that never matched fails it.

Fresh processes. Without --strict the same targets are warnings and the
program's exit status is its own (tested where those warnings are).
"""

import pytest

from helpers import run_driver

EXIT_BAD_INPUT, EXIT_STRICT_UNMATCHED = 2, 3


def run(tmp_path, code, *options):
    return run_driver(["--strict", *options, "--listener", "jsonl=events.jsonl", "-c", code], cwd=tmp_path)


def test_a_target_in_a_loaded_module_that_matches_nothing_stops_the_run_before_the_program(tmp_path):
    result = run(tmp_path, "print('ran')", "--hook", "os:nope")
    assert result.returncode == EXIT_BAD_INPUT
    assert result.stdout == ""
    assert result.stderr == "hookwise: error: --strict: target 'os:nope' matches nothing in module 'os'; " \
                            "nearest: open, popen, fdopen\n"


@pytest.mark.parametrize("target, reason", [
    ("sqlite3:Row.keys", "cannot hook 'sqlite3:Row.keys': Row is a C type, whose methods cannot be patched"),
    ("sqlite3:nope", "target 'sqlite3:nope' matches nothing in module 'sqlite3'"),
])
def test_the_import_of_a_module_whose_target_cannot_be_served_fails_naming_it(target, reason, tmp_path):
    code = "print('before', flush=True)\ntry:\n    import sqlite3\nexcept ImportError as exc:\n    print('refused:', exc)"
    result = run(tmp_path, code, "--hook", target)
    assert result.returncode == EXIT_STRICT_UNMATCHED, result.stderr  # caught, yet it never matched
    assert result.stdout.splitlines()[0] == "before"
    assert result.stdout.splitlines()[1].startswith(f"refused: hookwise --strict: {reason}")


def test_an_uncaught_refusal_ends_the_program_as_an_import_error(tmp_path):
    result = run(tmp_path, "import sqlite3\nprint('unguarded')", "--hook", "sqlite3:Row.keys")
    assert result.returncode == 1
    assert "unguarded" not in result.stdout
    assert result.stderr.splitlines()[-1].startswith("ImportError: hookwise --strict: cannot hook 'sqlite3:Row.keys'")


@pytest.mark.parametrize("code, status", [("print('ran')", EXIT_STRICT_UNMATCHED),
                                          ("import sys; sys.exit(0)", EXIT_STRICT_UNMATCHED),
                                          ("import sys; sys.exit(5)", 5)])  # the program's own failure wins
def test_a_target_that_never_matched_fails_the_run_at_its_end(code, status, tmp_path):
    result = run(tmp_path, code, "--hook", "never.imported:f", "--hook", "json:loads")
    assert result.returncode == status
    said = [line for line in result.stderr.splitlines() if "never.imported:f" in line]
    assert said[0] == ("hookwise: --strict: target 'never.imported:f' matched nothing "
                       "(module 'never.imported' was never imported)") or status == 5
    assert len(said) == 1


def test_targets_that_all_match_change_nothing(tmp_path):
    result = run(tmp_path, "import json, sqlite3\nprint(json.loads('[1]'), sqlite3.connect(':memory:').execute('select 1').fetchone())",
                 "--hook", "json:loads", "--hook", "sqlite3:Connection.execute")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[1] (1,)\n"
    assert result.stderr == ""


def test_strict_from_the_config_file(tmp_path):
    (tmp_path / "hookwise.toml").write_text('strict = true\nhooks = ["never.imported:f"]\n')
    result = run_driver(["--listener", "jsonl=events.jsonl", "-c", "print('ran')"], cwd=tmp_path)
    assert result.returncode == EXIT_STRICT_UNMATCHED
    assert result.stdout == "ran\n"


def test_a_child_process_fails_closed_too(tmp_path):
    code = ("import subprocess, sys\n"
            "child = subprocess.run([sys.executable, '-c', 'import sqlite3'], capture_output=True, text=True)\n"
            "print(child.returncode, child.stderr.splitlines()[-1])")
    result = run(tmp_path, code, "--hook", "sqlite3:Row.keys")
    assert result.stdout == "1 ImportError: hookwise --strict: cannot hook 'sqlite3:Row.keys': Row is a C type, " \
                            "whose methods cannot be patched\n"
