"""Per-process and per-thread state shared by the runtime and the call record.

``busy[thread id]`` holds the Call whose listeners are running on that thread
(no entry otherwise). While it is set, hooked functions that the listeners call
report nothing: this is the recursion guard of the pure-Python runtime (the C
accelerator keeps its own, in a C thread-local).
"""

import os
import sys
from contextvars import ContextVar

from . import _originals

# A dict keyed by thread id rather than a threading.local: the hot path reads
# and writes it on every reported event, and a threading.local attribute costs
# about three times a dict access (~50 ns against ~15 on 3.12). An entry lives
# only while its thread runs listeners or quiet code, so no dead thread's id
# stays behind to be inherited by a new thread that gets the same id.
busy = {}
overhead = {}
"""thread id -> hookwise's own time on that thread so far (ns): the pure runtime's dispatch time, which a
call's shown duration leaves out (see ``hookwise.runtime``). Only differences on one thread are used, so a
new thread that gets a dead one's id inherits a harmless total."""
stand_ins = set()
"""ids of the globals of hookwise modules whose functions stand between the program and a
hooked call (loader/c_types.py's sqlite3 shortcuts): a call's caller is looked for past them."""
current_request = ContextVar("hookwise_request", default=None)
"""The ``hookwise.web.Request`` being served in this context, or None (read by ``Call.request_id``)."""
pid = _originals.os_getpid()
main_thread_id = _originals.get_ident()


def busy_here():
    """What runs hookwise code on this thread: a Call whose listeners run, the quiet marker, or None.

    (The pure runtime's hot path reads ``busy`` itself, with the thread id it needs anyway.)
    """
    return busy.get(_originals.get_ident())


def _after_fork_in_child():
    global pid
    pid = _originals.os_getpid()
    # only the forking thread lives on: another thread's entry would silence
    # whichever new thread of the child happened to get its id
    mine = busy_here()
    busy.clear()
    if mine is not None:
        busy[_originals.get_ident()] = mine
    from . import accel

    if accel.ACTIVE:
        accel.speedups.configure(pid=pid)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def thread_name(thread_id):
    threading = sys.modules.get("threading")
    if threading is not None:
        thread = threading._active.get(thread_id)
        if thread is not None:
            return thread.name
    if thread_id == main_thread_id:
        return "MainThread"
    return f"Thread-{thread_id}"


def current_task_name():
    """The running asyncio task's name on this thread, or None (never imports asyncio)."""
    asyncio = sys.modules.get("asyncio")
    if asyncio is None:
        return None
    try:
        loop = asyncio._get_running_loop()
        task = asyncio.current_task(loop) if loop is not None else None
    except Exception:
        return None
    return task.get_name() if task is not None else None


_QUIET = object()


class quiet:
    """``with quiet():`` hookwise's own code runs; hooked calls it makes report nothing."""

    def __enter__(self):
        from . import accel

        if accel.ACTIVE:
            self._was = accel.speedups.set_quiet(True)
        else:
            self._was = busy_here()
            if self._was is None:
                busy[_originals.get_ident()] = _QUIET
        return self

    def __exit__(self, *exc_info):
        from . import accel

        if accel.ACTIVE:
            accel.speedups.set_quiet(self._was)
        elif self._was is None:
            busy.pop(_originals.get_ident(), None)
        else:
            busy[_originals.get_ident()] = self._was
        return False
