"""Targets: which functions to hook, written ``module:qualname``.

Both sides take shell wildcards (``myapp.*:*``, ``pkg.mod:Class.*``);
``__main__`` names the program's main module. A qualname is the function's
``__qualname__``: ``Outer.Inner.method``, ``factory.<locals>.inner``.
"""

from .glob import compile_pattern, has_wildcards, pattern_problem
from .own import is_own_name

_WILDCARD_CHARS = frozenset("*?[]!-")

AUDIT_MODULE = "audit"
"""``audit:EVENT`` names CPython's audit events (hookwise.audit), not a module."""

WEB_MODULE = "web"
"""``web:request`` names every incoming request of a WSGI or ASGI application (hookwise.web), not a module."""
WEB_KINDS = ("request",)
PSEUDO_MODULES = (AUDIT_MODULE, WEB_MODULE)


class TargetError(ValueError):
    """A target that cannot be understood; the message says why, in one line."""


class Target:
    """One parsed target, plus what the user attached to it."""

    __slots__ = ("text", "module", "qualname", "listeners", "origin", "quiet", "matched", "hide_stdlib_internals",
                 "private", "_module_match", "_qualname_match")

    def __init__(self, text, module, qualname, listeners=(), origin="command line", quiet=False):
        self.text = text
        self.module = module
        self.qualname = qualname
        self.listeners = tuple(listeners)  # listener specs that receive only this target's calls
        self.origin = origin
        self.quiet = quiet  # the embedded defaults do not complain when a platform lacks one
        self.matched = False
        # the default set's: leave out the standard library's own calls (hookwise.stdlib_internals)
        self.hide_stdlib_internals = False
        # the guard's own targets: heard by the guard alone, not by the run's other listeners
        self.private = False
        self._module_match = compile_pattern(module)
        self._qualname_match = compile_pattern(qualname)

    def matches_module(self, name):
        return self._module_match(name)

    def matches_qualname(self, qualname):
        return self._qualname_match(qualname)

    def matches(self, module, qualname):
        return self._module_match(module) and self._qualname_match(qualname)

    @property
    def module_is_literal(self):
        return not has_wildcards(self.module)

    @property
    def qualname_is_literal(self):
        return not has_wildcards(self.qualname)

    def __repr__(self):
        return f"Target({self.text!r})"


def parse_target(text, listeners=(), origin="command line", quiet=False):
    """Parse ``module:qualname``; raise TargetError with a one-line reason."""
    if not isinstance(text, str):
        raise TargetError(f"target must be a string like 'module:function', not {text!r}")
    stripped = text.strip()
    if not stripped:
        raise TargetError("empty target; expected 'module:qualname', e.g. 'os:system' or 'myapp.*:*'")
    if stripped.count(":") != 1:
        raise TargetError(f"target {text!r} must have exactly one ':' between module and qualname, e.g. 'os:system'")
    module, qualname = stripped.split(":")
    if not module:
        raise TargetError(f"target {text!r} has no module before ':'")
    if not qualname:
        raise TargetError(f"target {text!r} has no function after ':' (use '{module}:*' for all of them)")
    _check_dotted(text, module, "module", allow_angle=False)
    if module == AUDIT_MODULE:  # an audit event's name, as CPython spells it: 'ctypes.dlsym/handle'
        _check_dotted(text, qualname.replace("/", "."), "audit event name", allow_angle=False)
    elif module == WEB_MODULE:
        if not any(compile_pattern(qualname)(kind) for kind in WEB_KINDS):
            raise TargetError(f"target {text!r}: the web module names {', '.join('web:' + k for k in WEB_KINDS)}"
                              " (every incoming request of a WSGI or ASGI application)")
    else:
        _check_dotted(text, qualname, "qualname", allow_angle=True)
    for part, what in ((module, "module"), (qualname, "qualname")):
        problem = pattern_problem(part)
        if problem:
            raise TargetError(f"target {text!r}: malformed pattern in the {what}: {problem}")
    if not has_wildcards(module) and is_own_name(module):
        raise TargetError(f"target {text!r} is inside hookwise itself, which cannot be hooked")
    return Target(stripped, module, qualname, listeners, origin, quiet)


def _check_dotted(text, value, what, allow_angle):
    for part in value.split("."):
        if not part:
            raise TargetError(f"target {text!r}: the {what} {value!r} has an empty part between dots")
        if allow_angle and part in ("<locals>", "<lambda>"):
            continue
        for char in part:
            if not (char.isalnum() or char == "_" or char in _WILDCARD_CHARS):
                raise TargetError(f"target {text!r}: character {char!r} is not allowed in a {what}")


class TargetSet:
    """All targets of a run, indexed for the questions the loader asks on every import."""

    def __init__(self, targets):
        self.targets = list(targets)
        self._by_module = {}
        self._wildcard_modules = []
        self._candidates = {}  # module names -> the targets whose module side matches one of them
        self.audit_targets = [target for target in self.targets if target.module == AUDIT_MODULE]
        self.web_targets = [target for target in self.targets if target.module == WEB_MODULE]
        for target in self.targets:
            if target.module in PSEUDO_MODULES:
                continue  # served by hookwise.audit or hookwise.web, never by the import hook or replacement
            if target.module_is_literal:
                self._by_module.setdefault(target.module, []).append(target)
            else:
                self._wildcard_modules.append(target)

    def __bool__(self):
        return bool(self.targets)

    def __iter__(self):
        return iter(self.targets)

    def for_module(self, name):
        """The targets whose module side matches ``name`` (cheap; asked for every import)."""
        found = self._by_module.get(name, [])
        if self._wildcard_modules and not is_own_name(name):
            found = found + [target for target in self._wildcard_modules if target.matches_module(name)]
        return found

    def may_hold_targets(self, name):
        return name in self._by_module or (
            bool(self._wildcard_modules)
            and not is_own_name(name)
            and any(target.matches_module(name) for target in self._wildcard_modules)
        )

    def _candidates_for(self, module_names):
        found = self._candidates.get(module_names)
        if found is None:
            found = []
            for name in module_names:
                found.extend(target for target in self.for_module(name) if target not in found)
            self._candidates[tuple(module_names)] = found
        return found

    def selector(self, module_names):
        """A predicate on qualnames for a module known by ``module_names``, or None if nothing can match."""
        candidates = self._candidates_for(tuple(module_names))
        if not candidates:
            return None
        return lambda qualname: any(target.matches_qualname(qualname) for target in candidates)

    def matching(self, module_names, qualname):
        """Every target that names this function (under any of its module names), in target order."""
        candidates = self._candidates_for(tuple(module_names))
        return [target for target in self.targets if target in candidates and target.matches_qualname(qualname)]
