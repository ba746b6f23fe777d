/* The record walk of produce-time validation, in C: the one per-record loop on the produce path.
 *
 * walk(buffer, start, end, count) walks the `count` v2 records of buffer[start:end] the way
 * record_validation._walk does and returns (min timestamp delta, max timestamp delta, offset
 * faults, null keys). It is stricter, never looser: on anything unusual (a structure fault, a
 * varint longer than five bytes) it returns None and the Python walk decides and explains.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

/* Zigzag varint of at most five bytes from buf[*p] (below `end`); 0 on success. */
static int varint(const unsigned char *buf, Py_ssize_t end, Py_ssize_t *p, int64_t *out) {
    uint64_t raw = 0;
    Py_ssize_t i = *p;
    for (int shift = 0; shift < 35; shift += 7) {
        if (i >= end) {
            return -1;
        }
        unsigned char b = buf[i++];
        raw |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) {
            *p = i;
            *out = (int64_t)(raw >> 1) ^ -(int64_t)(raw & 1);
            return 0;
        }
    }
    return -1;
}

static PyObject *walk(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, end, count;
    if (!PyArg_ParseTuple(args, "y*nnn", &view, &start, &end, &count)) {
        return NULL;
    }
    const unsigned char *buf = (const unsigned char *)view.buf;
    int64_t min_delta = INT64_MAX, max_delta = -INT64_MAX;
    Py_ssize_t offset_faults = 0, null_keys = 0;
    Py_ssize_t p = start;
    int ok = start >= 0 && end <= view.len && start <= end && count > 0;
    int64_t v;
    for (Py_ssize_t i = 0; ok && i < count; i++) {
        if (varint(buf, end, &p, &v) || v <= 0 || v > end - p) {
            ok = 0;
            break;
        }
        Py_ssize_t rend = p + (Py_ssize_t)v;
        p += 1; /* attributes */
        if (p > rend || varint(buf, rend, &p, &v)) { /* timestamp delta */
            ok = 0;
            break;
        }
        if (v < min_delta) {
            min_delta = v;
        }
        if (v > max_delta) {
            max_delta = v;
        }
        if (varint(buf, rend, &p, &v)) { /* offset delta */
            ok = 0;
            break;
        }
        if (v != i) {
            offset_faults++;
        }
        if (varint(buf, rend, &p, &v)) { /* key length */
            ok = 0;
            break;
        }
        if (v < -1) {
            ok = 0;
            break;
        } else if (v < 0) {
            null_keys++;
        } else if (v > rend - p) {
            ok = 0;
            break;
        } else {
            p += (Py_ssize_t)v;
        }
        if (varint(buf, rend, &p, &v) || v < -1 || v > rend - p) { /* value length */
            ok = 0;
            break;
        }
        if (v > 0) {
            p += (Py_ssize_t)v;
        }
        int64_t headers;
        if (varint(buf, rend, &p, &headers) || headers < 0 || headers > rend - p) {
            ok = 0;
            break;
        }
        for (int64_t h = 0; ok && h < headers; h++) {
            if (varint(buf, rend, &p, &v) || v < 0 || v > rend - p) { /* header key */
                ok = 0;
                break;
            }
            p += (Py_ssize_t)v;
            if (varint(buf, rend, &p, &v) || v < -1 || v > rend - p) { /* header value */
                ok = 0;
                break;
            }
            if (v > 0) {
                p += (Py_ssize_t)v;
            }
        }
        if (!ok || p != rend) {
            ok = 0;
            break;
        }
    }
    PyBuffer_Release(&view);
    if (!ok || p != end) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(LLnn)", (long long)min_delta, (long long)max_delta, offset_faults,
                         null_keys);
}

static PyMethodDef methods[] = {
    {"walk", walk, METH_VARARGS, "Walk v2 records: (min delta, max delta, offset faults, null keys) or None."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_record_walk", NULL, -1, methods};

PyMODINIT_FUNC PyInit__record_walk(void) { return PyModule_Create(&module); }
