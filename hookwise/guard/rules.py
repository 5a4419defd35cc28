"""The guard's rules: each asks whether a sink call is being steered by an input.

A rule is ``check(call, inputs, context) -> (input, fragment) or None``, for
the sinks of its ``targets`` (or, for SQL and HTTP, the calls whose meaning
``hookwise.semantics`` names). ``RULES`` lists them with their stable id and
severity. Each rule has its own tests (tests/test_guard_rules.py).
"""

import os
import socket

from .. import semantics
from . import tokens

_SHELLS = frozenset(("sh", "bash", "dash", "zsh", "ksh", "ash", "busybox"))


class Rule:
    __slots__ = ("id", "severity", "title", "check", "verb", "requests_only")

    def __init__(self, rule_id, severity, title, check, verb="changes", requests_only=False):
        self.id, self.severity, self.title, self.check = rule_id, severity, title, check
        self.verb = verb  # how a finding's line says what the input did to the sink call
        # a file or URL named on the command line is what the person running it asked for
        self.requests_only = requests_only


# -- command injection ---------------------------------------------------------------
def shell_commands(call):
    """The shell command texts a command sink runs (``os.system``, ``shell=True``, ``sh -c ...``)."""
    target = call.target
    args = call.args
    if target in ("posix:system", "nt:system", "os:system", "os:popen"):
        return [_text(args[0])] if args else []
    if target == "subprocess:Popen.__init__":
        arguments = call.arguments
        command = arguments.get("args")
        if arguments.get("shell"):
            if isinstance(command, (str, bytes)):
                return [_text(command)]
            return [_text(command[0])] if command else []
        return _sh_c(command)
    # os.exec*, os.spawn*, os.posix_spawn*: somewhere in the arguments, an argv list
    for value in args:
        if isinstance(value, (list, tuple)):
            return _sh_c(value)
    return []


def _sh_c(argv):
    if not isinstance(argv, (list, tuple)) or len(argv) < 3:
        return []
    program = os.path.basename(_text(argv[0]) or "")
    if program not in _SHELLS:
        return []
    argv = [_text(item) for item in argv]
    return [argv[index + 1] for index, item in enumerate(argv[:-1]) if item == "-c"]


def check_command(call, inputs, context):
    for command in shell_commands(call):
        found = _structure(command, inputs, tokens.shell_tokens)
        if found:
            return found
    return None


# -- SQL injection ---------------------------------------------------------------------
def check_sql(call, inputs, context):
    semantic = call.site.semantic
    if semantic is None or semantic.name != "sql":
        return None
    system, statement = semantic.raw_statement(call)  # not the rendered fields: their parameters are not looked at
    if not statement:
        return None
    tokenize = tokens.mysql_tokens if system == "mysql" else tokens.sql_tokens
    return _structure(statement, inputs, tokenize)


# -- code injection ------------------------------------------------------------------
def check_code(call, inputs, context):
    source = call.args[0] if call.args else call.kwargs.get("source")
    text = _text(source)
    if not text:
        return None
    return _structure(text, inputs, tokens.python_tokens)


def _structure(text, inputs, tokenize):
    for item in inputs:
        fragment = tokens.spans_tokens(text, item.value, tokenize)
        if fragment is not None:
            return item, fragment
    return None


# -- path traversal -----------------------------------------------------------------
def check_path(call, inputs, context):
    path = call.args[0] if call.args else call.kwargs.get("file", call.kwargs.get("path"))
    if isinstance(path, int):
        return None  # a descriptor
    try:
        path = _text(os.fspath(path))
    except TypeError:
        return None
    if not path:
        return None
    for item in inputs:
        value = item.value
        if not _at_a_component(path, value):
            continue
        from_input = ".." in value.replace("\\", "/").split("/") or value.startswith(("/", "\\"))
        if from_input or not context.inside_roots(path):
            return item, path
    return None


def _at_a_component(path, value):
    """``value`` is in ``path`` as path: holding a separator or ``..``, or as a whole component."""
    if "/" in value or "\\" in value or ".." in value:
        return value in path
    start = path.find(value)
    while start >= 0:
        end = start + len(value)
        if (start == 0 or path[start - 1] in "/\\") and (end == len(path) or path[end] in "/\\"):
            return True
        start = path.find(value, start + 1)
    return False


# -- server-side request forgery -----------------------------------------------------
def check_ssrf(call, inputs, context):
    semantic = call.site.semantic
    if semantic is None or semantic.name != "http":
        return None
    url = semantic.raw_url(call)
    if not url:
        return None
    host, start, end = host_of(url)
    if not host:
        return None
    for item in inputs:
        value = item.value
        position = url.find(value)
        while position >= 0:
            if _steers_host(url, host, start, end, position, position + len(value)):
                blocked_address = internal_address_of(host)
                if blocked_address is not None:
                    return item, f"{host} -> {blocked_address}"
                break
            position = url.find(value, position + 1)
    return None


def _steers_host(url, host, start, end, first, last):
    """Whether the input at ``url[first:last]`` chooses the host at ``url[start:end]``.

    It does when it supplies the whole host (``http://{input}/``, the whole URL, ``@169.254.169.254``
    after a trusted name) or, for a DNS name, its leading whole labels (``http://{input}.svc.local/``
    picks the service). A value that merely equals a piece of a host the program chose does not: a
    query parameter ``1`` is not the last octet of ``127.0.0.1``, nor ``42`` the start of port 42817.
    """
    if first <= start and last >= end:
        return True
    if first != start or last >= end or _is_ip_literal(host):
        return False
    return url[last] == "." and any(char.isalpha() for char in url[first:last])


def _is_ip_literal(host):
    try:
        socket.inet_aton(host)
        return True
    except (OSError, UnicodeError):
        pass
    try:
        socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
        return True
    except (OSError, UnicodeError):
        return False


def host_of(url):
    """(host, start, end) of a URL's host name: its text and where it lies in ``url`` (the port, the
    userinfo and the brackets of an IPv6 literal left out), or (None, 0, 0)."""
    scheme, separator, _ = url.partition("://")
    if not separator:
        return None, 0, 0
    start = len(scheme) + 3
    end = start
    while end < len(url) and url[end] not in "/?#":
        end += 1
    netloc = url[start:end]
    at = netloc.rfind("@")
    host_start = start + at + 1
    hostport = netloc[at + 1:]
    if hostport.startswith("["):
        close = hostport.find("]")
        host = hostport[1:close if close > 0 else None]
        return host, host_start + 1, host_start + 1 + len(host)
    host = hostport.rpartition(":")[0] if hostport.rpartition(":")[2].isdigit() else hostport
    return host, host_start, host_start + len(host)


_METADATA = frozenset(("169.254.169.254", "fd00:ec2::254", "100.100.100.200"))


def internal_address_of(host):
    """The loopback, private, link-local, reserved or cloud-metadata address ``host`` is or resolves to, or None."""
    import ipaddress

    for address in _addresses(host):
        try:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
        except ValueError:
            continue
        mapped = getattr(ip, "ipv4_mapped", None)
        ip = mapped or ip
        if (str(ip) in _METADATA or ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_reserved
                or ip.is_unspecified or ip.is_multicast):
            return str(ip)
    return None


def _addresses(host):
    """What the host names: an IP literal in any spelling inet_aton takes (decimal, hex, octal, short), or DNS."""
    try:
        return [socket.inet_ntoa(socket.inet_aton(host))]
    except (OSError, UnicodeError):
        pass
    try:
        socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
        return [host]
    except (OSError, UnicodeError):
        pass
    try:
        return sorted({info[4][0] for info in socket.getaddrinfo(host, None)})
    except (OSError, UnicodeError):
        return []


# -- unsafe deserialization ------------------------------------------------------------
# What a pickle from outside may build: plain data. Everything else a stream names (os.system,
# builtins.eval, subprocess.Popen, a class of the application) is refused when the data is untrusted.
SAFE_GLOBALS = frozenset((
    ("builtins", name) for name in ("set", "frozenset", "bytearray", "complex", "slice", "range", "list", "dict",
                                    "tuple", "int", "float", "str", "bytes", "bool", "object")
)) | frozenset((
    ("collections", "OrderedDict"), ("collections", "defaultdict"), ("collections", "deque"),
    ("collections", "Counter"), ("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"),
    ("datetime", "timedelta"), ("datetime", "timezone"), ("decimal", "Decimal"), ("fractions", "Fraction"),
    ("uuid", "UUID"), ("_codecs", "encode"), ("copyreg", "_reconstructor"), ("zoneinfo", "ZoneInfo"),
))
DANGEROUS_MODULES = frozenset(("os", "posix", "nt", "subprocess", "sys", "importlib", "pty", "socket", "shutil",
                               "runpy", "code", "codeop", "ctypes", "webbrowser", "commands", "popen2", "marshal",
                               "pickle", "_pickle", "multiprocessing", "asyncio.subprocess", "pdb", "timeit"))
DANGEROUS_BUILTINS = frozenset(("eval", "exec", "compile", "getattr", "setattr", "delattr", "__import__", "open",
                                "input", "breakpoint", "globals", "locals", "vars", "help"))


def check_deserialization(call, inputs, context):
    if call.target == "audit:pickle.find_class":
        arguments = call.arguments
        module, name = _text(arguments.get("module")), _text(arguments.get("name"))
        named = f"{module}.{name}"
        if _dangerous_global(module, name):
            return (named, "a global the pickle stream imports"), named
        if context.request is not None and (module, name) not in SAFE_GLOBALS:
            return (named, "a global a pickle loaded in a request imports"), named
        return None
    if context.request is None:
        return None
    data = call.args[0] if call.args else None
    if data is None:
        return None
    if context.is_request_stream(data):
        return ("(the stream)", "the request body"), "the request body"
    if isinstance(data, (bytes, bytearray, memoryview, str)):
        text = bytes(data) if not isinstance(data, str) else data.encode("utf-8", "surrogatepass")
        body = context.request.body
        if body and len(text) >= 4 and (text == bytes(body) or text in bytes(body)):
            return (text, "the request body"), text
        for item in inputs:
            value = item.value.encode("utf-8", "surrogatepass")
            if len(value) >= 4 and (value == text or value in text):
                return item, text
    return None


def _dangerous_global(module, name):
    root = (module or "").split(".", 1)[0]
    return root in DANGEROUS_MODULES or module in DANGEROUS_MODULES or (
        module == "builtins" and name in DANGEROUS_BUILTINS)


def _text(value):
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    try:
        return os.fspath(value) if not isinstance(value, (int, float, type(None))) else None
    except TypeError:
        return None


COMMAND_TARGETS = frozenset(("os:system", "posix:system", "os:popen", "subprocess:Popen.__init__")) | frozenset(
    f"os:{name}" for name in ("execv", "execve", "execl", "execle", "execlp", "execlpe", "execvp", "execvpe", "spawnv",
                              "spawnve", "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnvp", "spawnvpe",
                              "posix_spawn", "posix_spawnp"))
FILE_TARGETS = frozenset(("builtins:open", "io:open", "os:open", "posix:open", "_io:open"))
CODE_TARGETS = frozenset(("builtins:exec", "builtins:eval", "builtins:compile"))
DESERIALIZATION_TARGETS = frozenset(("pickle:loads", "pickle:load", "_pickle:loads", "_pickle:load",
                                     "marshal:loads", "marshal:load", "shelve:open", "audit:pickle.find_class",
                                     "yaml:load", "yaml:load_all", "yaml:unsafe_load", "yaml:unsafe_load_all",
                                     "yaml:full_load", "yaml:full_load_all", "yaml.__init__:load",
                                     "yaml.__init__:unsafe_load", "yaml.__init__:full_load"))

COMMAND_INJECTION = Rule("command-injection", "critical", "an input changes a shell command", check_command)
PATH_TRAVERSAL = Rule("path-traversal", "high", "an input steers a file path out of the allowed roots", check_path,
                      "steers", requests_only=True)
SQL_INJECTION = Rule("sql-injection", "high", "an input changes an SQL statement", check_sql)
SSRF = Rule("ssrf", "high", "an input sends a request to an internal address", check_ssrf, "steers",
            requests_only=True)
UNSAFE_DESERIALIZATION = Rule("unsafe-deserialization", "critical", "untrusted data is deserialized",
                              check_deserialization, "reaches")
CODE_INJECTION = Rule("code-injection", "critical", "an input changes Python code that is run", check_code)

RULES = (COMMAND_INJECTION, PATH_TRAVERSAL, SQL_INJECTION, SSRF, UNSAFE_DESERIALIZATION, CODE_INJECTION)
RULE_IDS = tuple(rule.id for rule in RULES)


def rule_for(call):
    """The rule that looks at ``call``'s sink, or None."""
    target = call.target
    if target in COMMAND_TARGETS:
        return COMMAND_INJECTION
    if target in FILE_TARGETS:
        return PATH_TRAVERSAL
    if target in CODE_TARGETS:
        return CODE_INJECTION
    if target in DESERIALIZATION_TARGETS:
        return UNSAFE_DESERIALIZATION
    semantic = call.site.semantic
    if semantic is not None:
        if semantic.name == "sql":
            return SQL_INJECTION
        if semantic.name == "http":
            return SSRF
    return None
