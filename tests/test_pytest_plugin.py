"""The pytest plugin, run as a user would: pytest in a fresh process on a small project."""

import os
import sys
import textwrap

from helpers import ROOT, clean_env, read_jsonl, run_python


def project(tmp_path, files):
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return tmp_path


def pytest_in(tmp_path, *args):
    env = clean_env(PYTHONPATH=ROOT)
    return run_python(["-m", "pytest", "-p", "hookwise.pytest_plugin", "-q", "-p", "no:cacheprovider", *args],
                      cwd=tmp_path, env=env, timeout=300)


APP = {
    "myapp/__init__.py": "",
    "myapp/deploy.py": """
        import subprocess, sys
        from myapp import billing

        def deploy(tag):
            subprocess.run([sys.executable, "-c", "pass", tag], check=True)
            return sum(billing.Invoice(i).total() for i in range(3))
    """,
    "myapp/billing.py": """
        class Invoice:
            def __init__(self, amount):
                self.amount = amount
            def total(self):
                return self.amount * 2
    """,
    "tests/test_deploy.py": """
        import sys
        from myapp.deploy import deploy

        def test_deploy_runs_the_tag(hookwise_calls):
            assert deploy("v1.2") == 6
            popen = hookwise_calls.of("subprocess:Popen.__init__")
            assert len(popen) == 1
            assert popen[0].arguments["args"] == [sys.executable, "-c", "pass", "v1.2"]
            assert hookwise_calls.count("myapp.billing:Invoice.total") == 3
            assert popen[0].caller.function == "run" and popen[0].caller.file.endswith("subprocess.py")

        def test_each_test_records_its_own_calls(hookwise_calls):
            assert len(hookwise_calls) == 0
            from myapp.billing import Invoice
            Invoice(1).total()
            assert hookwise_calls.targets() == ["myapp.billing:Invoice.__init__", "myapp.billing:Invoice.total"]

        def test_the_code_under_test_was_rewritten_at_import():
            import myapp.billing
            assert type(myapp.billing.__loader__).__name__ == "HookwiseLoader"
    """,
}


def test_the_fixture_records_what_one_test_did(tmp_path):
    project(tmp_path, APP)
    result = pytest_in(tmp_path, "--hookwise-hook", "myapp.*:*", "--hookwise-hook", "subprocess:Popen.__init__", "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


def test_targets_and_listeners_from_the_config_file(tmp_path):
    files = dict(APP)
    files["pyproject.toml"] = """
        [tool.hookwise]
        hooks = ["myapp.*:*", "subprocess:Popen.__init__"]
        listeners = ["jsonl=session.jsonl"]
    """
    project(tmp_path, files)
    result = pytest_in(tmp_path, "tests")
    assert result.returncode == 0, result.stdout + result.stderr
    events = read_jsonl(tmp_path / "session.jsonl")
    assert {"myapp.billing:Invoice.total", "subprocess:Popen.__init__"} <= {e["target"] for e in events}


def test_a_failing_assertion_on_calls_fails_the_test(tmp_path):
    project(tmp_path, {
        "myapp/__init__.py": "",
        "myapp/billing.py": "def charge(n):\n    return n\n",
        "tests/test_charge.py": """
            from myapp.billing import charge
            def test_charged_twice(hookwise_calls):
                charge(1)
                assert hookwise_calls.count("myapp.billing:charge") == 2
        """,
    })
    result = pytest_in(tmp_path, "--hookwise-hook", "myapp.billing:charge", "tests")
    assert result.returncode == 1
    assert "assert 1 == 2" in result.stdout


def test_bad_hookwise_options_are_usage_errors(tmp_path):
    project(tmp_path, {"tests/test_nothing.py": "def test_nothing():\n    pass\n"})
    result = pytest_in(tmp_path, "--hookwise-hook", "os:", "tests")
    assert result.returncode == 4  # pytest's usage-error status
    assert "hookwise: target 'os:' has no function after ':'" in result.stderr


def test_a_project_with_its_own_loader_module(tmp_path):
    project(tmp_path, {
        "loader.py": "WHO = 'the project'\n",
        "tests/test_own_loader.py": """
            def test_its_own_loader(hookwise_calls):
                import loader
                assert loader.WHO == "the project"
        """,
    })
    result = pytest_in(tmp_path, "--hookwise-hook", "json:*", "tests")
    assert result.returncode == 0, result.stdout + result.stderr


INTRO = {
    "tests/test_intro.py": """
        def helper(x):
            return x * 2

        def test_helper():
            assert helper(2) == 4

        def test_rewritten_assertion():
            assert helper(1) == 3
    """,
}


def test_the_test_modules_themselves_are_hooked_and_their_asserts_still_rewritten(tmp_path):
    project(tmp_path, INTRO)
    log = tmp_path / "events.jsonl"
    result = pytest_in(tmp_path, "--hookwise-hook", "test_intro:*", "--hookwise-listener", f"jsonl={log}", "tests")
    assert result.returncode == 1, result.stdout + result.stderr
    # pytest's assertion rewriter still explains the failure
    assert "where 2 = helper(1)" in result.stdout
    ends = [(e["target"], e.get("result")) for e in read_jsonl(log) if e["event"] == "end"]
    assert ("test_intro:helper", "4") in ends and ("test_intro:helper", "2") in ends
    assert ("test_intro:test_helper", "None") in ends


def test_targets_that_matched_nothing_are_in_the_session_summary(tmp_path):
    project(tmp_path, INTRO)
    result = pytest_in(tmp_path, "--hookwise-hook", "test_intro:helper", "--hookwise-hook", "nomodule:f",
                       "--hookwise-hook", "test_intro:absent", "tests")
    summary = result.stdout[result.stdout.index("= hookwise ="):]
    assert "hookwise: target 'nomodule:f' matched nothing (module 'nomodule' was never imported)" in summary
    assert "target 'test_intro:absent'" in summary
    assert "'test_intro:helper'" not in summary


def test_console_lines_reach_the_terminal_not_a_tests_captured_output(tmp_path):
    project(tmp_path, INTRO)
    result = pytest_in(tmp_path, "--hookwise-hook", "test_intro:helper", "--hookwise-listener", "console",
                       "tests/test_intro.py::test_helper")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "hookwise start #1 test_intro:helper(x=2)" in result.stderr
    assert "Captured stderr" not in result.stdout
