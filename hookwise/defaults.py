"""The embedded default targets: what the original project watched.

Used when no hook is named anywhere (command line, config file): command
execution, file opens and dynamic code. All of them are served by attribute
replacement or, for ``subprocess``, by rewriting it when it is imported.
"""

COMMAND_EXECUTION = (
    "os:system",
    "os:popen",
    "subprocess:Popen.__init__",
    "os:execv",
    "os:execve",
    "os:execl",
    "os:execle",
    "os:execlp",
    "os:execlpe",
    "os:execvp",
    "os:execvpe",
    "os:spawnv",
    "os:spawnve",
    "os:spawnl",
    "os:spawnle",
    "os:spawnlp",
    "os:spawnlpe",
    "os:spawnvp",
    "os:spawnvpe",
    "os:posix_spawn",
    "os:posix_spawnp",
)

FILE_OPENS = (
    "builtins:open",
    "io:open",
    "os:open",
)

DYNAMIC_CODE = (
    "builtins:exec",
    "builtins:eval",
    "builtins:compile",
)

DEFAULT_TARGETS = COMMAND_EXECUTION + FILE_OPENS + DYNAMIC_CODE
DEFAULT_LISTENERS = ("console",)
