// utils.h: checked libc calls, fatal errors, arenas, the seeded RNG, timing,
// and atomic (temp + rename) output files. Everything else builds on these.
#pragma once
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <sys/stat.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// ----------------------------------------------------------------------------
// fatal errors: one clear message on stderr, non-zero exit

// the file being read: die() names it when its message does not, so that a check deep
// inside a loader (a dimension, an allocation) still says which input asked for it
static const char* die_input = NULL;
static const char* input_begin(const char* path) { const char* outer = die_input; die_input = path; return outer; }
static void input_end(const char* outer) { die_input = outer; }

#ifdef FUZZING
#include <setjmp.h>
static jmp_buf* die_jump = NULL;  // set by the fuzzing harness around each input
#endif

static void die(const char* fmt, ...) {
    char msg[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "error: %s", msg);
    if (die_input && strstr(msg, die_input) == NULL) fprintf(stderr, " (reading '%s')", die_input);
    fprintf(stderr, "\n");
#ifdef FUZZING
    // a fuzzing harness (test/fuzz.c) runs many inputs in one process: it takes the
    // refusal back here instead of exiting; what was being read is over
    if (die_jump) { die_input = NULL; longjmp(*die_jump, 1); }
#endif
    exit(EXIT_FAILURE);
}

// item ids index the item tables (rows = largest id + 1): 16.7M is far beyond any public data set
#define MAX_ITEM_ID (1 << 24)
// the conventional recommenders' widths, layers and history lengths (SASRec, GRU4Rec, Caser)
#define MAX_REC_WIDTH 4096
#define MAX_REC_LAYERS 64
#define MAX_REC_HISTORY 4096
#define MAX_EPOCHS 1000000

// progress and results: everything printed also goes to the run's log file when one is open
static FILE* log_file = NULL;

static void logf_(const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fflush(stdout);
    if (log_file) {
        va_start(ap, fmt);
        vfprintf(log_file, fmt, ap);
        va_end(ap);
        fflush(log_file);
    }
}

// a number read from a file or a flag must lie in [lo, hi] (NaN never does)
static void check_range(const char* source, const char* what, double v, double lo, double hi) {
    if (!(v >= lo && v <= hi)) die("%s: %s is %.10g, expected %.10g to %.10g", source, what, v, lo, hi);
}

// every libc call that can fail goes through one of these: file:line, what, a hint
static FILE* fopen_check(const char* path, const char* mode, const char* file, int line) {
    FILE* f = fopen(path, mode);
    if (f == NULL) {
        die("%s:%d: cannot open '%s' (mode %s): %s\n  hint: check the path exists and is %s",
            file, line, path, mode, strerror(errno), mode[0] == 'r' ? "readable" : "writable");
    }
    return f;
}
#define fopenCheck(path, mode) fopen_check(path, mode, __FILE__, __LINE__)

static void fread_check(void* ptr, size_t size, size_t nmemb, FILE* f, const char* what,
                        const char* file, int line) {
    size_t got = fread(ptr, size, nmemb, f);
    if (got != nmemb) {
        die("%s:%d: short read of %s: expected %zu elements of %zu bytes, got %zu (%s)\n"
            "  hint: the file is truncated or not the format expected",
            file, line, what, nmemb, size, got, feof(f) ? "end of file" : strerror(errno));
    }
}
#define freadCheck(ptr, size, nmemb, f, what) fread_check(ptr, size, nmemb, f, what, __FILE__, __LINE__)

static void fwrite_check(const void* ptr, size_t size, size_t nmemb, FILE* f, const char* file, int line) {
    if (fwrite(ptr, size, nmemb, f) != nmemb) {
        die("%s:%d: write failed: %s\n  hint: is the disk full?", file, line, strerror(errno));
    }
}
#define fwriteCheck(ptr, size, nmemb, f) fwrite_check(ptr, size, nmemb, f, __FILE__, __LINE__)

static void fseek_check(FILE* f, long off, int whence, const char* file, int line) {
    if (fseek(f, off, whence) != 0) die("%s:%d: fseek failed: %s", file, line, strerror(errno));
}
#define fseekCheck(f, off, whence) fseek_check(f, off, whence, __FILE__, __LINE__)

static void fclose_check(FILE* f, const char* file, int line) {
    if (fclose(f) != 0) die("%s:%d: fclose failed: %s\n  hint: is the disk full?", file, line, strerror(errno));
}
#define fcloseCheck(f) fclose_check(f, __FILE__, __LINE__)

// a piece of input fit to echo in a message: at most 32 bytes of it, invisible bytes
// as \xNN, "..." when cut. out needs 32 * 4 + 4 bytes.
#define ECHO_MAX 32
#define ECHO_CAP (ECHO_MAX * 4 + 4)
static const char* echo_input(const char* p, size_t len, char out[ECHO_CAP]) {
    size_t n = 0;
    for (size_t i = 0; i < len && i < ECHO_MAX; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c < 0x7f) out[n++] = (char)c;
        else n += (size_t)snprintf(out + n, 5, "\\x%02x", c);
    }
    if (len > ECHO_MAX) { memcpy(out + n, "...", 3); n += 3; }
    out[n] = 0;
    return out;
}

static void* malloc_check(size_t size, const char* file, int line) {
    void* p = malloc(size ? size : 1);
    if (p == NULL) {
        die("%s:%d: malloc of %zu bytes (%.2f GiB) failed\n  hint: lower the batch size or model size",
            file, line, size, size / (1024.0 * 1024.0 * 1024.0));
    }
    return p;
}
#define mallocCheck(size) malloc_check(size, __FILE__, __LINE__)

static void* calloc_check(size_t n, size_t size, const char* file, int line) {
    void* p = calloc(n ? n : 1, size ? size : 1);
    if (p == NULL) die("%s:%d: calloc of %zu x %zu bytes failed", file, line, n, size);
    return p;
}
#define callocCheck(n, size) calloc_check(n, size, __FILE__, __LINE__)

// the whole file in memory, NUL-terminated; *len gets its size in bytes
static char* read_file(const char* path, size_t* len) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) die("'%s' is a directory, expected a file", path);
    FILE* f = fopenCheck(path, "rb");
    fseekCheck(f, 0, SEEK_END);
    long n = ftell(f);
    if (n < 0) die("cannot tell the size of '%s': %s", path, strerror(errno));
    fseekCheck(f, 0, SEEK_SET);
    char* buf = (char*)mallocCheck((size_t)n + 1);
    if (n > 0) freadCheck(buf, 1, (size_t)n, f, path);
    buf[n] = 0;
    fcloseCheck(f);
    if (len) *len = (size_t)n;
    return buf;
}

// all of a stream (standard input) to its end, NUL-terminated; `what` names it in errors
static char* read_stream(FILE* f, size_t* len, const char* what) {
    size_t cap = 1 << 16, n = 0;
    char* buf = (char*)mallocCheck(cap);
    for (size_t got; (got = fread(buf + n, 1, cap - 1 - n, f)) > 0;) {
        n += got;
        if (n == cap - 1) {
            cap *= 2;
            buf = (char*)realloc(buf, cap);
            if (buf == NULL) die("out of memory reading %s (%zu bytes so far)", what, n);
        }
    }
    if (ferror(f)) die("cannot read %s: %s", what, strerror(errno));
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

// ----------------------------------------------------------------------------
// atomic outputs: write to "<path>.tmp.<pid>", rename over <path> when complete, so
// a crash or a refused input never leaves a half-written file under the real name,
// and two processes writing the same file never share a temporary one

typedef struct {
    FILE* f;
    char path[1024];
    char tmp[1060];
} OutFile;

#define TMP_SUFFIX ".tmp."  // then the writer's pid: outdir_lock removes the files of writers that are gone

static void outfile_open(OutFile* o, const char* path) {
    if (strlen(path) >= sizeof(o->path)) die("output path too long: '%s'", path);
    snprintf(o->path, sizeof(o->path), "%s", path);
    snprintf(o->tmp, sizeof(o->tmp), "%s" TMP_SUFFIX "%ld", path, (long)getpid());
    o->f = fopenCheck(o->tmp, "wb");
}

// the bytes reach the disk before the rename, and the rename before we return, so
// a power loss leaves the old file or the new one, never a renamed empty one
static void outfile_commit(OutFile* o) {
    if (fflush(o->f) != 0 || fsync(fileno(o->f)) != 0) die("cannot write '%s' to disk: %s", o->tmp, strerror(errno));
    fcloseCheck(o->f);
    if (rename(o->tmp, o->path) != 0) {
        die("cannot rename '%s' to '%s': %s", o->tmp, o->path, strerror(errno));
    }
    char dir[1024];
    snprintf(dir, sizeof(dir), "%s", o->path);
    char* slash = strrchr(dir, '/');
    if (slash == NULL) snprintf(dir, sizeof(dir), ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {  // a directory that cannot be opened or synced (some filesystems) is left as it is
        fsync(fd);
        close(fd);
    }
}

// two paths name the same existing file (hard links and ./x vs x included)
static int same_file(const char* a, const char* b) {
    struct stat sa, sb;
    return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
}

// path made absolute against the working directory (no file needs to exist), so that
// a path stored in a file resolves from anywhere; dies when it does not fit in cap
static void absolute_path(const char* path, char* out, size_t cap, const char* what) {
    char cwd[4096];
    if (path[0] != '/' && getcwd(cwd, sizeof(cwd)) == NULL) die("cannot read the working directory: %s", strerror(errno));
    int n = path[0] == '/' ? snprintf(out, cap, "%s", path) : snprintf(out, cap, "%s/%s", cwd, path);
    if (n < 0 || (size_t)n >= cap) die("%s '%s' is %d characters long as an absolute path, at most %zu are supported", what, path, n, cap - 1);
}

// ----------------------------------------------------------------------------
// output directories: created as needed, and held by one run at a time

#define MAX_OUT_DIR 1000  // <out>/<file name> is built in buffers of 1100 bytes

static void make_dir(const char* dir) {
    if (strlen(dir) > MAX_OUT_DIR) die("--out is %zu characters long, at most %d are supported", strlen(dir), MAX_OUT_DIR);
    char path[1024];
    snprintf(path, sizeof(path), "%s", dir);
    for (char* p = path + 1; *p; p++) {  // mkdir -p
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(path, 0755) != 0 && errno != EEXIST) die("cannot create directory '%s': %s", path, strerror(errno));
        *p = '/';
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST) die("cannot create directory '%s': %s", path, strerror(errno));
}

// removes the temporary files in dir whose writer process is gone (a run killed while
// writing); a live writer's file, another program's, or one we may not remove stays
static void remove_stale_tmp(const char* dir) {
    glob_t g;
    char pattern[1100];
    snprintf(pattern, sizeof(pattern), "%s/*" TMP_SUFFIX "*", dir);
    if (glob(pattern, GLOB_NOSORT, NULL, &g) != 0) return;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char* pid_text = strstr(g.gl_pathv[i], TMP_SUFFIX);
        for (const char* next; (next = strstr(pid_text + 1, TMP_SUFFIX)) != NULL;) pid_text = next;  // the last one
        pid_text += strlen(TMP_SUFFIX);
        char* end;
        long pid = strtol(pid_text, &end, 10);
        if (*end != 0 || pid <= 0 || pid == (long)getpid()) continue;
        if (kill((pid_t)pid, 0) != 0 && errno == ESRCH) unlink(g.gl_pathv[i]);
    }
    globfree(&g);
}

// takes <dir>/slmrec.lock, an advisory lock the kernel drops when this process ends
// (however it ends): a second run into the same --out is refused before it writes
// anything, naming the process that holds it. Returns the lock's descriptor
static int outdir_lock(const char* dir) {
    make_dir(dir);
    char path[1100];
    snprintf(path, sizeof(path), "%s/slmrec.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) die("cannot open the lock file '%s': %s", path, strerror(errno));
    struct flock lock;  // the whole file, for writing
    memset(&lock, 0, sizeof(lock));
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    struct flock holder = lock;
    if (fcntl(fd, F_SETLK, &lock) != 0) {
        if (errno != EACCES && errno != EAGAIN) die("cannot lock '%s': %s", path, strerror(errno));
        char who[64] = "another process";
        if (fcntl(fd, F_GETLK, &holder) == 0 && holder.l_type != F_UNLCK) snprintf(who, sizeof(who), "process %ld", (long)holder.l_pid);
        die("--out '%s' is in use by another slmrec run (%s holds '%s')\n"
            "  hint: wait for that run to end, or give this one another --out", dir, who, path);
    }
    remove_stale_tmp(dir);
    return fd;
}

// ----------------------------------------------------------------------------
// arenas: one malloc per kind (parameters, gradients, moments, activations),
// carved into named tensors by a table of sizes

// total floats of a size table
static size_t sizes_total(const size_t* sizes, int n) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += sizes[i];
    return total;
}

// points ptrs[i] into memory at consecutive offsets given by sizes[i]
static void arena_point(float* memory, float** ptrs[], const size_t* sizes, int n) {
    float* p = memory;
    for (int i = 0; i < n; i++) {
        *(ptrs[i]) = p;
        p += sizes[i];
    }
}

// allocates one zeroed block for the whole table and points every tensor into it
static float* arena_alloc(float** ptrs[], const size_t* sizes, int n) {
    float* memory = (float*)callocCheck(sizes_total(sizes, n), sizeof(float));
    arena_point(memory, ptrs, sizes, n);
    return memory;
}

// writes s as a quoted JSON string: quotes, backslashes and control characters escaped
static void json_write_string(FILE* f, const char* s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

// ----------------------------------------------------------------------------
// random numbers: xorshift64* seeded through splitmix64, fully deterministic;
// the state is one uint64 so checkpoints can store and restore it exactly

// the hashes below serve the host and, through kernels.cu, the device
#ifdef __CUDACC__
#define HOST_DEVICE __host__ __device__
#else
#define HOST_DEVICE
#endif

// splitmix64's finaliser: every input bit reaches every output bit
HOST_DEVICE static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// splitmix64: a golden-ratio step, then the finaliser
HOST_DEVICE static inline uint64_t splitmix64(uint64_t z) { return mix64(z + 0x9E3779B97F4A7C15ull); }

typedef struct {
    uint64_t state;
} Rng;

static void rng_seed(Rng* r, uint64_t seed) {
    uint64_t z = splitmix64(seed);  // so nearby seeds diverge
    r->state = z ? z : 0x2545F4914F6CDD1Dull;
}

static uint32_t rng_u32(Rng* r) {
    r->state ^= r->state >> 12;
    r->state ^= r->state << 25;
    r->state ^= r->state >> 27;
    return (uint32_t)((r->state * 0x2545F4914F6CDD1Dull) >> 32);
}

// uniform in [0, 1)
static float rng_f32(Rng* r) { return (rng_u32(r) >> 8) / 16777216.0f; }

// uniform integer in [0, n)
static int rng_int(Rng* r, int n) { return (int)(((uint64_t)rng_u32(r) * (uint64_t)n) >> 32); }

// standard normal via Box-Muller
static float rng_normal(Rng* r) {
    float u1 = rng_f32(r), u2 = rng_f32(r);
    if (u1 < 1e-12f) u1 = 1e-12f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
}

static void rng_fill_normal(Rng* r, float* x, size_t n, float std) {
    for (size_t i = 0; i < n; i++) x[i] = std * rng_normal(r);
}

static void rng_fill_uniform(Rng* r, float* x, size_t n, float bound) {
    for (size_t i = 0; i < n; i++) x[i] = (2.0f * rng_f32(r) - 1.0f) * bound;
}

// Fisher-Yates shuffle of an int array
static void rng_shuffle(Rng* r, int* a, int n) {
    for (int i = n - 1; i > 0; i--) {
        int j = rng_int(r, i + 1);
        int t = a[i]; a[i] = a[j]; a[j] = t;
    }
}

// ----------------------------------------------------------------------------
// timing and small helpers

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// the k best items of one score row (1..n_items; row 0 is the pad), best first,
// leaving out the n_exclude ids of exclude (a user's history, say). Returns how
// many it found: fewer than k when fewer items remain; best[found..k) are 0.
static int top_k(const float* scores, int n_items, int k, const int* exclude, int n_exclude, int* best, float* best_scores) {
    int found = 0;
    for (int j = 0; j < k; j++) { best[j] = 0; best_scores[j] = -INFINITY; }
    for (int i = 1; i <= n_items; i++) {
        int seen = 0;
        for (int h = 0; h < n_exclude && !seen; h++) seen = exclude[h] == i;
        if (seen || (found == k && !(scores[i] > best_scores[k - 1]))) continue;
        if (found < k) found++;
        int j = found - 1;
        while (j > 0 && scores[i] > best_scores[j - 1]) { best[j] = best[j - 1]; best_scores[j] = best_scores[j - 1]; j--; }
        best[j] = i;
        best_scores[j] = scores[i];
    }
    return found;
}

static int max_int(int a, int b) { return a > b ? a : b; }
static int min_int(int a, int b) { return a < b ? a : b; }
