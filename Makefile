# slmrec: `make` builds ./slmrec, `make test` runs the CPU tests, `make clean`.
# Works with or without OpenMP and says what it found.

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

.PHONY: all test clean report

all: report slmrec

report:
	@echo "slmrec build: $(CC) $(firstword $(CFLAGS))$(FOUND_NATIVE), $(FOUND_OPENMP)"

slmrec: slmrec.c $(HEADERS)
	$(CC) $(CFLAGS) -o $@ slmrec.c $(LDLIBS)

test/test_runner: slmrec.c $(HEADERS) $(TEST_SOURCES)
	$(CC) $(CFLAGS) -DTESTING -o $@ test/test.c $(LDLIBS)

test: report test/test_runner
	./test/test_runner

clean:
	rm -f slmrec test/test_runner
