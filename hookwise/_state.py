"""Per-process and per-thread state shared by the runtime and the call record.

``local.busy`` holds the Call whose listeners are running on this thread (None
otherwise). While it is set, hooked functions that the listeners call report
nothing: this is the recursion guard.
"""

import os
import sys
from _thread import _local

from . import _originals


class _ThreadState(_local):
    busy = None


local = _ThreadState()
pid = _originals.os_getpid()
main_thread_id = _originals.get_ident()


def _after_fork_in_child():
    global pid
    pid = _originals.os_getpid()
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
            self._was = local.busy
            if local.busy is None:
                local.busy = _QUIET
        return self

    def __exit__(self, *exc_info):
        from . import accel

        if accel.ACTIVE:
            accel.speedups.set_quiet(self._was)
        else:
            local.busy = self._was
        return False
