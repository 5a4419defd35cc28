"""The import hook, always in fresh processes against the fixture packages.

A small program imports ``shop`` (tests/fixtures/shop) under the driver with a
JSONL listener and prints what it observed; the tests read both.
"""

import json
import os
import shutil
import textwrap

import pytest

from helpers import FIXTURES, clean_env, read_jsonl, run_driver, run_python


@pytest.fixture
def project(tmp_path):
    """A copy of the fixture packages, so that cache files land in a private tree."""
    for name in ("shop", "brokenpkg"):
        shutil.copytree(os.path.join(FIXTURES, name), tmp_path / name)
    return tmp_path


def run_program(project, program, hooks, extra=(), env=None):
    (project / "program.py").write_text(textwrap.dedent(program))
    log = project / "events.jsonl"
    args = [arg for hook in hooks for arg in ("--hook", hook)]
    result = run_driver([*args, "--listener", f"jsonl={log}", *extra, "program.py"], cwd=project, env=env)
    events = read_jsonl(log) if log.exists() else []
    return result, events


SHOP_PROGRAM = """
import asyncio, json
import shop.billing as billing

invoice = billing.Invoice(10, 20, customer="ada")
out = {
    "total": invoice.total(discount=1),
    "count": invoice.count,
    "currency": billing.Invoice.currency(),
    "empty": billing.Invoice.empty().amounts,
    "lines": list(invoice.lines()),
    "rate": asyncio.run(invoice.fetch_rate()),
    "describe": billing.Invoice.Line().describe("x y"),
    "untouched": billing.untouched(1),
    "cached": [billing.cached_square(3), billing.cached_square(3)],
    "formatter": billing.make_formatter("#")(5),
}
try:
    invoice.ratio(0)
except ZeroDivisionError as exc:
    out["error"] = str(exc)
print(json.dumps(out, sort_keys=True))
"""


def test_every_kind_of_function_is_hooked_and_behaves_the_same(project):
    plain = run_python(["-c", SHOP_PROGRAM], cwd=project, env=clean_env())
    result, events = run_program(project, SHOP_PROGRAM, ["shop.billing:*"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == json.loads(plain.stdout)
    targets = {event["target"] for event in events}
    assert targets == {
        "shop.billing:Invoice.__init__", "shop.billing:Invoice.total", "shop.billing:Invoice.count",
        "shop.billing:Invoice.currency", "shop.billing:Invoice.empty", "shop.billing:Invoice.lines",
        "shop.billing:Invoice.fetch_rate", "shop.billing:Invoice.Line.describe", "shop.billing:untouched",
        "shop.billing:cached_square", "shop.billing:make_formatter", "shop.billing:make_formatter.<locals>.formatter",
        "shop.billing:Invoice.ratio",
    }
    by_call = {}
    for event in events:
        by_call.setdefault(event["call_id"], []).append(event)
    assert all([e["event"] for e in pair][0] == "start" and len(pair) == 2 for pair in by_call.values())
    total_end = next(e for e in events if e["target"] == "shop.billing:Invoice.total" and e["event"] == "end")
    assert total_end["result"] == "35.0"
    ratio_error = next(e for e in events if e["event"] == "error")
    assert ratio_error["target"] == "shop.billing:Invoice.ratio" and ratio_error["exception_type"] == "ZeroDivisionError"
    lines_end = next(e for e in events if e["target"] == "shop.billing:Invoice.lines" and e["event"] == "end")
    assert lines_end["result"] == "'done'"
    starts = [e for e in events if e["target"] == "shop.billing:cached_square" and e["event"] == "start"]
    assert len(starts) == 1  # lru_cache served the second call


def test_the_jsonl_contract(project):
    _, events = run_program(project, SHOP_PROGRAM, ["shop.billing:Invoice.total"])
    start, end = events
    for event in events:
        for field in ("event", "call_id", "target", "thread_id", "thread_name", "pid", "ts_ns"):
            assert field in event, field
    assert start["event"] == "start" and end["event"] == "end"
    assert start["call_id"] == end["call_id"] and start["target"] == end["target"] == "shop.billing:Invoice.total"
    # parameters that can be positional are reported in args, as inspect.BoundArguments does
    assert start["args"][1:] == ["1"] and start["args"][0].startswith("<shop.billing.Invoice object")
    assert start["kwargs"] == {}
    assert start["caller"] == {"file": str(project / "program.py"), "line": 7, "function": "<module>"}
    assert end["ts_ns"] >= start["ts_ns"] and end["duration_ns"] >= 0 and end["result"] == "35.0"


def test_functions_of_other_modules_and_non_targets_are_not_hooked(project):
    _, events = run_program(project, SHOP_PROGRAM, ["shop.billing:Invoice.total", "shop.inventory:*"])
    assert {event["target"] for event in events} == {"shop.billing:Invoice.total"}


def test_non_target_functions_keep_their_exact_bytecode(project):
    program = """
    import marshal, shop.billing as b
    print(marshal.dumps(b.untouched.__code__).hex(), b.Invoice.total.__code__.co_code.hex())
    """
    (project / "plain.py").write_text(textwrap.dedent(program))
    plain = run_python(["plain.py"], cwd=project).stdout.split()
    result, _ = run_program(project, program, ["shop.billing:Invoice.total"])
    hooked = result.stdout.split()
    assert hooked[0] == plain[0]  # identical code object, constants and positions included
    assert hooked[1] != plain[1]


def test_the_loader_keeps_sources_resources_and_linecache_working(project):
    program = """
    import inspect, linecache, importlib, shop.billing as b, shop.inventory as inv
    print(type(b.__loader__).__mro__[1].__name__)
    print(inspect.getsource(b.Invoice.total).splitlines()[0].strip())
    print(b.__loader__.get_source("shop.billing").count("def "))
    print(b.__loader__.is_package("shop.billing"), importlib.import_module("shop").__loader__.is_package("shop"))
    print(inv.read_data())
    print(linecache.getline(b.__file__, 16).strip())
    """
    result, _ = run_program(project, program, ["shop.*:*", "shop:*"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "SourceFileLoader",
        "def total(self, discount=0):",
        "13",
        "False True",
        "forty-two",
        "def total(self, discount=0):",
    ]


def test_rewritten_bytecode_is_cached_beside_the_normal_pyc_and_reused(project):
    env = clean_env()  # no PYTHONDONTWRITEBYTECODE
    program = "import shop.billing as b\nprint(b.Invoice(1).total())\n"
    result, events = run_program(project, program, ["shop.billing:*"], env=env)
    assert result.returncode == 0, result.stderr
    pycache = project / "shop" / "__pycache__"
    cached = sorted(name for name in os.listdir(pycache) if ".hookwise." in name)
    assert [name.split(".")[0] for name in cached] == ["billing"]
    assert all(name.endswith(".hookwise.pyc") for name in cached)
    # a plain run never loads the rewritten file: its own pyc is separate
    plain = run_python(["-c", "import shop.billing as b, sys; print(b.__cached__.endswith('.hookwise.pyc'))"], cwd=project, env=env)
    assert plain.stdout.strip() == "False"
    # the second run reads the cache: make the source unreadable-but-present to prove it is not rewritten again
    mtime = os.stat(project / "shop" / "billing.py").st_mtime_ns
    cache_file = pycache / cached[0]
    before = cache_file.read_bytes()
    result, events2 = run_program(project, program, ["shop.billing:*"], env=env)
    assert cache_file.read_bytes() == before and os.stat(project / "shop" / "billing.py").st_mtime_ns == mtime
    assert [e["target"] for e in events2] == [e["target"] for e in events]


def test_a_changed_setting_or_source_never_reuses_old_code(project):
    env = clean_env()
    program = "import shop.billing as b\nb.Invoice(1).total()\nb.untouched(1)\n"
    _, first = run_program(project, program, ["shop.billing:Invoice.total"], env=env)
    _, second = run_program(project, program, ["shop.billing:untouched"], env=env)
    assert {e["target"] for e in first} == {"shop.billing:Invoice.total"}
    assert {e["target"] for e in second} == {"shop.billing:untouched"}
    source = project / "shop" / "billing.py"
    source.write_text(source.read_text().replace("return [x, x]", "return [x, x, x]"))
    _, third = run_program(project, "import shop.billing as b\nprint(b.untouched(1))\n", ["shop.billing:untouched"], env=env)
    assert third[-1]["result"] == "[1, 1, 1]"


def test_a_corrupt_cache_file_is_a_miss(project):
    env = clean_env()
    program = "import shop.billing as b\nprint(b.untouched(2))\n"
    run_program(project, program, ["shop.billing:untouched"], env=env)
    pycache = project / "shop" / "__pycache__"
    for name in os.listdir(pycache):
        if ".hookwise." in name:
            data = (pycache / name).read_bytes()
            (pycache / name).write_bytes(data[:-10])  # truncated payload, header intact
    result, events = run_program(project, program, ["shop.billing:untouched"], env=env)
    assert result.returncode == 0 and result.stdout.strip() == "[2, 2]"
    assert [e["event"] for e in events] == ["start", "end"]


def test_dont_write_bytecode_and_read_only_trees_are_respected(project):
    program = "import shop.billing as b\nprint(b.untouched(3))\n"
    result, events = run_program(project, program, ["shop.billing:*"], env=clean_env(PYTHONDONTWRITEBYTECODE="1"))
    assert result.returncode == 0 and not (project / "shop" / "__pycache__").exists()
    os.chmod(project / "shop", 0o555)
    try:
        result, events = run_program(project, program, ["shop.billing:*"], env=clean_env())
    finally:
        os.chmod(project / "shop", 0o755)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[3, 3]" and result.stderr == ""
    assert not (project / "shop" / "__pycache__").exists() or os.geteuid() == 0
    assert [e["event"] for e in events] == ["start", "end"]


def test_no_cache_option_reads_and_writes_nothing(project):
    program = "import shop.billing as b\nprint(b.untouched(3))\n"
    result, _ = run_program(project, program, ["shop.billing:*"], extra=["--no-cache"], env=clean_env())
    assert result.returncode == 0
    pycache = project / "shop" / "__pycache__"
    assert not pycache.exists() or not any(".hookwise." in name for name in os.listdir(pycache))


def test_a_syntax_error_in_an_imported_module_is_reported_like_python(project):
    program = "import brokenpkg.bad\n"
    (project / "plain.py").write_text(program)
    plain = run_python(["plain.py"], cwd=project)
    result, _ = run_program(project, program, ["brokenpkg.*:*"])
    assert result.returncode == plain.returncode == 1
    assert result.stderr == plain.stderr.replace("plain.py", "program.py")


BROKEN_REWRITES = {
    "raises": "def broken(tree, *a, **k):\n    raise RuntimeError('simulated rewrite bug')\n",
    # code the compiler refuses though the source was fine: hookwise's fault, not a SyntaxError of the program
    "does not compile": "import ast\n"
                        "def broken(tree, *a, **k):\n"
                        "    tree.body.append(ast.Return(ast.Constant(1, lineno=1, col_offset=7), lineno=1, col_offset=0))\n"
                        "    return []\n",
}


@pytest.mark.parametrize("how", sorted(BROKEN_REWRITES))
def test_a_module_that_cannot_be_rewritten_loads_unchanged_with_one_warning(project, how):
    (project / "weird.py").write_text("def f():\n    return 'works'\n")
    program = """
    import rewriter, weird, sys
    print(weird.f())
    """
    # Make the rewrite fail from inside the child: a sitecustomize that breaks rewriter.instrument.
    (project / "sitecustomize.py").write_text(
        "import rewriter\n" + BROKEN_REWRITES[how] +
        "rewriter.instrument = broken\n"
        "import loader.hook\nloader.hook.rewriter.instrument = broken\n"
    )
    env = clean_env(PYTHONPATH=os.pathsep.join([str(project), os.path.dirname(FIXTURES).rsplit(os.sep, 1)[0]]))
    result, events = run_program(project, program.replace("import rewriter, ", "import "), ["weird:*"], env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "works"
    warnings = [line for line in result.stderr.splitlines() if "could not rewrite" in line]
    assert len(warnings) == 1 and "'weird'" in warnings[0]
    assert ("simulated rewrite bug" if how == "raises" else "does not compile") in warnings[0]
    # loaded unchanged, the module's targets are still served (by attribute replacement): nothing fails open
    assert [(e["event"], e["target"]) for e in events] == [("start", "weird:f"), ("end", "weird:f")]


def test_an_import_hook_placed_before_hookwise_is_asked_once(project):
    # a common pattern: a finder at sys.meta_path[0] that asks the other finders
    (project / "mymod.py").write_text("def g():\n    return 1\n")
    program = """
    import sys
    asked = []
    class Delegating:
        def find_spec(self, name, path=None, target=None):
            if name != "mymod":
                return None
            asked.append(name)
            for finder in sys.meta_path:
                if finder is not self and hasattr(finder, "find_spec"):
                    spec = finder.find_spec(name, path, target)
                    if spec is not None:
                        return spec
    sys.meta_path.insert(0, Delegating())
    import mymod
    print(mymod.g(), asked)
    """
    result, events = run_program(project, program, ["mymod:g"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1 ['mymod']"
    assert [event["event"] for event in events] == ["start", "end"]


def test_modules_imported_through_other_finders_keep_their_loader_and_are_served_by_replacement(project):
    import zipfile

    with zipfile.ZipFile(project / "zipped.zip", "w") as archive:
        archive.writestr("zipmod.py", "def f():\n    return 'from zip'\n")
    program = "import sys\nsys.path.insert(0, 'zipped.zip')\nimport zipmod\nprint(zipmod.f(), type(zipmod.__loader__).__name__)\n"
    result, events = run_program(project, program, ["zipmod:*"])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "from zip zipimporter"
    # not rewritten (zipimport's loader stays the module's), but hooked once its code has run
    assert [(e["event"], e["target"]) for e in events] == [("start", "zipmod:f"), ("end", "zipmod:f")]
    assert "matched nothing" not in result.stderr


WARNS_AT_IMPORT = """\
import warnings
warnings.warn("old module", DeprecationWarning, stacklevel=2)

def f():
    return 1
"""

WARNING_PROGRAM = """\
import os, sys, warnings
sys.path.insert(0, 'zipped.zip')
warnings.simplefilter('always')
with warnings.catch_warnings(record=True) as seen:
    import {module}
print([(os.path.basename(w.filename), w.lineno) for w in seen], {module}.f())
"""


@pytest.mark.parametrize("how", ["rewritten", "served"])
def test_a_warning_raised_at_import_points_at_the_importer_as_without_hookwise(project, how):
    # stacklevel=2 at module level names the line that imported the module:
    # warnings skips the import machinery's frames, and hookwise's loader is
    # part of that machinery (the warning once named loader/hook.py)
    import zipfile

    (project / "warns.py").write_text(WARNS_AT_IMPORT)
    with zipfile.ZipFile(project / "zipped.zip", "w") as archive:
        archive.writestr("zipwarns.py", WARNS_AT_IMPORT)
    module = "warns" if how == "rewritten" else "zipwarns"
    program = WARNING_PROGRAM.format(module=module)
    (project / "program.py").write_text(program)
    plain = run_python(["program.py"], cwd=project, env=clean_env())
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == "[('program.py', 5)] 1"
    result, events = run_program(project, program, [f"{module}:f"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == plain.stdout
    assert [(e["event"], e["target"]) for e in events] == [("start", f"{module}:f"), ("end", f"{module}:f")]
