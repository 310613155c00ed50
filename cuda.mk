# cuda.mk: the GPU build, included by the Makefile when nvcc runs.
#   kernels.o       kernels.cu (CUDA twins of the layers, the device-side E4SRec/SLMRec, the C API of src/gpu.h)
#   ./slmrec        slmrec.c with -DSLMREC_CUDA, linked with kernels.o, cudart and cuBLAS
#   make test-gpu   test/test_gpu.cu (a unity build around kernels.cu): every kernel and whole
#                   training steps against the CPU path; says SKIP and passes where no GPU is visible
#   make test-gpu-mutants  test/gpu_mutants.sh: the GPU suite against ten broken copies of kernels.cu
# CUDA_ARCH picks the GPU generation: sm_90 (H100/H200) by default, e.g. `make CUDA_ARCH=sm_80` for an A100.

CUDA_ARCH ?= sm_90
CUDA_HOME ?= $(patsubst %/bin/,%,$(dir $(shell command -v $(NVCC))))
CUDA_LIB = $(CUDA_HOME)/lib64
NVCC_VERSION := $(shell $(NVCC) --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')

# host code inside .cu files: the C headers' warnings on, their OpenMP pragmas honoured when available
NVCC_HOST = -Wall,-Wextra$(if $(filter yes,$(OPENMP)),$(comma)-fopenmp,$(comma)-Wno-unknown-pragmas)
NVCCFLAGS = -O3 -std=c++17 -arch=$(CUDA_ARCH) -Xcompiler $(NVCC_HOST)
comma := ,

GPU_OBJS = kernels.o
GPU_CFLAGS = -DSLMREC_CUDA
GPU_LDLIBS = -L$(CUDA_LIB) -Wl,-rpath,$(CUDA_LIB) -lcudart -lcublas -lstdc++
FOUND_CUDA = CUDA: nvcc $(NVCC_VERSION), $(CUDA_ARCH)

kernels.o: kernels.cu $(HEADERS) cuda.mk
	$(NVCC) $(NVCCFLAGS) -c -o $@ kernels.cu

test/test_gpu: test/test_gpu.cu test/test.h kernels.cu $(HEADERS) cuda.mk
	$(NVCC) $(NVCCFLAGS) -o $@ test/test_gpu.cu -lcublas $(if $(filter yes,$(OPENMP)),-lgomp)

test-gpu: report test/test_gpu
	./test/test_gpu

# can the GPU suite fail? ten deliberately broken kernels, each must make it fail (test/gpu_mutants.sh)
test-gpu-mutants: report
	sh test/gpu_mutants.sh
