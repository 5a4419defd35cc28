/* The chrome converter's common events, in C: hookwise.recording.chrome.ProcessTrace.events.
 *
 * Part of _speedups.c (after the JSON helpers and _recvalues.h, whose reader it reads the events with). The live chrome listener converts every chunk of its
 * recording as the run goes, and the Python loop cost 8 to 40 us per call: most of what `chrome` adds.
 *
 * chrome_events(trace, data, pos, ts, track) converts events from `pos` on, as the Python loop would,
 * for as long as each is the common case, and returns (pos, ts) at the first one that is not (or at the
 * chunk's end): the Python loop converts that one and calls again. The common case:
 * - a START of a known site with named parameters (not a replaced builtin, not a generator or a
 *   coroutine), outside an asyncio task, with no meaning (sql, http, request), whose caller and app
 *   caller were rendered before (ProcessTrace._callers), on its thread's track, made already;
 * - an END with no outcome fields of a call open on top of its track's stack, whose slice has a tid.
 * Anything else, and any event this code cannot read, is left to Python before anything is changed, so
 * the Python loop stays the one reference for every case and reads the state this code leaves: the same
 * open calls (lists laid out as _TS ... _RECORDED_TS), stacks and output list. Bytes, tuples and
 * containers are rendered by ProcessTrace._value; the other values here, as Render.value shows them.
 */

/* the slots of an open call (chrome.py's _TS ... _RECORDED_TS) */
enum { OPEN_TS, OPEN_TRACK, OPEN_SITE, OPEN_ARGS, OPEN_CHILD_END, OPEN_MEANING, OPEN_ALONE, OPEN_THREAD, OPEN_CALL_ID,
       OPEN_RECORDED_TS, OPEN_SLOTS };
enum { REC_START = 5, REC_END = 6 };

static PyObject *str_t_sites, *str_t_callers, *str_t_open, *str_t_stacks, *str_t_tids, *str_t_early, *str_t_out,
    *str_t_origin_ns, *str_t_pid, *str_t_limit, *str_t_value, *str_s_names, *str_s_secret, *str_s_head,
    *str_s_builtin, *str_s_suspending, *str_t_recording, *str_t_strings;

/* text (a str), cut as ProcessTrace._cut cuts it, added as a JSON string */
static int
add_cut_quoted(JsonText *out, PyObject *text, Py_ssize_t limit)
{
    if (PyUnicode_GET_LENGTH(text) <= limit) {
        return json_text_quote(out, text);
    }
    PyObject *cut = cut_to_limit(Py_NewRef(text), limit);
    if (cut == NULL) {
        return -1;
    }
    int status = json_text_quote(out, cut);
    Py_DECREF(cut);
    return status;
}

/* the decimal digits of `number` at `out` (room for 21 characters); their count */
static int
format_integer(char *out, long long number)
{
    char reversed[24];
    unsigned long long magnitude = number < 0 ? 0ULL - (unsigned long long)number : (unsigned long long)number;
    int count = 0, size = 0;
    do {
        reversed[count++] = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude);
    if (number < 0) {
        out[size++] = '-';
    }
    while (count) {
        out[size++] = reversed[--count];
    }
    return size;
}

static int
add_number(JsonText *out, long long number)
{
    char digits[32];
    int size = format_integer(digits, number);
    return json_text_add(out, digits, size);
}

/* repr(ns / 1000), as Python writes it (ts and dur, in us). Below 2**53 / 1000 us (104 days) two numbers
 * of ns a thousandth of a us apart are different doubles, so the shortest text that reads back as the
 * double, repr's, is the exact decimal: up to three decimals, trailing zeros dropped, at least ".0".
 * Larger numbers go through repr's own code. */
static int
add_us(JsonText *out, long long ns)
{
    if (ns <= -1000000000000000LL || ns >= 1000000000000000LL) {
        char *text = PyOS_double_to_string((double)ns / 1000.0, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL) {
            return -1;
        }
        int status = json_text_add(out, text, (Py_ssize_t)strlen(text));
        PyMem_Free(text);
        return status;
    }
    unsigned long long magnitude = ns < 0 ? (unsigned long long)(-ns) : (unsigned long long)ns;
    unsigned long long whole = magnitude / 1000, part = magnitude % 1000;
    char text[40];
    int size = 0;
    if (ns < 0) {
        text[size++] = '-';
    }
    size += format_integer(text + size, (long long)whole);
    text[size++] = '.';
    if (part == 0) {
        text[size++] = '0';
    }
    else {
        text[size++] = (char)('0' + part / 100);
        if (part % 100) {
            text[size++] = (char)('0' + part / 10 % 10);
            if (part % 10) {
                text[size++] = (char)('0' + part % 10);
            }
        }
    }
    return json_text_add(out, text, size);
}

static int
add_str(JsonText *out, PyObject *text)
{
    Py_ssize_t size;
    const char *data = PyUnicode_AsUTF8AndSize(text, &size);  /* the converter's JSON texts are ASCII */
    return data == NULL ? -1 : json_text_add(out, data, size);
}

/* The common str argument, written without making it: printable ASCII with no quote or backslash, whose
 * repr is the text between single quotes (cut as _cut cuts). 1 when written; 0 for any other text (and
 * when out of memory: the general path then says so). */
static int
add_plain_str_repr(JsonText *out, const unsigned char *text, Py_ssize_t length, Py_ssize_t limit)
{
    for (Py_ssize_t i = 0; i < length; i++) {
        unsigned char c = text[i];
        if (c < 0x20 || c > 0x7e || c == '\'' || c == '\\') {
            return 0;
        }
    }
    /* repr: ' text ', cut to limit - 3 characters and "..." when longer than limit */
    int cut = length + 2 > limit;
    Py_ssize_t kept = cut ? (limit - 3 > 0 ? limit - 3 : 0) : length + 2;  /* characters of the repr kept */
    char *at = json_text_grow(out, 2 + 2 * (kept > 0 ? kept : 0) + 3);
    if (at == NULL) {
        PyErr_Clear();
        return 0;
    }
    *at++ = '"';
    for (Py_ssize_t i = 0; i < kept; i++) {
        char c = i == 0 ? '\'' : (i == length + 1 ? '\'' : (char)text[i - 1]);
        if (c == '"') {
            *at++ = '\\';
        }
        *at++ = c;
    }
    if (cut) {
        memcpy(at, "...", 3);
        at += 3;
    }
    *at++ = '"';
    out->size = at - out->data;
    return 1;
}

typedef struct {
    PyObject *trace;  /* the ProcessTrace (borrowed): its state is read at the first event that needs it */
    int ready;
    PyObject *sites, *callers, *open, *stacks, *tids, *early, *out, *value;
    PyObject *strings;  /* the recording's: an object's type name */
    JsonText args, tail, slice, skipped;  /* reused by every event of a call of chrome_events */
    struct { unsigned long long file, line, function; PyObject *text; } places[64];  /* known_caller's last answers
        (borrowed from `callers`, which nothing else changes while chrome_events runs) */
    long long origin, pid;
    Py_ssize_t limit;
} TraceState;

/* One value (ProcessTrace._value): its JSON text added to `out`; -1 on error. */
static int
add_value(ValueReader *r, JsonText *out, PyObject *buffer, TraceState *s)
{
    Py_ssize_t limit = s->limit;
    if (r->pos >= r->end) {
        r->unread = 1;
        return 0;
    }
    Py_ssize_t at = r->pos;
    unsigned char tag = r->data[r->pos++];
    switch (tag) {
    case RV_NONE: return json_text_add(out, "\"None\"", 6);
    case RV_TRUE: return json_text_add(out, "\"True\"", 6);
    case RV_FALSE: return json_text_add(out, "\"False\"", 7);
    case RV_REDACTED: return json_text_add(out, "\"***\"", 5);
    case RV_INT: {
        long long number = rv_z(r);
        char digits[32];
        int size = format_integer(digits, number);
        if (size <= limit) {
            return json_text_add(out, "\"", 1) < 0 || json_text_add(out, digits, size) < 0
                   || json_text_add(out, "\"", 1) < 0 ? -1 : 0;
        }
        PyObject *text = PyUnicode_FromStringAndSize(digits, size);
        int status = text == NULL ? -1 : add_cut_quoted(out, text, limit);
        Py_XDECREF(text);
        return status;
    }
    case RV_STR:
    case RV_SHOWN: {
        unsigned long long length = rv_u(r);
        const char *start = rv_bytes(r, length);
        if (start == NULL) {
            return 0;
        }
        if (tag == RV_STR && add_plain_str_repr(out, (const unsigned char *)start, (Py_ssize_t)length, limit)) {
            return 0;
        }
        PyObject *text = PyUnicode_DecodeUTF8(start, (Py_ssize_t)length, "surrogatepass");
        if (text == NULL) {
            return -1;
        }
        if (tag == RV_STR) {  /* a str argument: shown as its repr */
            Py_SETREF(text, PyObject_Repr(text));
            if (text == NULL) {
                return -1;
            }
        }
        int status = add_cut_quoted(out, text, limit);
        Py_DECREF(text);
        return status;
    }
    case RV_FLOAT: {  /* saferepr shows a float by its repr */
        PyObject *number = rv_float(r);
        PyObject *text = number == NULL ? NULL : PyObject_Repr(number);
        Py_XDECREF(number);
        int status = text == NULL ? (r->unread ? 0 : -1) : add_cut_quoted(out, text, limit);
        Py_XDECREF(text);
        return status;
    }
    case RV_OBJECT: {  /* <module.Class object at 0x...>, by its type's name */
        unsigned long long name = rv_u(r), address = rv_u(r);
        PyObject *key = r->unread ? NULL : PyLong_FromUnsignedLongLong(name);
        PyObject *type_name = key == NULL || !PyDict_Check(s->strings) ? NULL : PyDict_GetItemWithError(s->strings, key);
        Py_XDECREF(key);
        if (type_name == NULL || !PyUnicode_Check(type_name)) {  /* not read yet: the Python side refreshes */
            PyErr_Clear();
            r->unread = 1;
            return 0;
        }
        PyObject *text = rv_object_text(type_name, address);
        int status = text == NULL ? -1 : add_cut_quoted(out, text, limit);
        Py_XDECREF(text);
        return status;
    }
    case RV_CUT:
    case RV_BYTES_CUT: {  /* the first characters (bytes) of a longer str (bytes): their repr, then "..." */
        PyObject *text = rv_cut_text(r, tag);
        int status = text == NULL ? (r->unread ? 0 : -1) : add_cut_quoted(out, text, limit);
        Py_XDECREF(text);
        return status;
    }
    default: {  /* the rest (bytes, tuples, containers) by the Python reference */
        PyObject *answer = PyObject_CallFunction(s->value, "On", buffer, at);
        if (answer == NULL) {
            return -1;
        }
        Py_ssize_t after;
        PyObject *text;
        if (!PyArg_ParseTuple(answer, "Un", &text, &after) || after < at || after > r->end) {
            Py_DECREF(answer);
            return -1;
        }
        int status = add_str(out, text);
        Py_DECREF(answer);
        r->pos = after;
        return status;
    }
    }
}


static void
trace_state_clear(TraceState *s)
{
    Py_CLEAR(s->sites);
    Py_CLEAR(s->callers);
    Py_CLEAR(s->open);
    Py_CLEAR(s->stacks);
    Py_CLEAR(s->tids);
    Py_CLEAR(s->early);
    Py_CLEAR(s->out);
    Py_CLEAR(s->value);
    Py_CLEAR(s->strings);
    PyMem_Free(s->args.data);
    PyMem_Free(s->tail.data);
    PyMem_Free(s->slice.data);
    PyMem_Free(s->skipped.data);
    s->args.data = s->tail.data = s->slice.data = s->skipped.data = NULL;
}

/* Read the trace's state, once per call of chrome_events and only when an event needs it (a chunk of
 * calls in asyncio tasks hands each event to Python: each would pay for a read it does not use).
 * 1: ready; 0: a state this code does not convert with (the Python loop does); -1: error. */
static int
trace_state_ready(TraceState *s)
{
    if (s->ready) {
        return s->limit >= 0;
    }
    PyObject *trace = s->trace;
    if (str_t_sites == NULL) {
        if ((str_t_sites = PyUnicode_InternFromString("_sites")) == NULL
            || (str_t_callers = PyUnicode_InternFromString("_callers")) == NULL
            || (str_t_open = PyUnicode_InternFromString("_open")) == NULL
            || (str_t_stacks = PyUnicode_InternFromString("_stacks")) == NULL
            || (str_t_tids = PyUnicode_InternFromString("_tids")) == NULL
            || (str_t_early = PyUnicode_InternFromString("_early")) == NULL
            || (str_t_out = PyUnicode_InternFromString("out")) == NULL
            || (str_t_origin_ns = PyUnicode_InternFromString("origin_ns")) == NULL
            || (str_t_pid = PyUnicode_InternFromString("pid")) == NULL
            || (str_t_limit = PyUnicode_InternFromString("limit")) == NULL
            || (str_t_value = PyUnicode_InternFromString("_value")) == NULL
            || (str_s_names = PyUnicode_InternFromString("names")) == NULL
            || (str_s_secret = PyUnicode_InternFromString("secret")) == NULL
            || (str_s_head = PyUnicode_InternFromString("head")) == NULL
            || (str_s_builtin = PyUnicode_InternFromString("builtin")) == NULL
            || (str_s_suspending = PyUnicode_InternFromString("suspending")) == NULL
            || (str_t_recording = PyUnicode_InternFromString("recording")) == NULL
            || (str_t_strings = PyUnicode_InternFromString("strings")) == NULL) {
            return -1;
        }
    }
    s->ready = 1;
    if ((s->sites = PyObject_GetAttr(trace, str_t_sites)) == NULL
        || (s->callers = PyObject_GetAttr(trace, str_t_callers)) == NULL
        || (s->open = PyObject_GetAttr(trace, str_t_open)) == NULL
        || (s->stacks = PyObject_GetAttr(trace, str_t_stacks)) == NULL
        || (s->tids = PyObject_GetAttr(trace, str_t_tids)) == NULL
        || (s->early = PyObject_GetAttr(trace, str_t_early)) == NULL
        || (s->out = PyObject_GetAttr(trace, str_t_out)) == NULL
        || (s->value = PyObject_GetAttr(trace, str_t_value)) == NULL) {
        trace_state_clear(s);
        return -1;
    }
    PyObject *recording = PyObject_GetAttr(trace, str_t_recording);
    s->strings = recording == NULL ? NULL : PyObject_GetAttr(recording, str_t_strings);
    Py_XDECREF(recording);
    if (s->strings == NULL) {
        trace_state_clear(s);
        return -1;
    }
    if (!PyDict_Check(s->sites) || !PyDict_Check(s->callers) || !PyDict_Check(s->open) || !PyDict_Check(s->stacks)
        || !PyDict_Check(s->tids) || !PyDict_Check(s->early) || !PyList_Check(s->out)) {
        PyErr_SetString(PyExc_TypeError, "chrome_events: not a ProcessTrace");
        trace_state_clear(s);
        return -1;
    }
    PyObject *origin = PyObject_GetAttr(trace, str_t_origin_ns);
    PyObject *pid = PyObject_GetAttr(trace, str_t_pid);
    PyObject *limit = PyObject_GetAttr(trace, str_t_limit);
    s->origin = origin == NULL ? -1 : PyLong_AsLongLong(origin);
    s->pid = pid == NULL ? -1 : PyLong_AsLongLong(pid);
    s->limit = limit == NULL ? -1 : PyLong_AsSsize_t(limit);
    Py_XDECREF(origin);
    Py_XDECREF(pid);
    Py_XDECREF(limit);
    if (PyErr_Occurred()) {
        trace_state_clear(s);
        return -1;
    }
    return s->limit >= 0;
}

/* callers[(file, line, function)], borrowed; NULL (no error) when it was not rendered yet */
static PyObject *
known_caller(TraceState *s, unsigned long long file, unsigned long long line, unsigned long long function)
{
    size_t slot = (size_t)((file * 31 + line) * 31 + function) % 64;
    if (s->places[slot].text != NULL && s->places[slot].file == file && s->places[slot].line == line
        && s->places[slot].function == function) {
        return s->places[slot].text;
    }
    PyObject *key = Py_BuildValue("(KKK)", file, line, function);
    if (key == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *text = PyDict_GetItemWithError(s->callers, key);
    Py_DECREF(key);
    if (text == NULL || !PyUnicode_Check(text)) {
        PyErr_Clear();
        return NULL;
    }
    s->places[slot].file = file;
    s->places[slot].line = line;
    s->places[slot].function = function;
    s->places[slot].text = text;
    return text;
}

/* 1: converted; 0: left to Python (nothing changed); -1: error */
static int
start_event(ValueReader *r, TraceState *s, PyObject *buffer, long long ts, PyObject *track)
{
    unsigned long long call_id = rv_u(r), site_id = rv_u(r), file_id = rv_u(r), line = rv_u(r),
                       function_id = rv_u(r), app = rv_u(r), app_line = 0, app_function = 0;
    if (app > 1) {
        app_line = rv_u(r);
        app_function = rv_u(r);
    }
    unsigned long long task_id = rv_u(r), request = rv_u(r), count = rv_u(r);
    if (r->unread || task_id != 0) {
        return 0;
    }
    int ready = trace_state_ready(s);
    if (ready <= 0) {
        return ready;
    }
    PyObject *number = PyLong_FromUnsignedLongLong(site_id);
    if (number == NULL) {
        return -1;
    }
    PyObject *site = PyDict_GetItemWithError(s->sites, number);  /* borrowed */
    Py_DECREF(number);
    if (site == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *builtin = PyObject_GetAttr(site, str_s_builtin);
    PyObject *suspending = builtin == NULL ? NULL : PyObject_GetAttr(site, str_s_suspending);
    PyObject *names = suspending == NULL ? NULL : PyObject_GetAttr(site, str_s_names);
    PyObject *secret = names == NULL ? NULL : PyObject_GetAttr(site, str_s_secret);
    int status = -1;
    JsonText args = s->args;  /* its buffer, written back at the end */
    args.size = 0;
    PyObject *call = NULL;
    if (secret == NULL) {
        goto done;
    }
    status = 0;
    if (builtin != Py_False || suspending != Py_False || !PyList_Check(names) || !PyList_Check(secret)
        || PyList_GET_SIZE(names) != PyList_GET_SIZE(secret)) {
        goto done;
    }
    status = -1;
    if (json_text_add(&args, "\"call_id\":", 10) < 0 || add_number(&args, (long long)call_id) < 0
        || json_text_add(&args, ",\"arguments\":{", 14) < 0) {
        goto done;
    }
    Py_ssize_t named = PyList_GET_SIZE(names);
    for (unsigned long long index = 0; index < count; index++) {
        if (r->unread) {
            break;
        }
        if ((Py_ssize_t)index >= named) {  /* read, not shown (as the Python loop does) */
            s->skipped.size = 0;
            int skip = add_value(r, &s->skipped, buffer, s);
            if (skip < 0) {
                goto done;
            }
            continue;
        }
        if ((index > 0 && json_text_add(&args, ",", 1) < 0) || add_str(&args, PyList_GET_ITEM(names, index)) < 0) {
            goto done;
        }
        Py_ssize_t before = args.size;
        if (add_value(r, &args, buffer, s) < 0) {
            goto done;
        }
        if (PyObject_IsTrue(PyList_GET_ITEM(secret, index))) {  /* a secret-named parameter */
            args.size = before;
            if (json_text_add(&args, "\"***\"", 5) < 0) {
                goto done;
            }
        }
    }
    if (json_text_add(&args, "}", 1) < 0) {
        goto done;
    }
    status = 0;
    if (r->unread || r->pos >= r->end || r->data[r->pos] != 0) {  /* a meaning's fields: Python's */
        goto done;
    }
    r->pos++;
    if (file_id) {
        PyObject *caller = known_caller(s, file_id, line, function_id);
        if (caller == NULL) {
            goto done;
        }
        status = -1;
        if (json_text_add(&args, ",\"caller\":", 10) < 0 || add_str(&args, caller) < 0
            || (app == 1 && (json_text_add(&args, ",\"app_caller\":", 14) < 0 || add_str(&args, caller) < 0))) {
            goto done;
        }
        status = 0;
    }
    if (app > 1) {
        PyObject *app_caller = known_caller(s, app - 1, app_line, app_function);
        if (app_caller == NULL) {
            goto done;
        }
        status = -1;
        if (json_text_add(&args, ",\"app_caller\":", 14) < 0 || add_str(&args, app_caller) < 0) {
            goto done;
        }
        status = 0;
    }
    if (request) {
        status = -1;
        if (json_text_add(&args, ",\"request_id\":", 14) < 0 || add_number(&args, (long long)(request - 1)) < 0) {
            goto done;
        }
        status = 0;
    }
    PyObject *stack = PyDict_GetItemWithError(s->stacks, track);  /* borrowed */
    if (stack == NULL || !PyList_Check(stack)) {  /* a new track: Python's */
        status = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    PyObject *id = PyLong_FromUnsignedLongLong(call_id);
    if (id == NULL) {
        status = -1;
        goto done;
    }
    if (PyDict_GET_SIZE(s->early) > 0) {  /* its end came first (a generator ended on another thread) */
        int early = PyDict_Contains(s->early, id);
        if (early != 0) {
            Py_DECREF(id);
            status = early < 0 ? -1 : 0;
            goto done;
        }
    }
    /* from here on the event is this code's: the call opens */
    status = -1;
    PyObject *text = PyUnicode_FromStringAndSize(args.data, args.size);
    call = PyList_New(OPEN_SLOTS);
    PyObject *at = PyLong_FromLongLong(ts);
    if (text == NULL || call == NULL || at == NULL) {
        Py_XDECREF(text);
        Py_XDECREF(at);
        Py_DECREF(id);
        goto done;
    }
    PyObject *top = PyList_GET_SIZE(stack) > 0 ? PyList_GET_ITEM(stack, PyList_GET_SIZE(stack) - 1) : NULL;
    PyObject *starts = at;  /* never before its parent */
    if (top != NULL && PyList_Check(top) && PyList_GET_SIZE(top) == OPEN_SLOTS) {
        int later = PyObject_RichCompareBool(PyList_GET_ITEM(top, OPEN_TS), at, Py_GT);
        if (later < 0) {
            Py_DECREF(text);
            Py_DECREF(at);
            Py_DECREF(id);
            goto done;
        }
        if (later) {
            starts = PyList_GET_ITEM(top, OPEN_TS);
        }
    }
    PyList_SET_ITEM(call, OPEN_TS, Py_NewRef(starts));
    PyList_SET_ITEM(call, OPEN_TRACK, Py_NewRef(track));
    PyList_SET_ITEM(call, OPEN_SITE, Py_NewRef(site));
    PyList_SET_ITEM(call, OPEN_ARGS, text);
    PyList_SET_ITEM(call, OPEN_CHILD_END, Py_NewRef(starts));
    PyList_SET_ITEM(call, OPEN_MEANING, Py_NewRef(Py_None));
    PyList_SET_ITEM(call, OPEN_ALONE, Py_NewRef(Py_False));
    PyList_SET_ITEM(call, OPEN_THREAD, Py_NewRef(PyTuple_GET_ITEM(track, 0)));
    PyList_SET_ITEM(call, OPEN_CALL_ID, Py_NewRef(id));
    PyList_SET_ITEM(call, OPEN_RECORDED_TS, at);
    int stored = PyDict_SetItem(s->open, id, call);
    Py_DECREF(id);
    if (stored < 0 || PyList_Append(stack, call) < 0) {
        goto done;
    }
    status = 1;
done:
    Py_XDECREF(builtin);
    Py_XDECREF(suspending);
    Py_XDECREF(names);
    Py_XDECREF(secret);
    Py_XDECREF(call);
    s->args = args;
    return status;
}

static int
end_event(ValueReader *r, TraceState *s, PyObject *buffer, long long ts)
{
    unsigned long long call_id = rv_u(r);
    if (r->unread) {
        return 0;
    }
    int ready = trace_state_ready(s);
    if (ready <= 0) {
        return ready;
    }
    PyObject *id = PyLong_FromUnsignedLongLong(call_id);
    if (id == NULL) {
        return -1;
    }
    JsonText tail = s->tail;  /* its buffer, written back at the end */
    tail.size = 0;
    int status = 0;
    /* first whether its slice is this code's to write (before its result is rendered for nothing) */
    PyObject *call = PyDict_GetItemWithError(s->open, id);  /* borrowed */
    if (call == NULL || !PyList_Check(call) || PyList_GET_SIZE(call) != OPEN_SLOTS) {
        status = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    PyObject *track = PyList_GET_ITEM(call, OPEN_TRACK);
    if (!PyTuple_Check(track) || PyTuple_GET_SIZE(track) != 2 || PyTuple_GET_ITEM(track, 1) != Py_None
        || PyList_GET_ITEM(call, OPEN_MEANING) != Py_None) {
        goto done;
    }
    PyObject *stack = PyDict_GetItemWithError(s->stacks, track);
    PyObject *tid = stack == NULL ? NULL : PyDict_GetItemWithError(s->tids, track);
    if (tid == NULL || !PyList_Check(stack) || PyList_GET_SIZE(stack) == 0
        || PyList_GET_ITEM(stack, PyList_GET_SIZE(stack) - 1) != call) {
        status = PyErr_Occurred() ? -1 : 0;
        goto done;
    }
    long long child_end = PyLong_AsLongLong(PyList_GET_ITEM(call, OPEN_CHILD_END));
    long long start = PyLong_AsLongLong(PyList_GET_ITEM(call, OPEN_TS));
    long long recorded = PyLong_AsLongLong(PyList_GET_ITEM(call, OPEN_RECORDED_TS));
    long long tid_number = PyLong_AsLongLong(tid);
    if (PyErr_Occurred()) {
        status = -1;
        goto done;
    }
    if (child_end > ts) {  /* a child ended after it (bounds kept): Python's _end */
        goto done;
    }
    /* then its result, and no outcome's fields (Python's) */
    status = -1;
    if (json_text_add(&tail, ",\"result\":", 10) < 0 || add_value(r, &tail, buffer, s) < 0) {
        goto done;
    }
    status = 0;
    if (r->unread || r->pos >= r->end || r->data[r->pos] != 0) {
        goto done;
    }
    r->pos++;
    /* from here on the event is this code's: the slice is written */
    status = -1;
    PyObject *head = PyObject_GetAttr(PyList_GET_ITEM(call, OPEN_SITE), str_s_head);
    if (head == NULL) {
        goto done;
    }
    JsonText slice = s->slice;
    slice.size = 0;
    char prefix[96];
    int size = 0;
    memcpy(prefix, "{\"ph\":\"X\",\"pid\":", 16);
    size = 16;
    size += format_integer(prefix + size, s->pid);
    memcpy(prefix + size, ",\"tid\":", 7);
    size += 7;
    size += format_integer(prefix + size, tid_number);
    prefix[size++] = ',';
    int written = json_text_add(&slice, prefix, size) == 0 && add_str(&slice, head) == 0
                  && json_text_add(&slice, ",\"ts\":", 6) == 0 && add_us(&slice, start - s->origin) == 0
                  && json_text_add(&slice, ",\"dur\":", 7) == 0 && add_us(&slice, ts - start) == 0
                  && json_text_add(&slice, ",\"args\":{", 9) == 0 && add_str(&slice, PyList_GET_ITEM(call, OPEN_ARGS)) == 0
                  && json_text_add(&slice, ",\"duration_ns\":", 15) == 0 && add_number(&slice, ts - recorded) == 0
                  && json_text_add(&slice, tail.data, tail.size) == 0 && json_text_add(&slice, "}}", 2) == 0;
    Py_DECREF(head);
    PyObject *text = written ? PyUnicode_FromStringAndSize(slice.data, slice.size) : NULL;
    s->slice = slice;
    if (text == NULL) {
        goto done;
    }
    Py_INCREF(call);  /* held across its removal from the stack and the open calls */
    Py_ssize_t depth = PyList_GET_SIZE(stack) - 1;
    int ok = PyList_SetSlice(stack, depth, depth + 1, NULL) == 0 && PyDict_DelItem(s->open, id) == 0;
    if (ok && depth > 0) {  /* the parent's children end no earlier than this one */
        PyObject *parent = PyList_GET_ITEM(stack, depth - 1);
        if (PyList_Check(parent) && PyList_GET_SIZE(parent) == OPEN_SLOTS) {
            PyObject *end = PyLong_FromLongLong(ts);
            int later = end == NULL ? -1 : PyObject_RichCompareBool(end, PyList_GET_ITEM(parent, OPEN_CHILD_END), Py_GT);
            ok = later >= 0 && (!later || PyList_SetItem(parent, OPEN_CHILD_END, Py_NewRef(end)) == 0);
            Py_XDECREF(end);
        }
    }
    Py_DECREF(call);
    ok = ok && PyList_Append(s->out, text) == 0;
    Py_DECREF(text);
    status = ok ? 1 : -1;
done:
    Py_XDECREF(id);
    s->tail = tail;
    return status;
}

/* chrome_events(trace, data, pos, ts, track) -> (pos, ts): see the top of this file */
static PyObject *
py_chrome_events(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyTuple_Check(args[4]) || PyTuple_GET_SIZE(args[4]) != 2) {
        PyErr_SetString(PyExc_TypeError, "chrome_events(trace, data, pos, ts, track)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[2]);
    long long ts = PyLong_AsLongLong(args[3]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    TraceState state;
    memset(&state, 0, sizeof state);
    state.trace = args[0];
    ValueReader r = {(const unsigned char *)view.buf, pos, view.len, 0, NULL, NULL};
    int failed = 0;
    while (r.pos < r.end) {
        Py_ssize_t event = r.pos;
        unsigned char tag = r.data[r.pos];
        if (tag != REC_START && tag != REC_END) {
            break;  /* the chunk's end (0), an ERROR, or what Python says is wrong */
        }
        r.pos++;
        long long at = ts + rv_z(&r);
        int done = r.unread ? 0 : tag == REC_START ? start_event(&r, &state, args[1], at, args[4])
                                                 : end_event(&r, &state, args[1], at);
        if (done <= 0) {
            r.pos = event;  /* Python converts this one (or raises what it raises for it) */
            failed = done < 0;
            break;
        }
        ts = at;
    }
    trace_state_clear(&state);
    PyBuffer_Release(&view);
    if (failed) {
        return NULL;
    }
    return Py_BuildValue("(nL)", r.pos, ts);
}
