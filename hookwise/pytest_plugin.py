"""hookwise for a pytest session: ``pytest --hookwise-hook TARGET``.

An installed hookwise registers this plugin with pytest (the ``pytest11`` entry
point). It stays inert, changing nothing, unless the session asks for it: a
``--hookwise-hook``, ``--hookwise-listener`` or ``--hookwise-config`` option,
or the plugin named with ``-p hookwise.pytest_plugin`` (how a checkout loads
it; then the config file and the embedded defaults apply as for the driver).

The hooks are installed when pytest starts, before any conftest or test module
(and so before the code under test) is imported, and removed when the session
ends. Targets and listeners come from ``--hookwise-hook`` /
``--hookwise-listener``, and from the hookwise config (``--hookwise-config``,
else ``hookwise.toml`` or ``[tool.hookwise]`` in the directory pytest runs in),
exactly as for the driver; with no hook named anywhere, the embedded defaults
apply. No listener is added by default: the ``hookwise_calls`` fixture records
what one test does::

    def test_deploy_runs_git(hookwise_calls):
        deploy("v1.2")
        popen = hookwise_calls.of("subprocess:Popen.__init__")
        assert popen[0].arguments["args"] == ["git", "push", "origin", "v1.2"]
        assert hookwise_calls.count("myapp.billing:Invoice.total") == 3

Importing this module loads neither ``loader`` nor ``rewriter``: they are
imported through ``hookwise.engine`` when pytest loads the initial conftests,
and hidden again at once, so the project's own modules of those names stay
importable.

Test modules are hooked like any other (``--hookwise-hook 'test_intro:*'``):
pytest's assertion rewriter loads them, and their targets are served by
attribute replacement right after their code has run. Targets that matched
nothing are listed in the session's summary. hookwise's own lines (and the
console listener's) go to the terminal, not into a test's captured output.
"""

import os

import pytest

from .glob import compile_pattern


def pytest_addoption(parser):
    group = parser.getgroup("hookwise", "hookwise: hooks on the code under test")
    group.addoption("--hookwise-hook", action="append", default=[], metavar="TARGET",
                    help="hook TARGET (module:qualname, wildcards allowed) for the whole session; repeatable")
    group.addoption("--hookwise-listener", action="append", default=[], metavar="SPEC",
                    help="also send every event to SPEC (console, jsonl=PATH, ...); repeatable")
    group.addoption("--hookwise-config", default=None, metavar="PATH",
                    help="hookwise TOML config (default: ./hookwise.toml or [tool.hookwise] in ./pyproject.toml)")


class Recording:
    """The hooked calls made while one test ran, in the order they started."""

    def __init__(self):
        self.calls = []

    def of(self, target):
        """The calls whose target (``module:qualname``) matches ``target`` (wildcards allowed)."""
        matches = compile_pattern(target)
        return [call for call in self.calls if matches(call.target)]

    def count(self, target):
        return len(self.of(target))

    def targets(self):
        return [call.target for call in self.calls]

    def __iter__(self):
        return iter(self.calls)

    def __len__(self):
        return len(self.calls)

    def __repr__(self):
        return f"<hookwise Recording of {len(self.calls)} calls>"


class _SessionRecorder:
    """The listener behind the fixture: it keeps calls only while a test records."""

    def __init__(self):
        self.recording = None

    def start(self, call):
        recording = self.recording
        if recording is not None:
            call.caller  # read now: the callers are only known while the call is reported
            call.app_caller
            call.task
            recording.calls.append(call)


_recorder = _SessionRecorder()
_installation = None


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    global _installation
    from hookwise import report
    from hookwise.config import ConfigError, build_settings
    from hookwise.engine import EngineUnavailable, hide_engine, import_engine
    from hookwise.listeners import ListenerSpecError

    options = early_config.known_args_namespace
    if not _asked_for(options):
        return
    try:
        loader = import_engine()
    except EngineUnavailable as exc:
        raise pytest.UsageError(f"hookwise: {exc}") from None
    try:
        settings = build_settings(options.hookwise_hook, options.hookwise_listener, options.hookwise_config)
        listeners, per_target = loader.install.create_listeners(settings)
        _open_stream_on_the_terminal(early_config, report)
        _installation = loader.Installation(settings).install([_recorder, *listeners], per_target)
    except (ConfigError, ListenerSpecError, loader.PatchError) as exc:
        raise pytest.UsageError(f"hookwise: {exc}") from None
    finally:
        hide_engine()


PLUGIN = "hookwise.pytest_plugin"


def _asked_for(options):
    if options.hookwise_hook or options.hookwise_listener or options.hookwise_config:
        return True
    named = [*(getattr(options, "plugins", None) or []), *os.environ.get("PYTEST_PLUGINS", "").split(",")]
    return PLUGIN in (name.strip() for name in named)


def _open_stream_on_the_terminal(config, report):
    """Take hookwise's duplicate of stderr from the real one, not from pytest's capture of it."""
    capture = config.pluginmanager.getplugin("capturemanager")
    if capture is None:
        report.open_stream()
        return
    with capture.global_and_fixture_disabled():
        report.open_stream()


def pytest_terminal_summary(terminalreporter):
    if _installation is None:
        return
    messages = _installation.unmatched_messages()
    if messages:
        terminalreporter.section("hookwise")
        for message in messages:
            terminalreporter.write_line(f"hookwise: {message}")


def pytest_unconfigure(config):
    global _installation
    if _installation is not None:
        _installation.close_listeners()
        _installation.uninstall()
        _installation = None


@pytest.fixture
def hookwise_calls():
    """A Recording of the hooked calls made during this test."""
    if _installation is None:
        pytest.fail("hookwise is not installed in this session: run pytest with --hookwise-hook TARGET "
                    "(or -p hookwise.pytest_plugin for the config file's targets)")
    recording = Recording()
    _recorder.recording = recording
    try:
        yield recording
    finally:
        _recorder.recording = None
