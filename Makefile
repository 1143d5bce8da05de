# cmk: transparent encryption at rest for PostgreSQL 15 (PGXS build).
#
# The C++ core (src/core, no PostgreSQL headers) is built once into a static
# library with hidden visibility and linked into the extension, into pg_cmk
# and into the unit tests. The glue (src/pg) is plain C built by PGXS.

EXTENSION  = cmk
DATA       = cmk--0.1.sql
MODULE_big = cmk
PG_SRCS   := $(wildcard src/pg/*.c)
OBJS       = $(PG_SRCS:.c=.o)
PG_CPPFLAGS = -Isrc

# No LLVM bitcode: the extension's hot code is OpenSSL's, which JIT cannot inline.
override with_llvm = no

CORE_SRCS := $(sort $(wildcard src/core/*.cpp src/core/*/*.cpp))
CORE_OBJS := $(patsubst src/%.cpp,build/%.o,$(CORE_SRCS))
CORE_LIB  := build/libcmkcore.a
CORE_CXXFLAGS := -std=c++17 -O2 -g -fPIC -fvisibility=hidden -fvisibility-inlines-hidden \
                 -Wall -Wextra -Werror=return-type -Isrc/core -MMD -MP
CORE_LIBS := -lcurl -lcrypto -lstdc++ -lpthread
SHLIB_LINK = $(CORE_LIB) $(CORE_LIBS)

UNIT_SRCS := $(sort $(wildcard test/unit/*.cpp))
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

$(OBJS): $(CORE_LIB)
cmk.so: $(CORE_LIB)

$(UNIT_BIN): $(UNIT_SRCS) $(CORE_LIB)
	$(CXX) -std=c++17 -O1 -g -Isrc/core -Itest/unit -o $@ $(UNIT_SRCS) $(CORE_LIB) -lgtest -lgtest_main $(CORE_LIBS)

.PHONY: unit
unit: $(UNIT_BIN)
	$(UNIT_BIN)

-include $(CORE_OBJS:.o=.d)

# Benchmarks (not part of the tests).
build/page_cipher_bench: bench/page_cipher_bench.cpp $(CORE_LIB)
	$(CXX) -std=c++17 -O2 -Isrc/core -o $@ $< $(CORE_LIB) $(CORE_LIBS)
