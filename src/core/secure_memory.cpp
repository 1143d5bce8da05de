// Locked, no-dump, wiped memory for key material (secure_memory.h).
#include "secure_memory.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <mutex>

namespace cmk::secure_memory {

namespace {

constexpr size_t kChunkBytes = 32 * 1024;  // small: every forked backend locks its own copy
constexpr size_t kAlign = 16;
constexpr size_t kMaxChunks = 64;
constexpr size_t kMaxRanges = 64;

// A block: its header, then its bytes. Blocks tile a chunk.
struct Header {
    size_t size;  // bytes after the header
    size_t used;  // 0 = free
};
static_assert(sizeof(Header) == kAlign, "headers keep blocks aligned");

struct Range {
    uintptr_t start, end;  // page-aligned
};

std::mutex mutex;
Range chunks[kMaxChunks];
size_t n_chunks = 0;
Range ranges[kMaxRanges];  // protect()ed pages of others' allocations
size_t n_ranges = 0;
size_t in_use = 0;
bool atfork_registered = false;
char last_error[256];

size_t page_size() {
    static const size_t p = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    return p;
}

void set_error(const char* what, int err) {
    std::snprintf(last_error, sizeof last_error, "%s: %s", what, std::strerror(err));
}

// Locked from now on (pages already present too, without copying them),
// and the pages that fault in later.
int lock(uintptr_t start, uintptr_t end) {
    if (mlock2(reinterpret_cast<void*>(start), end - start, MLOCK_ONFAULT) == 0) return 0;
    if (errno == EINVAL || errno == ENOSYS) return mlock(reinterpret_cast<void*>(start), end - start);
    return -1;
}

void relock_in_child() {
    // The mutex was taken in prepare: the arena is consistent.
    for (size_t i = 0; i < n_chunks; i++) (void)lock(chunks[i].start, chunks[i].end);
    for (size_t i = 0; i < n_ranges; i++) (void)lock(ranges[i].start, ranges[i].end);
    mutex.unlock();
}

void register_atfork() {
    if (atfork_registered) return;
    pthread_atfork([] { mutex.lock(); }, [] { mutex.unlock(); }, relock_in_child);
    atfork_registered = true;
}

// Maps, locks and excludes a chunk of at least `bytes` usable bytes.
bool add_chunk(size_t bytes) {
    if (n_chunks == kMaxChunks) {
        std::snprintf(last_error, sizeof last_error, "more than %zu chunks of locked memory", kMaxChunks);
        return false;
    }
    size_t len = (bytes + sizeof(Header) + page_size() - 1) / page_size() * page_size();
    if (len < kChunkBytes) len = kChunkBytes;
    void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        set_error("cannot map memory for keys", errno);
        return false;
    }
    uintptr_t start = reinterpret_cast<uintptr_t>(m);
    if (madvise(m, len, MADV_DONTDUMP) != 0) {
        set_error("cannot exclude memory for keys from core dumps (madvise MADV_DONTDUMP)", errno);
        munmap(m, len);
        return false;
    }
    if (lock(start, start + len) != 0) {
        set_error("cannot lock memory for keys (mlock; see ulimit -l)", errno);
        munmap(m, len);
        return false;
    }
    register_atfork();
    Header* h = static_cast<Header*>(m);
    h->size = len - sizeof(Header);
    h->used = 0;
    chunks[n_chunks++] = {start, start + len};
    return true;
}

Header* header_of(const void* p) { return reinterpret_cast<Header*>(reinterpret_cast<uintptr_t>(p) - sizeof(Header)); }

Header* next_of(Header* h) { return reinterpret_cast<Header*>(reinterpret_cast<char*>(h + 1) + h->size); }

const Range* chunk_of(const void* p) {
    uintptr_t a = reinterpret_cast<uintptr_t>(p);
    for (size_t i = 0; i < n_chunks; i++)
        if (a >= chunks[i].start && a < chunks[i].end) return &chunks[i];
    return nullptr;
}

void* allocate_locked(size_t n) {
    if (n == 0) n = 1;
    if (n > (SIZE_MAX >> 2)) {
        errno = ENOMEM;
        return nullptr;
    }
    n = (n + kAlign - 1) / kAlign * kAlign;
    for (int attempt = 0; attempt < 2; attempt++) {
        for (size_t c = 0; c < n_chunks; c++) {
            for (Header* h = reinterpret_cast<Header*>(chunks[c].start); reinterpret_cast<uintptr_t>(h) < chunks[c].end; h = next_of(h)) {
                if (h->used || h->size < n) continue;
                if (h->size >= n + sizeof(Header) + kAlign) {  // split
                    Header* rest = reinterpret_cast<Header*>(reinterpret_cast<char*>(h + 1) + n);
                    rest->size = h->size - n - sizeof(Header);
                    rest->used = 0;
                    h->size = n;
                }
                h->used = 1;
                in_use += h->size;
                return h + 1;
            }
        }
        if (attempt == 0 && !add_chunk(n)) break;
    }
    errno = ENOMEM;
    return nullptr;
}

void release_locked(void* p) {
    const Range* c = chunk_of(p);
    Header* h = header_of(p);
    OPENSSL_cleanse(p, h->size);
    h->used = 0;
    in_use -= h->size;
    // Merge with the free blocks around it (the chunk is walked from its
    // start: blocks are few).
    Header* prev = nullptr;
    for (Header* b = reinterpret_cast<Header*>(c->start); b != h; b = next_of(b)) prev = b;
    Header* next = next_of(h);
    if (reinterpret_cast<uintptr_t>(next) < c->end && !next->used) {
        h->size += sizeof(Header) + next->size;
        OPENSSL_cleanse(next, sizeof(Header));
    }
    if (prev && !prev->used) {
        prev->size += sizeof(Header) + h->size;
        OPENSSL_cleanse(h, sizeof(Header));
    }
}

}  // namespace

bool init() noexcept {
    std::lock_guard<std::mutex> g(mutex);
    return n_chunks > 0 || add_chunk(kChunkBytes - sizeof(Header));
}

std::string error() {
    std::lock_guard<std::mutex> g(mutex);
    return last_error;
}

void* allocate(size_t n) noexcept {
    std::lock_guard<std::mutex> g(mutex);
    return allocate_locked(n);
}

void release(void* p) noexcept {
    if (!p) return;
    std::lock_guard<std::mutex> g(mutex);
    if (chunk_of(p)) release_locked(p);
}

void* reallocate(void* p, size_t n) noexcept {
    if (!p) return allocate(n);
    std::lock_guard<std::mutex> g(mutex);
    if (!chunk_of(p)) {
        errno = EINVAL;
        return nullptr;
    }
    Header* h = header_of(p);
    if (n <= h->size) return p;
    void* q = allocate_locked(n);
    if (!q) return nullptr;
    std::memcpy(q, p, header_of(p)->size);
    release_locked(p);
    return q;
}

bool contains(const void* p) noexcept {
    std::lock_guard<std::mutex> g(mutex);
    return chunk_of(p) != nullptr;
}

bool protect(const void* p, size_t n) noexcept {
    std::lock_guard<std::mutex> g(mutex);
    uintptr_t start = reinterpret_cast<uintptr_t>(p) / page_size() * page_size();
    uintptr_t end = (reinterpret_cast<uintptr_t>(p) + n + page_size() - 1) / page_size() * page_size();
    for (size_t i = 0; i < n_ranges; i++)
        if (ranges[i].start <= start && end <= ranges[i].end) return true;
    if (n_ranges == kMaxRanges) {
        std::snprintf(last_error, sizeof last_error, "more than %zu protected ranges", kMaxRanges);
        return false;
    }
    if (madvise(reinterpret_cast<void*>(start), end - start, MADV_DONTDUMP) != 0) {
        set_error("cannot exclude a cipher context from core dumps (madvise MADV_DONTDUMP)", errno);
        return false;
    }
    if (lock(start, end) != 0) {
        set_error("cannot lock a cipher context in memory (mlock; see ulimit -l)", errno);
        return false;
    }
    register_atfork();
    ranges[n_ranges++] = {start, end};
    return true;
}

#if defined(__x86_64__)
namespace {
__attribute__((noinline, target("avx"))) void vzeroall() { __builtin_ia32_vzeroall(); }
__attribute__((noinline)) void pxor_all() {
    __asm__ __volatile__(
        "pxor %%xmm0, %%xmm0\n\tpxor %%xmm1, %%xmm1\n\tpxor %%xmm2, %%xmm2\n\tpxor %%xmm3, %%xmm3\n\t"
        "pxor %%xmm4, %%xmm4\n\tpxor %%xmm5, %%xmm5\n\tpxor %%xmm6, %%xmm6\n\tpxor %%xmm7, %%xmm7\n\t"
        "pxor %%xmm8, %%xmm8\n\tpxor %%xmm9, %%xmm9\n\tpxor %%xmm10, %%xmm10\n\tpxor %%xmm11, %%xmm11\n\t"
        "pxor %%xmm12, %%xmm12\n\tpxor %%xmm13, %%xmm13\n\tpxor %%xmm14, %%xmm14\n\tpxor %%xmm15, %%xmm15"
        :
        :
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12",
          "xmm13", "xmm14", "xmm15");
}
// xmm16-31 exist with AVX-512, and glibc's memcpy ("evex" variants) uses
// them: copying a key schedule leaves its last bytes there.
__attribute__((noinline, target("avx512f"))) void clear_upper16() {
    __asm__ __volatile__(
        "vpxord %%zmm16, %%zmm16, %%zmm16\n\tvpxord %%zmm17, %%zmm17, %%zmm17\n\t"
        "vpxord %%zmm18, %%zmm18, %%zmm18\n\tvpxord %%zmm19, %%zmm19, %%zmm19\n\t"
        "vpxord %%zmm20, %%zmm20, %%zmm20\n\tvpxord %%zmm21, %%zmm21, %%zmm21\n\t"
        "vpxord %%zmm22, %%zmm22, %%zmm22\n\tvpxord %%zmm23, %%zmm23, %%zmm23\n\t"
        "vpxord %%zmm24, %%zmm24, %%zmm24\n\tvpxord %%zmm25, %%zmm25, %%zmm25\n\t"
        "vpxord %%zmm26, %%zmm26, %%zmm26\n\tvpxord %%zmm27, %%zmm27, %%zmm27\n\t"
        "vpxord %%zmm28, %%zmm28, %%zmm28\n\tvpxord %%zmm29, %%zmm29, %%zmm29\n\t"
        "vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31"
        :
        :
        : "xmm16", "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26",
          "xmm27", "xmm28", "xmm29", "xmm30", "xmm31");
}
int vector_level() {
    __builtin_cpu_init();  // may run before libgcc's constructor otherwise
    return __builtin_cpu_supports("avx512f") ? 2 : __builtin_cpu_supports("avx") ? 1 : 0;
}
const int level = vector_level();
}  // namespace

void clear_vector_registers() noexcept {
    if (level == 0) {
        pxor_all();
        return;
    }
    vzeroall();  // zmm0-15 whole with AVX-512
    if (level == 2) clear_upper16();
}
#else
void clear_vector_registers() noexcept {}
#endif

__attribute__((noinline)) void wipe_stack_below() noexcept {
    unsigned char stack[16384];
    OPENSSL_cleanse(stack, sizeof stack);
    clear_vector_registers();
    __asm__ __volatile__("" : : "r"(stack) : "memory");
}

size_t bytes_in_use() noexcept {
    std::lock_guard<std::mutex> g(mutex);
    return in_use;
}

size_t chunk_count() noexcept {
    std::lock_guard<std::mutex> g(mutex);
    return n_chunks;
}

}  // namespace cmk::secure_memory

#include "error.h"
#include "secure_bytes.h"

namespace cmk {

void throw_no_secure_memory(size_t bytes) {
    throw Error(ErrorKind::Internal,
                "cannot allocate " + std::to_string(bytes) + " bytes of locked memory for key material: " +
                    secure_memory::error(),
                {}, "Raise the memory lock limit of the server (ulimit -l, systemd LimitMEMLOCK=).");
}

}  // namespace cmk
