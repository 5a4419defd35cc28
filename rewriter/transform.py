"""The AST transformation: wrap the body of each selected function in one try block.

Pure: an ``ast.Module`` and a selection predicate in, the same tree (changed in
place) and a site table out. No I/O, no imports beyond ``ast``, no compiling.

A selected function

    def f(a, b=1):
        "doc"
        body...
        return value

becomes (``SITE`` is a placeholder constant the loader replaces with the Site
object; the ``_hw@`` names are not identifiers, so they cannot clash):

    def f(a, b=1):
        "doc"
        _hw@call = SITE.start((a, b)) if SITE.on else None
        try:
            body...
            return (_hw@result := value)
        except BaseException:
            if _hw@call is not None:
                _hw@call = SITE.error(_hw@call)
            raise
        else:
            _hw@result = None
        finally:
            if _hw@call is not None:
                SITE.end(_hw@call, _hw@result)

Why this shape:
- Each ``return`` stores its value just before returning, so the value that is
  really returned is the last one stored: ``return`` in ``finally`` wins, and a
  return cancelled by ``break``/``continue`` in ``finally`` is overwritten later,
  or by the ``else`` branch that runs when the body falls off its end.
- The bare ``raise`` re-raises the exception unchanged, with its traceback.
- ``SITE.error`` returns None, so ``finally`` reports nothing more after an error.
- The prologue runs before ``try``: a listener that blocks the call raises out of
  it without an error event being reported twice.
- No ``yield`` and no ``return`` is injected, so generators stay generators and
  no ``return`` ever sits in a ``finally`` (PEP 765).
- Positions: the prologue and the ``try`` carry the position of the first body
  statement, and every other injected node carries line -1 ("no line of its
  own"), so tracers and debuggers see exactly the line events of the original.
"""

import ast

from . import names

FUNCTION = "function"
GENERATOR = "generator"
COROUTINE = "coroutine"
ASYNC_GENERATOR = "async_generator"

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


class SiteSpec(tuple):
    """What the runtime needs to know about one hooked function.

    A plain tuple underneath so that it can be marshalled into the bytecode
    cache: (index, qualname, lineno, kind, params). ``params`` is
    (positional names, number of positional-only, vararg name or None,
    keyword-only names, kwarg name or None), in signature order.
    """

    __slots__ = ()

    def __new__(cls, index, qualname, lineno, kind, params):
        return tuple.__new__(cls, (index, qualname, lineno, kind, params))

    index = property(lambda self: self[0])
    qualname = property(lambda self: self[1])
    lineno = property(lambda self: self[2])
    kind = property(lambda self: self[3])
    params = property(lambda self: self[4])

    def __repr__(self):
        return f"SiteSpec(index={self[0]}, qualname={self[1]!r}, lineno={self[2]}, kind={self[3]!r})"


def instrument(tree, select, first_index=0):
    """Rewrite, in place, every function of ``tree`` whose qualname ``select`` accepts.

    Returns the list of SiteSpec of the rewritten functions, numbered from
    ``first_index``. Functions that are not selected are not touched at all, so
    they compile to exactly the bytecode they had.
    """
    instrumenter = _Instrumenter(select, first_index)
    instrumenter.visit(tree)
    return instrumenter.sites


class _Instrumenter(ast.NodeTransformer):
    def __init__(self, select, first_index):
        self.select = select
        self.next_index = first_index
        self.sites = []
        # (scope node, qualname) of the enclosing classes and functions
        self.scopes = []

    def qualname_of(self, node):
        """The ``__qualname__`` CPython gives ``node`` (same rules as the compiler)."""
        if not self.scopes:
            return node.name
        parent, parent_qualname = self.scopes[-1]
        if isinstance(node, (*_FUNCTIONS, ast.ClassDef)) and node.name in _explicit_globals(parent):
            return node.name
        if isinstance(parent, _FUNCTIONS):
            return f"{parent_qualname}.<locals>.{node.name}"
        return f"{parent_qualname}.{node.name}"

    def visit_ClassDef(self, node):
        self.scopes.append((node, self.qualname_of(node)))
        self.generic_visit(node)
        self.scopes.pop()
        return node

    def visit_FunctionDef(self, node):
        qualname = self.qualname_of(node)
        self.scopes.append((node, qualname))
        self.generic_visit(node)  # nested functions first: they are their own sites
        self.scopes.pop()
        if self.select(qualname):
            self._wrap(node, qualname)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef

    def _wrap(self, node, qualname):
        index = self.next_index
        self.next_index += 1
        kind = function_kind(node)
        self.sites.append(SiteSpec(index, qualname, node.lineno, kind, signature_layout(node.args)))
        site = names.site_placeholder(index)

        body = node.body
        docstring = []
        if _is_docstring(body[0]):
            docstring, body = body[:1], body[1:]
        anchor = body[0] if body else docstring[0]
        if not body:
            body = [_nowhere(ast.Pass())]
        _ReturnCapture().visit_body(body)

        prologue = ast.Assign(
            targets=[_store(names.CALL)],
            value=ast.IfExp(
                test=_attribute(site, "on"),
                body=_method_call(site, "start", [ast.Tuple(elts=_argument_loads(node.args), ctx=ast.Load())]),
                orelse=ast.Constant(None),
            ),
        )
        _place_like(prologue, anchor)

        call_is_live = ast.Compare(left=_load(names.CALL), ops=[ast.IsNot()], comparators=[ast.Constant(None)])
        on_error = ast.ExceptHandler(
            type=ast.Constant(names.BASE_EXCEPTION_PLACEHOLDER),
            name=None,
            body=[
                ast.If(
                    test=call_is_live,
                    body=[ast.Assign(targets=[_store(names.CALL)], value=_method_call(site, "error", [_load(names.CALL)]))],
                    orelse=[],
                ),
                ast.Raise(exc=None, cause=None),
            ],
        )
        fell_off_end = ast.Assign(targets=[_store(names.RESULT)], value=ast.Constant(None))
        on_exit = ast.If(
            test=ast.Compare(left=_load(names.CALL), ops=[ast.IsNot()], comparators=[ast.Constant(None)]),
            body=[ast.Expr(_method_call(site, "end", [_load(names.CALL), _load(names.RESULT)]))],
            orelse=[],
        )
        for part in (on_error, fell_off_end, on_exit):
            _place_nowhere(part)
        wrapper = ast.Try(body=body, handlers=[on_error], orelse=[fell_off_end], finalbody=[on_exit])
        _place_like(wrapper, anchor, recursive=False)
        node.body = docstring + [prologue, wrapper]


class _ReturnCapture(ast.NodeTransformer):
    """``return x`` -> ``return (_hw@result := x)`` in one function's own scope."""

    def visit_body(self, body):
        for index, statement in enumerate(body):
            body[index] = self.visit(statement)

    def visit_Return(self, node):
        value = node.value if node.value is not None else _place_like(ast.Constant(None), node)
        node.value = ast.copy_location(ast.NamedExpr(target=_store(names.RESULT), value=value), value)
        ast.copy_location(node.value.target, value)
        return node

    def _skip(self, node):
        return node  # a nested scope: its returns belong to another function

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _skip


def function_kind(node):
    """Generator, coroutine, async generator or plain function, as CPython decides it."""
    yields = any(isinstance(child, (ast.Yield, ast.YieldFrom)) for child in _own_scope_nodes(node))
    if isinstance(node, ast.AsyncFunctionDef):
        return ASYNC_GENERATOR if yields else COROUTINE
    return GENERATOR if yields else FUNCTION


def signature_layout(args):
    """(positional names, posonly count, vararg, keyword-only names, kwarg, literal defaults).

    Literal defaults (``None``, ``-1``, ``()``, ``"utf-8"`` ...) let a listener
    show only the arguments a caller changed; other defaults are left out.
    """
    positional = args.posonlyargs + args.args
    defaults = {}
    for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults):
        _add_literal(defaults, arg.arg, default)
    for arg, default in zip(args.kwonlyargs, args.kw_defaults):
        if default is not None:
            _add_literal(defaults, arg.arg, default)
    return (
        tuple(arg.arg for arg in positional),
        len(args.posonlyargs),
        args.vararg.arg if args.vararg else None,
        tuple(arg.arg for arg in args.kwonlyargs),
        args.kwarg.arg if args.kwarg else None,
        tuple(defaults.items()),
    )


def _add_literal(defaults, name, node):
    try:
        defaults[name] = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass


def _argument_loads(args):
    ordered = args.posonlyargs + args.args
    if args.vararg:
        ordered = ordered + [args.vararg]
    ordered = ordered + args.kwonlyargs
    if args.kwarg:
        ordered = ordered + [args.kwarg]
    return [_load(arg.arg) for arg in ordered]


def _own_scope_nodes(node):
    """Every node that belongs to ``node``'s own scope (not to nested scopes)."""
    stack = list(node.body)
    while stack:
        child = stack.pop()
        yield child
        if isinstance(child, _SCOPES):
            continue
        stack.extend(ast.iter_child_nodes(child))


def _explicit_globals(scope):
    """Names declared ``global`` directly in ``scope`` (they get a plain qualname)."""
    found = set()
    for child in _own_scope_nodes(scope):
        if isinstance(child, ast.Global):
            found.update(child.names)
    return found


def _is_docstring(statement):
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


def _load(name):
    return ast.Name(id=name, ctx=ast.Load())


def _store(name):
    return ast.Name(id=name, ctx=ast.Store())


def _attribute(site, attribute):
    return ast.Attribute(value=ast.Constant(site), attr=attribute, ctx=ast.Load())


def _method_call(site, method, args):
    return ast.Call(func=_attribute(site, method), args=args, keywords=[])


def _place_like(node, anchor, recursive=True):
    targets = ast.walk(node) if recursive else (node,)
    for child in targets:
        if "lineno" in child._attributes:
            child.lineno = anchor.lineno
            child.col_offset = anchor.col_offset
            child.end_lineno = anchor.end_lineno
            child.end_col_offset = anchor.end_col_offset
    return node


def _place_nowhere(node):
    for child in ast.walk(node):
        _nowhere(child)
    return node


def _nowhere(node):
    # Line -1 makes the compiler attach no line of its own to these instructions.
    if "lineno" in node._attributes:
        node.lineno = node.end_lineno = -1
        node.col_offset = node.end_col_offset = -1
    return node
