/* hookwise._speedups.Recorder: the C writer of recordings (--listener record=PATH).
 *
 * Part of _speedups.c (included at its end, so that it reads the Call and the
 * clock directly); kept in a file of its own for size. The format is
 * specified in hookwise/recording/format.py; hookwise/recording/writer.py is
 * the pure-Python writer of the same format and the reference for what each
 * event holds. hookwise/recording/native.py is the Python side of this one:
 * it opens the file, writes the header and answers the questions C cannot
 * (a value's safe repr, a call's meaning, a thread's name), once per new
 * value kind, site, code object or string where it can.
 *
 * Each thread writes its events into an event chunk of its own, a shared
 * mapping (MAP_SHARED) of one region of the file; strings, sites and thread
 * names go to a meta chunk before the first event that names them. A record's
 * tag byte is stored last, so a process killed in the middle of a record
 * leaves a zero there, which ends the chunk for readers.
 *
 * Everything here runs with the GIL held and lets no other thread run
 * between the moment it takes a thread's chunk and the moment the record is
 * in it (no Python code runs there; the system calls that map a new chunk
 * keep the GIL). Python callbacks run before that, while the record is built
 * in a buffer of this call's own.
 *
 * Must never: raise into the program (an event that cannot be written is
 * counted as dropped), write from a forked child into its parent's mappings
 * (after_fork gives it a file of its own), or keep the program's objects
 * beyond the caches' strong references to code objects, types and sites. */

#include <frameobject.h>  /* 3.10: the frame struct (f_lasti, f_trace, f_globals) */
#include <sys/mman.h>
#include <stdint.h>

#define REC_HEADER_SIZE 4096
#define REC_CHUNK_HEADER 32
#define REC_CHUNK_EVENTS 1
#define REC_CHUNK_META 2
enum { R_STRING = 1, R_SITE = 2, R_THREAD = 3, R_START = 5, R_END = 6, R_ERROR = 7 };
enum { V_NONE, V_FALSE, V_TRUE, V_INT, V_FLOAT, V_STR, V_BYTES, V_TUPLE, V_SHOWN, V_REDACTED, V_DICT, V_OBJECT,
       V_CUT, V_BYTES_CUT, V_SEQ, V_MAP, V_STOP_KEY, V_STOP = 255 };
#define REC_MAX_TUPLE 16
#define REC_MAX_SLOTS 4   /* recorders alive at once in a process (each has a slot in the thread-local cache) */

/* ------------------------------------------------------------ a byte buffer */

typedef struct {
    unsigned char *data;
    size_t len, cap;
    int heap;    /* data was malloc'd (else it is the caller's stack buffer) */
    int failed;  /* out of memory: the record is dropped */
} rbuf;

static void
rbuf_init(rbuf *b, unsigned char *stack, size_t size)
{
    b->data = stack;
    b->len = 0;
    b->cap = size;
    b->heap = 0;
    b->failed = 0;
}

static void
rbuf_release(rbuf *b)
{
    if (b->heap) {
        PyMem_RawFree(b->data);
    }
    b->heap = 0;
}

static int
rbuf_room(rbuf *b, size_t more)
{
    if (b->failed) {
        return 0;
    }
    if (b->len + more <= b->cap) {
        return 1;
    }
    size_t cap = b->cap * 2;
    while (cap < b->len + more) {
        cap *= 2;
    }
    unsigned char *data = PyMem_RawMalloc(cap);
    if (data == NULL) {
        b->failed = 1;
        return 0;
    }
    memcpy(data, b->data, b->len);
    rbuf_release(b);
    b->data = data;
    b->cap = cap;
    b->heap = 1;
    return 1;
}

static inline void
put_byte(rbuf *b, unsigned char byte)
{
    if (b->len < b->cap || rbuf_room(b, 1)) {
        b->data[b->len++] = byte;
    }
}

static inline void
put_u(rbuf *b, unsigned long long number)
{
    if (b->len + 10 > b->cap && !rbuf_room(b, 10)) {
        return;
    }
    while (number > 0x7F) {
        b->data[b->len++] = (unsigned char)((number & 0x7F) | 0x80);
        number >>= 7;
    }
    b->data[b->len++] = (unsigned char)number;
}

static inline void
put_z(rbuf *b, long long number)
{
    put_u(b, number >= 0 ? ((unsigned long long)number << 1) : (((unsigned long long)(-(number + 1)) << 1) | 1));
}

static void
put_raw(rbuf *b, const void *data, size_t size)
{
    if (rbuf_room(b, size)) {
        memcpy(b->data + b->len, data, size);
        b->len += size;
    }
}

/* ------------------------------------------------- pointer-keyed tables */

/* Open addressing, keyed by an object's address; each entry holds a strong
 * reference to its key, so an address is never reused while it is a key. */
typedef struct {
    PyObject *key;
    long long a, b;  /* what the table maps the key to */
} ptr_entry;

typedef struct {
    ptr_entry *entries;
    size_t size, used;  /* size: a power of two */
} ptr_table;

#define PTR_TABLE_LIMIT (1 << 16)  /* entries: past it the table starts over (programs that make code) */

static inline size_t
ptr_hash(PyObject *key, size_t size)
{
    uintptr_t x = (uintptr_t)key;
    x ^= x >> 17;
    x *= (uintptr_t)0x9E3779B97F4A7C15ULL;
    return (size_t)(x >> 7) & (size - 1);
}

static ptr_entry *
ptr_find(ptr_table *t, PyObject *key)
{
    if (t->entries == NULL) {
        return NULL;
    }
    size_t i = ptr_hash(key, t->size);
    while (t->entries[i].key != NULL) {
        if (t->entries[i].key == key) {
            return &t->entries[i];
        }
        i = (i + 1) & (t->size - 1);
    }
    return NULL;
}

static void
ptr_clear(ptr_table *t)
{
    if (t->entries == NULL) {
        return;
    }
    for (size_t i = 0; i < t->size; i++) {
        Py_CLEAR(t->entries[i].key);
    }
    PyMem_Free(t->entries);
    t->entries = NULL;
    t->size = t->used = 0;
}

/* Map key to (a, b); returns 0, or -1 when out of memory (the caller recomputes next time). */
static int
ptr_put(ptr_table *t, PyObject *key, long long a, long long b)
{
    if (t->used >= PTR_TABLE_LIMIT) {
        ptr_clear(t);
    }
    if (t->entries == NULL || (t->used + 1) * 2 > t->size) {
        size_t size = t->size ? t->size * 2 : 64;
        ptr_entry *entries = PyMem_Calloc(size, sizeof(ptr_entry));
        if (entries == NULL) {
            return -1;
        }
        ptr_entry *old = t->entries;
        size_t old_size = t->size;
        t->entries = entries;
        t->size = size;
        for (size_t i = 0; i < old_size; i++) {
            if (old[i].key != NULL) {
                size_t j = ptr_hash(old[i].key, size);
                while (entries[j].key != NULL) {
                    j = (j + 1) & (size - 1);
                }
                entries[j] = old[i];
            }
        }
        PyMem_Free(old);
    }
    size_t i = ptr_hash(key, t->size);
    while (t->entries[i].key != NULL && t->entries[i].key != key) {
        i = (i + 1) & (t->size - 1);
    }
    if (t->entries[i].key == NULL) {
        t->entries[i].key = Py_NewRef(key);
        t->used++;
    }
    t->entries[i].a = a;
    t->entries[i].b = b;
    return 0;
}

static int
ptr_traverse(ptr_table *t, visitproc visit, void *arg)
{
    for (size_t i = 0; t->entries != NULL && i < t->size; i++) {
        Py_VISIT(t->entries[i].key);
    }
    return 0;
}

/* -------------------------------------------------------------- the type */

typedef struct {
    unsigned char *base;  /* the chunk's mapping, NULL when the thread has none */
    size_t pos;           /* where its next record goes */
    long long index;      /* the chunk's number in the file */
} rec_chunk;

typedef struct {
    unsigned long ident;  /* the thread (idents are reused: a new thread of a dead one's ident continues its chunk) */
    rec_chunk chunk;
    long long last_ts;    /* this thread's latest timestamp: its events are never stamped earlier */
    int named;            /* its THREAD record is written (for the thread that has this ident now) */
} rec_thread;

/* One site as this recorder writes it (built once, by the Python side's site_plan). */
typedef struct {
    long long id;
    PyObject *code;        /* the code object whose frame is the call's (site.code), or NULL */
    unsigned long long secret_mask;  /* bit i: value i's parameter has a secret name */
    int n_positional;      /* -1: a replaced builtin (values are args, kwargs) */
    int vararg_index;      /* index of *args among the values, -1 none */
    int kwarg_index;       /* index of **kwargs, -1 none */
    int first_half_built;  /* __init__: the first value is the object being built */
    int semantic;          /* calls have a meaning (hookwise.semantics) to ask the Python side for */
} site_plan;

typedef struct {
    PyObject_HEAD
    PyObject *hooks;        /* the Python side (hookwise.recording.native.Hooks) */
    int fd;
    int slot;               /* this recorder's slot in the thread-local cache */
    long pid;               /* the process writing; events of another (a forked child) are dropped */
    unsigned long generation;  /* changes at after_fork: thread-local caches of another are stale */
    size_t chunk_size;
    long long limit;        /* bytes, 0: none */
    int ring;
    Py_ssize_t repr_limit;
    int redact;             /* redaction by content is on: text with '=' or '://' is asked about */
    long long chunks;       /* allocated in the file */
    long long seq;
    long long *event_chunks;  /* ring: event chunk numbers, oldest first */
    size_t n_event_chunks, cap_event_chunks;
    unsigned char *held;      /* ring: chunk number -> held by a thread */
    size_t cap_held;
    rec_chunk meta;
    rec_thread **threads;     /* open addressing by ident; entries are never freed while open */
    size_t threads_size, threads_used;
    PyObject *strings;        /* dict: str -> id (at most REC_STRINGS_KEPT of them) */
    PyObject *secrets;        /* dict: a dict key -> whether it names a secret (at most REC_SECRETS_KEPT) */
    PyObject *verdicts;       /* dict: a str or bytes -> whether redaction by content changes it */
    long long n_strings;      /* ids given */
    ptr_table sites;          /* site -> index into plans */
    site_plan *plans;
    size_t n_plans, cap_plans;
    ptr_table codes;          /* code object -> (file id << 1 | library, function id) */
    ptr_table types;          /* type -> (1 + name id: shown as <name object at 0x...>, or 0: ask Python) */
    ptr_table lines;          /* code object -> (lasti, line) of its latest caller position */
    int full, closed;
    long long dropped;
    long long max_starts;   /* STARTs to record at most, -1: no bound (see recorder_start) */
    long long starts;       /* STARTs taken in (counted against max_starts) */
    long long skipped;      /* STARTs past max_starts: their calls are not in the recording */
    long long last_started; /* the largest call id whose START was taken in: ENDs above it are not */
} RecorderObject;

static PyTypeObject RecorderType;
static RecorderObject *recorder_slots[REC_MAX_SLOTS];
static unsigned long recorder_generations = 0;

/* The thread's entry of each recorder slot, cached: one look-up per event instead of a table probe. */
typedef struct {
    RecorderObject *owner;
    unsigned long generation;
    rec_thread *thread;
} rec_cache;
static _Thread_local rec_cache tls_recorders[REC_MAX_SLOTS];

static PyObject *str_site_plan, *str_shown, *str_redacts, *str_object_name, *str_half_built, *str_is_secret,
    *str_library,
    *str_thread_name, *str_meaning, *str_end_fields, *str_error_parts, *str_asyncio, *str_on_retire;

static int
recorder_intern_names(void)
{
    if (str_site_plan != NULL) {
        return 0;
    }
#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return -1
    INTERN(str_site_plan, "site_plan");
    INTERN(str_shown, "shown");
    INTERN(str_redacts, "redacts");
    INTERN(str_object_name, "object_name");
    INTERN(str_half_built, "half_built");
    INTERN(str_is_secret, "is_secret");
    INTERN(str_library, "library");
    INTERN(str_thread_name, "thread_name");
    INTERN(str_meaning, "meaning");
    INTERN(str_end_fields, "end_fields");
    INTERN(str_error_parts, "error_parts");
    INTERN(str_asyncio, "asyncio");
    INTERN(str_on_retire, "on_retire");
#undef INTERN
    return 0;
}

/* A Python callback of the hooks failed: report it (once per kind, by the runtime's
 * listener-failure path) and go on without it. */
static void
hooks_failed(RecorderObject *self, PyObject *name)
{
    PyObject *method = PyObject_GetAttr(self->hooks, name);
    if (method == NULL) {
        PyErr_Clear();
        return;
    }
    report_listener_failure(method);
    Py_DECREF(method);
}

/* ------------------------------------------------------------- the chunks */

static void
chunk_release(rec_chunk *chunk, size_t size)
{
    if (chunk->base != NULL) {
        munmap(chunk->base, size);
        chunk->base = NULL;
    }
}

static int
mark_held(RecorderObject *self, long long index, int held)
{
    if (!self->ring) {
        return 0;
    }
    if ((size_t)index >= self->cap_held) {
        size_t cap = self->cap_held ? self->cap_held : 64;
        while (cap <= (size_t)index) {
            cap *= 2;
        }
        unsigned char *bigger = PyMem_Realloc(self->held, cap);
        if (bigger == NULL) {
            return -1;
        }
        memset(bigger + self->cap_held, 0, cap - self->cap_held);
        self->held = bigger;
        self->cap_held = cap;
    }
    self->held[index] = (unsigned char)held;
    return 0;
}

/* A fresh chunk mapped into `chunk` (which holds none); 0, or -1 when the file
 * is full (or the system refused): then the recording stops. */
static int
chunk_new(RecorderObject *self, rec_chunk *chunk, int kind, unsigned long thread, long long base_ts)
{
    size_t size = self->chunk_size;
    long long index;
    int reused = 0;
    if (self->limit && REC_HEADER_SIZE + (self->chunks + 1) * (long long)size > self->limit) {
        if (!self->ring || kind != REC_CHUNK_EVENTS) {
            return -1;
        }
        /* the oldest event chunk that no thread holds */
        size_t i = 0;
        while (i < self->n_event_chunks && self->held != NULL && self->held[self->event_chunks[i]]) {
            i++;
        }
        if (i == self->n_event_chunks) {
            return -1;
        }
        index = self->event_chunks[i];
        memmove(self->event_chunks + i, self->event_chunks + i + 1, (self->n_event_chunks - i - 1) * sizeof(long long));
        self->n_event_chunks--;
        reused = 1;
    }
    else {
        index = self->chunks;
        if (ftruncate(self->fd, REC_HEADER_SIZE + (self->chunks + 1) * (long long)size) < 0) {
            return -1;
        }
        self->chunks++;
    }
    unsigned char *base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, self->fd,
                               REC_HEADER_SIZE + index * (long long)size);
    if (base == MAP_FAILED) {
        return -1;
    }
    if (reused) {
        memset(base, 0, size);  /* a reused chunk starts empty */
    }
    if (kind == REC_CHUNK_EVENTS) {
        if (self->n_event_chunks == self->cap_event_chunks) {
            size_t cap = self->cap_event_chunks ? self->cap_event_chunks * 2 : 64;
            long long *bigger = PyMem_Realloc(self->event_chunks, cap * sizeof(long long));
            if (bigger == NULL) {
                munmap(base, size);
                return -1;
            }
            self->event_chunks = bigger;
            self->cap_event_chunks = cap;
        }
        self->event_chunks[self->n_event_chunks++] = index;
        if (mark_held(self, index, 1) < 0) {
            munmap(base, size);
            return -1;
        }
    }
    self->seq++;
    /* magic, kind, 3 pad bytes, seq, thread, base_ts (format.CHUNK_HEADER) */
    memcpy(base, "HWCK", 4);
    base[4] = (unsigned char)kind;
    uint64_t seq = (uint64_t)self->seq, tid = (uint64_t)thread;
    int64_t ts = base_ts;
    memcpy(base + 8, &seq, 8);   /* little-endian hosts: x86-64, aarch64 */
    memcpy(base + 16, &tid, 8);
    memcpy(base + 24, &ts, 8);
    chunk->base = base;
    chunk->pos = REC_CHUNK_HEADER;
    chunk->index = index;
    return 0;
}

/* Copy `record` (its tag first) into `chunk`, tag last; 0 if it does not fit. */
static inline int
chunk_put(RecorderObject *self, rec_chunk *chunk, const unsigned char *record, size_t size)
{
    if (chunk->base == NULL || chunk->pos + size > self->chunk_size) {
        return 0;
    }
    memcpy(chunk->base + chunk->pos + 1, record + 1, size - 1);
    __atomic_store_n(chunk->base + chunk->pos, record[0], __ATOMIC_RELEASE);
    chunk->pos += size;
    return 1;
}

/* A meta record (strings, sites, thread names): 0, or -1 when the recording is full. */
static int
meta_put(RecorderObject *self, const unsigned char *record, size_t size)
{
    if (self->full) {
        return -1;
    }
    if (chunk_put(self, &self->meta, record, size)) {
        return 0;
    }
    chunk_release(&self->meta, self->chunk_size);
    if (REC_CHUNK_HEADER + size > self->chunk_size || chunk_new(self, &self->meta, REC_CHUNK_META, 0, 0) < 0
        || !chunk_put(self, &self->meta, record, size)) {
        self->full = 1;
        return -1;
    }
    return 0;
}

/* ------------------------------------------------------------ the strings */

/* Strings remembered at most: past it a new string gets a STRING record (and id) each time it is
 * written. The names of asyncio tasks ("Task-81234") are new for every task of a server: the
 * file grows with them, the writer's memory does not. */
#define REC_STRINGS_KEPT 65536
/* the library frames app_caller looks through at most (hookwise.call.APP_CALLER_REACH, which says why) */
#define REC_APP_CALLER_REACH 1000

/* The id of `text` (a str), writing its STRING record the first time; -1 on failure. */
static long long
string_id(RecorderObject *self, PyObject *text)
{
    PyObject *known = PyDict_GetItemWithError(self->strings, text);
    if (known != NULL) {
        return PyLong_AsLongLong(known);
    }
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    Py_ssize_t length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &length);
    PyObject *encoded = NULL;
    if (utf8 == NULL) {  /* lone surrogates: kept, as the Python writer keeps them */
        PyErr_Clear();
        encoded = PyUnicode_AsEncodedString(text, "utf-8", "surrogatepass");
        if (encoded == NULL) {
            PyErr_Clear();
            return -1;
        }
        utf8 = PyBytes_AS_STRING(encoded);
        length = PyBytes_GET_SIZE(encoded);
    }
    long long number = self->n_strings;
    unsigned char stack[256];
    rbuf record;
    rbuf_init(&record, stack, sizeof(stack));
    put_byte(&record, R_STRING);
    put_u(&record, (unsigned long long)number);
    put_u(&record, (unsigned long long)length);
    put_raw(&record, utf8, (size_t)length);
    Py_XDECREF(encoded);
    int status = record.failed ? -1 : meta_put(self, record.data, record.len);
    rbuf_release(&record);
    if (status < 0) {
        return -1;
    }
    self->n_strings++;
    if (PyDict_GET_SIZE(self->strings) >= REC_STRINGS_KEPT) {
        return number;
    }
    PyObject *value = PyLong_FromLongLong(number);
    if (value == NULL || PyDict_SetItem(self->strings, text, value) < 0) {
        Py_XDECREF(value);
        PyErr_Clear();
        return -1;
    }
    Py_DECREF(value);
    return number;
}

/* ------------------------------------------------------------- the sites */

/* The plan of `site`, asking the Python side the first time; NULL on failure. */
static site_plan *
plan_of(RecorderObject *self, PyObject *site)
{
    ptr_entry *known = ptr_find(&self->sites, site);
    if (known != NULL) {
        return &self->plans[known->a];
    }
    /* (target, module, qualname, kind, params, secret_mask, first_half_built, semantic, code) */
    PyObject *answer = PyObject_CallMethodOneArg(self->hooks, str_site_plan, site);
    if (answer == NULL) {
        hooks_failed(self, str_site_plan);
        return NULL;
    }
    site_plan plan = {0};
    PyObject *target, *module, *qualname, *kind, *params, *mask, *code;
    int half_built, semantic;
    if (!PyArg_ParseTuple(answer, "UUUUOOppO", &target, &module, &qualname, &kind, &params, &mask, &half_built,
                          &semantic, &code)) {
        Py_DECREF(answer);
        hooks_failed(self, str_site_plan);
        return NULL;
    }
    long long ids[4] = {string_id(self, target), string_id(self, module), string_id(self, qualname),
                        string_id(self, kind)};
    unsigned char stack[512];
    rbuf record;
    rbuf_init(&record, stack, sizeof(stack));
    put_byte(&record, R_SITE);
    plan.id = (long long)self->n_plans;
    put_u(&record, (unsigned long long)plan.id);
    int ok = ids[0] >= 0 && ids[1] >= 0 && ids[2] >= 0 && ids[3] >= 0;
    for (int i = 0; i < 4; i++) {
        put_u(&record, (unsigned long long)(ids[i] < 0 ? 0 : ids[i]));
    }
    plan.secret_mask = PyLong_AsUnsignedLongLongMask(mask);
    plan.first_half_built = half_built;
    plan.semantic = semantic;
    plan.vararg_index = plan.kwarg_index = -1;
    if (params == Py_None) {
        plan.n_positional = -1;
        put_u(&record, 0);
    }
    else {
        /* (positional, defaults, vararg, kwonly, kwarg, ...): format.py's SITE layout */
        PyObject *positional = PyTuple_GetItem(params, 0), *vararg = PyTuple_GetItem(params, 2);
        PyObject *kwonly = PyTuple_GetItem(params, 3), *kwarg = PyTuple_GetItem(params, 4);
        if (positional == NULL || vararg == NULL || kwonly == NULL || kwarg == NULL) {
            PyErr_Clear();
            ok = 0;
        }
        else {
            put_u(&record, 1);
            Py_ssize_t n = PySequence_Size(positional);
            plan.n_positional = (int)n;
            put_u(&record, (unsigned long long)n);
            for (Py_ssize_t i = 0; i < n; i++) {
                PyObject *name = PySequence_GetItem(positional, i);
                long long id = name != NULL && PyUnicode_Check(name) ? string_id(self, name) : -1;
                Py_XDECREF(name);
                ok = ok && id >= 0;
                put_u(&record, (unsigned long long)(id < 0 ? 0 : id));
            }
            int index = (int)n;
            if (vararg != Py_None) {
                long long id = string_id(self, vararg);
                ok = ok && id >= 0;
                put_u(&record, (unsigned long long)(id + 1));
                plan.vararg_index = index++;
            }
            else {
                put_u(&record, 0);
            }
            Py_ssize_t k = PySequence_Size(kwonly);
            put_u(&record, (unsigned long long)(k < 0 ? 0 : k));
            for (Py_ssize_t i = 0; i < k; i++) {
                PyObject *name = PySequence_GetItem(kwonly, i);
                long long id = name != NULL && PyUnicode_Check(name) ? string_id(self, name) : -1;
                Py_XDECREF(name);
                ok = ok && id >= 0;
                put_u(&record, (unsigned long long)(id < 0 ? 0 : id));
            }
            index += (int)(k < 0 ? 0 : k);
            if (kwarg != Py_None) {
                long long id = string_id(self, kwarg);
                ok = ok && id >= 0;
                put_u(&record, (unsigned long long)(id + 1));
                plan.kwarg_index = index;
            }
            else {
                put_u(&record, 0);
            }
            if (PyErr_Occurred()) {
                PyErr_Clear();
                ok = 0;
            }
        }
    }
    if (!ok || record.failed || meta_put(self, record.data, record.len) < 0) {
        rbuf_release(&record);
        Py_DECREF(answer);
        return NULL;
    }
    rbuf_release(&record);
    if (self->n_plans == self->cap_plans) {
        size_t cap = self->cap_plans ? self->cap_plans * 2 : 64;
        site_plan *bigger = PyMem_Realloc(self->plans, cap * sizeof(site_plan));
        if (bigger == NULL) {
            Py_DECREF(answer);
            return NULL;
        }
        self->plans = bigger;
        self->cap_plans = cap;
    }
    plan.code = code == Py_None ? NULL : Py_NewRef(code);
    self->plans[self->n_plans] = plan;
    Py_DECREF(answer);
    if (ptr_put(&self->sites, site, (long long)self->n_plans, 0) < 0) {
        Py_XDECREF(plan.code);
        return NULL;
    }
    self->n_plans++;
    return &self->plans[self->n_plans - 1];
}

/* ------------------------------------------------------------- the values */

static void put_value(RecorderObject *self, rbuf *out, PyObject *value);

/* [tag] len:u utf8 (no tag byte when tag < 0: the texts of an ERROR record) */
static void
put_text(rbuf *out, int tag, const char *data, Py_ssize_t length)
{
    if (tag >= 0) {
        put_byte(out, (unsigned char)tag);
    }
    put_u(out, (unsigned long long)length);
    put_raw(out, data, (size_t)length);
}

/* A str as UTF-8, surrogates kept; 0 or -1. */
static int
put_str(rbuf *out, int tag, PyObject *text)
{
    Py_ssize_t length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &length);
    if (utf8 != NULL) {
        put_text(out, tag, utf8, length);
        return 0;
    }
    PyErr_Clear();
    PyObject *encoded = PyUnicode_AsEncodedString(text, "utf-8", "surrogatepass");
    if (encoded == NULL) {
        PyErr_Clear();
        return -1;
    }
    put_text(out, tag, PyBytes_AS_STRING(encoded), PyBytes_GET_SIZE(encoded));
    Py_DECREF(encoded);
    return 0;
}

/* The value as the Python side shows it (its bounded, redacted safe repr). */
static void
put_shown(RecorderObject *self, rbuf *out, PyObject *value)
{
    PyObject *text = PyObject_CallMethodOneArg(self->hooks, str_shown, value);
    if (text == NULL || !PyUnicode_Check(text) || put_str(out, V_SHOWN, text) < 0) {
        if (text == NULL) {
            hooks_failed(self, str_shown);
        }
        put_text(out, V_SHOWN, "<?>", 3);
    }
    Py_XDECREF(text);
}

/* What is shown of a container or a long text depends on the run's repr_limit (hookwise.saferepr):
 * MAX_DEPTH and REDACTION_MARGIN are saferepr's _MAX_DEPTH and _REDACTION_MARGIN. */
#define REC_MAX_DEPTH 4
#define REC_REDACTION_MARGIN 256
#define REC_SECRETS_KEPT 10000
#define REC_VERDICTS_KEPT 4096  /* texts whose redaction verdict is remembered (hookwise.redaction's _SEEN_LIMIT) */
#define REC_VERDICT_TEXT 2048   /* ... if they are no longer than this (its _SEEN_TEXT) */

/* Whether redaction by content may change `value`'s text `data`: it holds '=' or '://' (the
 * Python side's quick test, hookwise.redaction.redact_text). */
static int
may_hold_secrets(const char *data, Py_ssize_t length)
{
    if (memchr(data, '=', (size_t)length) != NULL) {
        return 1;
    }
    const char *colon = data;
    const char *end = data + length;
    while ((colon = memchr(colon, ':', (size_t)(end - colon))) != NULL) {
        if (end - colon >= 3 && colon[1] == '/' && colon[2] == '/') {
            return 1;
        }
        colon++;
    }
    return 0;
}

/* 1 when redaction by content changes this text (the Python side decides, when it may): it is then
 * shown by the Python side, which redacts it. */
static int
redacted_by_content(RecorderObject *self, PyObject *value, const char *data, Py_ssize_t length)
{
    if (!self->redact || !may_hold_secrets(data, length)) {
        return 0;
    }
    /* a program shows the same statements, URLs and headers again and again: the verdicts on texts
     * of a bounded size are remembered (a bounded number of them: past it they start over) */
    int keep = (PyUnicode_CheckExact(value) || PyBytes_CheckExact(value)) && length <= REC_VERDICT_TEXT;
    if (keep) {
        PyObject *known = PyDict_GetItemWithError(self->verdicts, value);
        if (known != NULL) {
            return known == Py_True;
        }
        PyErr_Clear();
    }
    PyObject *answer = PyObject_CallMethodOneArg(self->hooks, str_redacts, value);
    if (answer == NULL) {
        hooks_failed(self, str_redacts);
        return 1;  /* unsure: shown through the Python side, which redacts */
    }
    int redacts = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    if (redacts < 0) {
        PyErr_Clear();
        return 1;
    }
    if (keep) {
        if (PyDict_GET_SIZE(self->verdicts) >= REC_VERDICTS_KEPT) {
            PyDict_Clear(self->verdicts);
        }
        if (PyDict_SetItem(self->verdicts, value, redacts ? Py_True : Py_False) < 0) {
            PyErr_Clear();
        }
    }
    return redacts;
}

/* Whether a dict key names a secret (Render.is_secret), remembered for REC_SECRETS_KEPT keys. */
static int
is_secret(RecorderObject *self, PyObject *name)
{
    if (!self->redact || !PyUnicode_Check(name)) {  /* only a str (or a str subclass) names a secret */
        return 0;
    }
    if (PyUnicode_CheckExact(name)) {
        PyObject *known = PyDict_GetItemWithError(self->secrets, name);
        if (known != NULL) {
            return known == Py_True;
        }
        PyErr_Clear();
    }
    PyObject *answer = PyObject_CallMethodOneArg(self->hooks, str_is_secret, name);
    if (answer == NULL) {
        hooks_failed(self, str_is_secret);
        return 1;  /* unsure: hidden */
    }
    int secret = PyObject_IsTrue(answer);
    Py_DECREF(answer);
    if (secret < 0) {
        PyErr_Clear();
        return 1;
    }
    if (PyUnicode_CheckExact(name) && PyDict_GET_SIZE(self->secrets) < REC_SECRETS_KEPT
        && PyDict_SetItem(self->secrets, name, secret ? Py_True : Py_False) < 0) {
        PyErr_Clear();
    }
    return secret;
}

/* How the safe repr shows values of a type (asked once per type): the first item of `types`. */
enum { WAY_PYTHON = 0, WAY_OBJECT = 1, WAY_REPR = 2 };

/* The type's entry: way | name id << 2 (its <name object at 0x...>), and the name a half-built self
 * is shown with + 1 (0: none); NULL when the Python side could not answer. */
static ptr_entry *
type_way(RecorderObject *self, PyObject *value)
{
    PyObject *kind = (PyObject *)Py_TYPE(value);
    ptr_entry *known = ptr_find(&self->types, kind);
    if (known != NULL) {
        return known;
    }
    /* (way: "object", "repr" or None; the name of <name object at 0x...> or None; a half-built self's name or None) */
    PyObject *answer = PyObject_CallMethodOneArg(self->hooks, str_object_name, value);
    if (answer == NULL || !PyTuple_Check(answer) || PyTuple_GET_SIZE(answer) != 3) {
        if (answer == NULL) {
            hooks_failed(self, str_object_name);
        }
        Py_XDECREF(answer);
        return NULL;
    }
    PyObject *way = PyTuple_GET_ITEM(answer, 0), *object = PyTuple_GET_ITEM(answer, 1),
             *half = PyTuple_GET_ITEM(answer, 2);
    long long code = WAY_PYTHON;
    long long object_id = PyUnicode_Check(object) ? string_id(self, object) : -1;
    if (PyUnicode_Check(way) && PyUnicode_CompareWithASCIIString(way, "object") == 0 && object_id >= 0) {
        code = WAY_OBJECT | (object_id << 2);
    }
    else if (PyUnicode_Check(way) && PyUnicode_CompareWithASCIIString(way, "repr") == 0) {
        code = WAY_REPR;
    }
    long long half_id = PyUnicode_Check(half) ? string_id(self, half) : -1;
    Py_DECREF(answer);
    if (ptr_put(&self->types, kind, code, half_id + 1) < 0) {
        return NULL;
    }
    return ptr_find(&self->types, kind);
}

static void
put_object_of(rbuf *out, long long name_id, PyObject *value)
{
    put_byte(out, V_OBJECT);
    put_u(out, (unsigned long long)name_id);
    put_u(out, (unsigned long long)(uintptr_t)value);
}

/* object_repr(value) (the self of an __init__ is half built: its own repr is never asked): its type's
 * name and its address, or the Python side's text when the name could not be read. */
static void
put_half_built(RecorderObject *self, rbuf *out, PyObject *value)
{
    ptr_entry *entry = type_way(self, value);
    if (entry != NULL && entry->b > 0) {
        put_object_of(out, entry->b - 1, value);
        return;
    }
    PyObject *text = PyObject_CallMethodOneArg(self->hooks, str_half_built, value);
    if (text == NULL || !PyUnicode_Check(text) || put_str(out, V_SHOWN, text) < 0) {
        if (text == NULL) {
            hooks_failed(self, str_half_built);
        }
        put_text(out, V_SHOWN, "<?>", 3);
    }
    Py_XDECREF(text);
}

/* A text the safe repr cuts (longer than repr_limit): its first repr_limit characters (V_CUT /
 * V_BYTES_CUT; shown as their repr and "..."), when redaction cannot change what is shown of it. */
static Py_ssize_t
put_cut(RecorderObject *self, rbuf *out, PyObject *value)
{
    Py_ssize_t limit = self->repr_limit;
    if (PyBytes_CheckExact(value)) {
        const char *data = PyBytes_AS_STRING(value);
        Py_ssize_t region = PyBytes_GET_SIZE(value) < limit + REC_REDACTION_MARGIN ? PyBytes_GET_SIZE(value)
                                                                                  : limit + REC_REDACTION_MARGIN;
        if (self->redact && may_hold_secrets(data, region)) {
            return -1;
        }
        put_text(out, V_BYTES_CUT, data, limit);
        return limit + 6;
    }
    PyObject *region = PyUnicode_Substring(value, 0, limit + REC_REDACTION_MARGIN);
    if (region == NULL) {
        PyErr_Clear();
        return -1;
    }
    Py_ssize_t length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(region, &length);
    if (utf8 == NULL || (self->redact && may_hold_secrets(utf8, length))) {
        PyErr_Clear();
        Py_DECREF(region);
        return -1;
    }
    PyObject *prefix = PyUnicode_Substring(region, 0, limit);
    Py_DECREF(region);
    if (prefix == NULL || put_str(out, V_CUT, prefix) < 0) {
        PyErr_Clear();
        Py_XDECREF(prefix);
        return -1;
    }
    Py_DECREF(prefix);
    return limit + 5;
}

static Py_ssize_t put_fast(RecorderObject *self, rbuf *out, PyObject *value, int depth, Py_ssize_t budget);

/* format.is_plain for a tuple: at most REC_MAX_TUPLE items, not nested deeper than two, each None, a
 * bool, an int of 64 bits, a float, a str or bytes within repr_limit, or such a tuple. */
static int
is_plain_tuple(RecorderObject *self, PyObject *value, int depth)
{
    Py_ssize_t n = PyTuple_GET_SIZE(value);
    if (depth >= 2 || n > REC_MAX_TUPLE) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(value, i);
        PyTypeObject *kind = Py_TYPE(item);
        if (item == Py_None || kind == &PyBool_Type || kind == &PyFloat_Type) {
            continue;
        }
        if (kind == &PyLong_Type) {
            int overflow;
            long long number = PyLong_AsLongLongAndOverflow(item, &overflow);
            if (overflow || (number == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                return 0;
            }
            continue;
        }
        if ((kind == &PyUnicode_Type && PyUnicode_GET_LENGTH(item) <= self->repr_limit)
            || (kind == &PyBytes_Type && PyBytes_GET_SIZE(item) <= self->repr_limit)
            || (kind == &PyTuple_Type && is_plain_tuple(self, item, depth + 1))) {
            continue;
        }
        return 0;
    }
    return 1;
}

/* Only the first repr_limit characters of what a value shows can be seen (the safe repr cuts the
 * whole there): `budget` is how many of a nested value's characters can still be seen, and a list,
 * tuple or dict stores items only until its own cut (the safe repr's _join stops once what it wrote
 * passes repr_limit) or until the rest could not be seen, whichever comes first. The size each item
 * reports is at most what it shows, so no item that is shown is left out; one more item (None) stands
 * for the rest, which the safe repr writes as "..." or which lies past the cut. A container reports
 * at most repr_limit + 1 (+ its brackets): past its own cut it shows more than that anyway. */
static Py_ssize_t
shown_size(RecorderObject *self, Py_ssize_t size)
{
    size = size > 0 ? size - 2 : 0;  /* `size` counts ", " after every item, as _join does: not after the last */
    return (size < self->repr_limit + 1 ? size : self->repr_limit + 1) + 2;
}

/* A list or tuple (kind 0, 1) as V_SEQ: its items as far as they can be seen (see above), then V_STOP. */
static Py_ssize_t
put_sequence(RecorderObject *self, rbuf *out, PyObject *items, int kind, int depth, Py_ssize_t budget)
{
    put_byte(out, V_SEQ);
    put_byte(out, (unsigned char)kind);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(items);
    if (depth >= REC_MAX_DEPTH) {
        if (n > 0) {
            put_byte(out, V_NONE);  /* shown as [...] */
        }
        put_byte(out, V_STOP);
        return n > 0 ? 5 : 2;
    }
    Py_ssize_t stop = budget < self->repr_limit ? budget : self->repr_limit;
    Py_ssize_t size = 0;
    /* the list is read anew at each item: a standard-library repr shown meanwhile may change it */
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(items); i++) {
        if (size > stop) {
            put_byte(out, V_NONE);  /* the rest */
            break;
        }
        PyObject *item = Py_NewRef(PySequence_Fast_GET_ITEM(items, i));
        Py_ssize_t left = budget - 1 - size;
        Py_ssize_t shown = put_fast(self, out, item, depth + 1, left > 1 ? left : 1);
        Py_DECREF(item);
        if (shown < 0) {
            return -1;
        }
        size += shown + 2;
    }
    put_byte(out, V_STOP);
    return shown_size(self, size);
}

/* A dict as V_MAP: key, value pairs as the safe repr shows them (a secret-named key's value is not
 * stored) as far as they can be seen (see above), then V_STOP. A WSGI environ is the Python side's to
 * show (only some of its keys are shown). */
static Py_ssize_t
put_mapping(RecorderObject *self, rbuf *out, PyObject *mapping, int depth, Py_ssize_t budget)
{
    if (PyDict_GetItemString(mapping, "wsgi.version") != NULL) {
        return -1;
    }
    put_byte(out, V_MAP);
    if (depth >= REC_MAX_DEPTH) {
        if (PyDict_GET_SIZE(mapping) > 0) {
            put_byte(out, V_NONE);  /* shown as {...}: a pair of None */
            put_byte(out, V_NONE);
        }
        put_byte(out, V_STOP);
        return PyDict_GET_SIZE(mapping) > 0 ? 5 : 2;
    }
    Py_ssize_t stop = budget < self->repr_limit ? budget : self->repr_limit;
    Py_ssize_t size = 0, position = 0;
    PyObject *key, *item;
    while (PyDict_Next(mapping, &position, &key, &item)) {
        if (size > stop) {
            /* one more pair stands for the rest: a key no stored key equals */
            put_byte(out, V_STOP_KEY);
            put_byte(out, V_NONE);
            break;
        }
        Py_INCREF(key);
        Py_INCREF(item);
        Py_ssize_t left = budget - 1 - size;
        Py_ssize_t key_shown = put_fast(self, out, key, depth + 1, left > 1 ? left : 1);
        Py_ssize_t item_shown = -1;
        if (key_shown >= 0) {
            if (is_secret(self, key)) {
                put_byte(out, V_REDACTED);
                item_shown = 5;
            }
            else {
                left -= key_shown + 2;
                item_shown = put_fast(self, out, item, depth + 1, left > 1 ? left : 1);
            }
        }
        Py_DECREF(key);
        Py_DECREF(item);
        if (item_shown < 0) {
            return -1;
        }
        size += key_shown + 2 + item_shown + 2;
    }
    put_byte(out, V_STOP);
    return shown_size(self, size);
}

/* A value stored so that a reader shows it as the safe repr does, without the Python side: as itself
 * (format.is_plain), as a cut text, a list, tuple or dict of such values, an object's type and address,
 * or the text of a repr that the safe repr calls itself (built-in and standard-library reprs). Returns
 * at most the length of what it shows (>= 1), or -1 when only the Python side can show it (what was
 * written then is to be taken back). */
static Py_ssize_t
put_fast(RecorderObject *self, rbuf *out, PyObject *value, int depth, Py_ssize_t budget)
{
    PyTypeObject *kind = Py_TYPE(value);
    if (value == Py_None) {
        put_byte(out, V_NONE);
        return 4;
    }
    if (value == Py_False || value == Py_True) {
        put_byte(out, value == Py_True ? V_TRUE : V_FALSE);
        return 4;
    }
    if (kind == &PyLong_Type) {
        int overflow;
        long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
        if (overflow || (number == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return -1;
        }
        put_byte(out, V_INT);
        put_z(out, number);
        return 1;
    }
    if (kind == &PyFloat_Type) {
        double number = PyFloat_AS_DOUBLE(value);
        put_byte(out, V_FLOAT);
        put_raw(out, &number, 8);
        return 3;
    }
    if (kind == &PyUnicode_Type) {
        Py_ssize_t characters = PyUnicode_GET_LENGTH(value);
        if (characters > self->repr_limit) {
            return put_cut(self, out, value);
        }
        Py_ssize_t length;
        const char *utf8 = PyUnicode_AsUTF8AndSize(value, &length);
        if (utf8 == NULL) {  /* lone surrogates */
            PyErr_Clear();
            if (self->redact || put_str(out, V_STR, value) < 0) {
                return -1;
            }
            return characters + 2;
        }
        if (redacted_by_content(self, value, utf8, length)) {
            return -1;
        }
        put_text(out, V_STR, utf8, length);
        return characters + 2;
    }
    if (kind == &PyBytes_Type) {
        Py_ssize_t length = PyBytes_GET_SIZE(value);
        if (length > self->repr_limit) {
            return put_cut(self, out, value);
        }
        if (redacted_by_content(self, value, PyBytes_AS_STRING(value), length)) {
            return -1;
        }
        put_text(out, V_BYTES, PyBytes_AS_STRING(value), length);
        return length + 3;
    }
    if (kind == &PyTuple_Type) {
        if (is_plain_tuple(self, value, depth)) {  /* stored as itself (format.is_plain) */
            size_t mark = out->len;
            Py_ssize_t n = PyTuple_GET_SIZE(value), size = 0;
            put_byte(out, V_TUPLE);
            put_u(out, (unsigned long long)n);
            for (Py_ssize_t i = 0; i < n; i++) {
                Py_ssize_t shown = put_fast(self, out, PyTuple_GET_ITEM(value, i), depth + 1, budget);
                if (shown < 0) {  /* a text redaction changes: the Python side shows the tuple */
                    out->len = mark;
                    return -1;
                }
                size += shown + 2;
            }
            return shown_size(self, size);
        }
        return put_sequence(self, out, value, 1, depth, budget);
    }
    if (kind == &PyList_Type) {
        return put_sequence(self, out, value, 0, depth, budget);
    }
    if (kind == &PyDict_Type) {
        return put_mapping(self, out, value, depth, budget);
    }
    ptr_entry *entry = type_way(self, value);
    if (entry == NULL) {
        return -1;
    }
    if ((entry->a & 3) == WAY_OBJECT) {
        put_object_of(out, entry->a >> 2, value);
        return 17;  /* at least "<a object at 0x0>" */
    }
    if ((entry->a & 3) == WAY_REPR) {
        /* a built-in or standard-library repr, which the safe repr calls as well: its text, up to what
         * can be shown (the safe repr cuts the whole at repr_limit) */
        PyObject *text = PyObject_Repr(value);
        if (text == NULL || !PyUnicode_Check(text)) {
            PyErr_Clear();
            Py_XDECREF(text);
            return -1;  /* the Python side says how the repr failed */
        }
        Py_ssize_t characters = PyUnicode_GET_LENGTH(text);
        if (characters > self->repr_limit + 3) {
            PyObject *shorter = PyUnicode_Substring(text, 0, self->repr_limit + 3);
            Py_DECREF(text);
            if (shorter == NULL) {
                PyErr_Clear();
                return -1;
            }
            text = shorter;
            characters = self->repr_limit + 3;
        }
        int status = put_str(out, V_SHOWN, text);
        Py_DECREF(text);
        return status < 0 ? -1 : (characters > 0 ? characters : 1);
    }
    return -1;
}

/* A value as every output shows it: stored so without Python where it can be (put_fast), else as
 * the Python side's text. */
static void
put_value(RecorderObject *self, rbuf *out, PyObject *value)
{
    size_t mark = out->len;
    if (put_fast(self, out, value, 0, self->repr_limit) < 0) {
        out->len = mark;
        out->failed = 0;
        put_shown(self, out, value);
    }
}

/* A tuple of values, each shown on its own (a builtin's positional arguments, *args). */
static void
put_tuple(RecorderObject *self, rbuf *out, PyObject *items)
{
    if (!PyTuple_Check(items)) {
        put_shown(self, out, items);
        return;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(items);
    put_byte(out, V_TUPLE);
    put_u(out, (unsigned long long)n);
    for (Py_ssize_t i = 0; i < n; i++) {
        put_value(self, out, PyTuple_GET_ITEM(items, i));
    }
}

/* A dict of keyword arguments: str(key) -> value, a secret key's value shown as *** (format's V_DICT). */
static void
put_dict(RecorderObject *self, rbuf *out, PyObject *mapping)
{
    if (!PyDict_CheckExact(mapping)) {
        put_shown(self, out, mapping);
        return;
    }
    /* a copy of the items: showing a value may run code (a standard-library repr) that changes the dict */
    PyObject *items = PyDict_Items(mapping);
    if (items == NULL) {
        PyErr_Clear();
        out->failed = 1;
        return;
    }
    Py_ssize_t n = PyList_GET_SIZE(items);
    put_byte(out, V_DICT);
    put_u(out, (unsigned long long)n);
    for (Py_ssize_t position = 0; position < n; position++) {
        PyObject *pair = PyList_GET_ITEM(items, position);
        PyObject *key = PyTuple_GET_ITEM(pair, 0), *item = PyTuple_GET_ITEM(pair, 1);
        PyObject *text = PyUnicode_CheckExact(key) ? Py_NewRef(key) : PyObject_Str(key);
        Py_ssize_t length = 0;
        const char *utf8 = text == NULL ? NULL : PyUnicode_AsUTF8AndSize(text, &length);
        if (utf8 == NULL) {
            PyErr_Clear();
            utf8 = "?";
            length = 1;
        }
        put_u(out, (unsigned long long)length);
        put_raw(out, utf8, (size_t)length);
        Py_XDECREF(text);
        if (is_secret(self, key)) {
            put_text(out, V_SHOWN, "***", 3);
        }
        else {
            put_value(self, out, item);
        }
    }
    Py_DECREF(items);
}

/* Fields (format.put_fields): a dict of str keys to None, an int, a str or a dict of str to str. */
static void
put_fields(RecorderObject *self, rbuf *out, PyObject *fields)
{
    if (fields == NULL || !PyDict_Check(fields)) {
        put_u(out, 0);
        return;
    }
    put_u(out, (unsigned long long)PyDict_GET_SIZE(fields));
    Py_ssize_t position = 0;
    PyObject *key, *value;
    while (PyDict_Next(fields, &position, &key, &value)) {
        long long id = PyUnicode_Check(key) ? string_id(self, key) : -1;
        if (id < 0) {
            out->failed = 1;
            return;
        }
        put_u(out, (unsigned long long)id);
        if (PyDict_Check(value)) {
            put_byte(out, V_DICT);
            put_u(out, (unsigned long long)PyDict_GET_SIZE(value));
            Py_ssize_t inner = 0;
            PyObject *name, *item;
            while (PyDict_Next(value, &inner, &name, &item)) {
                PyObject *text = PyObject_Str(name);
                if (text == NULL) {
                    PyErr_Clear();
                    out->failed = 1;
                    return;
                }
                Py_ssize_t length;
                const char *utf8 = PyUnicode_AsUTF8AndSize(text, &length);
                if (utf8 == NULL) {
                    PyErr_Clear();
                    Py_DECREF(text);
                    out->failed = 1;
                    return;
                }
                put_u(out, (unsigned long long)length);
                put_raw(out, utf8, (size_t)length);
                Py_DECREF(text);
                if (PyUnicode_Check(item)) {
                    if (put_str(out, V_STR, item) < 0) {
                        out->failed = 1;
                    }
                }
                else {
                    put_byte(out, V_NONE);
                }
            }
        }
        else if (PyUnicode_Check(value)) {
            if (put_str(out, V_STR, value) < 0) {
                out->failed = 1;
            }
        }
        else if (PyLong_CheckExact(value)) {
            int overflow;
            long long number = PyLong_AsLongLongAndOverflow(value, &overflow);
            if (overflow || (number == -1 && PyErr_Occurred())) {
                PyErr_Clear();
                put_byte(out, V_NONE);
            }
            else {
                put_byte(out, V_INT);
                put_z(out, number);
            }
        }
        else {
            put_byte(out, V_NONE);
        }
    }
}

/* ------------------------------------------------------------- the caller */

/* (file id << 1 | library, function id) of a code object, cached; 0 or -1. */
static int
code_info(RecorderObject *self, PyCodeObject *code, long long *file_id, int *library, long long *function_id)
{
    ptr_entry *known = ptr_find(&self->codes, (PyObject *)code);
    if (known == NULL) {
        PyObject *filename = code->co_filename;
#if PY_VERSION_HEX >= 0x030B0000
        PyObject *function = code->co_qualname;
#else
        PyObject *function = code->co_name;
#endif
        PyObject *answer = PyObject_CallMethodOneArg(self->hooks, str_library, filename);
        if (answer == NULL) {
            hooks_failed(self, str_library);
            return -1;
        }
        int is_library = PyObject_IsTrue(answer);
        Py_DECREF(answer);
        long long file = string_id(self, filename), name = string_id(self, function);
        if (is_library < 0 || file < 0 || name < 0) {
            PyErr_Clear();
            return -1;
        }
        ptr_put(&self->codes, (PyObject *)code, (file << 1) | is_library, name);
        *file_id = file;
        *library = is_library;
        *function_id = name;
        return 0;
    }
    *file_id = known->a >> 1;
    *library = (int)(known->a & 1);
    *function_id = known->b;
    return 0;
}

/* The line a frame is at; a caller's position repeats (a loop calling a hooked
 * function), so the last (lasti, line) of each code object is kept. */
static int
line_of(RecorderObject *self, PyFrameObject *frame, PyCodeObject *code)
{
#if PY_VERSION_HEX >= 0x030B0000
    long long lasti = PyFrame_GetLasti(frame);
#else
    long long lasti = frame->f_lasti;
    if (frame->f_trace != NULL) {  /* a tracer may have moved f_lineno */
        return PyFrame_GetLineNumber(frame);
    }
#endif
    ptr_entry *known = ptr_find(&self->lines, (PyObject *)code);
    if (known != NULL && known->a == lasti) {
        return (int)known->b;
    }
    int line = PyFrame_GetLineNumber(frame);
    ptr_put(&self->lines, (PyObject *)code, lasti, line);
    return line;
}

/* file+1, line, function+1 of a Caller(file, line, function) tuple a listener already read */
static int
put_known_caller(RecorderObject *self, rbuf *out, PyObject *caller, int file_offset)
{
    if (!PyTuple_Check(caller) || PyTuple_GET_SIZE(caller) != 3) {
        return -1;
    }
    PyObject *file = PyTuple_GET_ITEM(caller, 0), *line = PyTuple_GET_ITEM(caller, 1),
             *function = PyTuple_GET_ITEM(caller, 2);
    long long file_id = PyUnicode_Check(file) ? string_id(self, file) : -1;
    long long function_id = PyUnicode_Check(function) ? string_id(self, function) : -1;
    if (file_id < 0 || function_id < 0) {
        return -1;
    }
    long long number = PyLong_Check(line) ? PyLong_AsLongLong(line) : 0;
    if (number < 0) {
        PyErr_Clear();
        number = 0;
    }
    put_u(out, (unsigned long long)(file_id + file_offset));
    put_u(out, (unsigned long long)number);
    put_u(out, (unsigned long long)(function_id + 1));
    return 0;
}

/* caller and app_caller as the START record has them, read through the Call's own (Python) helper */
static int
put_callers_slowly(RecorderObject *self, rbuf *out, CallObject *call)
{
    PyObject *caller = call_get_caller(call, NULL);
    PyObject *app = caller == NULL ? NULL : call_get_app_caller(call, NULL);
    int status = 0;
    if (caller == NULL || app == NULL) {
        PyErr_Clear();
        status = -1;
    }
    else if (caller == Py_None) {
        put_u(out, 0);
        put_u(out, 0);
        put_u(out, 0);
    }
    else {
        status = put_known_caller(self, out, caller, 1);
    }
    if (status == 0) {
        if (app == Py_None) {
            put_u(out, 0);
        }
        else if (app == caller || PyObject_RichCompareBool(app, caller, Py_EQ) == 1) {
            put_u(out, 1);
        }
        else {
            PyErr_Clear();
            status = put_known_caller(self, out, app, 2);
        }
    }
    Py_XDECREF(caller);
    Py_XDECREF(app);
    return status;
}

/* file line function app... of the START record, from the frames (hookwise.call.callers_of, in C). */
static int
put_callers(RecorderObject *self, rbuf *out, CallObject *call, site_plan *plan)
{
    if (call->caller != NULL) {  /* a listener read it already: the same answer */
        return put_callers_slowly(self, out, call);
    }
    /* a rewritten function's own frame is the one running its code; a C wrapper has none: it kept its caller's */
    int failed = 0;
    PyFrameObject *frame = plan->code != NULL ? frame_calling(plan->code, NULL, &failed)
                                              : past_stand_ins((PyFrameObject *)Py_XNewRef(call->frame), &failed);
    if (failed) {
        return -1;
    }
    if (frame == NULL) {
        put_u(out, 0);
        put_u(out, 0);
        put_u(out, 0);
        put_u(out, 0);
        return 0;
    }
    PyCodeObject *code = PyFrame_GetCode(frame);
    long long file_id, function_id;
    int library;
    if (code_info(self, code, &file_id, &library, &function_id) < 0) {
        Py_DECREF(code);
        Py_DECREF(frame);
        return -1;
    }
    put_u(out, (unsigned long long)(file_id + 1));
    put_u(out, (unsigned long long)line_of(self, frame, code));
    put_u(out, (unsigned long long)(function_id + 1));
    Py_DECREF(code);
    if (!library) {
        Py_DECREF(frame);
        put_u(out, 1);  /* the application made the call itself */
        return 0;
    }
    /* the first frame outwards that is the application's, at most REC_APP_CALLER_REACH library frames out */
    PyFrameObject *back = PyFrame_GetBack(frame);
    Py_DECREF(frame);
    frame = back;
    for (int reach = 0; frame != NULL && reach < REC_APP_CALLER_REACH; reach++) {
        code = PyFrame_GetCode(frame);
        if (code_info(self, code, &file_id, &library, &function_id) < 0) {
            Py_DECREF(code);
            Py_DECREF(frame);
            return -1;
        }
        if (!library) {
            put_u(out, (unsigned long long)(file_id + 2));
            put_u(out, (unsigned long long)line_of(self, frame, code));
            put_u(out, (unsigned long long)(function_id + 1));
            Py_DECREF(code);
            Py_DECREF(frame);
            return 0;
        }
        Py_DECREF(code);
        back = PyFrame_GetBack(frame);
        Py_DECREF(frame);
        frame = back;
    }
    Py_XDECREF(frame);
    put_u(out, 0);
    return 0;
}

/* Whether asyncio is loaded (without it there is no task). A look-up in sys.modules costs more than
 * the rest of a START: it is skipped while sys.modules has as many entries as when asyncio was last
 * found missing (a program that imports nothing between two hooked calls imported no asyncio). */
static int
asyncio_loaded(void)
{
    static Py_ssize_t modules_when_missing = -1;
    PyObject *modules = PyImport_GetModuleDict();
    if (modules == NULL || !PyDict_Check(modules)) {
        return 0;
    }
    if (PyDict_GET_SIZE(modules) == modules_when_missing) {
        return 0;
    }
    PyObject *found = PyDict_GetItemWithError(modules, str_asyncio);
    if (found == NULL) {
        if (PyErr_Occurred()) {
            PyErr_Clear();
        }
        modules_when_missing = PyDict_GET_SIZE(modules);
        return 0;
    }
    return 1;
}

/* task: string id + 1, 0 outside a task; read only once asyncio is loaded */
static int
put_task(RecorderObject *self, rbuf *out, CallObject *call)
{
    if (call->task == NULL && !asyncio_loaded()) {
        put_u(out, 0);
        return 0;
    }
    PyObject *task = call_get_task(call, NULL);
    if (task == NULL) {
        PyErr_Clear();
        return -1;
    }
    long long id = 0;
    if (task != Py_None) {
        PyObject *text = PyObject_Str(task);
        id = text == NULL ? -1 : string_id(self, text);
        Py_XDECREF(text);
        if (id < 0) {
            PyErr_Clear();
            Py_DECREF(task);
            return -1;
        }
        id++;
    }
    Py_DECREF(task);
    put_u(out, (unsigned long long)id);
    return 0;
}

/* ------------------------------------------------------------- the events */

/* The call's start on its thread's program clock (Call.program_ns); with `ended`, its end: the start
 * plus duration_ns exactly, so that a converted output shows the live outputs' durations. */
static long long
program_ts(CallObject *call, int ended)
{
    long long start = call_program_ns(call);
    return ended ? start + ticks_span_ns(call->duration_ticks) : start;
}

/* A thread's chunk of events that is complete (it went on to its next, or the file is full), let go:
 * its file offset and, when the writer has an on_retire, a copy of its bytes (the live chrome trace
 * converts them, without reading the file: a read would let another thread run). */
typedef struct {
    long long offset;  /* -1: none */
    PyObject *data;
} retired_chunk;

static retired_chunk
retire(RecorderObject *self, rec_chunk *chunk)
{
    retired_chunk retired = {REC_HEADER_SIZE + chunk->index * (long long)self->chunk_size, NULL};
    PyObject *hook = PyObject_GetAttr((PyObject *)self, str_on_retire);
    if (hook == NULL) {
        PyErr_Clear();
    }
    else if (hook != Py_None) {
        retired.data = PyBytes_FromStringAndSize((const char *)chunk->base, (Py_ssize_t)chunk->pos);
        if (retired.data == NULL) {
            PyErr_Clear();
        }
    }
    Py_XDECREF(hook);
    mark_held(self, chunk->index, 0);
    chunk_release(chunk, self->chunk_size);
    return retired;
}

/* The writer's on_retire(offset, data) hears of a retired chunk now, after the event that filled it
 * is stored. */
static void
announce(RecorderObject *self, retired_chunk *retired)
{
    if (retired->offset < 0) {
        return;
    }
    PyObject *hook = PyObject_GetAttr((PyObject *)self, str_on_retire);
    if (hook == NULL) {
        PyErr_Clear();
    }
    else if (hook != Py_None && retired->data != NULL) {
        PyObject *answer = PyObject_CallFunction(hook, "LO", retired->offset, retired->data);
        if (answer == NULL) {
            report_listener_failure(hook);
        }
        Py_XDECREF(answer);
    }
    Py_XDECREF(hook);
    Py_CLEAR(retired->data);
    retired->offset = -1;
}

static rec_thread *
thread_entry(RecorderObject *self, unsigned long ident)
{
    rec_cache *cache = &tls_recorders[self->slot];
    if (cache->owner == self && cache->generation == self->generation) {
        return cache->thread;
    }
    if (self->threads == NULL || (self->threads_used + 1) * 2 > self->threads_size) {
        size_t size = self->threads_size ? self->threads_size * 2 : 16;
        rec_thread **table = PyMem_Calloc(size, sizeof(rec_thread *));
        if (table == NULL) {
            return NULL;
        }
        for (size_t i = 0; i < self->threads_size; i++) {
            if (self->threads[i] != NULL) {
                size_t j = ptr_hash((PyObject *)self->threads[i]->ident, size);
                while (table[j] != NULL) {
                    j = (j + 1) & (size - 1);
                }
                table[j] = self->threads[i];
            }
        }
        PyMem_Free(self->threads);
        self->threads = table;
        self->threads_size = size;
    }
    size_t i = ptr_hash((PyObject *)ident, self->threads_size);
    while (self->threads[i] != NULL && self->threads[i]->ident != ident) {
        i = (i + 1) & (self->threads_size - 1);
    }
    if (self->threads[i] == NULL) {
        rec_thread *entry = PyMem_Calloc(1, sizeof(rec_thread));
        if (entry == NULL) {
            return NULL;
        }
        entry->ident = ident;
        self->threads[i] = entry;
        self->threads_used++;
    }
    else {
        /* this thread has not written here, and a thread with its ident has: a new thread (idents
         * are reused), which gets a THREAD record and chunks of its own */
        self->threads[i]->named = 0;
    }
    cache->owner = self;
    cache->generation = self->generation;
    cache->thread = self->threads[i];
    return self->threads[i];
}

/* Name the thread in the meta chunk before its first event (its name as it is then): THREAD with the
 * seq of the chunk its events start in, a new one (a thread with the same ident before it keeps its
 * chunks and its name). `ts`: the first event's stamp. */
static int
name_thread(RecorderObject *self, rec_thread *thread, long long ts)
{
    retired_chunk retired = {-1, NULL};
    if (thread->chunk.base != NULL) {
        retired = retire(self, &thread->chunk);
    }
    if (ts < thread->last_ts) {
        ts = thread->last_ts;
    }
    if (chunk_new(self, &thread->chunk, REC_CHUNK_EVENTS, thread->ident, ts) < 0) {
        self->full = 1;
        announce(self, &retired);
        return -1;
    }
    thread->last_ts = ts;
    long long from_seq = self->seq;
    announce(self, &retired);
    PyObject *ident = PyLong_FromUnsignedLong(thread->ident);
    PyObject *name = ident == NULL ? NULL : PyObject_CallMethodOneArg(self->hooks, str_thread_name, ident);
    Py_XDECREF(ident);
    if (name == NULL) {
        hooks_failed(self, str_thread_name);
        return -1;
    }
    long long id = PyUnicode_Check(name) ? string_id(self, name) : -1;
    Py_DECREF(name);
    if (id < 0) {
        return -1;
    }
    unsigned char stack[32];
    rbuf record;
    rbuf_init(&record, stack, sizeof(stack));
    put_byte(&record, R_THREAD);
    put_u(&record, thread->ident);
    put_u(&record, (unsigned long long)id);
    put_u(&record, (unsigned long long)from_seq);
    if (meta_put(self, record.data, record.len) < 0) {
        return -1;
    }
    thread->named = 1;
    return 0;
}

/* Store a built event (its tag first, then the fields after dt) for this thread at `ts`. */
static void
store_event(RecorderObject *self, rbuf *body, long long ts)
{
    if (self->full || self->closed || current_pid != self->pid || body->failed) {
        self->dropped++;
        return;
    }
    unsigned long ident = PyThread_get_thread_ident();
    rec_thread *thread = thread_entry(self, ident);
    if (thread == NULL) {
        self->dropped++;
        return;
    }
    /* No clamp to the thread's latest stamp: a stamp may be a few ns before it (the tick rate is
     * calibrated again every second), and moving it would change a duration that the live outputs
     * show; dt is signed, and readers keep a call inside its parent. */
    retired_chunk retired = {-1, NULL};  /* the chunk this event filled, for on_retire */
    for (int attempt = 0; attempt < 2; attempt++) {
        rec_chunk *chunk = &thread->chunk;
        if (chunk->base != NULL) {
            /* tag, dt, then the body after its tag */
            unsigned char head[11];
            rbuf prefix;
            rbuf_init(&prefix, head, sizeof(head));
            put_byte(&prefix, body->data[0]);
            long long previous = thread->last_ts;
            put_z(&prefix, ts - previous);
            size_t size = prefix.len + body->len - 1;
            if (chunk->pos + size <= self->chunk_size) {
                unsigned char *at = chunk->base + chunk->pos;
                memcpy(at + 1, head + 1, prefix.len - 1);
                memcpy(at + prefix.len, body->data + 1, body->len - 1);
                __atomic_store_n(at, head[0], __ATOMIC_RELEASE);
                chunk->pos += size;
                thread->last_ts = ts;
                announce(self, &retired);
                return;
            }
            if (retired.offset < 0) {
                retired = retire(self, chunk);
            }
            else {
                mark_held(self, chunk->index, 0);  /* a record larger than a fresh chunk: it is dropped */
                chunk_release(chunk, self->chunk_size);
            }
        }
        if (attempt == 1 || chunk_new(self, chunk, REC_CHUNK_EVENTS, ident, ts) < 0) {
            if (attempt == 0) {
                self->full = 1;
            }
            break;
        }
        thread->last_ts = ts;  /* a new chunk's first delta starts from its base_ts */
    }
    self->dropped++;
    announce(self, &retired);
}

/* This thread's entry, named (see name_thread) before its first event: 0, or -1 (the event is dropped). */
static int
ready_thread(RecorderObject *self, long long ts)
{
    rec_thread *thread = thread_entry(self, PyThread_get_thread_ident());
    if (thread == NULL) {
        return -1;
    }
    if (!thread->named && name_thread(self, thread, ts) < 0) {
        return -1;
    }
    return 0;
}

/* start(call): the START record.
 *
 * With max_starts, the first max_starts STARTs are recorded and later ones skipped; the END or ERROR
 * of a call is recorded when its id is not above the last recorded START's (call ids grow as calls
 * start), so the calls started before the bound end in the recording and the later ones leave nothing.
 * (A call given its id just before the last recorded START but reported just after it leaves its END
 * alone: readers pass over an END whose START they did not see.) */
static PyObject *
recorder_start(RecorderObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 1 || Py_TYPE(args[0]) != &CallType) {
        PyErr_SetString(PyExc_TypeError, "start(call)");
        return NULL;
    }
    CallObject *call = (CallObject *)args[0];
    if (self->max_starts >= 0) {
        if (self->starts >= self->max_starts) {
            self->skipped++;
            Py_RETURN_NONE;
        }
        self->starts++;
        if (call->call_id > self->last_started) {
            self->last_started = call->call_id;
        }
    }
    if (self->full || self->closed || current_pid != self->pid || call->site == NULL) {
        self->dropped++;
        Py_RETURN_NONE;
    }
    site_plan *plan = plan_of(self, call->site);
    if (plan == NULL) {
        self->dropped++;
        Py_RETURN_NONE;
    }
    if (ready_thread(self, program_ts(call, 0)) < 0) {
        self->dropped++;
        Py_RETURN_NONE;
    }
    unsigned char stack[512];
    rbuf out;
    rbuf_init(&out, stack, sizeof(stack));
    put_byte(&out, R_START);
    put_u(&out, (unsigned long long)call->call_id);
    put_u(&out, (unsigned long long)plan->id);
    int ok = put_callers(self, &out, call, plan) == 0 && put_task(self, &out, call) == 0;
    if (ok) {
        PyObject *request_id = call_get_request_id(call, NULL);
        if (request_id == NULL) {
            PyErr_Clear();
            ok = 0;
        }
        else {
            long long number = request_id == Py_None ? -1 : PyLong_AsLongLong(request_id);
            Py_DECREF(request_id);
            put_u(&out, (unsigned long long)(number + 1));
        }
    }
    if (ok) {
        /* the values where the Call keeps them: no tuple made for them */
        PyObject *const *values = call->values != NULL ? &PyTuple_GET_ITEM(call->values, 0) : call->inline_values;
        Py_ssize_t n = call->values != NULL ? PyTuple_GET_SIZE(call->values) : call->n_inline;
        {
            put_u(&out, (unsigned long long)n);
            if (plan->n_positional < 0) {  /* a replaced builtin: (args, kwargs) */
                if (n == 2) {
                    put_tuple(self, &out, values[0]);
                    put_dict(self, &out, values[1]);
                }
                else {
                    ok = 0;
                }
            }
            else {
                for (Py_ssize_t i = 0; i < n; i++) {
                    PyObject *value = values[i];
                    if (i < 64 && (plan->secret_mask >> i) & 1) {
                        put_byte(&out, V_REDACTED);
                    }
                    else if (i == 0 && plan->first_half_built && plan->n_positional > 0) {
                        /* half built: shown as <module.Class object at 0x...>, its own repr never asked */
                        put_half_built(self, &out, value);
                    }
                    else if (i == plan->vararg_index) {
                        put_tuple(self, &out, value);
                    }
                    else if (i == plan->kwarg_index) {
                        put_dict(self, &out, value);
                    }
                    else {
                        put_value(self, &out, value);
                    }
                }
            }
        }
    }
    if (ok) {
        if (!plan->semantic) {
            put_u(&out, 0);
        }
        else {
            PyObject *meaning = PyObject_CallMethodOneArg(self->hooks, str_meaning, (PyObject *)call);
            if (meaning == NULL) {
                hooks_failed(self, str_meaning);
                put_u(&out, 0);
            }
            else if (PyTuple_Check(meaning) && PyTuple_GET_SIZE(meaning) == 2
                     && PyUnicode_Check(PyTuple_GET_ITEM(meaning, 0))) {
                long long id = string_id(self, PyTuple_GET_ITEM(meaning, 0));
                if (id < 0) {
                    ok = 0;
                }
                else {
                    put_u(&out, (unsigned long long)(id + 1));
                    put_fields(self, &out, PyTuple_GET_ITEM(meaning, 1));
                }
            }
            else {
                put_u(&out, 0);
            }
            Py_XDECREF(meaning);
        }
    }
    if (ok) {
        store_event(self, &out, program_ts(call, 0));
    }
    else {
        self->dropped++;
    }
    rbuf_release(&out);
    Py_RETURN_NONE;
}

/* The Call of an end or error event (args: call, outcome); NULL with an exception set for wrong
 * arguments, or without one when the recording takes no event now (counted as dropped) or none of
 * this call's (its START was skipped: see recorder_start). */
static CallObject *
outcome_call(RecorderObject *self, PyObject *const *args, Py_ssize_t nargs, const char *usage)
{
    if (nargs != 2 || Py_TYPE(args[0]) != &CallType) {
        PyErr_SetString(PyExc_TypeError, usage);
        return NULL;
    }
    CallObject *call = (CallObject *)args[0];
    if (self->max_starts >= 0 && call->call_id > self->last_started) {
        return NULL;  /* its START was skipped (see recorder_start): none of its events is recorded */
    }
    if (self->full || self->closed || current_pid != self->pid || call->site == NULL
        || ready_thread(self, program_ts(call, 1)) < 0) {
        self->dropped++;
        return NULL;
    }
    return call;
}

static PyObject *
recorder_end(RecorderObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    CallObject *call = outcome_call(self, args, nargs, "end(call, result)");
    if (call == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    site_plan *plan = plan_of(self, call->site);
    unsigned char stack[256];
    rbuf out;
    rbuf_init(&out, stack, sizeof(stack));
    put_byte(&out, R_END);
    put_u(&out, (unsigned long long)call->call_id);
    put_value(self, &out, args[1]);
    if (plan != NULL && plan->semantic) {
        PyObject *fields = PyObject_CallMethodObjArgs(self->hooks, str_end_fields, (PyObject *)call, args[1], NULL);
        if (fields == NULL) {
            hooks_failed(self, str_end_fields);
        }
        put_fields(self, &out, fields);
        Py_XDECREF(fields);
    }
    else {
        put_u(&out, 0);
    }
    store_event(self, &out, program_ts(call, 1));
    rbuf_release(&out);
    Py_RETURN_NONE;
}

static PyObject *
recorder_error(RecorderObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    CallObject *call = outcome_call(self, args, nargs, "error(call, exc)");
    if (call == NULL) {
        return PyErr_Occurred() ? NULL : Py_NewRef(Py_None);
    }
    /* (type name, shown, text, fields): the Python side renders an exception as the live outputs do */
    PyObject *parts = PyObject_CallMethodObjArgs(self->hooks, str_error_parts, (PyObject *)call, args[1], NULL);
    PyObject *type_name, *shown, *text, *fields;
    if (parts == NULL || !PyArg_ParseTuple(parts, "UUUO", &type_name, &shown, &text, &fields)) {
        hooks_failed(self, str_error_parts);
        Py_XDECREF(parts);
        self->dropped++;
        Py_RETURN_NONE;
    }
    unsigned char stack[512];
    rbuf out;
    rbuf_init(&out, stack, sizeof(stack));
    put_byte(&out, R_ERROR);
    put_u(&out, (unsigned long long)call->call_id);
    long long type_id = string_id(self, type_name);
    put_u(&out, (unsigned long long)(type_id < 0 ? 0 : type_id));
    if (type_id < 0 || put_str(&out, -1, shown) < 0 || put_str(&out, -1, text) < 0) {
        out.failed = 1;
    }
    put_fields(self, &out, fields == Py_None ? NULL : fields);
    store_event(self, &out, program_ts(call, 1));
    rbuf_release(&out);
    Py_DECREF(parts);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------ life of the writer */

static void
release_mappings(RecorderObject *self)
{
    for (size_t i = 0; self->threads != NULL && i < self->threads_size; i++) {
        if (self->threads[i] != NULL) {
            chunk_release(&self->threads[i]->chunk, self->chunk_size);
            PyMem_Free(self->threads[i]);
        }
    }
    PyMem_Free(self->threads);
    self->threads = NULL;
    self->threads_size = self->threads_used = 0;
    chunk_release(&self->meta, self->chunk_size);
}

/* Recorder(fd, chunk_size, limit, ring, repr_limit, redact, hooks[, max_starts]) */
static int
recorder_init(RecorderObject *self, PyObject *args, PyObject *kwds)
{
    int fd, ring, redact;
    Py_ssize_t chunk_size, repr_limit;
    long long limit, max_starts = -1;
    PyObject *hooks;
    if (!PyArg_ParseTuple(args, "inLpnpO|L:Recorder", &fd, &chunk_size, &limit, &ring, &repr_limit, &redact, &hooks,
                          &max_starts)) {
        return -1;
    }
    if (chunk_size < 4096 || chunk_size % 4096) {
        PyErr_SetString(PyExc_ValueError, "chunk_size: a multiple of 4096");
        return -1;
    }
    if (recorder_intern_names() < 0) {
        return -1;
    }
    int slot = -1;
    for (int i = 0; i < REC_MAX_SLOTS; i++) {
        if (recorder_slots[i] == NULL) {
            slot = i;
            break;
        }
    }
    if (slot < 0) {
        PyErr_SetString(PyExc_RuntimeError, "too many recordings in one process");
        return -1;
    }
    self->strings = PyDict_New();
    self->secrets = PyDict_New();
    self->verdicts = PyDict_New();
    if (self->strings == NULL || self->secrets == NULL || self->verdicts == NULL) {
        return -1;
    }
    recorder_slots[slot] = self;
    self->slot = slot;
    self->hooks = Py_NewRef(hooks);
    self->fd = fd;
    self->pid = current_pid;
    self->generation = ++recorder_generations;
    self->chunk_size = (size_t)chunk_size;
    self->limit = limit;
    self->ring = ring;
    self->repr_limit = repr_limit;
    self->redact = redact;
    self->max_starts = max_starts < 0 ? -1 : max_starts;
    return 0;
}

/* after_fork(fd): in a forked child, write to a file of its own (the parent's
 * mappings are the parent's: unmapping them here leaves the parent's alone). */
static PyObject *
recorder_after_fork(RecorderObject *self, PyObject *arg)
{
    int fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred()) {
        return NULL;
    }
    release_mappings(self);
    self->fd = fd;
    self->pid = current_pid;
    self->generation = ++recorder_generations;
    self->chunks = self->seq = 0;
    self->n_event_chunks = 0;
    if (self->held != NULL) {
        memset(self->held, 0, self->cap_held);
    }
    self->full = self->closed = 0;
    self->dropped = 0;
    /* the child records its own first max_starts calls; last_started stays, so the calls open on the
     * forking thread, started in the parent's file, end in this one */
    self->starts = self->skipped = 0;
    PyDict_Clear(self->strings);
    self->n_strings = 0;
    /* the sites, codes and types were written to the parent's file: write them again here */
    ptr_clear(&self->sites);
    for (size_t i = 0; i < self->n_plans; i++) {
        Py_CLEAR(self->plans[i].code);
    }
    self->n_plans = 0;
    ptr_clear(&self->codes);
    ptr_clear(&self->types);
    Py_RETURN_NONE;
}

/* close(): no more events; the mappings go (what they hold is in the file). */
static PyObject *
recorder_close(RecorderObject *self, PyObject *unused)
{
    if (current_pid == self->pid && !self->closed) {
        self->closed = 1;
        release_mappings(self);
    }
    Py_RETURN_NONE;
}

static int
recorder_traverse(RecorderObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->hooks);
    Py_VISIT(self->strings);
    Py_VISIT(self->secrets);
    Py_VISIT(self->verdicts);
    ptr_traverse(&self->sites, visit, arg);
    ptr_traverse(&self->codes, visit, arg);
    ptr_traverse(&self->types, visit, arg);
    ptr_traverse(&self->lines, visit, arg);
    for (size_t i = 0; i < self->n_plans; i++) {
        Py_VISIT(self->plans[i].code);
    }
    return 0;
}

static int
recorder_clear(RecorderObject *self)
{
    Py_CLEAR(self->hooks);
    Py_CLEAR(self->strings);
    Py_CLEAR(self->secrets);
    Py_CLEAR(self->verdicts);
    ptr_clear(&self->sites);
    ptr_clear(&self->codes);
    ptr_clear(&self->types);
    ptr_clear(&self->lines);
    for (size_t i = 0; i < self->n_plans; i++) {
        Py_CLEAR(self->plans[i].code);
    }
    self->n_plans = 0;
    return 0;
}

static void
recorder_dealloc(RecorderObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->slot >= 0 && self->slot < REC_MAX_SLOTS && recorder_slots[self->slot] == self) {
        recorder_slots[self->slot] = NULL;
    }
    if (current_pid == self->pid) {
        release_mappings(self);
    }
    recorder_clear(self);
    PyMem_Free(self->plans);
    PyMem_Free(self->event_chunks);
    PyMem_Free(self->held);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *recorder_get_full(RecorderObject *self, void *c) { return PyBool_FromLong(self->full); }

/* full = True stops the recording (the live chrome trace, at exit: what other threads do from then on
 * is not in the trace); it cannot be restarted */
static int
recorder_set_full(RecorderObject *self, PyObject *value, void *c)
{
    int full = value == NULL ? 0 : PyObject_IsTrue(value);
    if (full < 0) {
        return -1;
    }
    self->full = self->full || full;
    return 0;
}
static PyObject *recorder_get_dropped(RecorderObject *self, void *c) { return PyLong_FromLongLong(self->dropped); }
static PyObject *recorder_get_chunks(RecorderObject *self, void *c) { return PyLong_FromLongLong(self->chunks); }
static PyObject *recorder_get_skipped(RecorderObject *self, void *c) { return PyLong_FromLongLong(self->skipped); }
static PyObject *
recorder_get_max_starts(RecorderObject *self, void *c)
{
    if (self->max_starts < 0) {
        Py_RETURN_NONE;
    }
    return PyLong_FromLongLong(self->max_starts);
}

static PyMethodDef recorder_methods[] = {
    {"start", (PyCFunction)(void (*)(void))recorder_start, METH_FASTCALL, "start(call): a START record"},
    {"end", (PyCFunction)(void (*)(void))recorder_end, METH_FASTCALL, "end(call, result): an END record"},
    {"error", (PyCFunction)(void (*)(void))recorder_error, METH_FASTCALL, "error(call, exc): an ERROR record"},
    {"after_fork", (PyCFunction)recorder_after_fork, METH_O, "after_fork(fd): a forked child's own file"},
    {"close_file", (PyCFunction)recorder_close, METH_NOARGS, "no more events: unmap the chunks"},
    {NULL}
};

static PyGetSetDef recorder_getset[] = {
    {"full", (getter)recorder_get_full, (setter)recorder_set_full,
     "the recording stopped: the file (or memory) is full, or it was told to (full = True)", NULL},
    {"dropped", (getter)recorder_get_dropped, NULL, "events not recorded", NULL},
    {"chunks", (getter)recorder_get_chunks, NULL, "chunks allocated in the file", NULL},
    {"max_starts", (getter)recorder_get_max_starts, NULL, "STARTs recorded at most (None: no bound)", NULL},
    {"skipped", (getter)recorder_get_skipped, NULL,
     "calls not recorded because max_starts STARTs were (none of their events is)", NULL},
    {NULL}
};

static PyTypeObject RecorderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hookwise._speedups.Recorder",
    .tp_doc = "Recorder(fd, chunk_size, limit, ring, repr_limit, redact, hooks[, max_starts]): the C writer of\n"
              "recordings (hookwise/recording/format.py); hooks answers what C cannot (hookwise/recording/native.py).",
    .tp_basicsize = sizeof(RecorderObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)recorder_init,
    .tp_dealloc = (destructor)recorder_dealloc,
    .tp_traverse = (traverseproc)recorder_traverse,
    .tp_clear = (inquiry)recorder_clear,
    .tp_methods = recorder_methods,
    .tp_getset = recorder_getset,
};
