"""Targets and settings: parsing, the TOML file, discovery, merging with the command line."""

import re
import textwrap

import pytest

from helpers import read_jsonl, run_driver
from hookwise import defaults
from hookwise.config import ConfigError, build_settings
from hookwise.glob import compile_pattern
from hookwise.targets import TargetError, TargetSet, parse_target


@pytest.mark.parametrize(
    "text, module, qualname",
    [
        ("os:system", "os", "system"),
        ("  pkg.mod:Class.method  ", "pkg.mod", "Class.method"),
        ("myapp.*:*", "myapp.*", "*"),
        ("__main__:factory.<locals>.inner", "__main__", "factory.<locals>.inner"),
        ("a?c:[!_]*", "a?c", "[!_]*"),
    ],
)
def test_targets_parse(text, module, qualname):
    target = parse_target(text)
    assert (target.module, target.qualname) == (module, qualname)


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty target"),
        ("os", "exactly one ':'"),
        ("a:b:c", "exactly one ':'"),
        ("os:", "no function after ':'"),
        (":system", "no module before ':'"),
        ("os..path:f", "empty part"),
        ("os:f(x)", "not allowed"),
        ("hookwise:anything", "inside hookwise itself"),
        ("hookwise.cli:main", "inside hookwise itself"),
        ("[abc:x", "malformed pattern in the module: '[' at position 1 has no closing ']'"),
        ("os:[!z-a]ystem", "malformed pattern in the qualname: the range 'z-a' is empty"),
        ("os:sys]tem", "']' at position 4 is outside a '[...]' set"),
        (42, "must be a string"),
    ],
)
def test_bad_targets_say_why_in_one_line(text, reason):
    with pytest.raises(TargetError, match=re.escape(reason)) as info:
        parse_target(text)
    assert "\n" not in str(info.value)


def test_wildcards_match_like_fnmatchcase():
    assert compile_pattern("myapp.*")("myapp.sub.mod")
    assert not compile_pattern("myapp.*")("myapp")
    assert compile_pattern("Invoice.*")("Invoice.Line.describe")
    assert compile_pattern("[a-c]x")("bx") and not compile_pattern("[!a-c]x")("bx")


def test_target_set_answers_the_loaders_questions():
    targets = TargetSet([parse_target("shop.billing:Invoice.*"), parse_target("shop.*:helper"), parse_target("os:system")])
    assert targets.may_hold_targets("shop.billing") and targets.may_hold_targets("shop.inventory")
    assert not targets.may_hold_targets("shop") and not targets.may_hold_targets("json")
    select = targets.selector(("shop.billing",))
    assert select("Invoice.total") and select("helper") and not select("untouched")
    assert targets.selector(("json",)) is None
    assert not targets.may_hold_targets("hookwise.runtime")  # even '*' never reaches hookwise itself
    assert not TargetSet([parse_target("*:*")]).may_hold_targets("hookwise.runtime")


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def test_a_config_file_with_hooks_and_per_target_listeners(tmp_path):
    config = write(
        tmp_path / "custom.toml",
        """
        hooks = ["os:system", { target = "json:dumps", listeners = ["jsonl=out.jsonl"] }]
        listeners = ["console"]
        """,
    )
    settings = build_settings(["shop:*"], ["jsonl=x.jsonl"], str(config), cwd=str(tmp_path))
    assert [t.text for t in settings.targets] == ["os:system", "json:dumps", "shop:*"]
    assert settings.listener_specs == ["console", "jsonl=x.jsonl"]
    assert [t.listeners for t in settings.targets] == [(), ("jsonl=out.jsonl",), ()]
    assert not settings.default_targets


def test_every_key_of_the_config_file_can_be_set(tmp_path):
    config = write(
        tmp_path / "all.toml",
        """
        hooks = ["os:system"]
        listeners = ["console"]
        redact = ["pin"]
        repr_limit = 50
        follow_children = false
        user_reprs = true
        """,
    )
    settings = build_settings(config_path=str(config), cwd=str(tmp_path))
    assert (settings.redact, settings.repr_limit, settings.follow_children, settings.user_reprs) == (
        ("pin",), 50, False, True)


def test_hookwise_toml_then_pyproject_are_discovered(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.hookwise]\nhooks = ["from_pyproject:*"]\n')
    assert [t.text for t in build_settings(cwd=str(tmp_path)).targets] == ["from_pyproject:*"]
    write(tmp_path / "hookwise.toml", 'hooks = ["from_hookwise_toml:*"]\n')
    assert [t.text for t in build_settings(cwd=str(tmp_path)).targets] == ["from_hookwise_toml:*"]


def test_a_broken_pyproject_that_does_not_concern_hookwise_is_ignored(tmp_path):
    write(tmp_path / "pyproject.toml", "[project\nname = 'hookwise' broken")
    settings = build_settings(cwd=str(tmp_path))
    assert settings.default_targets
    assert [t.text for t in settings.targets] == list(defaults.DEFAULT_TARGETS)
    assert settings.listener_specs == ["console"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("hooks = [", "is not valid TOML"),
        ("hookz = []", "unknown key 'hookz'"),
        ("hooks = 'os:system'", "'hooks' must be"),
        ("hooks = ['os:']", "has no function after ':'"),
        ("hooks = [{ target = 'os:system', color = 'red' }]", "unknown key 'color'"),
        ("hooks = [{ listeners = [] }]", "needs a 'target'"),
        ("hooks = [3]", "must be a target string or a table"),
        ("listeners = [1]", "must be a list of strings"),
        ("repr_limit = true", "'repr_limit' must be"),
        ("follow_children = 'no'", "'follow_children' must be true or false"),
        ("presets = ['sql', 'everything']", "unknown preset 'everything' \\(known presets: commands, files, code,"),
        ("presets = 'sql'", "'presets' must be a list of preset names"),
    ],
)
def test_config_errors(tmp_path, content, message):
    config = write(tmp_path / "bad.toml", content)
    with pytest.raises(ConfigError, match=message) as info:
        build_settings(config_path=str(config), cwd=str(tmp_path))
    assert "\n" not in str(info.value) and "bad.toml" in str(info.value)


def test_a_missing_explicit_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        build_settings(config_path=str(tmp_path / "nope.toml"), cwd=str(tmp_path))


def test_the_driver_reads_the_config_and_adds_command_line_hooks(tmp_path):
    write(tmp_path / "hookwise.toml", 'hooks = ["__main__:first"]\nlisteners = ["jsonl=events.jsonl"]\n')
    write(tmp_path / "app.py", "def first(): return 1\ndef second(): return 2\nfirst(); second()\n")
    result = run_driver(["--hook", "__main__:second", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert [e["target"] for e in read_jsonl(tmp_path / "events.jsonl") if e["event"] == "start"] == [
        "__main__:first", "__main__:second"
    ]
    assert result.stderr == ""  # the file named a listener, so console is not added


def test_a_config_syntax_error_stops_the_driver_before_the_program(tmp_path):
    write(tmp_path / "hookwise.toml", "hooks = [\n")
    write(tmp_path / "app.py", "print('ran')\n")
    result = run_driver(["app.py"], cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("hookwise: error: config file") and len(result.stderr.splitlines()) == 1
