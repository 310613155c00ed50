// fuzz.c: libFuzzer targets for the parsers, one per build, chosen with
// -DFUZZ_TARGET=<name> (`make fuzz` builds them all as test/fuzz_<name>):
//   seqfile      seqdata_load
//   ratings      prep_ratings, once taking the first line as a header and once not
//   tokenizer    tokenizer_load for a slmrec binfile (resealed: see below), else
//                tokenizer_load_llama2c; a tokenizer that loads encodes and decodes
//   checkpoint   sasrec_load, e4srec_load, student_load or llama_load by the kind in
//                the header; resealed
//   safetensors  st_open, then every tensor read as float32
// The parsers run as test_fuzz.c runs its fixed-seed mutants, here in-process: a
// refusal's die() longjmps back to the harness (utils.h, under FUZZING). A binfile
// is resealed (size fields and checksum recomputed) before it is parsed, or nearly
// every input would stop at the checksum.
// -DFUZZ_TARGET=corpus builds instead a program that writes the seed corpus,
// test/corpus/<name>/, from test_fuzz.c's seeds (`make fuzz-corpus`).
#include "../slmrec.c"
#include "test.h"
#include "test_fuzz.c"  // the parsers as the mutation test runs them, its seeds, fuzz_reseal

#define FUZZ_ID_seqfile 1
#define FUZZ_ID_ratings 2
#define FUZZ_ID_tokenizer 3
#define FUZZ_ID_checkpoint 4
#define FUZZ_ID_safetensors 5
#define FUZZ_ID_corpus 6
#define FUZZ_CAT(a, b) a##b
#define FUZZ_ID(name) FUZZ_CAT(FUZZ_ID_, name)  // the extra step expands FUZZ_TARGET first
#define FUZZ_WHICH FUZZ_ID(FUZZ_TARGET)
#if !defined(FUZZ_TARGET) || FUZZ_WHICH < 1 || FUZZ_WHICH > 6
#error "build with -DFUZZ_TARGET=seqfile, ratings, tokenizer, checkpoint, safetensors or corpus"
#endif

#if FUZZ_WHICH == FUZZ_ID_corpus
// ----------------------------------------------------------------------------
// the seed corpus: the seeds test_fuzz.c's table marks (corpus_seeds), written to
// <dir>/<libFuzzer target>/<test file name>-<seed index>

int main(int argc, char** argv) {
    if (argc != 2) die("usage: %s DIR (the corpus directory, test/corpus)", argv[0]);
    fuzz_make_dir("/tmp");
    fuzz_make_seeds();
    size_t total = 0;
    for (int i = 0; i < FUZZ_N(fuzz_targets); i++) {
        FuzzTarget* t = &fuzz_targets[i];
        for (int s = 0; s < t->n_seeds; s++) {
            if (!(t->corpus_seeds >> s & 1)) continue;
            char path[512];
            snprintf(path, sizeof(path), "%s/%s", argv[1], t->corpus);
            mkdir(path, 0755);
            snprintf(path, sizeof(path), "%s/%s/%s-%d", argv[1], t->corpus, t->file, s);
            fuzz_write(path, &t->seeds[s]);
            printf("%6zu %s\n", t->seeds[s].size, path);
            total += t->seeds[s].size;
        }
    }
    printf("%6zu bytes in all\n", total);
    fuzz_free_seeds();
    fuzz_remove_dir();
    return 0;
}

#else
// ----------------------------------------------------------------------------
// the harness

#include <sanitizer/allocator_interface.h>

// as the mutation test's children: an allocation over 1 GiB (dimensions that a file of
// kilobytes cannot fill) fails, and mallocCheck refuses it, instead of being tried (RSS,
// seconds of shadow memory) or aborting ASan. No leak check: see below.
const char* __asan_default_options(void);
const char* __asan_default_options(void) { return "detect_leaks=0:allocator_may_return_null=1:max_allocation_size_mb=1024"; }

// A refusal longjmps past the frees of what was parsed so far; left alone, every
// refusal leaks its buffers and a long run ends out of memory. So every allocation
// made while an input is parsed is logged (a sanitizer hook), and after a refusal
// those still live are freed.
#define FUZZ_LOG_CAP (1 << 22)
static const volatile void* fuzz_log[FUZZ_LOG_CAP];
static size_t fuzz_logged;
static int fuzz_logging;

static void fuzz_on_malloc(const volatile void* p, size_t n) {
    (void)n;
    if (fuzz_logging && fuzz_logged < FUZZ_LOG_CAP) fuzz_log[fuzz_logged++] = p;
}

static void fuzz_on_free(const volatile void* p) { (void)p; }  // the allocator knows what was freed

// a logged pointer the allocator still owns was not freed (an address freed and
// reused is logged twice: the second look finds it freed)
static void fuzz_free_leftovers(void) {
    for (size_t i = 0; i < fuzz_logged; i++) {
        if (__sanitizer_get_ownership((const void*)fuzz_log[i])) free((void*)fuzz_log[i]);
    }
}

static char fuzz_input[128];  // the input, as a file: the parsers take paths

// parse(fuzz_input), taking a refusal back and freeing what it left
static void fuzz_parse(void (*parse)(const char* path)) {
    jmp_buf jump;
    int refused = 0;
    fuzz_logged = 0;
    fuzz_logging = 1;
    die_jump = &jump;
    if (setjmp(jump) == 0) parse(fuzz_input);
    else refused = 1;
    die_jump = NULL;
    fuzz_logging = 0;
    if (refused) fuzz_free_leftovers();
}

int LLVMFuzzerInitialize(int* argc, char*** argv);
int LLVMFuzzerInitialize(int* argc, char*** argv) {
    (void)argc; (void)argv;
    fuzz_make_dir(access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");  // tmpfs: prep's fsync costs nothing
    fuzz_path(fuzz_input, sizeof(fuzz_input), "input");
    if (freopen("/dev/null", "w", stdout) == NULL) die("fuzz: cannot send stdout to /dev/null");  // prep's summary line
    __sanitizer_install_malloc_and_free_hooks(fuzz_on_malloc, fuzz_on_free);
    atexit(fuzz_remove_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Buffer b = {NULL, 0, 0};
    buffer_put(&b, data, size);
    int32_t head[3] = {0, 0, 0};
    if (size) memcpy(head, data, size < sizeof(head) ? size : sizeof(head));
    int binfile = head[0] == BIN_MAGIC;
    if (binfile) fuzz_reseal(&b);
    fuzz_write(fuzz_input, &b);
    free(b.data);
#if FUZZ_WHICH == FUZZ_ID_seqfile
    fuzz_variant = 1;  // every item id allowed; the bytes decide the largest
    fuzz_parse(fuzz_parse_seqfile);
#elif FUZZ_WHICH == FUZZ_ID_ratings
    fuzz_seed = 0;     // the first line is a header
    fuzz_parse(fuzz_parse_ratings);
    fuzz_seed = 1;     // it is data
    fuzz_parse(fuzz_parse_ratings);
#elif FUZZ_WHICH == FUZZ_ID_tokenizer
    fuzz_parse(binfile ? fuzz_parse_tokenizer : fuzz_parse_llama2c_tokenizer);
#elif FUZZ_WHICH == FUZZ_ID_checkpoint
    switch (head[2]) {
        case KIND_E4SREC: fuzz_parse(fuzz_parse_e4srec); break;
        case KIND_DLLM2REC: fuzz_parse(fuzz_parse_student); break;
        case KIND_LLAMA: fuzz_parse(fuzz_parse_llama); break;
        default: fuzz_parse(fuzz_parse_sasrec); break;  // and any other kind, refused as not a SASRec
    }
#elif FUZZ_WHICH == FUZZ_ID_safetensors
    fuzz_parse(fuzz_parse_safetensors);
#endif
    return 0;
}
#endif
