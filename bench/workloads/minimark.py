"""A small markdown-to-HTML converter, written for the benchmark as a pure-Python workload.

It covers what README-like text uses: ATX headings, paragraphs, fenced code,
indented code, bullet and numbered lists (nested by indentation), block quotes,
pipe tables, horizontal rules, and inline code spans, emphasis, strong, links,
images, autolinks and backslash escapes. It is not CommonMark: where the rules
get subtle it picks the simple reading. Its job is to be ordinary Python code
that makes many small function calls per line, as a text-processing program
does; it must never depend on anything but the standard library.
"""

import html
import re

_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")
_FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})(.*)$")
_BULLET = re.compile(r"^(\s*)([-*+])[ \t]+(.*)$")
_NUMBERED = re.compile(r"^(\s*)(\d{1,9})[.)][ \t]+(.*)$")
_RULE = re.compile(r"^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$")
_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]*)(?:\s+\"([^\"]*)\")?\)")
_AUTOLINK = re.compile(r"<(https?://[^>\s]+)>")
_ESCAPABLE = "\\`*_{}[]()#+-.!|<>"


def convert(text):
    """The HTML for a markdown text."""
    lines = text.expandtabs(4).splitlines()
    return "\n".join(render_blocks(lines)) + "\n"


def render_blocks(lines):
    """The HTML pieces of a list of lines, block by block."""
    out = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if is_blank(line):
            index += 1
        elif _FENCE.match(line):
            index = fenced_code(lines, index, out)
        elif _HEADING.match(line):
            out.append(heading(line))
            index += 1
        elif _RULE.match(line):
            out.append("<hr />")
            index += 1
        elif line.lstrip().startswith(">"):
            index = block_quote(lines, index, out)
        elif list_item(line):
            index = list_block(lines, index, out)
        elif is_table_start(lines, index):
            index = table(lines, index, out)
        elif indentation(line) >= 4:
            index = indented_code(lines, index, out)
        else:
            index = paragraph(lines, index, out)
    return out


def is_blank(line):
    return not line.strip()


def indentation(line):
    return len(line) - len(line.lstrip(" "))


def heading(line):
    marks, content = _HEADING.match(line).groups()
    level = len(marks)
    return f"<h{level} id=\"{slug(content)}\">{inline(content)}</h{level}>"


def slug(text):
    words = re.findall(r"[a-z0-9]+", text.lower())
    return "-".join(words)


def fenced_code(lines, index, out):
    indent, fence, info = _FENCE.match(lines[index]).groups()
    body = []
    index += 1
    while index < len(lines) and not lines[index].strip().startswith(fence):
        body.append(strip_indent(lines[index], len(indent)))
        index += 1
    language = info.strip().split(" ")[0] if info.strip() else ""
    out.append(code_block(body, language))
    return index + 1


def strip_indent(line, width):
    return line[min(width, indentation(line)):]


def code_block(body, language):
    attribute = f" class=\"language-{escape(language)}\"" if language else ""
    return f"<pre><code{attribute}>" + escape("\n".join(body)) + "</code></pre>"


def indented_code(lines, index, out):
    body = []
    while index < len(lines) and (indentation(lines[index]) >= 4 or is_blank(lines[index])):
        body.append(lines[index][4:])
        index += 1
    while body and not body[-1].strip():
        body.pop()
    out.append(code_block(body, ""))
    return index


def block_quote(lines, index, out):
    inner = []
    while index < len(lines) and lines[index].lstrip().startswith(">"):
        inner.append(unquote(lines[index]))
        index += 1
    out.append("<blockquote>\n" + "\n".join(render_blocks(inner)) + "\n</blockquote>")
    return index


def unquote(line):
    stripped = line.lstrip()[1:]
    return stripped[1:] if stripped.startswith(" ") else stripped


def list_item(line):
    """(indent, ordered, content) when the line starts a list item, else None."""
    match = _BULLET.match(line)
    if match and not _RULE.match(line):
        return len(match.group(1)), False, match.group(3)
    match = _NUMBERED.match(line)
    if match:
        return len(match.group(1)), True, match.group(3)
    return None


def list_block(lines, index, out):
    """A list and its nested lists; an item goes on while lines are indented past its marker."""
    base, ordered, _ = list_item(lines[index])
    items = []
    while index < len(lines):
        item = list_item(lines[index])
        if item is None or item[0] != base or item[1] != ordered:
            break
        body = [item[2]]
        index += 1
        while index < len(lines):
            line = lines[index]
            if is_blank(line):
                if index + 1 < len(lines) and indentation(lines[index + 1]) > base:
                    body.append("")
                    index += 1
                    continue
                break
            nested = list_item(line)
            if nested is not None and nested[0] <= base:
                break
            if nested is None and indentation(line) <= base and body:
                body[-1] += " " + line.strip()  # a lazy continuation line
                index += 1
                continue
            body.append(strip_indent(line, base + 2))
            index += 1
        items.append(list_item_html(body))
    tag = "ol" if ordered else "ul"
    out.append(f"<{tag}>\n" + "\n".join(items) + f"\n</{tag}>")
    return index


def list_item_html(body):
    if len(body) == 1:
        return f"<li>{inline(body[0])}</li>"
    first = []
    while body and body[0] and not list_item(body[0]) and not _FENCE.match(body[0]):
        first.append(body.pop(0))
    return "<li>" + inline(" ".join(first)) + "\n" + "\n".join(render_blocks(body)) + "</li>"


def is_table_start(lines, index):
    return ("|" in lines[index] and index + 1 < len(lines) and _TABLE_SEPARATOR.match(lines[index + 1]) is not None
            and "-" in lines[index + 1])


def table(lines, index, out):
    header = split_row(lines[index])
    alignments = [alignment(cell) for cell in split_row(lines[index + 1])]
    index += 2
    rows = []
    while index < len(lines) and "|" in lines[index] and not is_blank(lines[index]):
        rows.append(split_row(lines[index]))
        index += 1
    parts = ["<table>", "<thead>", table_row(header, alignments, "th"), "</thead>", "<tbody>"]
    parts.extend(table_row(row, alignments, "td") for row in rows)
    parts.extend(["</tbody>", "</table>"])
    out.append("\n".join(parts))
    return index


def split_row(line):
    line = line.strip()
    if line.startswith("|"):
        line = line[1:]
    if line.endswith("|") and not line.endswith("\\|"):
        line = line[:-1]
    cells, current, in_code = [], [], False
    for character in line:
        if character == "`":
            in_code = not in_code
        if character == "|" and not in_code and not (current and current[-1] == "\\"):
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(character)
    cells.append("".join(current).strip())
    return cells


def alignment(cell):
    left, right = cell.startswith(":"), cell.endswith(":")
    if left and right:
        return "center"
    if right:
        return "right"
    return "left" if left else ""


def table_row(cells, alignments, tag):
    rendered = []
    for position, cell in enumerate(cells):
        align = alignments[position] if position < len(alignments) else ""
        attribute = f" style=\"text-align: {align}\"" if align else ""
        rendered.append(f"<{tag}{attribute}>{inline(cell)}</{tag}>")
    return "<tr>" + "".join(rendered) + "</tr>"


def paragraph(lines, index, out):
    body = []
    while index < len(lines):
        line = lines[index]
        if is_blank(line) or _HEADING.match(line) or _FENCE.match(line) or line.lstrip().startswith(">"):
            break
        if body and (list_item(line) or is_table_start(lines, index)):
            break
        body.append(line.strip())
        index += 1
    out.append("<p>" + inline(" ".join(body)) + "</p>")
    return index


# ------------------------------------------------------------------ inline


def inline(text):
    """Code spans first (their content is literal), then everything else between them."""
    pieces = []
    position = 0
    while True:
        start = text.find("`", position)
        if start < 0:
            break
        ticks = run_length(text, start, "`")
        end = text.find("`" * ticks, start + ticks)
        if end < 0:
            break
        pieces.append(span_text(text[position:start]))
        pieces.append(code_span(text[start + ticks:end]))
        position = end + ticks
    pieces.append(span_text(text[position:]))
    return "".join(pieces)


def run_length(text, start, character):
    end = start
    while end < len(text) and text[end] == character:
        end += 1
    return end - start


def code_span(content):
    content = content.strip() if content.strip() else content
    return "<code>" + escape(content) + "</code>"


def span_text(text):
    if not text:
        return ""
    text, escapes = hide_escapes(text)
    text = escape(text)
    text = _AUTOLINK.sub(autolink, text)
    text = _LINK.sub(link, text)
    text = emphasis(text, "**", "strong")
    text = emphasis(text, "__", "strong")
    text = emphasis(text, "*", "em")
    text = emphasis(text, "_", "em")
    return restore_escapes(text, escapes)


def hide_escapes(text):
    """Backslash-escaped characters become placeholders, so that no rule reads them."""
    escapes = []
    out = []
    index = 0
    while index < len(text):
        character = text[index]
        if character == "\\" and index + 1 < len(text) and text[index + 1] in _ESCAPABLE:
            out.append(f"\x00{len(escapes)}\x00")
            escapes.append(text[index + 1])
            index += 2
        else:
            out.append(character)
            index += 1
    return "".join(out), escapes


def restore_escapes(text, escapes):
    if not escapes:
        return text
    return re.sub("\x00(\\d+)\x00", lambda match: escape(escapes[int(match.group(1))]), text)


def escape(text):
    return html.escape(text, quote=True)


def autolink(match):
    url = match.group(1)
    return f"<a href=\"{url}\">{url}</a>"


def link(match):
    bang, label, url, title = match.groups()
    title_attribute = f" title=\"{title}\"" if title else ""
    if bang:
        return f"<img src=\"{url}\" alt=\"{label}\"{title_attribute} />"
    return f"<a href=\"{url}\"{title_attribute}>{label}</a>"


def emphasis(text, marker, tag):
    """Pairs of `marker` around text that neither starts nor ends with a space."""
    if marker not in text:
        return text
    out = []
    position = 0
    while True:
        start = find_opening(text, marker, position)
        if start < 0:
            break
        end = find_closing(text, marker, start + len(marker))
        if end < 0:
            break
        out.append(text[position:start])
        out.append(f"<{tag}>" + text[start + len(marker):end] + f"</{tag}>")
        position = end + len(marker)
    out.append(text[position:])
    return "".join(out)


def find_opening(text, marker, position):
    while True:
        start = text.find(marker, position)
        if start < 0:
            return -1
        after = start + len(marker)
        if after < len(text) and not text[after].isspace() and not word_inside(text, start, marker):
            return start
        position = after


def find_closing(text, marker, position):
    while True:
        end = text.find(marker, position)
        if end < 0:
            return -1
        if end > position and not text[end - 1].isspace() and not word_inside(text, end, marker):
            return end
        position = end + len(marker)


def word_inside(text, at, marker):
    """An underscore between two word characters (snake_case) is not emphasis."""
    if marker[0] != "_":
        return False
    before = text[at - 1] if at > 0 else " "
    after_index = at + len(marker)
    after = text[after_index] if after_index < len(text) else " "
    return before.isalnum() and after.isalnum()
