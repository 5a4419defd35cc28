"""``--preset NAME``: named sets of targets, and the SQL statements of sqlite3 as they read.

Fresh processes through the driver, on a real sqlite3 database file, in both
import orders (sqlite3 imported by the program, or already by a listener
module loaded before the hooks exist).
"""

import json
import os

import pytest

from helpers import clean_env, read_jsonl, run_driver, run_python
from hookwise import presets
from hookwise.config import build_settings
from hookwise.semantics import STATEMENT_LIMIT

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)

SHOP = """\
import sqlite3

connection = sqlite3.connect("shop.db")
connection.execute("create table users (id integer, name text, password text)")
connection.executemany("insert into users values (?, ?, ?)", [(1, "alice", "pw1"), (2, "bob", "pw2")])
cursor = connection.cursor()
cursor.execute("select name from users where id = :id", {"id": 2, "password": "pw2"})
print(cursor.fetchall())
connection.execute("update users set name = upper(name)")
connection.executescript("create index by_name on users (name);\\n  select   1;")
print(connection.execute("select count(*) from users").fetchone(), isinstance(connection, sqlite3.Connection))
connection.close()
"""

EARLY = "import sqlite3\n\nclass Nothing:\n    def end(self, call, result):\n        pass\n"

STATEMENTS = [
    ("sqlite3:Cursor.execute", "create table users (id integer, name text, password text)", None, None),
    ("sqlite3:Cursor.executemany", "insert into users values (?, ?, ?)", "[(1, 'alice', 'pw1'), (2, 'bob', 'pw2')]", 2),
    ("sqlite3:Cursor.execute", "select name from users where id = :id", "{'id': 2, 'password': '***'}", None),
    ("sqlite3:Cursor.execute", "update users set name = upper(name)", None, 2),
    ("sqlite3:Cursor.executescript", "create index by_name on users (name);\n  select   1;", None, None),
    ("sqlite3:Cursor.execute", "select count(*) from users", None, None),
]


def _run(tmp_path, *args, order="imported-after-install"):
    (tmp_path / "shop.py").write_text(SHOP)
    (tmp_path / "early.py").write_text(EARLY)
    extra = ["--listener", "early:Nothing"] if order == "imported-before-install" else []
    return run_driver([*args, *extra, "shop.py"], cwd=tmp_path, env=clean_env(PYTHONPATH=str(tmp_path)))


@pytest.mark.parametrize("order", ["imported-after-install", "imported-before-install"])
def test_the_sql_preset_reports_every_statement_once_with_its_database_params_and_rows(tmp_path, order):
    result = _run(tmp_path, "--preset", "sql", "--strict", "--listener", "jsonl=events.jsonl", order=order)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[('bob',)]\n(2,) True\n"
    events = read_jsonl(tmp_path / "events.jsonl")
    starts = [event for event in events if event["event"] == "start"]
    database = "shop.db"
    assert [(event["target"], event["sql"]["statement"], event["sql"]["params"], event["sql"]["system"],
             event["sql"]["database"]) for event in starts] == [
        (target, statement, params, "sqlite", database) for target, statement, params, _ in STATEMENTS]
    ends = {event["call_id"]: event for event in events if event["event"] == "end"}
    assert [ends[event["call_id"]].get("sql", {}).get("rows") for event in starts] == [
        rows for *_, rows in STATEMENTS]
    # conn.execute and cursor.execute alike name the program's line
    assert [event["caller"]["line"] for event in starts] == [4, 5, 7, 9, 10, 11]


def test_the_console_shows_each_statement_on_one_line(tmp_path):
    result = _run(tmp_path, "--preset", "sql")
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert ("hookwise sql #2 insert into users values (?, ?, ?) params=[(1, 'alice', 'pw1'), (2, 'bob', 'pw2')] "
            "(sqlite shop.db) [MainThread] from shop.py:5 in <module>") in lines
    assert "hookwise sql #5 create index by_name on users (name); select 1; (sqlite shop.db) [MainThread] " \
           "from shop.py:10 in <module>" in lines
    assert any(line.startswith("hookwise end   #2 sql -> 2 rows (") for line in lines), lines
    assert any(line.startswith("hookwise end   #1 sql (") for line in lines), lines


def test_chrome_html_otel_and_a_converted_recording_carry_the_statement(tmp_path):
    result = _run(tmp_path, "--preset", "sql", "--listener", "chrome=trace.json", "--listener", "html=report.html",
                  "--listener", "record=rec.bin", "--listener", "jsonl=live.jsonl")
    assert result.returncode == 0, result.stderr
    trace = json.loads((tmp_path / "trace.json").read_text())
    sql = [event["args"]["sql"] for event in trace if event.get("ph") == "X"]
    assert [(fields["statement"], fields.get("rows")) for fields in sql] == [
        (statement, rows) for _, statement, _, rows in STATEMENTS]
    assert sql[1] == {"system": "sqlite", "database": "shop.db", "statement": STATEMENTS[1][1],
                      "params": STATEMENTS[1][2], "rows": 2}
    assert "update users set name = upper(name)" in (tmp_path / "report.html").read_text()
    converted = run_python(["-m", "hookwise.convert", "rec.bin", "--to", "jsonl=conv.jsonl", "--to", "chrome=conv.json"],
                           cwd=tmp_path, env=clean_env(PYTHONPATH=ROOT))
    assert converted.returncode == 0, converted.stderr

    def without_time(path):
        return [{key: value for key, value in event.items() if key != "ts_ns"} for event in read_jsonl(path)]

    assert without_time(tmp_path / "conv.jsonl") == without_time(tmp_path / "live.jsonl")
    replayed = json.loads((tmp_path / "conv.json").read_text())
    assert [event["args"]["sql"] for event in replayed if event.get("ph") == "X"] == sql


def test_otel_spans_follow_the_database_semantic_conventions(tmp_path):
    (tmp_path / "shop.py").write_text(SHOP)
    result = run_driver(["--preset", "sql", "--listener", "otel_memory_listener:MemoryOtel=spans.json", "shop.py"],
                        cwd=tmp_path, env=clean_env(PYTHONPATH=TESTS))
    assert result.returncode == 0, result.stderr
    spans = sorted(json.loads((tmp_path / "spans.json").read_text()), key=lambda span: span["start_ns"])
    attributes = [span["attributes"] for span in spans]
    assert [(a["db.system"], a["db.namespace"], a["db.query.text"]) for a in attributes] == [
        ("sqlite", "shop.db", statement) for _, statement, _, _ in STATEMENTS]
    assert attributes[1]["hookwise.db.query.parameters"] == STATEMENTS[1][2]
    assert attributes[1]["db.response.affected_rows"] == 2 and "db.response.affected_rows" not in attributes[0]


def test_a_long_statement_keeps_its_own_bound_and_a_plain_hook_renders_it_too(tmp_path):
    # --hook names the same method: the statement reads as SQL whichever way it was asked for
    long = "select " + ", ".join(f"{index} as c{index}" for index in range(600))
    (tmp_path / "long.py").write_text(f"import sqlite3\nsqlite3.connect(':memory:').execute({long!r})\n")
    result = run_driver(["--hook", "sqlite3:Cursor.execute", "--repr-limit", "40", "--listener", "jsonl=e.jsonl",
                         "long.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    start = read_jsonl(tmp_path / "e.jsonl")[0]
    assert len(long) > STATEMENT_LIMIT
    assert start["sql"]["statement"] == long[: STATEMENT_LIMIT - 3] + "..."
    assert start["sql"]["database"] == ":memory:"
    assert len(start["args"][1]) == 40  # the argument itself stays bounded by --repr-limit


def test_an_unknown_preset_stops_before_the_program(tmp_path):
    (tmp_path / "prog.py").write_text("print('ran')\n")
    result = run_driver(["--preset", "sql", "--preset", "everything", "prog.py"], cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "hookwise: error: unknown preset 'everything' (known presets: commands, files, code, sql, http, deserialization, "
        "network, web, security)"]


def test_presets_of_packages_not_installed_add_nothing_and_say_nothing(tmp_path):
    # yaml (PyYAML) is not a test dependency: its targets in the preset stay silent, even with --strict
    (tmp_path / "prog.py").write_text(
        "import pickle, marshal\nprint(pickle.loads(pickle.dumps([1])), marshal.loads(marshal.dumps(2)))\n")
    result = run_driver(["--preset", "deserialization", "--strict", "--listener", "jsonl=e.jsonl", "prog.py"],
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[1] 2\n" and result.stderr == ""
    assert [event["target"] for event in read_jsonl(tmp_path / "e.jsonl") if event["event"] == "start"] == [
        "pickle:loads", "marshal:loads"]


def test_a_pickle_that_imports_a_callable_is_seen_by_the_deserialization_preset(tmp_path):
    (tmp_path / "prog.py").write_text(
        "import pickle, collections\n"
        "data = pickle.dumps(collections.OrderedDict(a=1))\n"
        "print(pickle.loads(data))\n")
    result = run_driver(["--preset", "deserialization", "--listener", "jsonl=e.jsonl", "prog.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    starts = [event for event in read_jsonl(tmp_path / "e.jsonl") if event["event"] == "start"]
    assert [event["target"] for event in starts] == ["pickle:loads", "audit:pickle.find_class"]
    assert starts[1]["args"] == ["'collections'", "'OrderedDict'"]


def test_the_config_file_names_presets_and_the_command_line_adds_to_them(tmp_path):
    (tmp_path / "hookwise.toml").write_text('presets = ["sql"]\n')
    settings = build_settings(cwd=str(tmp_path), cli_presets=["network"])
    texts = [target.text for target in settings.targets]
    assert texts == list(presets.SQL) + list(presets.NETWORK)
    assert all(target.quiet for target in settings.targets) and not settings.default_targets
    # what a child process gets: the same targets, still quiet and still from their preset
    from hookwise.config import settings_from_text

    child = settings_from_text(settings.for_children())
    assert [(t.text, t.origin, t.quiet) for t in child.targets] == [
        (t.text, t.origin, t.quiet) for t in settings.targets]


def test_the_settings_children_get_are_compact_and_refused_when_damaged(tmp_path):
    # the environment is read whole by programs (requests looks for proxies in every variable on every
    # request): what hookwise keeps there for its children stays small, whatever the presets add
    from hookwise.config import ConfigError, settings_from_text

    settings = build_settings(cwd=str(tmp_path), cli_presets=["security", "web"], cli_guard="block",
                              cli_listeners=["jsonl=events.jsonl"])
    text = settings.for_children()
    assert len(list(settings.targets)) > 80 and len(text) < 1600, len(text)
    assert text.isascii() and text.isprintable() and " " not in text
    child = settings_from_text(text)
    assert [(t.text, t.origin, t.quiet, t.private) for t in child.targets] == [
        (t.text, t.origin, t.quiet, t.private) for t in settings.targets]
    assert child.guard.as_data() == settings.guard.as_data()
    assert child.listener_specs == [f"jsonl={os.path.abspath('events.jsonl')}"]
    with pytest.raises(ConfigError, match="cannot be read"):
        settings_from_text(text[:-8])


def test_a_hook_and_a_preset_together_and_the_default_set_is_the_three_first_presets(tmp_path):
    settings = build_settings(cli_hooks=["sqlite3:Cursor.execute", "json:loads"], cli_presets=["sql"],
                              cwd=str(tmp_path))
    assert [target.text for target in settings.targets] == ["sqlite3:Cursor.execute", "json:loads",
                                                             *presets.SQL[1:]]
    default = build_settings(cwd=str(tmp_path))
    assert default.default_targets
    assert [target.text for target in default.targets] == presets.targets_of(("commands", "files", "code"))
    assert {"importlib:import_module", "marshal:loads"} <= {target.text for target in default.targets}
    assert presets.targets_of(("security",)) == presets.targets_of(
        ("commands", "files", "code", "sql", "http", "deserialization", "network"))
    assert presets.targets_of(("web",)) == ["web:request"]
    assert "web:request" not in presets.targets_of(("security",))  # requests are not a sink: named on their own
