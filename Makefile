# cmk: transparent encryption at rest for PostgreSQL 15 (PGXS build).
#
# The C++ core (src/core, no PostgreSQL headers) is built once into a static
# library with hidden visibility and linked into the extension, into pg_cmk
# and into the unit tests. The glue (src/pg) is plain C built by PGXS.

EXTENSION  = cmk
DATA       = cmk--0.1.sql
MODULE_big = cmk
PG_SRCS   := $(wildcard src/pg/*.c src/pg/*/*.c)
OBJS       = $(PG_SRCS:.c=.o)
PG_CPPFLAGS = -Isrc

# No LLVM bitcode: the extension's hot code is OpenSSL's, which JIT cannot inline.
override with_llvm = no

CORE_SRCS := $(sort $(wildcard src/core/*.cpp src/core/*/*.cpp))
CORE_OBJS := $(patsubst src/%.cpp,build/%.o,$(CORE_SRCS))
CORE_LIB  := build/libcmkcore.a
CORE_CXXFLAGS := -std=c++17 -O2 -g -fPIC -fvisibility=hidden -fvisibility-inlines-hidden \
                 -Wall -Wextra -Werror=return-type -Isrc/core -MMD -MP
CORE_LIBS := -lcurl -lgcrypt -lgpg-error -lssl -lcrypto -lstdc++ -lpthread
SHLIB_LINK = $(CORE_LIB) $(CORE_LIBS)

# pg_cmk, the front-end tool (C++, core only, no server).
PG_CMK_SRCS := $(sort $(wildcard src/bin/*.cpp))
PG_CMK_BIN  := build/pg_cmk

# The fuzz targets (fuzz/targets) are built into the unit tests too, which
# replay their corpora (fuzz/corpus); fuzz/run.sh builds them for libFuzzer.
UNIT_SRCS := $(sort $(wildcard test/unit/*.cpp)) $(sort $(wildcard fuzz/targets/*.cpp))
UNIT_BIN  := build/unit_tests

EXTRA_CLEAN = build tmp_check

# TAP tests (PostgreSQL::Test::Cluster); `make installcheck` runs them with prove.
TAP_TESTS = 1
PROVE_TESTS ?= test/t/*.pl

PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# After PGXS, which resets PROVE_FLAGS.
PROVE_FLAGS += -I test/perl

build/%.o: src/%.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CORE_CXXFLAGS) -c -o $@ $<

$(CORE_LIB): $(CORE_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@
	$(AR) crs $@ $^

# PGXS tracks no header dependencies for C: every glue object depends on
# every glue header and on the core's C interface.
$(OBJS): $(CORE_LIB) $(wildcard src/pg/*.h src/pg/*/*.h) src/core/capi.h
cmk.so: $(CORE_LIB)

# PostgreSQL's checksum loop with the flags PostgreSQL builds checksum.c
# with, for AVX2 (chosen at run time, page_checksum.c).
CHECKSUM_CFLAGS = $(CFLAGS_UNROLL_LOOPS) $(CFLAGS_VECTORIZE)
ifeq ($(shell uname -m),x86_64)
src/pg/cipher/page_checksum_avx2.o: override CFLAGS += -mavx2 $(CHECKSUM_CFLAGS)
endif

# Bound at load (-z now), as the server and its libraries are: a lazy
# binding saves every vector register on the stack, where a core would find
# what a cipher left in them.
$(PG_CMK_BIN): $(PG_CMK_SRCS) $(wildcard src/bin/*.h) $(CORE_LIB)
	$(CXX) -std=c++17 -O2 -g -Wall -Wextra -Isrc/core -Wl,-z,relro,-z,now -o $@ $(PG_CMK_SRCS) $(CORE_LIB) $(CORE_LIBS)

# The front-end library (LD_PRELOAD) that encrypts and decrypts WAL for
# PostgreSQL's own tools, run by `pg_cmk exec` or the cmk_TOOL names.
FRONTEND_LIB := build/cmk_frontend.so
FRONTEND_SRCS := $(sort $(wildcard src/preload/*.cpp))
FRONTEND_TOOLS := pg_basebackup pg_receivewal pg_rewind pg_waldump pg_verifybackup
# A bin directory for HA managers that take one (Patroni's postgresql.bin_dir):
# the tools above through pg_cmk, every other program PostgreSQL's own.
MANAGER_PASSTHROUGH := postgres pg_ctl initdb pg_controldata pg_isready pg_resetwal pg_checksums pg_archivecleanup psql
$(FRONTEND_LIB): $(FRONTEND_SRCS) src/preload/exports.map $(CORE_LIB)
	$(CXX) $(CORE_CXXFLAGS) -shared -Wl,-z,defs -Wl,-z,now -Wl,--version-script=src/preload/exports.map -o $@ $(FRONTEND_SRCS) $(CORE_LIB) $(CORE_LIBS) -ldl

all: $(PG_CMK_BIN) $(FRONTEND_LIB)
install: install-pg-cmk
.PHONY: install-pg-cmk
install-pg-cmk: $(PG_CMK_BIN) $(FRONTEND_LIB)
	$(MKDIR_P) '$(DESTDIR)$(bindir)' '$(DESTDIR)$(pkglibdir)'
	$(INSTALL_PROGRAM) $(PG_CMK_BIN) '$(DESTDIR)$(bindir)/pg_cmk'
	$(INSTALL_SHLIB) $(FRONTEND_LIB) '$(DESTDIR)$(pkglibdir)/cmk_frontend.so'
	for t in $(FRONTEND_TOOLS); do ln -sf pg_cmk '$(DESTDIR)$(bindir)/cmk_'$$t; done
	$(MKDIR_P) '$(DESTDIR)$(pkglibdir)/cmk/bin'
	for t in $(FRONTEND_TOOLS); do ln -sfn ../../../bin/pg_cmk '$(DESTDIR)$(pkglibdir)/cmk/bin/'$$t; done
	for t in $(MANAGER_PASSTHROUGH); do ln -sfn ../../../bin/$$t '$(DESTDIR)$(pkglibdir)/cmk/bin/'$$t; done

$(UNIT_BIN): $(UNIT_SRCS) $(wildcard fuzz/targets/*.h) $(CORE_LIB)
	$(CXX) -std=c++17 -O1 -g -Isrc/core -Itest/unit -o $@ $(UNIT_SRCS) $(CORE_LIB) -lgtest -lgtest_main $(CORE_LIBS)

.PHONY: unit
unit: $(UNIT_BIN)
	$(UNIT_BIN)

-include $(CORE_OBJS:.o=.d)

# Benchmarks (not part of the tests).
# PostgreSQL's checksum as the server is built, beside the extension's own
# AVX2 object.
build/bench_checksum_server_build.o: bench/checksum_server_build.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(CHECKSUM_CFLAGS) $(CPPFLAGS) -c -o $@ $<
BENCH_CHECKSUM_OBJS = build/bench_checksum_server_build.o src/pg/cipher/page_checksum_avx2.o
build/page_cipher_bench: bench/page_cipher_bench.cpp $(BENCH_CHECKSUM_OBJS) $(CORE_LIB)
	$(CXX) -std=c++17 -O2 -Isrc/core -o $@ $< $(BENCH_CHECKSUM_OBJS) $(CORE_LIB) $(CORE_LIBS)
# The XTS libraries Debian 12 ships, side by side (needs nettle-dev,
# libcrypto++-dev, libbotan-2-dev; bench/cipher.sh --survey installs them).
build/xts_survey: bench/xts_survey.cpp $(CORE_LIB)
	$(CXX) -std=c++17 -O2 -Isrc/core -I/usr/include/botan-2 -o $@ $< $(CORE_LIB) -lnettle -lcryptopp -lbotan-2 $(CORE_LIBS)

# Azure Key Vault provider tests against the local emulator (test/provider/run.sh
# starts and stops the emulator; test/kv_emulator/CONTRACT.md).
PROVIDER_TEST_SRCS := $(sort $(wildcard test/provider/*.cpp))
PROVIDER_TEST_BIN  := build/provider_tests

$(PROVIDER_TEST_BIN): $(PROVIDER_TEST_SRCS) $(wildcard test/provider/*.h) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++17 -O1 -g -Isrc/core -Itest/provider -o $@ $(PROVIDER_TEST_SRCS) $(CORE_LIB) -lgtest -lgtest_main $(CORE_LIBS)

.PHONY: provider-check
provider-check: $(PROVIDER_TEST_BIN)
	bash test/provider/run.sh
