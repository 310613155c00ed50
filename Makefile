# slmrec: `make` builds ./slmrec, `make test` runs the CPU tests, `make test-gpu` the GPU
# tests, `make clean`. Works with or without OpenMP and nvcc and says what it found:
# with nvcc, ./slmrec has the CUDA path too (cuda.mk); `make NVCC=false` builds CPU only.

.DEFAULT_GOAL := all
CC ?= gcc
CFLAGS ?= -O2
CFLAGS += -std=gnu11 -Wall -Wextra -Wno-unused-function -fopenmp-simd
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

.PHONY: all test test-asan test-gpu clean report

all: report slmrec

report:
	@echo "slmrec build: $(CC) $(firstword $(CFLAGS))$(FOUND_NATIVE), $(FOUND_OPENMP), $(FOUND_CUDA)"

# build.flavor holds the CUDA line of the last build, so switching NVCC relinks ./slmrec
build.flavor: FORCE
	@echo "$(FOUND_CUDA)" | cmp -s - $@ || echo "$(FOUND_CUDA)" > $@

slmrec: slmrec.c $(HEADERS) $(GPU_OBJS) build.flavor
	$(CC) $(CFLAGS) $(GPU_CFLAGS) -o $@ slmrec.c $(GPU_OBJS) $(LDLIBS) $(GPU_LDLIBS)

# the CPU tests, CPU only whatever nvcc says: the GPU path has its own (make test-gpu)
test/test_runner: slmrec.c $(HEADERS) $(TEST_SOURCES)
	$(CC) $(CFLAGS) -DTESTING -o $@ test/test.c $(LDLIBS)

test: report test/test_runner
	./test/test_runner

# the same tests under AddressSanitizer and UndefinedBehaviorSanitizer, OpenMP kept on;
# any finding stops the run (leak checking is off: a refused input exits through die();
# a failed allocation returns NULL, as without ASan, so that the refusal names the input)
SANITIZE = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
test/test_runner_asan: slmrec.c $(HEADERS) $(TEST_SOURCES)
	$(CC) $(CFLAGS) $(SANITIZE) -DTESTING -o $@ test/test.c $(LDLIBS)

test-asan: report test/test_runner_asan
	ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1 ./test/test_runner_asan

ifneq ($(HAVE_NVCC),yes)
test-gpu: report
	@echo "SKIP: nvcc not found, so the CUDA path was not built: the GPU tests did not run"
	@echo "0 passed, 0 failed"
endif

clean:
	rm -f slmrec test/test_runner test/test_runner_asan test/test_gpu kernels.o build.flavor

FORCE:
