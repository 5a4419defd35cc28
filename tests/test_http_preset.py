"""``--preset http``: every outgoing request of urllib.request, urllib3 (so requests) and httpx
(sync and async), once each, with method, redacted URL and status, in every output.

A real ``http.server`` on 127.0.0.1 answers; fresh processes through the driver, in
both import orders (the clients imported by the program, or by a listener module
loaded before the hooks exist)."""

import json
import os

import pytest

from helpers import clean_env, read_jsonl, run_driver, run_python

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)

CLIENTS = """\
import asyncio, threading, urllib.request, urllib.error
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx, requests, urllib3


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello"
        self.send_response(404 if self.path.startswith("/missing") else 200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_address[1]}"

print(urllib.request.urlopen(f"{base}/a?token=s1&q=1", timeout=10).status)
print(urllib.request.urlopen(urllib.request.Request(f"{base}/b", data=b"x=1"), timeout=10).status)
try:
    urllib.request.urlopen(f"{base}/missing", timeout=10)
except urllib.error.HTTPError as exc:
    print("error", exc.code)
print(requests.get(f"{base}/c", params={"api_key": "k2"}, timeout=10).status_code)
print(urllib3.PoolManager().request("GET", f"{base}/d").status)
with httpx.Client() as client:
    print(client.get(f"{base}/e?password=p3").status_code)


async def main():
    async with httpx.AsyncClient() as client:
        return (await client.get(f"{base}/f")).status_code


print(asyncio.run(main()))
import http.client  # the program's own http.client request: reported; urllib's, above, only once
connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
connection.request("GET", "/g?session=s4")
print(connection.getresponse().status)
server.shutdown()
"""

EARLY = "import urllib.request, requests, httpx\n\nclass Nothing:\n    def end(self, call, result):\n        pass\n"

STDOUT = "200\n200\nerror 404\n200\n200\n200\n200\n200\n"

# (target, method, path and query, status, the program's line)
REQUESTS = [
    ("urllib.request:OpenerDirector.open", "GET", "/a?token=***&q=1", 200, 25),
    ("urllib.request:OpenerDirector.open", "POST", "/b", 200, 26),
    ("urllib.request:OpenerDirector.open", "GET", "/missing", 404, 28),
    ("urllib3.connectionpool:HTTPConnectionPool.urlopen", "GET", "/c?api_key=***", 200, 31),
    ("urllib3.connectionpool:HTTPConnectionPool.urlopen", "GET", "/d", 200, 32),
    ("httpx._client:Client.send", "GET", "/e?password=***", 200, 34),
    ("httpx._client:AsyncClient.send", "GET", "/f", 200, 39),
    ("http.client:HTTPConnection.request", "GET", "/g?session=***", None, 45),  # the answer comes from getresponse()
]


def _run(tmp_path, *args, order="imported-after-install"):
    (tmp_path / "clients.py").write_text(CLIENTS)
    (tmp_path / "early.py").write_text(EARLY)
    extra = ["--listener", "early:Nothing"] if order == "imported-before-install" else []
    result = run_driver([*args, *extra, "clients.py"], cwd=tmp_path, env=clean_env(PYTHONPATH=f"{tmp_path}:{TESTS}"))
    assert result.returncode == 0, result.stderr
    assert result.stdout == STDOUT
    return result


@pytest.mark.parametrize("order", ["imported-after-install", "imported-before-install"])
def test_every_request_is_reported_once_with_method_url_and_status(tmp_path, order):
    _run(tmp_path, "--preset", "http", "--strict", "--listener", "jsonl=events.jsonl", order=order)
    events = read_jsonl(tmp_path / "events.jsonl")
    starts = [event for event in events if event["event"] == "start"]
    port = starts[0]["http"]["url"].split(":")[2].split("/")[0]
    assert [(event["target"], event["http"]["method"], event["http"]["url"]) for event in starts] == [
        (target, method, f"http://127.0.0.1:{port}{path}") for target, method, path, _, _ in REQUESTS]
    outcomes = {event["call_id"]: event for event in events if event["event"] != "start"}
    assert [(outcomes[event["call_id"]]["event"], outcomes[event["call_id"]].get("response", {}).get("status"))
            for event in starts] == [("error" if status == 404 else "end", status) for *_, status, _ in REQUESTS]
    # each call names the program's own line, whichever library made it
    assert [event["app_caller"]["line"] for event in starts] == [line for *_, line in REQUESTS]
    assert starts[-2]["task"]  # httpx's async client inside asyncio.run


def test_the_console_reads_like_a_request_log(tmp_path):
    result = _run(tmp_path, "--preset", "http")
    lines = result.stderr.splitlines()
    heads = [line.split(" [")[0] for line in lines if line.startswith("hookwise http")]
    assert [head.split(" ", 3)[3].replace(head.split("/")[2], "HOST") for head in heads] == [
        f"{method} http://HOST{path}" for _, method, path, _, _ in REQUESTS]
    assert sum(line.startswith("hookwise end   #") and " http -> 200 (" in line for line in lines) == 6
    assert any(line.startswith("hookwise error #3 http -> 404 !! HTTPError: HTTP Error 404: Not Found (")
               for line in lines), lines


def test_chrome_otel_and_a_converted_recording_carry_the_request(tmp_path):
    _run(tmp_path, "--preset", "http", "--listener", "chrome=trace.json", "--listener", "record=rec.bin",
         "--listener", "jsonl=live.jsonl", "--listener", "otel_memory_listener:MemoryOtel=spans.json")
    trace = json.loads((tmp_path / "trace.json").read_text())
    fields = [event["args"]["http"] for event in trace if event.get("ph") == "X"]
    assert sorted((each["method"], each["url"].split("/", 3)[3], each.get("status") or 0) for each in fields) == sorted(
        (method, path[1:], status or 0) for _, method, path, status, _ in REQUESTS)  # tracks: the task's comes last
    spans = sorted(json.loads((tmp_path / "spans.json").read_text()), key=lambda span: span["start_ns"])
    attributes = [span["attributes"] for span in spans]
    assert [(a["http.request.method"], a["server.address"], a.get("http.response.status_code")) for a in attributes] == [
        (method, "127.0.0.1", status) for _, method, _, status, _ in REQUESTS]  # the 404 too: its HTTPError says it
    assert [span["status"] for span in spans].count("ERROR") == 1
    assert all(a["url.full"].startswith("http://127.0.0.1:") and isinstance(a["server.port"], int) for a in attributes)
    converted = run_python(["-m", "hookwise.convert", "rec.bin", "--to", "jsonl=conv.jsonl"], cwd=tmp_path,
                           env=clean_env(PYTHONPATH=ROOT))
    assert converted.returncode == 0, converted.stderr

    def without_time(path):
        return [{key: value for key, value in event.items() if key != "ts_ns"} for event in read_jsonl(path)]

    assert without_time(tmp_path / "conv.jsonl") == without_time(tmp_path / "live.jsonl")
    # spans made after the fact from the recording say the same
    replayed = run_python(["-m", "hookwise.convert", "rec.bin", "--to", "otel"], cwd=tmp_path,
                          env=clean_env(PYTHONPATH=ROOT, OTEL_TRACES_EXPORTER="console"))
    assert replayed.returncode == 0, replayed.stderr
    spans = [json.loads(line) for line in replayed.stderr.splitlines() if line.startswith("{")]
    spans.sort(key=lambda span: span["start_time"])
    assert [(span["kind"], span["attributes"]["http.request.method"], span["attributes"].get("http.response.status_code"))
            for span in spans] == [("SpanKind.CLIENT", method, status) for _, method, _, status, _ in REQUESTS]
