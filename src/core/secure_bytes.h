// Byte buffers for key material: wiped with OPENSSL_cleanse when freed or
// resized, so a DEK never lingers in freed heap memory.
#pragma once
#include "core_guard.h"

#include <cstddef>
#include <cstdint>
#include <vector>

#include <openssl/crypto.h>

namespace cmk {

template <typename T>
struct CleansingAllocator {
    using value_type = T;
    CleansingAllocator() = default;
    template <typename U>
    CleansingAllocator(const CleansingAllocator<U>&) {}
    T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
    void deallocate(T* p, std::size_t n) {
        OPENSSL_cleanse(p, n * sizeof(T));
        ::operator delete(p);
    }
    template <typename U>
    bool operator==(const CleansingAllocator<U>&) const { return true; }
    template <typename U>
    bool operator!=(const CleansingAllocator<U>&) const { return false; }
};

using SecureBytes = std::vector<uint8_t, CleansingAllocator<uint8_t>>;
using Bytes = std::vector<uint8_t>;

}  // namespace cmk
