/* hookwise._speedups: the hot path of hookwise's runtime, in C.
 *
 * The same behaviour as the pure-Python classes in hookwise/runtime.py,
 * hookwise/call.py and loader/wrappers.py, which stay the reference and the
 * fallback (HOOKWISE_PURE_PYTHON=1 selects them). Three types:
 *
 *   SiteBase  - base of hookwise.runtime.Site: the `on` flag and the
 *               start/end/error entry points that rewritten code calls;
 *   Call      - the call record handed to listeners; everything costly
 *               (argument names, caller, task, thread name) is computed by
 *               Python helpers from hookwise.call on first read;
 *   Wrapper   - a callable that replaces a C builtin (posix.system, io.open):
 *               it has no Python frame, so exec/eval/compile see their real
 *               caller and tracebacks carry no wrapper frame on any version.
 *
 * What this module must never do: let a listener's exception reach the
 * program (only hookwise.Blocked from a start listener, and BaseExceptions
 * such as KeyboardInterrupt, pass), report an end for a call whose start was
 * not reported, or keep the GIL-less state of a thread after its dispatch.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

/* ---------------------------------------------------------------- state */

/* The Call whose listeners run on this thread (borrowed; NULL otherwise).
 * initial-exec: a plain thread-pointer load instead of a __tls_get_addr call
 * on every hooked call (one pointer fits the static TLS kept for dlopen). */
#if defined(__GNUC__) && !defined(__APPLE__)
#define FAST_TLS __attribute__((tls_model("initial-exec")))
#else
#define FAST_TLS
#endif
static _Thread_local PyObject *tls_busy FAST_TLS = NULL;

static long long next_call_id = 0;

/* hookwise's own time on this thread so far, in ticks: every dispatch to
 * listeners, from a call's start stamp to the end of its start listeners and
 * from its end stamp to the end of its end listeners. A call's shown duration
 * leaves out what this grew by while it ran (its own start listeners and the
 * whole cost of the hooked calls it made), so nested hooks do not inflate it. */
static _Thread_local long long tls_overhead_ticks FAST_TLS = 0;
static long current_pid = 0;

/* Set by hookwise.runtime through configure(). */
static PyObject *blocked_type = NULL;     /* hookwise.Blocked */
static PyObject *listener_failed = NULL;  /* runtime._listener_failed(method, exc) */
static PyObject *helper_args = NULL;      /* hookwise.call helpers, each f(call) */
static PyObject *helper_kwargs = NULL;
static PyObject *helper_arguments = NULL;
static PyObject *helper_changed = NULL;
static PyObject *helper_callers = NULL; /* call -> (caller, app_caller): one look at the frames */
static PyObject *helper_task = NULL;
static PyObject *helper_request_id = NULL;
static PyObject *current_request_var = NULL;  /* hookwise._state.current_request: read here, not through Python */
static PyObject *helper_thread_name = NULL; /* f(thread_id) */
static PyObject *quiet_globals = NULL;    /* tuple of globals dicts of the import system */
static PyObject *stand_ins = NULL;        /* hookwise._state.stand_ins: a set, read by the recorder */

static inline long long
clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* ----------------------------------------------------------- timestamps
 *
 * Two clock reads per call are a large share of the hot path (clock_gettime
 * costs ~20 ns even through the vDSO). Where the kernel itself keeps time
 * with the TSC (its clocksource is "tsc": invariant and synchronised across
 * cores), calls are stamped with the raw TSC (~8 ns) and converted to ns only
 * when a listener reads a time. The conversion is anchored to CLOCK_MONOTONIC:
 * the rate is measured against it over the life of the process and the anchor
 * is refreshed every second, so converted times stay within microseconds of
 * clock_ns(). Elsewhere the stamps are clock_ns() itself.
 */

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define HAVE_TSC 1
#else
#define HAVE_TSC 0
#endif

static int use_tsc = 0;
static long long origin_ticks, origin_ns;   /* when the module was imported */
static long long anchor_ticks, anchor_ns;   /* the latest pair read together */
static double ns_per_tick = 1.0;

static inline long long
now_ticks(void)
{
#if HAVE_TSC
    if (use_tsc) {
        return (long long)__rdtsc();
    }
#endif
    return clock_ns();
}

static void
read_anchor(long long *ticks, long long *ns)
{
    /* the pair with the shortest gap between the two TSC reads is the best */
    long long best_gap = -1;
    for (int i = 0; i < 5; i++) {
        long long before = now_ticks();
        long long ns_now = clock_ns();
        long long after = now_ticks();
        if (best_gap < 0 || after - before < best_gap) {
            best_gap = after - before;
            *ticks = before + (after - before) / 2;
            *ns = ns_now;
        }
    }
}

/* Measure the TSC rate; the first call may wait until 5 ms of history exist. */
static void
calibrate(void)
{
    long long ticks, ns;
    read_anchor(&ticks, &ns);
    while (ns - origin_ns < 5000000LL) {
        read_anchor(&ticks, &ns);
    }
    ns_per_tick = (double)(ns - origin_ns) / (double)(ticks - origin_ticks);
    anchor_ticks = ticks;
    anchor_ns = ns;
}

static long long
ticks_to_ns(long long ticks)
{
    if (!use_tsc) {
        return ticks;
    }
    if (anchor_ticks == 0 || (double)(now_ticks() - anchor_ticks) * ns_per_tick > 1e9) {
        calibrate();
    }
    return anchor_ns + (long long)((double)(ticks - anchor_ticks) * ns_per_tick);
}

static long long
ticks_span_ns(long long span)
{
    if (!use_tsc) {
        return span;
    }
    if (anchor_ticks == 0) {
        calibrate();
    }
    return (long long)((double)span * ns_per_tick);
}

static void
choose_clock(void)
{
#if HAVE_TSC
    FILE *f = fopen("/sys/devices/system/clocksource/clocksource0/current_clocksource", "r");
    if (f != NULL) {
        char name[32] = {0};
        if (fgets(name, sizeof(name), f) != NULL && strncmp(name, "tsc", 3) == 0) {
            use_tsc = getenv("HOOKWISE_NO_TSC") == NULL;
        }
        fclose(f);
    }
#endif
    origin_ns = clock_ns();
    origin_ticks = now_ticks();
    anchor_ticks = 0;
}

/* ---------------------------------------------------- exception helpers */

/* Take the raised exception (normalized, traceback attached); NULL if none. */
static PyObject *
take_error(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL) {
        return NULL;
    }
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
        Py_DECREF(tb);
    }
    Py_DECREF(type);
    return value;
#endif
}

/* Raise `exc` again (steals the reference). */
static void
restore_error(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyObject *type = (PyObject *)Py_TYPE(exc);
    Py_INCREF(type);
    PyErr_Restore(type, exc, PyException_GetTraceback(exc));
#endif
}

/* The exception being handled by the calling `except` block (new ref or NULL). */
static PyObject *
handled_exception(void)
{
#if PY_VERSION_HEX >= 0x030B0000
    PyObject *exc = PyErr_GetHandledException();
    if (exc == Py_None) {
        Py_DECREF(exc);
        return NULL;
    }
    return exc;
#else
    PyObject *type, *value, *tb;
    PyErr_GetExcInfo(&type, &value, &tb);
    Py_XDECREF(type);
    Py_XDECREF(tb);
    if (value == Py_None) {
        Py_DECREF(value);
        return NULL;
    }
    return value;
#endif
}

/* A listener method raised (the error is set): report it once, clear it. */
static void
report_listener_failure(PyObject *method)
{
    PyObject *exc = take_error();
    if (exc == NULL || listener_failed == NULL) {
        Py_XDECREF(exc);
        return;
    }
    PyObject *res = PyObject_CallFunctionObjArgs(listener_failed, method, exc, NULL);
    Py_DECREF(exc);
    if (res == NULL) {
        PyErr_Clear(); /* reporting must never fail the program either */
    }
    else {
        Py_DECREF(res);
    }
}

/* After a listener raised: 1 if it was an ordinary failure (reported, cleared),
 * 0 if the exception must propagate (a BaseException such as KeyboardInterrupt). */
static int
absorb_listener_error(PyObject *method)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return 0;
    }
    report_listener_failure(method);
    return 1;
}

/* ------------------------------------------------------------- the Call */

/* The argument values of most calls are kept in the Call itself: packing them
 * into a tuple (allocate, track, untrack, free through the trashcan) cost a
 * no-op-listener call about as much as everything else the Call does. The
 * tuple is made when a listener first reads `values`. */
#define CALL_INLINE_VALUES 6

typedef struct {
    PyObject_HEAD
    PyObject *site;        /* NULL once the collector cleared the Call */
    PyObject *values;      /* tuple, or NULL while they are in inline_values */
    PyObject *result;
    PyObject *exception;
    PyObject *frame;       /* caller's frame, for calls through a Wrapper */
    PyObject *caller;      /* caches: NULL until first read */
    PyObject *app_caller;
    PyObject *task;
    PyObject *request_id;
    PyObject *thread_name;
    long long call_id;
    long long start_ticks;
    long long duration_ticks; /* -1 while running; without hookwise's own time inside */
    long long overhead_at_start; /* tls_overhead_ticks of the starting thread when it started */
    long long overhead_ticks;    /* hookwise's own time inside the call, left out of duration_ticks */
    unsigned long thread_id;
    long pid;
    long long wall_offset;  /* see call_wall_offset */
    int wall_offset_known;
    int program_ns_known;
    long long program_ns;   /* see call_program_ns */
    Py_ssize_t n_inline;
    PyObject *inline_values[CALL_INLINE_VALUES];
} CallObject;

static PyTypeObject CallType;

/* Finished Call objects kept for reuse: allocation is a visible share of a
 * hooked call. Chained through their `site` field. */
#define CALL_FREELIST_MAX 256
static CallObject *call_freelist = NULL;
static int call_freelist_size = 0;

/* A running Call of `site` with the argument values items[0:n]. */
static CallObject *
call_new(PyObject *site, PyObject *const *items, Py_ssize_t n)
{
    PyObject *values = NULL;
    if (n > CALL_INLINE_VALUES) {
        values = PyTuple_New(n);
        if (values == NULL) {
            return NULL;
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_INCREF(items[i]);
            PyTuple_SET_ITEM(values, i, items[i]);
        }
    }
    CallObject *call;
    if (call_freelist != NULL) {
        call = call_freelist;
        call_freelist = (CallObject *)call->site;
        call_freelist_size--;
        PyObject_Init((PyObject *)call, &CallType);
    }
    else {
        call = PyObject_GC_New(CallObject, &CallType);
        if (call == NULL) {
            Py_XDECREF(values);
            return NULL;
        }
    }
    Py_INCREF(site);
    call->site = site;
    call->values = values;
    if (values == NULL) {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_INCREF(items[i]);
            call->inline_values[i] = items[i];
        }
        call->n_inline = n;
    }
    else {
        call->n_inline = 0;
    }
    Py_INCREF(Py_None);
    call->result = Py_None;
    Py_INCREF(Py_None);
    call->exception = Py_None;
    call->frame = NULL;
    call->caller = NULL;
    call->app_caller = NULL;
    call->task = NULL;
    call->request_id = NULL;
    call->thread_name = NULL;
    call->call_id = ++next_call_id;
    call->thread_id = PyThread_get_thread_ident();
    call->pid = current_pid;
    call->duration_ticks = -1;
    call->overhead_ticks = 0;
    call->wall_offset_known = 0;
    call->program_ns_known = 0;
    call->overhead_at_start = tls_overhead_ticks;
    call->start_ticks = now_ticks();
    PyObject_GC_Track(call);
    return call;
}

static int
call_traverse(CallObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->site);
    Py_VISIT(self->values);
    Py_VISIT(self->result);
    Py_VISIT(self->exception);
    Py_VISIT(self->frame);
    Py_VISIT(self->caller);
    Py_VISIT(self->app_caller);
    Py_VISIT(self->task);
    Py_VISIT(self->request_id);
    Py_VISIT(self->thread_name);
    for (Py_ssize_t i = 0; i < self->n_inline; i++) {
        Py_VISIT(self->inline_values[i]);
    }
    return 0;
}

static int
call_clear(CallObject *self)
{
    Py_CLEAR(self->site);
    Py_CLEAR(self->values);
    Py_CLEAR(self->result);
    Py_CLEAR(self->exception);
    Py_CLEAR(self->frame);
    Py_CLEAR(self->caller);
    Py_CLEAR(self->app_caller);
    Py_CLEAR(self->task);
    Py_CLEAR(self->request_id);
    Py_CLEAR(self->thread_name);
    Py_ssize_t n = self->n_inline;
    self->n_inline = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_CLEAR(self->inline_values[i]);
    }
    return 0;
}

static void
call_dealloc(CallObject *self)
{
    PyObject_GC_UnTrack(self);
    call_clear(self);
    if (call_freelist_size < CALL_FREELIST_MAX) {
        self->site = (PyObject *)call_freelist;
        call_freelist = self;
        call_freelist_size++;
        return;
    }
    PyObject_GC_Del(self);
}

static PyObject *str_target, *str_module, *str_qualname, *str_kind; /* interned on first use */

/* The site's attribute ``name``, looked up by an interned string made once
 * (not a new string per read: listeners read call.target on every call). */
static PyObject *
call_site_attr(CallObject *self, PyObject **interned, const char *name)
{
    if (self->site == NULL) { /* cleared: code run by the collector may still read it */
        Py_RETURN_NONE;
    }
    if (*interned == NULL && (*interned = PyUnicode_InternFromString(name)) == NULL) {
        return NULL;
    }
    return PyObject_GetAttr(self->site, *interned);
}

static PyObject *call_get_target(CallObject *self, void *c) { return call_site_attr(self, &str_target, "target"); }
static PyObject *call_get_module(CallObject *self, void *c) { return call_site_attr(self, &str_module, "module"); }
static PyObject *call_get_qualname(CallObject *self, void *c)
{
    return call_site_attr(self, &str_qualname, "qualname");
}
static PyObject *call_get_kind(CallObject *self, void *c) { return call_site_attr(self, &str_kind, "kind"); }

static PyObject *
call_get_duration(CallObject *self, void *c)
{
    if (self->duration_ticks < 0) {
        Py_RETURN_NONE;
    }
    return PyLong_FromLongLong(ticks_span_ns(self->duration_ticks));
}

static PyObject *
call_get_done(CallObject *self, void *c)
{
    return PyBool_FromLong(self->duration_ticks >= 0);
}

/* The wall clock minus clock_ns(), read now rather than once: the wall clock
 * can be stepped (NTP, a virtual machine resumed) and the monotonic one cannot,
 * so a fixed offset would stamp calls off by the size of every step since. */
static long long
wall_offset_ns(void)
{
    struct timespec wall;
    long long before = clock_ns();
    clock_gettime(CLOCK_REALTIME, &wall);
    long long after = clock_ns();
    return (long long)wall.tv_sec * 1000000000LL + wall.tv_nsec - (before + (after - before) / 2);
}

static PyObject *
call_get_perf_ns(CallObject *self, void *c)
{
    return PyLong_FromLongLong(ticks_to_ns(self->start_ticks));
}

/* The start on the thread's program clock: clock_ns() less all of hookwise's
 * own time on the thread before the call. Timelines place calls by it. */
static long long
call_program_ns(CallObject *self)
{
    /* converted once, then kept: ticks_to_ns recalibrates every second, and a start converted again
     * after that would move by a few ns (a recording's end, start + duration, with it) */
    if (!self->program_ns_known) {
        self->program_ns = ticks_to_ns(self->start_ticks - self->overhead_at_start);
        self->program_ns_known = 1;
    }
    return self->program_ns;
}

static PyObject *
call_get_program_ns(CallObject *self, void *c)
{
    return PyLong_FromLongLong(call_program_ns(self));
}

static PyObject *
call_get_overhead_ns(CallObject *self, void *c)
{
    if (self->duration_ticks < 0) {
        Py_RETURN_NONE;
    }
    return PyLong_FromLongLong(ticks_span_ns(self->overhead_ticks));
}

/* The offset this call's wall-clock times are given with: read when first
 * asked (a listener reads the start's at the start), then kept, so that
 * end_ns - start_ns is the duration exactly. */
static long long
call_wall_offset(CallObject *self)
{
    if (!self->wall_offset_known) {
        self->wall_offset = wall_offset_ns();
        self->wall_offset_known = 1;
    }
    return self->wall_offset;
}

/* start_ns, and end_ns of a finished call, on the wall clock */
static long long
call_start_ns(CallObject *self)
{
    return call_wall_offset(self) + ticks_to_ns(self->start_ticks);
}

static long long
call_end_ns(CallObject *self)
{
    /* when it really ended: duration_ticks leaves hookwise's own time out */
    return call_start_ns(self) + ticks_span_ns(self->duration_ticks) + ticks_span_ns(self->overhead_ticks);
}

static PyObject *
call_get_start_ns(CallObject *self, void *c)
{
    return PyLong_FromLongLong(call_start_ns(self));
}

static PyObject *
call_get_end_ns(CallObject *self, void *c)
{
    if (self->duration_ticks < 0) {
        Py_RETURN_NONE;
    }
    return PyLong_FromLongLong(call_end_ns(self));
}

static PyObject *
call_helper(PyObject *helper, CallObject *self)
{
    if (helper == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "hookwise._speedups is not configured");
        return NULL;
    }
    return PyObject_CallOneArg(helper, (PyObject *)self);
}

#include "_callers.h"

static PyObject *call_get_values(CallObject *self, void *c);

/* call.args and call.kwargs: hookwise.call's args_of and kwargs_of, in C for the site layouts they
 * know (None: a replaced builtin's (args, kwargs); a tuple (positional, defaults, vararg, kwonly,
 * kwarg, ...): a Python function's). Anything else goes to the Python helpers, the reference. */
static PyObject *str_params = NULL;

/* The site's layout and the call's values (new references): 0, or -1 with no error set when the Python
 * helper is to answer */
static int
call_layout_and_values(CallObject *self, PyObject **layout, PyObject **values)
{
    *layout = *values = NULL;
    if (str_params == NULL && (str_params = PyUnicode_InternFromString("params")) == NULL) {
        PyErr_Clear();
        return -1;
    }
    *layout = self->site == NULL ? NULL : PyObject_GetAttr(self->site, str_params);
    if (*layout != NULL && *layout != Py_None && !(PyTuple_Check(*layout) && PyTuple_GET_SIZE(*layout) >= 5)) {
        Py_CLEAR(*layout);
    }
    *values = *layout == NULL ? NULL : call_get_values(self, NULL);
    if (*values == NULL) {
        Py_CLEAR(*layout);
        PyErr_Clear();
        return -1;
    }
    return 0;
}

static PyObject *
call_get_args(CallObject *self, void *c)
{
    PyObject *layout, *values;
    if (call_layout_and_values(self, &layout, &values) < 0) {
        return call_helper(helper_args, self);
    }
    PyObject *args = NULL;
    if (layout == Py_None) {
        args = PyTuple_GET_SIZE(values) > 0 ? Py_NewRef(PyTuple_GET_ITEM(values, 0)) : NULL;
    }
    else {
        Py_ssize_t count = PyObject_Length(PyTuple_GET_ITEM(layout, 0));
        PyObject *vararg = PyTuple_GET_ITEM(layout, 2);
        if (count >= 0 && count + (vararg != Py_None) <= PyTuple_GET_SIZE(values)) {
            args = PyTuple_GetSlice(values, 0, count);
            if (args != NULL && vararg != Py_None) {
                Py_SETREF(args, PySequence_Concat(args, PyTuple_GET_ITEM(values, count)));
            }
        }
    }
    Py_DECREF(layout);
    Py_DECREF(values);
    if (args == NULL) {  /* a shape the helper explains better (its error, if any, is the reference's) */
        PyErr_Clear();
        return call_helper(helper_args, self);
    }
    return args;
}

static PyObject *
call_get_kwargs(CallObject *self, void *c)
{
    PyObject *layout, *values;
    if (call_layout_and_values(self, &layout, &values) < 0) {
        return call_helper(helper_kwargs, self);
    }
    PyObject *kwargs = NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(values);
    if (layout == Py_None) {
        kwargs = n > 1 ? Py_NewRef(PyTuple_GET_ITEM(values, 1)) : NULL;
    }
    else {
        PyObject *kwonly = PyTuple_GET_ITEM(layout, 3), *kwarg = PyTuple_GET_ITEM(layout, 4);
        Py_ssize_t index = PyObject_Length(PyTuple_GET_ITEM(layout, 0));
        Py_ssize_t named = PyTuple_Check(kwonly) ? PyTuple_GET_SIZE(kwonly) : -1;
        index += index >= 0 && PyTuple_GET_ITEM(layout, 2) != Py_None;
        if (index >= 0 && named >= 0 && index + named + (kwarg != Py_None) <= n && (kwargs = PyDict_New()) != NULL) {
            for (Py_ssize_t i = 0; i < named; i++) {
                if (PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwonly, i), PyTuple_GET_ITEM(values, index + i)) < 0) {
                    Py_CLEAR(kwargs);
                    break;
                }
            }
            if (kwargs != NULL && kwarg != Py_None && PyDict_Merge(kwargs, PyTuple_GET_ITEM(values, n - 1), 1) < 0) {
                Py_CLEAR(kwargs);
            }
        }
    }
    Py_DECREF(layout);
    Py_DECREF(values);
    if (kwargs == NULL) {
        PyErr_Clear();
        return call_helper(helper_kwargs, self);
    }
    return kwargs;
}
static PyObject *call_get_arguments(CallObject *self, void *c) { return call_helper(helper_arguments, self); }
static PyObject *call_get_changed(CallObject *self, void *c) { return call_helper(helper_changed, self); }

/* caller and task: computed while the call is being reported, cached after.
   Read first after that moment, they are unknown: an error says so, rather
   than a None that reads as "no caller" (call.py says the same in Python). */
static int
moment_passed(CallObject *self, const char *name)
{
    if (tls_busy == (PyObject *)self) {
        return 0;
    }
    PyErr_Format(PyExc_RuntimeError,
                 "Call.%s is only known while a listener handles the call: read it in "
                 "start(), end() or error() (once read, it is kept)", name);
    return -1;
}

static PyObject *
call_cached_moment(CallObject *self, PyObject **slot, PyObject *helper, const char *name)
{
    if (*slot == NULL) {
        if (moment_passed(self, name) < 0) {
            return NULL;
        }
        PyObject *value = call_helper(helper, self);
        if (value == NULL) {
            return NULL;
        }
        *slot = value;
    }
    Py_INCREF(*slot);
    return *slot;
}

/* caller and app_caller come from the same frames: both are read at once, and kept */
static PyObject *
call_cached_callers(CallObject *self, PyObject **slot, const char *name)
{
    if (*slot == NULL) {
        if (moment_passed(self, name) < 0) {
            return NULL;
        }
        PyObject *both = callers_now(self, helper_callers);
        if (both == NULL) {
            return NULL;
        }
        if (!PyTuple_Check(both) || PyTuple_GET_SIZE(both) != 2) {
            Py_DECREF(both);
            PyErr_SetString(PyExc_TypeError, "the callers helper must return (caller, app_caller)");
            return NULL;
        }
        Py_XSETREF(self->caller, Py_NewRef(PyTuple_GET_ITEM(both, 0)));
        Py_XSETREF(self->app_caller, Py_NewRef(PyTuple_GET_ITEM(both, 1)));
        Py_DECREF(both);
    }
    return Py_NewRef(*slot);
}

static PyObject *call_get_caller(CallObject *self, void *c) { return call_cached_callers(self, &self->caller, "caller"); }
static PyObject *call_get_task(CallObject *self, void *c) { return call_cached_moment(self, &self->task, helper_task, "task"); }
/* request_id: the call_id of the request in the context (call.py's request_id_of, without its frame) */
static PyObject *
request_id_now(CallObject *self)
{
    PyObject *request = NULL;
    if (current_request_var == NULL) {
        return call_helper(helper_request_id, self);
    }
    if (PyContextVar_Get(current_request_var, NULL, &request) < 0) {
        return NULL;
    }
    if (request == NULL || request == Py_None) {
        Py_XDECREF(request);
        Py_RETURN_NONE;
    }
    PyObject *call = PyObject_GetAttrString(request, "call");
    if (call == NULL) {
        Py_DECREF(request);
        return NULL;
    }
    int own = call == (PyObject *)self;  /* the request's own call is not made while it is served */
    Py_DECREF(call);
    PyObject *id = own ? Py_NewRef(Py_None) : PyObject_GetAttrString(request, "call_id");
    Py_DECREF(request);
    return id;
}

static PyObject *
call_get_request_id(CallObject *self, void *c)
{
    if (self->request_id == NULL) {
        if (moment_passed(self, "request_id") < 0) {
            return NULL;
        }
        PyObject *value = request_id_now(self);
        if (value == NULL) {
            return NULL;
        }
        self->request_id = value;
    }
    return Py_NewRef(self->request_id);
}
static PyObject *call_get_app_caller(CallObject *self, void *c) { return call_cached_callers(self, &self->app_caller, "app_caller"); }

/* Thread's own name property, of the threading module in sys.modules (read again when that is another one) */
static PyObject *seen_threading = NULL, *thread_name_property = NULL;
static PyObject *str_threading = NULL, *str_active = NULL, *str_name = NULL, *str_private_name = NULL;

/* The name of thread `tid` as hookwise._state.thread_name says it (a new reference), read from threading's
 * records (_active: thread id -> Thread, read each time) without a Python frame; NULL with no error set
 * where only that helper can say (no threading module, a thread it does not know, a Thread whose class
 * has a name of its own). */
static PyObject *
thread_name_in_c(PyObject *tid)
{
    if (str_private_name == NULL && ((str_threading = PyUnicode_InternFromString("threading")) == NULL
                                     || (str_active = PyUnicode_InternFromString("_active")) == NULL
                                     || (str_name = PyUnicode_InternFromString("name")) == NULL
                                     || (str_private_name = PyUnicode_InternFromString("_name")) == NULL)) {
        return NULL;
    }
    PyObject *threading = PyImport_GetModule(str_threading);
    if (threading == NULL) {
        return NULL;
    }
    if (threading != seen_threading) {
        PyObject *thread_class = PyObject_GetAttrString(threading, "Thread");
        PyObject *property = thread_class != NULL && PyType_Check(thread_class)
                             ? _PyType_Lookup((PyTypeObject *)thread_class, str_name) : NULL;
        if (property == NULL) {
            Py_XDECREF(thread_class);
            Py_DECREF(threading);
            PyErr_Clear();
            return NULL;
        }
        Py_XSETREF(thread_name_property, Py_NewRef(property));
        Py_XSETREF(seen_threading, Py_NewRef(threading));
        Py_DECREF(thread_class);
    }
    PyObject *active = PyObject_GetAttr(threading, str_active);
    Py_DECREF(threading);
    PyObject *thread = active != NULL && PyDict_CheckExact(active) ? PyDict_GetItemWithError(active, tid) : NULL;
    Py_XINCREF(thread);  /* its own reference: reading its _name may run code that drops the entry */
    Py_XDECREF(active);
    PyObject *name = NULL;
    /* Thread.name is `return self._name` once __init__ ran */
    if (thread != NULL && _PyType_Lookup(Py_TYPE(thread), str_name) == thread_name_property) {
        name = PyObject_GetAttr(thread, str_private_name);
    }
    Py_XDECREF(thread);
    if (name == NULL || !PyUnicode_CheckExact(name)) {
        Py_XDECREF(name);
        PyErr_Clear();
        return NULL;
    }
    return name;
}

static PyObject *
call_get_thread_name(CallObject *self, void *c)
{
    if (self->thread_name == NULL) {
        PyObject *tid = PyLong_FromUnsignedLong(self->thread_id);
        if (tid == NULL) {
            return NULL;
        }
        PyObject *name = thread_name_in_c(tid);
        if (name == NULL && !PyErr_Occurred()) {
            name = PyObject_CallOneArg(helper_thread_name, tid);
        }
        Py_DECREF(tid);
        if (name == NULL) {
            return NULL;
        }
        self->thread_name = name;
    }
    Py_INCREF(self->thread_name);
    return self->thread_name;
}

/* The argument values as a tuple, made on first read from the inline ones. */
static PyObject *
call_get_values(CallObject *self, void *c)
{
    if (self->values == NULL) {
        PyObject *values = PyTuple_New(self->n_inline);
        if (values == NULL) {
            return NULL;
        }
        for (Py_ssize_t i = 0; i < self->n_inline; i++) {
            PyTuple_SET_ITEM(values, i, self->inline_values[i]); /* the tuple takes the reference */
            self->inline_values[i] = NULL;
        }
        self->n_inline = 0;
        self->values = values;
    }
    Py_INCREF(self->values);
    return self->values;
}

static PyObject *
call_get_frame(CallObject *self, void *c)
{
    if (self->frame == NULL) {
        Py_RETURN_NONE;
    }
    Py_INCREF(self->frame);
    return self->frame;
}

static PyObject *
call_repr(CallObject *self)
{
    if (self->site == NULL) {
        return PyUnicode_FromString("<Call (cleared)>");
    }
    PyObject *target = call_site_attr(self, &str_target, "target");
    if (target == NULL) {
        return NULL;
    }
    const char *state = self->duration_ticks < 0 ? "running"
                        : (self->exception != Py_None ? "raised" : "returned");
    PyObject *text = PyUnicode_FromFormat("<Call #%lld %U %s>", self->call_id, target, state);
    Py_DECREF(target);
    return text;
}

static PyMemberDef call_members[] = {
    {"site", T_OBJECT_EX, offsetof(CallObject, site), READONLY, NULL},
    {"result", T_OBJECT_EX, offsetof(CallObject, result), READONLY, NULL},
    {"exception", T_OBJECT_EX, offsetof(CallObject, exception), READONLY, NULL},
    {"call_id", T_LONGLONG, offsetof(CallObject, call_id), READONLY, NULL},
    {"thread_id", T_ULONG, offsetof(CallObject, thread_id), READONLY, NULL},
    {"pid", T_LONG, offsetof(CallObject, pid), READONLY, NULL},
    {NULL}
};

static PyGetSetDef call_getset[] = {
    {"target", (getter)call_get_target, NULL, "module:qualname of the function", NULL},
    {"module", (getter)call_get_module, NULL, NULL, NULL},
    {"qualname", (getter)call_get_qualname, NULL, NULL, NULL},
    {"kind", (getter)call_get_kind, NULL, NULL, NULL},
    {"duration_ns", (getter)call_get_duration, NULL, NULL, NULL},
    {"done", (getter)call_get_done, NULL, NULL, NULL},
    {"start_ns", (getter)call_get_start_ns, NULL, "wall-clock ns of the start", NULL},
    {"perf_ns", (getter)call_get_perf_ns, NULL, "the start on the clock_ns() clock", NULL},
    {"program_ns", (getter)call_get_program_ns, NULL,
     "the start on the thread's program clock (clock_ns() less hookwise's own time on the thread so far)", NULL},
    {"overhead_ns", (getter)call_get_overhead_ns, NULL,
     "hookwise's own time inside the call, left out of duration_ns (None while running)", NULL},
    {"end_ns", (getter)call_get_end_ns, NULL, "wall-clock ns of the end (start_ns + duration_ns + overhead_ns)", NULL},
    {"values", (getter)call_get_values, NULL, "the argument values, in the order of the site's params", NULL},
    {"args", (getter)call_get_args, NULL, NULL, NULL},
    {"kwargs", (getter)call_get_kwargs, NULL, NULL, NULL},
    {"arguments", (getter)call_get_arguments, NULL, NULL, NULL},
    {"changed_arguments", (getter)call_get_changed, NULL, NULL, NULL},
    {"caller", (getter)call_get_caller, NULL, NULL, NULL},
    {"app_caller", (getter)call_get_app_caller, NULL, NULL, NULL},
    {"task", (getter)call_get_task, NULL, NULL, NULL},
    {"request_id", (getter)call_get_request_id, NULL, "call_id of the request being served, or None", NULL},
    {"thread_name", (getter)call_get_thread_name, NULL, NULL, NULL},
    {"_frame", (getter)call_get_frame, NULL, NULL, NULL},
    {NULL}
};

static PyTypeObject CallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hookwise.Call",
    .tp_doc = "One call of a hooked function (see hookwise.call).",
    .tp_basicsize = sizeof(CallObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)call_dealloc,
    .tp_traverse = (traverseproc)call_traverse,
    .tp_clear = (inquiry)call_clear,
    .tp_repr = (reprfunc)call_repr,
    .tp_members = call_members,
    .tp_getset = call_getset,
};

/* ------------------------------------------------------------- the Site */

typedef struct {
    PyObject_HEAD
    PyObject *on;       /* Py_True / Py_None: an object member, so the
                           interpreter's LOAD_ATTR specialises the read */
    PyObject *starts;   /* tuples of bound listener methods */
    PyObject *ends;
    PyObject *errors;
    int generator_like;
} SiteObject;

static PyTypeObject SiteType;

/* How many more Python frames this thread may push before RecursionError. */
static int
recursion_headroom(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    PyThreadState *state = PyThreadState_GetUnchecked();
#else
    PyThreadState *state = _PyThreadState_UncheckedGet();
#endif
#if PY_VERSION_HEX >= 0x030C0000
    return state->py_recursion_remaining;
#elif PY_VERSION_HEX >= 0x030B0000
    return state->recursion_remaining;
#else
    return Py_GetRecursionLimit() - state->recursion_depth;
#endif
}

/* Listeners run on top of the hooked frame. A program that works right at
 * the recursion limit (tomllib's tests parse input nested exactly that deep)
 * must not fail because of them, and their events must not be lost: near the
 * limit, the listeners get this many extra frames while they run. */
#define LISTENER_HEADROOM 250

/* The limit is the interpreter's, shared by all threads: the first dispatch
 * that raises it remembers the program's limit and the last one to finish
 * puts it back, however the threads interleave (under the GIL). */
static int headroom_users = 0;
static int program_limit = 0;

static void
raise_limit(void)
{
    if (headroom_users++ == 0) {
        program_limit = Py_GetRecursionLimit();
        Py_SetRecursionLimit(program_limit + LISTENER_HEADROOM);
    }
}

static void
restore_limit(void)
{
    if (--headroom_users == 0) {
        Py_SetRecursionLimit(program_limit);
    }
}

/* Call one listener method with slots[1:1+nargs]; slots[0] is scratch space.
 * A bound method of a Python function (what listeners almost always are) is
 * called through the function itself, with its `self` in slots[0]: that skips
 * the bound method's own trampoline and the generic call's checks, a visible
 * share of a no-op listener's cost. Anything else takes the generic path. */
static inline PyObject *
call_listener(PyObject *method, PyObject **slots, Py_ssize_t nargs)
{
    if (PyMethod_Check(method) && PyFunction_Check(PyMethod_GET_FUNCTION(method))) {
        PyObject *function = PyMethod_GET_FUNCTION(method);
        vectorcallfunc vectorcall = PyVectorcall_Function(function);
        if (vectorcall != NULL) {
            slots[0] = PyMethod_GET_SELF(method);
            return vectorcall(function, slots, (size_t)nargs + 1, NULL);
        }
    }
    return PyObject_Vectorcall(method, slots + 1, (size_t)nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* Run `methods` with `call` (and `extra`); returns -1 if a BaseException
 * must propagate (set), 0 otherwise. `*blocked` collects a Blocked. */
static int
dispatch(PyObject *methods, CallObject *call, PyObject *extra, PyObject **blocked)
{
    Py_ssize_t n = PyTuple_GET_SIZE(methods);
    if (n == 0) {
        return 0;
    }
    int status = 0;
    int raised_limit = headroom_users > 0 || recursion_headroom() < LISTENER_HEADROOM;
    if (raised_limit) {
        raise_limit();
    }
    PyObject *previous = tls_busy;
    Py_INCREF(methods); /* a listener may reconfigure the site meanwhile */
    tls_busy = (PyObject *)call;
    /* slots[0] is free for a bound method's `self` */
    PyObject *slots[3] = {NULL, (PyObject *)call, extra};
    Py_ssize_t nargs = extra == NULL ? 1 : 2;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *method = PyTuple_GET_ITEM(methods, i);
        PyObject *res = call_listener(method, slots, nargs);
        if (res != NULL) {
            Py_DECREF(res);
            continue;
        }
        if (blocked != NULL && blocked_type != NULL && PyErr_ExceptionMatches(blocked_type)) {
            PyObject *exc = take_error();
            if (*blocked == NULL) {
                *blocked = exc;
            }
            else {
                Py_XDECREF(exc);
            }
            continue;
        }
        if (!absorb_listener_error(method)) {
            status = -1;
            break;
        }
    }
    tls_busy = previous;
    Py_DECREF(methods);
    if (raised_limit) {
        restore_limit();
    }
    return status;
}

/* The call ends now: its duration without hookwise's own time inside it
 * (see tls_overhead_ticks); returns the end stamp. A call that ends on
 * another thread than it started on (a generator handed over) cannot tell
 * which of that thread's time was spent inside it: its whole time counts. */
static inline long long
call_finish(CallObject *call)
{
    long long end = now_ticks();
    long long inside = call->thread_id == PyThread_get_thread_ident()
                       ? tls_overhead_ticks - call->overhead_at_start : 0;
    long long span = end - call->start_ticks;
    if (inside < 0 || inside > span) {
        inside = inside < 0 ? 0 : span;
    }
    call->overhead_ticks = inside;
    call->duration_ticks = span - inside;
    return end;
}

static int
site_report_error(SiteObject *site, CallObject *call, PyObject *exc)
{
    long long end = call_finish(call);
    Py_INCREF(exc);
    Py_SETREF(call->exception, exc);
    if (PyTuple_GET_SIZE(site->errors) == 0) {
        return 0;  /* nobody to tell: no time of ours worth a clock read */
    }
    int status = dispatch(site->errors, call, exc, NULL);
    tls_overhead_ticks += now_ticks() - end;
    return status;
}

static int
site_report_end(SiteObject *site, CallObject *call, PyObject *result)
{
    long long end = call_finish(call);
    Py_INCREF(result);
    Py_SETREF(call->result, result);
    if (PyTuple_GET_SIZE(site->ends) == 0) {
        return 0;  /* nobody to tell: no time of ours worth a clock read */
    }
    int status = dispatch(site->ends, call, result, NULL);
    tls_overhead_ticks += now_ticks() - end;
    return status;
}

/* The start of a call: a new Call, None when it is not reported, or NULL
 * with an exception set (Blocked, or a BaseException from a listener). */
static PyObject *
site_start_impl(SiteObject *site, PyObject *const *values, Py_ssize_t n, PyObject *frame)
{
    if (tls_busy != NULL) {
        Py_RETURN_NONE;
    }
    CallObject *call = call_new((PyObject *)site, values, n);
    if (call == NULL) {
        return NULL;
    }
    if (frame != NULL) {
        Py_INCREF(frame);
        call->frame = frame;
    }
    PyObject *blocked = NULL;
    int status = 0;
    if (PyTuple_GET_SIZE(site->starts) > 0) {  /* else only the Call was made: no clock read for that */
        status = dispatch(site->starts, call, NULL, &blocked);
        tls_overhead_ticks += now_ticks() - call->start_ticks;
    }
    if (status < 0) {
        Py_XDECREF(blocked);
        Py_DECREF(call);
        return NULL;
    }
    if (blocked != NULL) {
        /* the caller gets it as if the call raised it: no listener frames */
        PyException_SetTraceback(blocked, Py_None);
        if (site_report_error(site, call, blocked) < 0) {
            Py_DECREF(blocked);
            Py_DECREF(call);
            return NULL;
        }
        Py_DECREF(call);
        restore_error(blocked);
        return NULL;
    }
    return (PyObject *)call;
}

/* start(*values): the hooked function's argument values, in the order of
 * the site's params, passed one by one (no tuple to build). */
static PyObject *
site_start(SiteObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return site_start_impl(self, args, nargs, NULL);
}

static PyObject *
site_end(SiteObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || Py_TYPE(args[0]) != &CallType) {
        PyErr_SetString(PyExc_TypeError, "end(call, result)");
        return NULL;
    }
    if (site_report_end(self, (CallObject *)args[0], args[1]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* Called from the hooked function's `except` block: always returns None. */
static PyObject *
site_error(SiteObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *call = nargs == 1 ? args[0] : NULL;
    if (call == NULL || Py_TYPE(call) != &CallType) {
        PyErr_SetString(PyExc_TypeError, "error(call)");
        return NULL;
    }
    PyObject *exc = handled_exception();
    if (exc == NULL) {
        Py_INCREF(Py_None);
        exc = Py_None;
    }
    int status;
    if (self->generator_like && PyErr_GivenExceptionMatches(exc, PyExc_GeneratorExit)) {
        status = site_report_end(self, (CallObject *)call, Py_None);
    }
    else {
        status = site_report_error(self, (CallObject *)call, exc);
    }
    Py_DECREF(exc);
    if (status < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
site_set_dispatch(SiteObject *self, PyObject *args)
{
    PyObject *on, *starts, *ends, *errors;
    int generator_like;
    if (!PyArg_ParseTuple(args, "OO!O!O!p", &on, &PyTuple_Type, &starts, &PyTuple_Type, &ends,
                          &PyTuple_Type, &errors, &generator_like)) {
        return NULL;
    }
    /* None, not False, when off: see the `on` member */
    PyObject *flag = PyObject_IsTrue(on) ? Py_True : Py_None;
    Py_INCREF(flag);
    Py_SETREF(self->on, flag);
    Py_INCREF(starts);
    Py_SETREF(self->starts, starts);
    Py_INCREF(ends);
    Py_SETREF(self->ends, ends);
    Py_INCREF(errors);
    Py_SETREF(self->errors, errors);
    self->generator_like = generator_like;
    Py_RETURN_NONE;
}

static PyObject *
site_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    SiteObject *self = (SiteObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    PyObject *empty = PyTuple_New(0);
    if (empty == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    Py_INCREF(Py_None);
    self->on = Py_None;
    self->starts = empty;
    Py_INCREF(empty);
    self->ends = empty;
    Py_INCREF(empty);
    self->errors = empty;
    self->generator_like = 0;
    return (PyObject *)self;
}

static int
site_traverse(SiteObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->starts);
    Py_VISIT(self->ends);
    Py_VISIT(self->errors);
    return 0;
}

static int
site_clear(SiteObject *self)
{
    Py_CLEAR(self->starts);
    Py_CLEAR(self->ends);
    Py_CLEAR(self->errors);
    return 0;
}

static void
site_dealloc(SiteObject *self)
{
    PyObject_GC_UnTrack(self);
    site_clear(self);
    Py_CLEAR(self->on);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef site_methods[] = {
    /* METH_FASTCALL, not METH_O: on 3.11 the interpreter counts a METH_O call
       against the recursion limit, and hooked code must have the same depth
       to spare as the original */
    {"start", (PyCFunction)(void (*)(void))site_start, METH_FASTCALL, "start(*values) -> Call or None"},
    {"end", (PyCFunction)(void (*)(void))site_end, METH_FASTCALL, "end(call, result)"},
    {"error", (PyCFunction)(void (*)(void))site_error, METH_FASTCALL, "error(call) -> None, from an except block"},
    {"_set_dispatch", (PyCFunction)site_set_dispatch, METH_VARARGS, NULL},
    {NULL}
};

static PyMemberDef site_members[] = {
    {"on", T_OBJECT_EX, offsetof(SiteObject, on), READONLY, "True when some listener hears this site, else None"},
    {"_starts", T_OBJECT_EX, offsetof(SiteObject, starts), READONLY, NULL},
    {"_ends", T_OBJECT_EX, offsetof(SiteObject, ends), READONLY, NULL},
    {"_errors", T_OBJECT_EX, offsetof(SiteObject, errors), READONLY, NULL},
    {NULL}
};

static PyTypeObject SiteType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hookwise._speedups.SiteBase",
    .tp_doc = "The hot path of hookwise.runtime.Site.",
    .tp_basicsize = sizeof(SiteObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = site_new,
    .tp_dealloc = (destructor)site_dealloc,
    .tp_traverse = (traverseproc)site_traverse,
    .tp_clear = (inquiry)site_clear,
    .tp_methods = site_methods,
    .tp_members = site_members,
};

/* ---------------------------------------------------------- the Wrapper */

typedef struct {
    PyObject_HEAD
    PyObject *site;
    PyObject *original;
    PyObject *dict;
    PyObject *skip;     /* NULL, or skip(caller_globals, first_argument) -> true for
                           calls not to report (hookwise/stdlib_internals.py) */
    vectorcallfunc vectorcall;
    int binds; /* behaves as a method in a class, like the function it wraps */
} WrapperObject;

/* 1 when the wrapper's skip predicate says this call is not to be reported.
 * A predicate that fails counts as "report it": a call is never hidden by mistake. */
static int
is_skipped(WrapperObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *globals = PyEval_GetGlobals(); /* borrowed: the calling frame's */
    PyObject *answer = PyObject_CallFunctionObjArgs(self->skip, globals != NULL ? globals : Py_None,
                                                    nargs > 0 ? args[0] : Py_None, NULL);
    if (answer == NULL) {
        PyErr_Clear();
        return 0;
    }
    int skipped = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    if (skipped < 0) {
        PyErr_Clear();
        return 0;
    }
    return skipped;
}

static int
is_quiet_caller(void)
{
    if (quiet_globals == NULL) {
        return 0;
    }
    PyObject *globals = PyEval_GetGlobals(); /* borrowed: the calling frame's */
    if (globals == NULL) {
        return 0;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(quiet_globals);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (PyTuple_GET_ITEM(quiet_globals, i) == globals) {
            return 1;
        }
    }
    return 0;
}

/* values[0] = args tuple, values[1] = kwargs dict, from a vectorcall:
 * new references on success (0), nothing on failure (-1). */
static int
pack_values(PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames, PyObject **values)
{
    PyObject *positional = PyTuple_New(nargs);
    if (positional == NULL) {
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        Py_INCREF(args[i]);
        PyTuple_SET_ITEM(positional, i, args[i]);
    }
    PyObject *keywords = PyDict_New();
    if (keywords == NULL) {
        Py_DECREF(positional);
        return -1;
    }
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < nkw; i++) {
            if (PyDict_SetItem(keywords, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) < 0) {
                Py_DECREF(positional);
                Py_DECREF(keywords);
                return -1;
            }
        }
    }
    values[0] = positional;
    values[1] = keywords;
    return 0;
}

static PyObject *
wrapper_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    WrapperObject *self = (WrapperObject *)op;
    SiteObject *site = (SiteObject *)self->site;
    if (site->on != Py_True || tls_busy != NULL || is_quiet_caller()
        || (self->skip != NULL && is_skipped(self, args, PyVectorcall_NARGS(nargsf)))) {
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
    PyObject *values[2];
    if (pack_values(args, PyVectorcall_NARGS(nargsf), kwnames, values) < 0) {
        return NULL;
    }
    PyObject *frame = (PyObject *)PyEval_GetFrame(); /* borrowed: the caller's */
    PyObject *call = site_start_impl(site, values, 2, frame);
    Py_DECREF(values[0]);
    Py_DECREF(values[1]);
    if (call == NULL) {
        return NULL;
    }
    if (call == Py_None) {
        Py_DECREF(call);
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
    PyObject *result = PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    if (result == NULL) {
        if (!PyErr_Occurred()) {  /* a misbehaving C function: what the interpreter would say */
            PyErr_SetString(PyExc_SystemError, "error return without exception set");
        }
        PyObject *exc = take_error();
        if (site_report_error(site, (CallObject *)call, exc) < 0) {
            Py_DECREF(exc); /* a BaseException from a listener wins, as in Python */
        }
        else {
            restore_error(exc);
        }
    }
    else if (site_report_end(site, (CallObject *)call, result) < 0) {
        Py_CLEAR(result);
    }
    /* the caller's frame is only for the callbacks (call.caller); a listener that
       keeps the Call must not keep the caller's locals alive with it */
    Py_CLEAR(((CallObject *)call)->frame);
    Py_DECREF(call);
    return result;
}

static PyObject *
wrapper_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *site, *original, *skip = Py_None;
    if (!PyArg_ParseTuple(args, "O!O|O:Wrapper", &SiteType, &site, &original, &skip)) {
        return NULL;
    }
    WrapperObject *self = (WrapperObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    Py_INCREF(site);
    self->site = site;
    Py_INCREF(original);
    self->original = original;
    self->dict = NULL;
    self->skip = NULL;
    if (skip != Py_None) {
        Py_INCREF(skip);
        self->skip = skip;
    }
    self->vectorcall = wrapper_vectorcall;
    self->binds = Py_TYPE(original)->tp_descr_get != NULL;
    return (PyObject *)self;
}

static PyObject *
wrapper_descr_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None || !((WrapperObject *)self)->binds) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static PyObject *
wrapper_repr(WrapperObject *self)
{
    return PyObject_Repr(self->original);
}

static PyObject *
wrapper_reduce(WrapperObject *self, PyObject *unused)
{
    /* pickled by name, like the function it stands for */
    return PyObject_GetAttrString((PyObject *)self, "__qualname__");
}

static int
wrapper_traverse(WrapperObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->site);
    Py_VISIT(self->original);
    Py_VISIT(self->dict);
    Py_VISIT(self->skip);
    return 0;
}

static int
wrapper_clear(WrapperObject *self)
{
    Py_CLEAR(self->site);
    Py_CLEAR(self->original);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->skip);
    return 0;
}

static void
wrapper_dealloc(WrapperObject *self)
{
    PyObject_GC_UnTrack(self);
    wrapper_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef wrapper_methods[] = {
    {"__reduce__", (PyCFunction)wrapper_reduce, METH_NOARGS, NULL},
    {NULL}
};

static PyMemberDef wrapper_members[] = {
    {"__hookwise_site__", T_OBJECT_EX, offsetof(WrapperObject, site), READONLY, NULL},
    {"__hookwise_original__", T_OBJECT_EX, offsetof(WrapperObject, original), READONLY, NULL},
    {NULL}
};

static PyGetSetDef wrapper_getset[] = {
    {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},
    {NULL}
};

static PyTypeObject WrapperType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hookwise._speedups.Wrapper",
    .tp_doc = "Wrapper(site, original, skip=None): reports calls of a C callable to its site,\n"
              "but those for which skip(caller_globals, first_argument) is true.",
    .tp_basicsize = sizeof(WrapperObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_new = wrapper_new,
    .tp_dealloc = (destructor)wrapper_dealloc,
    .tp_traverse = (traverseproc)wrapper_traverse,
    .tp_clear = (inquiry)wrapper_clear,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(WrapperObject, vectorcall),
    .tp_dictoffset = offsetof(WrapperObject, dict),
    .tp_descr_get = wrapper_descr_get,
    .tp_repr = (reprfunc)wrapper_repr,
    .tp_methods = wrapper_methods,
    .tp_members = wrapper_members,
    .tp_getset = wrapper_getset,
};

/* ------------------------------------------------------------ the recorder */

#include "_recorder.h"
#include "_saferepr.h"

/* ------------------------------------------------------- module functions */

static int
keep(PyObject **slot, PyObject *kwds, const char *name)
{
    PyObject *value = PyDict_GetItemString(kwds, name); /* borrowed */
    if (value == NULL) {
        return 0;
    }
    Py_INCREF(value);
    Py_XSETREF(*slot, value);
    return 0;
}

static PyObject *
configure(PyObject *module, PyObject *args, PyObject *kwds)
{
    if (kwds == NULL) {
        Py_RETURN_NONE;
    }
    keep(&blocked_type, kwds, "blocked");
    keep(&listener_failed, kwds, "listener_failed");
    keep(&helper_args, kwds, "args");
    keep(&helper_kwargs, kwds, "kwargs");
    keep(&helper_arguments, kwds, "arguments");
    keep(&helper_changed, kwds, "changed_arguments");
    keep(&helper_callers, kwds, "callers");
    keep(&helper_task, kwds, "task");
    keep(&helper_request_id, kwds, "request_id");
    keep(&current_request_var, kwds, "current_request");
    keep(&helper_thread_name, kwds, "thread_name");
    keep(&quiet_globals, kwds, "quiet_globals");
    keep(&stand_ins, kwds, "stand_ins");
    PyObject *callers_c = PyDict_GetItemString(kwds, "callers_c"); /* borrowed */
    if (callers_c != NULL && configure_callers(callers_c) < 0) {
        return NULL;
    }
    PyObject *pid = PyDict_GetItemString(kwds, "pid");
    if (pid != NULL) {
        current_pid = PyLong_AsLong(pid);
        if (current_pid == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
py_clock_ns(PyObject *module, PyObject *unused)
{
    return PyLong_FromLongLong(clock_ns());
}

static PyObject *
py_wall_offset_ns(PyObject *module, PyObject *unused)
{
    return PyLong_FromLongLong(wall_offset_ns());
}

/* Mark this thread as running hookwise's own code (so hooked calls made
 * meanwhile report nothing) or unmark it; returns whether it was marked.
 * The mark is the module object, which outlives any use of it. */
static PyObject *
py_set_quiet(PyObject *module, PyObject *flag)
{
    int was = tls_busy != NULL;
    tls_busy = PyObject_IsTrue(flag) ? module : NULL;
    return PyBool_FromLong(was);
}

static PyObject *
py_dispatching(PyObject *module, PyObject *unused)
{
    PyObject *busy = tls_busy ? tls_busy : Py_None;
    Py_INCREF(busy);
    return busy;
}

/* The interpreter specialises `site.start(...)` only when the method's
 * descriptor belongs to the object's exact type, and hookwise's Site is a
 * Python subclass of SiteBase: give the subclass descriptors of its own. */
static PyObject *
install_methods(PyObject *module, PyObject *cls)
{
    if (!PyType_Check(cls) || !PyType_IsSubtype((PyTypeObject *)cls, &SiteType)) {
        PyErr_SetString(PyExc_TypeError, "install_methods(subclass of SiteBase)");
        return NULL;
    }
    for (PyMethodDef *def = site_methods; def->ml_name != NULL; def++) {
        if (def->ml_name[0] == '_') {
            continue;
        }
        PyObject *descr = PyDescr_NewMethod((PyTypeObject *)cls, def);
        if (descr == NULL) {
            return NULL;
        }
        int status = PyObject_SetAttrString(cls, def->ml_name, descr);
        Py_DECREF(descr);
        if (status < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------- writing events */

/* Writing an event must not let the program's other threads run in the
 * middle of a hooked call: os.write lets go of the GIL during the system
 * call, and a thread waiting for it then runs there (more-itertools'
 * callback_iter test, a worker thread racing the test, lost its race one run
 * in four). Everything here writes with the GIL held. A write to a regular
 * file does not wait; a pipe, FIFO, terminal or socket that is full would
 * make it wait for a reader, perhaps one of the program's own threads, so
 * there it waits for room with the GIL released (as os.write would), which
 * is the one moment another thread may run. */

/* Wait until `fd` takes a write; the GIL is released meanwhile. */
static void
wait_for_room(int fd)
{
    struct pollfd room = {fd, POLLOUT, 0};
    Py_BEGIN_ALLOW_THREADS
    poll(&room, 1, -1);
    Py_END_ALLOW_THREADS
}

/* Write all of data[0:size] to `fd` with the GIL held; 0, or -1 with errno set.
 * `may_block`: `fd` is a blocking pipe, terminal or socket that is not ours
 * to make non-blocking (hookwise's duplicate of stderr): poll says first
 * whether it has room, and each write is at most PIPE_BUF bytes, which a
 * pipe with room takes without waiting. On a non-blocking fd a full pipe
 * answers EAGAIN and we wait for room. */
static int
write_held(int fd, const char *data, Py_ssize_t size, int may_block)
{
    while (size > 0) {
        size_t piece = (size_t)size;
        if (may_block) {
            struct pollfd room = {fd, POLLOUT, 0};
            int ready = poll(&room, 1, 0);
            if (ready == 0) {
                wait_for_room(fd);
                continue;
            }
            if (ready < 0 && errno != EINTR) {
                return -1;
            }
            if (piece > PIPE_BUF) {
                piece = PIPE_BUF;
            }
        }
        ssize_t written = write(fd, data, piece);
        if (written >= 0) {
            data += written;
            size -= written;
        }
        else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            wait_for_room(fd);
        }
        else if (errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

/* page_layout(records, separator, at, page) -> bytes, or None: hookwise.listeners._output's layout of
 * records (each followed by the separator) written from file offset `at`: each that would cross a
 * multiple of `page` starts at the next one instead, after spaces and a newline. None when a record is
 * not ASCII (the Python layout then measures it). */
static PyObject *
py_page_layout(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    long long at, page;
    if (nargs != 4 || !PyList_Check(args[0]) || !PyUnicode_Check(args[1]) || (at = PyLong_AsLongLong(args[2])) < 0
        || (page = PyLong_AsLongLong(args[3])) <= 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "page_layout(records: list, separator: str, at: int >= 0, page: int > 0)");
        }
        return NULL;
    }
    PyObject *records = args[0], *separator = args[1];
    if (!PyUnicode_IS_ASCII(separator)) {
        Py_RETURN_NONE;
    }
    long long separated = PyUnicode_GET_LENGTH(separator);
    Py_ssize_t count = PyList_GET_SIZE(records);
    long long position = at;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        if (!PyUnicode_Check(record) || !PyUnicode_IS_ASCII(record)) {
            Py_RETURN_NONE;
        }
        long long size = PyUnicode_GET_LENGTH(record) + separated, room = page - position % page;
        if (size > room && room != page) {
            position += room;
        }
        position += size;
    }
    PyObject *text = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(position - at));
    if (text == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(text);
    position = at;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *record = PyList_GET_ITEM(records, i);
        long long length = PyUnicode_GET_LENGTH(record), room = page - position % page;
        if (length + separated > room && room != page) {
            memset(out, ' ', (size_t)(room - 1));
            out[room - 1] = '\n';
            out += room;
            position += room;
        }
        memcpy(out, PyUnicode_DATA(record), (size_t)length);
        memcpy(out + length, PyUnicode_DATA(separator), (size_t)separated);
        out += length + separated;
        position += length + separated;
    }
    return text;
}

/* write_whole(fd, data, may_block=False): see write_held. */
static PyObject *
py_write_whole(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 && nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "write_whole(fd, data, may_block=False)");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int may_block = nargs == 3 ? PyObject_IsTrue(args[2]) : 0;
    if (may_block < 0) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int failed = write_held((int)fd, view.buf, view.len, may_block);
    PyBuffer_Release(&view);
    if (failed) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

/* LineBuffer(fd, limit, max_wait_ns, may_block=False): lines gathered and
 * written together (hookwise/listeners/jsonl.py says when, and what a kill
 * can lose). The same behaviour as hookwise.writes.PurePythonLineBuffer,
 * plus a thread that writes what waits when the program goes quiet.
 *
 * add(line, now_ns) copies the line (ASCII or UTF-8 text) into the buffer;
 * the buffer is written, with the GIL held, when it holds `limit` bytes, when
 * the line would not fit beside what waits, or when `now_ns` (the wall clock)
 * is `max_wait_ns` or more after the last write. A line longer than `limit`
 * is written alone; `limit` 0 writes every line at once.
 *
 * When the program goes quiet, lines would wait for its next event: so one
 * bare POSIX thread per process (started with the first buffered line, every
 * signal blocked, no Python state: Python never sees it) writes every buffer
 * whose oldest line has waited `max_wait_ns`. It never takes the GIL, so the
 * buffer's own mutex guards its bytes, and the `writing` lock keeps chunks in
 * the order they were filled: a Python thread that finds it held waits with
 * the GIL released (only a write that waits for a full pipe holds it long). */
typedef struct LineBufferObject {
    PyObject_HEAD
    int fd;
    int may_block;
    Py_ssize_t limit;
    long long max_wait_ns;
    long long last_write_ns;
    char *data;
    Py_ssize_t size;
    Py_ssize_t capacity;
    int error;                    /* errno of a write the quiet-time thread could not make, for Python to say */
    PyThread_type_lock writing;   /* held while a chunk is written */
    pthread_mutex_t mutex;        /* guards data, size, capacity, last_write_ns, error */
    struct LineBufferObject *next, *previous;  /* every live buffer of the process, for the quiet-time thread */
} LineBufferObject;

static pthread_mutex_t buffers_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t buffers_waiting = PTHREAD_COND_INITIALIZER;  /* a buffer got its first line */
static LineBufferObject *buffers = NULL;
static int quiet_writer_running = 0;
static int at_fork_registered = 0;

static long long
wall_now_ns(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

/* Write without the GIL (the quiet-time thread): wait for room in a full pipe, whatever it takes. */
static int
write_bare(int fd, const char *data, Py_ssize_t size)
{
    while (size > 0) {
        ssize_t written = write(fd, data, (size_t)size);
        if (written >= 0) {
            data += written;
            size -= written;
        }
        else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            struct pollfd room = {fd, POLLOUT, 0};
            poll(&room, 1, -1);
        }
        else if (errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

/* Under self->mutex: take what waits, leaving an empty buffer; the caller writes it, then gives it back. */
static char *
line_buffer_take(LineBufferObject *self, Py_ssize_t *size, Py_ssize_t *capacity, long long now_ns)
{
    char *chunk = self->data;
    *size = self->size;
    *capacity = self->capacity;
    self->data = NULL;
    self->size = self->capacity = 0;
    self->last_write_ns = now_ns;
    return chunk;
}

/* Under self->mutex: keep the chunk's memory when nothing was added meanwhile. */
static void
line_buffer_give_back(LineBufferObject *self, char *chunk, Py_ssize_t capacity)
{
    if (self->data == NULL) {
        self->data = chunk;
        self->capacity = capacity;
    }
    else {
        PyMem_RawFree(chunk);
    }
}

static void *
quiet_writer(void *unused)
{
    pthread_mutex_lock(&buffers_mutex);
    for (;;) {
        long long now = wall_now_ns();
        long long wait_ns = -1;  /* until a buffer gets a line */
        LineBufferObject *due = NULL;
        for (LineBufferObject *buffer = buffers; buffer != NULL; buffer = buffer->next) {
            pthread_mutex_lock(&buffer->mutex);
            if (buffer->size > 0 && buffer->limit > 0) {
                long long left = buffer->last_write_ns + buffer->max_wait_ns - now;
                if (left <= 0 || now < buffer->last_write_ns) {
                    if (due == NULL) {
                        due = buffer;
                    }
                }
                else if (wait_ns < 0 || left < wait_ns) {
                    wait_ns = left;
                }
            }
            pthread_mutex_unlock(&buffer->mutex);
        }
        if (due != NULL && PyThread_acquire_lock(due->writing, NOWAIT_LOCK)) {
            /* holding `writing`, the buffer outlives this write: its dealloc takes the lock first */
            pthread_mutex_unlock(&buffers_mutex);
            Py_ssize_t size, capacity;
            pthread_mutex_lock(&due->mutex);
            char *chunk = line_buffer_take(due, &size, &capacity, now);
            pthread_mutex_unlock(&due->mutex);
            int failed = chunk != NULL && write_bare(due->fd, chunk, size) < 0 ? errno : 0;
            pthread_mutex_lock(&due->mutex);
            if (chunk != NULL) {
                line_buffer_give_back(due, chunk, capacity);
            }
            if (failed) {
                due->error = failed;
            }
            pthread_mutex_unlock(&due->mutex);
            PyThread_release_lock(due->writing);
            pthread_mutex_lock(&buffers_mutex);
            continue;
        }
        if (due != NULL) {  /* a Python thread is writing it: look again soon */
            wait_ns = 1000000;
        }
        if (wait_ns < 0) {
            pthread_cond_wait(&buffers_waiting, &buffers_mutex);
        }
        else {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            long long at = (long long)until.tv_sec * 1000000000LL + until.tv_nsec + wait_ns;
            until.tv_sec = at / 1000000000LL;
            until.tv_nsec = at % 1000000000LL;
            pthread_cond_timedwait(&buffers_waiting, &buffers_mutex, &until);
        }
    }
    return NULL;
}

/* Under buffers_mutex. Without the thread (it could not start), lines wait for the next event. */
static void
start_quiet_writer(void)
{
    if (quiet_writer_running) {
        return;
    }
    pthread_t thread;
    pthread_attr_t attributes;
    sigset_t all, previous;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 64 * 1024);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &previous);  /* the new thread inherits this mask */
    if (pthread_create(&thread, &attributes, quiet_writer, NULL) == 0) {
        quiet_writer_running = 1;
    }
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    pthread_attr_destroy(&attributes);
}

/* In a forked child: the thread is gone, and any lock it or the parent's threads held stays held. */
static void
buffers_after_fork_in_child(void)
{
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    buffers_mutex = fresh;
    buffers_waiting = fresh_cond;
    quiet_writer_running = 0;
    for (LineBufferObject *buffer = buffers; buffer != NULL; buffer = buffer->next) {
        buffer->mutex = fresh;
        buffer->size = 0;  /* the parent's lines: the parent writes them */
        PyThread_type_lock lock = PyThread_allocate_lock();
        if (lock != NULL) {
            buffer->writing = lock;  /* the old one may be held forever: let it go unfreed */
        }
    }
}

static int
line_buffer_init(LineBufferObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"fd", "limit", "max_wait_ns", "may_block", NULL};
    int may_block = 0;
    if (self->writing != NULL) {
        PyErr_SetString(PyExc_TypeError, "a LineBuffer is made once");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "inL|p", names, &self->fd, &self->limit, &self->max_wait_ns,
                                     &may_block)) {
        return -1;
    }
    self->may_block = may_block;
    self->last_write_ns = 0;
    self->writing = PyThread_allocate_lock();
    if (self->writing == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    pthread_mutex_init(&self->mutex, NULL);
    pthread_mutex_lock(&buffers_mutex);
    if (!at_fork_registered) {
        at_fork_registered = pthread_atfork(NULL, NULL, buffers_after_fork_in_child) == 0;
    }
    self->previous = NULL;
    self->next = buffers;
    if (buffers != NULL) {
        buffers->previous = self;
    }
    buffers = self;
    pthread_mutex_unlock(&buffers_mutex);
    return 0;
}

static void
line_buffer_dealloc(LineBufferObject *self)
{
    if (self->writing != NULL) {
        pthread_mutex_lock(&buffers_mutex);
        if (self->previous != NULL) {
            self->previous->next = self->next;
        }
        else if (buffers == self) {
            buffers = self->next;
        }
        if (self->next != NULL) {
            self->next->previous = self->previous;
        }
        pthread_mutex_unlock(&buffers_mutex);
        if (!PyThread_acquire_lock(self->writing, NOWAIT_LOCK)) {  /* the quiet-time thread is writing it */
            Py_BEGIN_ALLOW_THREADS
            PyThread_acquire_lock(self->writing, WAIT_LOCK);
            Py_END_ALLOW_THREADS
        }
        PyThread_release_lock(self->writing);
        PyThread_free_lock(self->writing);
        pthread_mutex_destroy(&self->mutex);
    }
    PyMem_RawFree(self->data);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* An error of the quiet-time thread's write, raised once; 0 when there was none. */
static int
line_buffer_raise_error(LineBufferObject *self)
{
    pthread_mutex_lock(&self->mutex);
    int error = self->error;
    self->error = 0;
    pthread_mutex_unlock(&self->mutex);
    if (error) {
        errno = error;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Write what waits, with the GIL held; 0, or -1 with an OSError set (those lines are dropped). */
static int
line_buffer_write_out(LineBufferObject *self, long long now_ns)
{
    if (!PyThread_acquire_lock(self->writing, NOWAIT_LOCK)) {
        /* another thread writes: the quiet-time one, or a Python one waiting for a full pipe */
        Py_BEGIN_ALLOW_THREADS
        PyThread_acquire_lock(self->writing, WAIT_LOCK);
        Py_END_ALLOW_THREADS
    }
    Py_ssize_t size, capacity;
    pthread_mutex_lock(&self->mutex);
    /* lines added while it is written (only during a wait for a full pipe) go after it */
    char *chunk = line_buffer_take(self, &size, &capacity, now_ns);
    pthread_mutex_unlock(&self->mutex);
    int failed = 0, saved_errno = 0;
    if (chunk != NULL) {
        failed = write_held(self->fd, chunk, size, self->may_block);
        saved_errno = errno;
        pthread_mutex_lock(&self->mutex);
        line_buffer_give_back(self, chunk, capacity);
        pthread_mutex_unlock(&self->mutex);
    }
    PyThread_release_lock(self->writing);
    if (failed) {
        errno = saved_errno;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return line_buffer_raise_error(self);
}

/* Room for a line of `length` bytes; on success self->mutex is held and the line goes at data + size.
 * What waits is written out first when the line would not fit beside it. */
static int
line_buffer_reserve(LineBufferObject *self, Py_ssize_t length, long long now_ns)
{
    for (;;) {
        pthread_mutex_lock(&self->mutex);
        if (self->size == 0 || self->size + length <= self->limit) {
            break;
        }
        pthread_mutex_unlock(&self->mutex);
        if (line_buffer_write_out(self, now_ns) < 0) {
            return -1;
        }
    }
    if (self->size + length > self->capacity) {
        Py_ssize_t capacity = self->capacity ? self->capacity : 4096;
        while (capacity < self->size + length) {
            capacity *= 2;
        }
        char *grown = PyMem_RawRealloc(self->data, (size_t)capacity);
        if (grown == NULL) {
            pthread_mutex_unlock(&self->mutex);
            PyErr_NoMemory();
            return -1;
        }
        self->data = grown;
        self->capacity = capacity;
    }
    return 0;
}

/* After a line of `length` bytes was put at data + size (self->mutex held, released here): count it,
 * and write out when the buffer is full or the last write is max_wait_ns old. */
static PyObject *
line_buffer_added(LineBufferObject *self, Py_ssize_t length, long long now_ns)
{
    int first = self->size == 0;
    self->size += length;
    int write_now = self->size >= self->limit || now_ns - self->last_write_ns >= self->max_wait_ns
                    || now_ns < self->last_write_ns;
    pthread_mutex_unlock(&self->mutex);
    if (write_now) {
        if (line_buffer_write_out(self, now_ns) < 0) {
            return NULL;
        }
    }
    else if (first) {  /* the quiet-time thread writes it if no event comes in time */
        pthread_mutex_lock(&buffers_mutex);
        start_quiet_writer();
        pthread_cond_signal(&buffers_waiting);
        pthread_mutex_unlock(&buffers_mutex);
    }
    Py_RETURN_NONE;
}

/* A str's bytes: its own for ASCII text (no copy), else UTF-8 in *encoded. */
static const char *
text_of(PyObject *text, Py_ssize_t *length, PyObject **encoded)
{
    *encoded = NULL;
    if (PyUnicode_IS_ASCII(text)) {
        *length = PyUnicode_GET_LENGTH(text);
        return (const char *)PyUnicode_DATA(text);
    }
    *encoded = PyUnicode_AsEncodedString(text, "utf-8", "backslashreplace");
    if (*encoded == NULL) {
        return NULL;
    }
    *length = PyBytes_GET_SIZE(*encoded);
    return PyBytes_AS_STRING(*encoded);
}

static PyObject *
line_buffer_add(LineBufferObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyUnicode_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "add(line: str, now_ns: int)");
        return NULL;
    }
    long long now_ns = PyLong_AsLongLong(args[1]);
    if (now_ns == -1 && PyErr_Occurred()) {
        return NULL;
    }
    PyObject *encoded;
    Py_ssize_t length;
    const char *text = text_of(args[0], &length, &encoded);
    if (text == NULL || line_buffer_reserve(self, length, now_ns) < 0) {
        Py_XDECREF(encoded);
        return NULL;
    }
    memcpy(self->data + self->size, text, (size_t)length);
    Py_XDECREF(encoded);
    return line_buffer_added(self, length, now_ns);
}

/* --- add_call: the members every jsonl line of a call starts with, built here --- */

static PyObject *str_call_id, *str_thread_id, *str_thread_name, *str_pid, *str_start_ns, *str_end_ns,
    *str_request_id, *str_duration_ns;

/* What JSON adds to each one-byte character (Latin-1): 0 for one written as it is, 1 for a two-character
 * escape (\" \\ \b \f \n \r \t), 5 for \u00XX (the other controls, and everything above '~', as
 * _json.encode_basestring_ascii writes them). Most text is runs of 0: they are measured and copied whole. */
static unsigned char json_extra[256];

static void
json_extra_fill(void)
{
    for (int c = 0; c < 256; c++) {
        json_extra[c] = (c < 0x20 || c > 0x7e) ? 5 : 0;
    }
    json_extra['"'] = json_extra['\\'] = 1;
    json_extra['\b'] = json_extra['\f'] = json_extra['\n'] = json_extra['\r'] = json_extra['\t'] = 1;
}

/* The length of `text` as a JSON string in ASCII (quotes included), as _json.encode_basestring_ascii writes it. */
static Py_ssize_t
json_quoted_length(PyObject *text)
{
    Py_ssize_t length = 2, n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *chars = data;
        length += n;
        for (Py_ssize_t i = 0; i < n; i++) {
            length += json_extra[chars[i]];
        }
        return length;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (c < 256) {
            length += 1 + json_extra[c];
        }
        else {
            length += c > 0xffff ? 12 : 6;
        }
    }
    return length;
}

static char *
json_escape_into(char *out, Py_UCS4 c)
{
    static const char hex[] = "0123456789abcdef";
    const char *escape = NULL;
    switch (c) {
    case '"': escape = "\\\""; break;
    case '\\': escape = "\\\\"; break;
    case '\b': escape = "\\b"; break;
    case '\f': escape = "\\f"; break;
    case '\n': escape = "\\n"; break;
    case '\r': escape = "\\r"; break;
    case '\t': escape = "\\t"; break;
    }
    if (escape != NULL) {
        *out++ = escape[0];
        *out++ = escape[1];
        return out;
    }
    Py_UCS4 units[2];
    int count = 1;
    units[0] = c;
    if (c > 0xffff) {
        c -= 0x10000;
        units[0] = 0xd800 | (c >> 10);
        units[1] = 0xdc00 | (c & 0x3ff);
        count = 2;
    }
    for (int u = 0; u < count; u++) {
        *out++ = '\\';
        *out++ = 'u';
        *out++ = hex[(units[u] >> 12) & 0xf];
        *out++ = hex[(units[u] >> 8) & 0xf];
        *out++ = hex[(units[u] >> 4) & 0xf];
        *out++ = hex[units[u] & 0xf];
    }
    return out;
}

static char *
json_quote_into(char *out, PyObject *text)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    *out++ = '"';
    if (kind == PyUnicode_1BYTE_KIND) {
        const Py_UCS1 *chars = data;
        Py_ssize_t i = 0;
        while (i < n) {
            Py_ssize_t run = i;
            while (run < n && json_extra[chars[run]] == 0) {
                run++;
            }
            memcpy(out, chars + i, (size_t)(run - i));
            out += run - i;
            if (run < n) {
                out = json_escape_into(out, chars[run]);
                run++;
            }
            i = run;
        }
    }
    else {
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_UCS4 c = PyUnicode_READ(kind, data, i);
            if (c < 256 && json_extra[c] == 0) {
                *out++ = (char)c;
            }
            else {
                out = json_escape_into(out, c);
            }
        }
    }
    *out++ = '"';
    return out;
}

/* A growing ASCII buffer for json_dumps. */
typedef struct {
    char *data;
    Py_ssize_t size, room;
} JsonText;

static char *
json_text_grow(JsonText *text, Py_ssize_t more)
{
    if (text->size + more > text->room) {
        Py_ssize_t room = Py_MAX(text->room * 2, text->size + more + 256);
        char *data = PyMem_Realloc(text->data, (size_t)room);
        if (data == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        text->data = data;
        text->room = room;
    }
    return text->data + text->size;
}

static int
json_text_add(JsonText *text, const char *part, Py_ssize_t size)
{
    char *out = json_text_grow(text, size);
    if (out == NULL) {
        return -1;
    }
    memcpy(out, part, (size_t)size);
    text->size += size;
    return 0;
}

static int
json_text_quote(JsonText *text, PyObject *string)
{
    char *out = json_text_grow(text, json_quoted_length(string));
    if (out == NULL) {
        return -1;
    }
    text->size = json_quote_into(out, string) - text->data;
    return 0;
}

/* hookwise.listeners._jsontext._encode, in C: the same text for the same data. */
static int
json_encode(JsonText *text, PyObject *value)
{
    if (PyUnicode_Check(value)) {
        return json_text_quote(text, value);
    }
    if (value == Py_None) {
        return json_text_add(text, "null", 4);
    }
    if (value == Py_True) {
        return json_text_add(text, "true", 4);
    }
    if (value == Py_False) {
        return json_text_add(text, "false", 5);
    }
    if (PyLong_Check(value)) {
        PyObject *digits = PyLong_Type.tp_repr(value);  /* int.__repr__: an IntEnum writes its number */
        if (digits == NULL) {
            return -1;
        }
        int failed = json_text_add(text, PyUnicode_AsUTF8(digits), PyUnicode_GET_LENGTH(digits));
        Py_DECREF(digits);
        return failed;
    }
    if (PyFloat_Check(value)) {
        double number = PyFloat_AS_DOUBLE(value);
        if (!isfinite(number)) {
            return json_text_add(text, "null", 4);  /* NaN and infinities are not JSON */
        }
        char *digits = PyOS_double_to_string(number, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (digits == NULL) {
            return -1;
        }
        int failed = json_text_add(text, digits, (Py_ssize_t)strlen(digits));
        PyMem_Free(digits);
        return failed;
    }
    if (Py_EnterRecursiveCall(" in hookwise's JSON text")) {
        return -1;
    }
    int failed = 0;
    if (PyDict_Check(value)) {
        /* the items as dict.items() gives them: a snapshot, so that str(key) cannot change the dict under us */
        PyObject *items = PyDict_Items(value);
        failed = items == NULL || json_text_add(text, "{", 1) < 0;
        for (Py_ssize_t i = 0; !failed && i < PyList_GET_SIZE(items); i++) {
            PyObject *pair = PyList_GET_ITEM(items, i);
            PyObject *key = PyObject_Str(PyTuple_GET_ITEM(pair, 0));
            failed = key == NULL || (i > 0 && json_text_add(text, ",", 1) < 0) || json_text_quote(text, key) < 0
                     || json_text_add(text, ":", 1) < 0 || json_encode(text, PyTuple_GET_ITEM(pair, 1)) < 0;
            Py_XDECREF(key);
        }
        failed = failed || json_text_add(text, "}", 1) < 0;
        Py_XDECREF(items);
    }
    else if (PyList_Check(value) || PyTuple_Check(value)) {
        PyObject *items = PySequence_Fast(value, "");  /* read by index, its size asked again at each item */
        failed = items == NULL || json_text_add(text, "[", 1) < 0;
        for (Py_ssize_t i = 0; !failed && i < PySequence_Fast_GET_SIZE(items); i++) {
            failed = (i > 0 && json_text_add(text, ",", 1) < 0) || json_encode(text, PySequence_Fast_GET_ITEM(items, i)) < 0;
        }
        failed = failed || json_text_add(text, "]", 1) < 0;
        Py_XDECREF(items);
    }
    else {
        PyErr_Format(PyExc_TypeError, "not JSON data: %s", Py_TYPE(value)->tp_name);
        failed = 1;
    }
    Py_LeaveRecursiveCall();
    return failed ? -1 : 0;
}

/* json_dumps(value): hookwise.listeners._jsontext.dumps, in C (the rendered fields of SQL statements,
 * requests and outgoing calls go through it on every event) */
static PyObject *
py_json_dumps(PyObject *module, PyObject *value)
{
    JsonText text = {NULL, 0, 0};
    PyObject *result = NULL;
    if (json_encode(&text, value) == 0) {
        result = PyUnicode_FromStringAndSize(text.size ? text.data : "", text.size);
    }
    PyMem_Free(text.data);
    return result;
}

/* The JSON text of `texts` (str objects) as strings joined by commas, or as "name":"text" members of an
 * object when `names` (str objects, as many) is given. */
static PyObject *
json_join(PyObject *texts, PyObject *names)
{
    Py_ssize_t n = PyTuple_GET_SIZE(texts);
    Py_ssize_t length = n > 0 ? n - 1 : 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        length += json_quoted_length(PyTuple_GET_ITEM(texts, i));
        if (names != NULL) {
            length += json_quoted_length(PyTuple_GET_ITEM(names, i)) + 1;
        }
    }
    PyObject *joined = PyUnicode_New(length, 127);
    if (joined == NULL) {
        return NULL;
    }
    char *out = (char *)PyUnicode_1BYTE_DATA(joined);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (i > 0) {
            *out++ = ',';
        }
        if (names != NULL) {
            out = json_quote_into(out, PyTuple_GET_ITEM(names, i));
            *out++ = ':';
        }
        out = json_quote_into(out, PyTuple_GET_ITEM(texts, i));
    }
    return joined;
}

/* The safe repr (saferepr, in C) of `value`, or "***" when `name` is given and `secret` accepts it
 * (hookwise.render.Render.named). */
static PyObject *
json_shown(PyObject *value, PyObject *name, Py_ssize_t limit, PyObject *secret, PyObject *user_reprs)
{
    if (name != NULL && secret != Py_None) {
        int hidden = sr_is_secret(secret, name);
        if (hidden != 0) {
            return hidden < 0 ? NULL : PyUnicode_FromString("***");
        }
    }
    PyObject *text = sr_saferepr(value, limit, secret, user_reprs);
    if (text != NULL && !PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "json_reprs: a repr is not a str");
        Py_CLEAR(text);
    }
    return text;
}

/* json_reprs(values, limit, secret, user_reprs, names=None): the safe reprs of the values (saferepr, in C)
 * as JSON strings joined by commas, as a jsonl line's "args" holds them: one call for a whole argument
 * list. With `names` (a tuple or list of the parameters' names), the values are paired with them as zip()
 * pairs, and a value whose name `secret` accepts is shown as *** (hookwise.render.Render.args). */
static PyObject *
py_json_reprs(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *names = nargs == 5 && args[4] != Py_None ? args[4] : NULL;
    if (nargs < 4 || nargs > 5 || !PyTuple_Check(args[0])
        || (names != NULL && !PyTuple_Check(names) && !PyList_Check(names))) {
        PyErr_SetString(PyExc_TypeError, "json_reprs(values: tuple, limit: int, secret, user_reprs, names=None)");
        return NULL;
    }
    Py_ssize_t limit = sr_limit_of(args[1]);
    if (sr_fallback == NULL || limit < 0) {
        PyErr_SetString(PyExc_ValueError, "json_reprs: saferepr is not configured, or the limit is not a small int");
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(args[0]);
    if (names != NULL) {
        n = Py_MIN(n, PySequence_Fast_GET_SIZE(names));
    }
    PyObject *texts = PyTuple_New(n);
    if (texts == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *name = names == NULL ? NULL : PySequence_Fast_GET_ITEM(names, i);
        PyObject *text = json_shown(PyTuple_GET_ITEM(args[0], i), name, limit, args[2], args[3]);
        if (text == NULL) {
            Py_DECREF(texts);
            return NULL;
        }
        PyTuple_SET_ITEM(texts, i, text);
    }
    PyObject *joined = json_join(texts, NULL);
    Py_DECREF(texts);
    return joined;
}

/* json_kwargs(mapping, limit, secret, user_reprs): the members of the JSON object a jsonl line's "kwargs"
 * holds, "name":"repr" joined by commas (hookwise.render.Render.kwargs: a secret-named one shown as ***);
 * None when a name is not a str (the caller shows them itself). */
static PyObject *
py_json_kwargs(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyDict_CheckExact(args[0])) {
        PyErr_SetString(PyExc_TypeError, "json_kwargs(mapping: dict, limit: int, secret, user_reprs)");
        return NULL;
    }
    Py_ssize_t limit = sr_limit_of(args[1]);
    if (sr_fallback == NULL || limit < 0) {
        PyErr_SetString(PyExc_ValueError, "json_kwargs: saferepr is not configured, or the limit is not a small int");
        return NULL;
    }
    /* a snapshot of the entries: showing a value must not see the mapping change under it */
    PyObject *items = PyDict_Items(args[0]);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    PyObject *names = PyTuple_New(n), *texts = PyTuple_New(n);
    PyObject *joined = NULL;
    if (names == NULL || texts == NULL) {
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        PyObject *name = PyTuple_GET_ITEM(pair, 0);
        if (!PyUnicode_CheckExact(name)) {
            joined = Py_NewRef(Py_None);
            goto done;
        }
        PyTuple_SET_ITEM(names, i, Py_NewRef(name));
        PyObject *text = json_shown(PyTuple_GET_ITEM(pair, 1), name, limit, args[2], args[3]);
        if (text == NULL) {
            goto done;
        }
        PyTuple_SET_ITEM(texts, i, text);
    }
    joined = json_join(texts, names);
done:
    Py_DECREF(items);
    Py_XDECREF(names);
    Py_XDECREF(texts);
    return joined;
}

/* Digits of `value` into `out` (at least 24 bytes); their count. Two at a time: a line has a few 19-digit numbers. */
static int
unsigned_digits(unsigned long long value, char *out)
{
    static const char pairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
        "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
        "8081828384858687888990919293949596979899";
    char reversed[24];
    char *end = reversed + sizeof reversed, *next = end;
    while (value >= 100) {
        unsigned pair = (unsigned)(value % 100) * 2;
        value /= 100;
        next -= 2;
        next[0] = pairs[pair];
        next[1] = pairs[pair + 1];
    }
    if (value >= 10) {
        next -= 2;
        next[0] = pairs[value * 2];
        next[1] = pairs[value * 2 + 1];
    }
    else {
        *--next = (char)('0' + value);
    }
    int count = (int)(end - next);
    memcpy(out, next, (size_t)count);
    return count;
}

/* value's decimal text into `out` (at least 24 bytes); its length */
static int
signed_digits(long long value, char *out)
{
    if (value < 0) {
        out[0] = '-';
        return 1 + unsigned_digits(0ULL - (unsigned long long)value, out + 1);
    }
    return unsigned_digits((unsigned long long)value, out);
}

/* A number's decimal text into `out` (at least 24 bytes); its length, or -1 with an error set. */
static int
decimal_of(PyObject *number, char *out)
{
    if (!PyLong_Check(number)) {
        PyErr_SetString(PyExc_TypeError, "add_call: a call's ids and times are ints");
        return -1;
    }
    int overflow;
    long long value = PyLong_AsLongLongAndOverflow(number, &overflow);
    if (overflow > 0) {  /* a thread id above LLONG_MAX */
        unsigned long long big = PyLong_AsUnsignedLongLong(number);
        if (big == (unsigned long long)-1 && PyErr_Occurred()) {
            return -1;
        }
        return unsigned_digits(big, out);
    }
    if (overflow < 0 || (value == -1 && PyErr_Occurred())) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_OverflowError, "add_call: number out of range");
        }
        return -1;
    }
    return signed_digits(value, out);
}

#define APPEND(literal) (memcpy(out, literal, sizeof(literal) - 1), out += sizeof(literal) - 1)
#define APPEND_N(text, n) (memcpy(out, text, (size_t)(n)), out += (n))

/* The text of a value whose repr is short, plain ASCII and built in (int, bool, None, float;
 * at most 31 characters) into `out` (at least 32 bytes); its length, 0 when the value is not
 * such a value (its repr is then saferepr's business, in Python), or -1 with an error set. */
static int
plain_repr(PyObject *value, char *out)
{
    if (value == Py_None) {
        memcpy(out, "None", 4);
        return 4;
    }
    if (value == Py_True) {
        memcpy(out, "True", 4);
        return 4;
    }
    if (value == Py_False) {
        memcpy(out, "False", 5);
        return 5;
    }
    if (PyLong_CheckExact(value)) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (number == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (overflow != 0) {  /* beyond 64 bits: its repr, when that is short */
            PyObject *text = PyObject_Repr(value);
            if (text == NULL) {  /* too many digits to show (ValueError): saferepr says so */
                PyErr_Clear();
                return 0;
            }
            Py_ssize_t length = PyUnicode_GET_LENGTH(text);
            if (length > 31) {
                Py_DECREF(text);
                return 0;
            }
            memcpy(out, PyUnicode_DATA(text), (size_t)length);  /* digits: ASCII */
            Py_DECREF(text);
            return (int)length;
        }
        return signed_digits(number, out);
    }
    if (PyFloat_CheckExact(value)) {
        char *text = PyOS_double_to_string(PyFloat_AS_DOUBLE(value), 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
        if (text == NULL) {
            return -1;
        }
        size_t length = strlen(text);
        if (length > 31) {
            PyMem_Free(text);
            return 0;
        }
        memcpy(out, text, length);
        PyMem_Free(text);
        return (int)length;
    }
    return 0;
}

/* add_call(event, call, target, head, values, tail, limit[, secret, user_reprs]): add the line
 *   {"event":EVENT,"call_id":N,"target":TARGET,"thread_id":N,"thread_name":"NAME","pid":N,"ts_ns":N
 *    [,"request_id":N][,"duration_ns":N]HEAD VALUES TAIL
 * where TARGET is JSON text already, ts_ns is the call's start_ns for "start" and its end_ns
 * otherwise (which also adds duration_ns), HEAD and TAIL are JSON text (TAIL ends the line,
 * "}\n" included), and VALUES, unless `values` is None, are the values of that tuple as JSON
 * strings of their reprs, joined by commas. A plain value (int, bool, None, float, its repr at most
 * `limit` and 31 characters) is written here as it is. Any other is written here too when `secret`
 * and `user_reprs` are given: its safe repr (saferepr(value, limit, secret, user_reprs), as
 * json_reprs shows it); without them, nothing is added and False is returned (the caller renders
 * them itself). True when the line was added.
 * The fields are read from the call as attributes: any call record will do. */
static PyObject *
line_buffer_add_call(LineBufferObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if ((nargs != 7 && nargs != 9) || !PyUnicode_Check(args[0]) || !PyUnicode_Check(args[2])
        || !PyUnicode_Check(args[3]) || (args[4] != Py_None && !PyTuple_Check(args[4])) || !PyUnicode_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError, "add_call(event: str, call, target: str, head: str, values: tuple | None, "
                                         "tail: str, limit: int[, secret, user_reprs])");
        return NULL;
    }
    int renders = nargs == 9;
    if (renders && sr_fallback == NULL) {
        PyErr_SetString(PyExc_ValueError, "add_call: saferepr is not configured");
        return NULL;
    }
    if (str_call_id == NULL) {
        if ((str_call_id = PyUnicode_InternFromString("call_id")) == NULL
            || (str_thread_id = PyUnicode_InternFromString("thread_id")) == NULL
            || (str_thread_name = PyUnicode_InternFromString("thread_name")) == NULL
            || (str_pid = PyUnicode_InternFromString("pid")) == NULL
            || (str_start_ns = PyUnicode_InternFromString("start_ns")) == NULL
            || (str_end_ns = PyUnicode_InternFromString("end_ns")) == NULL
            || (str_request_id = PyUnicode_InternFromString("request_id")) == NULL
            || (str_duration_ns = PyUnicode_InternFromString("duration_ns")) == NULL) {
            return NULL;
        }
    }
    PyObject *event = args[0], *call = args[1], *target = args[2], *head = args[3], *values = args[4],
             *tail = args[5];
    Py_ssize_t limit = renders ? sr_limit_of(args[6]) : PyLong_AsSsize_t(args[6]);
    if (limit == -1 && (renders || PyErr_Occurred())) {
        if (renders) {
            PyErr_SetString(PyExc_ValueError, "add_call: the limit is not a small int");
        }
        return NULL;
    }
    /* the values first: one that is not plain leaves everything to the caller */
    Py_ssize_t n_values = values == Py_None ? 0 : PyTuple_GET_SIZE(values);
    char small[8][32];
    int small_n[8];
    char *shown = n_values <= 8 ? &small[0][0] : PyMem_RawMalloc((size_t)n_values * 32);
    int *shown_n = n_values <= 8 ? small_n : PyMem_RawMalloc((size_t)n_values * sizeof(int));
    if (shown == NULL || shown_n == NULL) {
        if (n_values > 8) {
            PyMem_RawFree(shown);
            PyMem_RawFree(shown_n);
        }
        return PyErr_NoMemory();
    }
    Py_ssize_t values_length = 0;
    PyObject *result = NULL;
    PyObject *fields[7] = {NULL};
    PyObject *encoded[4] = {NULL};
    PyObject *texts = NULL;  /* with `renders`: the safe reprs of the values that are not plain, by index */
    for (Py_ssize_t i = 0; i < n_values; i++) {
        PyObject *value = PyTuple_GET_ITEM(values, i);
        int length = plain_repr(value, shown + i * 32);
        if (length < 0) {
            goto done;
        }
        if (length > 0 && length <= limit) {
            shown_n[i] = length;
            values_length += length + 3;  /* quotes and a comma */
            continue;
        }
        if (!renders) {
            result = Py_NewRef(Py_False);
            goto done;
        }
        if (texts == NULL && (texts = PyList_New(n_values)) == NULL) {
            goto done;
        }
        PyObject *text = json_shown(value, NULL, limit, args[7], args[8]);
        if (text == NULL) {
            goto done;
        }
        PyList_SET_ITEM(texts, i, text);
        shown_n[i] = -1;
        values_length += json_quoted_length(text) + 1;
    }
    int start = PyUnicode_CompareWithASCIIString(event, "start") == 0;
    /* then every read that may run Python code (a thread switch may come there), then the line, in C alone */
    char call_id[24], thread_id[24], pid[24], ts[24], request_id[24], duration[24];
    int call_id_n, thread_id_n, pid_n, ts_n, request_id_n = 0, duration_n = 0;
    long long now_ns;
    if (Py_IS_TYPE(call, &CallType) && (start || ((CallObject *)call)->duration_ticks >= 0)) {
        /* the accelerator's own record: its numbers read as they are, not made into ints and back */
        CallObject *record = (CallObject *)call;
        if ((fields[2] = call_get_thread_name(record, NULL)) == NULL
            || (fields[5] = call_get_request_id(record, NULL)) == NULL) {
            goto done;
        }
        now_ns = start ? call_start_ns(record) : call_end_ns(record);
        call_id_n = signed_digits(record->call_id, call_id);
        thread_id_n = unsigned_digits(record->thread_id, thread_id);
        pid_n = signed_digits(record->pid, pid);
        ts_n = signed_digits(now_ns, ts);
        if (fields[5] != Py_None && (request_id_n = decimal_of(fields[5], request_id)) < 0) {
            goto done;
        }
        if (!start) {
            duration_n = signed_digits(ticks_span_ns(record->duration_ticks), duration);
        }
    }
    else {
        PyObject *names[7] = {str_call_id, str_thread_id, str_thread_name, str_pid,
                              start ? str_start_ns : str_end_ns, str_request_id, str_duration_ns};
        int count = start ? 6 : 7;
        for (int i = 0; i < count; i++) {
            fields[i] = PyObject_GetAttr(call, names[i]);
            if (fields[i] == NULL) {
                goto done;
            }
        }
        if ((call_id_n = decimal_of(fields[0], call_id)) < 0 || (thread_id_n = decimal_of(fields[1], thread_id)) < 0
            || (pid_n = decimal_of(fields[3], pid)) < 0 || (ts_n = decimal_of(fields[4], ts)) < 0
            || (fields[5] != Py_None && (request_id_n = decimal_of(fields[5], request_id)) < 0)
            || (!start && (duration_n = decimal_of(fields[6], duration)) < 0)) {
            goto done;
        }
        now_ns = PyLong_AsLongLong(fields[4]);
        if (now_ns == -1 && PyErr_Occurred()) {
            goto done;
        }
    }
    if (!PyUnicode_Check(fields[2])) {
        PyErr_SetString(PyExc_TypeError, "add_call: the thread's name is a str");
        goto done;
    }
    Py_ssize_t event_n, target_n, head_n, tail_n;
    const char *event_text = text_of(event, &event_n, &encoded[0]);
    const char *target_text = event_text ? text_of(target, &target_n, &encoded[1]) : NULL;
    const char *head_text = target_text ? text_of(head, &head_n, &encoded[2]) : NULL;
    const char *tail_text = head_text ? text_of(tail, &tail_n, &encoded[3]) : NULL;
    if (tail_text == NULL) {
        goto done;
    }
    Py_ssize_t name_n = json_quoted_length(fields[2]);
    Py_ssize_t length = sizeof("{\"event\":\"\",\"call_id\":,\"target\":,\"thread_id\":,\"thread_name\":,\"pid\":,\"ts_ns\":") - 1
                        + event_n + call_id_n + target_n + thread_id_n + name_n + pid_n + ts_n + head_n
                        + values_length + tail_n
                        + (fields[5] != Py_None ? (Py_ssize_t)sizeof(",\"request_id\":") - 1 + request_id_n : 0)
                        + (start ? 0 : (Py_ssize_t)sizeof(",\"duration_ns\":") - 1 + duration_n);
    if (line_buffer_reserve(self, length, now_ns) < 0) {
        goto done;
    }
    char *out = self->data + self->size;
    APPEND("{\"event\":\"");
    APPEND_N(event_text, event_n);
    APPEND("\",\"call_id\":");
    APPEND_N(call_id, call_id_n);
    APPEND(",\"target\":");
    APPEND_N(target_text, target_n);
    APPEND(",\"thread_id\":");
    APPEND_N(thread_id, thread_id_n);
    APPEND(",\"thread_name\":");
    out = json_quote_into(out, fields[2]);
    APPEND(",\"pid\":");
    APPEND_N(pid, pid_n);
    APPEND(",\"ts_ns\":");
    APPEND_N(ts, ts_n);
    if (fields[5] != Py_None) {
        APPEND(",\"request_id\":");
        APPEND_N(request_id, request_id_n);
    }
    if (!start) {
        APPEND(",\"duration_ns\":");
        APPEND_N(duration, duration_n);
    }
    APPEND_N(head_text, head_n);
    for (Py_ssize_t i = 0; i < n_values; i++) {
        if (i > 0) {
            APPEND(",");
        }
        if (shown_n[i] < 0) {
            out = json_quote_into(out, PyList_GET_ITEM(texts, i));
            continue;
        }
        APPEND("\"");
        APPEND_N(shown + i * 32, shown_n[i]);
        APPEND("\"");
    }
    APPEND_N(tail_text, tail_n);
    result = line_buffer_added(self, out - (self->data + self->size), now_ns);
    if (result != NULL) {
        Py_SETREF(result, Py_NewRef(Py_True));
    }
done:
    Py_XDECREF(texts);
    if (n_values > 8) {
        PyMem_RawFree(shown);
        PyMem_RawFree(shown_n);
    }
    for (int i = 0; i < 7; i++) {
        Py_XDECREF(fields[i]);
    }
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(encoded[i]);
    }
    return result;
}

#undef APPEND
#undef APPEND_N

static PyObject *
line_buffer_flush(LineBufferObject *self, PyObject *unused)
{
    if (line_buffer_write_out(self, wall_now_ns()) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* In a forked child: what waits is the parent's to write (the fork handler above has already let it go). */
static PyObject *
line_buffer_drop(LineBufferObject *self, PyObject *unused)
{
    pthread_mutex_lock(&self->mutex);
    self->size = 0;
    pthread_mutex_unlock(&self->mutex);
    Py_RETURN_NONE;
}

static PyObject *
line_buffer_get_pending(LineBufferObject *self, void *unused)
{
    return PyLong_FromSsize_t(self->size);
}

static PyMethodDef line_buffer_methods[] = {
    {"add", (PyCFunction)(void (*)(void))line_buffer_add, METH_FASTCALL, "add(line, now_ns): buffer a line"},
    {"add_call", (PyCFunction)(void (*)(void))line_buffer_add_call, METH_FASTCALL,
     "add_call(event, call, target, head, values, tail, limit): buffer a jsonl line of a call (see hookwise.writes)"},
    {"flush", (PyCFunction)line_buffer_flush, METH_NOARGS, "write what waits"},
    {"drop", (PyCFunction)line_buffer_drop, METH_NOARGS, "forget what waits (a forked child)"},
    {NULL}
};

static PyMemberDef line_buffer_members[] = {
    {"fd", T_INT, offsetof(LineBufferObject, fd), READONLY, NULL},
    {"limit", T_PYSSIZET, offsetof(LineBufferObject, limit), 0, "write when this many bytes wait (0: every line)"},
    {NULL}
};

static PyGetSetDef line_buffer_getset[] = {
    {"pending", (getter)line_buffer_get_pending, NULL, "bytes waiting to be written", NULL},
    {NULL}
};

static PyTypeObject LineBufferType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hookwise._speedups.LineBuffer",
    .tp_basicsize = sizeof(LineBufferObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Lines gathered and written together, with the GIL held (see hookwise.writes).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)line_buffer_init,
    .tp_dealloc = (destructor)line_buffer_dealloc,
    .tp_methods = line_buffer_methods,
    .tp_members = line_buffer_members,
    .tp_getset = line_buffer_getset,
};

/* read_at(fd, size, offset): up to `size` bytes of a regular file from `offset`, read with the GIL
 * held (os.pread lets go of it). The live chrome trace reads its recording's meta chunks inside the
 * program's calls: a regular file's read does not wait for anyone. */
static PyObject *
py_read_at(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "read_at(fd, size, offset)");
        return NULL;
    }
    long fd = PyLong_AsLong(args[0]);
    Py_ssize_t size = PyLong_AsSsize_t(args[1]);
    long long offset = PyLong_AsLongLong(args[2]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "read_at: a negative size");
        return NULL;
    }
    PyObject *data = PyBytes_FromStringAndSize(NULL, size);
    if (data == NULL) {
        return NULL;
    }
    Py_ssize_t done = 0;
    while (done < size) {
        ssize_t got = pread((int)fd, PyBytes_AS_STRING(data) + done, (size_t)(size - done), (off_t)(offset + done));
        if (got == 0) {
            break;
        }
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            Py_DECREF(data);
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        done += got;
    }
    if (done < size && _PyBytes_Resize(&data, done) < 0) {
        return NULL;
    }
    return data;
}

#include "_recvalues.h"
#include "_chrome.h"

static PyObject *
py_uses_tsc(PyObject *module, PyObject *unused)
{
    return PyBool_FromLong(use_tsc);
}

/* inside_a_statement(frame, name, statement_codes, library_files, is_library_file): hookwise.semantics'
 * test (see _callers.h) */
static PyObject *
py_inside_a_statement(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || (args[0] != Py_None && !PyFrame_Check(args[0])) || !PyDict_Check(args[2])
        || !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "inside_a_statement(frame, name, statement_codes: dict, library_files: dict, is_library_file)");
        return NULL;
    }
    int inside = inside_a_statement(args[0] == Py_None ? NULL : (PyFrameObject *)args[0], args[1], args[2], args[3],
                                    args[4]);
    return inside < 0 ? NULL : PyBool_FromLong(inside);
}

/* statement_skip(other, name, own_globals, statement_codes, library_files, is_library_file, caller_globals,
 * first_argument): the C wrapper's skip for a statement's site (loader.wrappers.statement_skip binds the
 * first six) */
static PyObject *
py_statement_skip(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 8 || !PyDict_Check(args[3]) || !PyDict_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "statement_skip(other, name, own_globals, statement_codes: dict, "
                                         "library_files: dict, is_library_file, caller_globals, first_argument)");
        return NULL;
    }
    int skipped = statement_skip(args[0], args[1], args[2], args[3], args[4], args[5], args[6], args[7]);
    return skipped < 0 ? NULL : PyBool_FromLong(skipped);
}

/* first_app_frame(frame, library_files, is_library_file, reach): the first frame from `frame` outwards
 * whose file is the application's, looking through at most `reach` frames; None if there is none so near.
 * hookwise.call.callers_of's walk for app_caller: library_files is its cache (filename -> bool) and
 * is_library_file(filename) decides a file it does not hold yet. In C because a call made deep inside a
 * library (a recursive decoder, a web framework's middleware) walks every library frame to the program's. */
static PyObject *
py_first_app_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || (args[0] != Py_None && !PyFrame_Check(args[0])) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "first_app_frame(frame, library_files: dict, is_library_file, reach: int)");
        return NULL;
    }
    Py_ssize_t reach = PyLong_AsSsize_t(args[3]);
    if (reach == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return first_app_frame(args[0] == Py_None ? NULL : (PyFrameObject *)args[0], args[1], args[2], reach);
}

static PyMethodDef module_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(**helpers): wire the C runtime to hookwise's Python helpers"},
    {"clock_ns", py_clock_ns, METH_NOARGS, "the monotonic clock the runtime uses, in ns"},
    {"wall_offset_ns", py_wall_offset_ns, METH_NOARGS, "wall clock minus clock_ns(), now"},
    {"dispatching", py_dispatching, METH_NOARGS, "the Call whose listeners run on this thread, or None"},
    {"set_quiet", py_set_quiet, METH_O, "mark this thread as running hookwise's own code; returns the old mark"},
    {"install_methods", install_methods, METH_O, "give a SiteBase subclass its own start/end/error descriptors"},
    {"read_at", (PyCFunction)(void (*)(void))py_read_at, METH_FASTCALL,
     "read_at(fd, size, offset): pread of a regular file, with the GIL held"},
    {"page_layout", (PyCFunction)(void (*)(void))py_page_layout, METH_FASTCALL,
     "page_layout(records, separator, at, page): the records laid out so that none crosses a page (listeners._output)"},
    {"write_whole", (PyCFunction)(void (*)(void))py_write_whole, METH_FASTCALL,
     "write_whole(fd, data, may_block=False): write all of data without letting other threads run meanwhile"},
    {"saferepr", (PyCFunction)(void (*)(void))py_saferepr, METH_FASTCALL | METH_KEYWORDS,
     "saferepr(value, limit=DEFAULT_LIMIT, secret=None, user_reprs=False): hookwise.saferepr.saferepr, in C"},
    {"saferepr_inner", (PyCFunction)(void (*)(void))py_saferepr_inner, METH_FASTCALL,
     "saferepr_inner(value, limit, depth, secret, user_reprs): hookwise.saferepr._repr, in C"},
    {"configure_saferepr", py_configure_saferepr, METH_VARARGS,
     "configure_saferepr(py_repr, py_saferepr, ways, record_fields, shown_type, default_limit): what the C saferepr hands over"},
    {"read_secret_verdicts", py_read_secret_verdicts, METH_O,
     "read_secret_verdicts(Render.is_secret): saferepr reads the verdicts that rule keeps instead of calling it"},
    {"inside_a_statement", (PyCFunction)(void (*)(void))py_inside_a_statement, METH_FASTCALL,
     "inside_a_statement(frame, name, statement_codes, library_files, is_library_file): hookwise.semantics' test"},
    {"statement_skip", (PyCFunction)(void (*)(void))py_statement_skip, METH_FASTCALL,
     "statement_skip(other, name, own_globals, statement_codes, library_files, is_library_file, caller_globals, "
     "first_argument): the C wrapper's skip for a statement's site"},
    {"first_app_frame", (PyCFunction)(void (*)(void))py_first_app_frame, METH_FASTCALL,
     "first_app_frame(frame, library_files, is_library_file, reach): app_caller's walk (hookwise.call.callers_of)"},
    {"json_reprs", (PyCFunction)(void (*)(void))py_json_reprs, METH_FASTCALL,
     "json_reprs(values, limit, secret, user_reprs, names=None): the values' safe reprs as JSON strings, joined"},
    {"json_dumps", py_json_dumps, METH_O, "json_dumps(value): hookwise.listeners._jsontext.dumps, in C"},
    {"json_kwargs", (PyCFunction)(void (*)(void))py_json_kwargs, METH_FASTCALL,
     "json_kwargs(mapping, limit, secret, user_reprs): its entries' safe reprs as JSON object members, joined"},
    {"chrome_events", (PyCFunction)(void (*)(void))py_chrome_events, METH_FASTCALL,
     "chrome_events(trace, data, pos, ts, track) -> (pos, ts): ProcessTrace.events' common events (see _chrome.h)"},
    {"read_value", (PyCFunction)(void (*)(void))py_read_value, METH_FASTCALL,
     "read_value(data, pos, shown, strings=None) -> (value, pos) or NotImplemented: recording.format.get_value"},
    {"uses_tsc", py_uses_tsc, METH_NOARGS, "whether calls are stamped with the TSC (see the timestamps section)"},
    {NULL}
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hookwise._speedups",
    .m_doc = "The hot path of hookwise's runtime, in C (see hookwise/runtime.py).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    choose_clock();
    json_extra_fill();
    if (PyType_Ready(&CallType) < 0 || PyType_Ready(&SiteType) < 0 || PyType_Ready(&WrapperType) < 0
        || PyType_Ready(&RecorderType) < 0 || PyType_Ready(&LineBufferType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&CallType);
    Py_INCREF(&SiteType);
    Py_INCREF(&WrapperType);
    Py_INCREF(&RecorderType);
    Py_INCREF(&LineBufferType);
    if (PyModule_AddObject(module, "Recorder", (PyObject *)&RecorderType) < 0
        || PyModule_AddObject(module, "Call", (PyObject *)&CallType) < 0
        || PyModule_AddObject(module, "SiteBase", (PyObject *)&SiteType) < 0
        || PyModule_AddObject(module, "Wrapper", (PyObject *)&WrapperType) < 0
        || PyModule_AddObject(module, "LineBuffer", (PyObject *)&LineBufferType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
