"""Pure source-to-AST rewriting: the main engine's transformation.

Source bytes or an AST in, an instrumented AST and a site table out. Nothing in
this package (except the ``dump`` command-line module) does I/O, imports user
code or has import side effects.
"""

import ast

from .names import site_index, site_placeholder
from .readable import readable_tree
from .transform import ASYNC_GENERATOR, COROUTINE, FUNCTION, GENERATOR, SiteSpec, instrument

__all__ = [
    "ASYNC_GENERATOR",
    "COROUTINE",
    "FUNCTION",
    "GENERATOR",
    "SiteSpec",
    "instrument",
    "parse",
    "readable_tree",
    "site_index",
    "site_placeholder",
]

# Bound at import, before hookwise patches anything: hookwise's own parsing must
# never show up as the user's ``compile`` calls.
_compile = compile


def parse(source, filename, optimize=-1):
    """Parse module source (bytes or str) like the import system would.

    Bytes are decoded by the compiler itself (PEP 263 coding cookie, BOM).
    """
    return _compile(source, filename, "exec", ast.PyCF_ONLY_AST, dont_inherit=True, optimize=optimize)
