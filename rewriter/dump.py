"""``python -m rewriter.dump MODULE [--hook TARGET ...] [--config PATH] [--diff | --diff-source]``

Print the source of MODULE as hookwise rewrites it, without importing or
running it (nor its parent packages). MODULE is a dotted module name found on
the Python path, or a path to a ``.py`` file; a file is named as an import
would name it (``mylib/calc.py`` beside ``mylib/__init__.py`` is
``mylib.calc``; a file under a directory of the Python path or the working
directory by its dotted path from there; and ``__main__``, as a program).

Targets come from ``--hook`` and the config file (``--config`` or the one in
the working directory). With no target at all, every function of the module
is hooked (``MODULE:*``). Targets that name no function of the module are an
error (exit status 2), never a reason to hook everything.

The output is ``ast.unparse`` of the instrumented tree, with hookwise's
injected names shown as readable identifiers (``_hookwise_call``) and each call
site as ``_hookwise_site_N``. ``--diff`` prints a unified diff of the unparsed
original against it, so that only the injected code shows. ``--diff-source``
prints a patch of the real file instead: each hooked function replaced by its
rewritten form, everything else (comments, blank lines) left as it is, and the
hunks numbered by the file's own lines.

This is the one module of ``rewriter`` that does I/O: it is a command.
"""

import ast
import difflib
import io
import os
import sys
import tokenize
from importlib.machinery import PathFinder

from hookwise.config import ConfigError, build_settings
from hookwise.targets import TargetSet, parse_target

from . import instrument, parse, readable_tree
from .splice import source_lines, spliced_lines

USAGE = "usage: python -m rewriter.dump MODULE [--hook TARGET ...] [--config PATH] [--diff | --diff-source]"
EXIT_BAD_INPUT = 2


class DumpError(Exception):
    """Bad input; one line."""


def find_source(module):
    """(module names, path) of a module's source file, found without executing anything.

    A file given by path may be a program, so targets on ``__main__`` apply to it too.
    """
    if module.endswith(".py") or os.sep in module:
        if not os.path.isfile(module):
            raise DumpError(f"no such file: {module!r}")
        return module_names_of_file(module), module
    path = None
    spec = None
    for depth, part in enumerate(module.split(".")):
        name = ".".join(module.split(".")[: depth + 1])
        spec = PathFinder.find_spec(name, path)
        if spec is None:
            raise DumpError(f"no module named {name!r} on the Python path")
        path = spec.submodule_search_locations
    origin = spec.origin if spec is not None else None
    if not isinstance(origin, str) or not origin.endswith(".py"):
        raise DumpError(f"module {module!r} has no Python source to rewrite ({origin})")
    return (module,), origin


def module_names_of_file(path):
    """The names an import would give the module in ``path``, best first, then ``__main__``.

    A file in a package (its directory holds ``__init__.py``) is named through
    its packages, as far up as they go; a file under the working directory or
    a ``sys.path`` entry also by its dotted path from there; a file that is not
    in a package also by its bare name (its directory is ``sys.path[0]`` when it
    runs as a program).
    """
    absolute = os.path.abspath(path)
    directory, filename = os.path.split(absolute)
    stem = os.path.splitext(filename)[0]
    names = []
    in_package = os.path.isfile(os.path.join(directory, "__init__.py"))
    if in_package:
        parts = [] if stem == "__init__" else [stem]
        while os.path.isfile(os.path.join(directory, "__init__.py")):
            parts.insert(0, os.path.basename(directory))
            parent = os.path.dirname(directory)
            if parent == directory:
                break
            directory = parent
        names.append(".".join(parts))
    for entry in [os.getcwd(), *sys.path]:
        if not isinstance(entry, str):
            continue
        relative = os.path.relpath(absolute, os.path.abspath(entry or os.curdir))
        if relative.startswith(os.pardir) or os.path.isabs(relative):
            continue
        parts = os.path.splitext(relative)[0].split(os.sep)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        if parts and all(part.isidentifier() for part in parts) and name not in names:
            names.append(name)
    if not in_package and stem not in names:
        names.append(stem)
    names.append("__main__")
    return tuple(names)


def rewritten_source(module_names, path, targets):
    """(source text, original tree, readable rewritten tree, site table) for one source file."""
    with open(path, "rb") as handle:
        source = handle.read()
    original = parse(source, path)
    tree = parse(source, path)
    select = targets.selector(module_names)
    sites = instrument(tree, select) if select is not None else []
    return _decode(source), original, readable_tree(tree), sites


def _decode(source):
    encoding, _ = tokenize.detect_encoding(io.BytesIO(source).readline)
    return source.decode(encoding)


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    path = None
    try:
        module, hooks, config, diff = _parse(argv)
        module_names, path = find_source(module)
        module_name = module_names[0]
        targets, given = _targets(module_names, hooks, config)
        text, original, rewritten, sites = rewritten_source(module_names, path, targets)
        if given and not sites:
            raise DumpError(
                f"the targets {_listed(targets)} matched no function in {module_name} ({path}); nothing to show"
            )
    except (DumpError, ConfigError) as exc:
        sys.stderr.write(f"rewriter.dump: error: {exc}\n")
        return EXIT_BAD_INPUT
    except SyntaxError as exc:
        sys.stderr.write(f"rewriter.dump: error: {path} does not parse: {exc}\n")
        return 1
    header = [f"# hookwise rewrite of {module_name} ({path})"]
    header.append(f"# {len(sites)} hooked function(s):")
    header.extend(f"#   _hookwise_site_{spec.index}: {spec.qualname} ({spec.kind}, line {spec.lineno})" for spec in sites)
    if diff == "unparsed":
        lines = difflib.unified_diff(
            source_lines(ast.unparse(original)), source_lines(ast.unparse(rewritten)),
            f"{module_name} (original)", f"{module_name} (hookwise)",
        )
        output = "".join(lines)
    elif diff == "source":
        lines = difflib.unified_diff(
            source_lines(text), spliced_lines(text, original, rewritten, sites), path, f"{path} (hookwise)"
        )
        output = "".join(lines)
    else:
        output = ast.unparse(rewritten) + "\n"
    sys.stdout.write("\n".join(header) + "\n" + output)
    return 0


def _parse(argv):
    module, hooks, config, diff = None, [], None, None
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE + "\n\n" + __doc__.split("\n\n", 1)[1])
            raise SystemExit(0)
        if arg in ("--diff", "--diff-source"):
            if diff is not None:
                raise DumpError("give one of --diff and --diff-source")
            diff = "unparsed" if arg == "--diff" else "source"
        elif arg in ("--hook", "--config"):
            if index + 1 >= len(argv):
                raise DumpError(f"option {arg} needs a value")
            index += 1
            if arg == "--hook":
                hooks.append(argv[index])
            else:
                config = argv[index]
        elif arg.startswith("--hook="):
            hooks.append(arg.partition("=")[2])
        elif arg.startswith("--config="):
            config = arg.partition("=")[2]
        elif arg.startswith("-"):
            raise DumpError(f"unknown option {arg!r}; {USAGE}")
        elif module is None:
            module = arg
        else:
            raise DumpError(f"only one MODULE, got {module!r} and {arg!r}")
        index += 1
    if module is None:
        raise DumpError(USAGE)
    return module, hooks, config, diff


def _targets(module_names, hooks, config):
    """(target set, whether the user gave targets): ``MODULE:*`` only when no target was given at all."""
    settings = build_settings(hooks, (), config)
    if settings.default_targets:
        return TargetSet([parse_target(f"{module_names[0]}:*")]), False
    targets = TargetSet(settings.targets)
    if not any(target.matches_module(name) for target in targets for name in module_names):
        known = ", ".join(module_names)
        raise DumpError(f"the targets {_listed(targets)} name no module this file is known as ({known})")
    return targets, True


def _listed(targets):
    return " ".join(repr(target.text) for target in targets)


if __name__ == "__main__":
    sys.exit(main())
