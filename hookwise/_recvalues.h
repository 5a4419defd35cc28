/* A recording's values, read back: hookwise.recording.format.get_value, in C.
 *
 * Part of _speedups.c. Every output made from a recording reads each value it shows this way (the chrome
 * converter through ProcessTrace._value, the other converters through the reader), and a workload whose
 * calls pass containers (json's decoder: its memo dict, lists of parsed records) spent most of its
 * conversion in the Python reader. The format's docstring is the specification, and the Python function
 * the reference: read_value returns NotImplemented for whatever it does not read the same way (a number
 * past 64 bits, a value cut by the chunk's end, an unknown tag), and the Python function then reads it,
 * and raises what it raises.
 */

enum { RV_NONE, RV_FALSE, RV_TRUE, RV_INT, RV_FLOAT, RV_STR, RV_BYTES, RV_TUPLE, RV_SHOWN, RV_REDACTED, RV_DICT,
       RV_OBJECT, RV_CUT, RV_BYTES_CUT, RV_SEQ, RV_MAP, RV_STOP_KEY, RV_STOP = 255 };
#define RV_DEPTH 64 /* deeper than any writer nests (the safe repr's depth): past it, Python's */

typedef struct {
    const unsigned char *data;
    Py_ssize_t pos, end;
    int unread;  /* the Python reference reads this value (this event, for the chrome converter) */
    PyObject *shown, *strings;  /* read_value's arguments (unused by the chrome converter) */
} ValueReader;

static unsigned long long
rv_u(ValueReader *r)
{
    unsigned long long result = 0;
    for (int shift = 0; shift < 64 && r->pos < r->end; shift += 7) {
        unsigned char byte = r->data[r->pos++];
        if (shift == 63 && byte > 1) {
            break;  /* past 64 bits */
        }
        result |= (unsigned long long)(byte & 0x7F) << shift;
        if (byte < 0x80) {
            return result;
        }
    }
    r->unread = 1;
    return 0;
}

static long long
rv_z(ValueReader *r)
{
    unsigned long long n = rv_u(r);
    return (long long)(n >> 1) ^ -(long long)(n & 1);
}

/* the next `length` bytes (NULL, and unread, if the data ends first) */
static const char *
rv_bytes(ValueReader *r, unsigned long long length)
{
    if (r->unread || length > (unsigned long long)(r->end - r->pos)) {
        r->unread = 1;
        return NULL;
    }
    const char *start = (const char *)r->data + r->pos;
    r->pos += (Py_ssize_t)length;
    return start;
}

static PyObject *
rv_text(ValueReader *r)
{
    unsigned long long length = rv_u(r);
    const char *start = rv_bytes(r, length);
    return start == NULL ? NULL : PyUnicode_DecodeUTF8(start, (Py_ssize_t)length, "surrogatepass");
}

static PyObject *
rv_shown(ValueReader *r, PyObject *text)  /* steals text */
{
    if (text == NULL) {
        return NULL;
    }
    PyObject *shown = PyObject_CallOneArg(r->shown, text);
    Py_DECREF(text);
    return shown;
}

static PyObject *
rv_cut_text(ValueReader *r, unsigned char tag)
{
    if (tag == RV_CUT) {
        return repr_then_ellipsis(rv_text(r));
    }
    unsigned long long length = rv_u(r);
    const char *start = rv_bytes(r, length);
    return start == NULL ? NULL : repr_then_ellipsis(PyBytes_FromStringAndSize(start, (Py_ssize_t)length));
}

static PyObject *
rv_float(ValueReader *r)
{
    const char *start = rv_bytes(r, 8);
    if (start == NULL) {
        return NULL;
    }
#if PY_VERSION_HEX >= 0x030B0000
    double x = PyFloat_Unpack8(start, 1);
#else
    double x = _PyFloat_Unpack8((const unsigned char *)start, 1);
#endif
    return x == -1.0 && PyErr_Occurred() ? NULL : PyFloat_FromDouble(x);
}

/* "<name object at 0x...>": how an object recorded by its type's name and address is shown */
static PyObject *
rv_object_text(PyObject *type_name, unsigned long long address)
{
    char hex[24];
    snprintf(hex, sizeof hex, "0x%llx", address);
    return PyUnicode_FromFormat("<%S object at %s>", type_name, hex);
}

static PyObject *rv_value(ValueReader *r, int depth);

/* 1 at a sequence's or a mapping's STOP byte (read past), 0 before an item, -1 (unread) where the data ends */
static int
rv_at_stop(ValueReader *r)
{
    if (r->pos >= r->end) {
        r->unread = 1;
        return -1;
    }
    if (r->data[r->pos] == RV_STOP) {
        r->pos++;
        return 1;
    }
    return 0;
}

/* 1 while a sequence's or a mapping's items go on; 0 at its STOP byte (read past), or where the data
 * ends first (then *items is cleared, and the value unread) */
static int
rv_more(ValueReader *r, PyObject **items)
{
    int stop = rv_at_stop(r);
    if (stop < 0) {
        Py_CLEAR(*items);
    }
    return stop == 0;
}

static PyObject *
rv_value(ValueReader *r, int depth)
{
    if (r->pos >= r->end || depth > RV_DEPTH) {
        r->unread = 1;
        return NULL;
    }
    unsigned char tag = r->data[r->pos++];
    switch (tag) {
    case RV_NONE: Py_RETURN_NONE;
    case RV_FALSE: Py_RETURN_FALSE;
    case RV_TRUE: Py_RETURN_TRUE;
    case RV_INT: {
        unsigned long long n = rv_u(r);
        return r->unread ? NULL : PyLong_FromLongLong((long long)(n >> 1) ^ -(long long)(n & 1));
    }
    case RV_FLOAT: return rv_float(r);
    case RV_STR: return rv_text(r);
    case RV_BYTES: {
        unsigned long long length = rv_u(r);
        const char *start = rv_bytes(r, length);
        return start == NULL ? NULL : PyBytes_FromStringAndSize(start, (Py_ssize_t)length);
    }
    case RV_TUPLE: {
        unsigned long long count = rv_u(r);
        if (r->unread || count > (unsigned long long)(r->end - r->pos)) {  /* each item takes a byte at least */
            r->unread = 1;
            return NULL;
        }
        PyObject *items = PyTuple_New((Py_ssize_t)count);
        for (Py_ssize_t i = 0; items != NULL && i < (Py_ssize_t)count; i++) {
            PyObject *item = rv_value(r, depth + 1);
            if (item == NULL) {
                Py_CLEAR(items);
                break;
            }
            PyTuple_SET_ITEM(items, i, item);
        }
        return items;
    }
    case RV_SHOWN: return rv_shown(r, rv_text(r));
    case RV_REDACTED: return rv_shown(r, PyUnicode_FromString("***"));
    case RV_DICT: {
        unsigned long long count = rv_u(r);
        if (r->unread) {
            return NULL;
        }
        PyObject *items = PyDict_New();
        for (unsigned long long i = 0; items != NULL && i < count; i++) {
            PyObject *key = rv_text(r);
            PyObject *item = key == NULL ? NULL : rv_value(r, depth + 1);
            if (item == NULL || PyDict_SetItem(items, key, item) < 0) {
                Py_CLEAR(items);
            }
            Py_XDECREF(key);
            Py_XDECREF(item);
        }
        return items;
    }
    case RV_OBJECT: {
        unsigned long long name = rv_u(r), address = rv_u(r);
        if (r->unread) {
            return NULL;
        }
        PyObject *type_name;
        if (r->strings == Py_None) {
            type_name = PyUnicode_FromString("?");
        }
        else {
            PyObject *key = PyLong_FromUnsignedLongLong(name);
            type_name = key == NULL ? NULL : PyObject_GetItem(r->strings, key);
            Py_XDECREF(key);
        }
        if (type_name == NULL) {
            return NULL;
        }
        PyObject *text = rv_object_text(type_name, address);
        Py_DECREF(type_name);
        return rv_shown(r, text);
    }
    case RV_CUT:
    case RV_BYTES_CUT: return rv_shown(r, rv_cut_text(r, tag));
    case RV_SEQ: {
        if (r->pos >= r->end) {
            r->unread = 1;
            return NULL;
        }
        int as_tuple = r->data[r->pos++] == 1;
        PyObject *items = PyList_New(0);
        while (items != NULL && rv_more(r, &items)) {
            PyObject *item = rv_value(r, depth + 1);
            if (item == NULL || PyList_Append(items, item) < 0) {
                Py_CLEAR(items);
            }
            Py_XDECREF(item);
        }
        if (items != NULL && as_tuple) {
            Py_SETREF(items, PyList_AsTuple(items));
        }
        return items;
    }
    case RV_MAP: {
        PyObject *items = PyDict_New();
        while (items != NULL && rv_more(r, &items)) {
            PyObject *key;
            if (r->data[r->pos] == RV_STOP_KEY) {  /* stands for the rest: equal to no other key */
                r->pos++;
                key = rv_shown(r, PyUnicode_FromString("..."));
            }
            else {
                key = rv_value(r, depth + 1);
            }
            PyObject *item = NULL;
            if (key != NULL) {
                if (r->pos < r->end && r->data[r->pos] == RV_REDACTED) {  /* a secret-named key's value */
                    r->pos++;
                    item = rv_shown(r, PyUnicode_FromString("'***'"));
                }
                else {
                    item = rv_value(r, depth + 1);
                }
            }
            if (item == NULL || PyDict_SetItem(items, key, item) < 0) {
                Py_CLEAR(items);
            }
            Py_XDECREF(key);
            Py_XDECREF(item);
        }
        return items;
    }
    default:
        r->unread = 1;  /* an unknown tag: the reference says so */
        return NULL;
    }
}

/* read_value(data, pos, shown, strings=None) -> (value, pos), or NotImplemented: see the top of this file */
static PyObject *
py_read_value(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 3 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "read_value(data, pos, shown, strings=None)");
        return NULL;
    }
    Py_ssize_t pos = PyLong_AsSsize_t(args[1]);
    if (pos == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    ValueReader r = {(const unsigned char *)view.buf, pos, view.len, 0, args[2], nargs == 4 ? args[3] : Py_None};
    PyObject *value = pos >= 0 ? rv_value(&r, 0) : NULL;
    PyBuffer_Release(&view);
    if (value == NULL) {
        if (pos >= 0 && !r.unread) {
            return NULL;  /* an error of its own (memory, a missing string, a failing shown): raised */
        }
        PyErr_Clear();
        Py_RETURN_NOTIMPLEMENTED;
    }
    PyObject *answer = Py_BuildValue("(Nn)", value, r.pos);
    return answer;
}
