"""Settings: what to hook and who listens, from the command line and a TOML file.

The file is ``--config PATH``, else ``hookwise.toml`` in the working directory,
else the ``[tool.hookwise]`` table of ``./pyproject.toml``. It is data only:
nothing in it is executed. Command-line hooks and listeners add to the file's.

    hooks = [
        "myapp.billing:Invoice.total",
        "myapp.*:*",
        { target = "os:system", listeners = ["myapp.security:CommandGuard"] },
    ]
    presets = ["sql"]                        # named sets of targets (hookwise.presets)
    listeners = ["console", "jsonl=calls.jsonl"]
    redact = ["password", "token", "pin"]   # replaces the default list of secret names
    repr_limit = 120                         # characters per shown value

With no hook named anywhere, the embedded defaults apply (``hookwise.defaults``);
with no listener named anywhere, ``console``.
"""

import os

from . import defaults, presets
from .render import DEFAULT_REDACT, DEFAULT_REPR_LIMIT, Render
from .targets import TargetError, TargetSet, parse_target


class ConfigError(ValueError):
    """A configuration problem, described in one line."""


# key -> what it holds (for the error message)
KNOWN_KEYS = {
    "hooks": "a list of targets ('module:qualname' or {target = ..., listeners = [...]})",
    "presets": f"a list of preset names ({', '.join(presets.PRESETS)})",
    "listeners": "a list of listener specs",
    "redact": "a list of words; arguments whose names contain one are shown as ***",
    "repr_limit": "a positive number of characters",
    "follow_children": "true or false: Python child processes run with the same hooks",
    "user_reprs": "true or false: show values with __repr__ methods from outside the standard library",
    "record_limit": "a size such as '100M' or '1G' (or bytes): the most a recording file may hold",
    "record_ring": "true or false: a full recording keeps the most recent events instead of stopping",
    "show_stdlib_internals": "true or false: the default set also shows the standard library's own dynamic code "
                             "and descriptor opens",
    "strict": "true or false: a target that cannot be hooked or never matches fails the run",
    "guard": "a table: mode = 'monitor' or 'block', roots = [...], rules = [...] (hookwise.guard)",
}
_KEY_TYPES = {"hooks": list, "presets": list, "listeners": list, "redact": list, "repr_limit": int, "follow_children": bool,
              "user_reprs": bool, "record_limit": (str, int), "record_ring": bool,
              "show_stdlib_internals": bool, "strict": bool, "guard": dict}

# Built-in listeners whose argument is an output path: children get it absolute.
_PATH_LISTENERS = ("jsonl", "chrome", "html", "stats", "record")


class Settings:
    """Everything that decides what hookwise does in a run."""

    def __init__(self, targets, listener_specs, config_path=None, default_targets=False,
                 redact=DEFAULT_REDACT, repr_limit=DEFAULT_REPR_LIMIT, follow_children=True,
                 use_cache=True, in_child=False, user_reprs=False, show_stdlib_internals=False):
        self.targets = TargetSet(targets)
        self.show_stdlib_internals = show_stdlib_internals
        if not show_stdlib_internals:  # the curated sets leave the standard library's own business out
            for target in self.targets:
                if default_targets or target.origin.startswith("preset "):
                    target.hide_stdlib_internals = True
        self.listener_specs = list(listener_specs)
        self.config_path = config_path
        self.default_targets = default_targets  # True when the embedded set is in use
        self.redact = tuple(redact)
        self.repr_limit = repr_limit
        self.user_reprs = user_reprs
        self.render = Render(repr_limit, redact, user_reprs)  # how built-in listeners show values
        self.follow_children = follow_children
        self.use_cache = use_cache
        self.in_child = in_child  # a child process of a hookwise run: outputs are shared, not restarted
        self.record_limit = None  # bytes a recording file may hold (--record-limit), None: no bound
        self.record_ring = False  # a full recording keeps the most recent events (--record-ring)
        self.strict = False  # --strict: a target that cannot be hooked or never matched fails the run
        self.guard = None  # hookwise.guard.GuardSettings under --guard MODE (or a [guard] table)

    def for_children(self):
        """These settings as text for a child process's environment (read by ``settings_from_text``).

        Compressed (``zlib:`` and base64): the text sits in ``os.environ`` for the whole
        run, and programs read the environment whole more often than one would think
        (``requests`` looks for proxies in every variable on every request); the
        presets' targets alone are 6 KB as a literal, about 1 KB compressed.
        """
        def spec(text):
            name, has_arg, arg = text.partition("=")
            if has_arg and arg and name in _PATH_LISTENERS:
                return f"{name}={os.path.abspath(arg)}"
            return text

        return _packed(repr({
            "format": 1,
            "targets": [(t.text, [spec(s) for s in t.listeners], t.origin, t.quiet, t.private) for t in self.targets],
            "listeners": [spec(text) for text in self.listener_specs],
            "redact": list(self.redact),
            "repr_limit": self.repr_limit,
            "use_cache": self.use_cache,
            "default_targets": self.default_targets,
            "user_reprs": self.user_reprs,
            "record_limit": self.record_limit,
            "record_ring": self.record_ring,
            "show_stdlib_internals": self.show_stdlib_internals,
            "strict": self.strict,
            "guard": None if self.guard is None else self.guard.as_data(),
        }))

    def code_key(self):
        """The settings that change generated code, as text for the bytecode cache key."""
        return "\n".join(sorted(target.text for target in self.targets))

    def __repr__(self):
        return f"Settings(targets={[t.text for t in self.targets]}, listeners={self.listener_specs})"


_PACKED = "zlib:"


def _packed(text):
    try:
        import zlib  # an optional module of CPython's build
    except ImportError:
        return text
    import base64

    return _PACKED + base64.b64encode(zlib.compress(text.encode("utf-8"), 9)).decode("ascii")


def _unpacked(text):
    if not text.startswith(_PACKED):
        return text
    import base64
    import zlib

    try:
        return zlib.decompress(base64.b64decode(text[len(_PACKED):], validate=True)).decode("utf-8")
    except (ValueError, zlib.error) as exc:
        raise ConfigError(f"the settings passed by the parent hookwise process cannot be read: {exc}") from None


def settings_from_text(text):
    """Settings a parent hookwise process wrote with ``for_children``.

    The text is parsed as a Python literal only (``ast.literal_eval``): nothing
    in it is executed.
    """
    import ast

    data = ast.literal_eval(_unpacked(text))
    if not isinstance(data, dict) or data.get("format") != 1:
        raise ConfigError("the settings passed by the parent hookwise process are not in a known format")
    targets = []
    for target, listeners, origin, quiet, *private in data["targets"]:
        targets.append(parse_target(target, listeners=listeners, origin=origin, quiet=quiet))
        targets[-1].private = bool(private and private[0])
    settings = Settings(targets, data["listeners"], None, data["default_targets"], data["redact"], data["repr_limit"],
                    follow_children=True, use_cache=data["use_cache"], in_child=True, user_reprs=data["user_reprs"],
                    show_stdlib_internals=data.get("show_stdlib_internals", False))
    settings.record_limit = data.get("record_limit")
    settings.record_ring = data.get("record_ring", False)
    settings.strict = data.get("strict", False)
    if data.get("guard") is not None:
        from .guard import GuardSettings

        settings.guard = GuardSettings(**data["guard"])
    return settings


def build_settings(cli_hooks=(), cli_listeners=(), config_path=None, cwd=None, cli_redact=(), cli_repr_limit=None,
                   cli_follow_children=None, cli_use_cache=True, cli_user_reprs=None, cli_record_limit=None,
                   cli_record_ring=None, cli_show_stdlib_internals=None, cli_strict=None, cli_presets=(),
                   cli_guard=None):
    """Merge the config file (explicit or discovered) with command-line options."""
    path, table = load_config(config_path, cwd)
    targets = []
    for index, entry in enumerate(table.get("hooks", ())):
        targets.append(_target_from_config(entry, index, path))
    for text in cli_hooks:
        try:
            targets.append(parse_target(text))
        except TargetError as exc:
            raise ConfigError(str(exc)) from None
    chosen = list(table.get("presets", ())) + [name for name in cli_presets if name not in table.get("presets", ())]
    named = {target.text for target in targets}
    for name in chosen:
        if name not in presets.PRESETS:
            raise ConfigError(_unknown_preset(name))
        for text in presets.PRESETS[name]:
            if text not in named:  # quiet: a package that is not installed adds nothing and says nothing
                named.add(text)
                targets.append(parse_target(text, origin=f"preset {name}", quiet=True))
    guard = _guard_settings(cli_guard, table, path)
    used_defaults = not targets and guard is None  # a guard alone shows its findings, not the default set
    if guard is not None:  # what the guard needs, heard by it alone unless named by the user too
        for text in presets.targets_of(GUARD_PRESETS):
            if text not in named:
                named.add(text)
                targets.append(parse_target(text, origin="guard", quiet=True))
                targets[-1].private = True
    if used_defaults:
        targets = [parse_target(text, origin="defaults", quiet=True) for text in defaults.DEFAULT_TARGETS]
    listeners = list(table.get("listeners", ())) + list(cli_listeners)
    if not listeners:
        listeners = list(defaults.DEFAULT_LISTENERS)
    redact = list(table.get("redact", DEFAULT_REDACT)) + list(cli_redact)
    repr_limit = cli_repr_limit if cli_repr_limit is not None else table.get("repr_limit", DEFAULT_REPR_LIMIT)
    if not isinstance(repr_limit, int) or isinstance(repr_limit, bool) or repr_limit < 8:
        raise ConfigError(f"repr_limit must be a whole number of characters, at least 8 (got {repr_limit!r})")
    follow = cli_follow_children if cli_follow_children is not None else table.get("follow_children", True)
    user_reprs = cli_user_reprs if cli_user_reprs is not None else table.get("user_reprs", False)
    show = cli_show_stdlib_internals if cli_show_stdlib_internals is not None else table.get(
        "show_stdlib_internals", False)
    settings = Settings(targets, listeners, path, used_defaults, redact, repr_limit, follow, cli_use_cache,
                        user_reprs=user_reprs, show_stdlib_internals=show)
    limit = cli_record_limit if cli_record_limit is not None else table.get("record_limit")
    settings.record_limit = None if limit is None else parse_size(limit)
    ring = cli_record_ring if cli_record_ring is not None else table.get("record_ring", False)
    settings.record_ring = bool(ring)
    settings.strict = bool(cli_strict if cli_strict is not None else table.get("strict", False))
    settings.guard = guard
    return settings


GUARD_PRESETS = ("security", "web")
"""The presets whose targets the guard hears (hookwise.guard)."""


def _guard_settings(cli_guard, table, path):
    if cli_guard is None and "guard" not in table:
        return None  # hookwise.guard (its rules import socket) is imported only for a run that asks for it
    from . import guard

    try:
        return guard.parse(cli_guard, table.get("guard"), where=path or "--guard")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text):
    """Bytes from '100M', '1G', '4096' (K, M, G, T are powers of 1024; a trailing B is allowed)."""
    if isinstance(text, int) and not isinstance(text, bool):
        number, unit = text, ""
    else:
        spelled = str(text).strip().upper().removesuffix("B")
        unit = spelled[-1:] if spelled[-1:] in _UNITS and not spelled[-1:].isdigit() else ""
        digits = spelled[: len(spelled) - len(unit)]
        if not digits.isdigit():
            raise ConfigError(f"record_limit must be a size such as 100M or 1G (got {text!r})")
        number = int(digits)
    size = number * _UNITS[unit]
    if size < 64 * 1024:
        raise ConfigError(f"record_limit must be at least 64K (got {text!r})")
    return size


def load_config(explicit_path=None, cwd=None):
    """(path, table) of the configuration in effect; (None, {}) when there is none."""
    cwd = cwd or os.getcwd()
    if explicit_path is not None:
        # not only regular files: /dev/null (no settings) and a pipe (<(...)) are configs too
        if not os.path.exists(explicit_path):
            raise ConfigError(f"config file {explicit_path!r} does not exist")
        if os.path.isdir(explicit_path):
            raise ConfigError(f"config file {explicit_path!r} is a directory")
        return explicit_path, _validate(_read_toml(explicit_path), explicit_path)
    candidate = os.path.join(cwd, "hookwise.toml")
    if os.path.isfile(candidate):
        return candidate, _validate(_read_toml(candidate), candidate)
    pyproject = os.path.join(cwd, "pyproject.toml")
    if os.path.isfile(pyproject) and _mentions_hookwise(pyproject):
        table = _read_toml(pyproject).get("tool", {}).get("hookwise")
        if table is not None:
            return pyproject, _validate(table, pyproject + " [tool.hookwise]")
    return None, {}


def _mentions_hookwise(path):
    # Parse someone's pyproject.toml only when it has a [tool.hookwise] table:
    # a broken one that does not concern us must not stop their program, and
    # parsing TOML imports modules (typing, re, datetime) that would then have
    # been loaded before the hooks.
    try:
        with open(path, "rb") as handle:
            return b"tool.hookwise" in handle.read()
    except OSError:
        return False


def _read_toml(path):
    toml = _toml_module()
    try:
        with open(path, "rb") as handle:
            return toml.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path!r}: {exc.strerror or exc}") from None
    except toml.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path!r} is not valid TOML: {exc}") from None


def _toml_module():
    try:
        import tomllib

        return tomllib
    except ImportError:
        pass
    try:
        import tomli

        return tomli
    except ImportError:
        raise ConfigError("reading a TOML config on Python 3.10 needs the 'tomli' package (pip install tomli)") from None


def _validate(table, where):
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table of settings")
    for key, value in table.items():
        if key not in KNOWN_KEYS:
            raise ConfigError(f"{where}: unknown key {key!r} (known keys: {', '.join(KNOWN_KEYS)})")
        expected = _KEY_TYPES[key]
        if not isinstance(value, expected) or (isinstance(value, bool) and expected is not bool):  # True is an int
            raise ConfigError(f"{where}: {key!r} must be {KNOWN_KEYS[key]}")
    for key in ("presets", "listeners", "redact"):
        for item in table.get(key, ()):
            if not isinstance(item, str):
                raise ConfigError(f"{where}: {key!r} must be a list of strings, found {item!r}")
    for name in table.get("presets", ()):
        if name not in presets.PRESETS:
            raise ConfigError(f"{where}: {_unknown_preset(name)}")
    return table


def _unknown_preset(name):
    return f"unknown preset {name!r} (known presets: {', '.join(presets.PRESETS)})"


def _target_from_config(entry, index, where):
    try:
        if isinstance(entry, str):
            return parse_target(entry, origin=where)
        if isinstance(entry, dict):
            unknown = set(entry) - {"target", "listeners"}
            if unknown:
                raise ConfigError(
                    f"{where}: hooks[{index}] has unknown key {sorted(unknown)[0]!r} (known: target, listeners)"
                )
            if "target" not in entry:
                raise ConfigError(f"{where}: hooks[{index}] needs a 'target'")
            listeners = entry.get("listeners", [])
            if not isinstance(listeners, list) or not all(isinstance(spec, str) for spec in listeners):
                raise ConfigError(f"{where}: hooks[{index}].listeners must be a list of listener specs")
            return parse_target(entry["target"], listeners=listeners, origin=where)
    except TargetError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    raise ConfigError(f"{where}: hooks[{index}] must be a target string or a table, found {entry!r}")
