// cmk::secure_memory (locked, no-dump, wiped memory for keys) and the key
// material that lives in it: SecureBytes, the cipher contexts of every XTS
// library, the AES of FF1. The decisive test scans this process's own
// memory as a core dump would see it (every readable mapping without the
// kernel's "dd" flag) for the keys and their AES key schedules.
#include "aes_block.h"
#include "key_derivation.h"
#include "secure_bytes.h"
#include "secure_memory.h"
#include "temp_unit.h"
#include "xts_cipher.h"

#include <gtest/gtest.h>

#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/aes.h>
#include <openssl/rand.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace sm = cmk::secure_memory;

namespace {

struct Mapping {
    uintptr_t start = 0, end = 0;
    std::string perms, flags;
};

// /proc/self/smaps: every mapping with its permissions and VmFlags.
std::vector<Mapping> mappings() {
    std::vector<Mapping> out;
    std::ifstream f("/proc/self/smaps");
    std::string line;
    while (std::getline(f, line)) {
        if (line.rfind("VmFlags:", 0) == 0) {
            if (!out.empty()) out.back().flags = line.substr(8) + " ";
            continue;
        }
        unsigned long a, b;
        char perms[8];
        if (std::sscanf(line.c_str(), "%lx-%lx %7s", &a, &b, perms) == 3 && line.find(':') > line.find(' ')) {
            out.push_back({a, b, perms, {}});
        }
    }
    return out;
}

Mapping mapping_of(const void* p) {
    for (const Mapping& m : mappings())
        if (reinterpret_cast<uintptr_t>(p) >= m.start && reinterpret_cast<uintptr_t>(p) < m.end) return m;
    return {};
}

bool has_flag(const Mapping& m, const char* flag) { return m.flags.find(std::string(" ") + flag + " ") != std::string::npos; }

// Bytes of the process that a core dump would hold (readable, not "dd"),
// searched for each needle. The needles and the copy buffer are in the
// secure arena, so the search itself is not found.
size_t found_in_dumpable_memory(const std::vector<const cmk::SecureBytes*>& needles) {
    size_t found = 0;
    cmk::SecureBytes buf(1 << 16);
    int fd = open("/proc/self/mem", O_RDONLY);
    if (fd < 0) return 0;
    for (const Mapping& m : mappings()) {
        if (m.perms[0] != 'r' || has_flag(m, "dd")) continue;
        for (uintptr_t at = m.start; at < m.end;) {
            size_t len = std::min<uintptr_t>(buf.size(), m.end - at);
            ssize_t got = pread(fd, buf.data(), len, static_cast<off_t>(at));
            if (got <= 0) break;
            for (const cmk::SecureBytes* n : needles)
                if (memmem(buf.data(), static_cast<size_t>(got), n->data(), n->size())) found++;
            // Overlap by 63 bytes so that a needle across two reads is seen.
            at += static_cast<uintptr_t>(got) > 64 && static_cast<size_t>(got) == len ? static_cast<uintptr_t>(got) - 63 : static_cast<uintptr_t>(got);
            if (static_cast<size_t>(got) < len) break;
        }
    }
    close(fd);
    return found;
}

// The key and its AES-256 round keys 2..14 as AES-NI keeps them (natural
// byte order), computed with OpenSSL's AES_set_encrypt_key into the arena
// (its words are in natural order with the x86-64 assembly, big-endian
// values with the C code: round key 0, the key itself, tells which).
std::vector<cmk::SecureBytes> aes256_needles(const uint8_t* key) {
    std::vector<cmk::SecureBytes> out;
    out.emplace_back(key, key + 32);
    auto* ks = static_cast<AES_KEY*>(sm::allocate(sizeof(AES_KEY)));
    AES_set_encrypt_key(key, 256, ks);
    bool natural = std::memcmp(ks->rd_key, key, 16) == 0;
    for (int r = 2; r <= 14; r++) {
        cmk::SecureBytes rk(16);
        for (int w = 0; w < 4; w++) {
            uint32_t v = ks->rd_key[4 * r + w];
            if (natural) {
                std::memcpy(&rk[4 * w], &v, 4);
                continue;
            }
            rk[4 * w] = static_cast<uint8_t>(v >> 24);
            rk[4 * w + 1] = static_cast<uint8_t>(v >> 16);
            rk[4 * w + 2] = static_cast<uint8_t>(v >> 8);
            rk[4 * w + 3] = static_cast<uint8_t>(v);
        }
        out.push_back(std::move(rk));
    }
    sm::release(ks);
    return out;
}

cmk::SecureBytes random_key(size_t n) {
    cmk::SecureBytes k(n);
    RAND_bytes(k.data(), static_cast<int>(n));
    return k;
}

}  // namespace

TEST(SecureMemory, TheTestsRoundKeysAreFips197s) {
    // FIPS 197 Appendix A.3: the AES-256 key and its last round key.
    const uint8_t key[32] = {0x60, 0x3d, 0xeb, 0x10, 0x15, 0xca, 0x71, 0xbe, 0x2b, 0x73, 0xae, 0xf0, 0x85, 0x7d, 0x77, 0x81,
                             0x1f, 0x35, 0x2c, 0x07, 0x3b, 0x61, 0x08, 0xd7, 0x2d, 0x98, 0x10, 0xa3, 0x09, 0x14, 0xdf, 0xf4};
    const uint8_t last[16] = {0xfe, 0x48, 0x90, 0xd1, 0xe6, 0x18, 0x8d, 0x0b, 0x04, 0x6d, 0xf3, 0x44, 0x70, 0x6c, 0x63, 0x1e};
    std::vector<cmk::SecureBytes> n = aes256_needles(key);
    ASSERT_EQ(n.size(), 14u);
    EXPECT_EQ(std::memcmp(n.back().data(), last, 16), 0);
}

TEST(SecureMemory, BlocksAreAlignedDistinctAndWipedWhenReleased) {
    ASSERT_TRUE(sm::init()) << sm::error();
    size_t before = sm::bytes_in_use();
    std::vector<uint8_t*> blocks;
    for (size_t n : {1, 15, 16, 17, 100, 1000, 5000}) {
        auto* p = static_cast<uint8_t*>(sm::allocate(n));
        ASSERT_NE(p, nullptr);
        EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 16, 0u);
        EXPECT_TRUE(sm::contains(p));
        std::memset(p, 0xAB, n);
        for (uint8_t* q : blocks) EXPECT_NE(p, q);
        blocks.push_back(p);
    }
    uint8_t* first = blocks[5];  // the 1000-byte block
    sm::release(first);
    for (size_t i = 0; i < 1000; i++) EXPECT_EQ(first[i], 0) << i;  // wiped (the arena stays mapped)
    blocks.erase(blocks.begin() + 5);
    for (uint8_t* p : blocks) sm::release(p);
    EXPECT_EQ(sm::bytes_in_use(), before);
    int on_stack = 0;
    EXPECT_FALSE(sm::contains(&on_stack));
    sm::release(nullptr);
}

TEST(SecureMemory, FreedBlocksMergeAndLargeOnesGetTheirOwnChunk) {
    ASSERT_TRUE(sm::init());
    size_t before = sm::bytes_in_use();
    // Fill and free a run of small blocks: a block as large as all of them
    // fits where they were, without a new chunk.
    std::vector<void*> small;
    for (int i = 0; i < 50; i++) small.push_back(sm::allocate(64));
    size_t chunks = sm::chunk_count();
    for (void* p : small) sm::release(p);
    void* big = sm::allocate(50 * 64);
    EXPECT_EQ(sm::chunk_count(), chunks);
    sm::release(big);
    void* huge = sm::allocate(200 * 1024);
    ASSERT_NE(huge, nullptr);
    std::memset(huge, 1, 200 * 1024);
    EXPECT_GT(sm::chunk_count(), chunks);
    auto* grown = static_cast<uint8_t*>(sm::reallocate(huge, 300 * 1024));
    ASSERT_NE(grown, nullptr);
    EXPECT_EQ(grown[200 * 1024 - 1], 1);
    sm::release(grown);
    EXPECT_EQ(sm::bytes_in_use(), before);
}

TEST(SecureMemory, ArenaIsLockedAndLeftOutOfCoreDumpsAlsoInAForkedChild) {
    ASSERT_TRUE(sm::init());
    void* p = sm::allocate(32);
    Mapping m = mapping_of(p);
    EXPECT_TRUE(has_flag(m, "dd")) << m.flags;
    EXPECT_TRUE(has_flag(m, "lo")) << m.flags;
    // A page of ordinary heap, protected: the same flags.
    std::vector<uint8_t> heap(10000, 7);
    ASSERT_TRUE(sm::protect(heap.data() + 100, 200)) << sm::error();
    Mapping h = mapping_of(heap.data() + 100);
    EXPECT_TRUE(has_flag(h, "dd")) << h.flags;
    EXPECT_TRUE(has_flag(h, "lo")) << h.flags;
    pid_t child = fork();
    if (child == 0) {
        // fork() drops the locks; cmk's atfork handler takes them again.
        static_cast<uint8_t*>(p)[0] = 1;  // the child's own copy of the page
        heap[100] = 2;
        Mapping c = mapping_of(p), ch = mapping_of(heap.data() + 100);
        _exit((has_flag(c, "dd") && has_flag(c, "lo") && has_flag(ch, "dd") && has_flag(ch, "lo")) ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the child's arena or protected page lost its flags";
    sm::release(p);
}

TEST(SecureMemory, SecureBytesLiveInTheArena) {
    cmk::SecureBytes b(64);
    EXPECT_TRUE(sm::contains(b.data()));
    cmk::SecureString s(100, 'x');
    EXPECT_TRUE(sm::contains(s.data()));
    cmk::DerivedKeys k = cmk::derive_keys(random_key(32).data(), 32);
    for (const cmk::SecureBytes* x : {&k.data_pages, &k.wal, &k.temp_files, &k.temp_tails, &k.keyring_mac})
        EXPECT_TRUE(sm::contains(x->data()));
}

// The decisive one: after cipher contexts are set up and used, no key and
// no round key is anywhere a core dump would see, for every library
// XtsCipher may use (the plain-EVP fallback is the documented exception);
// a round key copied to an ordinary page is the search's positive control.
TEST(SecureMemory, NoKeyScheduleOutsideExcludedMemory) {
    using Backend = cmk::XtsCipher::Backend;
    std::vector<Backend> backends = {Backend::kOpenSsl, Backend::kOpenSslEvp};
    if (cmk::XtsCipher::available(Backend::kLibgcrypt)) backends.push_back(Backend::kLibgcrypt);
    for (Backend backend : backends) {
        SCOPED_TRACE(cmk::XtsCipher::backend_name(backend));
        cmk::SecureBytes key = random_key(64);
        std::vector<cmk::SecureBytes> needles = aes256_needles(key.data()), second = aes256_needles(key.data() + 32);
        for (auto& n : second) needles.push_back(std::move(n));
        std::vector<const cmk::SecureBytes*> all;
        for (const auto& n : needles) all.push_back(&n);
        {
            cmk::XtsCipher xts(key.data(), backend);
            std::vector<uint8_t> page(8176, 3), out(8176);
            uint8_t tweak[16] = {1};
            ASSERT_TRUE(xts.encrypt(page.data(), out.data(), page.size(), tweak));
            ASSERT_TRUE(xts.decrypt(out.data(), out.data(), out.size(), tweak));
            if (xts.key_memory_protected()) EXPECT_EQ(found_in_dumpable_memory(all), 0u) << "keys or round keys in dumpable memory";
        }
        // Positive control: the search sees a round key in ordinary memory.
        void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        ASSERT_NE(page, MAP_FAILED);
        std::memcpy(static_cast<uint8_t*>(page) + 1000, needles[7].data(), 16);
        EXPECT_EQ(found_in_dumpable_memory(all), 1u);
        std::memset(page, 0, 4096);
        munmap(page, 4096);
        // And the AES of FF1, on the same library.
        cmk::SecureBytes aes_key = random_key(32);
        std::vector<cmk::SecureBytes> aes_needles = aes256_needles(aes_key.data());
        std::vector<const cmk::SecureBytes*> aes_all;
        for (const auto& n : aes_needles) aes_all.push_back(&n);
        cmk::AesBlockCipher aes(aes_key.data(), 32, backend);
        uint8_t block[16] = {0};
        ASSERT_TRUE(aes.encrypt_block(block, block));
        if (backend != Backend::kOpenSslEvp) EXPECT_EQ(found_in_dumpable_memory(aes_all), 0u) << "FF1's AES key";
    }
}
