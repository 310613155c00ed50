// safetensors.h: reader for HF safetensors files (the oracle fixture, HF
// checkpoints). Format: uint64 little-endian header length N, N bytes of JSON
// {name: {"dtype": .., "shape": [..], "data_offsets": [begin, end]}, ...},
// then the raw data. Offsets are relative to the end of the header.
// Every structural problem is refused with the file name and what was wrong.
#pragma once
#include <ctype.h>
#include "utils.h"

typedef enum { ST_F32, ST_F16, ST_BF16, ST_I32, ST_I64 } StDtype;

typedef struct {
    char name[256];
    StDtype dtype;
    int ndim;
    size_t shape[8];
    size_t numel;
    size_t begin, end;  // byte offsets into data
} StTensor;

typedef struct {
    const char* path;
    char* file;          // the whole file
    const char* data;    // start of the tensor data
    size_t data_size;
    StTensor* tensors;
    int n_tensors;
} Safetensors;

static size_t st_dtype_size(StDtype t) { return (t == ST_F32 || t == ST_I32) ? 4 : (t == ST_I64 ? 8 : 2); }

// --- a JSON scanner for the safetensors header and HF's config files. It reads them
// as Python's json does on HF's side: escapes decoded (so "a\u002eb" and "a.b" are one
// key), and of a key given twice, the last (json_get); a missing comma, a trailing
// comma or a value that is not JSON is refused.

typedef struct {
    const char* start;
    const char* p;
    const char* end;
    const char* path;
} Json;

static void json_fail(Json* j, const char* what) {
    die("'%s': malformed JSON: %s at JSON byte %ld", j->path, what, (long)(j->p - j->start));
}

static void json_ws(Json* j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\t' || *j->p == '\r')) j->p++;
}

static void json_expect(Json* j, char c) {
    json_ws(j);
    if (j->p >= j->end || *j->p != c) {
        char msg[64];
        snprintf(msg, sizeof(msg), "expected '%c'", c);
        json_fail(j, msg);
    }
    j->p++;
}

static int json_peek(Json* j, char c) {
    json_ws(j);
    return j->p < j->end && *j->p == c;
}

static uint32_t json_hex4(Json* j) {
    uint32_t u = 0;
    for (int i = 0; i < 4; i++, j->p++) {
        if (j->p >= j->end || !isxdigit((unsigned char)*j->p)) json_fail(j, "expected 4 hex digits after \\u");
        char c = *j->p;
        u = u * 16 + (uint32_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
    }
    return u;
}

// a \u escape (j->p just after the u; a surrogate pair is one character) as UTF-8 in out; its length
static size_t json_utf8(Json* j, char* out) {
    uint32_t u = json_hex4(j);
    if (u >= 0xD800 && u < 0xDC00 && j->end - j->p >= 2 && j->p[0] == '\\' && j->p[1] == 'u') {
        j->p += 2;
        uint32_t low = json_hex4(j);
        if (low < 0xDC00 || low >= 0xE000) json_fail(j, "a \\u surrogate without its pair");
        u = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00);
    }
    if (u >= 0xD800 && u < 0xE000) json_fail(j, "a \\u surrogate without its pair");
    if (u == 0) json_fail(j, "a \\u0000 escape (a NUL would cut the string short)");
    static const unsigned char lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
    size_t n = u < 0x80 ? 1 : u < 0x800 ? 2 : u < 0x10000 ? 3 : 4;
    for (size_t i = n - 1; i > 0; i--, u >>= 6) out[i] = (char)(0x80 | (u & 0x3F));
    out[0] = (char)(lead[n] | u);
    return n;
}

// reads a string into out, escapes decoded; out NULL skips it
static void json_string(Json* j, char* out, size_t cap) {
    static const char escapes[] = "\"\\/bfnrt", escaped[] = "\"\\/\b\f\n\r\t";
    json_expect(j, '"');
    size_t n = 0;
    for (;;) {
        if (j->p >= j->end) json_fail(j, "unterminated string");
        char c[4] = {*j->p++};
        size_t len = 1;
        if (c[0] == '"') break;
        if ((unsigned char)c[0] < 0x20) json_fail(j, "a control character in a string");
        if (c[0] == '\\') {
            char e = j->p < j->end ? *j->p++ : 0;
            const char* k = e ? strchr(escapes, e) : NULL;
            if (e == 'u') len = json_utf8(j, c);
            else if (k) c[0] = escaped[k - escapes];
            else json_fail(j, "an unknown escape");
        }
        if (out == NULL) continue;
        if (n + len >= cap) json_fail(j, "string too long");
        memcpy(out + n, c, len);
        n += len;
    }
    if (out) out[n] = 0;
}

// the next member of an object whose '{' was read: its key into key (NULL: skipped) and
// the ':' after it, then 1; or the closing '}', then 0. index counts the members before
static int json_member(Json* j, char* key, size_t cap, int index) {
    if (json_peek(j, '}')) { j->p++; return 0; }
    if (index > 0) json_expect(j, ',');
    json_string(j, key, cap);
    json_expect(j, ':');
    return 1;
}

// the next element of an array whose '[' was read: 1; or the closing ']', then 0
static int json_item(Json* j, int index) {
    if (json_peek(j, ']')) { j->p++; return 0; }
    if (index > 0) json_expect(j, ',');
    return 1;
}

static size_t json_uint(Json* j) {
    json_ws(j);
    if (j->p >= j->end || *j->p < '0' || *j->p > '9') json_fail(j, "expected a non-negative integer");
    size_t v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        size_t d = (size_t)(*j->p++ - '0');
        if (v > (SIZE_MAX - d) / 10) json_fail(j, "integer overflow");
        v = v * 10 + d;
    }
    return v;
}

static int json_digits(Json* j) {
    const char* from = j->p;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') j->p++;
    return j->p > from;
}

// skips any JSON value; nesting deeper than JSON_MAX_DEPTH is refused rather than
// recursed into (a hostile header would overflow the stack)
#define JSON_MAX_DEPTH 64
static void json_skip(Json* j, int depth) {
    json_ws(j);
    if (j->p >= j->end) json_fail(j, "unexpected end");
    if (depth > JSON_MAX_DEPTH) json_fail(j, "values nested deeper than 64");
    char c = *j->p;
    if (c == '"') { json_string(j, NULL, 0); return; }
    if (c == '{' || c == '[') {
        j->p++;
        for (int i = 0; c == '{' ? json_member(j, NULL, 0, i) : json_item(j, i); i++) json_skip(j, depth + 1);
        return;
    }
    // Python's json also writes NaN and Infinity
    static const char* const words[] = {"true", "false", "null", "NaN", "Infinity", "-Infinity"};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t n = strlen(words[i]);
        if ((size_t)(j->end - j->p) >= n && memcmp(j->p, words[i], n) == 0) { j->p += n; return; }
    }
    if (*j->p == '-') j->p++;  // a number: -?digits(.digits)?([eE][+-]?digits)?
    if (!json_digits(j)) json_fail(j, "expected a value");
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (!json_digits(j)) json_fail(j, "expected digits after '.'");
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
        j->p++;
        if (j->p < j->end && (*j->p == '+' || *j->p == '-')) j->p++;
        if (!json_digits(j)) json_fail(j, "expected an exponent");
    }
}

// the value of member `key` of the object at text (NUL-terminated) and its length, or
// NULL. Of a key given twice the last wins, as in Python's json; nested objects are
// not searched. The whole object is scanned, so malformed JSON anywhere is refused.
static const char* json_get(const char* text, const char* key, size_t* len, const char* path) {
    Json j = {text, text, text + strlen(text), path};
    const char* found = NULL;
    size_t found_len = 0;
    char k[1024];
    json_expect(&j, '{');
    for (int i = 0; json_member(&j, k, sizeof(k), i); i++) {
        json_ws(&j);
        const char* v = j.p;
        json_skip(&j, 1);
        if (strcmp(k, key) == 0) { found = v; found_len = (size_t)(j.p - v); }
    }
    if (len) *len = found_len;
    return found;
}

static StDtype st_parse_dtype(Json* j, const char* s) {
    if (strcmp(s, "F32") == 0) return ST_F32;
    if (strcmp(s, "F16") == 0) return ST_F16;
    if (strcmp(s, "BF16") == 0) return ST_BF16;
    if (strcmp(s, "I32") == 0) return ST_I32;
    if (strcmp(s, "I64") == 0) return ST_I64;
    die("'%s': tensor dtype '%s' is not supported (F32, F16, BF16, I32, I64 are)", j->path, s);
    return ST_F32;
}

static void st_parse_tensor(Json* j, StTensor* t) {
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    char key[64];
    json_expect(j, '{');
    for (int i = 0; json_member(j, key, sizeof(key), i); i++) {
        if (strcmp(key, "dtype") == 0) {
            char s[16];
            json_string(j, s, sizeof(s));
            t->dtype = st_parse_dtype(j, s);
            have_dtype = 1;
        } else if (strcmp(key, "shape") == 0) {
            json_expect(j, '[');
            t->ndim = 0;
            t->numel = 1;
            for (int k = 0; json_item(j, k); k++) {
                if (t->ndim == 8) json_fail(j, "more than 8 dimensions");
                size_t d = json_uint(j);
                if (d && t->numel > SIZE_MAX / d) json_fail(j, "shape overflows");
                t->shape[t->ndim++] = d;
                t->numel *= d;
            }
            have_shape = 1;
        } else if (strcmp(key, "data_offsets") == 0) {
            json_expect(j, '[');
            t->begin = json_uint(j);
            json_expect(j, ',');
            t->end = json_uint(j);
            json_expect(j, ']');
            have_offsets = 1;
        } else {
            json_skip(j, 1);
        }
    }
    if (!have_dtype || !have_shape || !have_offsets) {
        die("'%s': tensor '%s' lacks dtype, shape or data_offsets", j->path, t->name);
    }
}

// tensors by name, one name's entries in the order the header gives them
static int st_by_name(const void* a, const void* b) {
    const StTensor *x = *(const StTensor* const*)a, *y = *(const StTensor* const*)b;
    int c = strcmp(x->name, y->name);
    return c ? c : (x > y) - (x < y);
}

// of a name the header gives twice, the last entry stays: Python's safetensors reads the
// header into a dict, where the last key wins
static void st_drop_duplicates(Safetensors* st) {
    int n = st->n_tensors, kept = 0;
    StTensor** order = (StTensor**)callocCheck((size_t)n, sizeof(StTensor*));
    char* dropped = (char*)callocCheck((size_t)n, 1);
    for (int i = 0; i < n; i++) order[i] = &st->tensors[i];
    qsort(order, (size_t)n, sizeof(StTensor*), st_by_name);
    for (int i = 0; i + 1 < n; i++) {
        if (strcmp(order[i]->name, order[i + 1]->name) == 0) dropped[order[i] - st->tensors] = 1;
    }
    for (int i = 0; i < n; i++) if (!dropped[i]) st->tensors[kept++] = st->tensors[i];
    st->n_tensors = kept;
    free(dropped);
    free(order);
}

static int st_by_offset(const void* a, const void* b) {
    const StTensor *x = *(const StTensor* const*)a, *y = *(const StTensor* const*)b;
    return x->begin != y->begin ? (x->begin > y->begin) - (x->begin < y->begin) : (x > y) - (x < y);
}

// no byte may belong to two tensors: one would be read with the other's weights
static void st_check_overlaps(const Safetensors* st) {
    int n = st->n_tensors;
    const StTensor** order = (const StTensor**)callocCheck((size_t)n, sizeof(StTensor*));
    for (int i = 0; i < n; i++) order[i] = &st->tensors[i];
    qsort(order, (size_t)n, sizeof(StTensor*), st_by_offset);
    const StTensor* reach = NULL;  // of the tensors that begin before, the one that ends last
    for (int i = 0; i < n; i++) {
        const StTensor* t = order[i];
        if (t->begin == t->end) continue;  // no bytes to share
        if (reach && t->begin < reach->end) {
            die("'%s': tensors '%s' and '%s' overlap (data_offsets [%zu, %zu] and [%zu, %zu]): each tensor needs bytes of its own",
                st->path, reach->name, t->name, reach->begin, reach->end, t->begin, t->end);
        }
        if (reach == NULL || t->end > reach->end) reach = t;
    }
    free(order);
}

// opens and validates path; dies with a clear message on any defect
static void st_open(Safetensors* st, const char* path) {
    size_t len = 0;
    st->path = path;
    st->file = read_file(path, &len);
    if (len < 8) die("'%s' is %zu bytes: too short to be a safetensors file (8-byte header length + JSON)", path, len);
    uint64_t hlen = 0;
    memcpy(&hlen, st->file, 8);
    if (hlen < 2 || hlen > len - 8) {
        die("'%s': header length %llu does not fit in the %zu-byte file: not a safetensors file, or truncated",
            path, (unsigned long long)hlen, len);
    }
    Json j = {st->file + 8, st->file + 8, st->file + 8 + hlen, path};
    st->data = st->file + 8 + hlen;
    st->data_size = len - 8 - hlen;
    int cap = 64;
    st->tensors = (StTensor*)mallocCheck(cap * sizeof(StTensor));
    st->n_tensors = 0;
    char name[256];
    json_expect(&j, '{');
    for (int i = 0; json_member(&j, name, sizeof(name), i); i++) {
        if (strcmp(name, "__metadata__") == 0) {
            json_skip(&j, 1);
        } else {
            if (st->n_tensors == cap) {
                cap *= 2;
                st->tensors = (StTensor*)realloc(st->tensors, cap * sizeof(StTensor));
                if (!st->tensors) die("out of memory reading '%s'", path);
            }
            StTensor* t = &st->tensors[st->n_tensors++];
            memset(t, 0, sizeof(*t));
            snprintf(t->name, sizeof(t->name), "%s", name);
            st_parse_tensor(&j, t);
            if (t->end < t->begin || t->end > st->data_size) {
                die("'%s': tensor '%s' data_offsets [%zu, %zu] lie outside the %zu data bytes: the file is truncated or corrupt",
                    path, name, t->begin, t->end, st->data_size);
            }
            if (t->numel > SIZE_MAX / st_dtype_size(t->dtype)) die("'%s': tensor '%s' has a shape whose byte size overflows", path, name);
            if (t->end - t->begin != t->numel * st_dtype_size(t->dtype)) {
                die("'%s': tensor '%s' has %zu bytes but its shape and dtype need %zu",
                    path, name, t->end - t->begin, t->numel * st_dtype_size(t->dtype));
            }
        }
    }
    st_drop_duplicates(st);
    st_check_overlaps(st);
}

static void st_close(Safetensors* st) {
    free(st->file);
    free(st->tensors);
    memset(st, 0, sizeof(*st));
}

static const StTensor* st_find(const Safetensors* st, const char* name) {
    for (int i = 0; i < st->n_tensors; i++) {
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    }
    return NULL;
}

// tensor `name`, which must hold exactly numel elements
static const StTensor* st_get(const Safetensors* st, const char* name, size_t numel) {
    const StTensor* t = st_find(st, name);
    if (t == NULL) die("'%s' has no tensor '%s'", st->path, name);
    if (t->numel != numel) die("'%s': tensor '%s' has %zu elements, expected %zu", st->path, name, t->numel, numel);
    return t;
}

// tensor `name` read for its shape: exactly ndim dimensions, each 1 .. 2^24
static const StTensor* st_shape(const Safetensors* st, const char* name, int ndim) {
    const StTensor* t = st_find(st, name);
    if (t == NULL) die("'%s' has no tensor '%s'", st->path, name);
    if (t->ndim != ndim) die("'%s': tensor '%s' has %d dimensions, expected %d", st->path, name, t->ndim, ndim);
    for (int i = 0; i < ndim; i++) {
        if (t->shape[i] < 1 || t->shape[i] > (1 << 24)) {
            die("'%s': tensor '%s' has dimension %d of size %zu, expected 1 .. 2^24", st->path, name, i, t->shape[i]);
        }
    }
    return t;
}

static float st_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) { bits = sign; }
        else {  // subnormal: renormalise
            exp = 127 - 15 + 1;
            while ((mant & 0x400) == 0) { mant <<= 1; exp--; }
            bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000 | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

// element i of t as a double (covers every dtype, ints exactly up to 2^53)
static double st_element(const Safetensors* st, const StTensor* t, size_t i) {
    const char* p = st->data + t->begin + i * st_dtype_size(t->dtype);
    switch (t->dtype) {
        case ST_F32: { float v; memcpy(&v, p, 4); return v; }
        case ST_F16: { uint16_t v; memcpy(&v, p, 2); return st_half_to_float(v); }
        case ST_BF16: { uint16_t v; memcpy(&v, p, 2); uint32_t b = (uint32_t)v << 16; float f; memcpy(&f, &b, 4); return f; }
        case ST_I32: { int32_t v; memcpy(&v, p, 4); return v; }
        case ST_I64: { int64_t v; memcpy(&v, p, 8); return (double)v; }
    }
    return 0;
}

// copies tensor `name` (any dtype, numel elements) into dst as float32
static const StTensor* st_read_f32(const Safetensors* st, const char* name, float* dst, size_t numel) {
    const StTensor* t = st_get(st, name, numel);
    for (size_t i = 0; i < numel; i++) dst[i] = (float)st_element(st, t, i);
    return t;
}

// copies the ids of tensor `name` (numel elements) into dst; each must lie in [lo, hi]:
// they index tables, so one out of range is refused here, where it is read
static void st_read_ids(const Safetensors* st, const char* name, int* dst, size_t numel, int lo, int hi) {
    const StTensor* t = st_get(st, name, numel);
    for (size_t i = 0; i < numel; i++) {
        double v = st_element(st, t, i);
        if (!(v >= lo && v <= hi)) die("'%s': %s[%zu] is %.17g, expected an id in %d..%d", st->path, name, i, v, lo, hi);
        dst[i] = (int)v;
    }
}
