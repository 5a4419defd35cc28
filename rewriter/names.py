"""Names and placeholders that the rewrite injects into user code.

Injected local names contain ``@``, so they are not valid identifiers and can
never collide with a user's name (pytest's assertion rewriting uses the same
trick). They start with a single underscore so that ``from m import *`` and
private name mangling (``__x`` inside a class) leave them alone.

A hooked function reaches its call site object through a constant: the
rewriter puts a placeholder string into the tree and the loader swaps it for
the real ``Site`` object after compiling (see ``loader.binding``). This keeps
the injected code independent of the module's globals, so a function whose code
is copied into other globals keeps working, and ``globals()`` shows nothing.

This module must stay free of imports: the rewriter is pure.
"""

# Local that holds the Call record (or None when nobody listens).
CALL = "_hw@call"
# Local that receives each returned value (``return (_hw@result := value)``).
RESULT = "_hw@result"
# Locals that keep ``_hw@result`` as it was when a try statement began, for the
# break or continue in its ``finally`` that cancels a return (numbered).
SAVED_RESULT = "_hw@saved"

INJECTED_PREFIX = "_hw@"
# The NUL byte makes a clash with a user's string constant practically impossible.
SITE_PLACEHOLDER_PREFIX = "\x00hookwise-site:"


# ``except BaseException`` must not be fooled by a module that rebinds the name:
# the handler names the class through a constant that the loader binds too.
BASE_EXCEPTION_PLACEHOLDER = "\x00hookwise-BaseException"


def site_placeholder(index):
    """The constant that stands for site number ``index`` until the loader binds it."""
    return f"{SITE_PLACEHOLDER_PREFIX}{index}"


def site_index(value):
    """The site number of a placeholder constant, or None for any other value."""
    if type(value) is str and value.startswith(SITE_PLACEHOLDER_PREFIX):
        return int(value[len(SITE_PLACEHOLDER_PREFIX):])
    return None


def is_injected(name):
    return name.startswith(INJECTED_PREFIX)


def readable(name):
    """A valid identifier that shows an injected name in printed source."""
    return "_hookwise_" + name[len(INJECTED_PREFIX):]


def readable_site(index):
    return f"_hookwise_site_{index}"
