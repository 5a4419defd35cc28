"""Attribute replacement: hook targets in modules that are already loaded.

Two ways, picked per function:
- a Python function with its source at hand is rewritten in place
  (``loader.codeswap``): same function object, no wrapper;
- anything else callable (C builtins such as ``posix.system`` and ``io.open``,
  Python functions whose source is gone) is replaced by a wrapper
  (``loader.wrappers``), in its module or class and in every loaded module that
  holds the same object under some name: ``os.system`` is ``posix.system``,
  ``builtins.open`` is ``io.open``, so no reference sees the unhooked version.

Literal targets that cannot work are refused before the program starts
(``PatchError``): a class instead of a function, a method of a C type, a
callable that looks at its caller's frame.
"""

import sys
import types
from types import BuiltinFunctionType, FunctionType

from hookwise import accel, stdlib_internals
from hookwise.own import is_own_module
from hookwise.runtime import BUILTIN, Site, StatementSite

from . import c_types, codeswap, wrappers

# Py_TPFLAGS_IMMUTABLETYPE (3.10+): attributes of such types cannot be set.
_IMMUTABLE_TYPE = 1 << 8

# The import system keeps the originals: its own work is not the program's.
_IMPORT_SYSTEM = ("importlib._bootstrap", "importlib._bootstrap_external", "_frozen_importlib", "_frozen_importlib_external")


class PatchError(Exception):
    """A target that names something hookwise cannot hook; one line."""


class _Found:
    """A callable found in a loaded namespace, and where it sits."""

    __slots__ = ("qualname", "obj", "holder", "key", "slot", "target")

    def __init__(self, qualname, obj, holder, key, slot, target=None):
        self.qualname = qualname
        self.obj = obj  # the function itself (unwrapped from staticmethod etc.)
        self.holder = holder  # module or class whose namespace holds it
        self.key = key  # the name in that namespace
        self.slot = slot  # "plain", "staticmethod", "classmethod", "fget", "fset", "fdel"
        self.target = target


def patch_loaded_modules(targets, registry, undo):
    """Hook every target that lives in an already-loaded module."""
    modules = [(module, names, _targets_for(targets, names)) for module, names in _loaded_modules()]
    for module, names, module_targets in modules:
        c_types.prepare(module, module_targets, undo, _setattr_with_undo)
    # 1. Python functions, nested ones included: rewritten in place from the module's source.
    for module, names, module_targets in modules:
        _swap_own_functions(module, names, module_targets, undo)
    # 2. What is left: builtins, functions without source, functions living in another module.
    found = []
    for module, names, module_targets in modules:
        found.extend(_find_targets(module, names, module_targets))
    _hook([item for item in found if not _already_hooked(item, registry)], registry, undo)


def patch_module(module, names, targets, registry, undo, rewritten=False):
    """Hook the targets of one module that has just been imported, as if it had been loaded before.

    ``rewritten``: the import hook rewrote its source, so its own Python
    functions are served already (only the rest is left: builtins, functions
    imported from elsewhere, methods of C types). Returns the targets that
    cannot be hooked, each with its PatchError.
    """
    module_targets = _targets_for(targets, names)
    if not module_targets:
        return []
    if not rewritten:
        _swap_own_functions(module, names, module_targets, undo)
    c_types.prepare(module, module_targets, undo, _setattr_with_undo)
    # one target that cannot be hooked must not take the module's other targets with it
    found, refused = [], []
    for target in module_targets:
        try:
            found.extend(_find_targets(module, names, [target]))
        except PatchError as exc:
            refused.append((target, exc))
    _hook([item for item in found if not _already_hooked(item, registry)], registry, undo)
    return refused


def _swap_own_functions(module, names, module_targets, undo):
    if module_targets and codeswap.can_swap(module.__name__):
        select = _qualname_selector(module_targets)
        swap_plan = _plan(module, select)
        if swap_plan is not None:
            codeswap.apply(swap_plan, tuple(names), undo)


def _plan(module, select):
    """codeswap's plan, or None when the rewrite itself fails: the wrapper engine takes over."""
    try:
        return codeswap.plan(module, select)
    except Exception:
        return None


def find_in(module, target):
    """What ``target`` names in the loaded ``module``, as found items; PatchError when it cannot be hooked.

    Looks only: nothing is hooked (``hookwise --explain`` asks this).
    """
    return _find_targets(module, (module.__name__,), [target])


def _find_targets(module, names, module_targets):
    found = []
    for target in module_targets:
        if target.qualname_is_literal:
            found.extend(_resolve_literal(module, target))
        else:
            found.extend(_enumerate(module, names, target))
    return found


def _targets_for(targets, names):
    module_targets = []
    for name in names:
        module_targets.extend(target for target in targets.for_module(name) if target not in module_targets)
    return module_targets


def _qualname_selector(module_targets):
    return lambda qualname: any(target.matches_qualname(qualname) for target in module_targets)


def _already_hooked(item, registry):
    """A function rewritten in step 1: its target only needs to know it matched."""
    site = _site_in(item.obj.__code__) if isinstance(item.obj, FunctionType) else None
    if site is None:
        return False
    registry.attach(site, item.target)
    return True


def _loaded_modules():
    """(module, names) for each loaded module object, hookwise's own excluded."""
    by_id = {}
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or is_own_module(name, module):
            continue
        # __main__ is the driver until the program runs; the runner serves __main__ targets
        if name == "__main__" or name in _IMPORT_SYSTEM:
            continue
        entry = by_id.setdefault(id(module), (module, []))
        entry[1].append(name)
    return list(by_id.values())


def _resolve_literal(module, target):
    """The callables a literal ``module:Qual.name`` target names (none if it does not exist)."""
    holder = module
    parts = target.qualname.split(".")
    for part in parts[:-1]:
        holder = _namespace(holder).get(part)
        if not isinstance(holder, type):
            return []
    holder = c_types.c_type_of(holder)  # sqlite3.Connection while served: the C type it stands for
    key = parts[-1]
    namespace = _namespace(holder)
    if key not in namespace:
        inherited = _inherited_from_c_type(holder, key)
        if inherited is None:
            return []
        # defined on the Python class itself, where the wrapper can go (socket.socket.connect)
        return [_Found(inherited.__qualname__, inherited, holder, key, "plain", target)]
    value = namespace[key]
    slot, obj = _unwrap_descriptor(value)
    if slot == "property":  # the getter, setter and deleter all carry the property's qualname
        return [
            _Found(accessor.__qualname__, accessor, holder, key, accessor_slot, target)
            for accessor_slot in ("fget", "fset", "fdel")
            for accessor in (getattr(value, accessor_slot),)
            if isinstance(accessor, FunctionType)
        ]
    if isinstance(holder, type) and holder.__flags__ & _IMMUTABLE_TYPE:
        if c_types.serves(holder) and isinstance(obj, types.MethodDescriptorType):
            # served through the objects the module makes (sqlite3.connect's factory)
            return [_Found(obj.__qualname__, obj, holder, key, "c_type", target)]
        raise PatchError(
            f"cannot hook {target.text!r}: {holder.__qualname__} is a C type, whose methods cannot be patched"
        )
    if isinstance(obj, type):
        raise PatchError(
            f"cannot hook {target.text!r}: it names a class; hook its methods instead (e.g. '{target.module}:{target.qualname}.__init__')"
        )
    if not callable(obj):
        raise PatchError(f"cannot hook {target.text!r}: it is a {type(obj).__name__}, not a function")
    _refuse_unwrappable(obj, target)
    qualname = obj.__qualname__ if isinstance(obj, FunctionType) else target.qualname
    return [_Found(qualname, obj, holder, key, slot, target)]


def _enumerate(module, names, target):
    """Every function defined in ``module`` whose qualname ``target`` matches."""
    home = module.__name__
    results = []
    seen = set()

    def visit(holder, depth):
        for key, value in list(_namespace(holder).items()):
            slot, obj = _unwrap_descriptor(value)
            if slot == "property":
                for accessor_slot in ("fget", "fset", "fdel"):
                    accessor = getattr(value, accessor_slot)
                    if isinstance(accessor, FunctionType):
                        consider(accessor, holder, key, accessor_slot)
                continue
            if isinstance(obj, type):
                if id(obj) in seen or depth >= 8:
                    continue
                c_type = c_types.c_type_of(obj)  # sqlite3.Connection while served: the C type
                if c_types.serves(c_type) and c_type.__module__ in names:
                    seen.add(id(obj))
                    visit_c_type(c_type)
                elif codeswap.class_defined_in(obj, home) and not obj.__flags__ & _IMMUTABLE_TYPE:
                    seen.add(id(obj))
                    visit(obj, depth + 1)
                    visit_inherited(obj)
                continue
            if isinstance(obj, (FunctionType, BuiltinFunctionType)) or c_types.is_stand_in(obj):
                consider(obj, holder, key, slot)

    # A C type's own methods and those a Python class inherits from one: their
    # named methods only (a wildcard reaching __reduce_ex__ or __sizeof__ would
    # hook the interpreter's machinery; a literal target can still name them).
    def visit_c_type(c_type):
        for key, value in list(_namespace(c_type).items()):
            if isinstance(value, types.MethodDescriptorType) and not _is_dunder(key):
                if target.matches_qualname(value.__qualname__) and id(value) not in seen:
                    seen.add(id(value))
                    results.append(_Found(value.__qualname__, value, c_type, key, "c_type", target))

    def visit_inherited(cls):
        # from the module's own C companion only (socket.socket's _socket.socket): not int's or
        # str's methods (an IntEnum's bit_length), nor those of another package's C types that a
        # class happens to extend (collections.deque's append on a subclass of it)
        own = _namespace(cls)
        companions = (home, "_" + home.rpartition(".")[2], "_" + home)
        keys = {key for base in cls.__mro__[1:] if base.__flags__ & _IMMUTABLE_TYPE and base.__module__ in companions
                for key in _namespace(base)}
        for key in sorted(keys):
            if key in own or _is_dunder(key):
                continue
            inherited = _inherited_from_c_type(cls, key)
            if inherited is not None and target.matches_qualname(inherited.__qualname__):
                results.append(_Found(inherited.__qualname__, inherited, cls, key, "plain", target))

    def consider(obj, holder, key, slot):
        if id(obj) in seen:
            return
        if isinstance(obj, FunctionType):
            if obj.__module__ != home:
                return
            qualname = obj.__qualname__
        else:
            if _canonical_module(obj) not in names and getattr(obj, "__module__", None) not in names:
                return
            if (_canonical_module(obj), obj.__name__) in wrappers.UNWRAPPABLE:
                return
            qualname = obj.__qualname__
        if target.matches_qualname(qualname):
            seen.add(id(obj))
            results.append(_Found(qualname, obj, holder, key, slot, target))

    visit(module, 0)
    return results


def _hook(found, registry, undo):
    """Hook each found callable once: rewrite in place where possible, else wrap."""
    if not found:
        return
    unique = {}
    for item in found:
        unique.setdefault(id(item.obj), []).append(item)
    by_home = {}
    for items in unique.values():
        obj = items[0].obj
        if isinstance(obj, FunctionType):
            home = sys.modules.get(obj.__module__)
            if isinstance(home, types.ModuleType) and codeswap.can_swap(obj.__module__):
                by_home.setdefault(obj.__module__, []).append(items)
                continue
        _wrap_all(items, registry, undo)
    for home_name, groups in by_home.items():
        _swap_or_wrap(sys.modules[home_name], home_name, groups, registry, undo)
    _replace_aliases(undo)


def _swap_or_wrap(module, home_name, groups, registry, undo):
    """Functions found through another module's name (``from home import f``): rewrite them at home."""
    wanted = {items[0].qualname for items in groups}
    swap_plan = _plan(module, lambda qualname: qualname in wanted)
    swapped = set()
    if swap_plan is not None:
        extra_names = tuple({item.target.module for items in groups for item in items if item.target.module_is_literal} - {home_name})
        for function in codeswap.apply(swap_plan, (home_name,) + extra_names, undo):
            swapped.add(id(function))
    for items in groups:
        if id(items[0].obj) in swapped:
            site = _site_in(items[0].obj.__code__)
            for item in items:
                if site is not None:
                    registry.attach(site, item.target)
                item.target.matched = True
        else:
            _wrap_all(items, registry, undo)


def _site_in(code):
    for const in code.co_consts:
        if isinstance(const, Site):
            return const
    return None


# -- wrappers -----------------------------------------------------------------

_wrapped = {}  # id(original) -> (original, wrapper): aliases still to replace


def _wrap_all(items, registry, undo):
    obj = items[0].obj
    existing = _wrapped.get(id(obj))
    if existing is not None:
        wrapper = existing[1]
        site = wrapper.__hookwise_site__
    else:
        module = _canonical_module(obj) if not isinstance(obj, FunctionType) else obj.__module__
        qualname = getattr(obj, "__qualname__", None) or items[0].qualname
        names = (module,) + tuple(item.target.module for item in items if item.target.module != module)
        kind = BUILTIN if not isinstance(obj, FunctionType) else wrappers.function_kind(obj)
        site = registry.new_site(names, qualname, kind, None, original=obj, extra_targets=[item.target for item in items])
        # the default set's own filter; any other target of this callable wants every call
        skip = stdlib_internals.filter_for(obj) if all(item.target.hide_stdlib_internals for item in items) else None
        if accel.ACTIVE and isinstance(site, StatementSite):  # a statement inside a statement is its part
            skip = wrappers.statement_skip(skip, site.semantic.name)
        wrapper = wrappers.make_wrapper(site, obj, wrappers.adjuster_for(module, getattr(obj, "__name__", "")), skip)
        _wrapped[id(obj)] = (obj, wrapper)
    for item in items:
        item.target.matched = True
        registry.attach(site, item.target)
        _set_slot(item.holder, item.key, item.slot, wrapper, undo)


def _set_slot(holder, key, slot, wrapper, undo):
    if slot == "c_type":
        c_types.serve_method(holder, key, wrapper, undo, _setattr_with_undo)
        return
    namespace = _namespace(holder)
    current = namespace.get(key)
    if slot == "staticmethod":
        replacement = staticmethod(wrapper)
    elif slot == "classmethod":
        replacement = classmethod(wrapper)
    elif slot in ("fget", "fset", "fdel"):
        accessors = {name: getattr(current, name) for name in ("fget", "fset", "fdel")}
        accessors[slot] = wrapper
        replacement = property(accessors["fget"], accessors["fset"], accessors["fdel"], current.__doc__)
    else:
        replacement = wrapper
    _setattr_with_undo(holder, key, replacement, undo)


def _replace_aliases(undo):
    """Put the wrapper wherever a loaded module holds the original under any name."""
    if not _wrapped:
        return
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or name in _IMPORT_SYSTEM or is_own_module(name, module):
            continue
        namespace = _namespace(module)
        for key, value in list(namespace.items()):
            entry = _wrapped.get(id(value))
            if entry is not None and entry[0] is value:
                _setattr_with_undo(module, key, entry[1], undo)


def _setattr_with_undo(holder, key, value, undo):
    namespace = _namespace(holder)
    had, old = key in namespace, namespace.get(key)
    setattr(holder, key, value)

    def restore():
        if had:
            setattr(holder, key, old)
        else:
            delattr(holder, key)

    undo.append(restore)


def forget_wrappers():
    """Drop the wrapper bookkeeping (after an uninstall)."""
    _wrapped.clear()
    c_types.forget()


# -- helpers ----------------------------------------------------------------


def _namespace(holder):
    try:
        namespace = vars(holder)
    except TypeError:
        return {}
    return namespace


def _unwrap_descriptor(value):
    if isinstance(value, staticmethod):
        return "staticmethod", value.__func__
    if isinstance(value, classmethod):
        return "classmethod", value.__func__
    if isinstance(value, property):
        return "property", value
    return "plain", value


def _inherited_from_c_type(holder, key):
    """The method ``key`` that the Python class ``holder`` inherits from a C type, or None.

    ``socket.socket`` is a Python subclass of ``_socket.socket``: its
    ``connect`` is the C type's, which cannot be patched there, but a wrapper
    defined on the subclass serves every call made through the subclass.
    Only plain methods (``method_descriptor``), not slots such as ``__len__``.
    """
    if not isinstance(holder, type) or holder.__flags__ & _IMMUTABLE_TYPE:
        return None
    for base in holder.__mro__[1:]:
        value = _namespace(base).get(key)
        if value is not None:
            if base.__flags__ & _IMMUTABLE_TYPE and isinstance(value, types.MethodDescriptorType):
                return value
            return None  # the first class that has it is not a C type, or it is no plain method
    return None


def _is_dunder(name):
    return name.startswith("__") and name.endswith("__")


def _canonical_module(obj):
    """The public module of a builtin: ``io`` for ``_io.open``, ``posix`` for ``system``."""
    owner = getattr(obj, "__objclass__", None)  # a C type's method: the type's module
    module = (owner.__module__ if isinstance(owner, type) else None) or getattr(obj, "__module__", None) or "builtins"
    if module.startswith("_"):
        public = sys.modules.get(module[1:])
        if public is not None and _namespace(public).get(getattr(obj, "__name__", None)) is obj:
            return module[1:]
    return module


def unmatched_message(target, module):
    """One line: the target matched nothing in its module, and the names nearest to what it asked for."""
    import difflib

    holder, parts = module, target.qualname.split(".")
    prefix = ""
    for part in parts[:-1]:  # as deep as the qualname's classes exist
        inner = _namespace(holder).get(part)
        if not isinstance(inner, type):
            break
        holder, prefix = inner, prefix + part + "."
    wanted = target.qualname[len(prefix):]
    names = [name for name in _namespace(holder) if not name.startswith("__") or wanted.startswith("__")]
    nearest = difflib.get_close_matches(wanted.replace("*", ""), names, n=3, cutoff=0.5)
    hint = f"; nearest: {', '.join(prefix + name for name in nearest)}" if nearest else ""
    return f"target {target.text!r} matches nothing in module {module.__name__!r}{hint}"


def _refuse_unwrappable(obj, target):
    if isinstance(obj, FunctionType):
        return
    key = (_canonical_module(obj), getattr(obj, "__name__", ""))
    reason = wrappers.UNWRAPPABLE.get(key) or wrappers.UNWRAPPABLE.get((target.module, target.qualname))
    if reason:
        raise PatchError(f"cannot hook {target.text!r}: {reason}, and a wrapper would change that")
