"""``python -m rewriter.dump``: the rewritten source, printed without running anything."""

import os

from helpers import FIXTURES, ROOT, clean_env, run_python


def dump(*args, cwd=FIXTURES):
    env = clean_env(PYTHONPATH=os.pathsep.join([ROOT, FIXTURES]))
    return run_python(["-m", "rewriter.dump", *args], cwd=cwd, env=env)


def test_dump_prints_valid_python_for_a_module_without_importing_it(tmp_path):
    (tmp_path / "noisy.py").write_text("print('imported!')\nraise SystemExit(3)\ndef f(x):\n    return x\n")
    result = dump("noisy", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "imported!" not in result.stdout.splitlines()  # the source shows, but nothing ran
    assert "# 1 hooked function(s):" in result.stdout and "_hookwise_site_0: f (function, line 3)" in result.stdout
    assert "return (_hookwise_result := x)" in result.stdout
    compile(result.stdout, "<dump>", "exec")


def test_dump_of_a_submodule_does_not_run_its_package():
    result = dump("shop.billing", "--hook", "shop.billing:Invoice.total")
    assert result.returncode == 0, result.stderr
    assert "_hookwise_site_0: Invoice.total (function" in result.stdout
    assert result.stdout.count(".start(") == 1
    compile(result.stdout, "<dump>", "exec")


def test_dump_diff_shows_only_the_injected_code():
    result = dump("shop.billing", "--hook", "shop.billing:untouched", "--diff")
    assert result.returncode == 0, result.stderr
    added = [line for line in result.stdout.splitlines() if line.startswith("+") and not line.startswith("+++")]
    removed = [line for line in result.stdout.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert removed == ["-    return [x, x]"]
    assert "+    _hookwise_call = _hookwise_site_0.on and _hookwise_site_0.start(x)" in added
    assert "+        return (_hookwise_result := [x, x])" in added


def test_dump_uses_the_config_file(tmp_path):
    (tmp_path / "hookwise.toml").write_text('hooks = ["app:second"]\n')
    (tmp_path / "app.py").write_text("def first(): pass\ndef second(): pass\n")
    result = dump("app", cwd=tmp_path)
    assert "_hookwise_site_0: second" in result.stdout and "first (function" not in result.stdout


def test_dump_errors():
    assert dump("no.such.module").returncode == 2
    assert "no module named 'no'" in dump("no.such.module").stderr
    assert dump("shop", "--bogus").returncode == 2
    assert dump().returncode == 2
    result = dump(os.path.join("brokenpkg", "bad.py"))
    assert result.returncode == 1 and "does not parse" in result.stderr
