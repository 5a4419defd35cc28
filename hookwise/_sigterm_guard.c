/* hookwise._sigterm_guard: SIGTERM still ends the process, listeners or not.
 *
 * hookwise finishes its listeners on SIGTERM from a Python-level handler
 * (loader/install.py). CPython runs such a handler only in the main thread,
 * between bytecodes, or when a blocking call there is interrupted. A SIGTERM
 * that lands in the instant before the main thread blocks in a call that does
 * not look at signals again (waiting on a multiprocessing lock, a long loop in
 * a C extension) waits for that call to return, perhaps forever: a
 * multiprocessing pool worker told to terminate lives on, and the parent
 * waits for it. With the default action the process would have died at once.
 *
 * So this module sits in front of Python's C-level handler. Each SIGTERM also
 * wakes a watchdog thread; if the Python handler has not started within
 * `start_ms`, or has not ended the process within `finish_ms` of starting,
 * the watchdog restores the default action and ends the process by SIGTERM,
 * as the program would have ended without hookwise.
 *
 * The watchdog is a bare POSIX thread with every signal blocked: Python never
 * sees it, and it never takes a signal meant for the program's threads.
 * Threads do not survive fork; the child starts its own (after_fork_in_child).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#if defined(__linux__)
#define HAVE_GUARD 1
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct sigaction python_action;  /* Python's own C handler, which we call first */
static sem_t wake;                      /* posted by the handler: async-signal-safe */
static volatile sig_atomic_t handler_started;
static int installed;
static long start_ms = 200;
static long finish_ms = 5000;

static void
on_sigterm(int signum, siginfo_t *info, void *context)
{
    int saved_errno = errno;
    if (python_action.sa_flags & SA_SIGINFO) {
        python_action.sa_sigaction(signum, info, context);
    }
    else if (python_action.sa_handler != SIG_DFL && python_action.sa_handler != SIG_IGN) {
        python_action.sa_handler(signum);
    }
    sem_post(&wake);
    errno = saved_errno;
}

static void
die_by_sigterm(void)
{
    struct sigaction default_action;
    sigset_t only_term;

    memset(&default_action, 0, sizeof default_action);
    default_action.sa_handler = SIG_DFL;
    sigemptyset(&default_action.sa_mask);
    sigaction(SIGTERM, &default_action, NULL);
    sigemptyset(&only_term);
    sigaddset(&only_term, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &only_term, NULL);
    raise(SIGTERM);     /* to this thread: the default action ends the whole process */
    _exit(128 + SIGTERM);  /* not reached */
}

static void
sleep_ms(long ms)
{
    struct timespec left = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
    }
}

/* Wait up to `ms` for the Python handler to have started; 1 if it did. */
static int
wait_for_start(long ms)
{
    for (long waited = 0; waited < ms; waited += 10) {
        if (handler_started) {
            return 1;
        }
        sleep_ms(10);
    }
    return handler_started != 0;
}

static void *
watchdog(void *unused)
{
    (void)unused;
    for (;;) {
        if (sem_wait(&wake) != 0) {
            if (errno == EINTR) {
                continue;
            }
            return NULL;
        }
        if (wait_for_start(start_ms)) {
            sleep_ms(finish_ms);  /* the handler ends the process itself when it is done */
        }
        die_by_sigterm();
    }
    return NULL;
}

static int
start_watchdog(void)
{
    pthread_t thread;
    pthread_attr_t attributes;
    sigset_t all, previous;
    int failed;

    if (sem_init(&wake, 0, 0) != 0) {
        return errno;
    }
    handler_started = 0;
    pthread_attr_init(&attributes);
    pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attributes, 64 * 1024);
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &previous);  /* the new thread inherits this mask */
    failed = pthread_create(&thread, &attributes, watchdog, NULL);
    pthread_sigmask(SIG_SETMASK, &previous, NULL);
    pthread_attr_destroy(&attributes);
    return failed;
}

static PyObject *
install(PyObject *module, PyObject *args)
{
    struct sigaction ours;
    int failed;

    if (!PyArg_ParseTuple(args, "ll", &start_ms, &finish_ms)) {
        return NULL;
    }
    if (installed) {
        Py_RETURN_NONE;
    }
    if (sigaction(SIGTERM, NULL, &python_action) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    failed = start_watchdog();
    if (failed) {
        errno = failed;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    memset(&ours, 0, sizeof ours);
    ours.sa_sigaction = on_sigterm;
    ours.sa_mask = python_action.sa_mask;
    ours.sa_flags = (python_action.sa_flags & ~SA_RESETHAND) | SA_SIGINFO;
    if (sigaction(SIGTERM, &ours, NULL) != 0) {
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    installed = 1;
    Py_RETURN_NONE;
}

static PyObject *
mark_handler_started(PyObject *module, PyObject *unused)
{
    handler_started = 1;
    Py_RETURN_NONE;
}

static PyObject *
after_fork_in_child(PyObject *module, PyObject *unused)
{
    if (installed) {
        int failed = start_watchdog();
        if (failed) {
            errno = failed;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
    }
    Py_RETURN_NONE;
}

#else  /* no guard on this platform: install() says so */
#define HAVE_GUARD 0

static PyObject *
install(PyObject *module, PyObject *args)
{
    PyErr_SetString(PyExc_OSError, "the SIGTERM guard is implemented for Linux only");
    return NULL;
}

static PyObject *
mark_handler_started(PyObject *module, PyObject *unused)
{
    Py_RETURN_NONE;
}

static PyObject *
after_fork_in_child(PyObject *module, PyObject *unused)
{
    Py_RETURN_NONE;
}
#endif

static PyMethodDef guard_methods[] = {
    {"install", install, METH_VARARGS,
     "install(start_ms, finish_ms): wrap the current (Python) SIGTERM handler and start the watchdog"},
    {"mark_handler_started", mark_handler_started, METH_NOARGS,
     "the Python handler has begun: the watchdog now waits finish_ms"},
    {"after_fork_in_child", after_fork_in_child, METH_NOARGS, "start this process's own watchdog"},
    {NULL}
};

static struct PyModuleDef guard_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "hookwise._sigterm_guard",
    .m_doc = "A watchdog that makes SIGTERM end the process even when Python cannot run its handler.",
    .m_size = -1,
    .m_methods = guard_methods,
};

PyMODINIT_FUNC
PyInit__sigterm_guard(void)
{
    PyObject *module = PyModule_Create(&guard_module);
    if (module != NULL && PyModule_AddIntConstant(module, "AVAILABLE", HAVE_GUARD) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
