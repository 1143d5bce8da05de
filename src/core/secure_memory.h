// Memory for key material: locked (never swapped), excluded from core
// dumps, wiped when freed, in this process and in every child it forks.
//
// One arena per process, of chunks mapped with mmap and set up with
// mlock2(MLOCK_ONFAULT) and MADV_DONTDUMP; blocks are handed out first-fit
// and wiped (OPENSSL_cleanse) when freed. A forked child inherits the
// chunks (MADV_DONTDUMP is kept across fork) but not their locks, so a
// pthread_atfork handler locks them again in the child: the postmaster's
// cipher contexts stay locked in every backend that inherits them, also
// after the backend's first write to them copies the page.
//
// Memory that a library allocates itself (OpenSSL's cipher contexts) can
// be registered with protect(): its pages get the same treatment.
//
// Everything here is thread-safe and allocates nothing from the heap.
#pragma once
#include "core_guard.h"

#include <cstddef>
#include <string>

namespace cmk::secure_memory {

// Sets the arena up (its first chunk); idempotent. False if the kernel
// refused to lock or exclude it (error() says why, e.g. RLIMIT_MEMLOCK).
bool init() noexcept;
// Why the last set-up, lock or allocation failed.
std::string error();

// 16-byte aligned; nullptr (errno ENOMEM) if no locked memory is left.
void* allocate(size_t n) noexcept;
// Wipes the block and returns it to the arena; p must come from allocate.
void release(void* p) noexcept;
// Like realloc (the old block is wiped).
void* reallocate(void* p, size_t n) noexcept;
bool contains(const void* p) noexcept;

// Locks the pages of [p, p + n) and excludes them from core dumps, now
// and in forked children. The pages stay so for the process's life.
bool protect(const void* p, size_t n) noexcept;

// Wipes the 16 kB of stack below the caller: libgcrypt's key setup leaves
// round keys there (not on the per-page path: it runs after a cipher
// context is set up).
void wipe_stack_below() noexcept;

// Zeroes the vector registers (vzeroall, and zmm16-31 with AVX-512; the 16
// xmm registers without AVX). libgcrypt's AES leaves round keys in them, where a core dump's
// register notes, or any signal frame or the dynamic linker's lazy-binding
// trampoline, which save them on the stack, would find them. Every xmm
// register is caller-saved in the x86-64 ABI, so a call may clear them.
void clear_vector_registers() noexcept;

// For tests: bytes in use and chunks mapped.
size_t bytes_in_use() noexcept;
size_t chunk_count() noexcept;

}  // namespace cmk::secure_memory
