import glob
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The checkout under test comes first, before any installed copy.
if sys.path[0] != ROOT:
    sys.path.insert(0, ROOT)


@pytest.fixture(scope="session")
def postgresql_server():
    """A PostgreSQL server of Debian's package for this pytest run: its Unix socket directory.

    One server for the whole run, on a Unix socket in a temporary directory (no
    TCP port), trusting local connections as the user ``hookwise``; stopped at
    the end. As root, the server runs as the ``postgres`` user (initdb refuses root).
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL is not installed: python3 tests/run_all.py installs Debian's postgresql"
    binaries = os.path.dirname(found[-1])
    directory = tempfile.mkdtemp(prefix="hookwise-pg-")
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = os.path.join(directory, "data")

    def run(*command):
        subprocess.run([*as_user, *command], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                       timeout=120)

    run(os.path.join(binaries, "initdb"), "-D", data, "-A", "trust", "-U", "hookwise", "-E", "UTF8", "--no-sync")
    run(os.path.join(binaries, "pg_ctl"), "-D", data, "-w", "-l", os.path.join(directory, "log"),
        "-o", f"-k {directory} -c listen_addresses='' -F", "start")
    try:
        yield directory
    finally:
        run(os.path.join(binaries, "pg_ctl"), "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(directory, ignore_errors=True)


MARIADB_USER, MARIADB_PASSWORD, MARIADB_DATABASE = "hookwise", "hookwise-pw", "shop"


@pytest.fixture(scope="session")
def mariadb_server():
    """A MariaDB server of Debian's package for this pytest run: its Unix socket's path.

    One server for the whole run, on a Unix socket in a temporary directory (no
    TCP port), with the database ``shop`` and the user ``hookwise`` (password
    ``hookwise-pw``, so that the tests can check it never shows); stopped at the
    end. As root, the server runs as the ``mysql`` user, as Debian's service does.
    """
    server, install = shutil.which("mariadbd", path="/usr/sbin:/usr/bin"), shutil.which("mariadb-install-db")
    assert server and install, "MariaDB is not installed: python3 tests/run_all.py installs Debian's mariadb-server"
    directory = tempfile.mkdtemp(prefix="hookwise-mariadb-")
    as_user, user = [], []
    if os.geteuid() == 0:
        shutil.chown(directory, "mysql")
        as_user, user = ["runuser", "-u", "mysql", "--"], ["--user=mysql"]
    data, socket = os.path.join(directory, "data"), os.path.join(directory, "sock")
    subprocess.run([*as_user, install, "--no-defaults", f"--datadir={data}", "--auth-root-authentication-method=socket",
                    "--skip-test-db", *user], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                   timeout=120)
    # small and quick: no TCP, no binary log, a small buffer pool, no fsync
    process = subprocess.Popen([*as_user, server, "--no-defaults", f"--datadir={data}", f"--socket={socket}",
                                "--skip-networking", f"--pid-file={directory}/pid", f"--log-error={directory}/log",
                                "--innodb-buffer-pool-size=16M", "--innodb-flush-log-at-trx-commit=0",
                                "--skip-log-bin"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        setup = (f"create database {MARIADB_DATABASE}; create user '{MARIADB_USER}'@'localhost' identified by "
                 f"'{MARIADB_PASSWORD}'; grant all on *.* to '{MARIADB_USER}'@'localhost'")
        _when_mariadb_answers(process, socket, directory, setup)
        yield socket
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(directory, ignore_errors=True)


def _when_mariadb_answers(process, socket, directory, setup):
    """Run ``setup`` as root (socket authentication) once the server takes connections."""
    import time

    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            raise AssertionError(f"mariadbd stopped (status {process.returncode}): see {directory}/log")
        if os.path.exists(socket):
            answer = subprocess.run(["mariadb", "--no-defaults", f"--socket={socket}", "-u", "root", "-e", setup],
                                    capture_output=True, text=True, timeout=60)
            if answer.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"MariaDB did not answer: {answer.stderr}")
        elif time.monotonic() > deadline:
            raise AssertionError(f"MariaDB did not start in time: see {directory}/log")
        time.sleep(0.1)
