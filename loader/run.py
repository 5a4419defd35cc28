"""Run the program as ``__main__``, exactly as ``python script.py`` / ``python -m mod`` would.

What must look the same to the program: ``sys.argv``, ``sys.path[0]``, a fresh
``__main__`` module with ``__name__``, ``__file__``, ``__spec__``,
``__loader__``, ``__builtins__`` (the module, as in every ``__main__``) and
``__annotations__``; the exit status (SystemExit codes, 1 after an uncaught
exception, death by SIGINT after an uncaught KeyboardInterrupt); and the
traceback of an uncaught exception, which must show no hookwise frame.

The last point is handled by letting the exception leave the driver as usual
and putting a small shim in front of ``sys.excepthook`` at that moment: the shim
removes hookwise's frames and hands over to whatever hook is installed, so the
interpreter still prints and exits the way it always does.
"""

import builtins
import os
import sys
import types
from importlib.machinery import SourceFileLoader, SourcelessFileLoader

from hookwise import _originals, _state, own

from .hook import HookwiseLoader

EXIT_USAGE = 2  # what python itself uses for "can't open file"


class ProgramNotFound(Exception):
    """The script does not exist; the message is python's own wording."""

    @classmethod
    def for_path(cls, path, errno=2, strerror="No such file or directory"):
        return cls(f"{sys.executable}: can't open file {os.path.abspath(path)!r}: [Errno {errno}] {strerror}")


def run_path(path, args, installation):
    """Run a script file, ``-`` (stdin), a .pyc file, a directory or a zip file with ``__main__.py``."""
    if path == "-":
        return _run_stdin(args, installation)
    with _state.quiet():
        runs_main_of = os.path.isdir(path) or (not path.endswith(".py") and _is_zip(path))
    if runs_main_of:
        return _run_main_of(path, args, installation)
    loader, code, absolute, main = _prepare_script(path, args, installation)
    _execute(loader, code, absolute, main, installation)


def _prepare_script(path, args, installation):
    """(loader, source or code, absolute path, fresh __main__) of a script file.

    hookwise's own work: the path and file calls it makes (``realpath``'s
    ``os.path.join``, say) are not the program's, and report nothing. The
    caller runs ``_execute``, so the program has no more frames below it.
    """
    with _state.quiet():
        absolute = os.path.abspath(path)
        try:
            with _originals.open(absolute, "rb") as handle:
                source = handle.read()
        except OSError as exc:
            raise ProgramNotFound.for_path(absolute, exc.errno, exc.strerror) from None
        sys.argv[:] = [path, *args]
        _set_path0(os.path.dirname(os.path.realpath(absolute)))
        main = _fresh_main()
        if source[:4] == _bytecode_magic():  # python runs a compiled file as it is: there is no source to rewrite
            loader = SourcelessFileLoader("__main__", absolute)
            main.__dict__.update(__file__=absolute, __cached__=None, __loader__=loader)
            return loader, loader.get_code("__main__"), absolute, main
        if installation.targets.selector(("__main__",)) is not None:
            loader = HookwiseLoader("__main__", absolute, installation, ("__main__",))
        else:
            loader = SourceFileLoader("__main__", absolute)
        main.__dict__.update(__file__=absolute, __cached__=None, __loader__=loader)
        return loader, source, absolute, main


def _run_stdin(args, installation):
    """Run ``python - args``: the program is what stdin holds, named ``<stdin>``."""
    source = sys.stdin.buffer.read()
    loader, main = _prepare_without_file("<stdin>", "-", args, installation, __file__="<stdin>", __cached__=None)
    _execute(loader, source, "<stdin>", main, installation)


def _bytecode_magic():
    from importlib.util import MAGIC_NUMBER

    return MAGIC_NUMBER


def run_command(code, args, installation):
    """Run ``python -c CODE``: ``__main__`` without a file, ``sys.path[0]`` the working directory."""
    if sys.version_info >= (3, 13):
        _show_command_lines_in_tracebacks(code)
    loader, main = _prepare_without_file("<string>", "-c", args, installation)
    _execute(loader, code, "<string>", main, installation)


def _prepare_without_file(filename, argv0, args, installation, **dunders):
    """(loader or None, fresh __main__) for a program that is no file (``-c``, stdin).

    ``sys.path[0]`` becomes the working directory. The caller runs ``_execute``
    itself, so that the program has no more driver frames below it than a script.
    """
    from importlib.machinery import BuiltinImporter  # what python leaves in __main__.__loader__ then

    sys.argv[:] = [argv0, *args]
    _set_path0("")
    main = _fresh_main()
    main.__dict__.update(__loader__=BuiltinImporter, **dunders)
    rewriting = installation.targets.selector(("__main__",)) is not None
    loader = HookwiseLoader("__main__", filename, installation, ("__main__",)) if rewriting else None
    return loader, main


def _show_command_lines_in_tracebacks(code):
    """Python 3.13 keeps the text of ``-c`` in linecache, so its tracebacks quote the lines."""
    import linecache

    linecache.cache["<string>"] = (len(code), None, [line + "\n" for line in code.splitlines()], "<string>")


def run_module(name, args, installation):
    """Run ``python -m name`` through runpy, as the interpreter itself does."""
    import runpy

    installation.expect_main_module(name)
    sys.argv[:] = [name, *args]  # runpy puts the module's path into argv[0]
    _set_path0(os.getcwd())
    _fresh_main()
    installation.program_started = True
    try:
        runpy._run_module_as_main(name, alter_argv=True)
    except BaseException as exc:
        _report_with_own_frames_hidden(exc, installation)
        raise


def _run_main_of(path, args, installation):
    import runpy

    sys.argv[:] = [path, *args]
    _set_path0(os.path.abspath(path))
    installation.expect_main_module("__main__")
    _fresh_main()
    installation.program_started = True
    try:
        runpy._run_module_as_main("__main__", alter_argv=False)
    except BaseException as exc:
        _report_with_own_frames_hidden(exc, installation)
        raise


def _is_zip(path):
    import zipimport  # loaded at start-up anyway, unlike zipfile

    try:
        zipimport.zipimporter(path)
    except (zipimport.ZipImportError, OSError):
        return False
    return True


def _set_path0(entry):
    """sys.path[0] is the driver's directory now; make it what python would have put there."""
    if getattr(sys.flags, "safe_path", False) or sys.flags.isolated:
        return  # -P / PYTHONSAFEPATH / -I: python adds nothing, and nothing was added for the driver
    if sys.path:
        sys.path[0] = entry
    else:
        sys.path.insert(0, entry)


def _fresh_main():
    main = types.ModuleType("__main__")
    # the same keys, in the same order, as the interpreter's own __main__
    main.__dict__.update(__annotations__={}, __builtins__=builtins)
    sys.modules["__main__"] = main
    return main


def _execute(loader, source, path, main, installation):
    """Compile and run the script; an exception escaping it gets the report python would give."""
    try:
        if isinstance(source, types.CodeType):
            code = source
        else:
            code = loader.instrumented_code(source, path) if isinstance(loader, HookwiseLoader) else None
        if code is None:
            code = _originals.compile(source, path, "exec", dont_inherit=True)
        installation.program_started = True
        _originals.exec(code, main.__dict__)
    except BaseException as exc:
        _report_with_own_frames_hidden(exc, installation)
        raise


def _report_with_own_frames_hidden(exc, installation):
    """Arrange for an exception leaving the program to be reported without hookwise frames.

    The traceback stays the last thing on stderr, as with python: hookwise's
    own end-of-run remarks (unmatched targets) are not added after it.
    """
    if isinstance(exc, SystemExit):
        return
    installation.program_crashed = True
    strip_own_frames(exc)
    program_part = exc.__traceback__  # what the program's frames added; the launcher's come in front
    installed = sys.excepthook
    if getattr(installed, "__hookwise_shim__", False):
        return

    def excepthook(kind, value, tb):
        sys.excepthook = installed
        if value is exc:
            value.__traceback__ = tb = program_part
        elif isinstance(value, BaseException):
            strip_own_frames(value)  # the default hook prints value.__traceback__, not the tb argument
            tb = value.__traceback__
        installed(kind, value, tb)

    excepthook.__hookwise_shim__ = True
    sys.excepthook = excepthook


def strip_traceback(tb):
    """``tb`` without hookwise's frames, nor the frames that started hookwise (a console script).

    Import machinery frames next to hookwise's go too: Python trims its own
    importlib frames from a traceback only when nothing else sits among them
    (on 3.10, where a hookwise loader frame stays in the way of a SyntaxError).
    """
    entries = []
    after_own = False
    while tb is not None:
        code = tb.tb_frame.f_code
        filename = code.co_filename
        if code in _RUNNER_CODES:
            entries.clear()  # everything before the program's first frame is the launcher's
        elif filename.startswith(own.LOCATIONS):
            while entries and entries[-1].tb_frame.f_code.co_filename.startswith(_IMPORTLIB):
                entries.pop()
            after_own = True
        elif not (after_own and filename.startswith(_IMPORTLIB)):
            entries.append(tb)
            after_own = False
        tb = tb.tb_next
    head = None
    for entry in reversed(entries):
        entry.tb_next = head
        head = entry
    return head


def strip_own_frames(exc):
    """Remove hookwise frames from ``exc`` and the exceptions chained or grouped with it."""
    pending, seen = [exc], set()
    while pending:
        exc = pending.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        exc.__traceback__ = strip_traceback(exc.__traceback__)
        pending.extend((exc.__cause__, exc.__context__))
        pending.extend(inner for inner in getattr(exc, "exceptions", None) or () if isinstance(inner, BaseException))


_IMPORTLIB = "<frozen importlib._bootstrap"
_RUNNER_CODES = frozenset((_execute.__code__, run_module.__code__, _run_main_of.__code__))
