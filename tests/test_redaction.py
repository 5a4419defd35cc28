"""Redaction by content: URL and DSN credentials, secret-named query fields, a WSGI environ's
process environment. Units on ``Render``, then a real wsgiref server through the driver,
whose every output (live and converted) must not hold the secrets."""

import json
import os

from helpers import clean_env, run_driver, run_python
from hookwise.render import Render

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_credentials_in_urls_and_dsns_are_hidden_and_the_rest_is_kept():
    render = Render(repr_limit=500)
    assert render.value("postgresql://app:hunter2@db:5432/shop") == "'postgresql://app:***@db:5432/shop'"
    assert render.value("https://bob:s3cret@example.com/a?b=1") == "'https://bob:***@example.com/a?b=1'"
    assert render.value("mysql+pymysql://root:pw@127.0.0.1/x") == "'mysql+pymysql://root:***@127.0.0.1/x'"
    assert render.value("redis://:only-a-password@cache/0") == "'redis://:***@cache/0'"
    # no password, or no credentials at all: unchanged
    assert render.value("ssh://git@github.com/x.git") == "'ssh://git@github.com/x.git'"
    assert render.value("https://example.com/user@host") == "'https://example.com/user@host'"


def test_secret_named_query_and_form_fields_are_hidden():
    render = Render(repr_limit=500)
    assert render.value("/login?user=bob&token=abc123&next=/home") == "'/login?user=bob&token=***&next=/home'"
    assert render.value("api_key=zzz&q=shoes") == "'api_key=***&q=shoes'"
    assert render.value(b"password=pw&user=bob") == "b'password=***&user=bob'"
    assert render.value(bytearray(b"session=s1")) == "bytearray(b'session=***')"
    assert render.value(["x", ("https://u:p@h/?Authorization=Basic",)]) == "['x', ('https://u:***@h/?Authorization=***',)]"
    # names that are not secrets, an empty value, and text that only looks alike stay
    assert render.value("a=1&b=2&token=") == "'a=1&b=2&token='"
    assert render.value("x == 'token=1'") == "\"x == 'token=***'\""
    assert render.value("where password='pw' and a=1") == "\"where password='***' and a=1\""
    assert render.value("token = spaced") == "'token = spaced'"


def test_a_secret_straddling_the_cut_is_hidden_before_the_value_is_cut():
    render = Render(repr_limit=30)
    shown = render.value("postgresql://application:hunter2hunter2@db/shop")
    assert "hunter" not in shown and shown.endswith("...")


def test_exception_messages_are_redacted_by_content_too():
    render = Render(repr_limit=100)
    exc = ConnectionError("cannot reach postgresql://app:hunter2@db/shop?sslpassword=x")
    assert render.exception_text(exc) == "cannot reach postgresql://app:***@db/shop?sslpassword=***"
    assert "hunter2" not in render.value(exc)


def test_an_empty_redact_list_turns_content_redaction_off_as_well():
    render = Render(repr_limit=500, redact=())
    assert render.value("postgresql://app:hunter2@db/shop") == "'postgresql://app:hunter2@db/shop'"
    assert render.value("?token=abc") == "'?token=abc'"


def test_a_wsgi_environ_never_shows_the_process_environment():
    environ = {"DATABASE_URL": "postgresql://app:hunter2@db/shop", "STRIPE_KEY": "sk_live_1", "PATH": "/bin",
               "wsgi.version": (1, 0), "REQUEST_METHOD": "GET", "PATH_INFO": "/user", "QUERY_STRING": "token=t1",
               "HTTP_AUTHORIZATION": "Bearer b1", "HTTP_COOKIE": "session=c1", "HTTP_USER_AGENT": "curl",
               "gunicorn.socket": None}
    shown = Render(repr_limit=2000).value(environ)
    for secret in ("hunter2", "sk_live_1", "DATABASE_URL", "STRIPE_KEY", "'PATH'", "t1", "b1", "c1"):
        assert secret not in shown, (secret, shown)
    for kept in ("'REQUEST_METHOD': 'GET'", "'PATH_INFO': '/user'", "'HTTP_USER_AGENT': 'curl'", "'wsgi.version'",
                 "'gunicorn.socket': None", "'QUERY_STRING': 'token=***'", "'HTTP_AUTHORIZATION': '***'"):
        assert kept in shown, (kept, shown)
    # a plain dict with the same keys but no WSGI marker is shown whole (redacted by name and content only)
    plain = {"PATH": "/bin", "DATABASE_URL": "postgresql://app:hunter2@db/shop"}
    assert Render().value(plain) == "{'PATH': '/bin', 'DATABASE_URL': 'postgresql://app:***@db/shop'}"


SERVER = """\
import os, threading, urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [environ["QUERY_STRING"].encode()]


def fetch(url, authorization):
    # the URL as a program may log or pass it, credentials included; urllib takes them apart
    request = urllib.request.Request(url.replace("shop:apipass99@", ""), headers={"Authorization": authorization})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
server.timeout = 10  # one request, and never a hung test
worker = threading.Thread(target=server.handle_request, daemon=True)
worker.start()
port = server.server_address[1]
print(fetch(f"http://shop:apipass99@127.0.0.1:{port}/user?name=bob&token=tok777", "Bearer bear555"))
worker.join(10)
server.server_close()
"""

SECRETS = ("dbpass42", "sk_live_xyz", "apipass99", "tok777", "bear555")


def test_a_real_wsgiref_request_leaks_no_secret_into_any_output(tmp_path):
    (tmp_path / "server.py").write_text(SERVER)
    env = clean_env(DATABASE_URL="postgresql://app:dbpass42@db/shop", STRIPE_KEY="sk_live_xyz")
    result = run_driver(["--hook", "__main__:app", "--hook", "__main__:fetch", "--repr-limit", "100000",
                         "--listener", "console", "--listener", "jsonl=e.jsonl", "--listener", "chrome=t.json",
                         "--listener", "html=r.html", "--listener", "record=rec.bin", "server.py"],
                        cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "b'name=bob&token=tok777'\n"  # the program itself sees every real value
    converted = run_python(["-m", "hookwise.convert", "rec.bin", "--to", "jsonl=c.jsonl", "--to", "html=c.html"],
                           cwd=tmp_path, env=clean_env(PYTHONPATH=ROOT))
    assert converted.returncode == 0, converted.stderr
    outputs = {"console": result.stderr}
    for name in ("e.jsonl", "t.json", "r.html", "c.jsonl", "c.html", "rec.bin"):
        outputs[name] = (tmp_path / name).read_bytes().decode("latin-1")
    for name, text in outputs.items():
        for secret in SECRETS:
            assert secret not in text, (secret, name)
    events = [json.loads(line) for line in (tmp_path / "e.jsonl").read_text().splitlines()]
    app_start = next(event for event in events if event["event"] == "start" and event["target"] == "__main__:app")
    environ = app_start["args"][0]
    assert "'QUERY_STRING': 'name=bob&token=***'" in environ and "'HTTP_AUTHORIZATION': '***'" in environ
    assert "DATABASE_URL" not in environ and "'PATH_INFO': '/user'" in environ
    fetch_start = next(event for event in events if event["event"] == "start" and event["target"] == "__main__:fetch")
    assert fetch_start["args"][0].startswith("'http://shop:***@127.0.0.1:")
    assert fetch_start["args"][1] == "***"  # a parameter named authorization
