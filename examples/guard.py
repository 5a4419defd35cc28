"""A security listener: refuse shell commands that chain further commands.

    python driver.py --hook os:system --listener examples.guard:CommandGuard --listener console app.py

A ``start`` listener that raises ``hookwise.Blocked`` refuses the call: the
command never runs and the program gets the exception (a PermissionError).
"""

from hookwise import Blocked

SUSPICIOUS = (";", "&&", "||", "|", "`", "$(")


class CommandGuard:
    def start(self, call):
        command = call.args[0] if call.args else call.kwargs.get("command")
        if isinstance(command, bytes):
            command = command.decode("utf-8", "replace")
        if isinstance(command, str) and any(token in command for token in SUSPICIOUS):
            raise Blocked(f"hookwise guard refused {call.target}({command!r}): it chains commands")
