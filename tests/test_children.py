"""Processes: Python children inherit the hooks; fork, exits and signals lose nothing."""

import collections
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from helpers import DRIVER, ROOT, clean_env, read_jsonl, run_driver, run_python

CHILD = """
import os, sys
def child_work(n):
    return n * 3
print("child path clean:", not any("bootstrap" in entry for entry in sys.path), child_work(2))
"""


def write(path, text):
    path.write_text(textwrap.dedent(text))


def by_pid(events):
    pids = collections.defaultdict(list)
    for event in events:
        pids[event["pid"]].append(event)
    return pids


def assert_paired(events):
    """Each start has exactly one end or error (call ids are per process)."""
    starts = collections.Counter((e["pid"], e["call_id"]) for e in events if e["event"] == "start")
    ends = collections.Counter((e["pid"], e["call_id"]) for e in events if e["event"] in ("end", "error"))
    assert starts == ends and set(starts.values()) == {1}


@pytest.mark.parametrize("how", ["subprocess", "os.system", "by name on PATH"])
def test_python_children_run_with_the_same_hooks(tmp_path, how):
    write(tmp_path / "child.py", CHILD)
    launch = {
        "subprocess": "import subprocess; subprocess.run([sys.executable, 'child.py'], check=True)",
        "os.system": "import shlex; assert os.system(shlex.quote(sys.executable) + ' child.py') == 0",
        # as a shebang line or a plain "python child.py" does: argv[0] is a bare name
        "by name on PATH": "import subprocess; subprocess.run([os.path.basename(sys.executable), 'child.py'], "
                           "check=True, env=dict(os.environ, PATH=os.path.dirname(sys.executable)))",
    }[how]
    write(tmp_path / "app.py", f"""
        import os, sys
        def parent_work():
            {launch}
        parent_work()
    """)
    result = run_driver(["--hook", "__main__:parent_work", "--hook", "child:*", "--hook", "__main__:child_work",
                         "--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "child path clean: True 6" in result.stdout
    events = read_jsonl(tmp_path / "events.jsonl")
    pids = by_pid(events)
    assert len(pids) == 2, pids.keys()
    parent, child = sorted(pids.values(), key=lambda group: group[0]["ts_ns"])
    assert {e["target"] for e in parent} == {"__main__:parent_work"}
    # the child's own script is __main__ there: re-run under the driver, it is hooked too
    assert [(e["event"], e["target"]) for e in child] == [("start", "__main__:child_work"), ("end", "__main__:child_work")]
    assert_paired(events)


def test_a_childs_import_path_is_what_python_gives_it(tmp_path):
    # an empty PYTHONPATH entry is the working directory: it must reach the child as it is
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "child.py", "import json, sys\nprint(json.dumps(sys.path[:3]))\n")
    write(tmp_path / "app.py", "import subprocess, sys\nsubprocess.run([sys.executable, 'child.py'], cwd='sub')\n")
    env = clean_env(PYTHONPATH=os.pathsep + "/opt/elsewhere")
    plain = subprocess.run([sys.executable, "app.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    hooked = run_driver(["--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path, env=env)
    assert plain.returncode == hooked.returncode == 0, hooked.stderr
    assert hooked.stdout == plain.stdout
    assert json.loads(plain.stdout)[1:] == [str(tmp_path / "sub"), "/opt/elsewhere"]


def test_children_of_children_and_imported_modules(tmp_path):
    write(tmp_path / "worker.py", "def work(n):\n    return n + 1\n")
    write(tmp_path / "grandchild.py", "import worker\nworker.work(1)\n")
    write(tmp_path / "child.py", "import subprocess, sys, worker\nworker.work(0)\nsubprocess.run([sys.executable, 'grandchild.py'])\n")
    write(tmp_path / "app.py", "import subprocess, sys, worker\nworker.work(-1)\nsubprocess.run([sys.executable, 'child.py'])\n")
    result = run_driver(["--hook", "worker:work", "--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    events = read_jsonl(tmp_path / "events.jsonl")
    assert len(by_pid(events)) == 3
    assert sorted(e["args"][0] for e in events if e["event"] == "start") == ["-1", "0", "1"]
    assert_paired(events)


def test_a_users_own_sitecustomize_still_runs_in_children(tmp_path):
    (tmp_path / "custom").mkdir()
    write(tmp_path / "custom" / "sitecustomize.py", "import builtins\nbuiltins.USER_SITECUSTOMIZE = 'ran'\n")
    write(tmp_path / "child.py", "import worker\nprint(USER_SITECUSTOMIZE, worker.work(1))\n")
    write(tmp_path / "worker.py", "def work(n):\n    return n + 1\n")
    write(tmp_path / "app.py", "import subprocess, sys\nsubprocess.run([sys.executable, 'child.py'], check=True)\n")
    env = clean_env(PYTHONPATH=str(tmp_path / "custom"))
    result = run_driver(["--hook", "worker:work", "--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ran 2"
    assert [e["event"] for e in read_jsonl(tmp_path / "events.jsonl")] == ["start", "end"]


def test_no_follow_children(tmp_path):
    write(tmp_path / "worker.py", "def work(n):\n    return n + 1\n")
    write(tmp_path / "child.py", "import worker, os\nworker.work(1)\nprint('HOOKWISE_SETTINGS' in os.environ)\n")
    write(tmp_path / "app.py", "import subprocess, sys, worker\nworker.work(0)\nsubprocess.run([sys.executable, 'child.py'])\n")
    result = run_driver(["--hook", "worker:work", "--no-follow-children", "--listener", "jsonl=events.jsonl", "app.py"],
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
    assert len(by_pid(read_jsonl(tmp_path / "events.jsonl"))) == 1


MULTIPROCESSING = """
import multiprocessing, os, sys
import worker

def job(n):
    return worker.work(n)

if __name__ == "__main__":
    context = multiprocessing.get_context(sys.argv[1])
    with context.Pool(2) as pool:
        print(sorted(pool.map(job, range(6))))
    process = context.Process(target=job, args=(100,))
    process.start()
    process.join()
    print("exit", process.exitcode)
"""


@pytest.mark.parametrize("main", ["script", "-m"])
@pytest.mark.parametrize("method", ["spawn", "forkserver", "fork"])
def test_multiprocessing_children_report_their_calls(tmp_path, method, main):
    # spawn and forkserver children run the main script again (as __mp_main__): its hooks hold there too
    write(tmp_path / "worker.py", "def work(n):\n    return n * 10\n")
    write(tmp_path / "app.py", MULTIPROCESSING)
    program = ["app.py", method] if main == "script" else ["-m", "app", method]
    result = run_driver(["--hook", "worker:work", "--hook", "__main__:job", "--listener", "jsonl=events.jsonl",
                         *program], cwd=tmp_path, timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["[0, 10, 20, 30, 40, 50]", "exit 0"]
    events = read_jsonl(tmp_path / "events.jsonl")
    starts = [e for e in events if e["event"] == "start" and e["target"] == "worker:work"]
    assert sorted(int(e["args"][0]) for e in starts) == [0, 1, 2, 3, 4, 5, 100]  # each call once: none lost or doubled
    jobs = [e for e in events if e["event"] == "start" and e["target"] == "__main__:job"]
    assert sorted(int(e["args"][0]) for e in jobs) == [0, 1, 2, 3, 4, 5, 100]
    assert_paired(events)
    assert os.getpid() not in {e["pid"] for e in events}
    assert len({e["pid"] for e in events}) >= 2


def test_after_fork_nothing_is_written_twice_or_lost(tmp_path):
    write(tmp_path / "app.py", """
        import os
        def step(label):
            return label
        step("before fork")
        pid = os.fork()
        if pid == 0:
            step("in child")
            os._exit(0)
        os.waitpid(pid, 0)
        step("after fork")
    """)
    result = run_driver(["--hook", "__main__:step", "--listener", "jsonl=events.jsonl", "--listener", "console", "app.py"],
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    events = read_jsonl(tmp_path / "events.jsonl")
    assert sorted(e["args"][0] for e in events if e["event"] == "start") == ["'after fork'", "'before fork'", "'in child'"]
    assert_paired(events)
    assert result.stderr.count("hookwise start") == 3


@pytest.mark.parametrize("ending", ["sigterm", "sigint", "os._exit", "uncaught", "sys.exit"])
def test_events_survive_every_way_of_ending(tmp_path, ending):
    end = {
        "sigterm": "os.kill(os.getpid(), signal.SIGTERM); time.sleep(10)",
        "sigint": "os.kill(os.getpid(), signal.SIGINT); time.sleep(10)",
        "os._exit": "os._exit(7)",
        "uncaught": "raise RuntimeError('end')",
        "sys.exit": "sys.exit(4)",
    }[ending]
    write(tmp_path / "app.py", f"""
        import os, signal, sys, time
        def work(n):
            return n
        for i in range(50):
            work(i)
        {end}
    """)
    result = run_driver(["--hook", "__main__:work", "--listener", "jsonl=events.jsonl", "--listener", "stats=stats.txt",
                         "app.py"], cwd=tmp_path)
    expected = {"sigterm": -signal.SIGTERM, "sigint": -signal.SIGINT, "os._exit": 7, "uncaught": 1, "sys.exit": 4}[ending]
    assert result.returncode == expected
    events = read_jsonl(tmp_path / "events.jsonl")
    assert len(events) == 100
    assert_paired(events)
    # a listener that writes only when it is closed was closed too
    assert (tmp_path / "stats.txt").read_text().startswith("hookwise stats: 50 calls of 1 target")


@pytest.mark.parametrize("hooked", [False, True], ids=["exec", "hooked exec"])
def test_exec_loses_no_buffered_line(tmp_path, hooked):
    # the jsonl listener gathers lines in a buffer: exec replaces the process without exit handlers,
    # so the buffer is written first (and a hooked execv's own start at once, as it happens)
    write(tmp_path / "app.py", """
        import os, sys
        def work(n):
            return n
        if sys.argv[1:] == ["again"]:
            work("after exec")
        else:
            for i in range(20):
                work(i)
            os.execv(sys.executable, [sys.executable, sys.argv[0], "again"])
    """)
    hooks = ["--hook", "__main__:work"] + (["--hook", "os:execv"] if hooked else [])
    result = run_driver([*hooks, "--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    events = read_jsonl(tmp_path / "events.jsonl")
    work = [e for e in events if e["target"] == "__main__:work"]
    assert [e["args"][0] for e in work if e["event"] == "start"] == [str(i) for i in range(20)] + ["'after exec'"]
    assert_paired(work[:40])  # the new image keeps the pid and counts its calls from 1 again
    assert [e["event"] for e in work[40:]] == ["start", "end"]
    execs = [e for e in events if e["target"].endswith(":execv")]
    assert [e["event"] for e in execs] == (["start"] if hooked else [])  # its end never comes: the process is replaced


def test_sigkill_leaves_whole_lines_only(tmp_path):
    # what waits in the buffer is lost with the process (README: at most 64 KiB), but never half a line
    write(tmp_path / "app.py", """
        import os, signal
        def work(n):
            return "x" * (n % 300)
        for i in range(20000):
            work(i)
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = run_driver(["--hook", "__main__:work", "--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path)
    assert result.returncode == -signal.SIGKILL
    data = (tmp_path / "events.jsonl").read_bytes()
    assert data.endswith(b"\n")
    events = [json.loads(line) for line in data.splitlines()]  # every line parses: none is torn
    assert 40000 - len(events) <= 64 * 1024 // 50  # lost: what fits in the buffer, lines of at least 50 bytes
    starts = [int(e["args"][0]) for e in events if e["event"] == "start"]
    assert starts == list(range(len(starts)))  # the lines that are there are the first ones, in order


def test_jsonl_lines_reach_the_file_while_the_program_runs(tmp_path):
    # a buffered line waits at most 10 ms: for the program's next event, or, when the program
    # goes quiet (here: blocked on its standard input), for the buffer's own thread
    write(tmp_path / "app.py", """
        import sys, time
        def work(n):
            return n
        for i in range(5):
            work(i)
            time.sleep(0.02)
        for i in range(5, 100):
            work(i)
        print("waiting", flush=True)
        sys.stdin.readline()
    """)
    process = subprocess.Popen([sys.executable, DRIVER, "--hook", "__main__:work", "--listener", "jsonl=events.jsonl",
                                "app.py"], cwd=tmp_path, env=clean_env(), stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline() == "waiting\n"
        deadline = time.monotonic() + 10
        while len(read_jsonl(tmp_path / "events.jsonl")) < 200 and time.monotonic() < deadline:
            time.sleep(0.01)
        events = read_jsonl(tmp_path / "events.jsonl")
        assert len(events) == 200  # all of them, while the program still waits
    finally:
        process.communicate("\n", timeout=60)
    assert process.returncode == 0
    assert_paired(read_jsonl(tmp_path / "events.jsonl"))


def test_a_sigterm_that_interrupts_the_listeners_close_lets_it_finish(tmp_path):
    # a multiprocessing pool being terminated: SIGTERM comes while os._exit (or the exit) closes the
    # listeners; the process dies of it once every listener is closed, not halfway
    write(tmp_path / "killer.py", """
        import os, signal

        class Killer:
            def close(self):
                os.kill(os.getpid(), signal.SIGTERM)  # the handler runs at once, inside the close
    """)
    write(tmp_path / "app.py", """
        def work(n):
            return n
        for i in range(50):
            work(i)
    """)
    result = run_driver(["--hook", "__main__:work", "--listener", "killer:Killer", "--listener", "jsonl=events.jsonl",
                         "--listener", "stats=stats.txt", "app.py"], cwd=tmp_path, env=clean_env(PYTHONPATH=str(tmp_path)))
    assert result.returncode == -signal.SIGTERM, result.stderr
    events = read_jsonl(tmp_path / "events.jsonl")
    assert len(events) == 100
    assert (tmp_path / "stats.txt").read_text().startswith("hookwise stats: 50 calls of 1 target")


def test_a_sigterm_sent_right_after_fork_still_ends_the_child(tmp_path):
    # Pool.terminate() can signal a worker it forked a moment ago; python drops
    # signals that reach a child before it is ready, so a child relying on a
    # Python-level handler would live on and the parent would wait forever
    write(tmp_path / "app.py", """
        import os, signal, time
        def step(n):
            return n
        outcomes = []
        for n in range(20):
            step(n)
            pid = os.fork()
            if pid == 0:
                time.sleep(5)
                os._exit(0)
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 4
            while time.monotonic() < deadline:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    outcomes.append(os.waitstatus_to_exitcode(status))
                    break
                time.sleep(0.005)
            else:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                outcomes.append("still running")
        print(sorted(set(outcomes)))
    """)
    result = run_driver(["--hook", "__main__:step", "--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path,
                        timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"[{-signal.SIGTERM}]\n"
    assert len([e for e in read_jsonl(tmp_path / "events.jsonl") if e["event"] == "start"]) == 20


# The main thread waits on a lock only EINTR could wake, with SIGTERM blocked, so the
# signal reaches another thread: CPython notes it but never runs a Python handler.
STUCK_MAIN_THREAD = """
    import multiprocessing, signal, sys, threading
    def step(n):
        return n
    step(1)
    never = multiprocessing.get_context("fork").Lock()
    never.acquire()
    ready = threading.Event()
    threading.Thread(target=lambda: (ready.set(), threading.Event().wait()), daemon=True).start()
    ready.wait()
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    print("waiting", flush=True)
    never.acquire()
"""


@pytest.mark.parametrize("guard", ["built", "missing"])
def test_sigterm_ends_a_process_whose_main_thread_cannot_run_handlers(tmp_path, guard):
    write(tmp_path / "app.py", STUCK_MAIN_THREAD)
    args = ["--hook", "__main__:step", "--listener", "jsonl=events.jsonl", "--listener", "stats=stats.txt", "app.py"]
    if guard == "missing":  # as where no compiler built the watchdog
        args = ["-c", "import runpy, sys; sys.modules['hookwise._sigterm_guard'] = None; "
                f"sys.argv = sys.argv[1:]; sys.path[0] = {os.path.dirname(DRIVER)!r}; "
                f"runpy.run_path({DRIVER!r}, run_name='__main__')", DRIVER, *args]
    else:
        args = [DRIVER, *args]
    for command in ([sys.executable, "app.py"], [sys.executable, *args]):
        process = subprocess.Popen(command, cwd=tmp_path, env=clean_env(), stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout.readline() == "waiting\n"
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == -signal.SIGTERM
        finally:
            process.kill()
            process.stdout.close()
    assert len(read_jsonl(tmp_path / "events.jsonl")) == 2
    # with the watchdog, the handler had its chance (and missed it): the stats are not written
    assert not (tmp_path / "stats.txt").exists() or "1 calls" not in (tmp_path / "stats.txt").read_text()


def test_eight_threads_twenty_thousand_calls_each(tmp_path):
    write(tmp_path / "app.py", """
        import threading
        def work(n):
            if n % 997 == 0:
                raise ValueError(n)
            return n

        def worker():
            for n in range(1, 20001):
                try:
                    work(n)
                except ValueError:
                    pass

        threads = [threading.Thread(target=worker, name=f"t{i}") for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    """)
    result = run_driver(["--hook", "__main__:work", "--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    events = read_jsonl(tmp_path / "events.jsonl")
    assert len(events) == 8 * 20000 * 2
    starts = {e["call_id"]: e for e in events if e["event"] == "start"}
    finished = {e["call_id"]: e for e in events if e["event"] != "start"}
    assert len(starts) == len(finished) == 160000
    for call_id, start in starts.items():
        done = finished[call_id]
        assert done["thread_id"] == start["thread_id"] and done["thread_name"] == start["thread_name"]
    per_thread = collections.Counter(e["thread_name"] for e in starts.values())
    assert per_thread == {f"t{i}": 20000 for i in range(8)}
    assert sum(1 for e in finished.values() if e["event"] == "error") == 8 * (20000 // 997)


def test_a_thousand_asyncio_tasks_keep_their_names_and_nesting(tmp_path):
    write(tmp_path / "app.py", """
        import asyncio
        async def leaf(n):
            await asyncio.sleep(0)
            return n

        async def branch(n):
            first = await leaf(n)
            await asyncio.sleep(0)
            second = await leaf(n + 1)
            return first + second

        async def main():
            tasks = [asyncio.create_task(branch(i), name=f"task-{i}") for i in range(1000)]
            return sum(await asyncio.gather(*tasks))

        print(asyncio.run(main()))
    """)
    result = run_driver(["--hook", "__main__:leaf", "--hook", "__main__:branch", "--listener", "jsonl=events.jsonl", "app.py"],
                        cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(sum(2 * i + 1 for i in range(1000)))
    events = read_jsonl(tmp_path / "events.jsonl")
    starts = [e for e in events if e["event"] == "start"]
    assert len(starts) == 3000 and all(e["task"].startswith("task-") for e in starts)
    by_task = collections.defaultdict(list)
    for event in events:
        if event["event"] == "start":
            by_task[event["task"]].append(event)
    call_task = {e["call_id"]: e["task"] for e in starts}
    sequences = collections.defaultdict(list)
    for event in events:
        sequences[call_task[event["call_id"]]].append((event["event"], event["target"]))
    nested = [("start", "__main__:branch"), ("start", "__main__:leaf"), ("end", "__main__:leaf"),
              ("start", "__main__:leaf"), ("end", "__main__:leaf"), ("end", "__main__:branch")]
    assert len(sequences) == 1000 and all(sequence == nested for sequence in sequences.values())


def test_sixteen_processes_importing_cold_at_once_share_the_cache(tmp_path):
    package = tmp_path / "bigpkg"
    package.mkdir()
    write(package / "__init__.py", "")
    body = "\n".join(f"def f{i}(x):\n    return x + {i}\n" for i in range(400))
    write(package / "mod.py", body)
    write(tmp_path / "app.py", "import bigpkg.mod as m\nprint(sum(getattr(m, f'f{i}')(1) for i in range(400)))\n")
    import subprocess

    from helpers import DRIVER

    env = clean_env()
    command = [sys.executable, DRIVER, "--hook", "bigpkg.mod:*", "--listener", "jsonl=/dev/null", "app.py"]
    processes = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(16)]
    outputs = [process.communicate(timeout=300) for process in processes]
    expected = str(sum(1 + i for i in range(400)))
    assert [process.returncode for process in processes] == [0] * 16, [err for _, err in outputs]
    assert all(out.strip() == expected and err == "" for out, err in outputs)
    pycache = package / "__pycache__"
    cached = [name for name in os.listdir(pycache) if name.endswith(".hookwise.pyc")]
    assert cached == [f"mod.{sys.implementation.cache_tag}.hookwise.pyc"]
    assert not [name for name in os.listdir(pycache) if name.endswith(".tmp")]
    before = os.stat(pycache / cached[0]).st_mtime_ns
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.strip() == expected
    assert os.stat(pycache / cached[0]).st_mtime_ns == before  # read, not rewritten


def test_outputs_never_follow_a_planted_symlink_and_respect_the_umask(tmp_path):
    write(tmp_path / "app.py", "def f():\n    return 1\nf()\n")
    target = tmp_path / "precious.txt"
    target.write_text("do not overwrite\n")
    os.symlink(target, tmp_path / "events.jsonl")
    result = run_driver(["--hook", "__main__:f", "--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path)
    assert result.returncode == 2 and "cannot write" in result.stderr
    assert target.read_text() == "do not overwrite\n"
    os.unlink(tmp_path / "events.jsonl")
    import subprocess

    from helpers import DRIVER

    script = f"import os, subprocess, sys; os.umask(0o077); sys.exit(subprocess.call([sys.executable, {DRIVER!r}, " \
             "'--hook', '__main__:f', '--listener', 'jsonl=events.jsonl', 'app.py']))"
    assert subprocess.call([sys.executable, "-c", script], cwd=tmp_path, env=clean_env()) == 0
    assert os.stat(tmp_path / "events.jsonl").st_mode & 0o777 == 0o600


def test_a_child_run_with_dash_m_has_its_main_module_hooked(tmp_path):
    write(tmp_path / "childmod.py", "def child_main_work():\n    return 7\nif __name__ == '__main__':\n    print(child_main_work())\n")
    write(tmp_path / "app.py", "import subprocess, sys\nsubprocess.run([sys.executable, '-m', 'childmod'], check=True)\n")
    result = run_driver(["--hook", "__main__:child_main_work", "--listener", "jsonl=events.jsonl", "app.py"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "7"  # (the parent says its own __main__ had no such function)
    events = read_jsonl(tmp_path / "events.jsonl")
    assert [(e["event"], e["target"]) for e in events] == [("start", "__main__:child_main_work"), ("end", "__main__:child_main_work")]
    assert events[0]["pid"] != os.getpid()


def test_a_fork_forgets_the_other_threads_listener_state(tmp_path):
    """The pure runtime keeps "listeners running here" per thread id: in a child, only the forking
    thread exists, and a new thread that got a stale id would report nothing."""
    write(tmp_path / "app.py", """
        import os, threading
        from hookwise import _state
        entered, release = threading.Event(), threading.Event()
        def in_listener_code():
            with _state.quiet():
                entered.set()
                release.wait()
        worker = threading.Thread(target=in_listener_code)
        worker.start()
        entered.wait()
        with _state.quiet():
            print("parent", worker.ident in _state.busy, threading.get_ident() in _state.busy, flush=True)
            pid = os.fork()
            if pid == 0:
                print("child", worker.ident in _state.busy, threading.get_ident() in _state.busy, flush=True)
                os._exit(0)
        os.waitpid(pid, 0)
        release.set()
        worker.join()
        print("after", _state.busy)
    """)
    result = run_python(["app.py"], cwd=tmp_path, env=clean_env(HOOKWISE_PURE_PYTHON="1", PYTHONPATH=ROOT))
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["parent True True", "child False True", "after {}"]
