// binfile.h: the one container every binary file of the project uses
// (checkpoints, tokenizers). Layout:
//   int32 header[256]: [0] magic, [1] version, [2] kind, [3] payload bytes
//   (low 32 bits), [4] payload bytes (high 32 bits), [5] FNV-1a checksum of the
//   header (with [5] read as 0) and the payload, [6..] the kind's own dimensions
//   (HEADER_DIMS of them); then the payload (little-endian float32 / int32
//   tensors in a fixed order).
// A file is read whole and verified before any field is used: nothing is half-loaded.
// The checksum catches damage, not forgery: every loader also range-checks the
// dimensions it reads (a crafted file can always recompute the checksum).
#pragma once
#include "utils.h"

#define BIN_MAGIC 20261123  // the project's birthday
// 2: the training state holds the best epoch; 3: and the batch, AdamW settings, train seconds;
// 4: the checksum covers the header too (3 left the dimensions unguarded). `slmrec upgrade` converts 3.
#define BIN_VERSION 4
#define HEADER_INTS 256
#define HEADER_DIMS (HEADER_INTS - 6)

enum BinKind { KIND_TOKENIZER = 1, KIND_SASREC = 2, KIND_E4SREC = 3, KIND_STUDENT = 4, KIND_DLLM2REC = 5, KIND_SIGNALS = 6, KIND_LLAMA = 7 };

static const char* bin_kind_name(int kind) {
    switch (kind) {
        case KIND_TOKENIZER: return "tokenizer";
        case KIND_SASREC: return "sasrec";
        case KIND_E4SREC: return "e4srec";
        case KIND_STUDENT: return "slmrec-student";
        case KIND_DLLM2REC: return "dllm2rec student";
        case KIND_SIGNALS: return "teacher signals";
        case KIND_LLAMA: return "llama base";
        default: return "unknown";
    }
}

// the article before a kind's name: "an e4srec", "a sasrec"
static const char* a_or_an(const char* word) { return word[0] && strchr("aeiou", word[0]) ? "an" : "a"; }

#define FNV_START 2166136261u
static uint32_t fnv1a(uint32_t h, const void* data, size_t n) {
    const unsigned char* p = (const unsigned char*)data;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 16777619u; }
    return h;
}

// the checksum of a file: its header with the checksum field read as 0, then its payload
static uint32_t binfile_sum(const int32_t* header, const void* payload, size_t nbytes) {
    int32_t h[HEADER_INTS];
    memcpy(h, header, sizeof(h));
    h[5] = 0;
    return fnv1a(fnv1a(FNV_START, h, sizeof(h)), payload, nbytes);
}

// writes header + payload to path atomically (temp file, then rename)
static void binfile_write(const char* path, int kind, const int* dims, int ndims, const void* payload, size_t nbytes) {
    if (ndims > HEADER_DIMS) die("binfile_write: %d dims exceed the header's %d", ndims, HEADER_DIMS);
    int32_t header[HEADER_INTS] = {0};
    header[0] = BIN_MAGIC;
    header[1] = BIN_VERSION;
    header[2] = kind;
    header[3] = (int32_t)(uint32_t)(nbytes & 0xffffffffu);
    header[4] = (int32_t)(uint32_t)((uint64_t)nbytes >> 32);
    for (int i = 0; i < ndims; i++) header[6 + i] = dims[i];
    header[5] = (int32_t)binfile_sum(header, payload, nbytes);
    OutFile o;
    outfile_open(&o, path);
    fwriteCheck(header, sizeof(int32_t), HEADER_INTS, o.f);
    if (nbytes) fwriteCheck(payload, 1, nbytes, o.f);
    outfile_commit(&o);
}

// reads and verifies path; dies with a message naming the file and the fix.
// dims gets HEADER_DIMS ints; returns the payload (caller frees), *nbytes its size.
static void* binfile_read(const char* path, int kind, int* dims, size_t* nbytes) {
    size_t len = 0;
    char* buf = read_file(path, &len);
    const char* expected = bin_kind_name(kind);
    if (len < HEADER_INTS * sizeof(int32_t)) {
        die("'%s' is %zu bytes, shorter than the %zu-byte header: not a slmrec %s file, or truncated",
            path, len, HEADER_INTS * sizeof(int32_t), expected);
    }
    int32_t header[HEADER_INTS];
    memcpy(header, buf, sizeof(header));
    if (header[0] != BIN_MAGIC) {
        die("'%s' has magic %d, expected %d: not a slmrec file (a llama2.c or HF file needs the import-* commands)",
            path, header[0], BIN_MAGIC);
    }
    if (header[1] == 3) {
        die("'%s' is format version 3, this build reads version %d: convert it with `./slmrec upgrade --in %s --out NEW`",
            path, BIN_VERSION, path);
    }
    if (header[1] != BIN_VERSION) {
        die("'%s' is format version %d, this build reads version %d: re-create it with this build", path, header[1], BIN_VERSION);
    }
    if (header[2] != kind) {
        die("'%s' holds %s %s, expected %s %s", path, a_or_an(bin_kind_name(header[2])), bin_kind_name(header[2]),
            a_or_an(expected), expected);
    }
    size_t want = (size_t)(uint32_t)header[3] | ((size_t)(uint32_t)header[4] << 32);
    size_t have = len - HEADER_INTS * sizeof(int32_t);
    if (have != want) {
        die("'%s' payload is %zu bytes, its header says %zu: the file is truncated or was appended to", path, have, want);
    }
    const char* payload = buf + HEADER_INTS * sizeof(int32_t);
    if ((int32_t)binfile_sum(header, payload, have) != header[5]) {
        die("'%s' fails its checksum: the file is corrupted; re-create or re-copy it", path);
    }
    memcpy(dims, header + 6, HEADER_DIMS * sizeof(int));
    void* out = mallocCheck(have);
    memcpy(out, payload, have);
    free(buf);
    *nbytes = have;
    return out;
}

// format 3 -> 4: the same header and payload, the checksum now over both. The old
// payload checksum is verified first. A LoRA adapter file is refused: it is keyed by
// its base's checksum, which the base's own upgrade changes.
static void binfile_upgrade(const char* in, const char* out) {
    size_t len = 0;
    char* buf = read_file(in, &len);
    int32_t header[HEADER_INTS];
    if (len < sizeof(header)) die("'%s' is %zu bytes, shorter than the %zu-byte header: not a slmrec file", in, len, sizeof(header));
    memcpy(header, buf, sizeof(header));
    if (header[0] != BIN_MAGIC) die("'%s' has magic %d, expected %d: not a slmrec file", in, header[0], BIN_MAGIC);
    if (header[1] != 3) die("'%s' is format version %d: upgrade converts version 3 to %d", in, header[1], BIN_VERSION);
    const char* payload = buf + sizeof(header);
    size_t have = len - sizeof(header), want = (size_t)(uint32_t)header[3] | ((size_t)(uint32_t)header[4] << 32);
    if (have != want || (int32_t)fnv1a(FNV_START, payload, have) != header[5]) {
        die("'%s' is truncated or corrupted (size or payload checksum do not match its header): nothing to convert", in);
    }
    if (header[2] == KIND_E4SREC && header[6 + 16] != 0) {  // E4SRec dimension 16: the LoRA rank (checkpoint.h)
        die("'%s' holds LoRA adapters keyed by their base file's format-3 checksum: retrain them with this build", in);
    }
    binfile_write(out, header[2], header + 6, HEADER_DIMS, payload, have);
    free(buf);
}

// the first n header ints of a slmrec file, after checking its magic
static void binfile_peek(const char* path, int32_t* head, int n) {
    FILE* f = fopenCheck(path, "rb");
    size_t got = fread(head, sizeof(int32_t), n, f);
    fcloseCheck(f);
    if (got != (size_t)n || head[0] != BIN_MAGIC) die("'%s' is not a slmrec file (no slmrec magic at its start)", path);
}

// the kind of a slmrec file, to dispatch on before loading
static int binfile_kind(const char* path) {
    int32_t head[3];
    binfile_peek(path, head, 3);
    return head[2];
}

// the checksum stored in a slmrec file's header (of its header and payload): a key for what was
// computed from that file (the file itself is verified when it is loaded)
static uint32_t binfile_checksum(const char* path) {
    int32_t head[6];
    binfile_peek(path, head, 6);
    return (uint32_t)head[5];
}

// what a file's dimensions promise must fit in its payload: checked before anything
// is sized by them, so a small damaged file cannot make a loader allocate gigabytes
static void payload_must_hold(const char* path, size_t nbytes, double need, const char* what) {
    if (need > (double)nbytes) {
        die("'%s': its dimensions need %.0f bytes for %s, the payload is %zu: the file is damaged", path, need, what, nbytes);
    }
}

// sequential cursor over a payload, for reading tensors in their fixed order
typedef struct {
    const char* data;
    size_t size, pos;
    const char* path;  // for messages
} Cursor;

static void cursor_take(Cursor* c, void* dst, size_t nbytes, const char* what) {
    if (c->pos + nbytes > c->size) {
        die("'%s' ends inside %s (needs %zu bytes at offset %zu, payload is %zu): dimensions and payload disagree",
            c->path, what, nbytes, c->pos, c->size);
    }
    if (nbytes) memcpy(dst, c->data + c->pos, nbytes);  // dst may be NULL for an empty tensor: memcpy(NULL, ., 0) is UB
    c->pos += nbytes;
}

static void cursor_done(Cursor* c) {
    if (c->pos != c->size) {
        die("'%s' has %zu unread payload bytes: dimensions and payload disagree", c->path, c->size - c->pos);
    }
}

// growable byte buffer, for building a payload before binfile_write
typedef struct {
    char* data;
    size_t size, cap;
} Buffer;

static void buffer_put(Buffer* b, const void* src, size_t nbytes) {
    if (b->size + nbytes > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->size + nbytes) cap *= 2;
        char* p = (char*)realloc(b->data, cap);
        if (p == NULL) die("out of memory growing a %zu-byte buffer", cap);
        b->data = p;
        b->cap = cap;
    }
    if (nbytes) memcpy(b->data + b->size, src, nbytes);  // src may be NULL for an empty tensor
    b->size += nbytes;
}
