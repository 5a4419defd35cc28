"""``hookwise --explain TARGET...``: what each target resolves to, and which engine serves it.

For each target: the defining ``module:qualname`` of every callable it
matches, how it is served (rewritten at import, rewritten in place, wrapped,
served through the objects its module makes, an audit hook), or why it cannot
be hooked. The runner checks the targets' spelling and runs this module in a
separate Python process, in the program's working directory, which imports
the named modules: nothing runs in the user's program, and the modules'
import-time code runs there only.

Exit status: 0 when every target matches something that can be served, 1
otherwise, 2 for a target that cannot be parsed.
"""

import importlib
import sys
import types

SHOW_AT_MOST = 20  # matches listed per target

# what a run finds loaded when it installs the hooks: the interpreter's start-up and hookwise's own
_LOADED_AT_START = set(sys.modules)


def main(argv):
    from . import engine
    from .targets import AUDIT_MODULE, TargetError, parse_target

    loaded_at_start = _LOADED_AT_START
    loader = engine.import_engine()
    patch = loader.patch
    ok = True
    for text in argv:
        try:
            target = parse_target(text)
        except TargetError as exc:
            print(f"hookwise: error: {exc}", file=sys.stderr)
            return 2
        print(text)
        if target.module == AUDIT_MODULE:
            print(f"  -> audit event {target.qualname!r}: served by an audit hook (PEP 578), whoever raises it")
            continue
        if not target.module_is_literal:
            print("  -> every module whose name matches, as it is imported or if loaded: its own functions")
            continue
        lines, found_any = _explain(target, patch, loaded_at_start)
        for line in lines:
            print(line)
        ok = ok and found_any
    return 0 if ok else 1


def _explain(target, patch, loaded_at_start):
    """(lines, True when something servable matched)."""
    try:
        module = importlib.import_module(target.module)
    except BaseException as exc:  # the module's own import-time failure, whatever it is
        return [f"  !! module {target.module!r} cannot be imported: {type(exc).__name__}: {exc}"], False
    engine = _module_engine(module, loaded_at_start)
    try:
        found = patch.find_in(module, target)
    except patch.PatchError as exc:
        return [f"  !! {exc}"], False
    if not found:
        return [f"  !! {patch.unmatched_message(target, module)}"], False
    lines = [f"  -> {_defining_name(item)}  {_how(item, module, engine)}" for item in found[:SHOW_AT_MOST]]
    if len(found) > SHOW_AT_MOST:
        lines.append(f"  ... and {len(found) - SHOW_AT_MOST} more")
    return lines, True


def _module_engine(module, loaded_at_start):
    if module.__name__ in loaded_at_start:
        return "rewritten in place (loaded before hookwise starts)"
    spec = getattr(module, "__spec__", None)
    from importlib.machinery import SourceFileLoader

    if spec is not None and type(spec.loader) is SourceFileLoader and str(spec.origin).endswith(".py"):
        return f"rewritten when the program imports {module.__name__}"
    return "wrapped right after its module is imported"


def _defining_name(item):
    obj = item.obj
    if isinstance(obj, types.FunctionType):
        return f"{obj.__module__}:{obj.__qualname__}"
    owner = getattr(obj, "__objclass__", None)
    if isinstance(owner, type):
        return f"{owner.__module__}:{obj.__qualname__}"
    return f"{getattr(obj, '__module__', None) or 'builtins'}:{getattr(obj, '__qualname__', item.qualname)}"


def _how(item, module, engine):
    obj = item.obj
    if item.slot == "c_type":
        return (f"method of the C type {item.holder.__module__}.{item.holder.__qualname__}: served through "
                "the objects its module makes (see the README)")
    if isinstance(obj, types.MethodDescriptorType):
        return (f"method of the C type {obj.__objclass__.__qualname__}, inherited by the Python class "
                f"{item.holder.__qualname__}: wrapped there")
    if isinstance(obj, types.FunctionType):
        if obj.__module__ != module.__name__:
            return f"Python function defined in {obj.__module__}: rewritten in place there"
        return f"Python function: {engine}"
    return "C function: wrapped, in every loaded module that holds it"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
