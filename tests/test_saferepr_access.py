"""Showing a value never runs the program's code: not even ``value.__class__`` (a lazy proxy computes it).

isinstance(value, X) falls back to reading ``value.__class__`` when type(value)
is not a subclass of X; the built-in outputs decide by type(value) alone.
"""

import os

import pytest

from helpers import FIXTURES, ROOT, clean_env, run_driver, run_python

FIXTURE = os.path.join(FIXTURES, "saferepr_access")
HOOKS = ["--hook", "counted:take", "--hook", "counted:give", "--hook", "counted:fail"]


def _run(args, tmp_path):
    env = clean_env(PYTHONPATH=FIXTURE)
    return run_driver([*args, "-c", "import counted; counted.main()"], cwd=tmp_path, env=env)


def _plain():
    # the program's own dict literals hash the value: those reads are the program's, counted here too
    result = run_python(["-c", "import counted; counted.main()"], env=clean_env(PYTHONPATH=FIXTURE))
    assert result.stdout.startswith("reads="), result.stderr
    return result.stdout


PLAIN = _plain()


def test_plainly_the_class_is_never_read():
    assert "__class__" not in PLAIN and "__repr__" not in PLAIN


@pytest.mark.parametrize("listener", ["console", "jsonl={out}/calls.jsonl", "stats", "chrome={out}/trace.json",
                                      "html={out}/calls.html"])
def test_no_built_in_output_reads_the_value(listener, tmp_path):
    spec = listener.format(out=tmp_path)
    result = _run([*HOOKS, "--listener", spec], tmp_path)
    assert result.stdout == PLAIN, (result.stdout, result.stderr)
    assert result.returncode == 0, result.stderr


def test_the_default_listener_with_default_targets_reads_nothing(tmp_path):
    result = _run([], tmp_path)
    assert result.stdout == PLAIN, (result.stdout, result.stderr)


def test_a_socket_shows_as_its_repr_without_calling_the_methods_a_program_replaced():
    # socket.socket's repr calls self.getsockname(): CPython's test_socket replaces it on the class
    # to inject a connection, and a repr made at another moment than the program's ran it
    import socket

    from hookwise.saferepr import saferepr

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    client = socket.create_connection(listener.getsockname())
    accepted, _ = listener.accept()
    datagram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sockets = [listener, client, accepted, datagram]
    replaced, calls = socket.socket.getsockname, []
    try:
        expected = [repr(each) for each in sockets]
        socket.socket.getsockname = lambda self: calls.append(self) or replaced(self)
        assert [saferepr(each, 500) for each in sockets] == expected
        assert calls == []
    finally:
        socket.socket.getsockname = replaced
        for each in sockets:
            each.close()
    assert saferepr(client, 500) == repr(client)  # closed: "[closed]", no addresses
    assert "[closed]" in repr(client)
