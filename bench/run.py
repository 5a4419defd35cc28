"""hookwise's benchmark: the cost of a hooked call, and of importing hooked code.

    python3 bench/run.py [--quick] [--json PATH] [--pure] [--no-programs | --only-programs]
    python3 bench/run.py --install [--python PYTHON]   # once per Python: viztracer and yappi for the programs

Everything is measured in this one process run, as ratios to a bare call of
the same function, for a function ``f(a, b)``, a method ``obj.m(a, b)``, a
generator consumed to the end and a coroutine awaited:

- bare call;
- hookwise, target hooked but no listener interested in it;
- hookwise, one no-op listener receiving the full Call (start and end);
- hookwise, the JSONL listener writing to a file;
- a plain closure wrapper delivering the same data (thread id, args, kwargs,
  result or exception) to no-op callbacks;
- the original project's wrapper style (threading.current_thread().ident and
  three callbacks);
- wrapt.FunctionWrapper, when wrapt is installed;
- sys.setprofile capture filtered to the target, and what it costs calls that
  are not targets;
- sys.monitoring PY_START/PY_RETURN no-op callbacks (3.12+), and the same
  reading the arguments through the frame.

Then imports: the stdlib email, argparse, json, csv, difflib and pathlib
packages, copied to a scratch directory and imported in fresh processes with
every function hooked: plain (warm .pyc and cold), hookwise cold (rewrite and
write the cache) and hookwise warm (cache hit).

It prints a table (ns per call, added ns, ratio), checks the budgets of the
performance issue, and writes everything as JSON (bench/results/latest-3.X.json
unless --json says otherwise). Timings are minimums over interleaved rounds.
The call-machinery budgets (issue 15's revision) are each the median of five
ratios: the function shape of the variants they compare is measured four more
times after the full table.

Then the whole programs of bench/programs.py (real pure-Python workloads with
every function of their modules hooked, against viztracer, cProfile and
yappi; f(a, b) under the driver; peak memory over 5 million calls) and their
budgets; --no-programs skips them, --only-programs runs them alone.

Tests never assert timings; this file does, in its output, and its exit
status is 1 when a budget is over on 3.11 or 3.12.
"""

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")


def ensure_accelerator(pure):
    """Build the C accelerator beside the sources if it is missing (unless --pure)."""
    if pure:
        os.environ["HOOKWISE_PURE_PYTHON"] = "1"
        return
    tag = sys.implementation.cache_tag  # cpython-312 -> _speedups.cpython-312-*.so
    built = [name for name in os.listdir(os.path.join(ROOT, "hookwise")) if name.startswith(f"_speedups.{tag}-")]
    if built:
        return
    print("building the C accelerator (setup.py build_ext --inplace) ...", flush=True)
    result = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=ROOT,
                            capture_output=True, text=True)
    if result.returncode != 0:
        print("could not build it; measuring the pure-Python runtime\n" + result.stderr[-2000:])
    shutil.rmtree(os.path.join(ROOT, "build"), ignore_errors=True)


# ------------------------------------------------------------------ the code measured

SOURCE = textwrap.dedent(
    """
    def f(a, b):
        return a + b

    class Obj:
        def m(self, a, b):
            return a + b

    def gen(a, b):
        yield a
        yield b
        return a + b

    async def coro(a, b):
        return a + b
    """
)


def load_plain():
    namespace = {"__name__": "benchmod"}
    exec(compile(SOURCE, "<bench>", "exec"), namespace)
    return namespace


def load_hooked(listeners):
    """The benchmark module rewritten by hookwise, every function hooked, with these listeners."""
    import rewriter
    from hookwise.runtime import Registry
    from hookwise.targets import TargetSet
    from loader import binding

    registry = Registry()
    registry.configure(TargetSet([]), listeners)
    tree = rewriter.parse(SOURCE, "<bench>")
    table = rewriter.instrument(tree, lambda qualname: True)
    code = binding.bind(compile(tree, "<bench>", "exec", dont_inherit=True), binding.create_sites(table, ("benchmod",), registry))
    namespace = {"__name__": "benchmod"}
    exec(code, namespace)
    return namespace


class NoopListener:
    def start(self, call):
        pass

    def end(self, call, result):
        pass


class EndOnlyListener:
    """A listener that needs only finished calls: one method per call, still the full Call."""

    def end(self, call, result):
        pass

    def error(self, call, exc):
        pass


def noop_callback(*args):
    pass


def closure_wrapper(function):
    """The plain way: a closure delivering thread id, args, kwargs, result or exception."""
    get_ident = threading.get_ident
    before = after = failed = noop_callback

    def wrapper(*args, **kwargs):
        thread_id = get_ident()
        before(thread_id, args, kwargs)
        try:
            result = function(*args, **kwargs)
        except BaseException as exc:
            failed(thread_id, exc)
            raise
        after(thread_id, result)
        return result

    return wrapper


def original_project_wrapper(function):
    """The style of the project hookwise grew from: current_thread().ident and three callbacks."""
    start_callback = end_callback = error_callback = noop_callback

    def wrapper(*args, **kwargs):
        thread_id = threading.current_thread().ident
        start_callback("benchmod", function.__name__, thread_id, args, kwargs)
        try:
            ret = function(*args, **kwargs)
        except Exception as exc:
            error_callback("benchmod", function.__name__, thread_id, exc)
            raise
        end_callback("benchmod", function.__name__, thread_id, ret)
        return ret

    return wrapper


def wrapt_wrapper(function):
    import wrapt

    get_ident = threading.get_ident

    def handler(wrapped, instance, args, kwargs):
        thread_id = get_ident()
        noop_callback(thread_id, args, kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            noop_callback(thread_id, exc)
            raise
        noop_callback(thread_id, result)
        return result

    return wrapt.FunctionWrapper(function, handler)


# ------------------------------------------------------------------ call benchmarks


def make_runner(shape, callee, obj=None):
    """A function running `callee` N times in the given shape; returns its own loop."""
    if shape == "function":
        def run(n):
            for i in range(n):
                callee(i, 2)
    elif shape == "method":
        def run(n):
            for i in range(n):
                obj.m(i, 2)
    elif shape == "generator":
        def run(n):
            for i in range(n):
                for _ in callee(i, 2):
                    pass
    else:
        async def awaiting(n):
            for i in range(n):
                await callee(i, 2)

        def run(n):
            driver = awaiting(n)
            try:
                driver.send(None)
            except StopIteration:
                pass
    return run


def timed(run, n):
    gc_was = gc.isenabled()
    gc.disable()
    try:
        began = time.perf_counter_ns()
        run(n)
        return (time.perf_counter_ns() - began) / n
    finally:
        if gc_was:
            gc.enable()


class Variant:
    def __init__(self, name, label, setup, teardown=None, note=""):
        self.name, self.label, self.setup, self.teardown, self.note = name, label, setup, teardown, note


def build_variants(tmpdir):
    """[(name, label, {shape: runner})] for every variant available here, and the JSONL listener."""
    from hookwise.listeners.jsonl import JsonlListener

    plain = load_plain()
    jsonl_listener = JsonlListener(os.path.join(tmpdir, "bench.jsonl"))
    variants = [
        ("bare", "bare call (no hookwise)", shapes(plain)),
        ("hooked_off", "hookwise, no listener interested", shapes(load_hooked([]))),
        ("hooked_noop", "hookwise, one no-op listener (full Call)", shapes(load_hooked([NoopListener()]))),
        ("hooked_end_only", "hookwise, no-op listener of end/error only", shapes(load_hooked([EndOnlyListener()]))),
        ("hooked_jsonl", "hookwise, JSONL listener to a file", shapes(load_hooked([jsonl_listener]))),
        ("closure", "closure wrapper, same data, no-op callbacks", shapes(plain, closure_wrapper)),
        ("original_style", "original project's wrapper style", shapes(plain, original_project_wrapper)),
    ]
    try:
        import wrapt  # noqa: F401

        variants.append(("wrapt", "wrapt.FunctionWrapper", shapes(plain, wrapt_wrapper)))
    except ImportError:
        pass
    variants.append(("setprofile", "sys.setprofile, filtered to the target", _profiled(plain, targets_only=True)))
    variants.append(("setprofile_other", "sys.setprofile, cost on non-target calls", _profiled(plain, targets_only=False)))
    if sys.version_info >= (3, 12):
        variants.append(("monitoring", "sys.monitoring PY_START/PY_RETURN, no args", _monitored(plain, with_args=False)))
        variants.append(("monitoring_args", "sys.monitoring, args read through the frame", _monitored(plain, with_args=True)))
    return variants, jsonl_listener


def shapes(namespace, wrap=None):
    """The four shapes of call for one version of the benchmark module (wrapped, if asked)."""
    if wrap is None:
        obj_class, f, gen, coro = namespace["Obj"], namespace["f"], namespace["gen"], namespace["coro"]
    else:
        obj_class = type("WrappedObj", (), {"m": wrap(namespace["Obj"].m)})
        f, gen, coro = wrap(namespace["f"]), wrap(namespace["gen"]), wrap(namespace["coro"])
    return {
        "function": make_runner("function", f),
        "method": make_runner("method", None, obj_class()),
        "generator": make_runner("generator", gen),
        "coroutine": make_runner("coroutine", coro),
    }


def _profiled(plain, targets_only):
    """sys.setprofile capture of the target's calls (args through the frame), in the runner's loop."""
    target_codes = {plain["f"].__code__, plain["Obj"].m.__code__, plain["gen"].__code__, plain["coro"].__code__}
    get_ident = threading.get_ident

    def profiler(frame, event, arg):
        if event == "call":
            if frame.f_code in target_codes:
                noop_callback(get_ident(), frame.f_locals)
        elif event == "return":
            if frame.f_code in target_codes:
                noop_callback(get_ident(), arg)

    def other(a, b):
        return a + b

    def with_profile(run):
        def profiled(n):
            sys.setprofile(profiler)
            try:
                run(n)
            finally:
                sys.setprofile(None)
        return profiled

    if targets_only:
        return {
            "function": with_profile(make_runner("function", plain["f"])),
            "method": with_profile(make_runner("method", None, plain["Obj"]())),
            "generator": with_profile(make_runner("generator", plain["gen"])),
            "coroutine": with_profile(make_runner("coroutine", plain["coro"])),
        }
    return {"function": with_profile(make_runner("function", other))}


def _monitored(plain, with_args):
    monitoring = sys.monitoring
    tool = monitoring.PROFILER_ID if not with_args else monitoring.OPTIMIZER_ID
    codes = [plain["f"].__code__, plain["Obj"].m.__code__, plain["gen"].__code__, plain["coro"].__code__]
    getframe = sys._getframe

    if with_args:
        def on_start(code, offset):
            frame = getframe(1)
            names = code.co_varnames[: code.co_argcount]
            noop_callback({name: frame.f_locals[name] for name in names})
    else:
        def on_start(code, offset):
            pass

    def on_return(code, offset, value):
        pass

    def with_monitoring(run):
        def monitored(n):
            monitoring.use_tool_id(tool, "hookwise-bench")
            monitoring.register_callback(tool, monitoring.events.PY_START, on_start)
            monitoring.register_callback(tool, monitoring.events.PY_RETURN, on_return)
            for code in codes:
                monitoring.set_local_events(tool, code, monitoring.events.PY_START | monitoring.events.PY_RETURN)
            try:
                run(n)
            finally:
                for code in codes:
                    monitoring.set_local_events(tool, code, 0)
                monitoring.register_callback(tool, monitoring.events.PY_START, None)
                monitoring.register_callback(tool, monitoring.events.PY_RETURN, None)
                monitoring.free_tool_id(tool)
        return monitored

    return {
        "function": with_monitoring(make_runner("function", plain["f"])),
        "method": with_monitoring(make_runner("method", None, plain["Obj"]())),
        "generator": with_monitoring(make_runner("generator", plain["gen"])),
        "coroutine": with_monitoring(make_runner("coroutine", plain["coro"])),
    }


def measure_calls(variants, n, rounds):
    """{variant: {shape: ns per call}}: the minimum over interleaved rounds."""
    results = {name: {} for name, _, _ in variants}
    for shape in ("function", "method", "generator", "coroutine"):
        for name, _, runners in variants:
            if shape in runners:
                runners[shape](2000)  # warm up: specialisation, caches
        for _ in range(rounds):
            for name, _, runners in variants:
                if shape in runners:
                    value = timed(runners[shape], n)
                    previous = results[name].get(shape)
                    results[name][shape] = value if previous is None else min(previous, value)
    return results


def measure_jsonl_baseline(n, rounds, tmpdir):
    """A hand-written json.dumps of the same fields and a buffered write, per recorded call."""
    path = os.path.join(tmpdir, "handwritten.jsonl")
    handle = open(path, "w", buffering=65536)
    get_ident = threading.get_ident
    pid = os.getpid()
    dumps = json.dumps

    def record(n):
        for i in range(n):
            started = time.time_ns()
            handle.write(dumps({"event": "start", "call_id": i, "target": "benchmod:f", "thread_id": get_ident(),
                                "thread_name": "MainThread", "pid": pid, "ts_ns": started,
                                "args": [repr(i), repr(2)], "kwargs": {},
                                "caller": {"file": __file__, "line": 1, "function": "run"}}) + "\n")
            ended = time.time_ns()
            handle.write(dumps({"event": "end", "call_id": i, "target": "benchmod:f", "thread_id": get_ident(),
                                "thread_name": "MainThread", "pid": pid, "ts_ns": ended,
                                "duration_ns": ended - started, "result": repr(i + 2)}) + "\n")

    best = None
    record(1000)
    for _ in range(rounds):
        value = timed(record, n)
        best = value if best is None else min(best, value)
    handle.close()
    return best


# ------------------------------------------------------------------ import benchmarks

IMPORT_PACKAGES = ("email", "argparse", "json", "csv", "difflib", "pathlib")

IMPORT_PROGRAM = """
import sys, time
sys.path.insert(0, {scratch!r})
mode = {mode!r}
if mode != "plain":
    sys.path.insert(1, {root!r})
    from hookwise.config import build_settings
    from loader import Installation
    settings = build_settings([name + ":*" for name in {packages!r}] + [name + ".*:*" for name in {packages!r}], ["jsonl=/dev/null"])
    Installation(settings).install([])
began = time.perf_counter_ns()
{imports}
elapsed = time.perf_counter_ns() - began
print(elapsed)
"""


def _copy_packages(scratch):
    import importlib.util

    for name in IMPORT_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec.submodule_search_locations:
            shutil.copytree(spec.submodule_search_locations[0], os.path.join(scratch, name),
                            ignore=shutil.ignore_patterns("__pycache__", "tests"))
        else:
            shutil.copy(spec.origin, os.path.join(scratch, name + ".py"))


def _importing(scratch, mode):
    imports = "\n".join(f"import {name}" for name in IMPORT_PACKAGES)
    imports += "\nimport email.parser, email.message, email.policy, email.headerregistry, email.utils, json.decoder"
    program = IMPORT_PROGRAM.format(scratch=scratch, mode=mode, root=ROOT, packages=IMPORT_PACKAGES, imports=imports)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return int(result.stdout.strip().splitlines()[-1])


def _remove_caches(scratch, kind):
    for directory, _, files in os.walk(scratch):
        for name in files:
            if name.endswith(".pyc") and ((kind == "hookwise") == name.endswith(".hookwise.pyc")):
                os.unlink(os.path.join(directory, name))


def measure_imports(repeats):
    scratch = tempfile.mkdtemp(prefix="hookwise-bench-imports-")
    try:
        _copy_packages(scratch)
        samples = {"plain_cold": [], "plain_warm": [], "hookwise_cold": [], "hookwise_warm": []}
        for _ in range(repeats):
            _remove_caches(scratch, "plain")
            samples["plain_cold"].append(_importing(scratch, "plain"))
            samples["plain_warm"].append(_importing(scratch, "plain"))
            _remove_caches(scratch, "hookwise")
            samples["hookwise_cold"].append(_importing(scratch, "hookwise"))
            samples["hookwise_warm"].append(_importing(scratch, "hookwise"))
        # the least of the interleaved rounds, as for calls: the noise of a shared machine only adds
        return {key: min(values) for key, values in samples.items()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


# ------------------------------------------------------------------ report


BUDGETS_APPLY = ((3, 11), (3, 12))


# the variants the call-machinery budgets compare, measured again (function shape) for their medians of five
BUDGET_VARIANTS = ("bare", "hooked_off", "hooked_noop", "hooked_end_only", "closure", "monitoring")
BUDGET_RUNS = 5


def machinery_ratios(function_ns):
    """{budget key: ratio} of one run, from {variant: ns per call of the function shape}."""
    bare = function_ns["bare"]
    added = {name: value - bare for name, value in function_ns.items()}
    ratios = {"noop_vs_closure": added["hooked_noop"] / added["closure"],
              "off_vs_bare": function_ns["hooked_off"] / bare}
    if "monitoring" in added:
        ratios["noop_vs_monitoring"] = added["hooked_noop"] / added["monitoring"]
        ratios["end_only_vs_monitoring"] = added["hooked_end_only"] / added["monitoring"]
    return ratios


def measure_machinery(variants, calls, n, rounds):
    """[{budget key: ratio}] for BUDGET_RUNS runs: the full table's, then the function shape again."""
    chosen = [(name, label, {"function": runners["function"]}) for name, label, runners in variants
              if name in BUDGET_VARIANTS]
    runs = [machinery_ratios({name: calls[name]["function"] for name, _, _ in chosen})]
    for _ in range(BUDGET_RUNS - 1):
        again = measure_calls(chosen, n, rounds)
        runs.append(machinery_ratios({name: shapes["function"] for name, shapes in again.items()}))
    return runs


MACHINERY_BUDGETS = [
    ("noop_vs_monitoring", "no-op listener (start and end) adds at most 2x sys.monitoring's no-op PY_START/PY_RETURN", 2.0),
    ("end_only_vs_monitoring", "no-op listener of end/error only adds at most 1.3x sys.monitoring's no-op callbacks", 1.3),
    ("off_vs_bare", "hooked, no listener interested: at most 1.3x a bare call", 1.3),
    ("noop_vs_closure", "no-op listener adds at most half of the closure wrapper's cost", 0.5),
]


def budgets(calls, jsonl_baseline, imports, machinery):
    """(description, measured, limit, ok) for each budget of the performance issues."""
    checks = []
    bare = calls["bare"]["function"]
    added = {name: shapes["function"] - bare for name, shapes in calls.items() if "function" in shapes}
    for key, text, limit in MACHINERY_BUDGETS:
        values = [run[key] for run in machinery if key in run]
        if values:  # the sys.monitoring ones need 3.12
            shown = ", ".join(f"{value:.2f}" for value in values)
            checks.append((f"{text} (median of {len(values)}: {shown})", statistics.median(values), limit))
    checks.append(("JSONL listener: at most 3x a hand-written json.dumps + buffered write",
                   added["hooked_jsonl"] / jsonl_baseline, 3.0))
    if imports:
        checks.append(("warm import (cache hit): at most 1.2x a plain import",
                       imports["hookwise_warm"] / imports["plain_warm"], 1.2))
        # Cold against cold: a plain import without its .pyc compiles the source too. Against a
        # warm plain import no cold import could pass: plain python's own is over 3x that.
        checks.append(("cold import (rewrite, write the cache): at most 3x a plain cold import",
                       imports["hookwise_cold"] / imports["plain_cold"], 3.0))
    return [(text, value, limit, value <= limit) for text, value, limit in checks]


def print_report(variants, calls, jsonl_baseline, imports, checks, implementation):
    print(f"\nhookwise benchmark: CPython {platform.python_version()} on {platform.machine()}, runtime: {implementation}")
    for shape in ("function", "method", "generator", "coroutine"):
        bare = calls["bare"][shape]
        print(f"\n{shape}:  bare {bare:.1f} ns per call")
        print(f"  {'variant':48s} {'ns/call':>9s} {'added ns':>9s} {'ratio':>7s}")
        for name, label, _ in variants:
            if shape not in calls[name]:
                continue
            value = calls[name][shape]
            print(f"  {label:48s} {value:9.1f} {value - bare:9.1f} {value / bare:7.2f}")
    print(f"\nhand-written json.dumps + buffered write, per call (start + end lines): {jsonl_baseline:.1f} ns")
    if imports:
        print("\nimport of email, argparse, json, csv, difflib, pathlib with every function hooked (fastest round):")
        for key in ("plain_warm", "plain_cold", "hookwise_warm", "hookwise_cold"):
            print(f"  {key:14s} {imports[key] / 1e6:8.2f} ms  ratio to plain_warm {imports[key] / imports['plain_warm']:5.2f}"
                  f"  to plain_cold {imports[key] / imports['plain_cold']:5.2f}")
    applies = sys.version_info[:2] in BUDGETS_APPLY
    print(f"\nbudgets ({'they apply to this version' if applies else 'set for 3.11 and 3.12; shown for information'}):")
    for text, value, limit, ok in checks:
        print(f"  [{'ok' if ok else 'OVER'}] {text}: {value:.2f} (limit {limit})")
    if not any("sys.monitoring" in text for text, *_ in checks):
        print("  (the sys.monitoring budgets need 3.12: this Python has no sys.monitoring)")


def main(argv=None):
    import programs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds, smaller programs (a smoke run)")
    parser.add_argument("--json", help="where to write the numbers (default bench/results/latest-3.X.json)")
    parser.add_argument("--pure", action="store_true", help="measure the pure-Python runtime")
    parser.add_argument("--no-imports", action="store_true", help="skip the import benchmark")
    parser.add_argument("--only-imports", action="store_true", help="only the import benchmark")
    parser.add_argument("--no-programs", action="store_true", help="skip the whole programs (bench/programs.py)")
    parser.add_argument("--only-programs", action="store_true", help="only the whole programs")
    parser.add_argument("--install", action="store_true", help="make the whole programs' tools venv, then stop")
    parser.add_argument("--python", default=sys.executable, help="the python the venv is made with (--install)")
    programs.add_options(parser)
    options = parser.parse_args(argv)
    if options.install:
        return programs.main(["--install", "--python", options.python]
                             + (["--venv", options.venv] if options.venv else []))
    ensure_accelerator(options.pure)
    sys.path.insert(0, ROOT)
    from hookwise import accel

    n, rounds = (20_000, 5) if options.quick else (200_000, 15)
    record = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "implementation": accel.describe(),
    }
    checks = []
    if not options.only_programs:
        imports = None if options.no_imports else measure_imports(3 if options.quick else 9)
        if options.only_imports:
            for key in ("plain_warm", "plain_cold", "hookwise_warm", "hookwise_cold"):
                print(f"{key:14s} {imports[key] / 1e6:8.2f} ms  to plain_warm {imports[key] / imports['plain_warm']:5.2f}"
                      f"  to plain_cold {imports[key] / imports['plain_cold']:5.2f}")
            return 0
        with tempfile.TemporaryDirectory(prefix="hookwise-bench-") as tmpdir:
            variants, jsonl_listener = build_variants(tmpdir)
            calls = measure_calls(variants, n, rounds)
            jsonl_listener.close()
            jsonl_baseline = measure_jsonl_baseline(n // 2, rounds, tmpdir)
            machinery = measure_machinery(variants, calls, n, rounds)
        checks = budgets(calls, jsonl_baseline, imports, machinery)
        print_report(variants, calls, jsonl_baseline, imports, checks, accel.describe())
        record.update({
            "calls_ns": calls,
            "labels": {name: label for name, label, _ in variants},
            "jsonl_handwritten_ns": jsonl_baseline,
            "imports_ns": imports,
            "machinery_ratios": machinery,
        })
    if not options.no_programs:
        record["programs"], program_checks = programs.run(options)
        checks += program_checks
    record["budgets"] = [{"budget": text, "value": value, "limit": limit, "ok": ok} for text, value, limit, ok in checks]
    path = options.json or os.path.join(RESULTS, f"latest-{sys.version_info[0]}.{sys.version_info[1]}.json")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as handle:
        json.dump(record, handle, indent=2)
    print(f"\nnumbers written to {path}")
    applies = sys.version_info[:2] in BUDGETS_APPLY
    return 1 if applies and not all(ok for *_, ok in checks) else 0


if __name__ == "__main__":
    sys.exit(main())
