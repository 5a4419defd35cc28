"""The runtime guard: ``--guard monitor`` or ``--guard block`` (config: a ``[guard]`` table).

It hears the sinks of the ``security`` preset and every request of the ``web``
preset (its own targets: other listeners hear only what the user named), and
asks, at each sink call, whether an input steered it (``rules``): a request's
query, path, cookies, headers and body, or outside a request the program's
command-line arguments and the lines it reads on standard input (``inputs``). A positive answer is a ``Finding``,
handed to every listener that has a ``finding`` method (all the built-in
outputs). In ``block`` mode the sink raises ``hookwise.Blocked`` before it
runs; inside a request the client then gets a 403 (``hookwise.web``),
whatever the framework's error handlers make of the exception. ``monitor``
reports and changes nothing.

At exit the guard says how many findings it made, per rule.
"""

import os
import sys

from .. import _originals, _state, report
from ..listener import Blocked
from ..render import Render
from . import inputs as _inputs
from . import rules as _rules

MODES = ("monitor", "block")
current_request = _state.current_request


class GuardSettings:
    """What ``--guard`` and the ``[guard]`` table say (checked by ``parse``)."""

    def __init__(self, mode, roots=None, rules=None):
        self.mode = mode
        self.roots = list(roots) if roots is not None else None  # None: the working directory and the app's
        self.rules = list(rules) if rules is not None else list(_rules.RULE_IDS)

    def as_data(self):
        return {"mode": self.mode, "roots": self.roots, "rules": self.rules}


def parse(mode=None, table=None, where="--guard"):
    """GuardSettings from the command line's mode and the config's table, or None; ValueError says why."""
    table = dict(table or {})
    unknown = set(table) - {"mode", "roots", "rules"}
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r} in [guard] (known keys: mode, roots, rules)")
    mode = mode if mode is not None else table.get("mode")
    if mode is None:
        return None
    if mode not in MODES:
        raise ValueError(f"{where}: guard mode must be monitor or block, not {mode!r}")
    roots, chosen = table.get("roots"), table.get("rules")
    for key, value in (("roots", roots), ("rules", chosen)):
        if value is not None and (not isinstance(value, list) or not all(isinstance(item, str) for item in value)):
            raise ValueError(f"{where}: [guard] {key} must be a list of strings")
    for rule in chosen or ():
        if rule not in _rules.RULE_IDS:
            raise ValueError(f"{where}: unknown guard rule {rule!r} (known rules: {', '.join(_rules.RULE_IDS)})")
    return GuardSettings(mode, roots, chosen)


class Finding:
    """One sink call an input steered: what an output shows (already rendered: bounded, redacted)."""

    __slots__ = ("rule", "severity", "title", "verb", "action", "target", "call_id", "arguments", "input_value",
                 "input_source", "fragment", "request", "app_caller", "thread_id", "thread_name", "pid", "ts_ns")

    def as_dict(self):
        return {
            "rule": self.rule, "severity": self.severity, "action": self.action,
            "request": self.request,
            "sink": {"target": self.target, "call_id": self.call_id, "arguments": self.arguments},
            "input": {"value": self.input_value, "source": self.input_source},
            "fragment": self.fragment,
        }


class Context:
    """What a rule may ask about the moment of the sink call."""

    def __init__(self, guard, request):
        self.request = request
        self._roots = guard.roots

    def inside_roots(self, path):
        resolved = os.path.realpath(path)
        return any(resolved == root or resolved.startswith(root + os.sep) for root in self._roots)

    def is_request_stream(self, value):
        request = self.request
        environ = getattr(request, "environ", None)
        return request is not None and (value is getattr(request, "body_stream", None) or (
            environ is not None and value is environ.get("wsgi.input")))


class Guard:
    """The listener that checks every sink call (see the module docstring)."""

    hears_private_targets = True  # its own targets, which the run's other listeners do not hear

    def __init__(self, settings, render=None):
        self.mode = settings.mode
        self.enabled = frozenset(settings.rules)
        self.render = render if render is not None else Render()
        roots = settings.roots if settings.roots is not None else [os.getcwd(), _program_directory()]
        self.roots = [os.path.realpath(root) for root in roots if root]
        _inputs.keep_stdin()  # outside a request, the lines the program reads are inputs too
        self.counts = {}  # rule id -> findings
        self.blocked = 0
        self._listeners = None

    # -- events -------------------------------------------------------------
    def start(self, call):
        if call.kind == "request":
            call.args[0].keep_body = True  # the body's fields are inputs: kept as the application reads it
            return
        rule = _rules.rule_for(call)
        if rule is None or rule.id not in self.enabled:
            return
        request = current_request.get()
        if request is None and rule.requests_only:
            return
        found_inputs = _inputs.of_request(request) if request is not None else _inputs.of_process()
        if not found_inputs and rule is not _rules.UNSAFE_DESERIALIZATION:
            return
        found = rule.check(call, found_inputs, Context(self, request))
        if found is not None:
            self._found(call, rule, request, found[0], found[1])

    def _found(self, call, rule, request, source_input, fragment):
        finding = self._finding(call, rule, request, source_input, fragment)
        self.counts[rule.id] = self.counts.get(rule.id, 0) + 1
        for listener in self._finding_listeners():
            try:
                listener.finding(finding)
            except Exception as exc:
                report.warn_once(("finding", id(listener)),
                                 f"listener {type(listener).__name__} failed in finding(): {type(exc).__name__}: {exc}")
        if self.mode == "block":
            self.blocked += 1
            refusal = Blocked(f"hookwise guard: {rule.id} blocked ({finding.input_source} {rule.verb} {call.target})")
            if request is not None:
                request.blocked = refusal  # hookwise.web answers 403, whatever the framework does with it
            raise refusal

    def _finding(self, call, rule, request, source_input, fragment):
        render = self.render
        finding = Finding()
        finding.rule, finding.severity, finding.title, finding.verb = rule.id, rule.severity, rule.title, rule.verb
        finding.action = "blocked" if self.mode == "block" else "monitored"
        finding.target, finding.call_id = call.target, call.call_id
        if call.site.params is None:
            shown = {f"arg{index}": text for index, text in enumerate(render.args(call))}
            shown.update(render.kwargs(call))
        else:
            shown = render.arguments(call, changed_only=True)
        finding.arguments = shown
        value, source = source_input
        name = source.rpartition(" ")[2]
        finding.input_value = "***" if render.redact and render.is_secret(name) else self._shown(value)
        finding.input_source = source
        finding.fragment = self._shown(fragment)
        finding.request = None if request is None else {
            "method": request.method, "path": request.path, "request_id": request.call_id}
        finding.app_caller = call.app_caller
        finding.thread_id, finding.thread_name, finding.pid = call.thread_id, call.thread_name, call.pid
        finding.ts_ns = _originals.time_ns()
        return finding

    def _shown(self, value):
        """Text as itself, anything else as its safe repr; bounded by repr_limit either way."""
        text = value if isinstance(value, str) else self.render.value(value)
        limit = self.render.repr_limit
        return text if len(text) <= limit else text[:limit] + "..."

    def _finding_listeners(self):
        if self._listeners is None:
            from ..runtime import REGISTRY

            self._listeners = [listener for listener in REGISTRY.all_listeners()
                               if listener is not self and callable(getattr(listener, "finding", None))]
        return self._listeners

    def summary(self):
        """The exit line: findings per rule, or None when there were none."""
        if not self.counts:
            return None
        total = sum(self.counts.values())
        per_rule = ", ".join(f"{rule} {count}" for rule, count in sorted(self.counts.items(), key=lambda i: -i[1]))
        action = f", {self.blocked} blocked" if self.mode == "block" else " (monitor: nothing blocked)"
        return f"guard: {total} finding{'' if total == 1 else 's'}{action}: {per_rule}"

    def close(self):
        line = self.summary()
        if line is not None:
            report.warn(line)


def _program_directory():
    program = sys.argv[0] if sys.argv and isinstance(sys.argv[0], str) else ""
    return os.path.dirname(os.path.abspath(program)) if program and program != "-c" else ""
