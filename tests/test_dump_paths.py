"""``python -m rewriter.dump``: files named as an import names them, no silent "all functions", the diffs."""

import os
import sys

from helpers import ROOT, clean_env, run_python


def dump(*args, cwd):
    env = clean_env(PYTHONPATH=ROOT)
    return run_python(["-m", "rewriter.dump", *args], cwd=cwd, env=env)


def _package(tmp_path):
    (tmp_path / "mylib").mkdir()
    (tmp_path / "mylib" / "__init__.py").write_text("")
    (tmp_path / "mylib" / "calc.py").write_text(
        "# calc: a comment that is not code\n"
        "\n"
        "\n"
        "def cube(n):\n"
        "    # no hook here\n"
        "    return n * n * n\n"
        "\n"
        "\n"
        "def square(n):\n"
        "    return n * n\n"
    )
    return os.path.join("mylib", "calc.py")


def _hooked(stdout):
    return [line.split(": ", 1)[1] for line in stdout.splitlines() if line.startswith("#   _hookwise_site_")]


def test_a_file_in_a_package_is_named_as_an_import_names_it(tmp_path):
    path = _package(tmp_path)
    result = dump(path, "--hook", "mylib.calc:square", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _hooked(result.stdout) == ["square (function, line 9)"]
    assert result.stdout.startswith("# hookwise rewrite of mylib.calc (")
    # an absolute path, from another directory, names it the same way (by its packages)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = dump(str(tmp_path / path), "--hook", "mylib.calc:square", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert _hooked(result.stdout) == ["square (function, line 9)"]


def test_a_file_under_a_namespace_directory_is_named_relative_to_the_working_directory(tmp_path):
    (tmp_path / "nspkg").mkdir()
    (tmp_path / "nspkg" / "tool.py").write_text("def run():\n    return 1\n")
    result = dump(os.path.join("nspkg", "tool.py"), "--hook", "nspkg.tool:run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _hooked(result.stdout) == ["run (function, line 1)"]


def test_a_file_in_a_package_is_not_known_by_its_bare_name(tmp_path):
    path = _package(tmp_path)
    result = dump(path, "--hook", "calc:square", cwd=tmp_path)
    assert result.returncode == 2
    assert "calc:square" in result.stderr and "mylib.calc" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stdout == ""


def test_a_target_that_matches_nothing_is_an_error_not_every_function(tmp_path):
    path = _package(tmp_path)
    for target in ("other:square", "mylib.calc:nothing_like_this"):
        result = dump(path, "--hook", target, cwd=tmp_path)
        assert result.returncode == 2, result.stdout
        assert target in result.stderr and len(result.stderr.strip().splitlines()) == 1
        assert "_hookwise_site_" not in result.stdout
    result = dump("mylib.calc", "--hook", "mylib.calc:nothing", cwd=tmp_path)
    assert result.returncode == 2 and "matched no function" in result.stderr
    # without any target, every function is still the documented default
    result = dump(path, cwd=tmp_path)
    assert result.returncode == 0 and len(_hooked(result.stdout)) == 2


def test_a_config_whose_targets_name_another_module_is_an_error(tmp_path):
    path = _package(tmp_path)
    (tmp_path / "hookwise.toml").write_text('hooks = ["other:*"]\n')
    result = dump(path, cwd=tmp_path)
    assert result.returncode == 2 and "other:*" in result.stderr


def test_diff_when_the_last_function_is_hooked_keeps_lines_apart_and_ends_with_a_newline(tmp_path):
    path = _package(tmp_path)
    result = dump(path, "--hook", "mylib.calc:square", "--diff", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n")
    lines = result.stdout.splitlines()
    assert "-    return n * n" in lines
    assert not any("return n * n" in line and "_hookwise" in line and line.startswith("-") for line in lines)
    assert "\\ No newline at end of file" not in result.stdout
    removed = [line for line in lines if line.startswith("-") and not line.startswith("---")]
    assert removed == ["-    return n * n"]


def test_diff_source_is_a_patch_of_the_real_file_that_leaves_comments_and_blank_lines_alone(tmp_path):
    path = _package(tmp_path)
    result = dump(path, "--hook", "mylib.calc:square", "--diff-source", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"--- {path}" in lines and f"+++ {path} (hookwise)" in lines
    removed = [line for line in lines if line.startswith("-") and not line.startswith("---")]
    added = [line for line in lines if line.startswith("+") and not line.startswith("+++")]
    assert removed == ["-    return n * n"]
    assert "+    _hookwise_call = _hookwise_site_0.on and _hookwise_site_0.start(n)" in added
    assert any(line.startswith("+        return (_hookwise_result := ") and "n * n" in line for line in added)
    assert not any("#" in line for line in removed + added)  # the comments are unchanged context or absent
    assert "@@ -7,4 +7," in result.stdout  # hunks are numbered by the real file's lines (3 lines of context)
    # applying the patch to the real file gives a file that parses
    patched = _apply(open(tmp_path / path).read().splitlines(), lines)
    compile("\n".join(patched), "<patched>", "exec")
    assert "# calc: a comment that is not code" in patched and "    # no hook here" in patched


def test_diff_source_with_a_hooked_method_and_decorators(tmp_path):
    (tmp_path / "shapes.py").write_text(
        "import functools\n"
        "class Box:\n"
        "    # sizes\n"
        "    @functools.lru_cache\n"
        "    def area(self, w, h):  # trailing comment\n"
        "        return w * h\n"
        "    def keep(self):\n"
        "        return 0  # unchanged\n"
    )
    result = dump("shapes.py", "--hook", "shapes:Box.area", "--diff-source", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    patched = _apply(open(tmp_path / "shapes.py").read().splitlines(), result.stdout.splitlines())
    text = "\n".join(patched)
    compile(text, "<patched>", "exec")
    assert "        return 0  # unchanged" in patched and "    # sizes" in patched
    assert "    @functools.lru_cache" in patched and text.count("_hookwise_site_0.start(self, w, h)") == 1


def _apply(original, diff_lines):
    """Apply a unified diff (no fuzz) to a list of lines."""
    out, position = [], 0
    for line in diff_lines:
        if line.startswith("@@"):
            start = int(line.split()[1][1:].split(",")[0])
            out.extend(original[position:start - 1])
            position = start - 1
        elif line.startswith(("---", "+++", "#")):
            continue
        elif line.startswith("-"):
            assert original[position] == line[1:]
            position += 1
        elif line.startswith("+"):
            out.append(line[1:])
        elif line.startswith(" "):
            assert original[position] == line[1:]
            out.append(line[1:])
            position += 1
    out.extend(original[position:])
    return out
