// The keyring file parser (keyring.h): any bytes either decode into a
// keyring that encodes back to the same structure, or throw cmk::Error.
#include "fuzz_target.h"

#include "error.h"
#include "key_derivation.h"
#include "keyring.h"

CMK_FUZZ_TARGET(keyring) {
    static const cmk::SecureBytes mac_key = [] {
        uint8_t dek[cmk::kDekBytes];
        for (size_t i = 0; i < sizeof dek; i++) dek[i] = static_cast<uint8_t>(i * 13 + 1);
        return cmk::derive_keys(dek, sizeof dek).keyring_mac;
    }();
    cmk::Bytes file(data, data + size);
    try {
        cmk::verify_keyring_mac(file, mac_key);
    } catch (const cmk::Error&) {
    }
    cmk::Keyring k;
    try {
        k = cmk::decode_keyring(file);
    } catch (const cmk::Error&) {
        return 0;
    }
    CMK_FUZZ_CHECK(!k.entries.empty());
    CMK_FUZZ_CHECK(&k.current() != nullptr);
    cmk::Bytes again;
    try {
        again = cmk::encode_keyring(k, mac_key);
    } catch (const cmk::Error&) {
        return 0;  // a field too long to write back (version 1 had no such limit)
    }
    cmk::Keyring k2 = cmk::decode_keyring(again);
    CMK_FUZZ_CHECK(k2.current_generation == k.current_generation);
    CMK_FUZZ_CHECK(k2.entries.size() == k.entries.size());
    CMK_FUZZ_CHECK(k2.installed_lsn == k.installed_lsn && k2.installed_timeline == k.installed_timeline);
    for (size_t i = 0; i < k.entries.size(); i++) {
        CMK_FUZZ_CHECK(k2.entries[i].generation == k.entries[i].generation);
        CMK_FUZZ_CHECK(k2.entries[i].wrapped.wrapped == k.entries[i].wrapped.wrapped);
        CMK_FUZZ_CHECK(k2.entries[i].wrapped.kek_base == k.entries[i].wrapped.kek_base);
        CMK_FUZZ_CHECK(k2.entries[i].check_value == k.entries[i].check_value);
        CMK_FUZZ_CHECK(k2.entries[i].current_from_lsn == k.entries[i].current_from_lsn);
    }
    cmk::verify_keyring_mac(again, mac_key);  // must not throw
    return 0;
}
