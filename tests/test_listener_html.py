"""``--listener html=PATH``: a self-contained report, drawn by a real headless chromium."""

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import browser
from helpers import DRIVER, FIXTURES, clean_env, run_driver
from test_recording import convert

WORKLOAD = os.path.join(FIXTURES, "scripts", "report_workload.py")
DATA = re.compile(r'<script type="application/json" id="hookwise-data">(.*?)</script>', re.S)


def run_workload(tmp_path, mode="normal"):
    return run_driver(["--hook", "__main__:*", "--listener", "html=report.html", WORKLOAD, mode], cwd=tmp_path)


def page_data(path):
    """The calls embedded in the page, as its script reads them."""
    found = DATA.findall(open(path, encoding="utf-8").read())
    assert len(found) == 1
    return json.loads(found[0])


def calls_of(data):
    return [(track, call) for track in data["tracks"] for call in track["calls"]]


def bar_count(dom):
    match = re.search(r'<span id="bar-count" data-bars="(\d+)" data-error-bars="(\d+)">(\d+)</span>', dom)
    assert match, "the page's script did not report the bars it drew"
    drawn, errors, shown = map(int, match.groups())
    assert drawn == shown
    return drawn, errors


def test_chromium_draws_a_bar_per_call_with_the_errors_and_the_stats_table(tmp_path):
    result = run_workload(tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path)) == ["report.html"]  # its recording is gone
    dom = browser.dump_dom(tmp_path / "report.html")
    assert 'data-rendered="yes"' in dom
    assert bar_count(dom) == (22, 2)
    bars = re.findall(r'<div class="bar( [a-z ]+)?" id="call-\d+"', dom)
    assert len(bars) == 22
    assert sum("error" in classes for classes in bars) == 2
    assert sum("suspending" in classes for classes in bars) == 4  # numbers, gather_all and the two fetches
    labels = re.findall(r'<div class="label" title="([^"]*)">', dom)
    assert labels == ["MainThread", "MainThread / task Task-1", "MainThread / task Task-2", "MainThread / task Task-3",
                      "MainThread / generators, coroutines", "loader-1", "loader-2"]
    rows = re.findall(r"<tr><td>(__main__:\w+)</td><td>(\d+)</td><td[^>]*>(\d+)</td>", dom)
    assert dict((target, (int(calls), int(errors))) for target, calls, errors in rows) == {
        "__main__:main": (1, 0), "__main__:load": (2, 0), "__main__:parse": (8, 2), "__main__:checksum": (6, 0),
        "__main__:numbers": (1, 0), "__main__:slow": (1, 0), "__main__:gather_all": (1, 0), "__main__:fetch": (2, 0),
    }
    assert rows[0][0] == "__main__:main"


def test_a_call_shows_its_arguments_and_result_when_picked(tmp_path):
    result = run_workload(tmp_path)
    assert result.returncode == 0, result.stderr
    data = page_data(tmp_path / "report.html")
    failed = next(call for _, call in calls_of(data) if call["error"])
    fine = next(call for _, call in calls_of(data) if call["target"] == "__main__:checksum")
    dom = browser.dump_dom(tmp_path / "report.html", fragment=f"#call-{failed['id']}")
    details = dom[dom.index('<aside id="details">'):dom.index("</aside>")]
    assert "<h2>__main__:parse</h2>" in details
    assert "<dt>record</dt><dd>'bad'</dd>" in details and "<dt>password</dt><dd>***</dd>" in details
    assert '<dt>raised</dt><dd class="error">ValueError: bad record \'bad\'</dd>' in details
    assert f'class="bar error selected" id="call-{failed["id"]}"' in dom
    dom = browser.dump_dom(tmp_path / "report.html", fragment=f"#call-{fine['id']}")
    details = dom[dom.index('<aside id="details">'):dom.index("</aside>")]
    assert "<dt>data</dt><dd>b'" in details and f"<dt>returned</dt><dd>{fine['result']}</dd>" in details


def test_nested_calls_are_drawn_one_row_below_their_caller(tmp_path):
    result = run_workload(tmp_path)
    assert result.returncode == 0, result.stderr
    data = page_data(tmp_path / "report.html")
    for track in data["tracks"]:
        if track["kind"] == "suspended":
            continue
        for call in track["calls"]:
            inside = [other for other in track["calls"] if other is not call and other["start"] <= call["start"]
                      and call["start"] + call["duration"] <= other["start"] + other["duration"]]
            assert call["depth"] == len(inside), (track["name"], call["target"])
            if inside:
                caller = max(inside, key=lambda other: other["depth"])
                assert call["caller"].endswith(" in " + caller["target"].split(":")[1])
    loader = next(track for track in data["tracks"] if track["name"] == "loader-1")
    assert [(call["target"], call["depth"]) for call in loader["calls"]] == [
        ("__main__:load", 0), ("__main__:parse", 1), ("__main__:checksum", 2), ("__main__:parse", 1),
        ("__main__:parse", 1), ("__main__:checksum", 2),
    ]


def test_the_screenshot_shows_a_drawn_page(tmp_path):
    result = run_workload(tmp_path)
    assert result.returncode == 0, result.stderr
    png = browser.screenshot(tmp_path / "report.html", tmp_path / "report.png")
    assert os.path.exists(png)
    assert browser.png_size(png) == browser.WINDOW
    assert os.path.getsize(png) > 30_000  # a blank 1400x900 page compresses to a few kB


def test_the_page_references_nothing_outside_itself(tmp_path):
    result = run_workload(tmp_path)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"\b(src|href|srcset|action)\s*=", page, re.I)
    assert "url(" not in page and "@import" not in page and "<link" not in page and "<iframe" not in page
    assert page.count("<script") == 2 and page.count("</script>") == 2


def test_markup_in_arguments_stays_text(tmp_path):
    # the script's name is shown too, and looks like one of the page's slots
    (tmp_path / "app@@DATA@@.py").write_text(textwrap.dedent(
        """
        def show(text):
            return text
        show("</script><img id=injected src=x onerror=alert(1)><!--")
        """
    ))
    result = run_driver(["--hook", "__main__:show", "--listener", "html=report.html", "app@@DATA@@.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report.html").read_text()
    assert page.count("</script>") == 2 and "<img" not in page and "<!--" not in page
    assert "<title>hookwise report: app@@DATA@@.py (pid " in page
    assert page_data(tmp_path / "report.html")["tracks"][0]["calls"][0]["result"].startswith("'</script><img")
    dom = browser.dump_dom(tmp_path / "report.html", fragment="#call-1")
    assert bar_count(dom) == (1, 0)
    assert 'id="injected"' not in dom
    assert "<dt>text</dt><dd>'&lt;/script&gt;&lt;img id=injected" in dom


def test_a_child_process_writes_its_own_page_beside_the_first(tmp_path):
    (tmp_path / "app.py").write_text(textwrap.dedent(
        """
        import subprocess, sys
        def spawn():
            return subprocess.run([sys.executable, "child.py"], capture_output=True, text=True).stdout.strip()
        print(spawn())
        """
    ))
    (tmp_path / "child.py").write_text("import os\ndef child_work():\n    return 7\nchild_work()\nprint(os.getpid())\n")
    result = run_driver(["--hook", "__main__:*", "--listener", "html=report.html", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    child = int(result.stdout)
    parent_calls = [call["target"] for _, call in calls_of(page_data(tmp_path / "report.html"))]
    child_data = page_data(tmp_path / f"report.{child}.html")
    assert parent_calls == ["__main__:spawn"]
    assert [call["target"] for _, call in calls_of(child_data)] == ["__main__:child_work"]
    assert child_data["pid"] == child
    assert f"<title>hookwise report: child.py (pid {child})</title>" in (tmp_path / f"report.{child}.html").read_text()


@pytest.mark.parametrize("mode, status, exception", [("exit", 3, "SystemExit: 3"), ("crash", 1, "RuntimeError: the program crashed")])
def test_the_report_is_written_when_the_program_exits_or_crashes(tmp_path, mode, status, exception):
    result = run_workload(tmp_path, mode)
    assert result.returncode == status
    data = page_data(tmp_path / "report.html")
    assert len(calls_of(data)) == 22
    main = next(call for _, call in calls_of(data) if call["target"] == "__main__:main")
    assert main["error"] == exception
    assert (tmp_path / "report.html").read_text().rstrip().endswith("</html>")


def test_past_the_limit_calls_are_counted_but_not_drawn(tmp_path):
    (tmp_path / "app.py").write_text("def tick(n):\n    return n\nfor n in range(20_050):\n    tick(n)\n")
    result = run_driver(["--hook", "__main__:tick", "--listener", "html=report.html", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    page = (tmp_path / "report.html").read_text()
    assert len(calls_of(page_data(tmp_path / "report.html"))) == 20_000
    assert "The timeline shows the first 20000 calls; 50 later calls are only counted in the table." in page
    assert re.search(r"<tr><td>__main__:tick</td><td>20050</td>", page)


def test_an_unwritable_path_or_a_planted_symlink_stops_the_driver(tmp_path):
    result = run_driver(["--hook", "__main__:*", "--listener", f"html={tmp_path}", WORKLOAD], cwd=tmp_path)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("hookwise: error: listener 'html': cannot write the output")
    victim = tmp_path / "victim.html"
    victim.write_text("mine")
    os.symlink(victim, tmp_path / "report.html")
    result = run_workload(tmp_path)
    assert result.returncode == 2 and result.stdout == "" and victim.read_text() == "mine"


def _drawn(data):
    """What the page draws, with times from its first call's start (the live page's time 0 is the
    listener's creation, a converted page's the first event)."""
    calls = calls_of(data)
    zero = min(call["start"] for _, call in calls)
    return [(track["name"], track["kind"], track["rows"], call["target"], call["start"] - zero, call["duration"],
             call["duration_text"], call["depth"], call["caller"], call["arguments"], call["result"], call["error"],
             call["meaning"], call["request_id"], call["unfinished"]) for track, call in calls]


def test_a_recording_converted_to_html_makes_the_same_page(tmp_path):
    result = run_driver(["--hook", "__main__:*", "--listener", "html=report.html", "--listener", "record=rec.bin",
                         WORKLOAD], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    done = convert("rec.bin", "--to", "html=converted.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    live, converted = page_data(tmp_path / "report.html"), page_data(tmp_path / "converted.html")
    assert len(calls_of(live)) == 22
    assert _drawn(converted) == _drawn(live)
    table = re.compile(r'<table id="stats">.*?</table>', re.S)
    assert table.findall((tmp_path / "converted.html").read_text()) == table.findall(
        (tmp_path / "report.html").read_text())


LOOP = textwrap.dedent("""
    def work(i, text):
        return i * 2
    def main():
        i = 0
        while True:
            work(i, "x" * (i % 50))
            i += 1
            if i == 30000:
                print("running", flush=True)
    main()
""")


def test_a_killed_process_leaves_its_recording_and_convert_makes_the_page(tmp_path):
    (tmp_path / "loop.py").write_text(LOOP)
    process = subprocess.Popen([sys.executable, DRIVER, "--hook", "__main__:*", "--listener", "html=report.html",
                                "loop.py"], cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "running\n"
        time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    assert (tmp_path / "report.html").read_text() == ""  # the page is made at exit
    done = convert("report.html.rec", "--to", "html=report.html", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    calls = [call for _, call in calls_of(page_data(tmp_path / "report.html"))]
    # the recording holds the first 20,000 calls: main, still running, and the work it called
    assert len(calls) == 20_000
    assert calls[0]["target"] == "__main__:main" and calls[0]["unfinished"]
    assert [call["arguments"] for call in calls[1:3]] == [[["i", "0"], ["text", "''"]], [["i", "1"], ["text", "'x'"]]]
    assert all(call["depth"] == 1 and call["result"] is not None for call in calls[1:])


FAMILY = textwrap.dedent("""
    import os
    def fork():
        pid = os.fork()
        if pid == 0:
            work("in the fork")
            return "child"
        os.waitpid(pid, 0)
        return pid
    def work(what):
        return what.upper()
    def main():
        return fork()
    if main() == "child":
        os._exit(0)  # after main and fork ended in the child too
    print(os.getpid())
""")


def test_a_forked_child_draws_the_calls_it_was_forked_in_ending_there(tmp_path):
    (tmp_path / "family.py").write_text(FAMILY)
    result = run_driver(["--hook", "__main__:*", "--listener", "html=report.html", "family.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (child,) = [name for name in os.listdir(tmp_path) if re.fullmatch(r"report\.\d+\.html", name)]
    assert sorted(os.listdir(tmp_path)) == sorted(["family.py", "report.html", child])  # no recording left
    parent = [(call["target"], call["depth"], call["result"]) for _, call in calls_of(page_data(tmp_path / "report.html"))]
    forked = page_data(tmp_path / child)
    assert parent == [("__main__:main", 0, child.split(".")[1]), ("__main__:fork", 1, child.split(".")[1])]
    assert forked["pid"] == int(child.split(".")[1])
    assert [(call["target"], call["depth"], call["result"], call["unfinished"]) for _, call in calls_of(forked)] == [
        ("__main__:main", 0, "'child'", False), ("__main__:fork", 1, "'child'", False),
        ("__main__:work", 2, "'IN THE FORK'", False)]
