"""Bind compiled, rewritten code to live Site objects.

The rewriter leaves placeholder constants where a hooked function refers to its
call site (and to ``BaseException``). After compiling, and after loading from
the bytecode cache, those constants are swapped for the real objects: code
objects are immutable, so every code object on the path is replaced with
``code.replace(co_consts=...)``. Code objects without placeholders are kept
as they are, so functions that are not targets keep their exact bytecode.
"""

from types import CodeType

from hookwise import semantics
from hookwise.runtime import REGISTRY
from rewriter import names


def create_sites(site_table, module_names, registry=REGISTRY):
    """One Site per entry of the rewriter's site table, registered with the runtime."""
    sites = {}
    for index, qualname, _lineno, kind, params in site_table:
        sites[index] = registry.new_site(module_names, qualname, kind, params)
    return sites


def bind(code, sites):
    """``code`` with every placeholder replaced; each Site learns the code object it watches."""
    # placeholder string -> what replaces it: one dict lookup per string constant
    # (binding runs on every import, cached or not, for every hooked function)
    replacements = {names.site_placeholder(index): site for index, site in sites.items()}
    replacements[names.BASE_EXCEPTION_PLACEHOLDER] = BaseException
    return _bind(code, replacements)


def _bind(code, replacements):
    consts = code.co_consts
    replaced = None
    own_site = None
    for position, const in enumerate(consts):
        kind = type(const)
        if kind is CodeType:
            new = _bind(const, replacements)
        elif kind is str:
            new = replacements.get(const, const)
            if new is not const and new is not BaseException:
                own_site = new
        else:
            continue
        if new is not const:
            if replaced is None:
                replaced = list(consts)
            replaced[position] = new
    if replaced is not None:
        code = code.replace(co_consts=tuple(replaced))
    if own_site is not None:
        own_site.code = code
        semantics.know_statement_code(own_site)
    return code


# co_flags that make a function a generator, a coroutine or an async generator
_KIND_FLAGS = ((0x200, "async_generator"), (0x80, "coroutine"), (0x20, "generator"))


def fill_kinds(site_table, code):
    """The site table with each kind read from the compiled code (CPython's own verdict)."""
    kinds = {}
    for nested in walk(code):
        for const in nested.co_consts:
            index = names.site_index(const) if type(const) is str else None
            if index is not None:
                kinds[index] = next((kind for flag, kind in _KIND_FLAGS if nested.co_flags & flag), "function")
    return [spec if spec[3] is not None else (spec[0], spec[1], spec[2], kinds.get(spec[0], "function"), spec[4])
            for spec in site_table]


def walk(code):
    """``code`` and every code object nested in it."""
    yield code
    for const in code.co_consts:
        if type(const) is CodeType:
            yield from walk(const)


def contains_placeholder(code):
    """Whether ``code`` or a code object nested in it still refers to a site."""
    for nested in walk(code):
        for const in nested.co_consts:
            if type(const) is str and names.site_index(const) is not None:
                return True
    return False
