# slmrec: `make` builds ./slmrec, `make test` runs the CPU tests, `make test-gpu` the GPU
# tests, `make fuzz` / `make fuzz-run` the parsers' libFuzzer targets (clang), `make clean`.
# Works with or without OpenMP and nvcc and says what it found: with nvcc, ./slmrec has
# the CUDA path too (cuda.mk); `make NVCC=false` builds CPU only.

.DEFAULT_GOAL := all
CC ?= gcc
CFLAGS ?= -O2
# -fno-trapping-math: no code here reads floating-point exceptions, and without it GCC
# will neither if-convert the clamps of exp_fast nor inline floorf, so the softmax
# and SwiGLU loops stay scalar (on AVX2; it changes no value an operation computes)
CFLAGS += -std=gnu11 -Wall -Wextra -fopenmp-simd -fno-trapping-math
LDLIBS = -lm

# OpenMP: used when the compiler can build and link a tiny OpenMP program
OPENMP := $(shell printf 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes)
ifeq ($(OPENMP),yes)
  CFLAGS += -fopenmp
  FOUND_OPENMP = OpenMP: yes
else
  FOUND_OPENMP = OpenMP: not found, building single-threaded
endif

# the host's vector width (AVX-512 / AVX2 / NEON) for the matmul kernel; everything
# is built from source on the machine that runs it
NATIVE := $(shell printf 'int main(void){return 0;}' | $(CC) -march=native -x c - -o /dev/null 2>/dev/null && echo yes)
ifeq ($(NATIVE),yes)
  CFLAGS += -march=native
  FOUND_NATIVE = , -march=native
endif

HEADERS = $(wildcard src/*.h)
TEST_SOURCES = $(wildcard test/*.c test/*.h)

# CUDA: when nvcc runs, cuda.mk sets GPU_OBJS, GPU_CFLAGS, GPU_LDLIBS and the GPU rules
NVCC ?= nvcc
HAVE_NVCC := $(shell $(NVCC) --version >/dev/null 2>&1 && echo yes)
ifeq ($(HAVE_NVCC),yes)
  include cuda.mk
else
  FOUND_CUDA = CUDA: nvcc not found, CPU only
endif

.PHONY: all test test-asan test-gpu test-gpu-mutants fuzz fuzz-run fuzz-corpus clean report

all: report slmrec

report:
	@echo "slmrec build: $(CC) $(firstword $(CFLAGS))$(FOUND_NATIVE), $(FOUND_OPENMP), $(FOUND_CUDA)"

# build.flavor holds the CUDA line of the last build, so switching NVCC relinks ./slmrec
build.flavor: FORCE
	@echo "$(FOUND_CUDA)" | cmp -s - $@ || echo "$(FOUND_CUDA)" > $@

# (./slmrec and the test runners depend on this Makefile too: a changed flag rebuilds them)
slmrec: slmrec.c $(HEADERS) $(GPU_OBJS) build.flavor Makefile
	$(CC) $(CFLAGS) $(GPU_CFLAGS) -o $@ slmrec.c $(GPU_OBJS) $(LDLIBS) $(GPU_LDLIBS)

# the CPU tests, CPU only whatever nvcc says: the GPU path has its own (make test-gpu)
test/test_runner: slmrec.c $(HEADERS) $(TEST_SOURCES) Makefile
	$(CC) $(CFLAGS) -DTESTING -o $@ test/test.c $(LDLIBS)

# slmrec too: the study test runs its cells with it
test: report slmrec test/test_runner
	./test/test_runner

# the same tests under AddressSanitizer and UndefinedBehaviorSanitizer, OpenMP kept on;
# any finding stops the run (leak checking is off: a refused input exits through die();
# a failed allocation returns NULL, as without ASan, so that the refusal names the input)
SANITIZE = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
test/test_runner_asan: slmrec.c $(HEADERS) $(TEST_SOURCES) Makefile
	$(CC) $(CFLAGS) $(SANITIZE) -DTESTING -o $@ test/test.c $(LDLIBS)

test-asan: report slmrec test/test_runner_asan
	ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 ./test/test_runner_asan

ifneq ($(HAVE_NVCC),yes)
test-gpu: report
	@echo "SKIP: nvcc not found, so the CUDA path was not built: the GPU tests did not run"
	@echo "0 passed, 0 failed, 1 skipped"
test-gpu-mutants: report
	@echo "SKIP: nvcc not found, so the CUDA path was not built: no mutant ran"
endif

# libFuzzer targets, one binary per parser (test/fuzz.c): built with clang when its
# libFuzzer links, else said and skipped. `make fuzz-run FUZZ_SECONDS=60` runs each for
# that long on its seed corpus test/corpus/<name>/; what it learns and finds goes to
# test/fuzz_out/<name>/. No OpenMP: one input at a time. The ASan settings (no leak
# check, allocations over 1 GiB refused) are the harness's own.
FUZZ_CC ?= clang
FUZZ_TARGETS = seqfile ratings tokenizer checkpoint safetensors
FUZZ_BINS = $(addprefix test/fuzz_,$(FUZZ_TARGETS))
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS = -O1 -g -std=gnu11 -Wall -Wextra -Wno-unused-function -Wno-unknown-pragmas \
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -DFUZZING -DTESTING
FUZZ_FOUND = printf 'int LLVMFuzzerTestOneInput(const char* d, unsigned long n) { return 0; }' | \
             $(FUZZ_CC) -fsanitize=fuzzer -x c - -o /dev/null 2>/dev/null

test/fuzz_%: test/fuzz.c slmrec.c $(HEADERS) $(TEST_SOURCES)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DFUZZ_TARGET=$* -o $@ test/fuzz.c -lm

fuzz:
	@if $(FUZZ_FOUND); then $(MAKE) --no-print-directory $(FUZZ_BINS); \
	else echo "SKIP: $(FUZZ_CC) with libFuzzer (-fsanitize=fuzzer) not found: the fuzz targets were not built"; fi

# each target in turn; a crash, an out-of-memory or a timeout leaves its input in test/fuzz_out/<name>/
fuzz-run: fuzz
	@found=0; for t in $(FUZZ_TARGETS); do \
	  [ -x test/fuzz_$$t ] || exit 0; \
	  mkdir -p test/fuzz_out/$$t/corpus; \
	  echo "fuzz-run: $$t for $(FUZZ_SECONDS)s"; \
	  ./test/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	    -timeout=10 -detect_leaks=0 -close_fd_mask=3 -print_final_stats=1 -artifact_prefix=test/fuzz_out/$$t/ \
	    test/fuzz_out/$$t/corpus test/corpus/$$t < /dev/null 2>&1 | \
	    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::(number_of_executed_units|peak_rss_mb|new_units_added)|==[0-9]+==ERROR|SUMMARY|artifact_prefix|Test unit written)' ; \
	  ls test/fuzz_out/$$t | grep -qv '^corpus$$' && found=1; \
	done; \
	if [ $$found = 1 ]; then echo "fuzz-run: findings in test/fuzz_out/*/ (run the target on one to see it)"; exit 1; fi

# rewrites the seed corpus from test/test_fuzz.c's seeds (any C compiler)
fuzz-corpus:
	$(CC) $(CFLAGS) -Wno-unused-function -DTESTING -DFUZZ_TARGET=corpus -o test/fuzz_corpus test/fuzz.c $(LDLIBS)
	mkdir -p test/corpus && ./test/fuzz_corpus test/corpus

clean:
	rm -f slmrec test/test_runner test/test_runner_asan test/test_gpu kernels.o build.flavor
	rm -f $(FUZZ_BINS) test/fuzz_corpus
	rm -rf test/fuzz_out

FORCE:
