/* hookwise._speedups, part three: saferepr's common values in C.
 *
 * hookwise/saferepr.py is the reference. Rendering the arguments of a rich
 * event (an SQL statement and its parameters, a request, a dict of options)
 * walked its Python functions value by value, and that walk was most of what
 * a jsonl line of such an event cost. The values programs pass most are
 * written here instead, with the same text character for character:
 *
 *   - str and bytes (exact types): cut at the limit; a text that redaction by
 *     content could change (a "://", or a "=" right after a name) goes to the
 *     reference;
 *   - list, tuple, set, frozenset and dict (exact types), item by item, with
 *     the reference's depth bound, its lazy cut (_join) and its secret keys;
 *     a WSGI environ goes to the reference;
 *   - values whose type saferepr already decided on (its _ways cache): its
 *     own repr ("repr"), <module.Class object at 0x...> ("object"),
 *     subclasses of list, tuple and dict ("contents"), and
 *     records ("fields": named tuples, and dataclass and attrs instances whose
 *     fields, as saferepr._record_fields lists them, are in their __dict__);
 *   - saferepr.Shown (a recording's rendered text).
 *
 * Anything else is handed to the reference's _repr (_py_repr), which calls
 * back into saferepr_inner for what it holds. So a value is never shown two
 * ways, and a type the C code does not know is decided in Python once (by
 * _way_to_show) and then written here on every later call.
 *
 * Must never: run code of the program's that the reference would not run, or
 * differ from the reference's text (tests/test_saferepr_c.py compares both
 * on generated values).
 */

#define SR_MAX_DEPTH 4
#define SR_REDACTION_MARGIN 256

static PyObject *sr_fallback = NULL;       /* saferepr._py_repr(value, limit, depth, secret, user_reprs) */
static PyObject *sr_py_saferepr = NULL;    /* saferepr._py_saferepr: keyword calls and odd limits */
static PyObject *sr_ways = NULL;           /* saferepr._ways: type -> "repr", "object", "fields", ... */
static PyObject *sr_record_fields = NULL;  /* saferepr._record_fields: type -> the names a record shows */
static PyObject *sr_shown_type = NULL;     /* saferepr.Shown */
static PyObject *sr_default_limit = NULL;  /* saferepr.DEFAULT_LIMIT */
static PyObject *sr_comma, *sr_ellipsis, *sr_secret_text, *sr_empty, *sr_text_name, *sr_fields_name,
    *sr_module_name, *sr_qualname_name, *sr_name_name, *sr_wsgi_version, *sr_request_method, *sr_dict_name,
    *sr_verdicts_name, *sr_colon, *sr_equals, *sr_open_list, *sr_close_list, *sr_open_tuple, *sr_close_tuple,
    *sr_close_single, *sr_open_set, *sr_close_set, *sr_open_frozenset, *sr_close_frozenset;
static PyObject *sr_render_is_secret = NULL;  /* hookwise.render.Render.is_secret, whose cache is read here */

static PyObject *sr_repr(PyObject *value, Py_ssize_t limit, Py_ssize_t depth, PyObject *secret, PyObject *user_reprs);

static PyObject *
sr_call_fallback(PyObject *value, Py_ssize_t limit, Py_ssize_t depth, PyObject *secret, PyObject *user_reprs)
{
    PyObject *limit_obj = PyLong_FromSsize_t(limit);
    PyObject *depth_obj = limit_obj == NULL ? NULL : PyLong_FromSsize_t(depth);
    if (depth_obj == NULL) {
        Py_XDECREF(limit_obj);
        return NULL;
    }
    PyObject *args[5] = {value, limit_obj, depth_obj, secret, user_reprs};
    PyObject *text = PyObject_Vectorcall(sr_fallback, args, 5, NULL);
    Py_DECREF(limit_obj);
    Py_DECREF(depth_obj);
    return text;
}

/* The str objects parts[0:n] one after the other, in one allocation (PyUnicode_FromFormat parses its format
 * each time: a visible share of a short value's text). Each part must be a str. */
static PyObject *
sr_cat(PyObject *const *parts, int n)
{
    Py_ssize_t length = 0;
    Py_UCS4 widest = 127;
    for (int i = 0; i < n; i++) {
        length += PyUnicode_GET_LENGTH(parts[i]);
        widest = Py_MAX(widest, PyUnicode_MAX_CHAR_VALUE(parts[i]));
    }
    PyObject *text = PyUnicode_New(length, widest);
    if (text == NULL) {
        return NULL;
    }
    Py_ssize_t at = 0;
    for (int i = 0; i < n; i++) {
        Py_ssize_t size = PyUnicode_GET_LENGTH(parts[i]);
        if (PyUnicode_CopyCharacters(text, at, parts[i], 0, size) < 0) {
            Py_DECREF(text);
            return NULL;
        }
        at += size;
    }
    return text;
}

/* secret(key) as a truth value (1 or 0), -1 on error. For hookwise.render.Render.is_secret (every built-in
 * output's), a name it already decided on is read from its cache (Render._verdicts) without the call. */
static int
sr_is_secret(PyObject *secret, PyObject *key)
{
    if (sr_render_is_secret != NULL && PyUnicode_CheckExact(key) && PyMethod_Check(secret)
        && PyMethod_GET_FUNCTION(secret) == sr_render_is_secret) {
        PyObject *verdicts = PyObject_GetAttr(PyMethod_GET_SELF(secret), sr_verdicts_name);
        PyObject *verdict = verdicts != NULL && PyDict_CheckExact(verdicts) ? PyDict_GetItemWithError(verdicts, key) : NULL;
        Py_XDECREF(verdicts);
        if (verdict == Py_True || verdict == Py_False) {
            return verdict == Py_True;
        }
        if (PyErr_Occurred()) {
            return -1;
        }
    }
    PyObject *verdict = PyObject_CallOneArg(secret, key);
    int truth = verdict == NULL ? -1 : PyObject_IsTrue(verdict);
    Py_XDECREF(verdict);
    return truth;
}

/* Whether a character ends a field's name for redaction.redact_text's _FIELD pattern (whitespace, and
 * = & ; ? # /): a "=" right after one starts no secret-named field ("id = ?", "a == b"). Only ASCII
 * whitespace is counted: any other character before a "=" sends the text to the reference. */
static inline int
sr_ends_a_name(Py_UCS4 c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v' || c == '=' || c == '&'
           || c == ';' || c == '?' || c == '#' || c == '/';
}

/* 1 when redaction by content may change the first `n` characters of `text` (a str or bytes, exact), 0 when
 * it cannot, -1 on error. It can when they hold "://" (a URL's credentials), or a "=" right after a name that
 * `secret` accepts (a secret-named field). The name asked is the run of name characters before the "=",
 * the only name redaction.redact_text's pattern can take there (it takes it when the run follows the start,
 * ? & ; or whitespace, and none otherwise: asking is then only cautious); a run with a non-ASCII character
 * (Python's whitespace has some) goes to the reference unasked. */
static int
sr_may_hold_secret(PyObject *text, Py_ssize_t n, PyObject *secret)
{
    int kind = PyBytes_CheckExact(text) ? PyUnicode_1BYTE_KIND : PyUnicode_KIND(text);
    const void *data = PyBytes_CheckExact(text) ? (const void *)PyBytes_AS_STRING(text) : PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c == ':' && i + 2 < n && PyUnicode_READ(kind, data, i + 1) == '/' && PyUnicode_READ(kind, data, i + 2) == '/') {
            return 1;
        }
        if (c != '=' || i == 0 || sr_ends_a_name(PyUnicode_READ(kind, data, i - 1))) {
            continue;
        }
        Py_ssize_t start = i;
        while (start > 0 && !sr_ends_a_name(PyUnicode_READ(kind, data, start - 1))) {
            start--;
        }
        char name[64];
        if (i - start > (Py_ssize_t)sizeof name) {
            return 1;
        }
        for (Py_ssize_t j = start; j < i; j++) {
            Py_UCS4 letter = PyUnicode_READ(kind, data, j);
            if (letter > 127) {
                return 1;
            }
            name[j - start] = (char)letter;
        }
        PyObject *key = PyUnicode_FromStringAndSize(name, i - start);
        if (key == NULL) {
            return -1;
        }
        int hidden = sr_is_secret(secret, key);
        Py_DECREF(key);
        if (hidden != 0) {
            return hidden;
        }
    }
    return 0;
}

/* text + "...", stealing text (which may be NULL: an error already set); "..." made once, here, so that
 * the recording's readers (_recvalues.h, _chrome.h) need no configured saferepr */
static PyObject *
then_ellipsis(PyObject *text)
{
    static PyObject *dots = NULL;
    if (text == NULL) {
        return NULL;
    }
    if (dots == NULL && (dots = PyUnicode_InternFromString("...")) == NULL) {
        Py_DECREF(text);
        return NULL;
    }
    PyObject *joined = PyUnicode_Concat(text, dots);
    Py_DECREF(text);
    return joined;
}

/* repr(part) + "...": how the first characters (bytes) of a longer str (bytes) are shown, here and in a
 * recording read back (_recvalues.h). Steals `part`, which may be NULL (an error already set). */
static PyObject *
repr_then_ellipsis(PyObject *part)
{
    if (part == NULL) {
        return NULL;
    }
    PyObject *shown = PyObject_Repr(part);
    Py_DECREF(part);
    return then_ellipsis(shown);
}

/* a shown text cut to `limit` characters as saferepr cuts it: its first limit - 3, then "..." (steals text;
 * the chrome converter cuts with it too) */
static PyObject *
cut_to_limit(PyObject *text, Py_ssize_t limit)
{
    if (!PyUnicode_Check(text) || PyUnicode_GET_LENGTH(text) <= limit) {
        return text;
    }
    PyObject *part = PyUnicode_Substring(text, 0, limit >= 3 ? limit - 3 : 0);
    Py_DECREF(text);
    return then_ellipsis(part);
}

/* repr(text), or repr(text[:limit]) + "..." when it is longer: a str or bytes, exact. */
static PyObject *
sr_text(PyObject *value, Py_ssize_t limit, Py_ssize_t depth, PyObject *secret, PyObject *user_reprs)
{
    int is_bytes = PyBytes_CheckExact(value);
    Py_ssize_t n = is_bytes ? PyBytes_GET_SIZE(value) : PyUnicode_GET_LENGTH(value);
    int cut = n > limit;
    if (secret != Py_None) {
        /* the reference redacts value[:limit + margin] (or all of it): the same characters are looked at here */
        int marks = sr_may_hold_secret(value, Py_MIN(n, limit + SR_REDACTION_MARGIN), secret);
        if (marks != 0) {
            return marks < 0 ? NULL : sr_call_fallback(value, limit, depth, secret, user_reprs);
        }
    }
    if (!cut) {
        return PyObject_Repr(value);
    }
    return repr_then_ellipsis(is_bytes ? PyBytes_FromStringAndSize(PyBytes_AS_STRING(value), limit)
                                       : PyUnicode_Substring(value, 0, limit));
}

/* One dict entry as the reference's f-string writes it: "key: value", or "key: '***'" for a secret key. */
static PyObject *
sr_pair(PyObject *key, PyObject *item, Py_ssize_t limit, Py_ssize_t depth, PyObject *secret, PyObject *user_reprs)
{
    PyObject *key_text = sr_repr(key, limit, depth, Py_None, user_reprs);
    if (key_text == NULL) {
        return NULL;
    }
    int hidden = secret == Py_None ? 0 : sr_is_secret(secret, key);
    PyObject *item_text = hidden < 0 ? NULL : hidden ? Py_NewRef(sr_secret_text)
                                                     : sr_repr(item, limit, depth, secret, user_reprs);
    PyObject *pair = NULL;
    if (item_text != NULL && PyUnicode_Check(key_text) && PyUnicode_Check(item_text)) {
        PyObject *parts[3] = {key_text, sr_colon, item_text};
        pair = sr_cat(parts, 3);
    }
    else if (item_text != NULL) {
        pair = PyUnicode_FromFormat("%S: %S", key_text, item_text);
    }
    Py_DECREF(key_text);
    Py_XDECREF(item_text);
    return pair;
}

/* saferepr._join over parts made one at a time: a part is made, then the size so far is looked at (as the
 * reference's generator does), and "..." ends the list once the parts written pass the limit.
 * `next_part` gives the next part (new reference), NULL with an error, or NULL without one at the end. */
typedef PyObject *(*sr_next_part)(void *state);

static PyObject *
sr_join(sr_next_part next_part, void *state, Py_ssize_t limit)
{
    PyObject *parts = PyList_New(0);
    if (parts == NULL) {
        return NULL;
    }
    Py_ssize_t size = 0;
    for (;;) {
        PyObject *part = next_part(state);
        if (part == NULL) {
            if (PyErr_Occurred()) {
                Py_DECREF(parts);
                return NULL;
            }
            break;
        }
        if (!PyUnicode_Check(part)) {
            Py_DECREF(part);
            Py_DECREF(parts);
            PyErr_SetString(PyExc_TypeError, "saferepr: a part is not a str");
            return NULL;
        }
        if (size > limit) {
            Py_DECREF(part);
            if (PyList_Append(parts, sr_ellipsis) < 0) {
                Py_DECREF(parts);
                return NULL;
            }
            break;
        }
        size += PyUnicode_GET_LENGTH(part) + 2;
        int failed = PyList_Append(parts, part);
        Py_DECREF(part);
        if (failed < 0) {
            Py_DECREF(parts);
            return NULL;
        }
    }
    PyObject *joined = PyUnicode_Join(sr_comma, parts);
    Py_DECREF(parts);
    return joined;
}

typedef struct {
    PyObject *iterator;
    Py_ssize_t limit, depth;
    PyObject *secret, *user_reprs;
} SrItems;

static PyObject *
sr_next_item(void *state)
{
    SrItems *items = state;
    PyObject *item = PyIter_Next(items->iterator);
    if (item == NULL) {
        return NULL;
    }
    PyObject *part = sr_repr(item, items->limit, items->depth, items->secret, items->user_reprs);
    Py_DECREF(item);
    return part;
}

typedef struct {
    PyObject *dict;
    Py_ssize_t position, size, limit, depth;
    PyObject *secret, *user_reprs;
} SrEntries;

static PyObject *
sr_next_entry(void *state)
{
    SrEntries *entries = state;
    if (PyDict_GET_SIZE(entries->dict) != entries->size) {  /* as the dict's own iterator says it */
        PyErr_SetString(PyExc_RuntimeError, "dictionary changed size during iteration");
        return NULL;
    }
    PyObject *key, *item;
    if (!PyDict_Next(entries->dict, &entries->position, &key, &item)) {
        return NULL;
    }
    Py_INCREF(key);
    Py_INCREF(item);
    PyObject *pair = sr_pair(key, item, entries->limit, entries->depth, entries->secret, entries->user_reprs);
    Py_DECREF(key);
    Py_DECREF(item);
    return pair;
}

typedef struct {
    PyObject *names, *value;
    PyObject *namespace;  /* a record's __dict__, its fields read from there; NULL for a named tuple's items */
    Py_ssize_t index, limit, depth;
    PyObject *secret, *user_reprs;
} SrFields;

static PyObject *
sr_next_field(void *state)
{
    SrFields *fields = state;
    Py_ssize_t count = PyTuple_GET_SIZE(fields->names);
    if (fields->namespace == NULL) {
        count = Py_MIN(count, PyTuple_GET_SIZE(fields->value));
    }
    if (fields->index >= count) {
        return NULL;
    }
    PyObject *name = Py_NewRef(PyTuple_GET_ITEM(fields->names, fields->index));
    PyObject *item = fields->namespace == NULL ? PyTuple_GET_ITEM(fields->value, fields->index)
                                               : PyDict_GetItemWithError(fields->namespace, name);
    fields->index++;
    if (item == NULL) {  /* read by the caller before: a field that went meanwhile */
        Py_DECREF(name);
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "saferepr: a record's field went while it was shown");
        }
        return NULL;
    }
    Py_INCREF(item);
    PyObject *name_text = PyObject_Format(name, sr_empty);
    int hidden = name_text == NULL || fields->secret == Py_None ? 0 : sr_is_secret(fields->secret, name);
    PyObject *item_text = name_text == NULL || hidden < 0 ? NULL
                          : hidden ? Py_NewRef(sr_secret_text)
                                   : sr_repr(item, fields->limit, fields->depth, fields->secret, fields->user_reprs);
    PyObject *part = NULL;
    if (item_text != NULL && PyUnicode_Check(item_text)) {
        PyObject *parts[3] = {name_text, sr_equals, item_text};
        part = sr_cat(parts, 3);
    }
    else if (item_text != NULL) {
        part = PyUnicode_FromFormat("%U=%S", name_text, item_text);
    }
    Py_DECREF(name);
    Py_DECREF(item);
    Py_XDECREF(name_text);
    Py_XDECREF(item_text);
    return part;
}

static PyObject *
sr_sequence(PyObject *value, Py_ssize_t limit, Py_ssize_t depth, PyObject *secret, PyObject *user_reprs)
{
    PyTypeObject *kind = Py_TYPE(value);
    const char *opening = "[", *closing = "]";
    if (kind == &PyTuple_Type) {
        opening = "(", closing = ")";
    }
    else if (kind == &PySet_Type) {
        opening = "{", closing = "}";
    }
    else if (kind == &PyFrozenSet_Type) {
        opening = "frozenset({", closing = "})";
    }
    Py_ssize_t size = PyObject_Length(value);
    if (size < 0) {
        return NULL;
    }
    if (depth >= SR_MAX_DEPTH && size > 0) {
        return PyUnicode_FromFormat("%s...%s", opening, closing);
    }
    if (size == 0 && kind == &PySet_Type) {
        return PyUnicode_FromString("set()");
    }
    if (size == 0 && kind == &PyFrozenSet_Type) {
        return PyUnicode_FromString("frozenset()");
    }
    SrItems items = {PyObject_GetIter(value), limit, depth + 1, secret, user_reprs};
    if (items.iterator == NULL) {
        return NULL;
    }
    PyObject *joined = sr_join(sr_next_item, &items, limit);
    Py_DECREF(items.iterator);
    if (joined == NULL) {
        return NULL;
    }
    PyObject *parts[3] = {NULL, joined, NULL};
    if (kind == &PyList_Type) {
        parts[0] = sr_open_list, parts[2] = sr_close_list;
    }
    else if (kind == &PyTuple_Type) {
        parts[0] = sr_open_tuple, parts[2] = PyTuple_GET_SIZE(value) == 1 ? sr_close_single : sr_close_tuple;
    }
    else if (kind == &PySet_Type) {
        parts[0] = sr_open_set, parts[2] = sr_close_set;
    }
    else {
        parts[0] = sr_open_frozenset, parts[2] = sr_close_frozenset;
    }
    PyObject *text = sr_cat(parts, 3);
    Py_DECREF(joined);
    return text;
}

static PyObject *
sr_dict(PyObject *value, Py_ssize_t limit, Py_ssize_t depth, PyObject *secret, PyObject *user_reprs)
{
    if (depth >= SR_MAX_DEPTH && PyDict_GET_SIZE(value) > 0) {
        return PyUnicode_FromString("{...}");
    }
    int environ = PyDict_Contains(value, sr_wsgi_version);
    if (environ > 0) {
        environ = PyDict_Contains(value, sr_request_method);
    }
    if (environ != 0) {  /* a WSGI environ: the reference leaves out the process environment */
        return environ < 0 ? NULL : sr_call_fallback(value, limit, depth, secret, user_reprs);
    }
    SrEntries entries = {value, 0, PyDict_GET_SIZE(value), limit, depth + 1, secret, user_reprs};
    Py_INCREF(value);
    PyObject *joined = sr_join(sr_next_entry, &entries, limit);
    Py_DECREF(value);
    if (joined == NULL) {
        return NULL;
    }
    PyObject *parts[3] = {sr_open_set, joined, sr_close_set};
    PyObject *text = sr_cat(parts, 3);
    Py_DECREF(joined);
    return text;
}

/* An attribute of the value's type as the reference's f-string shows it: format(kind.name, ""). */
static PyObject *
sr_type_attribute(PyTypeObject *kind, PyObject *name)
{
    PyObject *attribute = PyObject_GetAttr((PyObject *)kind, name);
    if (attribute == NULL) {
        return NULL;
    }
    PyObject *text = PyObject_Format(attribute, sr_empty);
    Py_DECREF(attribute);
    return text;
}

/* "<module.Class object at " per type, for the two ways a value is shown by its type's name and its address
 * (sr_object, sr_default_repr): each keeps its own. Such a prefix is made of the type's names alone:
 * __module__ and __qualname__ (or, for object.__repr__ of a type whose module is builtins, its __name__).
 * A heap type's are the objects its dict, ht_qualname and ht_name hold, which an entry keeps alive: while
 * they are the ones it was made of, it says what they say (a version tag would not do: 3.13 sets a
 * __qualname__ without changing it). Other types cannot be renamed. Only types of type itself: a
 * metaclass may answer __module__ and __qualname__ in its own way. */
#define SR_PREFIXES 64
typedef struct {
    PyTypeObject *kind;
    PyObject *qualname, *name, *module;
    PyObject *prefix;
} SrPrefix;
static SrPrefix sr_object_prefixes[SR_PREFIXES], sr_default_prefixes[SR_PREFIXES];

/* The names a prefix of `kind` is made of (borrowed; NULL for a type that is not a heap type); -1 on error. */
static int
sr_names_of(PyTypeObject *kind, PyObject **qualname, PyObject **name, PyObject **module)
{
    *qualname = *name = *module = NULL;
    if (!(kind->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        return 0;
    }
    *qualname = ((PyHeapTypeObject *)kind)->ht_qualname;
    *name = ((PyHeapTypeObject *)kind)->ht_name;
    *module = PyDict_GetItemWithError(kind->tp_dict, sr_module_name);
    return *module == NULL && PyErr_Occurred() ? -1 : 0;
}

static SrPrefix *
sr_prefix_slot(SrPrefix *cache, PyTypeObject *kind)
{
    return &cache[((uintptr_t)kind >> 4) % SR_PREFIXES];
}

/* the remembered prefix (a new reference), or NULL (no error set) */
static PyObject *
sr_known_prefix(SrPrefix *cache, PyTypeObject *kind)
{
    SrPrefix *slot = sr_prefix_slot(cache, kind);
    PyObject *qualname, *name, *module;
    if (slot->kind != kind || sr_names_of(kind, &qualname, &name, &module) < 0) {
        PyErr_Clear();
        return NULL;
    }
    return slot->qualname == qualname && slot->name == name && slot->module == module ? Py_NewRef(slot->prefix)
                                                                                          : NULL;
}

static void
sr_remember_prefix(SrPrefix *cache, PyTypeObject *kind, PyObject *prefix)
{
    PyObject *qualname, *name, *module;
    if (!Py_IS_TYPE(kind, &PyType_Type) || sr_names_of(kind, &qualname, &name, &module) < 0) {
        PyErr_Clear();
        return;
    }
    SrPrefix *slot = sr_prefix_slot(cache, kind);
    slot->kind = kind;
    Py_XSETREF(slot->qualname, Py_XNewRef(qualname));
    Py_XSETREF(slot->name, Py_XNewRef(name));
    Py_XSETREF(slot->module, Py_XNewRef(module));
    Py_XSETREF(slot->prefix, Py_NewRef(prefix));
}

/* "0x" and the value's address in lower-case hex (as "%#x" % id(value) and "%p" write it), then ">"; its length */
static int
sr_address_tail(PyObject *value, char *tail)
{
    unsigned long long address = (unsigned long long)(uintptr_t)value;
    int digits = 1;
    for (unsigned long long rest = address >> 4; rest != 0; rest >>= 4) {
        digits++;
    }
    tail[0] = '0';
    tail[1] = 'x';
    for (int i = 0; i < digits; i++) {
        tail[1 + digits - i] = "0123456789abcdef"[(address >> (4 * i)) & 0xf];
    }
    tail[2 + digits] = '>';
    return 3 + digits;
}

static PyObject *
sr_with_address(PyObject *prefix, PyObject *value)
{
    char tail[24];
    Py_ssize_t tail_n = sr_address_tail(value, tail), prefix_n = PyUnicode_GET_LENGTH(prefix);
    PyObject *text = PyUnicode_New(prefix_n + tail_n, PyUnicode_MAX_CHAR_VALUE(prefix));
    if (text == NULL) {
        return NULL;
    }
    if (PyUnicode_CopyCharacters(text, 0, prefix, 0, prefix_n) < 0) {
        Py_DECREF(text);
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < tail_n; i++) {
        PyUnicode_WRITE(kind, data, prefix_n + i, (Py_UCS4)tail[i]);
    }
    return text;
}

/* <module.Class object at 0x...>: saferepr._object */
static PyObject *
sr_object(PyObject *value)
{
    PyTypeObject *kind = Py_TYPE(value);
    PyObject *prefix = sr_known_prefix(sr_object_prefixes, kind);
    if (prefix == NULL) {
        PyObject *module = sr_type_attribute(kind, sr_module_name);
        PyObject *qualname = module == NULL ? NULL : sr_type_attribute(kind, sr_qualname_name);
        prefix = qualname == NULL ? NULL : PyUnicode_FromFormat("<%U.%U object at ", module, qualname);
        Py_XDECREF(module);
        Py_XDECREF(qualname);
        if (prefix == NULL) {
            return NULL;
        }
        sr_remember_prefix(sr_object_prefixes, kind, prefix);
    }
    PyObject *text = sr_with_address(prefix, value);
    Py_DECREF(prefix);
    return text;
}

/* repr(value) for a value whose type's repr is object's own: object.__repr__ formats the type's names each
 * time; their part of the text, remembered per type, is what it wrote before the address. */
static PyObject *
sr_default_repr(PyObject *value)
{
    PyTypeObject *kind = Py_TYPE(value);
    PyObject *prefix = sr_known_prefix(sr_default_prefixes, kind);
    if (prefix != NULL) {
        PyObject *text = sr_with_address(prefix, value);
        Py_DECREF(prefix);
        return text;
    }
    PyObject *text = PyObject_Repr(value);
    if (text == NULL || !PyUnicode_Check(text)) {
        return text;
    }
    char tail[24];
    Py_ssize_t tail_n = sr_address_tail(value, tail), length = PyUnicode_GET_LENGTH(text);
    PyObject *expected = PyUnicode_FromStringAndSize(tail, tail_n);
    if (expected == NULL) {
        Py_DECREF(text);
        return NULL;
    }
    /* only a text that ends with the address as written here has its prefix remembered */
    Py_ssize_t at = length - tail_n;
    int ends_so = at > 0 ? PyUnicode_Tailmatch(text, expected, at, length, 1) : 0;
    Py_DECREF(expected);
    if (ends_so == 1) {
        PyObject *found = PyUnicode_Substring(text, 0, at);
        if (found == NULL) {
            Py_DECREF(text);
            return NULL;
        }
        sr_remember_prefix(sr_default_prefixes, kind, found);
        Py_DECREF(found);
    }
    else if (ends_so < 0) {
        Py_CLEAR(text);
    }
    return text;
}

/* Class(name=value, ...) of the fields `names`, from the tuple's items or the record's `namespace`. */
static PyObject *
sr_fields(PyObject *value, PyObject *names, PyObject *namespace, Py_ssize_t limit, Py_ssize_t depth,
          PyObject *secret, PyObject *user_reprs)
{
    PyObject *qualname = sr_type_attribute(Py_TYPE(value), sr_qualname_name);
    if (qualname == NULL) {
        return NULL;
    }
    SrFields fields = {names, value, namespace, 0, limit, depth + 1, secret, user_reprs};
    PyObject *joined = sr_join(sr_next_field, &fields, limit);
    PyObject *parts[4] = {qualname, sr_open_tuple, joined, sr_close_tuple};
    PyObject *text = joined == NULL ? NULL : sr_cat(parts, 4);
    Py_DECREF(qualname);
    Py_XDECREF(joined);
    return text;
}

/* A record, as the reference's "fields" way shows it: Class(name=value, ...). A named tuple, and a
 * dataclass or attrs instance whose fields (saferepr._record_fields) are all in its __dict__; NULL
 * without an error set for any other (the reference shows it: slots, fields not set). */
static PyObject *
sr_record(PyObject *value, Py_ssize_t limit, Py_ssize_t depth, PyObject *secret, PyObject *user_reprs)
{
    PyTypeObject *kind = Py_TYPE(value);
    if (PyTuple_Check(value)) {
        PyObject *names = PyObject_GetAttr((PyObject *)kind, sr_fields_name);
        if (names == NULL || !PyTuple_Check(names)) {
            PyErr_Clear();
            Py_XDECREF(names);
            return NULL;
        }
        PyObject *text = sr_fields(value, names, NULL, limit, depth, secret, user_reprs);
        Py_DECREF(names);
        return text;
    }
    PyObject *names = PyDict_GetItemWithError(sr_record_fields, (PyObject *)kind);  /* borrowed */
    if (names == NULL || !PyTuple_CheckExact(names)) {
        return NULL;
    }
    Py_INCREF(names);
    PyObject *namespace = PyObject_GenericGetAttr(value, sr_dict_name);  /* object.__getattribute__(value, "__dict__") */
    PyObject *text = NULL;
    if (namespace == NULL || !PyDict_Check(namespace)) {
        PyErr_Clear();
    }
    else {
        int every = 1;
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names) && every == 1; i++) {
            every = PyDict_Contains(namespace, PyTuple_GET_ITEM(names, i));
        }
        if (every == 1) {
            text = sr_fields(value, names, namespace, limit, depth, secret, user_reprs);
        }
        else if (every < 0) {
            PyErr_Clear();
        }
    }
    Py_XDECREF(namespace);
    Py_DECREF(names);
    return text;
}

/* A subclass of list, tuple or dict, as the reference's "contents" way shows it: Class([...]), what it holds
 * read through the built-in type's own storage (no method of the subclass runs) and shown as that built-in
 * container, at the same depth. NULL without an error set for any other holder (sets, deques, views ...:
 * the reference shows them). */
static PyObject *
sr_contents(PyObject *value, Py_ssize_t limit, Py_ssize_t depth, PyObject *secret, PyObject *user_reprs)
{
    PyObject *contents;
    if (PyList_Check(value)) {
        contents = PyList_GetSlice(value, 0, PyList_GET_SIZE(value));
    }
    else if (PyTuple_Check(value)) {
        contents = PyTuple_GetSlice(value, 0, PyTuple_GET_SIZE(value));
    }
    else if (PyDict_Check(value)) {
        contents = PyDict_New();
        PyObject *key, *item;
        Py_ssize_t position = 0;
        while (contents != NULL && PyDict_Next(value, &position, &key, &item)) {
            Py_INCREF(key);
            Py_INCREF(item);
            int failed = PyDict_SetItem(contents, key, item);
            Py_DECREF(key);
            Py_DECREF(item);
            if (failed < 0) {
                Py_CLEAR(contents);
            }
        }
    }
    else {
        return NULL;
    }
    if (contents == NULL) {
        return NULL;
    }
    PyObject *qualname = sr_type_attribute(Py_TYPE(value), sr_qualname_name);
    PyObject *shown = qualname == NULL ? NULL : sr_repr(contents, limit, depth, secret, user_reprs);
    PyObject *text = NULL;
    if (shown != NULL && PyUnicode_Check(shown)) {
        PyObject *parts[4] = {qualname, sr_open_tuple, shown, sr_close_tuple};
        text = sr_cat(parts, 4);
    }
    else if (shown != NULL) {
        PyErr_SetString(PyExc_TypeError, "saferepr: a part is not a str");
    }
    Py_DECREF(contents);
    Py_XDECREF(qualname);
    Py_XDECREF(shown);
    return text;
}

/* saferepr._repr */
static PyObject *
sr_repr(PyObject *value, Py_ssize_t limit, Py_ssize_t depth, PyObject *secret, PyObject *user_reprs)
{
    PyTypeObject *kind = Py_TYPE(value);
    if ((PyObject *)kind == sr_shown_type) {
        return PyObject_GetAttr(value, sr_text_name);
    }
    if (kind == &PyUnicode_Type || kind == &PyBytes_Type) {
        return sr_text(value, limit, depth, secret, user_reprs);
    }
    if (kind == &PyList_Type || kind == &PyTuple_Type || kind == &PySet_Type || kind == &PyFrozenSet_Type) {
        return sr_sequence(value, limit, depth, secret, user_reprs);
    }
    if (kind == &PyDict_Type) {
        return sr_dict(value, limit, depth, secret, user_reprs);
    }
    if (kind == &PyByteArray_Type) {
        return sr_call_fallback(value, limit, depth, secret, user_reprs);
    }
    int everything = PyObject_IsTrue(user_reprs);
    if (everything != 0) {
        return everything < 0 ? NULL : PyObject_Repr(value);
    }
    PyObject *way = PyDict_GetItemWithError(sr_ways, (PyObject *)kind);  /* borrowed */
    if (way == NULL || !PyUnicode_Check(way)) {
        return PyErr_Occurred() ? NULL : sr_call_fallback(value, limit, depth, secret, user_reprs);
    }
    if (PyUnicode_CompareWithASCIIString(way, "repr") == 0) {
        /* object's own repr, not a metaclass's names: object.__repr__ reads the type's slots, not its attributes */
        if (kind->tp_repr == PyBaseObject_Type.tp_repr && Py_IS_TYPE(kind, &PyType_Type)) {
            return sr_default_repr(value);
        }
        return PyObject_Repr(value);
    }
    if (PyUnicode_CompareWithASCIIString(way, "object") == 0) {
        return sr_object(value);
    }
    if (depth < SR_MAX_DEPTH && PyUnicode_CompareWithASCIIString(way, "contents") == 0) {
        PyObject *text = sr_contents(value, limit, depth, secret, user_reprs);
        if (text != NULL || PyErr_Occurred()) {
            return text;
        }
    }
    if (depth < SR_MAX_DEPTH && PyUnicode_CompareWithASCIIString(way, "fields") == 0) {
        PyObject *text = sr_record(value, limit, depth, secret, user_reprs);
        if (text != NULL || PyErr_Occurred()) {
            return text;
        }
    }
    return sr_call_fallback(value, limit, depth, secret, user_reprs);
}

/* A limit the C code takes: an exact int from 0 to a bound far from overflow; -1 otherwise (no error set). */
static Py_ssize_t
sr_limit_of(PyObject *limit)
{
    if (!PyLong_CheckExact(limit)) {
        return -1;
    }
    Py_ssize_t value = PyLong_AsSsize_t(limit);
    if (value == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    return value >= 0 && value <= PY_SSIZE_T_MAX / 4 ? value : -1;
}

static PyObject *
sr_type_name(PyObject *value)
{
    PyObject *name = PyObject_GetAttr((PyObject *)Py_TYPE(value), sr_name_name);
    PyObject *text = name == NULL ? NULL : PyObject_Format(name, sr_empty);
    Py_XDECREF(name);
    if (text == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return NULL;
        }
        PyErr_Clear();
        text = PyUnicode_FromString("?");
    }
    return text;
}

/* saferepr.saferepr with a limit the C code takes (see sr_limit_of) */
static PyObject *
sr_saferepr(PyObject *value, Py_ssize_t limit, PyObject *secret, PyObject *user_reprs)
{
    PyTypeObject *kind = Py_TYPE(value);
    PyObject *text;
    if (kind == &PyLong_Type || kind == &PyFloat_Type || kind == &PyBool_Type || value == Py_None
        || kind == &PyComplex_Type) {
        text = PyObject_Repr(value);
    }
    else {
        text = sr_repr(value, limit, 0, secret, user_reprs);
    }
    if (text == NULL) {  /* a broken __repr__ is the program's business: said, not raised */
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return NULL;
        }
        PyObject *exc = take_error();
        PyObject *value_name = sr_type_name(value);
        PyObject *exc_name = value_name == NULL ? NULL : sr_type_name(exc);
        if (exc_name != NULL) {
            text = PyUnicode_FromFormat("<%U object; repr() raised %U>", value_name, exc_name);
        }
        Py_XDECREF(exc);
        Py_XDECREF(value_name);
        Py_XDECREF(exc_name);
        if (text == NULL) {
            return NULL;
        }
    }
    return cut_to_limit(text, limit);
}

/* saferepr(value, limit=DEFAULT_LIMIT, secret=None, user_reprs=False) */
static PyObject *
py_saferepr(PyObject *module, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    if (sr_fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "saferepr: configure_saferepr was not called");
        return NULL;
    }
    Py_ssize_t limit = nargs >= 2 ? sr_limit_of(args[1]) : sr_limit_of(sr_default_limit);
    if (kwnames != NULL || nargs < 1 || nargs > 4 || limit < 0) {
        return PyObject_Vectorcall(sr_py_saferepr, args, (size_t)nargs, kwnames);
    }
    return sr_saferepr(args[0], limit, nargs >= 3 ? args[2] : Py_None, nargs >= 4 ? args[3] : Py_False);
}

/* saferepr._repr(value, limit, depth, secret, user_reprs): what the reference calls for what a value holds */
static PyObject *
py_saferepr_inner(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (sr_fallback == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "saferepr_inner: configure_saferepr was not called");
        return NULL;
    }
    if (nargs != 5) {
        PyErr_SetString(PyExc_TypeError, "saferepr_inner(value, limit, depth, secret, user_reprs)");
        return NULL;
    }
    Py_ssize_t limit = sr_limit_of(args[1]);
    Py_ssize_t depth = sr_limit_of(args[2]);
    if (limit < 0 || depth < 0) {
        return PyObject_Vectorcall(sr_fallback, args, 5, NULL);
    }
    return sr_repr(args[0], limit, depth, args[3], args[4]);
}

static int
sr_intern(PyObject **slot, const char *text)
{
    if (*slot == NULL) {
        *slot = PyUnicode_InternFromString(text);
    }
    return *slot == NULL ? -1 : 0;
}

/* configure_saferepr(py_repr, py_saferepr, ways, record_fields, shown_type, default_limit) */
static PyObject *
py_configure_saferepr(PyObject *module, PyObject *args)
{
    PyObject *fallback, *py_saferepr_function, *ways, *record_fields, *shown_type, *default_limit;
    if (!PyArg_ParseTuple(args, "OOO!O!OO:configure_saferepr", &fallback, &py_saferepr_function, &PyDict_Type, &ways,
                          &PyDict_Type, &record_fields, &shown_type, &default_limit)) {
        return NULL;
    }
    if (sr_intern(&sr_comma, ", ") < 0 || sr_intern(&sr_ellipsis, "...") < 0 || sr_intern(&sr_secret_text, "'***'") < 0
        || sr_intern(&sr_empty, "") < 0 || sr_intern(&sr_text_name, "text") < 0
        || sr_intern(&sr_fields_name, "_fields") < 0 || sr_intern(&sr_module_name, "__module__") < 0
        || sr_intern(&sr_qualname_name, "__qualname__") < 0 || sr_intern(&sr_name_name, "__name__") < 0
        || sr_intern(&sr_dict_name, "__dict__") < 0 || sr_intern(&sr_verdicts_name, "_verdicts") < 0
        || sr_intern(&sr_colon, ": ") < 0 || sr_intern(&sr_equals, "=") < 0 || sr_intern(&sr_open_list, "[") < 0
        || sr_intern(&sr_close_list, "]") < 0 || sr_intern(&sr_open_tuple, "(") < 0 || sr_intern(&sr_close_tuple, ")") < 0
        || sr_intern(&sr_close_single, ",)") < 0 || sr_intern(&sr_open_set, "{") < 0 || sr_intern(&sr_close_set, "}") < 0
        || sr_intern(&sr_open_frozenset, "frozenset({") < 0 || sr_intern(&sr_close_frozenset, "})") < 0 || sr_intern(&sr_wsgi_version, "wsgi.version") < 0 || sr_intern(&sr_request_method, "REQUEST_METHOD") < 0) {
        return NULL;
    }
    Py_XSETREF(sr_fallback, Py_NewRef(fallback));
    Py_XSETREF(sr_py_saferepr, Py_NewRef(py_saferepr_function));
    Py_XSETREF(sr_ways, Py_NewRef(ways));
    Py_XSETREF(sr_record_fields, Py_NewRef(record_fields));
    Py_XSETREF(sr_shown_type, Py_NewRef(shown_type));
    Py_XSETREF(sr_default_limit, Py_NewRef(default_limit));
    Py_RETURN_NONE;
}

/* read_secret_verdicts(function): hookwise.render.Render.is_secret, whose verdicts (its _verdicts cache,
 * name -> bool) saferepr reads without calling it */
static PyObject *
py_read_secret_verdicts(PyObject *module, PyObject *function)
{
    if (!PyFunction_Check(function)) {
        PyErr_SetString(PyExc_TypeError, "read_secret_verdicts(function)");
        return NULL;
    }
    Py_XSETREF(sr_render_is_secret, Py_NewRef(function));
    Py_RETURN_NONE;
}
