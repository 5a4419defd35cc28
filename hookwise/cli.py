"""hookwise's runner: ``hookwise [options] script.py [args...]`` or ``... -m module [args...]``.

Started by the ``hookwise`` console script, by ``python -m hookwise`` and by
the checkout's ``driver.py``; each passes the name the user typed, which the
usage text shows. Reads like a table of contents: parse the options, build the settings, create
the listeners, install the hooks, run the program as ``__main__``. Every
problem with the input is reported in one line with exit status 2 before the
program starts; after that, the program's own exit status is the run's.
"""

import os
import sys

# Imported before any hook exists: whatever these load can only be hooked by
# attribute replacement. Keep this list short.
from hookwise import __version__, _state, accel, engine, report
from hookwise.config import ConfigError, build_settings, settings_from_text
from hookwise.listeners import ListenerSpecError

# hookwise's own loader and rewriter, whatever the working directory holds
# (``python -m hookwise`` puts it first on sys.path; it may have a loader.py)
loader = engine.import_engine()
from loader import Installation, PatchError, children  # noqa: E402 - loaded by import_engine
from loader.install import create_listeners  # noqa: E402

EXIT_BAD_INPUT = 2
EXIT_STRICT_UNMATCHED = 3  # --strict: the program ended well, but a target never matched

USAGE = """\
usage: {prog} [options] script.py [args...]
       {prog} [options] -m module [args...]
       {prog} [options] -c command [args...]
       {prog} [options] - [args...]      (the program read from stdin)

Run a Python program with hooks on the functions you name.

options:
  --hook TARGET        hook TARGET ('module:qualname', shell wildcards allowed,
                       e.g. 'os:system', 'myapp.*:*', '__main__:main'); repeatable
  --preset NAME        add a named set of targets: commands, files, code, sql,
                       http, deserialization, network, security (all of those),
                       or web (incoming requests); repeatable. Targets of
                       packages not installed add nothing
  --listener SPEC      send events to SPEC: 'console' (default), 'jsonl=PATH',
                       'stats[=PATH]', 'chrome=PATH', 'html=PATH', 'otel', an
                       installed plugin's name, or 'package.module:attr'; repeatable
  --config PATH        read settings from this TOML file (default: ./hookwise.toml,
                       else [tool.hookwise] in ./pyproject.toml)
  --redact WORD        also show arguments whose name contains WORD as ***
                       (password, token, secret, ... are redacted already); repeatable
  --repr-limit N       cut every shown value at N characters (default 200)
  --user-reprs         show values with their own __repr__ even when it is not
                       from the standard library (by default such objects show as
                       <module.Class object at 0x...>: a __repr__ can change the program)
  --record-limit SIZE  bound each file of --listener record=PATH (100M, 1G): when
                       full the recording stops and says so at exit
  --record-ring        with --record-limit: keep the most recent SIZE instead
  --show-stdlib-internals
                       with the built-in set: also show the dynamic code the
                       standard library runs for itself (namedtuple,
                       dataclasses) and the descriptors it opens (subprocess
                       pipes); explicit targets always show them
  --guard MODE         stop attacks inside the application: 'monitor' reports
                       each sink call an input steers (command, SQL and code
                       injection, path traversal, SSRF, unsafe deserialization),
                       'block' also refuses it (a request gets a 403)
  --strict             fail closed: a target that cannot be hooked stops the run
                       (exit 2 before the program, or an ImportError of its
                       module), and one that never matched makes the exit
                       status 3
  --no-cache           do not read or write hookwise's bytecode cache
  --no-follow-children do not hook Python child processes (by default they run
                       with the same hooks and listeners)
  --explain TARGET...  print what each target resolves to (the defining
                       module:qualname of every match) and which engine serves
                       it, or why it cannot be hooked; the modules are imported
                       in a separate process, and no program runs
  --version            print hookwise's version and the runtime in use (the C
                       accelerator, or pure Python and why) and exit
  -h, --help           show this help and exit

With no hook or preset named anywhere, the built-in set (the presets commands,
files and code) watches command execution, file opens and dynamic code
(os.system, subprocess.Popen, open, exec, ...) of the program and its libraries.
"""


class UsageError(Exception):
    """Bad command line; the message is one line."""


class Options:
    def __init__(self):
        self.hooks = []
        self.presets = []
        self.listeners = []
        self.config = None
        self.redact = []
        self.repr_limit = None
        self.use_cache = True
        self.follow_children = None  # None: as the config file says (default: follow)
        self.user_reprs = None  # None: as the config file says (default: standard-library reprs only)
        self.record_limit = None  # --record-limit SIZE (None: as the config file says, default unbounded)
        self.record_ring = None  # --record-ring
        self.show_stdlib_internals = None  # None: as the config file says (default: left out)
        self.strict = None  # None: as the config file says (default: not strict)
        self.guard = None  # --guard monitor|block (None: as the config file says, default no guard)
        self.explain = None  # --explain TARGET...: the targets (empty: those of --hook and the config)
        self.from_parent = False
        self.module = None  # -m NAME
        self.command = None  # -c CODE
        self.script = None
        self.args = []


# option -> (attribute, how the value is kept)
VALUE_OPTIONS = {
    "--hook": ("hooks", "append"),
    "--preset": ("presets", "append"),
    "--listener": ("listeners", "append"),
    "--config": ("config", "set"),
    "--redact": ("redact", "append"),
    "--repr-limit": ("repr_limit", "int"),
    "--record-limit": ("record_limit", "set"),
    "--guard": ("guard", "set"),
}
FLAG_OPTIONS = {
    "--no-cache": ("use_cache", False),
    "--no-follow-children": ("follow_children", False),
    "--user-reprs": ("user_reprs", True),
    "--record-ring": ("record_ring", True),
    "--show-stdlib-internals": ("show_stdlib_internals", True),
    "--strict": ("strict", True),
    "--from-parent": ("from_parent", True),  # internal: a child re-run by loader/children.py
}


def parse_args(argv, prog="hookwise"):
    """Options up to the program; everything after it belongs to the program."""
    options = Options()
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE.format(prog=prog))
            raise SystemExit(0)
        if arg == "--version":
            sys.stdout.write(f"hookwise {__version__} ({accel.explain()})\n")
            raise SystemExit(0)
        if arg == "--explain":  # everything after it is a target to explain; no program runs
            options.explain = argv[index + 1 :]
            return options
        if arg in FLAG_OPTIONS:
            attribute, value = FLAG_OPTIONS[arg]
            setattr(options, attribute, value)
            index += 1
            continue
        name, has_value, value = arg.partition("=")
        if name in VALUE_OPTIONS:
            if not has_value:
                if index + 1 >= len(argv):
                    raise UsageError(f"option {name} needs a value")
                index += 1
                value = argv[index]
            _keep(options, name, value)
            index += 1
            continue
        if arg[:2] in ("-m", "-c"):  # -m NAME, -mNAME, -c CODE, -cCODE: the program starts here
            value = arg[2:] if len(arg) > 2 else (argv[index + 1] if index + 1 < len(argv) else None)
            if value is None or (arg[:2] == "-m" and not value):
                raise UsageError(f"option {arg[:2]} needs {'a module name' if arg[:2] == '-m' else 'a command'}")
            if arg[:2] == "-m":
                options.module = value
            else:
                options.command = value
            options.args = argv[index + (1 if len(arg) > 2 else 2) :]
            return options
        if arg == "--":
            index += 1
            if index >= len(argv):
                break
            arg = argv[index]
        elif arg.startswith("-") and arg != "-":
            raise UsageError(f"unknown option {arg!r} (see --help)")
        options.script = arg
        options.args = argv[index + 1 :]
        return options
    raise UsageError("no program to run: give a script or -m module (see --help)")


def _keep(options, name, value):
    attribute, how = VALUE_OPTIONS[name]
    if how == "append":
        getattr(options, attribute).append(value)
    elif how == "int":
        try:
            setattr(options, attribute, int(value))
        except ValueError:
            raise UsageError(f"option {name} needs a whole number, not {value!r}") from None
    else:
        setattr(options, attribute, value)


def main(argv=None, prog=None):
    """Run hookwise on ``argv`` (default ``sys.argv[1:]``); ``prog`` is how the user started it."""
    argv = sys.argv[1:] if argv is None else argv
    prog = prog or os.path.basename(sys.argv[0] or "hookwise")
    try:
        options = parse_args(argv, prog)
        if options.explain is not None:
            return _explain(options)
        if options.script not in (None, "-") and not os.path.exists(options.script):
            sys.stderr.write(f"{loader.run.ProgramNotFound.for_path(options.script)}\n")
            return loader.run.EXIT_USAGE
        if options.from_parent:
            settings = settings_from_text(os.environ[children.SETTINGS_VARIABLE])
        else:
            settings = build_settings(options.hooks, options.listeners, options.config,
                                      cli_redact=options.redact, cli_repr_limit=options.repr_limit,
                                      cli_follow_children=options.follow_children, cli_use_cache=options.use_cache,
                                      cli_user_reprs=options.user_reprs, cli_record_limit=options.record_limit,
                                      cli_record_ring=options.record_ring,
                                      cli_show_stdlib_internals=options.show_stdlib_internals,
                                      cli_strict=options.strict, cli_presets=options.presets,
                                      cli_guard=options.guard)
        listeners, per_target = create_listeners(settings, tolerate_failures=settings.in_child)
        report.open_stream()
        if not accel.ACTIVE and not settings.in_child:
            from hookwise import notice

            notice.say_once_if_pure_in_checkout()
        installation = Installation(settings, use_cache=settings.use_cache)
        installation.install(listeners, per_target)
    except (UsageError, ConfigError, ListenerSpecError, PatchError) as exc:
        sys.stderr.write(f"hookwise: error: {exc}\n")
        return EXIT_BAD_INPUT
    with _state.quiet():  # hookwise's own work until the program starts: none of its calls is an event
        installation.register_exit()
        if settings.in_child:
            installation.report_unmatched = False  # the parent run reports its targets once
        elif settings.follow_children:
            children.prepare(settings)
        engine.hide_engine()
    try:
        if options.module is not None:
            loader.run.run_module(options.module, options.args, installation)
        elif options.command is not None:
            loader.run.run_command(options.command, options.args, installation)
        else:
            loader.run.run_path(options.script, options.args, installation)
    except loader.run.ProgramNotFound as exc:
        sys.stderr.write(f"{exc}\n")
        return loader.run.EXIT_USAGE
    except SystemExit as exc:
        if exc.code in (None, 0) and _strict_failed(settings, installation):
            raise SystemExit(EXIT_STRICT_UNMATCHED) from None
        raise
    return EXIT_STRICT_UNMATCHED if _strict_failed(settings, installation) else 0


def _explain(options):
    """--explain: what each target resolves to, worked out in another process (hookwise.explain)."""
    import subprocess

    from hookwise import own

    targets = list(options.explain)
    if not targets:
        settings = build_settings(options.hooks, (), options.config, cli_presets=options.presets)
        targets = [target.text for target in settings.targets if target.origin != "defaults"]
    if not targets:
        raise UsageError("--explain needs targets: --explain TARGET... (or --hook TARGET before it)")
    from hookwise.targets import TargetError, parse_target

    for text in targets:  # a target that cannot be parsed: status 2, here, before anything is imported
        try:
            parse_target(text)
        except TargetError as exc:
            raise UsageError(str(exc)) from None
    launcher = (f"import sys; sys.path.insert(0, {own.ROOT!r}); from hookwise.explain import main; "
                "del sys.path[0]; sys.exit(main(sys.argv[1:]))")
    return subprocess.run([sys.executable, "-c", launcher, *targets]).returncode


def _strict_failed(settings, installation):
    """--strict, at the end of a program that ended well: say each target that never matched; any?"""
    if not settings.strict or settings.in_child:
        return False
    messages = installation.unmatched_messages()
    for message in messages:
        report.warn(f"--strict: {message}")
    installation.report_unmatched = False  # said here, not again at exit
    return bool(messages)

