"""Shared test helpers: compile code with and without the rewrite, run the driver."""

import os
import signal
import subprocess
import sys
import textwrap

import rewriter
from hookwise.runtime import Registry
from hookwise.targets import TargetSet
from loader import binding

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DRIVER = os.path.join(ROOT, "driver.py")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


class Recorder:
    """A listener that keeps every event as a tuple."""

    def __init__(self):
        self.events = []
        self.calls = []

    def start(self, call):
        self.calls.append(call)
        self.events.append(("start", call.qualname, call.arguments))

    def end(self, call, result):
        self.events.append(("end", call.qualname, result))

    def error(self, call, exc):
        self.events.append(("error", call.qualname, type(exc).__name__))


def everything(qualname):
    return True


def load_rewritten(source, select=everything, listeners=None, filename="<hooked>", module_name="hooked", namespace=None):
    """Rewrite and run ``source`` as a module; returns (namespace, sites)."""
    source = textwrap.dedent(source)
    registry = Registry()
    registry.configure(TargetSet([]), listeners if listeners is not None else [])
    tree = rewriter.parse(source, filename)
    table = rewriter.instrument(tree, select)
    code = compile(tree, filename, "exec", dont_inherit=True)
    sites = binding.create_sites(table, (module_name,), registry)
    code = binding.bind(code, sites)
    namespace = {"__name__": module_name} if namespace is None else namespace
    exec(code, namespace)
    return namespace, sites


def load_plain(source, filename="<plain>", module_name="hooked", namespace=None):
    source = textwrap.dedent(source)
    namespace = {"__name__": module_name} if namespace is None else namespace
    exec(compile(source, filename, "exec", dont_inherit=True), namespace)
    return namespace


def clean_env(**extra):
    """The environment for a child python: no inherited bytecode or hookwise settings."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PYTHON", "HOOKWISE"))}
    if os.environ.get("HOOKWISE_PURE_PYTHON"):  # the implementation under test, in every child too
        env["HOOKWISE_PURE_PYTHON"] = os.environ["HOOKWISE_PURE_PYTHON"]
    env.update(extra)
    return env


def _as_from_a_terminal():
    # a suite started in the background (``cmd &``, some CI runners) hands its children
    # SIGINT ignored, and then Python installs no KeyboardInterrupt handler at all
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_python(args, cwd=None, env=None, input=None, timeout=120):
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env if env is not None else clean_env(), input=input,
        capture_output=True, text=True, timeout=timeout, preexec_fn=_as_from_a_terminal,
    )


def run_driver(args, cwd=None, env=None, input=None, timeout=120):
    """``python driver.py ARGS`` in a fresh process."""
    return run_python([DRIVER, *args], cwd=cwd, env=env, input=input, timeout=timeout)


def read_jsonl(path):
    import json

    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


def read_trace(path):
    """A chrome trace's events, read as the trace viewers read the JSON array form: a trace that a killed
    process left unclosed (its last event followed by a comma, no ``]``) is closed first."""
    import json

    with open(path, encoding="utf-8") as handle:
        text = handle.read().strip()
    if text.startswith("[") and not text.endswith("]"):
        text = text.rstrip().rstrip(",") + "]"
    return json.loads(text)
