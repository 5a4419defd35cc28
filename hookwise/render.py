"""How built-in listeners show values: bounded reprs, with secrets redacted.

Every built-in output goes through one ``Render``: argument values whose
parameter name (or dict key, at any depth) contains one of the redacted words
are written as ``***``, and so are, by content, the passwords of URLs and DSNs
and secret-named query fields inside text, and the process environment a
WSGI environ carries (``hookwise.redaction``); every repr is cut at
``repr_limit`` characters; a repr that raises or meets a huge object never fails the call nor floods the output;
and only built-in and standard-library reprs run unless ``user_reprs`` is set
(see ``hookwise.saferepr``).
"""

from .redaction import redact_value
from .saferepr import object_repr, saferepr, safestr

DEFAULT_REDACT = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "session",
    "private_key",
)
DEFAULT_REPR_LIMIT = 200
REDACTED = "***"


class Render:
    def __init__(self, repr_limit=DEFAULT_REPR_LIMIT, redact=DEFAULT_REDACT, user_reprs=False):
        self.repr_limit = repr_limit
        self.redact = tuple(word.lower() for word in redact)
        self.user_reprs = user_reprs  # call __repr__ methods from outside the standard library too
        self._verdicts = {}  # name -> is it a secret: names repeat on every call
        self.secret_rule = self.is_secret if self.redact else None  # what saferepr is given: keys it hides

    def is_secret(self, name):
        """Whether a parameter name or dict key names a secret (case-insensitive substring)."""
        verdict = self._verdicts.get(name) if type(name) is str else None
        if verdict is None:
            # by type alone: isinstance() would read a proxy's __class__, a str subclass its own lower()
            if not issubclass(type(name), str) or not self.redact:
                return False
            lowered = str.lower(name)
            verdict = any(word in lowered for word in self.redact)
            if len(self._verdicts) < 10_000:  # dict keys may be data: keep the cache bounded
                self._verdicts[name] = verdict
        return verdict

    def redacts_content(self, value):
        """Whether redaction by content changes how ``value`` reads (a str, bytes, or a tuple of them).

        A recording stores such a value as its rendered text, not as itself:
        the secret never reaches the file.
        """
        if not self.redact:
            return False
        kind = type(value)
        if kind is str or kind is bytes:
            return redact_value(value, self.is_secret) != value
        if kind is tuple:
            return any(self.redacts_content(item) for item in value)
        return False

    def value(self, value):
        return saferepr(value, self.repr_limit, self.secret_rule, self.user_reprs)

    def named(self, name, value):
        return REDACTED if self.is_secret(name) else self.value(value)

    def args(self, call):
        """Reprs of the positional arguments, redacted by their parameter's name."""
        layout = call.site.params
        values = call.values
        limit, secret, user_reprs = self.repr_limit, self.is_secret, self.user_reprs
        keys = self.secret_rule
        if layout is None:  # a replaced builtin: values are (args, kwargs), no names
            return [saferepr(value, limit, keys, user_reprs) for value in values[0]]
        positional, vararg = layout[0], layout[2]
        shown = [REDACTED if secret(name) else saferepr(value, limit, keys, user_reprs)
                 for name, value in zip(positional, values)]
        if shown and builds_its_first_argument(call) and not secret(positional[0]):
            shown[0] = object_repr(values[0])
        if vararg is not None:
            hidden = secret(vararg)
            shown.extend(REDACTED if hidden else saferepr(value, limit, keys, user_reprs)
                         for value in values[len(positional)])
        return shown

    def kwargs(self, call):
        layout = call.site.params
        if layout is not None and not layout[3] and layout[4] is None:
            return {}  # no keyword-only parameters and no **kwargs: nothing to show, nothing to compute
        return {str(name): self.named(name, value) for name, value in call.kwargs.items()}

    def arguments(self, call, changed_only=False):
        """Reprs by parameter name (only those that differ from a literal default, if asked)."""
        arguments = call.changed_arguments if changed_only else call.arguments
        shown = {str(name): self.named(name, value) for name, value in arguments.items()}
        layout = call.site.params
        first = layout[0][0] if layout is not None and layout[0] else None
        if first in arguments and builds_its_first_argument(call) and not self.is_secret(first):
            shown[str(first)] = object_repr(arguments[first])
        return shown

    def exception_text(self, exc):
        """``str(exc)``, bounded; its safe repr if that would run the program's code or fails."""
        return safestr(exc, self.repr_limit, self.user_reprs, self.secret_rule)


def builds_its_first_argument(call):
    # The self of an __init__ is half built when the call starts: its class's own
    # repr would read attributes that do not exist yet (subprocess.Popen's does).
    return call.site.qualname.rpartition(".")[2] == "__init__"


def exception_type_name(exc):
    kind = type(exc)
    module = getattr(kind, "__module__", "builtins")
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _let_the_accelerator_read_verdicts():
    # The C saferepr (hookwise/_saferepr.h) asks is_secret for every dict key and field name it shows;
    # it reads the verdicts this rule already keeps instead of calling it.
    from . import accel

    if accel.speedups is not None and hasattr(accel.speedups, "read_secret_verdicts"):
        accel.speedups.read_secret_verdicts(Render.is_secret)


_let_the_accelerator_read_verdicts()
