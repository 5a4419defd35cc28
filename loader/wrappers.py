"""Wrapper functions for callables that cannot be rewritten (C builtins, no source).

A wrapper reports the call to its Site and calls the original. It is a new
Python frame, so the callables that look at their caller's frame need help:

- ``exec`` / ``eval`` without namespaces use the caller's globals and locals:
  the wrapper passes the real caller's namespaces on;
- ``exec`` / ``eval`` of a string and ``compile`` inherit the caller's
  ``from __future__`` flags: the wrapper passes the caller's flags on;
- callables whose whole job is to look at the caller (``locals()``,
  ``sys._getframe`` ...) cannot be wrapped at all (``UNWRAPPABLE``).

On an exception the wrapper removes its own frame from the traceback, so the
program sees the traceback it would see without hookwise (on 3.11+; 3.10's
bare ``raise`` restores the traceback it saved, frame included).

Calls made by the import system itself (writing ``.pyc`` files with
``os.open``, for instance) are not the program's and are not reported.
"""

import __future__
import sys

from hookwise import _originals, accel, semantics

_getframe = _originals.getframe
_exc_info = _originals.exc_info

_FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag

# Callers whose calls are the interpreter's own business.
_QUIET_CALLERS = frozenset(
    (
        "importlib._bootstrap",
        "importlib._bootstrap_external",
        "_frozen_importlib",
        "_frozen_importlib_external",
        "zipimport",
    )
)

if accel.ACTIVE:
    accel.speedups.configure(
        quiet_globals=tuple(
            vars(module)
            for module in {id(m): m for m in map(sys.modules.get, _QUIET_CALLERS) if m is not None}.values()
        )
    )

# (module, name) -> why it cannot be wrapped
UNWRAPPABLE = {
    ("builtins", "locals"): "it returns its caller's local variables",
    ("builtins", "globals"): "it returns its caller's global variables",
    ("builtins", "vars"): "without an argument it returns its caller's local variables",
    ("builtins", "dir"): "without an argument it lists its caller's local names",
    ("builtins", "breakpoint"): "it stops in its caller's frame",
    ("builtins", "__build_class__"): "the interpreter calls it with the class body's frame",
    ("sys", "_getframe"): "it counts frames from its caller",
    ("sys", "_getframemodulename"): "it counts frames from its caller",
    ("sys", "exc_info"): "it reports the exception its caller is handling",
    ("sys", "exception"): "it reports the exception its caller is handling",
    ("warnings", "warn"): "its stacklevel counts frames from its caller",
    ("_warnings", "warn"): "its stacklevel counts frames from its caller",
}


def make_wrapper(site, original, adjust=None, skip=None):
    """A callable that reports calls to ``site`` and calls ``original``.

    With the C accelerator this is a ``_speedups.Wrapper``: no Python frame, so
    the original sees its real caller and ``adjust`` is not needed. In pure
    Python it is a function; ``adjust(frame, args, kwargs) -> (args, kwargs)``
    rewrites the arguments passed to the original (listeners still see what
    the program passed). ``skip(caller_globals, first_argument)``, when given,
    is true for calls that are not reported at all (``hookwise.stdlib_internals``).
    """
    if site.kind in _SUSPENDING:
        return _suspending_wrapper(site, original)
    if accel.ACTIVE:
        wrapper = accel.speedups.Wrapper(site, original, skip)
        site.code = None  # the call record keeps the caller's frame instead
        _copy_metadata(wrapper, original)
        return wrapper
    wrapper = _python_wrapper(site, original, adjust, skip)
    site.code = WRAPPER_CODE
    if not hasattr(type(original), "__get__"):
        wrapper = _standing_for_a_builtin(wrapper, original)
    wrapper.__hookwise_site__ = site
    wrapper.__hookwise_original__ = original
    _copy_metadata(wrapper, original)
    return wrapper


# -- generator and coroutine functions ---------------------------------------------
# A Python generator or coroutine function without source (a module installed as
# .pyc only) returns its generator or coroutine at once: a plain wrapper would end
# the call there and report that object. These wrappers are a generator and a
# coroutine themselves, so that the call starts when it first runs and ends with
# what it returns, as a rewritten one does (async generators: see the README).

_CO_GENERATOR, _CO_COROUTINE = 0x20, 0x80


def function_kind(function):
    """'generator', 'coroutine' or 'function': how a wrapped Python function runs."""
    flags = function.__code__.co_flags
    if flags & _CO_COROUTINE:
        return "coroutine"
    if flags & _CO_GENERATOR:
        return "generator"
    return "function"


def _generator_wrapper(site, original):
    def wrapper(*args, **kwargs):
        call = site.start(args, kwargs) if site.on else None
        try:
            result = yield from original(*args, **kwargs)
        except BaseException as exc:
            if call is not None:
                site.error(call)  # GeneratorExit ends it normally
            _hide_frame_of(_GENERATOR_WRAPPER_CODE)
            if _BARE_RAISE_RESTORES_TRACEBACK:
                raise exc  # as in _python_wrapper
            raise
        if call is not None:
            site.end(call, result)
        return result

    return wrapper


def _coroutine_wrapper(site, original):
    async def wrapper(*args, **kwargs):
        call = site.start(args, kwargs) if site.on else None
        try:
            result = await original(*args, **kwargs)
        except BaseException as exc:
            if call is not None:
                site.error(call)
            _hide_frame_of(_COROUTINE_WRAPPER_CODE)
            if _BARE_RAISE_RESTORES_TRACEBACK:
                raise exc  # as in _python_wrapper
            raise
        if call is not None:
            site.end(call, result)
        return result

    return wrapper


_GENERATOR_WRAPPER_CODE = _generator_wrapper(None, None).__code__
_COROUTINE_WRAPPER_CODE = _coroutine_wrapper(None, None).__code__
_SUSPENDING = {"generator": (_generator_wrapper, _GENERATOR_WRAPPER_CODE),
               "coroutine": (_coroutine_wrapper, _COROUTINE_WRAPPER_CODE)}


def _suspending_wrapper(site, original):
    make, code = _SUSPENDING[site.kind]
    wrapper = make(site, original)
    site.code = code  # its frame is the call's: the caller is the frame that drives it
    wrapper.__hookwise_site__ = site
    wrapper.__hookwise_original__ = original
    _copy_metadata(wrapper, original)
    return wrapper


def _hide_frame_of(code):
    exc = _exc_info()[1]
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame.f_code is code:
        exc.__traceback__ = tb.tb_next


def _standing_for_a_builtin(function, original):
    """A callable that, like a C builtin, does not bind as a method when stored in a class.

    Its calls still run ``function`` (the wrapper frame), which is what the
    call record and the traceback cleanup look for.
    """
    kind = type(
        "hookwise_builtin_wrapper",
        (),
        {
            "__slots__": ("__dict__",),
            "__call__": staticmethod(function),
            "__repr__": lambda self: repr(original),
            "__reduce__": lambda self: self.__qualname__,  # pickled by name, like the builtin
        },
    )
    return kind()


def _python_wrapper(site, original, adjust, skip=None):
    def wrapper(*args, **kwargs):
        call = None
        if site.on:
            caller = _getframe(1)
            while caller.f_code is WRAPPER_CODE and caller.f_back is not None:  # called by another wrapper's C
                caller = caller.f_back  # code (3.10's open_code opens through _io.open): whose call is it?
            caller_globals = caller.f_globals
            if caller_globals.get("__name__") not in _QUIET_CALLERS and (
                skip is None or not _skipped(skip, caller_globals, args)
            ):
                call = site.start(args, kwargs)
        try:
            # inside the try: adjusting compiles the code for exec/eval, and its
            # SyntaxError is the call's own error, reported and shown as such
            if adjust is not None:
                args, kwargs = adjust(_getframe(1), args, kwargs)
            result = original(*args, **kwargs)
        except BaseException as exc:
            if call is not None:
                site.error(call)
            _hide_wrapper_frame()
            if _BARE_RAISE_RESTORES_TRACEBACK:
                raise exc  # keeps the edited traceback, plus this one frame (see README, known limits)
            raise
        if call is not None:
            site.end(call, result)
        return result

    return wrapper


def statement_skip(other=None, name="sql"):
    """The C wrapper's ``skip`` for a statement's site: ``runtime.StatementSite.start``'s test, which it bypasses.

    (The pure wrapper calls ``site.start``, which makes the test itself.) Made
    in C (``hookwise.semantics.statement_skip_in_c``): it runs before every
    call of the wrapped method, and reads frames without a Python frame of its
    own or an audit event per frame. ``other``: a skip the wrapper has anyway
    (the default set's filter), asked first.
    """
    return semantics.statement_skip_in_c(other, name, _OWN_GLOBALS)


def _skipped(skip, caller_globals, args):
    try:
        return bool(skip(caller_globals, args[0] if args else None))
    except Exception:  # never hide a call by mistake
        return False


# On 3.10 a bare ``raise`` re-raises with the traceback saved when the
# exception was caught, whatever was done to it since.
_BARE_RAISE_RESTORES_TRACEBACK = sys.version_info < (3, 11)


_OWN_GLOBALS = globals()

# Every Python wrapper shares this code object: it identifies wrapper frames.
WRAPPER_CODE = _python_wrapper(None, None, None).__code__


def _hide_wrapper_frame():
    """Take the wrapper's frame, and those of the adjuster under it, out of the raised exception."""
    exc = _exc_info()[1]
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame.f_code is WRAPPER_CODE:
        tb = tb.tb_next
        while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
            tb = tb.tb_next  # a SyntaxError from compiling exec's source in the adjuster
        exc.__traceback__ = tb


def _copy_metadata(wrapper, original):
    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        try:
            setattr(wrapper, attribute, getattr(original, attribute))
        except (AttributeError, TypeError):
            pass
    try:
        wrapper.__dict__.update(getattr(original, "__dict__", {}))
    except (AttributeError, TypeError):
        pass
    wrapper.__wrapped__ = original


def adjuster_for(module, name):
    """The argument adjuster a builtin needs, or None."""
    if module == "builtins" and name in ("exec", "eval"):
        return _exec_adjuster(name)
    if module == "builtins" and name == "compile":
        return _compile_adjust
    return None


# -- exec / eval ------------------------------------------------------------

# 3.13 made globals and locals of exec/eval keyword arguments too.
_NAMESPACE_KEYWORDS = sys.version_info >= (3, 13)


def _exec_adjuster(mode):
    def adjust(frame, args, kwargs):
        if not args:
            return args, kwargs  # let the original raise its own TypeError
        source, rest = args[0], list(args[1:])
        kwargs = dict(kwargs)
        globals_ = rest[0] if len(rest) > 0 else (kwargs.pop("globals", None) if _NAMESPACE_KEYWORDS else None)
        locals_ = rest[1] if len(rest) > 1 else (kwargs.pop("locals", None) if _NAMESPACE_KEYWORDS else None)
        extra = rest[2:]
        if globals_ is None:
            globals_ = frame.f_globals
            if locals_ is None:
                locals_ = _caller_locals(frame)
        source = _with_future_flags(frame, source, mode, kwargs)
        return (source, globals_, locals_, *extra), kwargs

    return adjust


def _caller_locals(frame):
    """What ``locals()`` gives in ``frame``: a snapshot dict for functions on 3.13+."""
    namespace = frame.f_locals
    if type(namespace) is not dict:  # 3.13: a write-through proxy; exec() uses a snapshot
        namespace = dict(namespace)
    return namespace


def _with_future_flags(frame, source, mode, kwargs):
    flags = frame.f_code.co_flags & _FUTURE_FLAGS
    if not flags or "closure" in kwargs or not isinstance(source, (str, bytes, bytearray)):
        return source
    if mode == "eval":  # eval() ignores leading blanks, compile() does not
        source = source.lstrip(" \t" if isinstance(source, str) else b" \t")
    return _originals.compile(source, "<string>", mode, flags, True)


# -- compile ----------------------------------------------------------------

def _compile_adjust(frame, args, kwargs):
    flags = frame.f_code.co_flags & _FUTURE_FLAGS
    if not flags:
        return args, kwargs
    args = list(args)
    kwargs = dict(kwargs)
    dont_inherit = args[4] if len(args) > 4 else kwargs.get("dont_inherit", False)
    if dont_inherit:
        return args, kwargs
    if len(args) > 3:
        if isinstance(args[3], int):
            args[3] = args[3] | flags
    elif isinstance(kwargs.get("flags", 0), int):
        kwargs["flags"] = kwargs.get("flags", 0) | flags
    return args, kwargs
