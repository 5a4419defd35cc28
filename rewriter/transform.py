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
        _hw@call = SITE.on and SITE.start(a, b)
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
- Except when the cancelled return ran inside the ``finally`` of another,
  pending, return: that one goes on with its own value. So a ``break`` or
  ``continue`` that leaves a ``finally`` puts back the value ``_hw@result``
  had when that try statement began (``_hw@saved<n>``, kept just before it;
  such functions start with ``_hw@result = None``).
- The bare ``raise`` re-raises the exception unchanged, with its traceback.
- ``SITE.on`` is True or None, never False, so the prologue leaves None in
  ``_hw@call`` when the site is off; the bytecode is one instruction shorter
  than with ``start(...) if on else None`` on 3.10/3.11 (the same on 3.12+),
  and a site that is off runs eight or nine bytecodes more than the original.
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
    cache: (index, qualname, lineno, kind, params). ``params`` is what
    ``signature_layout`` returns: (positional names, number of positional-only,
    vararg name or None, keyword-only names, kwarg name or None, literal
    defaults as (name, value) pairs).
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


def instrument(tree, select, kinds=True):
    """Rewrite, in place, every function of ``tree`` whose qualname ``select`` accepts.

    Returns the list of SiteSpec of the rewritten functions, numbered from 0.
    Functions that are not selected are not touched at all, so
    they compile to exactly the bytecode they had.

    ``kinds=False`` leaves each spec's ``kind`` as None: finding yields means
    walking every expression, and the loader reads the kind from the compiled
    code's flags instead (see ``loader.binding.fill_kinds``).
    """
    instrumenter = _Instrumenter(select, kinds)
    instrumenter.statements(tree.body, None, None)
    return instrumenter.sites


# Statement fields that hold statement lists. Definitions only ever appear in
# statement lists, so the walk never needs to look inside expressions: this
# keeps the rewrite of a large module fast.
_BLOCKS = {
    ast.If: ("body", "orelse"),
    ast.For: ("body", "orelse"),
    ast.AsyncFor: ("body", "orelse"),
    ast.While: ("body", "orelse"),
    ast.With: ("body",),
    ast.AsyncWith: ("body",),
    ast.Try: ("body", "orelse", "finalbody"),
}
if hasattr(ast, "TryStar"):  # 3.11+
    _BLOCKS[ast.TryStar] = ("body", "orelse", "finalbody")


def _child_blocks(statement):
    """The statement lists nested directly in one statement (handlers and cases included)."""
    kind = type(statement)
    for field in _BLOCKS.get(kind, ()):
        yield getattr(statement, field)
    if kind is ast.Try or kind.__name__ == "TryStar":
        for handler in statement.handlers:
            yield handler.body
    elif kind is ast.Match:
        for case in statement.cases:
            yield case.body


class _Instrumenter:
    def __init__(self, select, kinds):
        self.select = select
        self.kinds = kinds
        self.next_index = 0
        self.sites = []
        self._globals = {}  # id(scope) -> names declared global directly in it

    def statements(self, body, scope, scope_qualname):
        for statement in body:
            kind = type(statement)
            if kind is ast.FunctionDef or kind is ast.AsyncFunctionDef:
                self.function(statement, scope, scope_qualname)
            elif kind is ast.ClassDef:
                self.statements(statement.body, statement, self.qualname_of(statement, scope, scope_qualname))
            else:
                for block in _child_blocks(statement):
                    self.statements(block, scope, scope_qualname)

    def function(self, node, scope, scope_qualname):
        qualname = self.qualname_of(node, scope, scope_qualname)
        self.statements(node.body, node, qualname)  # nested functions first: they are their own sites
        if self.select(qualname):
            self._wrap(node, qualname)

    def qualname_of(self, node, scope, scope_qualname):
        """The ``__qualname__`` CPython gives ``node`` (same rules as the compiler)."""
        if scope is None:
            return node.name
        if node.name in self._explicit_globals(scope):
            return node.name
        if isinstance(scope, _FUNCTIONS):
            return f"{scope_qualname}.<locals>.{node.name}"
        return f"{scope_qualname}.{node.name}"

    def _explicit_globals(self, scope):
        """Names declared ``global`` directly in ``scope`` (they get a plain qualname)."""
        found = self._globals.get(id(scope))
        if found is None:
            found = self._globals[id(scope)] = set()
            for _, statement in _own_statements(scope.body):
                if type(statement) is ast.Global:
                    found.update(statement.names)
        return found

    def _wrap(self, node, qualname):
        index = self.next_index
        self.next_index += 1
        kind = function_kind(node) if self.kinds else None
        self.sites.append(SiteSpec(index, qualname, node.lineno, kind, signature_layout(node.args)))
        site = names.site_placeholder(index)

        body = node.body
        docstring = []
        if _is_docstring(body[0]):
            docstring, body = body[:1], body[1:]
        anchor = body[0] if body else docstring[0]
        if not body:
            body = [ast.Pass(**_NOWHERE)]
        has_finally = _capture_returns(body, type(node) is ast.AsyncFunctionDef)
        restores = has_finally and _restore_cancelled_returns(body)
        # Positions are given at construction: walking the new nodes afterwards
        # was a measurable share of rewriting a large module.
        here = _location_of(anchor)
        prologue = ast.Assign(
            targets=[_store(names.CALL, here)],
            value=ast.BoolOp(
                op=ast.And(),
                values=[
                    _attribute(site, "on", here),
                    _method_call(site, "start", _argument_loads(node.args, here), here),
                ],
                **here,
            ),
            **here,
        )
        on_error = ast.ExceptHandler(
            type=ast.Constant(names.BASE_EXCEPTION_PLACEHOLDER, **_NOWHERE),
            name=None,
            body=[
                ast.If(
                    test=_call_is_live(),
                    body=[_assign(names.CALL, _method_call(site, "error", [_load(names.CALL, _NOWHERE)], _NOWHERE))],
                    orelse=[],
                    **_NOWHERE,
                ),
                ast.Raise(exc=None, cause=None, **_NOWHERE),
            ],
            **_NOWHERE,
        )
        fell_off_end = _assign(names.RESULT, ast.Constant(None, **_NOWHERE))
        on_exit = ast.If(
            test=_call_is_live(),
            body=[ast.Expr(_method_call(site, "end", [_load(names.CALL, _NOWHERE), _load(names.RESULT, _NOWHERE)], _NOWHERE),
                           **_NOWHERE)],
            orelse=[],
            **_NOWHERE,
        )
        wrapper = ast.Try(body=body, handlers=[on_error], orelse=[fell_off_end], finalbody=[on_exit], **here)
        result_known = [_assign(names.RESULT, ast.Constant(None, **_NOWHERE))] if restores else []
        node.body = docstring + [prologue, *result_known, wrapper]


def _call_is_live():
    """``_hw@call is not None``, positioned nowhere."""
    return ast.Compare(left=_load(names.CALL, _NOWHERE), ops=[ast.IsNot()],
                       comparators=[ast.Constant(None, **_NOWHERE)], **_NOWHERE)


def _capture_returns(body, is_async):
    """Make every ``return`` of the function store what it returns, in place.

    ``return x`` becomes ``return (_hw@result := x)``. A bare ``return`` in an
    ``async def`` becomes ``_hw@result = None`` followed by the same bare
    ``return``: an async generator may not return a value, not even None, and
    telling it from a coroutine would mean walking every expression.

    Returns whether the function has a try statement with a ``finally``.
    """
    has_finally = False
    for block in _own_blocks(body):
        position = 0
        while position < len(block):
            statement = block[position]
            if isinstance(statement, _TRY_STATEMENTS) and statement.finalbody:
                has_finally = True
            elif type(statement) is ast.Return:
                if statement.value is None and is_async:
                    block.insert(position, _assign(names.RESULT, ast.Constant(None, **_NOWHERE)))
                    position += 1
                else:
                    _capture_return(statement)
            position += 1
    return has_finally


def _capture_return(node):
    """``return x`` -> ``return (_hw@result := x)``, in place."""
    value = node.value if node.value is not None else ast.Constant(None, **_location_of(node))
    where = _location_of(value)
    node.value = ast.NamedExpr(target=_store(names.RESULT, where), value=value, **where)


def _restore_cancelled_returns(body):
    """Make each ``break``/``continue`` that leaves a ``finally`` restore ``_hw@result``, in place.

    Such a jump cancels whatever return began since its try statement did,
    and a return pending from before goes on with the value it stored. The
    value to restore is the one of the outermost try statement the jump leaves
    through its ``finally``. Returns whether the function has any such jump.
    """
    claimed = set()  # ids of the jumps an outer try statement already restores
    edits = []  # (block, anchor statement, statement to put before it)
    saves = 0
    for block, statement in _own_statements(body):
        if not isinstance(statement, _TRY_STATEMENTS) or not statement.finalbody:
            continue
        jumps = [(where, jump) for where, jump in _jumps_out_of(statement.finalbody) if id(jump) not in claimed]
        if not jumps:
            continue
        saved = f"{names.SAVED_RESULT}{saves}"
        saves += 1
        edits.append((block, statement, _assign(saved, _load(names.RESULT, _NOWHERE))))
        for jump_block, jump in jumps:
            claimed.add(id(jump))
            edits.append((jump_block, jump, _assign(names.RESULT, _load(saved, _NOWHERE))))
    for block, anchor, inserted in edits:
        block.insert(next(i for i, statement in enumerate(block) if statement is anchor), inserted)
    return saves > 0


_TRY_STATEMENTS = (ast.Try, ast.TryStar) if hasattr(ast, "TryStar") else (ast.Try,)
_LOOPS = (ast.For, ast.AsyncFor, ast.While)


def _jumps_out_of(finalbody):
    """(block, statement) of each break/continue in ``finalbody`` whose loop is outside it."""
    stack = [finalbody]
    while stack:
        block = stack.pop()
        for statement in block:
            kind = type(statement)
            if kind is ast.Break or kind is ast.Continue:
                yield block, statement
            elif kind in _LOOPS:
                stack.append(statement.orelse)  # a loop's own body jumps within it; its else does not
            elif kind is not ast.FunctionDef and kind is not ast.AsyncFunctionDef and kind is not ast.ClassDef:
                stack.extend(_child_blocks(statement))


def _assign(name, value):
    """``name = value``, positioned nowhere."""
    return ast.Assign(targets=[_store(name, _NOWHERE)], value=value, **_NOWHERE)


def _own_blocks(body):
    """The statement lists of a scope's body, nested blocks included, nested scopes excluded."""
    stack = [body]
    while stack:
        block = stack.pop()
        yield block
        for statement in block:
            kind = type(statement)
            if kind is ast.FunctionDef or kind is ast.AsyncFunctionDef or kind is ast.ClassDef:
                continue
            stack.extend(_child_blocks(statement))


def _own_statements(body):
    """(block, statement) for every statement of a scope's body, outer statements first.

    Nested blocks are included, nested scopes are not.
    """
    stack = [(body, statement) for statement in reversed(body)]
    while stack:
        block, statement = stack.pop()
        yield block, statement
        kind = type(statement)
        if kind is ast.FunctionDef or kind is ast.AsyncFunctionDef or kind is ast.ClassDef:
            continue
        for child in reversed(list(_child_blocks(statement))):
            stack.extend((child, nested) for nested in reversed(child))


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


def _argument_loads(args, location):
    ordered = args.posonlyargs + args.args
    if args.vararg:
        ordered = ordered + [args.vararg]
    ordered = ordered + args.kwonlyargs
    if args.kwarg:
        ordered = ordered + [args.kwarg]
    return [_load(arg.arg, location) for arg in ordered]


def _own_scope_nodes(node):
    """Every node that belongs to ``node``'s own scope (not to nested scopes)."""
    stack = list(node.body)
    while stack:
        child = stack.pop()
        yield child
        if isinstance(child, _SCOPES):
            continue
        stack.extend(ast.iter_child_nodes(child))


def _is_docstring(statement):
    return (
        isinstance(statement, ast.Expr)
        and isinstance(statement.value, ast.Constant)
        and isinstance(statement.value.value, str)
    )


_LOAD = ast.Load()
_STORE = ast.Store()
# Line -1 makes the compiler attach no line of its own to these instructions.
_NOWHERE = {"lineno": -1, "col_offset": -1, "end_lineno": -1, "end_col_offset": -1}


def _location_of(node):
    return {"lineno": node.lineno, "col_offset": node.col_offset,
            "end_lineno": node.end_lineno, "end_col_offset": node.end_col_offset}


def _load(name, location):
    return ast.Name(id=name, ctx=_LOAD, **location)


def _store(name, location):
    return ast.Name(id=name, ctx=_STORE, **location)


def _attribute(site, attribute, location):
    return ast.Attribute(value=ast.Constant(site, **location), attr=attribute, ctx=_LOAD, **location)


def _method_call(site, method, args, location):
    return ast.Call(func=_attribute(site, method, location), args=args, keywords=[], **location)
