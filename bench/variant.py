#!/usr/bin/env python3
"""Turns an exported copy of cmk's source into a measuring variant of the page
cipher, for bench/run.sh's systems cmk_nocipher and cmk_timed. Never run it on
the repository: the result does not encrypt (nocipher) or logs timings (timed),
and bench/run.sh only ever loads it from the bench directory.

  nocipher  every XtsCipher encrypt/decrypt call copies its input (in place:
            does nothing), so the server runs all of cmk (binding, hooks,
            page classification, generation bits, key lookups) but the AES;
            what select-only loses to it is cmk without its cipher. Its
            server log says "AES-256-XTS by NOTHING: ... NOT encrypted".
  timed     the real cipher, each call timed with the TSC; each process
            writes its count and mean to stderr (the server log) at exit, the
            TSC's rate measured against CLOCK_MONOTONIC over its lifetime.
            When CMK_BENCH_TIMED_FILE names a file of 32 bytes in the
            server's environment, every process also adds its calls and
            cycles to it as they happen (decrypt calls, decrypt cycles,
            encrypt calls, encrypt cycles: little-endian uint64 each), so
            bench/suite.sh reads what one measurement cost, whichever
            processes (backend, parallel workers, WAL writer, checkpointer)
            did the work.

Usage: variant.py nocipher|timed SRC_DIR  (edits SRC_DIR/src/core/xts_cipher.cpp;
exits non-zero when the code it replaces is not there, e.g. after a change
to xts_cipher.cpp: then this script must follow it).
"""
import sys

CALL = """    bool ok = gcrypt_ ? xts_libgcrypt::crypt(gcrypt_, {enc}, in, out, len, tweak)
                      : xts_openssl::crypt(openssl_, {enc}, in, out, len, tweak);
    secure_memory::clear_vector_registers();
    return ok;"""

NOCIPHER = """    (void) tweak;  // bench variant "nocipher": no AES
    if (in != out) std::memcpy(out, in, len);
    return true;"""

TIMED = """    const uint64_t t0 = __rdtsc();  // bench variant "timed"
    bool ok = gcrypt_ ? xts_libgcrypt::crypt(gcrypt_, {enc}, in, out, len, tweak)
                      : xts_openssl::crypt(openssl_, {enc}, in, out, len, tweak);
    secure_memory::clear_vector_registers();
    bench_timed.add({enc}, len, __rdtsc() - t0);
    return ok;"""

TIMED_STATS = """
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>
#include <cstdio>
#include <cstdlib>

namespace {
// Calls of 8 kB pages (a data page's 8,176 encrypted bytes, a WAL page's
// 8,168); shorter calls (temporary-file units' tails) are not counted.
struct BenchTimed {
    uint64_t n[2] = {0, 0}, cycles[2] = {0, 0}, tsc0 = 0;
    uint64_t* shared = nullptr;  // CMK_BENCH_TIMED_FILE, mapped at the first call
    struct timespec ts0 {};
    void add(bool enc, size_t len, uint64_t c) {
        if (len < 8000) return;
        if (tsc0 == 0) {
            clock_gettime(CLOCK_MONOTONIC, &ts0);
            tsc0 = __rdtsc();
            if (const char* path = std::getenv("CMK_BENCH_TIMED_FILE")) {
                int fd = open(path, O_RDWR | O_CLOEXEC);
                if (fd >= 0) {
                    void* p = mmap(nullptr, 4 * sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                    if (p != MAP_FAILED) shared = static_cast<uint64_t*>(p);
                    close(fd);
                }
            }
        }
        n[enc]++;
        cycles[enc] += c;
        if (shared) {
            __atomic_fetch_add(&shared[enc ? 2 : 0], 1, __ATOMIC_RELAXED);
            __atomic_fetch_add(&shared[enc ? 3 : 1], c, __ATOMIC_RELAXED);
        }
    }
    ~BenchTimed() {
        if (n[0] + n[1] == 0) return;
        struct timespec ts1;
        clock_gettime(CLOCK_MONOTONIC, &ts1);
        const uint64_t tsc1 = __rdtsc();
        const double ns = (ts1.tv_sec - ts0.tv_sec) * 1e9 + (ts1.tv_nsec - ts0.tv_nsec);
        std::fprintf(stderr, "cmk bench timed: pid %d decrypt %llu calls %llu cycles encrypt %llu calls %llu cycles tsc %llu ns %.0f\\n",
                     (int) getpid(), (unsigned long long) n[0], (unsigned long long) cycles[0],
                     (unsigned long long) n[1], (unsigned long long) cycles[1],
                     (unsigned long long) (tsc1 - tsc0), ns);
    }
} bench_timed;
}  // namespace
"""


def main():
    kind, src = sys.argv[1], sys.argv[2]
    path = f"{src}/src/core/xts_cipher.cpp"
    text = open(path, encoding="utf-8").read()
    for enc in ("true", "false"):
        old = CALL.format(enc=enc)
        if text.count(old) != 1:
            sys.exit(f"variant.py: {path} does not hold the cipher call this script replaces ({enc}); update bench/variant.py")
        text = text.replace(old, NOCIPHER if kind == "nocipher" else TIMED.format(enc=enc))
    if kind == "nocipher":
        # The server log names the cipher at start-up: let it say what this is.
        head = "const char* XtsCipher::backend_name(Backend backend) {\n"
        if text.count(head) != 1:
            sys.exit(f"variant.py: no backend_name() in {path}; update bench/variant.py")
        text = text.replace(head, head + '    (void) backend;\n    return "NOTHING: bench/variant.py nocipher build, pages are NOT encrypted";\n')
    if kind == "timed":
        anchor = "namespace cmk {\n"
        if anchor not in text:
            sys.exit(f"variant.py: no '{anchor.strip()}' in {path}")
        text = text.replace(anchor, TIMED_STATS + "\n" + anchor, 1)
    elif kind != "nocipher":
        sys.exit("variant.py: nocipher or timed")
    open(path, "w", encoding="utf-8").write(text)


main()
