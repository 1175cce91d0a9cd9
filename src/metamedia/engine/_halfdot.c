/*
 * metamedia.engine._halfdot: inner products of gathered float16 rows with a float32
 * query, for exact search under a selective filter over the hnsw_fp16 index.
 *
 * Why C: numpy has no float16 arithmetic worth the name (its cast converts one value
 * at a time), so the numpy path (`float_rows.half_dot`) gathers the rows, widens them
 * to float32 by bit arithmetic in three whole-array passes and only then multiplies;
 * for a few dozen rows it is ~3x slower than multiplying float32 rows, and faiss has no
 * subset path over its fp16 storage. Here each row is read once, in place, converted
 * eight halves at a time (F16C) and multiply-added into float32 accumulators (FMA):
 * no gathered copy, no temporary.
 *
 * Only the buffer protocol is used (no numpy C API), so the module builds against any
 * numpy. The vector path is compiled with a per-function target attribute and chosen
 * at import by `__builtin_cpu_supports`, so one build runs on any x86-64 machine and a
 * portable scalar loop (exact conversion by bit manipulation) serves the rest.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define HALFDOT_X86 1
#include <immintrin.h>
#else
#define HALFDOT_X86 0
#endif

/* ---- scalar ------------------------------------------------------------------- */

/* One IEEE binary16 value as float32, exactly, without branches (so the compiler can
 * vectorise the scalar loop below): a normal half's exponent is rebiased (15 -> 127)
 * by adding 112 to it in place; infinities and NaNs get another 112 (31 -> 255) and
 * keep their mantissa; a subnormal half is its 10-bit mantissa times 2^-24, which an
 * int -> float conversion and a power-of-two multiply give exactly (both operands
 * and the result are normal float32s, so a flush-to-zero FPU mode cannot touch it). */
static inline float
half_to_float(uint16_t h)
{
    uint32_t body = h & 0x7FFFu;
    uint32_t exponent = body >> 10;
    uint32_t is_special = -(uint32_t)(exponent == 0x1Fu); /* all ones or zero */
    uint32_t is_subnormal = -(uint32_t)(exponent == 0);
    uint32_t normal = (body << 13) + (112u << 23) + (is_special & (112u << 23));
    float tiny = (float)(int32_t)body * 0x1p-24f;
    uint32_t subnormal;
    memcpy(&subnormal, &tiny, sizeof subnormal);
    uint32_t bits = (normal & ~is_subnormal) | (subnormal & is_subnormal);
    bits |= (uint32_t)(h & 0x8000u) << 16;
    float out;
    memcpy(&out, &bits, sizeof out);
    return out;
}

static void
dot_scalar(const uint16_t *rows, Py_ssize_t dim, const int64_t *positions, Py_ssize_t count,
           const float *query, float *out)
{
    for (Py_ssize_t i = 0; i < count; i++) {
        const uint16_t *row = rows + positions[i] * dim;
        /* Eight partial sums, like the vector path's lanes: a rounding error of the
         * same order, and lanes the compiler vectorises with the baseline SIMD
         * (SSE2 / NEON), which keeps this path about as fast as numpy's. */
        float acc[8] = {0};
        Py_ssize_t j = 0;
        for (; j + 8 <= dim; j += 8) {
            for (int k = 0; k < 8; k++) {
                acc[k] += half_to_float(row[j + k]) * query[j + k];
            }
        }
        for (; j < dim; j++) {
            acc[0] += half_to_float(row[j]) * query[j];
        }
        out[i] = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    }
}

/* ---- AVX2 + F16C + FMA ---------------------------------------------------------- */

#if HALFDOT_X86
#define HALFDOT_TARGET __attribute__((target("avx2,f16c,fma")))

HALFDOT_TARGET static inline float
hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

HALFDOT_TARGET static void
dot_avx2(const uint16_t *rows, Py_ssize_t dim, const int64_t *positions, Py_ssize_t count,
         const float *query, float *out)
{
    const Py_ssize_t row_bytes = dim * (Py_ssize_t)sizeof(uint16_t);
    const Py_ssize_t tail = dim % 8;
    const Py_ssize_t body = dim - tail;
    for (Py_ssize_t i = 0; i < count; i++) {
        const uint16_t *row = rows + positions[i] * dim;
        /* Rows are scattered, so no hardware prefetcher guesses the next one: ask for
         * it while this one is multiplied. */
        if (i + 1 < count) {
            const char *next = (const char *)(rows + positions[i + 1] * dim);
            for (Py_ssize_t b = 0; b < row_bytes; b += 64) {
                _mm_prefetch(next + b, _MM_HINT_T0);
            }
        }
        /* Four accumulators hide the FMA latency; their sum is taken lane by lane. */
        __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
        __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
        Py_ssize_t j = 0;
        for (; j + 32 <= body; j += 32) {
            a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + j))),
                                 _mm256_loadu_ps(query + j), a0);
            a1 = _mm256_fmadd_ps(
                _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + j + 8))),
                _mm256_loadu_ps(query + j + 8), a1);
            a2 = _mm256_fmadd_ps(
                _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + j + 16))),
                _mm256_loadu_ps(query + j + 16), a2);
            a3 = _mm256_fmadd_ps(
                _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + j + 24))),
                _mm256_loadu_ps(query + j + 24), a3);
        }
        for (; j < body; j += 8) {
            a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + j))),
                                 _mm256_loadu_ps(query + j), a0);
        }
        if (tail) {
            /* The last dim % 8 values through zero-padded copies: no read past the
             * row (the last row may end the mapping). */
            uint16_t h[8] = {0};
            float q[8] = {0};
            memcpy(h, row + body, (size_t)tail * sizeof(uint16_t));
            memcpy(q, query + body, (size_t)tail * sizeof(float));
            a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)),
                                 _mm256_loadu_ps(q), a1);
        }
        out[i] = hsum256(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    }
}
#endif

typedef void (*dot_fn)(const uint16_t *, Py_ssize_t, const int64_t *, Py_ssize_t,
                       const float *, float *);

static dot_fn dot_impl = dot_scalar;
static const char *dot_impl_name = "scalar";

/* ---- argument checks -------------------------------------------------------------- */

/* The buffer's format names `code` in native byte order (with an optional '@', '='
 * or, on a little-endian host, '<' prefix). */
static int
format_is(const Py_buffer *view, const char *codes)
{
    const char *f = view->format == NULL ? "B" : view->format;
    if (*f == '@' || *f == '=') {
        f++;
    }
    else if (*f == '<' || *f == '>' || *f == '!') {
#if PY_LITTLE_ENDIAN
        if (*f != '<') {
            return 0;
        }
#else
        if (*f == '<') {
            return 0;
        }
#endif
        f++;
    }
    return f[0] != '\0' && f[1] == '\0' && strchr(codes, f[0]) != NULL;
}

static int
get_buffer(PyObject *obj, Py_buffer *view, int flags, const char *name)
{
    if (PyObject_GetBuffer(obj, view, flags | PyBUF_FORMAT | PyBUF_C_CONTIGUOUS) < 0) {
        PyObject *type, *value, *trace;
        PyErr_Fetch(&type, &value, &trace);
        PyErr_Format(PyExc_TypeError,
                     "%s must be a C-contiguous buffer (e.g. a numpy array), got %.100s",
                     name, Py_TYPE(obj)->tp_name);
        Py_XDECREF(type);
        Py_XDECREF(value);
        Py_XDECREF(trace);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(half_dot_at_doc,
"half_dot_at(rows, positions, query, out, /) -> None\n"
"\n"
"out[i] = rows[positions[i]] . query for every i, accumulated in float32.\n"
"\n"
"rows: C-contiguous (n, d) float16; positions: C-contiguous 1-D int64, each in\n"
"[0, n); query: C-contiguous (d,) float32; out: writable C-contiguous\n"
"(len(positions),) float32. Raises TypeError, ValueError or IndexError on any\n"
"other input. The GIL is released while the products are computed.");

static PyObject *
run_dot(dot_fn impl, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError,
                     "half_dot_at() takes 4 positional arguments (rows, positions, query, "
                     "out), got %zd", nargs);
        return NULL;
    }
    Py_buffer rows = {0}, pos = {0}, query = {0}, out = {0};
    PyObject *result = NULL;

    if (get_buffer(args[0], &rows, PyBUF_SIMPLE, "rows") < 0) {
        goto done;
    }
    if (get_buffer(args[1], &pos, PyBUF_SIMPLE, "positions") < 0) {
        goto done;
    }
    if (get_buffer(args[2], &query, PyBUF_SIMPLE, "query") < 0) {
        goto done;
    }
    if (get_buffer(args[3], &out, PyBUF_WRITABLE, "out") < 0) {
        goto done;
    }

    if (rows.itemsize != 2 || !format_is(&rows, "e")) {
        PyErr_Format(PyExc_TypeError, "rows must be float16 (buffer format 'e'), got '%s'",
                     rows.format ? rows.format : "B");
        goto done;
    }
    if (rows.ndim != 2) {
        PyErr_Format(PyExc_ValueError, "rows must be 2-D (n, d), got %d dimension(s)",
                     rows.ndim);
        goto done;
    }
    if (pos.itemsize != 8 || !format_is(&pos, "ql")) {
        PyErr_Format(PyExc_TypeError, "positions must be int64, got buffer format '%s'",
                     pos.format ? pos.format : "B");
        goto done;
    }
    if (pos.ndim != 1) {
        PyErr_Format(PyExc_ValueError, "positions must be 1-D, got %d dimension(s)", pos.ndim);
        goto done;
    }
    if (query.itemsize != 4 || !format_is(&query, "f")) {
        PyErr_Format(PyExc_TypeError, "query must be float32, got buffer format '%s'",
                     query.format ? query.format : "B");
        goto done;
    }
    if (out.itemsize != 4 || !format_is(&out, "f")) {
        PyErr_Format(PyExc_TypeError, "out must be float32, got buffer format '%s'",
                     out.format ? out.format : "B");
        goto done;
    }
    const Py_ssize_t n = rows.shape[0], dim = rows.shape[1];
    const Py_ssize_t count = pos.shape[0];
    if (query.ndim != 1 || query.shape[0] != dim) {
        PyErr_Format(PyExc_ValueError, "query must have shape (%zd,) to match rows (%zd, %zd)",
                     dim, n, dim);
        goto done;
    }
    if (out.ndim != 1 || out.shape[0] != count) {
        PyErr_Format(PyExc_ValueError, "out must have shape (%zd,), one per position", count);
        goto done;
    }

    if ((uintptr_t)pos.buf % sizeof(int64_t) || (uintptr_t)query.buf % sizeof(float) ||
        (uintptr_t)out.buf % sizeof(float) || (uintptr_t)rows.buf % sizeof(uint16_t)) {
        PyErr_SetString(PyExc_ValueError,
                        "rows, positions, query and out must be aligned to their item size");
        goto done;
    }

    const int64_t *positions = (const int64_t *)pos.buf;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (positions[i] < 0 || positions[i] >= n) {
            PyErr_Format(PyExc_IndexError, "position %lld (at %zd) is out of range [0, %zd)",
                         (long long)positions[i], i, n);
            goto done;
        }
    }

    if (count > 0 && dim > 0) {
        Py_BEGIN_ALLOW_THREADS
        impl((const uint16_t *)rows.buf, dim, positions, count, (const float *)query.buf,
                 (float *)out.buf);
        Py_END_ALLOW_THREADS
    }
    else if (count > 0) {
        memset(out.buf, 0, (size_t)count * sizeof(float));
    }
    result = Py_NewRef(Py_None);

done:
    if (rows.obj) {
        PyBuffer_Release(&rows);
    }
    if (pos.obj) {
        PyBuffer_Release(&pos);
    }
    if (query.obj) {
        PyBuffer_Release(&query);
    }
    if (out.obj) {
        PyBuffer_Release(&out);
    }
    return result;
}

static PyObject *
half_dot_at(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return run_dot(dot_impl, args, nargs);
}

PyDoc_STRVAR(half_dot_at_scalar_doc,
"half_dot_at_scalar(rows, positions, query, out, /) -> None\n"
"\n"
"half_dot_at through the portable scalar loop whatever the CPU: lets the tests\n"
"check the path a machine without AVX2/F16C/FMA would take.");

static PyObject *
half_dot_at_scalar(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return run_dot(dot_scalar, args, nargs);
}

static PyMethodDef halfdot_methods[] = {
    {"half_dot_at", (PyCFunction)(void (*)(void))half_dot_at, METH_FASTCALL, half_dot_at_doc},
    {"half_dot_at_scalar", (PyCFunction)(void (*)(void))half_dot_at_scalar, METH_FASTCALL,
     half_dot_at_scalar_doc},
    {NULL, NULL, 0, NULL},
};

static int
halfdot_exec(PyObject *module)
{
#if HALFDOT_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") &&
        __builtin_cpu_supports("fma")) {
        dot_impl = dot_avx2;
        dot_impl_name = "avx2";
    }
#endif
    return PyModule_AddStringConstant(module, "IMPLEMENTATION", dot_impl_name);
}

static PyModuleDef_Slot halfdot_slots[] = {
    {Py_mod_exec, (void *)halfdot_exec},
    {0, NULL},
};

static struct PyModuleDef halfdot_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "metamedia.engine._halfdot",
    .m_doc = "Inner products of gathered float16 rows with a float32 query (AVX2/F16C/FMA "
             "when the CPU has them, else a portable scalar loop).",
    .m_size = 0,
    .m_methods = halfdot_methods,
    .m_slots = halfdot_slots,
};

PyMODINIT_FUNC
PyInit__halfdot(void)
{
    return PyModuleDef_Init(&halfdot_module);
}
