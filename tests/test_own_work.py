"""hookwise's own work is never an event: only the program's calls are.

Between installing the hooks and the program's first line, and while the
program imports (the finder, the serving of just-imported modules, a child's
bootstrap), hookwise calls the standard library itself: ``os.path`` to tell
its own files, ``open`` to read the script. With those very functions hooked,
none of it may show.
"""

import os
import textwrap

from helpers import ROOT, read_jsonl, run_driver

EVERYTHING_HOOKWISE_USES = ["posixpath:*", "genericpath:*", "os:*", "io:*", "builtins:open", "stat:*"]


def hooked_run(tmp_path, program):
    (tmp_path / "app.py").write_text(textwrap.dedent(program))
    (tmp_path / "helper_module.py").write_text("VALUE = 1\n")
    log = tmp_path / "events.jsonl"
    args = []
    for target in EVERYTHING_HOOKWISE_USES:
        args += ["--hook", target]
    for spec in ("console", f"jsonl={log}", "stats=stats.txt", "chrome=trace.json", "html=report.html"):
        args += ["--listener", spec]
    result = run_driver([*args, "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return result, [event for event in read_jsonl(log) if event["event"] == "start"]


def test_a_program_that_calls_nothing_hooked_reports_nothing(tmp_path):
    result, starts = hooked_run(tmp_path, """
        import helper_module
        print(helper_module.VALUE)
    """)
    assert result.stdout == "1\n"
    assert starts == []
    assert "hookwise start" not in result.stderr


def test_children_report_only_their_programs_calls(tmp_path):
    result, starts = hooked_run(tmp_path, """
        import subprocess, sys
        subprocess.run([sys.executable, "-c", "import helper_module"], check=True)
        print("done")
    """)
    assert result.stdout == "done\n"
    own = (os.path.join(ROOT, "hookwise"), os.path.join(ROOT, "loader"), os.path.join(ROOT, "rewriter"))
    for event in starts:
        caller = event["caller"]["file"]
        assert not caller.startswith(own), event
        assert "bootstrap" not in caller, event
    # what the program's subprocess.run did is there: finding the executable's directory
    assert any(event["caller"]["file"].endswith("subprocess.py") for event in starts)


def test_a_forked_child_sets_up_its_own_outputs_unseen(tmp_path):
    # in the child, each listener opens its own files (and html reads the parent's recording) before
    # the program goes on
    result, starts = hooked_run(tmp_path, """
        import os
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        print("done")
    """)
    assert result.stdout == "done\n"
    own = (os.path.join(ROOT, "hookwise"), os.path.join(ROOT, "loader"), os.path.join(ROOT, "rewriter"))
    assert [event["target"] for event in starts if event["caller"]["file"].startswith(own)] == []


def test_the_bytecode_cache_is_written_and_read_unseen(tmp_path):
    # hookwise's cache of rewritten modules is marshal data: with marshal hooked (the code
    # preset hooks marshal.loads), neither the first run's write nor the second's read shows
    (tmp_path / "app.py").write_text("import helper_module\nprint(helper_module.double(2))\n")
    (tmp_path / "helper_module.py").write_text("def double(x):\n    return 2 * x\n")
    for run in ("writes the cache", "reads it"):
        result = run_driver(["--hook", "marshal:*", "--hook", "helper_module:double", "--listener", "jsonl=e.jsonl",
                             "app.py"], cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert result.stdout == "4\n"
        assert [event["target"] for event in read_jsonl(tmp_path / "e.jsonl") if event["event"] == "start"] == [
            "helper_module:double"], run
        assert any(name.endswith(".hookwise.pyc") for name in os.listdir(tmp_path / "__pycache__")), run
