// Byte buffers for key material: in the process's locked memory that core
// dumps leave out (secure_memory.h), wiped when freed or resized, so a DEK
// or a derived key never lingers in freed memory, in swap or in a core.
#pragma once
#include "core_guard.h"

#include "secure_memory.h"

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <vector>

namespace cmk {

// Throws cmk::Error(Internal) naming why when no locked memory is left
// (secure_memory::error(), e.g. the memory lock limit); defined in
// secure_memory.cpp, so that this header needs no error.h.
[[noreturn]] void throw_no_secure_memory(size_t bytes);

template <typename T>
struct CleansingAllocator {
    using value_type = T;
    CleansingAllocator() = default;
    template <typename U>
    CleansingAllocator(const CleansingAllocator<U>&) {}
    T* allocate(std::size_t n) {
        void* p = secure_memory::allocate(n * sizeof(T));
        if (!p) throw_no_secure_memory(n * sizeof(T));
        return static_cast<T*>(p);
    }
    void deallocate(T* p, std::size_t) { secure_memory::release(p); }  // wipes
    template <typename U>
    bool operator==(const CleansingAllocator<U>&) const { return true; }
    template <typename U>
    bool operator!=(const CleansingAllocator<U>&) const { return false; }
};

using SecureBytes = std::vector<uint8_t, CleansingAllocator<uint8_t>>;
// Up to 15 characters live inside the string object itself (the small-
// string optimisation), not in the arena: for key material longer than
// that (a base64 DEK, a client secret).
using SecureString = std::basic_string<char, std::char_traits<char>, CleansingAllocator<char>>;
using Bytes = std::vector<uint8_t>;

}  // namespace cmk
