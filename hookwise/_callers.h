/* caller and app_caller in C: hookwise.call.callers_of, for its common case.
 *
 * Part of _speedups.c (included after the Call's struct). A listener that shows
 * where a call came from (console, jsonl, every rich event) reads both on every
 * call, and the Python walk was a seventh of a jsonl run (the email workload:
 * sys._getframe, a frame object per frame walked, a tuple per lookup).
 *
 * hookwise/call.py stays the reference and keeps every case but three: a
 * rewritten function (its Site finds its frame by its code, `frame_running`),
 * a site whose frame is the innermost running one of a set of codes
 * (call.frames_by_codes: a request's, found at the server's hand-over), and a
 * C wrapper's call (its site has no code: the wrapper kept its caller's
 * frame; sqlite3's methods, `os.system`). This file reads the same caches as
 * the Python code (call._places, call._library_files) and asks the Python
 * functions to fill them (call._place, call.is_library_file), so both give one
 * answer from one set of Caller objects. Anything else (an audit site, an
 * error) goes to the Python function.
 */

#include <frameobject.h>  /* 3.10: the frame struct (f_lasti, f_globals), PyFrame_GetBack */

static PyObject *callers_places = NULL;         /* hookwise.call._places: (id(code), f_lasti) -> place */
static PyObject *callers_place = NULL;          /* hookwise.call._place(frame) -> place, filling the cache */
static PyObject *callers_library_files = NULL;  /* hookwise.call._library_files: filename -> bool */
static PyObject *callers_is_library_file = NULL;
static PyObject *callers_frame_running = NULL;  /* hookwise.call.frame_running: Site.hooked_frame's walk */
static Py_ssize_t callers_reach = 1000;         /* hookwise.call.APP_CALLER_REACH */
static PyObject *callers_frames_by_codes = NULL; /* hookwise.call.frames_by_codes: hooked_frame -> set of codes */
static PyObject *str_code_attr = NULL, *str_hooked_frame = NULL;

/* The globals `frame` runs in: a new reference (NULL, with an error set, only if 3.11+ cannot give them) */
static PyObject *
frame_globals(PyFrameObject *frame)
{
#if PY_VERSION_HEX >= 0x030B0000
    return PyFrame_GetGlobals(frame);
#else
    return Py_XNewRef(frame->f_globals);
#endif
}

/* 1 when the frame runs in the globals of one of hookwise's stand-ins (_state.stand_ins: their ids) */
static int
is_stand_in(PyFrameObject *frame)
{
    PyObject *globals = frame_globals(frame);
    if (globals == NULL) {
        PyErr_Clear();
        return 0;
    }
    PyObject *id = PyLong_FromVoidPtr(globals);
    Py_DECREF(globals);
    if (id == NULL) {
        PyErr_Clear();
        return -1;
    }
    int found = PySet_Contains(stand_ins, id);
    Py_DECREF(id);
    if (found < 0) {
        PyErr_Clear();
        return -1;
    }
    return found;
}

/* `frame` (a reference, stolen) or the first frame outwards from it that is not one of hookwise's Python
 * versions of C methods (sqlite3's shortcuts: the program called the method); *failed is set, with no
 * exception, when the stand-ins could not be asked. */
static PyFrameObject *
past_stand_ins(PyFrameObject *frame, int *failed)
{
    while (frame != NULL && stand_ins != NULL && PySet_GET_SIZE(stand_ins) > 0) {
        int standing_in = is_stand_in(frame);
        if (standing_in < 0) {
            Py_DECREF(frame);
            *failed = 1;
            return NULL;
        }
        if (!standing_in) {
            break;
        }
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    return frame;
}

/* The frame that called the innermost frame running `code`, or when `codes` (a set) is given, one of
 * `codes`; past the stand-ins: a new reference, or NULL if there is none (*failed set as past_stand_ins
 * sets it, or when the set could not be asked, with no exception) */
static PyFrameObject *
frame_calling(PyObject *code, PyObject *codes, int *failed)
{
    PyFrameObject *frame = PyEval_GetFrame();
    Py_XINCREF(frame);
    while (frame != NULL) {
        PyCodeObject *running = PyFrame_GetCode(frame);
        int found = codes != NULL ? PySet_Contains(codes, (PyObject *)running) : (PyObject *)running == code;
        Py_DECREF(running);
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
        if (found < 0) {
            PyErr_Clear();
            Py_XDECREF(frame);
            *failed = 1;
            return NULL;
        }
        if (found) {
            break;
        }
    }
    return past_stand_ins(frame, failed);
}

/* 1 when `code` is library code (hookwise.call.is_library_file of its file), 0 when it is the application's,
 * -1 on error. `library_files` caches the verdicts (filename -> bool); is_library(filename) decides a new file. */
static int
runs_library_code(PyCodeObject *code, PyObject *library_files, PyObject *is_library)
{
    PyObject *filename = Py_NewRef(code->co_filename);
    PyObject *known = PyDict_GetItemWithError(library_files, filename); /* borrowed */
    int library;
    if (known != NULL) {
        library = PyObject_IsTrue(known);
    }
    else if (PyErr_Occurred()) {
        library = -1;
    }
    else {
        PyObject *answer = PyObject_CallOneArg(is_library, filename);
        library = answer == NULL ? -1 : PyObject_IsTrue(answer);
        Py_XDECREF(answer);
    }
    Py_DECREF(filename);
    return library;
}

/* The first frame from `frame` (borrowed, may be NULL) outwards whose file is the application's, looking
 * through at most `reach` frames: a new reference, Py_None if there is none so near, NULL on error.
 * `library_files` caches the verdicts (filename -> bool); is_library(filename) decides a new file. */
static PyObject *
first_app_frame(PyFrameObject *frame, PyObject *library_files, PyObject *is_library, Py_ssize_t reach)
{
    Py_XINCREF(frame);
    for (Py_ssize_t i = 0; i < reach && frame != NULL; i++) {
        PyCodeObject *code = PyFrame_GetCode(frame);
        int library = runs_library_code(code, library_files, is_library);
        Py_DECREF(code);
        if (library <= 0) {
            if (library < 0) {
                Py_DECREF(frame);
                return NULL;
            }
            return (PyObject *)frame;
        }
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    Py_XDECREF(frame);
    Py_RETURN_NONE;
}

/* call._place(frame): (code, Caller, (caller, caller) or None) from the cache, or from the Python function
 * on a miss. The key is the Python one: (id(code), frame.f_lasti), f_lasti in bytes. */
static PyObject *
place_of(PyFrameObject *frame)
{
    PyCodeObject *code = PyFrame_GetCode(frame);
#if PY_VERSION_HEX >= 0x030B0000
    long lasti = PyFrame_GetLasti(frame);
#else
    long lasti = frame->f_lasti < 0 ? -1 : frame->f_lasti * (long)sizeof(_Py_CODEUNIT);
#endif
    PyObject *id = PyLong_FromVoidPtr(code);
    PyObject *offset = PyLong_FromLong(lasti);
    PyObject *key = id != NULL && offset != NULL ? PyTuple_Pack(2, id, offset) : NULL;
    Py_XDECREF(id);
    Py_XDECREF(offset);
    if (key == NULL) {
        Py_DECREF(code);
        return NULL;
    }
    PyObject *known = PyDict_GetItemWithError(callers_places, key); /* borrowed */
    Py_DECREF(key);
    int hit = known != NULL && PyTuple_Check(known) && PyTuple_GET_SIZE(known) == 3
              && PyTuple_GET_ITEM(known, 0) == (PyObject *)code;  /* an id is reused only once its code is gone */
    Py_DECREF(code);
    if (hit) {
        return Py_NewRef(known);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    known = PyObject_CallOneArg(callers_place, (PyObject *)frame);
    if (known != NULL && (!PyTuple_Check(known) || PyTuple_GET_SIZE(known) != 3)) {
        Py_DECREF(known);
        PyErr_SetString(PyExc_TypeError, "hookwise.call._place must return (code, caller, callers)");
        return NULL;
    }
    return known;
}

/* (caller, app_caller) of a call made now: callers_of's answer, in C for the three cases this file names
 * (a rewritten function's call, a request's, a C wrapper's), from the Python function otherwise */
static PyObject *
callers_now(CallObject *self, PyObject *python_callers_of)
{
    if (callers_places == NULL || self->site == NULL) {
        return call_helper(python_callers_of, self);
    }
    PyObject *code = PyObject_GetAttr(self->site, str_code_attr);
    if (code == NULL) {
        PyErr_Clear();
        return call_helper(python_callers_of, self);
    }
    int failed = 0;
    PyFrameObject *frame;
    if (code == Py_None) {
        /* a C wrapper has no frame of its own: it kept its caller's (call._caller_frame) */
        Py_DECREF(code);
        frame = past_stand_ins((PyFrameObject *)Py_XNewRef(self->frame), &failed);
    }
    else {
        PyObject *how = PyObject_GetAttr((PyObject *)Py_TYPE(self->site), str_hooked_frame);
        PyObject *codes = how == NULL || how == callers_frame_running ? NULL
                          : PyDict_GetItemWithError(callers_frames_by_codes, how); /* borrowed */
        int ours = how != NULL && (how == callers_frame_running || (codes != NULL && PyAnySet_Check(codes)));
        Py_XDECREF(how);
        if (!ours) {
            PyErr_Clear();
            Py_DECREF(code);
            return call_helper(python_callers_of, self);
        }
        frame = frame_calling(code, codes, &failed);
        Py_DECREF(code);
    }
    if (failed) {
        return call_helper(python_callers_of, self);
    }
    if (frame == NULL) {
        return PyTuple_Pack(2, Py_None, Py_None);
    }
    PyObject *known = place_of(frame);
    if (known == NULL) {
        Py_DECREF(frame);
        return NULL;
    }
    PyObject *both = PyTuple_GET_ITEM(known, 2);
    if (both != Py_None) {  /* the application made the call: caller and app_caller are its line */
        Py_INCREF(both);
        Py_DECREF(known);
        Py_DECREF(frame);
        return both;
    }
    PyFrameObject *back = PyFrame_GetBack(frame);
    Py_DECREF(frame);
    PyObject *app = first_app_frame(back, callers_library_files, callers_is_library_file, callers_reach);
    Py_XDECREF(back);
    if (app == NULL) {
        Py_DECREF(known);
        return NULL;
    }
    PyObject *result;
    if (app == Py_None) {
        result = PyTuple_Pack(2, PyTuple_GET_ITEM(known, 1), Py_None);
    }
    else {
        PyObject *app_known = place_of((PyFrameObject *)app);
        result = app_known == NULL ? NULL : PyTuple_Pack(2, PyTuple_GET_ITEM(known, 1), PyTuple_GET_ITEM(app_known, 1));
        Py_XDECREF(app_known);
    }
    Py_DECREF(app);
    Py_DECREF(known);
    return result;
}

/* --- an SQL statement (or outgoing request) made inside a reported one of the same meaning --- */

/* hookwise.semantics.inside_a_statement in C: 1 when `frame` (borrowed, may be NULL), the caller of a call
 * meaning `name`, runs inside a reported call of that meaning, through library code only; 0 when not; -1
 * on error. `statement_codes` is semantics._statement_codes (code object -> its site). The Python
 * function stays the reference (the pure-Python runtime runs it); this one reads frames without the
 * audit event Python raises for each f_code it reads. */
static int
inside_a_statement(PyFrameObject *frame, PyObject *name, PyObject *statement_codes, PyObject *library_files,
                   PyObject *is_library)
{
    Py_XINCREF(frame);
    int answer = 0;
    while (frame != NULL) {
        PyCodeObject *code = PyFrame_GetCode(frame);
        PyObject *site = PyDict_GetItemWithError(statement_codes, (PyObject *)code); /* borrowed */
        if (site != NULL) {
            Py_INCREF(site);
            PyObject *semantic = PyObject_GetAttrString(site, "semantic");
            PyObject *its_name = semantic == NULL ? NULL : PyObject_GetAttrString(semantic, "name");
            int same = its_name == NULL ? -1 : PyObject_RichCompareBool(its_name, name, Py_EQ);
            PyObject *on = same > 0 ? PyObject_GetAttrString(site, "on") : NULL;
            if (same != 0) {  /* a call of this meaning: part of it when it reports */
                answer = same < 0 || on == NULL ? -1 : PyObject_IsTrue(on);
            }
            Py_XDECREF(on);
            Py_XDECREF(its_name);
            Py_XDECREF(semantic);
            Py_DECREF(site);
            if (same != 0) {
                Py_DECREF(code);
                break;
            }
        }
        else if (PyErr_Occurred()) {
            Py_DECREF(code);
            answer = -1;
            break;
        }
        int library = runs_library_code(code, library_files, is_library);
        Py_DECREF(code);
        if (library <= 0) {  /* the application's own code: what it runs is its own statement */
            answer = library;
            break;
        }
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    Py_XDECREF(frame);
    return answer;
}

/* 1 when `frame` runs with `globals` as its globals */
static int
frame_runs_in(PyFrameObject *frame, PyObject *globals)
{
    PyObject *its = frame_globals(frame);
    if (its == NULL) {
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(its);  /* only compared */
    return its == globals;
}

/* loader.wrappers.statement_skip's test, for the C wrapper's skip: `other` (None, or the default set's
 * filter) first, then inside_a_statement from the wrapper's caller, past the frames running in
 * `own_globals` (loader/wrappers.py's: a pure-Python wrapper around it). */
static int
statement_skip(PyObject *other, PyObject *name, PyObject *own_globals, PyObject *statement_codes,
               PyObject *library_files, PyObject *is_library, PyObject *caller_globals, PyObject *first_argument)
{
    if (other != Py_None) {
        PyObject *answer = PyObject_CallFunctionObjArgs(other, caller_globals, first_argument, NULL);
        int skipped = answer == NULL ? -1 : PyObject_IsTrue(answer);
        Py_XDECREF(answer);
        if (skipped != 0) {
            return skipped;
        }
    }
    PyFrameObject *frame = (PyFrameObject *)Py_XNewRef(PyEval_GetFrame()); /* the C wrapper's caller */
    while (frame != NULL && frame_runs_in(frame, own_globals)) {
        PyFrameObject *back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    int inside = inside_a_statement(frame, name, statement_codes, library_files, is_library);
    Py_XDECREF(frame);
    return inside;
}

/* configure(callers_c=(places, place, library_files, is_library_file, frame_running, reach, frames_by_codes)) */
static int
configure_callers(PyObject *parts)
{
    PyObject *places, *place, *library_files, *is_library_file, *frame_running, *frames_by_codes;
    Py_ssize_t reach;
    if (!PyArg_ParseTuple(parts, "O!OO!OOnO!", &PyDict_Type, &places, &place, &PyDict_Type, &library_files,
                          &is_library_file, &frame_running, &reach, &PyDict_Type, &frames_by_codes)) {
        return -1;
    }
    if ((str_code_attr == NULL && (str_code_attr = PyUnicode_InternFromString("code")) == NULL)
        || (str_hooked_frame == NULL && (str_hooked_frame = PyUnicode_InternFromString("hooked_frame")) == NULL)) {
        return -1;
    }
    Py_XSETREF(callers_place, Py_NewRef(place));
    Py_XSETREF(callers_library_files, Py_NewRef(library_files));
    Py_XSETREF(callers_is_library_file, Py_NewRef(is_library_file));
    Py_XSETREF(callers_frame_running, Py_NewRef(frame_running));
    callers_reach = reach;
    Py_XSETREF(callers_frames_by_codes, Py_NewRef(frames_by_codes));
    Py_XSETREF(callers_places, Py_NewRef(places)); /* last: its presence turns the C path on */
    return 0;
}
