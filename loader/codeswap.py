"""Hook the Python functions of modules that were imported before hookwise.

The module's source is rewritten exactly as the import hook would have done it
and compiled (not executed). Each live function whose code is affected gets the
rewritten code object assigned to its ``__code__``: the function object stays
the same, so every reference to it anywhere (aliases, registries, decorators
holding it, ``functools.lru_cache``) sees the hook, there is no wrapper frame,
and ``warnings`` stack levels, tracebacks and ``inspect`` behave as with a
freshly rewritten import.

A swap is made only when the live code provably comes from the same source:
its bytecode must equal a fresh compile of that source and its free variables
must match. Anything else is left to the wrapper engine (``loader.patch``).
"""

from types import FunctionType

import rewriter
from hookwise import _originals

from . import binding


class SwapPlan:
    """What one module needs: live functions and the rewritten code for each."""

    def __init__(self, module, site_table, swaps):
        self.module = module
        self.site_table = site_table
        self.swaps = swaps  # [(function, unbound new code)]; targets left out are wrapped instead

    def covered_sites(self):
        indices = set()
        for _function, code in self.swaps:
            for nested in binding.walk(code):
                for const in nested.co_consts:
                    index = rewriter.site_index(const)
                    if index is not None:
                        indices.add(index)
        return [spec for spec in self.site_table if spec[0] in indices]


def source_of(module):
    """(source bytes, filename the live code uses) of a loaded module, or None."""
    path = None
    spec = getattr(module, "__spec__", None)
    origin = getattr(spec, "origin", None)
    if isinstance(origin, str) and origin.endswith(".py"):
        path = origin
    else:
        file = getattr(module, "__file__", None)
        if isinstance(file, str) and file.endswith(".py"):
            path = file
    if path is None:
        return None
    try:
        with _originals.open(path, "rb") as handle:
            return handle.read(), path
    except OSError:
        return None


def plan(module, select):
    """A SwapPlan for ``module`` with the functions ``select(qualname)`` accepts, or None."""
    found = source_of(module)
    if found is None:
        return None
    source, path = found
    functions = live_functions(module)
    filename = _live_filename(module.__name__, functions, path)
    functions = [function for function in functions if function.__code__.co_filename == filename]
    try:
        tree = rewriter.parse(source, filename)
        site_table = rewriter.instrument(tree, select, kinds=False)
        if not site_table:
            return SwapPlan(module, [], [])
        rewritten = _originals.compile(tree, filename, "exec", dont_inherit=True)
        site_table = binding.fill_kinds(site_table, rewritten)
        plain = _originals.compile(source, filename, "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return None
    new_codes = _index(rewritten)
    plain_codes = _index(plain)
    swaps = []
    for function in functions:
        key = _key(function.__code__)
        new, original = new_codes.get(key), plain_codes.get(key)
        if new is None or original is None or not binding.contains_placeholder(new):
            continue
        live = function.__code__
        if original.co_code != live.co_code or new.co_freevars != live.co_freevars:
            continue  # the source changed since the import: the function is not what the file says
        swaps.append((function, new))
    return SwapPlan(module, site_table, swaps)


def apply(swap_plan, module_names, undo):
    """Create the sites and assign the rewritten code; returns the hooked functions."""
    sites = binding.create_sites(swap_plan.covered_sites(), module_names)
    bound = {}
    hooked = []
    for function, code in swap_plan.swaps:
        if id(code) not in bound:
            bound[id(code)] = binding.bind(code, sites)
        undo.append(_restore_code(function, function.__code__))
        function.__code__ = bound[id(code)]
        hooked.append(function)
    return hooked


def _restore_code(function, code):
    def restore():
        function.__code__ = code

    return restore


def live_functions(module):
    """Every Python function reachable from the module's namespace and its classes.

    Only plain data is inspected (``vars``), never ``getattr``: a lazy object in
    someone's namespace must not be woken up by hookwise.
    """
    name = module.__name__
    found, seen = [], set()

    def add(value, depth=0):
        if depth > 4:
            return
        if isinstance(value, FunctionType):
            if id(value) not in seen:
                seen.add(id(value))
                found.append(value)
            wrapped = value.__dict__.get("__wrapped__")
            if wrapped is not None:
                add(wrapped, depth + 1)
        elif isinstance(value, (staticmethod, classmethod)):
            add(value.__func__, depth + 1)
        elif isinstance(value, property):
            for accessor in (value.fget, value.fset, value.fdel):
                add(accessor, depth + 1)
        elif isinstance(value, type):
            if id(value) in seen or not class_defined_in(value, name):
                return
            seen.add(id(value))
            for member in list(vars(value).values()):
                add(member, depth + 1)
        else:
            wrapped = _instance_dict(value).get("__wrapped__")  # functools.lru_cache and friends
            if isinstance(wrapped, FunctionType):
                add(wrapped, depth + 1)

    for value in list(vars(module).values()):
        add(value)
    return found


def class_defined_in(cls, module_name):
    """True when ``cls`` says it comes from ``module_name``, or from a package above it.

    httpx sets ``__module__ = "httpx"`` on the classes ``httpx._client``
    defines, so that they show under their public name: they are still
    that module's (its functions' code names its file).
    """
    try:
        declared = vars(cls).get("__module__")
    except TypeError:
        return False
    return type(declared) is str and (declared == module_name or module_name.startswith(declared + "."))


def _instance_dict(value):
    try:
        namespace = object.__getattribute__(value, "__dict__")
    except (AttributeError, TypeError):
        return {}
    return namespace if isinstance(namespace, dict) else {}


def _live_filename(module_name, functions, path):
    """The filename the module's live code carries (``<frozen os>`` for frozen modules)."""
    frozen = f"<frozen {module_name}>"
    for function in functions:
        if function.__code__.co_filename == frozen:
            return frozen
    return path


def _key(code):
    return (getattr(code, "co_qualname", code.co_name), code.co_firstlineno)


def _index(code):
    """Code objects by (qualname, first line); ambiguous keys are dropped."""
    index, ambiguous = {}, set()
    for nested in binding.walk(code):
        key = _key(nested)
        if key in index:
            ambiguous.add(key)
        index[key] = nested
    for key in ambiguous:
        del index[key]
    return index


def can_swap(module_name):
    """Modules whose functions must never change under the interpreter's feet."""
    return module_name not in _NEVER and not module_name.startswith(("importlib._bootstrap", "_frozen_importlib"))


_NEVER = frozenset(("sys", "builtins", "__main__"))
