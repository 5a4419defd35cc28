"""``python -m rewriter.dump MODULE [--hook TARGET ...] [--config PATH] [--diff]``

Print the source of MODULE as hookwise rewrites it, without importing or
running it (nor its parent packages). MODULE is a dotted module name found on
the Python path, or a path to a ``.py`` file. Targets come from ``--hook``, the
config file (``--config`` or the one in the working directory), and when none
of them names the module, every function of the module (``MODULE:*``).

The output is ``ast.unparse`` of the instrumented tree, with hookwise's
injected names shown as readable identifiers (``_hookwise_call``) and each call
site as ``_hookwise_site_N``; ``--diff`` prints a unified diff against the
unparsed original instead, so that only the injected code shows.

This is the one module of ``rewriter`` that does I/O: it is a command.
"""

import ast
import difflib
import os
import sys
from importlib.machinery import PathFinder

from hookwise.config import ConfigError, build_settings
from hookwise.targets import TargetSet, parse_target

from . import instrument, parse, readable_tree

USAGE = "usage: python -m rewriter.dump MODULE [--hook TARGET ...] [--config PATH] [--diff]"
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
        return (os.path.splitext(os.path.basename(module))[0], "__main__"), module
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


def rewritten_source(module_names, path, targets):
    """(original text, rewritten text, site table) for one source file."""
    with open(path, "rb") as handle:
        source = handle.read()
    original = parse(source, path)
    tree = parse(source, path)
    select = targets.selector(module_names)
    sites = instrument(tree, select) if select is not None else []
    return ast.unparse(original), ast.unparse(readable_tree(tree)), sites


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        module, hooks, config, diff = _parse(argv)
        module_names, path = find_source(module)
        module_name = module_names[0]
        targets = _targets(module_names, hooks, config)
        original, rewritten, sites = rewritten_source(module_names, path, targets)
    except (DumpError, ConfigError) as exc:
        sys.stderr.write(f"rewriter.dump: error: {exc}\n")
        return EXIT_BAD_INPUT
    except SyntaxError as exc:
        sys.stderr.write(f"rewriter.dump: error: {path} does not parse: {exc}\n")
        return 1
    header = [f"# hookwise rewrite of {module_name} ({path})"]
    if sites:
        header.append(f"# {len(sites)} hooked function(s):")
        header.extend(f"#   _hookwise_site_{spec.index}: {spec.qualname} ({spec.kind}, line {spec.lineno})" for spec in sites)
    else:
        header.append("# no function matched the targets: the module would load unchanged")
    if diff:
        lines = difflib.unified_diff(
            original.splitlines(True), rewritten.splitlines(True), f"{module_name} (original)", f"{module_name} (hookwise)"
        )
        output = "".join(lines)
    else:
        output = rewritten + "\n"
    sys.stdout.write("\n".join(header) + "\n" + output)
    return 0


def _parse(argv):
    module, hooks, config, diff = None, [], None, False
    index = 0
    while index < len(argv):
        arg = argv[index]
        if arg in ("-h", "--help"):
            sys.stdout.write(USAGE + "\n\n" + __doc__.split("\n\n", 1)[1])
            raise SystemExit(0)
        if arg == "--diff":
            diff = True
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
    settings = build_settings(hooks, (), config)
    targets = [] if settings.default_targets else list(settings.targets)
    if not any(target.matches_module(name) for target in targets for name in module_names):
        targets.append(parse_target(f"{module_names[0]}:*"))
    return TargetSet(targets)


if __name__ == "__main__":
    sys.exit(main())
