// One fuzz target = one function cmk_fuzz_<name>(data, size) that feeds the
// bytes to a parser of the core and checks what must hold whatever the
// input (round trips, no crash; sanitizers catch the rest). Built two ways:
// with -DCMK_FUZZ_LIBFUZZER as a libFuzzer binary (fuzz/run.sh, clang,
// ASan+UBSan), and without, into the unit tests, which replay the seed
// corpora of fuzz/corpus/<name>/ (test/unit/test_fuzz_corpora.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#define CMK_FUZZ_CHECK(cond)                                                              \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "fuzz invariant failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            std::abort();                                                                 \
        }                                                                                 \
    } while (0)

#ifdef CMK_FUZZ_LIBFUZZER
#define CMK_FUZZ_TARGET(name)                                                             \
    int cmk_fuzz_##name(const uint8_t* data, size_t size);                                \
    extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {             \
        return cmk_fuzz_##name(data, size);                                               \
    }                                                                                     \
    int cmk_fuzz_##name(const uint8_t* data, size_t size)
#else
#define CMK_FUZZ_TARGET(name) int cmk_fuzz_##name(const uint8_t* data, size_t size)
#endif
