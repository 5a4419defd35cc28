"""The rewrite itself, as a specification: source in, instrumented source out.

Each test is one language feature. Output is compared through ``ast.unparse`` of
the readable tree, exactly as ``python -m rewriter.dump`` prints it.
"""

import ast
import sys
import textwrap
import types

import pytest

import rewriter
from rewriter import names


def rewrite(source, select=lambda qualname: True):
    tree = rewriter.parse(textwrap.dedent(source), "<test>")
    sites = rewriter.instrument(tree, select)
    return tree, sites


def shown(source, select=lambda qualname: True):
    tree, _ = rewrite(source, select)
    return ast.unparse(rewriter.readable_tree(tree))


def expected(text):
    return textwrap.dedent(text).strip()


WRAPPED_F = """
    def f(a, b=1):
        _hookwise_call = _hookwise_site_0.on and _hookwise_site_0.start(a, b)
        try:
            return (_hookwise_result := (a + b))
        except BaseException:
            if _hookwise_call is not None:
                _hookwise_call = _hookwise_site_0.error(_hookwise_call)
            raise
        else:
            _hookwise_result = None
        finally:
            if _hookwise_call is not None:
                _hookwise_site_0.end(_hookwise_call, _hookwise_result)
"""


def test_a_function_body_is_wrapped_in_one_try_block():
    assert shown("def f(a, b=1):\n    return a + b\n") == expected(WRAPPED_F)


def test_the_docstring_stays_the_first_statement():
    tree, _ = rewrite('def f():\n    "doc"\n    return 1\n')
    body = tree.body[0].body
    assert isinstance(body[0], ast.Expr) and body[0].value.value == "doc"
    assert isinstance(body[2], ast.Try)
    namespace = {}
    exec(_bound(tree), namespace)
    assert namespace["f"].__doc__ == "doc"


def test_a_docstring_only_function_gets_a_pass_body():
    text = shown('def f():\n    "only a docstring"\n')
    assert '"""only a docstring"""' in text and "try:\n        pass" in text


def test_every_return_stores_its_value_and_bare_return_stores_none():
    text = shown(
        """
        def f(x):
            if x:
                return
            for i in range(3):
                try:
                    return i
                finally:
                    continue
            return x * 2
        """
    )
    assert "return (_hookwise_result := None)" in text
    assert "return (_hookwise_result := i)" in text
    assert "return (_hookwise_result := (x * 2))" in text


def test_returns_of_nested_functions_belong_to_them():
    text = shown(
        """
        def outer():
            def inner():
                return 1
            return inner
        """,
        select=lambda qualname: qualname == "outer",
    )
    assert "return 1" in text.replace("(_hookwise_result := 1)", "!!")
    assert "return (_hookwise_result := inner)" in text


def test_arguments_are_passed_in_signature_order():
    text = shown("def f(a, /, b, *args, c, d=2, **kwargs):\n    pass\n")
    assert "_hookwise_site_0.start(a, b, args, c, d, kwargs)" in text
    _, sites = rewrite("def f(a, /, b, *args, c, d=2, **kwargs):\n    pass\n")
    assert sites[0].params == (("a", "b"), 1, "args", ("c", "d"), "kwargs", (("d", 2),))


def test_literal_defaults_are_recorded_and_others_are_not():
    _, sites = rewrite("def f(a, b=None, c=-1, d=(1, 'x'), e=SENTINEL, *, f=b'', g=compute(), h):\n    pass\n")
    assert dict(sites[0].params[5]) == {"b": None, "c": -1, "d": (1, "x"), "f": b""}


@pytest.mark.parametrize(
    "source, kind",
    [
        ("def f():\n    return 1\n", "function"),
        ("def f():\n    yield 1\n", "generator"),
        ("def f():\n    x = yield\n", "generator"),
        ("def f():\n    yield from ()\n", "generator"),
        ("async def f():\n    return 1\n", "coroutine"),
        ("async def f():\n    await g()\n", "coroutine"),
        ("async def f():\n    yield 1\n", "async_generator"),
        ("def f():\n    def g():\n        yield 1\n    return g\n", "function"),
        ("def f():\n    return (x for x in ())\n", "function"),
        ("def f():\n    return lambda: (yield)\n", "function"),
    ],
)
def test_function_kind_is_decided_like_cpython(source, kind):
    _, sites = rewrite(source, select=lambda qualname: qualname == "f")
    assert sites[0].kind == kind


QUALNAME_SOURCE = """
def top(): pass
class Outer:
    def method(self): pass
    class Inner:
        def deep(self): pass
    @staticmethod
    def static(): pass
    @property
    def prop(self): pass
def factory():
    def inner():
        class Local:
            def m(self): pass
        return Local
    return inner
class WithGlobal:
    global promoted
    def promoted(self): pass
async def coroutine():
    async def nested(): pass
"""


def test_qualnames_match_what_cpython_compiles():
    tree, sites = rewrite(QUALNAME_SOURCE)
    computed = sorted(spec.qualname for spec in sites)
    namespace = {}
    exec(compile(QUALNAME_SOURCE, "<q>", "exec"), namespace)
    local_class = namespace["factory"]()()
    real = sorted(
        function.__qualname__
        for function in (
            namespace["top"], namespace["Outer"].method, namespace["Outer"].Inner.deep, namespace["Outer"].static,
            namespace["Outer"].prop.fget, namespace["factory"], namespace["factory"](), local_class.m,
            namespace["promoted"], namespace["coroutine"],
        )
    )
    assert sorted(set(computed) - {"coroutine.<locals>.nested"}) == real
    assert "coroutine.<locals>.nested" in computed
    assert "WithGlobal.promoted" not in computed and "promoted" in computed
    assert "factory.<locals>.inner.<locals>.Local.m" in computed


@pytest.mark.skipif(sys.version_info < (3, 12), reason="type parameter syntax is new in 3.12")
def test_qualnames_ignore_type_parameter_scopes():
    source = "def f[T](x: T) -> T:\n    return x\nclass C[T]:\n    def m[U](self, u: U): return u\n"
    _, sites = rewrite(source)
    assert sorted(spec.qualname for spec in sites) == ["C.m", "f"]
    namespace = {}
    tree, _ = rewrite(source)
    exec(_bound(tree), namespace)
    assert namespace["C"]().m(5) == 5 and namespace["f"](3) == 3


def test_selection_is_by_qualname():
    _, sites = rewrite(QUALNAME_SOURCE, select=lambda qualname: qualname.startswith("Outer."))
    assert sorted(spec.qualname for spec in sites) == ["Outer.Inner.deep", "Outer.method", "Outer.prop", "Outer.static"]


def test_future_imports_and_module_docstring_are_untouched():
    source = '"""module doc"""\nfrom __future__ import annotations\ndef f(x: Undefined) -> int:\n    return 1\n'
    tree, _ = rewrite(source)
    assert isinstance(tree.body[0], ast.Expr) and isinstance(tree.body[1], ast.ImportFrom)
    namespace = {}
    exec(_bound(tree), namespace)
    assert namespace["__doc__"] == "module doc"
    assert namespace["f"].__annotations__ == {"x": "Undefined", "return": "int"}


def test_injected_names_cannot_be_written_by_users():
    for name in (names.CALL, names.RESULT):
        assert not name.isidentifier()
        assert name.startswith("_") and not name.startswith("__")  # skipped by import *, never mangled


def test_readable_names_avoid_collisions_with_user_names():
    text = shown("def f(_hookwise_call):\n    return _hookwise_call\n")
    assert "_hookwise_call_ = _hookwise_site_0.on and _hookwise_site_0.start(_hookwise_call)" in text
    compile(text, "<shown>", "exec")  # the dump is valid Python


def test_the_dump_of_every_syntax_form_is_valid_python():
    source = """
    import contextlib
    class C:
        def m(self, x):
            match x:
                case [a, *rest]:
                    return a
                case {"k": v}:
                    return v
                case _:
                    pass
            if (n := len(str(x))) > 3:
                return n
            return [y for y in range(3) if y]
    async def agen():
        async with contextlib.nullcontext():
            yield 1
    """
    if sys.version_info >= (3, 11):
        source += """
    def eg():
        try:
            raise ExceptionGroup("g", [ValueError()])
        except* ValueError:
            pass
    """
    text = shown(source)
    compile(text, "<shown>", "exec")


def test_functions_that_are_not_targets_compile_to_the_same_code():
    source = textwrap.dedent(
        """
        import functools
        def hooked(x):
            def inner_untouched(y):
                return y + 1
            return inner_untouched(x)
        def untouched(a, *b, **c):
            '''doc'''
            for i in range(3):
                try:
                    return i
                finally:
                    pass
        class K:
            @functools.lru_cache
            def cached(self, v):
                return [v for v in range(v)]
            async def co(self):
                return 1
        """
    )
    plain = compile(source, "<same>", "exec", dont_inherit=True)
    tree, _ = rewrite(source, select=lambda qualname: qualname == "hooked")
    rewritten = _bound(tree, "<same>")
    plain_codes = {c.co_name: c for c in _walk(plain)}
    new_codes = {c.co_name: c for c in _walk(rewritten)}
    for name in ("untouched", "inner_untouched", "cached", "co", "<listcomp>"):
        if name not in plain_codes:
            continue  # <listcomp> is inlined on 3.12+
        assert _code_fingerprint(new_codes[name]) == _code_fingerprint(plain_codes[name]), name
    assert new_codes["hooked"].co_code != plain_codes["hooked"].co_code


def test_user_node_positions_are_unchanged():
    source = "def f(a):\n    x = [a,\n         a]\n    return x[0] + \\\n        1\n"
    before = rewriter.parse(source, "<p>")
    after, _ = rewrite(source)
    user_nodes_before = [(type(n).__name__, n.lineno, n.col_offset, n.end_lineno, n.end_col_offset)
                         for n in ast.walk(before) if hasattr(n, "lineno")]
    user_nodes_after = [(type(n).__name__, n.lineno, n.col_offset, n.end_lineno, n.end_col_offset)
                        for n in ast.walk(after) if hasattr(n, "lineno") and n.lineno > 0]
    for node in user_nodes_before:
        assert node in user_nodes_after


def test_line_events_are_those_of_the_original():
    source = textwrap.dedent(
        """
        def f(x):
            y = x + 1
            if y > 2:
                return y
            for i in range(2):
                try:
                    return i
                finally:
                    continue
            return 0
        """
    )

    def lines(code):
        namespace = {}
        exec(code, namespace)
        seen = []

        def tracer(frame, event, arg):
            if frame.f_code.co_name == "f":
                seen.append((event, frame.f_lineno))
                return tracer
            return None

        sys.settrace(tracer)
        try:
            results = namespace["f"](5), namespace["f"](0)
        finally:
            sys.settrace(None)
        return results, seen

    tree, _ = rewrite(source)
    assert lines(_bound(tree, "<l>")) == lines(compile(source, "<l>", "exec"))


def _walk(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _walk(const)


def _code_fingerprint(code):
    return (
        code.co_code,
        code.co_names,
        code.co_varnames,
        code.co_freevars,
        code.co_cellvars,
        code.co_firstlineno,
        tuple(code.co_lines()),
        tuple(const for const in code.co_consts if not isinstance(const, types.CodeType)),
    )


class _NullSite:
    on = None  # what an off site holds: the prologue leaves it in the call variable


def _bound(tree, filename="<bound>"):
    """The tree compiled and bound to sites that are switched off (for code that must run)."""
    from loader import binding

    code = compile(tree, filename, "exec", dont_inherit=True)
    indices = set()
    for nested in _walk(code):
        for const in nested.co_consts:
            index = names.site_index(const)
            if index is not None:
                indices.add(index)
    return binding.bind(code, {index: _NullSite() for index in indices})


def test_injected_code_never_yields_nor_returns_from_finally():
    source = "def g(x):\n    try:\n        yield x\n    finally:\n        return\n"
    before = rewriter.parse(source, "<y>")
    tree, _ = rewrite(source)
    count = lambda t, kind: sum(isinstance(node, kind) for node in ast.walk(t))  # noqa: E731
    assert count(tree, (ast.Yield, ast.YieldFrom)) == count(before, (ast.Yield, ast.YieldFrom))
    assert count(tree, ast.Return) == count(before, ast.Return)
    injected = tree.body[0].body[1]
    assert isinstance(injected, ast.Try)
    assert not any(isinstance(node, (ast.Return, ast.Yield)) for part in injected.finalbody for node in ast.walk(part))
