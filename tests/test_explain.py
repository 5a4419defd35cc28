"""--explain TARGET...: what each target resolves to and which engine serves it, without running a program."""

import os
import textwrap

from helpers import run_driver


def explain(tmp_path, *targets, options=()):
    return run_driver([*options, "--explain", *targets], cwd=tmp_path)


def test_each_target_names_what_it_resolves_to_and_how_it_is_served(tmp_path):
    result = explain(tmp_path, "pickle:loads", "os.path:join", "json:loads", "sqlite3:Connection.execute",
                     "socket:socket.connect", "audit:socket.connect", "myapp.*:*")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "pickle:loads",
        "  -> _pickle:loads  C function: wrapped, in every loaded module that holds it",
        "os.path:join",
        "  -> posixpath:join  Python function: rewritten in place (loaded before hookwise starts)",
        "json:loads",
        "  -> json:loads  Python function: rewritten when the program imports json",
        "sqlite3:Connection.execute",
        "  -> sqlite3:Connection.execute  method of the C type sqlite3.Connection: served through the objects its "
        "module makes (see the README)",
        "socket:socket.connect",
        "  -> _socket:socket.connect  method of the C type socket, inherited by the Python class socket: wrapped there",
        "audit:socket.connect",
        "  -> audit event 'socket.connect': served by an audit hook (PEP 578), whoever raises it",
        "myapp.*:*",
        "  -> every module whose name matches, as it is imported or if loaded: its own functions",
    ]


def test_what_cannot_be_hooked_says_why_and_fails(tmp_path):
    result = explain(tmp_path, "os:nope", "sqlite3:Row.keys", "nomodule:f")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "os:nope",
        "  !! target 'os:nope' matches nothing in module 'os'; nearest: open, popen, fdopen",
        "sqlite3:Row.keys",
        "  !! cannot hook 'sqlite3:Row.keys': Row is a C type, whose methods cannot be patched",
        "nomodule:f",
        "  !! module 'nomodule' cannot be imported: ModuleNotFoundError: No module named 'nomodule'",
    ]


def test_the_programs_modules_are_found_from_the_working_directory_and_imported_elsewhere(tmp_path):
    (tmp_path / "mylib").mkdir()
    (tmp_path / "mylib" / "__init__.py").write_text("from .core import Engine, start\n")
    (tmp_path / "mylib" / "core.py").write_text(textwrap.dedent("""
        import os
        print("mylib imported in", os.getpid())

        class Engine:
            def run(self):
                pass

        def start():
            pass
    """))
    result = explain(tmp_path, "mylib:Engine.run", "mylib:start", "mylib.core:*")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    imported = lines.pop(1)  # its import-time code ran once, in the explaining process
    assert imported.startswith("mylib imported in ") and int(imported.split()[-1]) != os.getpid()
    assert "mylib imported" not in "".join(lines)
    assert lines == [
        "mylib:Engine.run",
        "  -> mylib.core:Engine.run  Python function defined in mylib.core: rewritten in place there",
        "mylib:start",
        "  -> mylib.core:start  Python function defined in mylib.core: rewritten in place there",
        "mylib.core:*",
        "  -> mylib.core:Engine.run  Python function: rewritten when the program imports mylib.core",
        "  -> mylib.core:start  Python function: rewritten when the program imports mylib.core",
    ]


def test_without_targets_it_explains_those_of_hook_options(tmp_path):
    result = explain(tmp_path, options=["--hook", "json:dumps"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "json:dumps"


def test_a_malformed_target_is_refused_before_anything_is_imported(tmp_path):
    result = explain(tmp_path, "json:loads", "[bad:x")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith("hookwise: error: target '[bad:x': malformed pattern")
