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
