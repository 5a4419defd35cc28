"""psycopg2's C ``connection`` and ``cursor``: their methods served through the connections it makes.

Like sqlite3's (loader/c_types.py), psycopg2's types are C types whose
methods cannot be replaced. ``psycopg2.connect`` calls ``_connect`` from
psycopg2's namespace: that name is replaced by a callable passing
``connection_factory=`` a hooked subclass of the factory the program asked
for, and the hooked connection's ``cursor()`` passes ``cursor_factory=`` a
hooked subclass of the cursor factory that would have been used.

The hooked methods sit on one subclass of each C type, the *interposer*,
which a program's own class is combined with *after* itself in the method
resolution order (``class cursor(DictCursor, interposer)``). So a Python
override (psycopg2.extras' ``DictCursor.execute``, ``DictConnection.cursor``
with its default factory) runs first and its ``super()`` call reaches the
hooked method, and not the other way round. The interposers have no slots of
their own, so any subclass combines with them.

While installed, ``psycopg2.extensions.connection`` and ``.cursor`` name the
interposers (``type(conn.cursor()) is psycopg2.extensions.cursor`` holds, and
a class derived from them later, as psycopg2.extras' are when it is imported
after, is hooked by inheritance). Limits: a connection made before the hooks
were installed, or by a ``connection_factory`` that is not a class, is the C
type's.
"""

import sys

from hookwise import _state

from . import wrappers

MODULE = "psycopg2.extensions"  # the C types' __module__
KINDS = ("connection", "cursor")

_c_types = {}  # kind -> the C type
_public = {}  # kind -> its interposer
_made = {"connection": {}, "cursor": {}}  # kind -> {program's class: its hooked combination}
_installed = []  # the _Connect in place, if any


def prepare(module, may_name_a_method, undo, set_attribute):
    """Put the ``_connect`` stand-in in place when psycopg2's types have targets."""
    if module.__name__ in (MODULE, "psycopg2") and may_name_a_method(module, KINDS):
        install(undo, set_attribute)


def public_types():
    """kind -> the interposer that stands for the C type while installed."""
    return _public


def c_type(kind):
    return _c_types[kind]


def is_stand_in(value):
    return isinstance(value, _Connect)


def serve_method(kind, name, wrapper, undo, set_attribute):
    """Put ``wrapper``, a hooked method of the C type ``kind``, on its interposer."""
    if not install(undo, set_attribute):
        return
    if kind == "connection" and name == "cursor":
        # the hooked cursor() runs the interposer's Python version, which picks the hooked factory
        wrapper = wrappers.make_wrapper(wrapper.__hookwise_site__, _cursor)
    set_attribute(_public[kind], name, wrapper, undo)


def forget():
    for table in (_c_types, _public, _made["connection"], _made["cursor"]):
        table.clear()
    _installed.clear()


# -- the hooked classes ------------------------------------------------------------


def hooked(kind, factory):
    """The class to make a ``kind`` of: the program's ``factory`` with the interposer after it."""
    public = _public[kind]
    if not isinstance(factory, type) or not issubclass(factory, _c_types[kind]) or issubclass(factory, public):
        return factory  # not a class (left as it is), or hooked already
    made = _made[kind].get(factory)
    if made is None:
        # named as the program's class, so reprs and error messages read as without hookwise
        namespace = {"__slots__": (), "__module__": factory.__module__, "__qualname__": factory.__qualname__,
                     "__doc__": factory.__doc__}
        made = _made[kind][factory] = type(factory.__name__, (factory, public), namespace)
    return made


def _cursor(self, *args, **kwargs):
    """connection.cursor(name=None, cursor_factory=None, ...) with the factory's hooked class."""
    try:
        if len(args) > 1:
            args = (args[0], hooked("cursor", args[1]), *args[2:])
        else:
            # what the C method would use: the given factory, the connection's default, or its own type
            factory = kwargs.get("cursor_factory") or self.cursor_factory or _public["cursor"]
            kwargs["cursor_factory"] = hooked("cursor", factory)
        return _c_types["connection"].cursor(self, *args, **kwargs)
    except BaseException as exc:
        _drop_own_frames(exc)
        raise


_cursor.__name__ = _cursor.__qualname__ = "cursor"


def _interposer(c_type, extra):
    namespace = {"__slots__": (), "__module__": c_type.__module__, "__qualname__": c_type.__qualname__,
                 "__doc__": c_type.__doc__, **extra}
    return type(c_type.__name__, (c_type,), namespace)


def _drop_own_frames(exc):
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_globals is globals():
        tb = tb.tb_next
    exc.__traceback__ = tb


# -- _connect ----------------------------------------------------------------------


class _Connect:
    """Stands for ``psycopg2._connect`` (what ``psycopg2.connect`` calls): the hooked connection factory."""

    def __init__(self, original):
        self._original = original
        self.__module__, self.__name__, self.__qualname__ = "psycopg2._psycopg", "_connect", "_connect"
        self.__doc__ = getattr(original, "__doc__", None)

    def __call__(self, dsn, connection_factory=None, **kwargs):
        try:
            factory = hooked("connection", connection_factory or _public["connection"])
            return self._original(dsn, connection_factory=factory, **kwargs)
        except BaseException as exc:
            _drop_own_frames(exc)
            raise

    def __repr__(self):
        return repr(self._original)


def install(undo, set_attribute):
    """Make the interposers and put the stand-in in place (once); False when psycopg2 is not there."""
    if _installed:
        return True
    psycopg2, extensions = sys.modules.get("psycopg2"), sys.modules.get(MODULE)
    current = vars(psycopg2).get("_connect") if psycopg2 is not None else None
    if current is None or extensions is None:
        return False
    for kind in KINDS:
        _c_types[kind] = getattr(sys.modules["psycopg2._psycopg"], kind)
    _public["cursor"] = _interposer(_c_types["cursor"], {})
    _public["connection"] = _interposer(_c_types["connection"], {"cursor": _cursor})
    for kind in KINDS:
        if vars(extensions).get(kind) is _c_types[kind]:
            set_attribute(extensions, kind, _public[kind], undo)
    replacement = _Connect(current)
    _installed.append(replacement)
    set_attribute(psycopg2, "_connect", replacement, undo)
    # a call's caller is looked for past this module's frames (the hooked cursor() runs here)
    _state.stand_ins.add(id(globals()))
    undo.append(lambda: _state.stand_ins.discard(id(globals())))
    return True
