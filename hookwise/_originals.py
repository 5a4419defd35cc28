"""The functions hookwise itself uses, bound before anything is patched.

hookwise patches builtins such as ``open``, ``exec`` and ``os.open`` for the
user. Its own work (reading sources, writing caches and logs, compiling) must
never show up as the user's calls, so it always goes through these originals.
Importing this module must stay cheap: only modules that are loaded at
interpreter start-up anyway.
"""

import builtins
import io
import marshal
import os
import sys
import time
from _thread import get_ident

compile = builtins.compile
exec = builtins.exec
eval = builtins.eval
open = io.open
os_open = os.open
os_close = os.close
os_write = os.write
os_replace = os.replace
os_unlink = os.unlink
os_fdopen = os.fdopen
os_dup = os.dup
os_isatty = os.isatty
os_getpid = os.getpid
os_mkdir = os.mkdir
os_fstat = os.fstat
os_ftruncate = os.ftruncate
os_pread = os.pread
perf_counter_ns = time.perf_counter_ns
time_ns = time.time_ns
get_ident = get_ident
getframe = sys._getframe
exc_info = sys.exc_info
marshal_loads = marshal.loads  # the bytecode cache's (marshal:loads is in the code preset)
marshal_dumps = marshal.dumps
