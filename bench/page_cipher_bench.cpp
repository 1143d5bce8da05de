// Microbenchmarks of cmk's per-page work, with the code the server runs:
//   xts          AES-256-XTS over the 8176-byte data unit of an 8 KiB page
//                (by the library the server uses: libgcrypt when available),
//                through the C interface the smgr wrappers call (tweak set
//                per page, cipher context reused);
//   checksum     PostgreSQL's page checksum as Debian's server is built, and
//                as cmk builds it for AVX2 (src/pg/cipher/page_checksum_avx2.c);
//   page write   what the server does per page written
//                (src/pg/cipher/page_cipher.c calling the core's data page,
//                src/core/data_page.cpp):
//                header copy, XTS, generation flag, checksum of the ciphertext;
//   page read    ciphertext checksum, XTS decrypt, plaintext checksum;
//   wal          src/core/wal_page encrypt (copy) and decrypt (in place) of
//                one 8 KiB WAL page, as src/pg/cipher/wal_cipher.c calls them;
//   cold read    a cold sequential scan's per-page work: each page copied
//                from a 256 MiB region (pread from the page cache: memory,
//                not cache) into a 32-page ring (PostgreSQL's bulk-read
//                ring), then read whole (the executor); with decryption in
//                place after the copy (what cmk does), or the copy into a
//                scratch page decrypted into the ring; "extra" lines are the
//                difference to the copy alone, i.e. what cmk adds per page.
// Prints MB/s (of whole 8 KiB pages) and ns per page, of the thread's CPU
// time (time descheduled by other work on a shared machine is left out). bench/cipher.sh runs it
// beside `openssl speed -evp aes-256-xts` and prints the ratios.
#include "capi.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <vector>

extern "C" uint16_t bench_checksum_page_server_build(char* page, uint32_t blkno);
extern "C" uint16_t cmk_checksum_page_avx2(char* page, uint32_t blkno);

namespace {

constexpr size_t kPage = 8192;
constexpr size_t kHeader = 16;
constexpr size_t kPages = 256;  // 2 MiB working set: in L2/L3, like pages just copied from the page cache

using checksum_fn = uint16_t (*)(char*, uint32_t);

// CPU time of this thread: on a shared machine, time spent descheduled is
// not the code's.
double thread_cpu_s() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

// Runs body(i, n) for pages i = 0..kPages-1 repeatedly for `seconds` of
// wall-clock time; returns pages per second of this thread's CPU time.
double measure(double seconds, const std::function<void(size_t, uint32_t)>& body) {
    size_t pages = 0;
    auto start = std::chrono::steady_clock::now();
    auto deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds));
    double cpu0 = thread_cpu_s();
    while (std::chrono::steady_clock::now() < deadline) {
        for (size_t i = 0; i < kPages; i++) body(i, static_cast<uint32_t>(pages + i));
        pages += kPages;
    }
    return pages / (thread_cpu_s() - cpu0);
}

void report(const char* what, double pages_per_s) {
    std::printf("%-28s %6.0f MB/s, %5.0f ns/page\n", what, pages_per_s * kPage / 1e6, 1e9 / pages_per_s);
}

void tweak_for(uint32_t blk, uint8_t tweak[CMK_XTS_TWEAK_BYTES]) {
    std::memset(tweak, 0, CMK_XTS_TWEAK_BYTES);
    std::memcpy(tweak + 4, &blk, 4);
}

// A WAL page header as XLogWrite hands it over: magic, no generation yet,
// tli 1, pageaddr = its place in the WAL.
void make_wal_page(uint8_t* page, uint64_t pageaddr) {
    std::memset(page, 0, 24);
    uint16_t magic = CMK_WAL_PAGE_MAGIC, info = 0;
    uint32_t tli = 1;
    std::memcpy(page, &magic, 2);
    std::memcpy(page + 2, &info, 2);
    std::memcpy(page + 4, &tli, 4);
    std::memcpy(page + 8, &pageaddr, 8);
}

}  // namespace

int main(int argc, char** argv) {
    double seconds = argc > 1 ? std::atof(argv[1]) : 3.0;
    uint8_t dek[CMK_DEK_BYTES];
    for (size_t i = 0; i < sizeof dek; i++) dek[i] = static_cast<uint8_t>(i * 7 + 1);
    cmk_error err;
    cmk_xts* xts = cmk_xts_create(dek, CMK_PURPOSE_DATA_PAGES, &err);
    cmk_xts* wal = xts ? cmk_xts_create(dek, CMK_PURPOSE_WAL, &err) : nullptr;
    if (!xts || !wal) {
        std::fprintf(stderr, "%s\n", err.message);
        return 1;
    }
    std::printf("XTS by %s\n", cmk_xts_backend(xts));
    std::vector<unsigned char> a(kPages * kPage), b(kPages * kPage);
    for (size_t i = 0; i < a.size(); i++) a[i] = static_cast<unsigned char>(i * 31 + 7);
    auto page_a = [&](size_t i) { return reinterpret_cast<char*>(a.data() + i * kPage); };
    auto page_b = [&](size_t i) { return reinterpret_cast<char*>(b.data() + i * kPage); };
    uint8_t tweak[CMK_XTS_TWEAK_BYTES];
    volatile unsigned sink = 0;

    auto xts_encrypt = [&](size_t i, uint32_t blk) {
        tweak_for(blk, tweak);
        if (cmk_xts_encrypt(xts, reinterpret_cast<uint8_t*>(page_a(i)) + kHeader,
                            reinterpret_cast<uint8_t*>(page_b(i)) + kHeader, kPage - kHeader, tweak) != 0)
            std::abort();
    };
    auto xts_decrypt = [&](size_t i, uint32_t blk) {
        tweak_for(blk, tweak);
        if (cmk_xts_decrypt(xts, reinterpret_cast<uint8_t*>(page_b(i)) + kHeader,
                            reinterpret_cast<uint8_t*>(page_a(i)) + kHeader, kPage - kHeader, tweak) != 0)
            std::abort();
    };
    measure(0.2, xts_encrypt);  // warm up
    double enc = measure(seconds, xts_encrypt);
    double dec = measure(seconds, xts_decrypt);
    // The first two lines are what bench/report.py reads.
    std::printf("cmk page encrypt: %.0f MB/s, %.0f ns/page\n", enc * kPage / 1e6, 1e9 / enc);
    std::printf("cmk page decrypt: %.0f MB/s, %.0f ns/page\n", dec * kPage / 1e6, 1e9 / dec);

    auto checksum_with = [&](checksum_fn f) {
        return [&, f](size_t i, uint32_t blk) { sink += f(page_a(i), blk); };
    };
    report("checksum, server's build", measure(seconds, checksum_with(bench_checksum_page_server_build)));
    report("checksum, cmk's AVX2 build", measure(seconds, checksum_with(cmk_checksum_page_avx2)));
    if (cmk_checksum_page_avx2(page_a(3), 77) != bench_checksum_page_server_build(page_a(3), 77)) {
        std::fprintf(stderr, "the AVX2 checksum differs from the server build's\n");
        return 1;
    }

    // The server's per-page calls (src/pg/cipher/page_cipher.c into the core's
    // data page, src/core/data_page.cpp, through the C interface), checksum
    // by AVX2. The pages are plaintext pages (no generation bits, pd_upper
    // set); a read marks its page encrypted again first (one byte), since
    // each decryption clears the mark.
    for (size_t i = 0; i < kPages; i++) {
        page_a(i)[11] = 0;  // pd_flags' high byte: the generation
        if (page_a(i)[14] == 0 && page_a(i)[15] == 0) page_a(i)[15] = 1;
    }
    const uint32_t relnode = 16384;
    auto page_write = [&](size_t i, uint32_t blk) {
        if (cmk_data_page_encrypt(xts, 1, relnode, blk, cmk_checksum_page_avx2, reinterpret_cast<const uint8_t*>(page_a(i)),
                                  reinterpret_cast<uint8_t*>(page_b(i))) != 1)
            std::abort();
    };
    auto page_read = [&](size_t i, uint32_t blk) {
        page_b(i)[11] |= 1;
        if (cmk_data_page_decrypt(xts, relnode, blk, cmk_checksum_page_avx2, reinterpret_cast<uint8_t*>(page_b(i))) != 1)
            std::abort();
        sink += static_cast<unsigned char>(page_b(i)[8]);
    };
    report("data page write path", measure(seconds, page_write));
    report("data page read path", measure(seconds, page_read));

    // WAL: encrypt a plaintext page into a scratch copy; decrypt it in place.
    for (size_t i = 0; i < kPages; i++) make_wal_page(reinterpret_cast<uint8_t*>(page_a(i)), i * kPage);
    auto wal_encrypt = [&](size_t i, uint32_t) {
        if (cmk_wal_page_encrypt(wal, 1, reinterpret_cast<uint8_t*>(page_a(i)), reinterpret_cast<uint8_t*>(page_b(i))) != 1)
            std::abort();
    };
    // Decrypt in place, then mark the page encrypted again (generation 1 in
    // xlp_info's high byte) so the next round decrypts it too.
    auto wal_decrypt = [&](size_t i, uint32_t) {
        uint8_t* p = reinterpret_cast<uint8_t*>(page_b(i));
        if (cmk_wal_page_decrypt(wal, p) != 1) std::abort();
        p[3] |= 1;
    };
    report("WAL page encrypt", measure(seconds, wal_encrypt));
    report("WAL page decrypt", measure(seconds, wal_decrypt));

    // Cold read: the three variants alternate, 5 rounds, medians.
    constexpr size_t kCachePages = 32768, kRing = 32;
    std::vector<unsigned char> cache(kCachePages * kPage), ring(kRing * kPage), scratch(kPage);
    for (size_t i = 0; i < cache.size(); i += 64) cache[i] = static_cast<unsigned char>(i >> 6);
    size_t next = 0;
    auto read_page = [&](unsigned char* p) {  // the executor reads the whole page
        unsigned acc = 0;
        for (size_t k = 0; k < kPage; k += 64) acc += p[k];
        sink += acc;
    };
    auto copy_only = [&](size_t i, uint32_t) {
        unsigned char* dst = ring.data() + (i % kRing) * kPage;
        std::memcpy(dst, cache.data() + (next++ % kCachePages) * kPage, kPage);
        read_page(dst);
    };
    auto copy_in_place = [&](size_t i, uint32_t blk) {
        unsigned char* dst = ring.data() + (i % kRing) * kPage;
        std::memcpy(dst, cache.data() + (next++ % kCachePages) * kPage, kPage);
        tweak_for(blk, tweak);
        if (cmk_xts_decrypt(xts, dst + kHeader, dst + kHeader, kPage - kHeader, tweak) != 0) std::abort();
        read_page(dst);
    };
    auto copy_via_scratch = [&](size_t i, uint32_t blk) {
        unsigned char* dst = ring.data() + (i % kRing) * kPage;
        std::memcpy(scratch.data(), cache.data() + (next++ % kCachePages) * kPage, kPage);
        std::memcpy(dst, scratch.data(), kHeader);
        tweak_for(blk, tweak);
        if (cmk_xts_decrypt(xts, scratch.data() + kHeader, dst + kHeader, kPage - kHeader, tweak) != 0) std::abort();
        read_page(dst);
    };
    std::vector<double> c0, c1, c2;
    for (int r = 0; r < 5; r++) {
        c0.push_back(1e9 / measure(seconds / 5, copy_only));
        c1.push_back(1e9 / measure(seconds / 5, copy_in_place));
        c2.push_back(1e9 / measure(seconds / 5, copy_via_scratch));
    }
    auto median = [](std::vector<double> v) { std::sort(v.begin(), v.end()); return v[v.size() / 2]; };
    std::printf("cold read: copy only %.0f ns/page; extra for decrypt in place %.0f ns, via a scratch page %.0f ns\n",
                median(c0), median(c1) - median(c0), median(c2) - median(c0));
    cmk_xts_free(wal);
    cmk_xts_free(xts);
    return sink == 0xFFFFFFFF;  // keeps the checksums from being optimized away
}
