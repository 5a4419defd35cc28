"""Shell wildcards for targets: ``*``, ``?``, ``[seq]`` and ``[!seq]``.

The same rules as ``fnmatch.fnmatchcase`` (``*`` matches dots too), written here
so that the runtime does not import ``re`` before the user's program: every
module hookwise imports before installing its hooks can only be served by
attribute replacement.
"""

_SPECIAL = frozenset("*?[")


def has_wildcards(pattern):
    return any(char in _SPECIAL for char in pattern)


def pattern_problem(pattern):
    """Why ``pattern`` can never match a dotted name, in words; None when it is well formed.

    fnmatch reads an unclosed ``[`` as a literal character, which no module or
    function name holds: such a pattern matches nothing, silently.
    """
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "[":
            end = _set_end(pattern, index)
            if end < 0:
                return f"'[' at position {index + 1} has no closing ']'"
            body = pattern[index + 1 : end].removeprefix("!")
            for low, dash, high in zip(body, body[1:], body[2:]):
                if dash == "-" and low > high:
                    return f"the range '{low}-{high}' is empty"
            index = end + 1
            continue
        if char in "]!-":
            return f"{char!r} at position {index + 1} is outside a '[...]' set"
        index += 1
    return None


def compile_pattern(pattern):
    """A predicate ``name -> bool`` for ``pattern`` (a plain equality test when it has no wildcards)."""
    if not has_wildcards(pattern):
        return pattern.__eq__
    if pattern == "*":
        return _anything
    if pattern.endswith("*") and not has_wildcards(pattern[:-1]):  # 'myapp.*', 'Invoice.*': the usual cases
        return _prefix(pattern[:-1])
    tokens = _tokens(pattern)
    return lambda name: _match(tokens, 0, name, 0)


def _anything(name):
    return True


def _prefix(prefix):
    return lambda name: name.startswith(prefix)


def _tokens(pattern):
    """Split a pattern into ('*',), ('?',), ('set', negate, chars) and ('lit', text) tokens."""
    tokens = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            if not tokens or tokens[-1] != ("*",):
                tokens.append(("*",))
            index += 1
        elif char == "?":
            tokens.append(("?",))
            index += 1
        elif char == "[":
            end = _set_end(pattern, index)
            if end < 0:
                tokens.append(("lit", "["))
                index += 1
            else:
                body = pattern[index + 1 : end]
                negate = body.startswith("!")
                if negate:
                    body = body[1:]
                tokens.append(("set", negate, _expand_ranges(body)))
                index = end + 1
        else:
            tokens.append(("lit", char))
            index += 1
    return tokens


def _set_end(pattern, start):
    index = start + 1
    if index < len(pattern) and pattern[index] == "!":
        index += 1
    if index < len(pattern) and pattern[index] == "]":
        index += 1
    while index < len(pattern) and pattern[index] != "]":
        index += 1
    return index if index < len(pattern) else -1


def _expand_ranges(body):
    chars = set()
    index = 0
    while index < len(body):
        if index + 2 < len(body) and body[index + 1] == "-":
            low, high = body[index], body[index + 2]
            chars.update(chr(code) for code in range(ord(low), ord(high) + 1))
            index += 3
        else:
            chars.add(body[index])
            index += 1
    return frozenset(chars)


def _match(tokens, ti, name, ni):
    while ti < len(tokens):
        token = tokens[ti]
        kind = token[0]
        if kind == "*":
            if ti + 1 == len(tokens):
                return True
            for start in range(ni, len(name) + 1):
                if _match(tokens, ti + 1, name, start):
                    return True
            return False
        if ni >= len(name):
            return False
        char = name[ni]
        if kind == "lit":
            if char != token[1]:
                return False
        elif kind == "set":
            if (char in token[2]) == token[1]:
                return False
        ti += 1
        ni += 1
    return ni == len(name)
