# clipgrid — the two commands a newcomer needs:
#   make demo    run the demo grid
#   make test    build and run the whole test suite
# Everything else: make help

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_EMU  ?= build-emu
BUILD_EMU_ASAN ?= build-emu-asan
JOBS       ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DCLIPGRID_WERROR=ON
endif

.PHONY: all build test test-asan test-cuda-emu test-cuda-emu-asan demo bench deps clean help

all: build

help:
	@echo "make demo       run the demo grid (configs/demo.json) and print its summary"
	@echo "make test       build and run every test (ctest)"
	@echo "make test-asan  the same under AddressSanitizer + UBSan ($(BUILD_ASAN)/), without the slow learning tests"
	@echo "make test-cuda-emu  the CUDA backend's tests on the CPU emulator (tools/cuda_emu, $(BUILD_EMU)/)"
	@echo "make test-cuda-emu-asan  the layer and text-tower tests on the emulator under ASan + UBSan (memcheck's stand-in)"
	@echo "make bench      build and run the launcher benchmarks"
	@echo "make deps       install the Debian packages (scripts/install-deps.sh)"

# Install the Debian packages only when something the build needs is missing.
deps:
	@command -v cmake >/dev/null && pkg-config --exists libcjson openblas zlib libpcre2-8 libutf8proc libturbojpeg libpng libwebp libarchive \
	  && [ -d /usr/share/datasets/fashion-mnist ] \
	  && command -v msgfmt >/dev/null && command -v xgettext >/dev/null \
	  && command -v sbatch >/dev/null && command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
	  && command -v munged >/dev/null && command -v convert >/dev/null && command -v cjpeg >/dev/null && command -v pngcrush >/dev/null && locale -a 2>/dev/null | grep -qix zh_CN.utf8 \
	  || bash scripts/install-deps.sh

$(BUILD)/Makefile: CMakeLists.txt | deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps
	cmake -S . -B $(BUILD_ASAN) -DCLIPGRID_SANITIZE=ON -DCLIPGRID_CUDA=OFF -DCMAKE_BUILD_TYPE=Debug $(CMAKE_FLAGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS) -LE slow

# The CUDA backend's device tests (ctest label cuda) run on the CPU emulator: every kernel, the
# cuBLAS calls as documented, the towers, the CLIP step and `clipgrid train --device cuda`.
# Then the layer, tower and step tests again with blocks and threads run in reverse order
# (CG_EMU_ORDER=reverse): a kernel whose result depends on the order fails its CPU comparison.
test-cuda-emu: deps
	cmake -S . -B $(BUILD_EMU) -DCLIPGRID_CUDA_EMU=ON $(filter-out -DCLIPGRID_WERROR=ON,$(CMAKE_FLAGS))
	cmake --build $(BUILD_EMU) -j $(JOBS)
	cd $(BUILD_EMU) && ctest --output-on-failure -j $(JOBS) -L cuda
	cd $(BUILD_EMU) && CG_EMU_ORDER=reverse ctest --output-on-failure -j $(JOBS) -R '^cuda_(ops|text|starnet|clip)$$'

# The same emulated CUDA code under AddressSanitizer + UBSan + LeakSanitizer (every kernel's
# reads and writes checked as host accesses, the gaps between arena pieces poisoned): every
# layer, the text towers and the StarNet tower (~8 minutes; the CLIP-step and trainer tests take
# longer there: run them by hand).
EMU_ASAN_TESTS = test_cuda_ops test_cuda_text test_cuda_starnet
test-cuda-emu-asan: deps
	cmake -S . -B $(BUILD_EMU_ASAN) -DCLIPGRID_CUDA_EMU=ON -DCLIPGRID_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug $(filter-out -DCLIPGRID_WERROR=ON,$(CMAKE_FLAGS))
	cmake --build $(BUILD_EMU_ASAN) -j $(JOBS) --target $(EMU_ASAN_TESTS)
	cd $(BUILD_EMU_ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 ctest --output-on-failure -j $(JOBS) -R '^cuda_(ops|text|starnet)$$'

demo: build
	bash scripts/demo.sh $(BUILD)/clipgrid

bench: build
	bash bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_EMU) $(BUILD_EMU_ASAN)
