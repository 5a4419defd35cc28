"""Put rewritten functions back into the real source text, for a diff against the file.

Pure: source text, the original tree, the instrumented (readable) tree and the
site table in; the source text with each hooked function's lines replaced by
that function unparsed. Everything outside the hooked functions (comments,
blank lines, formatting) stays byte for byte, so a diff against the real file
shows only what the rewrite changes. Comments inside a hooked function are lost
with it: ``ast.unparse`` does not keep them.
"""

import ast
import re

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the line ends the compiler counts (not \f, \v, \x1c...)


def source_lines(text):
    """The source's lines, as the compiler numbers them, each ending with "\\n"."""
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    return [line + "\n" for line in lines]


def spliced_lines(text, original, rewritten, sites):
    """``source_lines(text)`` with every outermost hooked function replaced by its rewritten form."""
    lines = source_lines(text)
    hooked_lines = {spec.lineno for spec in sites}
    by_position = {
        (node.lineno, node.col_offset): node
        for node in ast.walk(rewritten)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    replacements = []  # (first line, last line, new lines), 1-based and inclusive
    for node in ast.walk(original):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.lineno not in hooked_lines:
            continue
        new = by_position.get((node.lineno, node.col_offset))
        if new is None:
            continue
        first = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
        replacements.append((first, node.end_lineno, new))
    replacements.sort(key=lambda item: (item[0], -item[1]))
    result, position = [], 1
    for first, last, new in replacements:
        if first < position:  # inside a hooked function already replaced whole
            continue
        result.extend(lines[position - 1:first - 1])
        indent = re.match(r"[ \t]*", lines[first - 1]).group()
        result.extend(indent + line + "\n" for line in ast.unparse(new).split("\n"))
        position = last + 1
    result.extend(lines[position - 1:])
    return result
