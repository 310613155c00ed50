// test.h: the smallest test framework that can fail. Every check counts a
// pass or a failure; the runner prints "N passed, M failed" and exits non-zero
// on any failure. A test that cannot run (../shared missing) says SKIP loudly.
#pragma once
#include <fcntl.h>
#include <sys/wait.h>

static int tests_passed = 0, tests_failed = 0, tests_skipped = 0;

// SLMREC_TEST_FAIL_FAST set: a suite stops at its first failure (gpu_mutants.sh: a mutant
// is caught as soon as one check fails, so the rest of the suite need not run)
static void check_fail_fast(void) {
    if (getenv("SLMREC_TEST_FAIL_FAST") == NULL) return;
    printf("%d passed, %d failed (stopped at the first failure: SLMREC_TEST_FAIL_FAST is set)\n", tests_passed, tests_failed);
    fflush(stdout);
    exit(1);
}

#define CHECK(cond, ...) do {                                                  \
    if (cond) { tests_passed++; }                                              \
    else { tests_failed++; printf("  FAIL %s:%d: ", __FILE__, __LINE__);       \
           printf(__VA_ARGS__); printf("\n"); check_fail_fast(); }             \
} while (0)

static void skip(const char* what, const char* why) {
    tests_skipped++;
    printf("  SKIP %s: %s\n", what, why);
}

// max over elements of |got - ref| / (atol + rtol |ref|); <= 1 passes
static float tol_ratio(const float* got, const float* ref, size_t n, float atol, float rtol, size_t* worst) {
    float r = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float d = fabsf(got[i] - ref[i]);
        float e = d == 0.0f ? 0.0f : d / (atol + rtol * fabsf(ref[i]));  // exact matches pass at zero tolerance
        if (!(e <= r)) { r = e; if (worst) *worst = i; }  // NaN counts as worst
    }
    return r;
}

static void check_close(const char* name, const float* got, const float* ref, size_t n, float atol, float rtol) {
    size_t worst = 0;
    float r = tol_ratio(got, ref, n, atol, rtol, &worst);
    CHECK(r <= 1.0f, "%s: element %zu got %.7g ref %.7g (%.2fx tolerance)", name, worst, got[worst], ref[worst], r);
}

// runs fn(arg) in a child process with stderr captured; passes when the child
// exits non-zero and its stderr contains `expect`. For "bad input is refused".
static void check_dies(const char* name, void (*fn)(void*), void* arg, const char* expect) {
    char path[] = "/tmp/slmrec_test_stderr_XXXXXX";
    int fd = mkstemp(path);
    fflush(stdout); fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
#ifdef _OPENMP
        omp_set_num_threads(1);  // the parent's OpenMP workers do not exist in a forked child: a team of one needs none
#endif
        dup2(fd, 2);
        fd = open("/dev/null", 1); dup2(fd, 1);
        fn(arg);
        exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    size_t len = 0;
    char* msg = read_file(path, &len);
    unlink(path);
    close(fd);
    int refused = WIFEXITED(status) && WEXITSTATUS(status) != 0;
    CHECK(refused && strstr(msg, expect) != NULL, "%s: expected a refusal mentioning '%s', got exit %d and: %s",
          name, expect, WIFEXITED(status) ? WEXITSTATUS(status) : -1, msg);
    free(msg);
}

// writes bytes to a fresh temp file and returns its path (static buffer per call site is the caller's)
static void write_temp(char* path_template, const void* bytes, size_t n) {
    int fd = mkstemp(path_template);
    if (fd < 0) die("mkstemp failed: %s", strerror(errno));
    if (n && write(fd, bytes, n) != (ssize_t)n) die("write to temp file failed");
    close(fd);
}

// writes bytes to path, replacing what was there
static void test_write(const char* path, const void* bytes, size_t n) {
    FILE* f = fopenCheck(path, "wb");
    fwriteCheck(bytes, 1, n, f);
    fcloseCheck(f);
}

// recomputes the checksum of a whole file image in memory (tests craft files with it:
// a forged header must pass the checksum to reach the dimension checks)
static void binfile_reseal(char* file, size_t len) {
    if (len < HEADER_INTS * sizeof(int32_t)) return;
    int32_t header[HEADER_INTS];
    memcpy(header, file, sizeof(header));
    header[5] = (int32_t)binfile_sum(header, file + sizeof(header), len - sizeof(header));
    memcpy(file + 5 * sizeof(int32_t), &header[5], sizeof(int32_t));
}

// a tokenizer alone in a binfile of KIND_TOKENIZER: how the tests and the fuzzer reach
// the tokenizer section that checkpoints embed, without a model around it
static void tokenizer_save(const Tokenizer* t, const char* path) {
    Buffer b = {NULL, 0, 0};
    tokenizer_write_to(&b, t);
    int32_t dims[TOK_DIMS];
    tokenizer_dims(t, dims);
    binfile_write(path, KIND_TOKENIZER, dims, TOK_DIMS, b.data, b.size);
    free(b.data);
}

static void tokenizer_load(Tokenizer* t, const char* path) {
    const char* outer = input_begin(path);  // named by any refusal below
    int header_dims[HEADER_DIMS];
    size_t nbytes = 0;
    char* payload = (char*)binfile_read(path, KIND_TOKENIZER, header_dims, &nbytes);
    Cursor c = {payload, nbytes, 0, path};
    tokenizer_read_from(&c, t);
    cursor_done(&c);
    int32_t dims[TOK_DIMS];
    tokenizer_dims(t, dims);
    if (memcmp(header_dims, dims, sizeof(dims)) != 0) {
        die("'%s': header dims (V %d, max length %d, bos %d, eos %d, flags %d) disagree with the payload's: not written by tokenizer_save",
            path, header_dims[0], header_dims[1], header_dims[2], header_dims[3], header_dims[4]);
    }
    free(payload);
    input_end(outer);
}
