"""The embedded default set: the program's commands, files and dynamic code, not the standard library's own.

namedtuple and dataclasses run code they generate; subprocess, tempfile and
os.fdopen wrap descriptors they already hold. The default set leaves those
calls out (``hookwise.stdlib_internals``); ``--show-stdlib-internals`` and
explicit targets show them. Each run is a fresh process, in both runtimes.
"""

import textwrap

import pytest

from helpers import read_jsonl, run_driver

PROGRAM = textwrap.dedent("""
    import collections, dataclasses, os, subprocess, sys

    Point = collections.namedtuple("Point", "x y")

    @dataclasses.dataclass
    class Order:
        amount: int = 1

    out = subprocess.run([sys.executable, "-c", "print('child')"], capture_output=True, text=True).stdout
    read, write = os.pipe()
    os.close(write)
    os.fdopen(read).close()
    with open("written.txt", "w") as handle:
        handle.write(str(eval("6 * 7")))
    print(Point(1, 2).x, Order().amount, out.strip())
""")


def starts(tmp_path, *options):
    (tmp_path / "app.py").write_text(PROGRAM)
    log = tmp_path / "events.jsonl"
    result = run_driver([*options, "--listener", f"jsonl={log}", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "1 1 child\n"
    return [event for event in read_jsonl(log) if event["event"] == "start"]


def caller_file(event):
    """The caller's file name: 'dataclasses.py', 'app.py', 'os' for <frozen os> (3.11+)."""
    return event["caller"]["file"].rsplit("/", 1)[-1].removeprefix("<frozen ").removesuffix(">").removesuffix(".py")


def from_the_stdlib(event):
    return caller_file(event) in ("__init__", "dataclasses", "subprocess", "os")


def test_the_default_set_shows_the_programs_calls_and_not_the_standard_librarys_own(tmp_path):
    events = starts(tmp_path)
    targets = [event["target"] for event in events]
    assert targets.count("subprocess:Popen.__init__") == 1
    assert [event["args"][0] for event in events if event["target"] == "builtins:eval"] == ["'6 * 7'"]
    opens = [event["args"][0] for event in events if event["target"] == "io:open"]
    assert opens == ["'written.txt'"]  # no descriptor: not subprocess's pipes, not os.fdopen's
    assert not [event for event in events if event["target"] in ("builtins:exec", "builtins:eval", "builtins:compile")
                and from_the_stdlib(event)]


def test_show_stdlib_internals_shows_them(tmp_path):
    events = starts(tmp_path, "--show-stdlib-internals")
    generated = [event for event in events if event["target"] in ("builtins:eval", "builtins:exec")
                 and from_the_stdlib(event)]
    assert {event["caller"]["function"] for event in generated} >= {"namedtuple"}
    assert any(caller_file(event) == "dataclasses" for event in generated)
    descriptors = [event for event in events if event["target"] == "io:open" and event["args"][0].isdigit()]
    assert {caller_file(event) for event in descriptors} >= {"subprocess", "os"}


def test_the_config_file_switch(tmp_path):
    (tmp_path / "hookwise.toml").write_text("show_stdlib_internals = true\n")
    events = starts(tmp_path)
    assert any(event["target"] == "builtins:eval" and event["caller"]["function"] == "namedtuple" for event in events)


@pytest.mark.parametrize("target", ["builtins:eval", "io:open"])
def test_an_explicit_target_shows_every_call(target, tmp_path):
    events = starts(tmp_path, "--hook", target)
    if target == "builtins:eval":
        assert any(event["caller"]["function"] == "namedtuple" for event in events)
    else:
        assert any(event["args"][0].isdigit() for event in events)
