"""Headless Debian chromium for tests: find it, load a local page, read the DOM its scripts left, take a screenshot.

A missing chromium is a test failure with the command that installs it, never
a skip: the html report is only known to work once a real browser drew it.
Each run gets a fresh profile directory and no network features.
"""

import os
import shutil
import subprocess
import tempfile

import pytest

INSTALL = "apt-get install -y chromium"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
)
WINDOW = (1400, 900)


def chromium():
    """The chromium executable; fails the calling test when it is not installed."""
    found = shutil.which("chromium")
    if found is None:
        pytest.fail(f"chromium is not installed: install Debian's chromium ({INSTALL}) to test the html report",
                    pytrace=False)
    return found


def run(page, *options, fragment="", timeout=120):
    """Run chromium on the local file ``page`` (``#fragment`` added) with ``options``; returns the CompletedProcess."""
    executable = chromium()
    with tempfile.TemporaryDirectory(prefix="hookwise-chromium-") as profile:
        result = subprocess.run(
            [executable, *FLAGS, f"--user-data-dir={profile}", *options, "file://" + os.path.abspath(page) + fragment],
            capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
        )
    assert result.returncode == 0, f"chromium failed ({result.returncode}):\n{result.stderr[-3000:]}"
    return result


def dump_dom(page, fragment=""):
    """The page's DOM as HTML after its scripts ran."""
    return run(page, "--dump-dom", fragment=fragment).stdout


def screenshot(page, png, window=WINDOW):
    """Save a screenshot of ``page`` at ``window`` (width, height) to ``png``."""
    run(page, f"--screenshot={os.path.abspath(png)}", f"--window-size={window[0]},{window[1]}")
    return png


def png_size(png):
    """(width, height) from a PNG's header; AssertionError if it is not a PNG."""
    with open(png, "rb") as handle:
        head = handle.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{png} is not a PNG"
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
