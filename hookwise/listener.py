"""The listener interface and the exception that blocks a call.

A listener is any object with some of these methods; hookwise calls each one it
has, on the thread that makes the call:

- ``start(call)``: the hooked function was entered (a generator or coroutine:
  when it first runs). Raise ``Blocked`` here to refuse the call.
- ``end(call, result)``: it returned ``result`` (a generator: it was exhausted
  or closed; ``result`` is its return value).
- ``error(call, exc)``: it raised ``exc``, which the program then sees.
- ``close()``: the program is exiting; flush what you buffered.

Subclassing ``Listener`` is optional; it only supplies no-op methods.
Exceptions a listener raises never reach the program (they are reported once on
stderr), and hooked functions that a listener calls report nothing.
"""


class Blocked(PermissionError):
    """Raise from a listener's ``start`` to refuse the call.

    The hooked function does not run; its caller gets this exception, and every
    listener sees the call end with ``error(call, <this exception>)``. It is a
    ``PermissionError`` so that code written to survive a refused operation
    (an ``except OSError``) survives a blocked one too.
    """


class Listener:
    """Optional base class: every callback does nothing."""

    def start(self, call):
        pass

    def end(self, call, result):
        pass

    def error(self, call, exc):
        pass

    def close(self):
        pass
