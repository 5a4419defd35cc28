"""Token structure: does an input value stay inside one token of a command, statement or code?

Each tokenizer here returns the (start, end) spans of a text's tokens, or
raises ``Unbalanced`` for text it cannot read to the end (a quote or comment
left open). ``spans_tokens(text, value, tokenize)`` is the question every
injection rule asks: an input that sits inside one token (a word, a quoted
string, a number) is data; one that covers more than one token, or leaves a
quote open that the text without it closes, changed the structure: with the
input replaced by a neutral word, the tokens would not be the same.

The tokenizers are hookwise's own and small: they only need to tell where
tokens begin and end, not what the text means.
"""


class Unbalanced(ValueError):
    """The text ends inside a quote, a comment or a substitution."""


NEUTRAL = "hookwise0"
SPANS_KEPT = 512  # texts whose spans are remembered: a program runs the same few statements over and over
SPANS_TEXT_LIMIT = 4096  # longer texts (a module's source given to exec) are tokenized each time, never kept
_spans = {}  # (tokenize, text) -> its spans, or None for a text that raised Unbalanced


def spans_of(text, tokenize):
    """``tokenize(text)``, remembered: the tokenizers are pure, and each sink call of a request whose input
    occurs in the text (a path segment "items" in "select ... from items") would tokenize it again."""
    key = (tokenize, text)
    spans = _spans.get(key, _spans)
    if spans is _spans:
        try:
            spans = tuple(tokenize(text))
        except Unbalanced:
            spans = None
        if len(text) <= SPANS_TEXT_LIMIT:
            if len(_spans) >= SPANS_KEPT:
                _spans.clear()
            _spans[key] = spans
    if spans is None:
        raise Unbalanced(text)
    return spans


_verdicts = {}  # (tokenize, text, value) -> spans_tokens' answer, for texts short enough to keep
_NO_VERDICT = object()


def spans_tokens(text, value, tokenize):
    """The fragment of ``text`` (the tokens an occurrence of ``value`` touches) if one changes the
    structure, else None.

    Remembered, as the spans are: a server runs the same statements with the same path segments
    ("items") request after request, and the answer depends on nothing else.
    """
    if not value or value not in text:
        return None
    key = (tokenize, text, value)
    known = _verdicts.get(key, _NO_VERDICT)
    if known is _NO_VERDICT:
        known = _spans_tokens(text, value, tokenize)
        if len(text) + len(value) <= SPANS_TEXT_LIMIT:
            if len(_verdicts) >= SPANS_KEPT:
                _verdicts.clear()
            _verdicts[key] = known
    return known


def _spans_tokens(text, value, tokenize):
    try:
        spans = spans_of(text, tokenize)
    except Unbalanced:
        try:
            tokenize(text.replace(value, NEUTRAL))
        except Unbalanced:
            return None  # unreadable with or without the input: not the input's doing
        return value  # the input leaves a quote or comment open
    start = text.find(value)
    while start >= 0:
        end = start + len(value)
        touched = [(a, b) for a, b in spans if a < end and b > start]
        if len(touched) > 1 or (touched and (_reaches_out_of(touched[0], start, end, text)
                                             or _is_operator(text, touched[0], start, end))):
            return text[min(a for a, _ in touched):max(b for _, b in touched)]
        start = text.find(value, start + 1)
    return None


def _is_operator(text, span, start, end):
    # an input that is a whole operator token (";", "|", "--") adds structure on its own
    a, b = span
    return start <= a and end >= b and not any(char.isalnum() or char in "'\"_" for char in text[a:b])


def _reaches_out_of(span, start, end, text):
    # an input that covers the gap between tokens (whitespace before an operator) touches one token but
    # still adds structure when it holds more than that token and blanks
    a, b = span
    return (start < a or end > b) and text[start:end].strip() != text[a:b] and not text[start:end].isspace()


# -- shell ------------------------------------------------------------------------
_SHELL_OPERATORS = ("&&", "||", ";;", ">>", "<<", "&>", ">&", "<&", "|&", ";", "&", "|", "<", ">", "(", ")", "\n")


def shell_tokens(text):
    """Spans of a POSIX shell command's words, operators and substitutions (``$(``, backquotes, ``${``)."""
    spans, i, n = [], 0, len(text)
    while i < n:
        char = text[i]
        if char in " \t":
            i += 1
            continue
        operator = next((op for op in _SHELL_OPERATORS if text.startswith(op, i)), None)
        if operator is not None:
            spans.append((i, i + len(operator)))
            i += len(operator)
            continue
        if char == "#" and (i == 0 or text[i - 1] in " \t\n;&|"):
            end = text.find("\n", i)
            spans.append((i, n if end < 0 else end))
            i = n if end < 0 else end
            continue
        i = _shell_word(text, i, spans)
    return spans


def _shell_word(text, i, spans):
    """Scan one word from ``i`` (quotes included); its substitutions are tokens too. Returns its end."""
    start, n = i, len(text)
    while i < n:
        char = text[i]
        if char in " \t" or any(text.startswith(op, i) for op in _SHELL_OPERATORS):
            break
        if char == "\\":
            i += 2
        elif char == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise Unbalanced("unclosed single quote")
            i = end + 1
        elif char == '"':
            i = _double_quoted(text, i + 1, spans)
        elif _substitution_at(text, i):
            end = _substitution_end(text, i)
            spans.append((i, end))
            i = end
        else:
            i += 1
    spans.append((start, min(i, n)))  # the whole word; a substitution in it is a second token
    return i


def _double_quoted(text, i, spans):
    n = len(text)
    while i < n:
        char = text[i]
        if char == "\\":
            i += 2
        elif char == '"':
            return i + 1
        elif _substitution_at(text, i):  # substitutions run inside double quotes too
            end = _substitution_end(text, i)
            spans.append((i, end))
            i = end
        else:
            i += 1
    raise Unbalanced("unclosed double quote")


def _substitution_at(text, i):
    return text[i] == "`" or text.startswith("$(", i) or text.startswith("${", i)


def _substitution_end(text, i):
    """The end of the substitution starting at ``i``: `...`, $(...) or ${...}."""
    if text[i] == "`":
        end = text.find("`", i + 1)
        if end < 0:
            raise Unbalanced("unclosed backquote")
        return end + 1
    opening = text[i + 1]
    closing = ")" if opening == "(" else "}"
    depth, j = 1, i + 2
    while j < len(text):
        if text[j] == opening:
            depth += 1
        elif text[j] == closing:
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    raise Unbalanced("unclosed substitution")


# -- SQL ----------------------------------------------------------------------------
_SQL_OPERATORS = ("->>", "<=>", "<=", ">=", "<>", "!=", "==", "||", "::", "->", "<<", ">>", "&&")


def sql_tokens(text, backslash_escapes=False):
    """Spans of an SQL statement's tokens: quoted strings and identifiers, comments, numbers, words,
    placeholders and operators. ``backslash_escapes``: MySQL's ``\\'`` inside a string."""
    spans, i, n = [], 0, len(text)
    while i < n:
        char = text[i]
        if char.isspace():
            i += 1
            continue
        start = i
        if text.startswith("--", i) or char == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                raise Unbalanced("unclosed comment")
            i = end + 2
        elif char in "'\"`":
            i = _sql_quoted(text, i, char, backslash_escapes)
        elif char.isdigit() or (char == "." and i + 1 < n and text[i + 1].isdigit()):
            i += 1
            while i < n and (text[i].isalnum() or text[i] == "." or (text[i] in "+-" and text[i - 1] in "eE")):
                i += 1
        elif char.isalnum() or char in "_$@":
            i += 1
            while i < n and (text[i].isalnum() or text[i] in "_$@"):
                i += 1
        elif char == "%" and text.startswith("%s", i):  # a DB-API placeholder
            i += 2
        elif char == "%" and text.startswith("%(", i) and text.find(")s", i) > 0:
            i = text.find(")s", i) + 2
        elif char == ":" and i + 1 < n and (text[i + 1].isalpha() or text[i + 1] == "_"):
            i += 1
            while i < n and (text[i].isalnum() or text[i] == "_"):
                i += 1
        else:
            operator = next((op for op in _SQL_OPERATORS if text.startswith(op, i)), char)
            i += len(operator)
        spans.append((start, i))
    return spans


def mysql_tokens(text):
    return sql_tokens(text, backslash_escapes=True)


def _sql_quoted(text, i, quote, backslash_escapes):
    j, n = i + 1, len(text)
    while j < n:
        char = text[j]
        if backslash_escapes and char == "\\":
            j += 2
        elif char == quote:
            if j + 1 < n and text[j + 1] == quote:  # '' inside a string
                j += 2
            else:
                return j + 1
        else:
            j += 1
    raise Unbalanced("unclosed quote")


# -- Python ---------------------------------------------------------------------------
_LAYOUT = None


def python_tokens(text):
    """Spans of Python source's tokens (the standard tokenizer; layout tokens left out)."""
    import io
    import tokenize

    global _LAYOUT
    if _LAYOUT is None:
        _LAYOUT = {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    line_starts, offset = [0], 0
    for line in text.splitlines(keepends=True):
        offset += len(line)
        line_starts.append(offset)
    spans = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            if token.type in _LAYOUT or token.start == token.end:
                continue
            (row_a, col_a), (row_b, col_b) = token.start, token.end
            spans.append((line_starts[row_a - 1] + col_a, line_starts[row_b - 1] + col_b))
    except (tokenize.TokenError, SyntaxError, IndexError) as exc:
        raise Unbalanced(str(exc)) from None
    return spans
