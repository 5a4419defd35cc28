"""Attribute replacement for modules loaded before hookwise, in fresh processes.

C builtins get wrappers, replaced under every alias; Python functions of loaded
modules are rewritten in place (same function object, no wrapper frame).
"""

import json
import os
import sys
import textwrap

import pytest

from helpers import clean_env, read_jsonl, run_driver, run_python


def run(tmp_path, program, hooks, env=None, extra=()):
    (tmp_path / "program.py").write_text(textwrap.dedent(program))
    log = tmp_path / "events.jsonl"
    args = [arg for hook in hooks for arg in ("--hook", hook)]
    result = run_driver([*args, "--listener", f"jsonl={log}", *extra, "program.py"], cwd=tmp_path, env=env)
    return result, (read_jsonl(log) if log.exists() else [])


def without_known_wrapper_frame(traceback_text):
    """The traceback as the documented 3.10 limit of the pure-Python wrapper leaves it, minus that frame."""
    if sys.version_info >= (3, 11) or os.environ.get("HOOKWISE_PURE_PYTHON", "") in ("", "0"):
        return traceback_text
    lines = traceback_text.splitlines(True)
    [at] = [index for index, line in enumerate(lines) if "loader/wrappers.py" in line]
    return "".join(lines[:at] + lines[at + 2:])  # the frame's line and its source line


def test_a_builtin_is_replaced_under_every_alias(tmp_path):
    program = """
    import os, posix
    from os import system as early_alias
    print(os.system is posix.system, early_alias is os.system)
    os.system("true")
    posix.system("true")
    early_alias("true")
    print(os.system.__name__, os.system.__module__, os.system.__wrapped__.__name__)
    """
    result, events = run(tmp_path, program, ["os:system"])
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == ["True True", "system posix system"]
    starts = [e for e in events if e["event"] == "start"]
    assert [e["target"] for e in starts] == ["posix:system"] * 3
    assert [e["args"] for e in starts] == [["'true'"]] * 3
    assert [e["caller"]["line"] for e in starts] == [5, 6, 7]


def test_open_is_one_object_under_builtins_and_io(tmp_path):
    program = """
    import io, builtins
    print(open is io.open is builtins.open)
    with open("program.py") as handle:
        pass
    with io.open("program.py", "rb") as handle:
        pass
    """
    result, events = run(tmp_path, program, ["builtins:open", "io:open"])
    assert result.stdout.strip() == "True"
    assert [e["target"] for e in events if e["event"] == "start"] == ["io:open", "io:open"]
    assert "matched nothing" not in result.stderr


def test_exec_and_eval_without_namespaces_use_the_callers(tmp_path):
    program = """
    import sys
    x = 10
    exec("y = x + 1")
    print("module", y, eval("x * 2"))

    def in_function():
        a = 5
        exec("a = 99; b = a + 1")
        seen = eval("a + 1")
        return a, seen, sorted(k for k in locals() if not k.startswith("_hw"))

    print("function", in_function())

    class InClass:
        exec("z = 3")
        doubled = eval("z * 2")

    print("class", InClass.z, InClass.doubled)
    namespace = {}
    exec("w = 1", namespace)
    print("explicit", namespace["w"], eval("w + 1", namespace), eval("q", None, {"q": 7}))
    """
    plain = run_python(["-c", textwrap.dedent(program)], cwd=tmp_path)
    result, events = run(tmp_path, program, ["builtins:exec", "builtins:eval"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain.stdout
    assert len([e for e in events if e["event"] == "start"]) == 9


def test_future_flags_of_the_caller_reach_exec_eval_and_compile(tmp_path):
    program = """
    from __future__ import annotations
    exec("def f(x: NotDefined) -> AlsoNot: pass")
    print(f.__annotations__)
    code = compile("def g(y: Missing): pass", "<c>", "exec")
    exec(code)
    print(g.__annotations__)
    plain = compile("def h(z: int): pass", "<c>", "exec", dont_inherit=True)
    exec(plain)
    print(h.__annotations__)
    print(eval("  (lambda: 1)()"))
    """
    plain = run_python(["-c", textwrap.dedent(program)], cwd=tmp_path)
    result, events = run(tmp_path, program, ["builtins:exec", "builtins:compile", "builtins:eval"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain.stdout
    assert "{'x': 'NotDefined', 'return': 'AlsoNot'}" in result.stdout


def test_a_syntax_error_in_exec_source_is_the_calls_error_with_pythons_traceback(tmp_path):
    # with future flags to pass on, the pure-Python wrapper compiles the source itself
    program = """
    from __future__ import annotations
    import traceback
    try:
        exec("1 +")
    except SyntaxError:
        traceback.print_exc()
    """
    result, events = run(tmp_path, program, ["builtins:exec"])
    plain = run_python(["program.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert without_known_wrapper_frame(result.stderr) == plain.stderr
    assert [(e["event"], e.get("exception_type")) for e in events] == [("start", None), ("error", "SyntaxError")]
    assert events[1]["exception"].startswith("SyntaxError('invalid syntax'")


def test_a_kept_call_of_a_builtin_does_not_keep_its_callers_locals_alive(tmp_path):
    (tmp_path / "keep.py").write_text("KEPT = []\nclass Keep:\n    def start(self, call):\n        KEPT.append(call)\n")
    program = """
    import gc, os, weakref
    class Big:
        pass
    def caller():
        big = Big()
        os.getcwd()
        return weakref.ref(big)
    held = caller()
    gc.collect()
    print("alive" if held() is not None else "freed")
    """
    (tmp_path / "program.py").write_text(textwrap.dedent(program))
    result = run_driver(["--hook", "posix:getcwd", "--listener", "keep:Keep", "program.py"], cwd=tmp_path,
                        env=clean_env(PYTHONPATH=str(tmp_path)))
    assert result.returncode == 0, result.stderr
    assert result.stdout == "freed\n"


def test_python_functions_of_loaded_modules_are_rewritten_in_place(tmp_path):
    program = """
    import os, sys, functools, traceback
    original = os.makedirs
    print(os.makedirs is original, os.makedirs.__code__.co_filename == original.__code__.co_filename)
    os.makedirs("a/b", exist_ok=True)
    try:
        os.makedirs("a/b")
    except FileExistsError:
        frames = [frame.name for frame in traceback.extract_tb(sys.exc_info()[2])]
        print(frames[0], frames[-1])
    print(functools.reduce(lambda a, b: a + b, [1, 2, 3]))
    """
    result, events = run(tmp_path, program, ["os:makedirs", "functools:*"])
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0] == "True True"
    assert out[1] == "<module> makedirs"  # no wrapper frame between the program and os.makedirs
    assert out[2] == "6"
    targets = [e["target"] for e in events if e["event"] == "start"]
    assert targets.count("os:makedirs") >= 2
    errors = [e for e in events if e["event"] == "error"]
    assert errors and errors[-1]["target"] == "os:makedirs" and errors[-1]["exception_type"] == "FileExistsError"


def test_nested_functions_of_loaded_modules(tmp_path):
    program = """
    import collections
    Point = collections.namedtuple("Point", "x y")
    print(Point(1, 2)._replace(x=5))
    """
    result, events = run(tmp_path, program, ["collections:namedtuple.<locals>._replace"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "Point(x=5, y=2)"
    assert [e["target"] for e in events] == ["collections:namedtuple.<locals>._replace"] * 2


def test_warning_stack_levels_see_no_extra_frame(tmp_path):
    (tmp_path / "mylib.py").write_text(textwrap.dedent("""
        import warnings
        def old_api():
            warnings.warn("old_api is deprecated", DeprecationWarning, stacklevel=2)
            return 1
    """))
    program = """
    import warnings
    warnings.simplefilter("always")
    import mylib
    mylib.old_api()
    """
    plain = run_python(["-c", textwrap.dedent(program)], cwd=tmp_path)
    (tmp_path / "listen.py").write_text("import mylib\nclass L:\n    def start(self, call): pass\n")
    for hooks, extra in ((["mylib:*"], []), (["mylib:*"], ["--listener", "listen:L"])):  # rewritten at import, then swapped in place
        result, events = run(tmp_path, program, hooks, extra=extra)
        assert result.returncode == 0, result.stderr
        assert result.stderr.replace("program.py", "<string>") == plain.stderr.replace('"<string>"', "<string>").replace(
            "<string>", "<string>"
        ) or ("program.py:5: DeprecationWarning" in result.stderr)
        assert "program.py:5: DeprecationWarning: old_api is deprecated" in result.stderr
        assert [e["target"] for e in events if e["event"] == "start"] == ["mylib:old_api"]


def test_functions_without_source_fall_back_to_a_wrapper(tmp_path):
    (tmp_path / "compiled_only.py").write_text("def f(x):\n    return x + 1\n")
    compiled = run_python(["-c", "import py_compile; py_compile.compile('compiled_only.py', cfile='compiled_only.pyc')"], cwd=tmp_path)
    assert compiled.returncode == 0, compiled.stderr
    os.unlink(tmp_path / "compiled_only.py")
    (tmp_path / "listen.py").write_text("import compiled_only\nclass L:\n    def start(self, call): pass\n")
    program = """
    import compiled_only
    print(compiled_only.f(1), compiled_only.f.__wrapped__.__name__)
    """
    result, events = run(tmp_path, program, ["compiled_only:f"], extra=["--listener", "listen:L"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "2 f"
    assert [(e["event"], e["target"]) for e in events] == [("start", "compiled_only:f"), ("end", "compiled_only:f")]
    assert events[0]["args"] == ["1"]


def test_the_import_systems_own_file_work_is_not_reported(tmp_path):
    (tmp_path / "fresh_module.py").write_text("VALUE = 1\n")
    program = "import fresh_module\nprint(fresh_module.VALUE)\n"
    result, events = run(tmp_path, program, ["os:open", "builtins:exec", "os:replace"], env=clean_env())
    assert result.returncode == 0, result.stderr
    assert os.path.isdir(tmp_path / "__pycache__")  # a .pyc was written through os.open...
    assert events == []  # ...but that is the interpreter's business, not the program's


def test_a_wrapper_leaves_no_frame_in_the_programs_own_tracebacks(tmp_path):
    program = """
    import traceback
    try:
        open("/definitely/not/here")
    except OSError:
        print(json_frames := [f.name for f in traceback.extract_tb(__import__("sys").exc_info()[2])])
    """
    result, events = run(tmp_path, program, ["builtins:open"])
    assert result.returncode == 0, result.stderr
    frames = result.stdout.strip()
    from hookwise import accel

    if accel.ACTIVE or sys.version_info >= (3, 11):  # the C wrapper has no frame at all
        assert frames == "['<module>']"
    else:  # pure Python on 3.10: a bare raise restores the traceback saved on entry (documented)
        assert frames == "['<module>', 'wrapper']"
    assert [e["event"] for e in events][:2] == ["start", "error"]  # then linecache opens program.py for traceback


def test_methods_of_python_classes_in_loaded_modules(tmp_path):
    program = """
    import json
    print(json.dumps({"a": 1}), json.JSONEncoder().encode([1]))
    """
    (tmp_path / "listen.py").write_text("import json\nclass L:\n    def start(self, call): pass\n")
    result, events = run(tmp_path, program, ["json:*", "json.encoder:JSONEncoder.encode"], extra=["--listener", "listen:L"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '{"a": 1} [1]'
    targets = [e["target"] for e in events if e["event"] == "start"]
    assert targets.count("json:dumps") == 1 and targets.count("json.encoder:JSONEncoder.encode") == 2


def test_uninstall_restores_everything():
    program = textwrap.dedent("""
        import os, posix, functools, builtins, sys, json
        from hookwise.config import build_settings
        from loader import Installation
        before = (os.system, posix.system, builtins.open, functools.reduce, os.makedirs.__code__)
        settings = build_settings(["os:system", "builtins:open", "os:makedirs"], ["console"])
        installation = Installation(settings).install([])
        changed = (os.system is not before[0], builtins.open is not before[2], os.makedirs.__code__ is not before[4])
        installation.uninstall()
        after = (os.system, posix.system, builtins.open, functools.reduce, os.makedirs.__code__)
        print(changed, all(a is b for a, b in zip(before, after)), installation.finder in sys.meta_path)
    """)
    from helpers import ROOT

    result = run_python(["-c", program], cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(True, True, True) True False"
