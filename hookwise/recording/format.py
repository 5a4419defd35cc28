"""The recording format (``--listener record=PATH``): this docstring is its specification.

A recording is one file per process of a run: the run's first process writes
PATH, each child process PATH with its pid before the extension
(``rec.bin`` -> ``rec.4242.bin``). All integers are little-endian.

File header (``HEADER_SIZE`` = 4096 bytes, offset 0)::

    magic        16 bytes   b"HOOKWISE-REC\\0\\0\\0\\0"
    version      u32        VERSION (readers refuse any other, in one line)
    chunk_size   u32        bytes per chunk (a multiple of 4096)
    pid          u64        the recording process
    wall_offset  i64        wall clock (ns since the epoch) minus the monotonic clock, at the start
    repr_limit   u32        the run's --repr-limit (converters render with it)
    n_redact     u32        then n_redact words, each u16 length + UTF-8: the run's redacted names

Then chunks of ``chunk_size`` bytes, back to back. The file is a shared
mapping of the writer's memory (MAP_SHARED): what the writer stored is in the
kernel's page cache the moment it is stored, so a process killed by SIGKILL
leaves every record it finished. Chunk header (32 bytes)::

    magic   4 bytes  b"HWCK"
    kind    u8       CHUNK_EVENTS (one thread's events) or CHUNK_META (the string table)
    pad     3 bytes
    seq     u64      allocation order in the file, from 1 (0: never used)
    thread  u64      the thread whose events these are (0 for meta)
    base_ts i64      monotonic ns the first event's delta starts from

Records follow the chunk header. Each is a tag byte then its fields. The tag
is stored last, after the fields: a zero tag (the file's zeros) ends the
chunk, so a record cut by a kill is never read. Fields are unsigned LEB128
varints (``u``), zigzag varints (``z``), or values (``v``, below).

Meta records (in CHUNK_META chunks, written before any event refers to them)::

    STRING  1   id:u len:u utf8     an interned string: target, module, qualname,
                                    kind, file, function, parameter name, exception type, task
                                    (a writer remembers 65,536 of them: past that a string may be
                                    written again, under a new id, each time it is needed)
    SITE    2   id:u target:u module:u qualname:u kind:u has_params:u
                [n:u names:u*n vararg:u kwonly_n:u kwonly:u*n kwarg:u]   (vararg/kwarg: string id + 1, 0 none)
    THREAD  3   thread_id:u name:u from_seq:u   (from_seq, since version 4: the seq of the first chunk
                                    of its events; thread ids are reused, and a later thread with the
                                    same id gets a THREAD record and chunks of its own: a chunk's
                                    thread is named by the record of its id with the largest from_seq
                                    not above the chunk's seq; version 3 has no from_seq: 0)

Event records (in CHUNK_EVENTS chunks; ``dt`` is z, ns since the previous event
of the chunk, the first from base_ts)::

    START   5   dt call_id:u site:u file:u line:u function:u app:u [line:u function:u] task:u request:u n:u v*n
                (file/function/task: string id + 1, 0 none; request: the request_id + 1, 0 none;
                 app, the app_caller's file: 0 none,
                 1 the caller itself, else string id + 2, followed by its line and function;
                 the values in the site's params order;
                 a replaced builtin has two: the positional tuple and the keyword dict)
                meaning:u [fields]   (what the call means, hookwise.semantics: 0 nothing, else
                                      the name's string id + 1, as "sql", then its fields)
    END     6   dt call_id:u result:v fields   (the outcome's fields: {"rows": N}, or none)
    ERROR   7   dt call_id:u type:u repr:str text:str fields   (type: the qualified exception type name's
                                                           string id; fields: an HTTP error's status)

Fields: ``n:u`` then ``n`` times ``key:u value:v`` (key: a string id; value:
None, an int or a str, stored whole: a statement has its own bound; or a
dict of str to str: a request's headers).

Values (``v``): a tag byte then::

    0 None | 1 False | 2 True | 3 int (z, within 64 bits) | 4 float (8 bytes, IEEE double)
    5 str (len:u + UTF-8, surrogates kept) | 6 bytes (len:u + bytes) | 7 tuple (n:u + v*n)
    8 shown: the value's bounded safe repr, exactly as the live outputs render it (len:u + UTF-8)
    9 redacted (a parameter whose name is a secret: the value is not in the file)
    10 dict (n:u + (str key, v)*n; a builtin's keywords, a **kwargs parameter)
    11 object (name:u address:u): shown as ``<name object at 0x...>`` (address in hex), cut at
       repr_limit as every shown value is; name is a string id (``module.Class``). The C writer
       stores so the values the safe repr shows so by their type alone, and a half-built ``self``.
    12 cut str (len:u + UTF-8): the first repr_limit characters of a longer str, which the safe
       repr shows as their repr followed by "..."   13 cut bytes (len:u + bytes): the same for bytes
    14 sequence (kind:u8 0 list, 1 tuple; then values up to a 255 byte): a list or tuple as the safe
       repr shows it: its items as far as it shows them, and then, when there are more, one more
       (None) standing for the rest (the safe repr writes "..." in its place)
    15 mapping (then key, value pairs up to a 255 byte): a dict the same way; the value of a key
       with a secret name is 9 (redacted); the pair standing for the rest has the key 16
    16 (as a key only) the key of the pair that stands for the rest of a dict
    255 the end of a sequence or a mapping

Tags 11 to 16 are written by the C writer only (the Python writer stores such values as 8, shown):
a reader shows them exactly as the safe repr shows the value, so every output reads the same.

Strings and bytes longer than the run's repr_limit, ints beyond 64 bits and
tuples of more than ``MAX_TUPLE`` items or of anything else are stored as
``shown``. Secret dict keys never reach the file (their values are stored as
``shown`` ``***``).

Timestamps are on each thread's program clock: the runtime's monotonic
``clock_ns`` less hookwise's own time on that thread so far (``Call.program_ns``;
an END is its call's program_ns + duration_ns), so that no output made from a
recording shows hookwise's time as the program's. Wall times are
``wall_offset`` + them; a thread that made many hooked calls runs behind the
wall clock by hookwise's time on it.
"""

import struct

from .. import accel

MAGIC = b"HOOKWISE-REC\0\0\0\0"
VERSION = 4  # 2: START records carry the app_caller; 3: and the request_id; 4: object values, program-clock
READABLE = (3, 4)  # stamps, THREAD's from_seq (a version 3 file reads as one whose records have from_seq 0)
HEADER_SIZE = 4096
CHUNK_MAGIC = b"HWCK"
CHUNK_HEADER = struct.Struct("<4sB3xQQq")
HEADER = struct.Struct("<16sIIQqII")
CHUNK_EVENTS, CHUNK_META = 1, 2
DEFAULT_CHUNK_SIZE = 256 * 1024

STRING, SITE, THREAD = 1, 2, 3
START, END, ERROR = 5, 6, 7

V_NONE, V_FALSE, V_TRUE, V_INT, V_FLOAT, V_STR, V_BYTES, V_TUPLE, V_SHOWN, V_REDACTED, V_DICT, V_OBJECT = range(12)
V_CUT, V_BYTES_CUT, V_SEQ, V_MAP, V_STOP_KEY, V_STOP = 12, 13, 14, 15, 16, 255
_ELLIPSIS = "..."
MAX_TUPLE = 16
_DOUBLE = struct.Struct("<d")
_INT_MIN, _INT_MAX = -(1 << 63), (1 << 63) - 1


class RecordingError(ValueError):
    """A file that is not a recording this version can read; the message is one line."""


def put_u(out, number):
    if number < 0x80:  # most fields: one byte
        out.append(number)
        return
    while number > 0x7F:
        out.append((number & 0x7F) | 0x80)
        number >>= 7
    out.append(number)


def put_z(out, number):
    put_u(out, (number << 1) if number >= 0 else ((-number << 1) - 1))


def put_text(out, text):
    data = text.encode("utf-8", "surrogatepass")
    put_u(out, len(data))
    out += data


def get_u(data, pos):
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def get_z(data, pos):
    number, pos = get_u(data, pos)
    return (number >> 1) if not number & 1 else -((number + 1) >> 1), pos


def get_text(data, pos):
    length, pos = get_u(data, pos)
    return bytes(data[pos : pos + length]).decode("utf-8", "surrogatepass"), pos + length


def is_plain(value, limit, depth=0):
    """Whether ``value`` is stored as itself (see "Values")."""
    kind = type(value)
    if value is None or kind is bool or kind is float:
        return True
    if kind is int:
        return _INT_MIN <= value <= _INT_MAX
    if kind is str or kind is bytes:
        return len(value) <= limit
    if kind is tuple:
        return depth < 2 and len(value) <= MAX_TUPLE and all(is_plain(item, limit, depth + 1) for item in value)
    return False


def put_plain(out, value):
    """Store a value for which ``is_plain`` is true."""
    kind = type(value)
    if value is None:
        out.append(V_NONE)
    elif kind is bool:
        out.append(V_TRUE if value else V_FALSE)
    elif kind is int:
        out.append(V_INT)
        put_z(out, value)
    elif kind is float:
        out.append(V_FLOAT)
        out += _DOUBLE.pack(value)
    elif kind is str:
        out.append(V_STR)
        put_text(out, value)
    elif kind is bytes:
        out.append(V_BYTES)
        put_u(out, len(value))
        out += value
    else:
        out.append(V_TUPLE)
        put_u(out, len(value))
        for item in value:
            put_plain(out, item)


def put_fields(out, fields, string_id):
    """A dict of str keys to None, int or str values, or dicts of str to str (a request's headers);
    ``string_id(text)`` interns a key."""
    put_u(out, len(fields))
    for key, value in fields.items():
        put_u(out, string_id(key))
        if type(value) is dict:
            out.append(V_DICT)
            put_u(out, len(value))
            for name, item in value.items():
                put_text(out, str(name))
                put_plain(out, item if type(item) is str else None)
        elif type(value) is str or value is None or (type(value) is int and _INT_MIN <= value <= _INT_MAX):
            put_plain(out, value)
        else:
            put_plain(out, None)


def get_fields(data, pos, strings):
    count, pos = get_u(data, pos)
    fields = {}
    for _ in range(count):
        key, pos = get_u(data, pos)
        fields[strings[key]], pos = get_value(data, pos, str)
    return fields, pos


def put_shown(out, text):
    out.append(V_SHOWN)
    put_text(out, text)


def get_value(data, pos, shown, strings=None):
    """(value, pos); ``shown(text)`` makes the stand-in of a stored repr; ``strings`` names objects.

    With the C accelerator, read by hookwise/_recvalues.h where it can; ``_get_value`` is the reference.
    """
    if _read_value is not None:
        answer = _read_value(data, pos, shown, strings)
        if answer is not NotImplemented:
            return answer
    return _get_value(data, pos, shown, strings)


def _get_value(data, pos, shown, strings=None):
    tag = data[pos]
    pos += 1
    if tag == V_NONE:
        return None, pos
    if tag == V_FALSE:
        return False, pos
    if tag == V_TRUE:
        return True, pos
    if tag == V_INT:
        return get_z(data, pos)
    if tag == V_FLOAT:
        return _DOUBLE.unpack_from(data, pos)[0], pos + 8
    if tag == V_STR:
        return get_text(data, pos)
    if tag == V_BYTES:
        length, pos = get_u(data, pos)
        return bytes(data[pos : pos + length]), pos + length
    if tag == V_TUPLE:
        count, pos = get_u(data, pos)
        items = []
        for _ in range(count):
            item, pos = _get_value(data, pos, shown, strings)
            items.append(item)
        return tuple(items), pos
    if tag == V_SHOWN:
        text, pos = get_text(data, pos)
        return shown(text), pos
    if tag == V_REDACTED:
        return shown("***"), pos
    if tag == V_DICT:
        count, pos = get_u(data, pos)
        items = {}
        for _ in range(count):
            key, pos = get_text(data, pos)
            items[key], pos = _get_value(data, pos, shown, strings)
        return items, pos
    if tag == V_OBJECT:
        name, pos = get_u(data, pos)
        address, pos = get_u(data, pos)
        return shown(f"<{strings[name] if strings is not None else '?'} object at {address:#x}>"), pos
    if tag == V_CUT:
        text, pos = get_text(data, pos)
        return shown(repr(text) + _ELLIPSIS), pos
    if tag == V_BYTES_CUT:
        length, pos = get_u(data, pos)
        return shown(repr(bytes(data[pos : pos + length])) + _ELLIPSIS), pos + length
    if tag == V_SEQ:
        kind = data[pos]
        items = []
        pos += 1
        while data[pos] != V_STOP:
            item, pos = _get_value(data, pos, shown, strings)
            items.append(item)
        return (tuple(items) if kind == 1 else items), pos + 1
    if tag == V_MAP:
        items = {}
        while data[pos] != V_STOP:
            if data[pos] == V_STOP_KEY:
                key, pos = shown(_ELLIPSIS), pos + 1  # stands for the rest: equal to no other key
            else:
                key, pos = _get_value(data, pos, shown, strings)
            if data[pos] == V_REDACTED:  # a secret-named key's value: the safe repr writes '***'
                items[key], pos = shown("'***'"), pos + 1
            else:
                items[key], pos = _get_value(data, pos, shown, strings)
        return items, pos + 1
    raise RecordingError(f"unknown value tag {tag}")


_read_value = accel.speedups.read_value if accel.ACTIVE else None
