// pg_cmk's WAL directory work: encrypt or decrypt every page of every WAL
// segment in a directory, with the keys of a data directory's keyring.
#pragma once

#include "key_store.h"

#include <string>

namespace cmk {

struct WalDirStats {
    size_t files = 0;
    size_t pages_changed = 0;     // encrypted or decrypted by this run
    size_t pages_already = 0;     // already in the wanted state
    size_t pages_other = 0;       // zeros, or not WAL pages
    size_t pages_stale = 0;       // decrypt: left as stored, not where their header says (recycled segments)
    size_t pages_unneeded = 0;    // decrypt: left as stored, of a generation the keyring no longer holds,
                                  // before the redo point (segments kept by wal_keep_size)
};

// Encrypts in place every plaintext WAL page (current generation).
WalDirStats encrypt_wal_dir(const OpenedKeys& keys, const std::string& dir);
// Decrypts every encrypted WAL page, in place or (out_dir not empty) into
// copies in out_dir. A page of a generation the keyring does not hold is an
// error unless it is stale or lies before redo_before (0: no such point),
// the data directory's redo point: WAL there is not needed by its recovery,
// and a retired generation may still encrypt segments wal_keep_size keeps.
WalDirStats decrypt_wal_dir(const OpenedKeys& keys, const std::string& dir, const std::string& out_dir,
                            uint64_t redo_before = 0);

bool is_wal_segment_name(const std::string& name);

}  // namespace cmk
