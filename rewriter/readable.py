"""Turn an instrumented tree into one that ``ast.unparse`` prints as valid Python.

The injected names are deliberately not identifiers and the call sites are
placeholder constants; for display they become readable identifiers. The
result is for reading only: it is never compiled.
"""

import ast

from . import names


def readable_tree(tree):
    """A copy of ``tree`` with injected names and placeholders made printable."""
    import copy  # only the dump needs it: keep it out of every program's start-up

    tree = copy.deepcopy(tree)
    taken = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    return _Readable(taken).visit(tree)


class _Readable(ast.NodeTransformer):
    def __init__(self, taken):
        self.taken = taken
        self.chosen = {}

    def _identifier(self, key, preferred):
        if key not in self.chosen:
            candidate = preferred
            while candidate in self.taken:
                candidate += "_"
            self.taken.add(candidate)
            self.chosen[key] = candidate
        return self.chosen[key]

    def visit_Name(self, node):
        if names.is_injected(node.id):
            node.id = self._identifier(node.id, names.readable(node.id))
        return node

    def visit_Constant(self, node):
        if node.value == names.BASE_EXCEPTION_PLACEHOLDER:
            return ast.copy_location(ast.Name(id="BaseException", ctx=ast.Load()), node)
        index = names.site_index(node.value)
        if index is None:
            return node
        identifier = self._identifier(node.value, names.readable_site(index))
        return ast.copy_location(ast.Name(id=identifier, ctx=ast.Load()), node)
