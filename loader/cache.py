"""The bytecode cache for rewritten modules: small functions, one job each.

A rewritten module is cached in its own file beside the normal ``.pyc``
(``__pycache__/mod.cpython-312.hookwise.pyc``), never in the normal ``.pyc``:
a plain ``python`` run must never load instrumented code.

File layout:
    4 bytes   the interpreter's MAGIC_NUMBER
    4 bytes   b"HKW1" (this layout)
    32 bytes  sha256 of the key: interpreter cache tag, hookwise version,
              a digest of the rewriting code itself, optimisation level, the
              settings that shape the generated code and the module's role
              (see ``loader.hook.cache_key``)
    8 bytes   source mtime (ns), 8 bytes source size
    rest      marshal of (site table, code object)

Any file that is missing, short, stale or unreadable is a miss. Writes go to a
temporary file that is then renamed over the target, so a reader never sees a
half-written file, even with many processes importing at once.
"""

import os
import sys
from importlib._bootstrap_external import MAGIC_NUMBER, cache_from_source

from hookwise import _originals

FORMAT = b"HKW1"
SUFFIX = ".hookwise.pyc"
_HEADER_SIZE = 4 + 4 + 32 + 8 + 8
_counter = 0


def location(source_path):
    """Where the cache of ``source_path`` lives, or None when there is nowhere to put it."""
    try:
        normal = cache_from_source(source_path)
    except (NotImplementedError, ValueError):  # no cache_tag, or a path cache_from_source rejects
        return None
    if not normal.endswith(".pyc"):
        return None
    return normal[: -len(".pyc")] + SUFFIX


def header(key_digest, mtime_ns, size):
    return (
        MAGIC_NUMBER
        + FORMAT
        + key_digest
        + int(mtime_ns).to_bytes(8, "little", signed=True)
        + int(size).to_bytes(8, "little")
    )


def read(path, key_digest, mtime_ns, size):
    """(site table, code) from a valid cache file, or None on any kind of miss."""
    try:
        with _originals.open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    if len(data) < _HEADER_SIZE or data[:_HEADER_SIZE] != header(key_digest, mtime_ns, size):
        return None
    try:
        entry = _originals.marshal_loads(memoryview(data)[_HEADER_SIZE:])
    except (EOFError, ValueError, TypeError):
        return None
    if not (isinstance(entry, tuple) and len(entry) == 2):
        return None
    return entry


def write(path, key_digest, mtime_ns, size, site_table, code, mode=0o666):
    """Store the cache atomically; returns False (never raises) when it cannot."""
    if sys.dont_write_bytecode:
        return False
    try:
        entry = (tuple(tuple(spec) for spec in site_table), code)
        payload = header(key_digest, mtime_ns, size) + _originals.marshal_dumps(entry)
    except ValueError:  # something unmarshallable: just do not cache
        return False
    directory = os.path.dirname(path) or "."
    if not _ensure_directory(directory):
        return False
    temporary = f"{path}.{_originals.os_getpid()}.{_next_suffix()}.tmp"
    try:
        fd = _originals.os_open(temporary, _CREATE_FLAGS, mode & 0o666)
    except OSError:
        return False
    try:
        with _originals.os_fdopen(fd, "wb") as handle:
            handle.write(payload)
        _originals.os_replace(temporary, path)
    except OSError:
        try:
            _originals.os_unlink(temporary)
        except OSError:
            pass
        return False
    return True


def _next_suffix():
    global _counter
    _counter += 1
    return f"{_originals.get_ident()}.{_counter}"


def _ensure_directory(directory):
    try:
        _originals.os_mkdir(directory)
    except FileExistsError:
        pass
    except OSError:  # read-only tree, or a parent that is missing or not a directory
        return False
    return os.path.isdir(directory)


def _create_flags():
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    return flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


_CREATE_FLAGS = _create_flags()
