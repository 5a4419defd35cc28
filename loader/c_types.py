"""Methods of C types, served through the objects their module makes: sqlite3's Connection and Cursor,
and psycopg2's connection and cursor (loader/psycopg2_types.py, the same way with its own details).

A C type's methods cannot be replaced (its attributes are read-only), so a
target such as ``sqlite3:Connection.execute`` is served the way the DB-API
integrations of OpenTelemetry and ddtrace do it, without their proxy object:
``sqlite3.connect`` is replaced by a callable that passes ``factory=`` a
subclass of the factory the program asked for (``sqlite3.Connection`` by
default), and that subclass holds the hooked methods. Its ``cursor()`` makes
cursors of a subclass of the requested cursor factory in the same way. So
``isinstance(conn, sqlite3.Connection)`` holds, a program's own ``factory=``
keeps working (and keeps its name), and everything not hooked is the C type's.

``conn.execute(...)`` (and ``executemany``, ``executescript``) is "make a
cursor, call its method": Python 3.10 does it by calling the two methods by
name, 3.11 and later inside C. The subclass does it in Python on every
version, as 3.10 does, so both ``conn.execute`` and ``conn.cursor().execute``
reach a hooked ``Cursor.execute`` and the cursor ``conn.execute`` returns is
hooked too. Its frame is taken out of tracebacks.

While installed, ``sqlite3.Connection`` and ``sqlite3.Cursor`` name the
hooked subclasses of the C types (so ``type(conn) is sqlite3.Connection``
holds, ``sqlite3.Connection(...)`` made directly is hooked, and so is a class
the program derives from them).

Limits (said in the README): a connection made before the hooks were
installed is the C type's; a program's subclass that overrides a method in
Python keeps its own.
"""

import sys
import types

from hookwise import _state, semantics
from hookwise.own import is_own_module

from . import psycopg2_types, wrappers  # at import: once the engine is hidden, "from . import" would find another loader

# (module, qualname) of the C types served here
SERVED = {("sqlite3", "Connection"), ("sqlite3", "Cursor")} | {
    (psycopg2_types.MODULE, kind) for kind in psycopg2_types.KINDS}

_SHORTCUTS = ("execute", "executemany", "executescript")  # Connection methods that make a cursor
_EMULATE_SHORTCUTS = sys.version_info >= (3, 11)  # 3.10 calls cursor() and the cursor's method by name

_methods = {"Connection": {}, "Cursor": {}}  # qualname -> {method name: callable to put on the subclass}
_subclasses = {"Connection": {}, "Cursor": {}}  # qualname -> {program's class: hooked subclass}
_c_types = {}  # qualname -> the C type itself
_public = {}  # qualname -> the hooked subclass that sqlite3.Connection / sqlite3.Cursor name while installed
_installed = []  # the _Connect in place, if any


def prepare(module, targets, undo, set_attribute):
    """Before a module's targets are looked for: put the connect stand-in in place if they need it.

    First, so that a ``sqlite3:connect`` target of the same module wraps the
    stand-in (and reports the program's own arguments), not the other way round.
    """
    def may_name_a_method(module, kinds):
        return any(_may_name_a_served_method(target, module, kinds) for target in targets)

    psycopg2_types.prepare(module, may_name_a_method, undo, set_attribute)
    if module.__name__ not in ("sqlite3", "sqlite3.dbapi2"):
        return
    if may_name_a_method(module, ("Connection", "Cursor")):
        _install_connect(undo, set_attribute)


def _may_name_a_served_method(target, module, kinds):
    """True when ``target`` names, or its wildcard matches, a method of one of the C types ``kinds``."""
    if target.qualname_is_literal:
        return target.qualname.partition(".")[0] in kinds
    for kind in kinds:
        cls = c_type_of(vars(module).get(kind))
        if serves(cls) and any(
            target.matches_qualname(f"{kind}.{name}")
            for name, value in vars(cls).items()
            if isinstance(value, types.MethodDescriptorType) and not name.startswith("__")
        ):
            return True
    return False


def is_stand_in(value):
    """True for the callable that stands for ``sqlite3.connect`` while installed (a wildcard matches it)."""
    return isinstance(value, _Connect) or psycopg2_types.is_stand_in(value)


def serves(cls):
    """True for a C type whose methods this module can serve."""
    return isinstance(cls, type) and (cls.__module__, cls.__qualname__) in SERVED


def c_type_of(holder):
    """The C type that ``holder`` stands for when it is one of the public hooked classes, else ``holder``."""
    for kind, public in _public.items():
        if holder is public:
            return _c_types[kind]
    for kind, public in psycopg2_types.public_types().items():
        if holder is public:
            return psycopg2_types.c_type(kind)
    return holder


def serve_method(cls, name, wrapper, undo, set_attribute):
    """Put ``wrapper`` (a hooked method of the C type ``cls``) on every connection or cursor made from now on.

    ``set_attribute(holder, key, value, undo)`` is how the patcher sets an
    attribute with its undo.
    """
    kind = cls.__qualname__
    if cls.__module__ == psycopg2_types.MODULE:
        psycopg2_types.serve_method(kind, name, wrapper, undo, set_attribute)
        return
    if kind == "Connection" and (name == "cursor" or (_EMULATE_SHORTCUTS and name in _SHORTCUTS)):
        # the hooked method runs hookwise's Python version of it (see the module docstring)
        wrapper = wrappers.make_wrapper(wrapper.__hookwise_site__, _connection_method(name))
    _methods[kind][name] = wrapper
    for subclass in list(_subclasses[kind].values()):  # made before this target was served
        set_attribute(subclass, name, wrapper, undo)
    _install_connect(undo, set_attribute)  # if prepare did not (the targets named another alias)


def forget():
    """After an uninstall: nothing is served any more."""
    for table in (_methods, _subclasses):
        for entries in table.values():
            entries.clear()
    _c_types.clear()
    _public.clear()
    _installed.clear()
    psycopg2_types.forget()


# -- the subclasses -------------------------------------------------------------


def _sqlite3():
    return sys.modules["sqlite3"]


def hooked_connection_class(factory):
    """The subclass of the program's connection ``factory`` that holds the hooked methods."""
    return _subclass("Connection", factory)


def hooked_cursor_class(factory):
    return _subclass("Cursor", factory)


def _subclass(kind, factory):
    if not (isinstance(factory, type) and issubclass(factory, _c_types[kind])):
        return factory  # a callable that makes connections some other way: left as it is
    public = _public.get(kind)
    if public is not None and issubclass(factory, public):
        return factory  # ours, or the program's subclass of sqlite3.Connection made while installed
    made = _subclasses[kind].get(factory)
    if made is None:
        namespace = {}
        if kind == "Connection":
            namespace["cursor"] = _connection_method("cursor")
            if _EMULATE_SHORTCUTS:
                namespace.update((name, _connection_method(name)) for name in _SHORTCUTS)
        namespace.update(_methods[kind])  # the hooked ones, over the plain versions
        # named as the program's class, so reprs and error messages read as without hookwise
        namespace.update(__module__=factory.__module__, __qualname__=factory.__qualname__,
                         __doc__=factory.__doc__, _hookwise_served=True)
        made = _subclasses[kind][factory] = type(factory.__name__, (factory,), namespace)
    return made


# -- the Python versions of the Connection methods that make cursors --------------


def _connection_method(name):
    if name == "cursor":
        def cursor(self, *args, **kwargs):
            try:
                args, kwargs = _with_hooked_factory(args, kwargs)
                return _c_types["Connection"].cursor(self, *args, **kwargs)
            except BaseException as exc:
                _drop_frames_of(exc, cursor.__code__)
                raise

        return cursor

    def shortcut(self, *args, **kwargs):
        try:
            return getattr(_c_types["Connection"].cursor(self, _public["Cursor"]), name)(*args, **kwargs)
        except BaseException as exc:
            _drop_frames_of(exc, shortcut.__code__)
            raise

    shortcut.__name__ = shortcut.__qualname__ = name
    return shortcut


def _with_hooked_factory(args, kwargs):
    """``cursor(factory)`` / ``cursor(factory=...)`` / ``cursor()`` with the factory's hooked subclass."""
    if args:
        return (hooked_cursor_class(args[0]), *args[1:]), kwargs
    if "factory" in kwargs:
        return args, dict(kwargs, factory=hooked_cursor_class(kwargs["factory"]))
    return args, dict(kwargs, factory=_public["Cursor"])


def _drop_frames_of(exc, *codes):
    """The traceback the program would see without hookwise: none of this module's frames."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code in codes:
        tb = tb.tb_next
    if tb is not exc.__traceback__:
        exc.__traceback__ = tb


# -- sqlite3.connect ---------------------------------------------------------------


_PARAMETERS = ("database", "timeout", "detect_types", "isolation_level", "check_same_thread", "factory",
               "cached_statements", "uri")
_POSITIONAL_DEPRECATED = sys.version_info >= (3, 13)
_POSITIONAL_WARNING = (  # CPython 3.13's words (Modules/_sqlite/module.c)
    "Passing more than 1 positional argument to {function}() is deprecated. Parameters 'timeout', "
    "'detect_types', 'isolation_level', 'check_same_thread', 'factory', 'cached_statements' and 'uri' will "
    "become keyword-only parameters in Python 3.15.")


def _init_in_python(cls):
    """True when ``cls`` has an ``__init__`` written in Python (a program's factory), not only the C type's."""
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            return isinstance(vars(klass)["__init__"], types.FunctionType)
    return False


def _remember_database(connection, args, kwargs):
    # what the SQL events name as the database (sqlite3 does not say it): as the program gave it
    semantics.remember_sqlite_database(connection, args[0] if args else kwargs.get("database"))


class _Connect:
    """Stands for ``sqlite3.connect``: the same call, with ``factory=`` the hooked subclass.

    Not a function, so that a ``sqlite3:connect`` target wraps it as the
    builtin it stands for (and its events name ``sqlite3:connect``).
    """

    _FACTORY_POSITION = 5  # connect(database, timeout, detect_types, isolation_level, check_same_thread, factory, ...)

    def __init__(self, original):
        self._original = original
        # what the patcher and the events read: the names of the function it stands for
        self.__module__, self.__name__, self.__qualname__ = "sqlite3", "connect", "connect"
        self.__doc__ = getattr(original, "__doc__", None)

    def __call__(self, *args, **kwargs):
        try:
            if _POSITIONAL_DEPRECATED and 1 < len(args) <= len(_PARAMETERS):
                return self._connect_as_3_13_does(args, kwargs)
            if len(args) > self._FACTORY_POSITION:
                index = self._FACTORY_POSITION
                args = (*args[:index], hooked_connection_class(args[index]), *args[index + 1:])
            else:
                kwargs["factory"] = hooked_connection_class(kwargs.get("factory", _public["Connection"]))
            connection = self._original(*args, **kwargs)
            _remember_database(connection, args, kwargs)
            return connection
        except BaseException as exc:
            _drop_frames_of(exc, _Connect.__call__.__code__, _Connect._connect_as_3_13_does.__code__)
            raise

    def _connect_as_3_13_does(self, args, kwargs):
        """3.13's connect given positional arguments after ``database``: warn, audit, call the factory.

        That is all its C code does (Modules/_sqlite/module.c), done here so
        that each deprecation warning names the line it names without
        hookwise: the C function would name its caller, this frame. The
        factory's own warning comes from the C ``Connection.__init__``, which
        names its caller: a factory's Python ``__init__`` passing the
        arguments on, or else the program's line.
        """
        import warnings

        level, frame = 3, sys._getframe(2)  # the caller of __call__, past pure-Python wrappers of connect
        while frame is not None and frame.f_code is wrappers.WRAPPER_CODE:
            level, frame = level + 1, frame.f_back
        warnings.warn(_POSITIONAL_WARNING.format(function="sqlite3.connect"), DeprecationWarning, stacklevel=level)
        index = self._FACTORY_POSITION
        factory = hooked_connection_class(args[index] if len(args) > index else kwargs.get("factory", _public["Connection"]))
        if len(args) > index:
            args = (*args[:index], factory, *args[index + 1:])
        sys.audit("sqlite3.connect", args[0])
        if _init_in_python(factory):
            connection = factory(*args, **kwargs)
        else:
            warnings.warn(_POSITIONAL_WARNING.format(function="_sqlite3.Connection"), DeprecationWarning,
                          stacklevel=level)
            connection = factory(args[0], **dict(kwargs, **dict(zip(_PARAMETERS[1:], args[1:]))))
        sys.audit("sqlite3.connect/handle", connection)
        _remember_database(connection, args, kwargs)
        return connection

    def __repr__(self):
        return repr(self._original)

    def __reduce__(self):
        return "connect"  # pickled by name, like the function it stands for


def _install_connect(undo, set_attribute):
    """Replace ``connect`` in sqlite3's modules and wherever a loaded module holds it (once).

    And ``sqlite3.Connection`` / ``sqlite3.Cursor`` (in ``sqlite3`` and
    ``sqlite3.dbapi2``) name the hooked subclasses meanwhile, so that
    ``type(sqlite3.connect(...)) is sqlite3.Connection`` still holds (CPython's
    own tests check it), a class the program derives from them is hooked by
    inheritance, and ``sqlite3.Connection(...)`` made directly is hooked too.
    """
    if _installed:
        return
    sqlite3 = _sqlite3()
    current = vars(sqlite3).get("connect")
    if current is None or isinstance(current, _Connect):
        return
    for kind in ("Connection", "Cursor"):
        _c_types[kind] = vars(sqlite3)[kind]
    for kind in ("Connection", "Cursor"):
        _public[kind] = _subclass(kind, _c_types[kind])
        for public_module in (sqlite3, sys.modules.get("sqlite3.dbapi2")):
            if public_module is not None and vars(public_module).get(kind) is _c_types[kind]:
                set_attribute(public_module, kind, _public[kind], undo)
    replacement = _Connect(current)
    _installed.append(replacement)
    # a call's caller is looked for past this module's frames, and past the
    # pure-Python wrapper of a hooked shortcut (Connection.execute) above them
    stand_ins = (id(globals()), id(vars(wrappers)))
    _state.stand_ins.update(stand_ins)
    for name, module in list(sys.modules.items()):
        namespace = getattr(module, "__dict__", None)
        if type(namespace) is not dict or is_own_module(name, module):
            continue
        for key, value in list(namespace.items()):
            if value is current:
                set_attribute(module, key, replacement, undo)
    undo.append(_installed.clear)
    undo.append(lambda: _state.stand_ins.difference_update(stand_ins))

