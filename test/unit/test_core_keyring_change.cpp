// Keyring changes as WAL redo and the primary apply them (key_lifecycle.h,
// the cmk_core_*keyring* entries of capi.h): which generations a change
// needs, the check against the keys held, the file marked with the record's
// position, and the key state that follows (slots, current generation, the
// WAL table, retired keys wiped or kept).
#include "capi.h"
#include "error.h"
#include "key_derivation.h"
#include "key_lifecycle.h"
#include "keyring.h"
#include "testdata/core_test_util.h"

#include <gtest/gtest.h>

#include <memory>

using namespace core_test;

namespace {

constexpr uint64_t kSeg = 16u << 20;

cmk::SecureBytes dek_of(uint8_t seed) {
    cmk::SecureBytes dek(cmk::kDekBytes);
    for (size_t i = 0; i < dek.size(); i++) dek[i] = static_cast<uint8_t>(seed * 7 + i);
    return dek;
}

cmk::KeyringEntry entry_for(uint32_t generation, const std::string& kek = "file:/etc/cmk/kek.pem") {
    cmk::KeyringEntry e;
    e.generation = generation;
    e.created_at = 1700000000ull + generation;
    e.wrapped.algorithm = "RSA-OAEP-256";
    e.wrapped.kek_base = kek;
    e.wrapped.kek_version = "00112233445566778899aabbccddeeff";
    e.wrapped.wrapped.assign(256, static_cast<uint8_t>(generation));
    cmk::SecureBytes dek = dek_of(static_cast<uint8_t>(generation));
    e.check_value = cmk::derive_keys(dek.data(), dek.size()).check_value;
    return e;
}

cmk::Bytes encode(const cmk::Keyring& k) {
    cmk::SecureBytes dek = dek_of(static_cast<uint8_t>(k.current_generation));
    return cmk::encode_keyring(k, cmk::derive_keys(dek.data(), dek.size()).keyring_mac);
}

cmk::Keyring keyring_of(std::vector<uint32_t> generations, uint32_t current) {
    cmk::Keyring k;
    k.current_generation = current;
    for (uint32_t g : generations) k.entries.push_back(entry_for(g));
    return k;
}

std::vector<cmk::UnwrappedGeneration> held(std::vector<uint32_t> generations) {
    std::vector<cmk::UnwrappedGeneration> out;
    for (uint32_t g : generations) out.push_back({g, dek_of(static_cast<uint8_t>(g))});
    return out;
}

// A key state holding `generations` as the glue's would after opening k.
std::unique_ptr<cmk_key_state> state_of(const cmk::Keyring& k, std::vector<uint32_t> generations) {
    auto st = std::make_unique<cmk_key_state>();
    std::memset(st.get(), 0, sizeof *st);
    st->wal_segment_bytes = kSeg;
    for (uint32_t g : generations) {
        cmk_key_slot& s = st->slots[st->n_slots++];
        s.generation = g;
        cmk::SecureBytes d = dek_of(static_cast<uint8_t>(g));
        std::memcpy(s.dek, d.data(), CMK_DEK_BYTES);
    }
    cmk::Bytes file = encode(k);
    cmk_error err;
    EXPECT_EQ(cmk_core_apply_keyring(file.data(), file.size(), st.get(), nullptr, 0, nullptr, 0, &err), 0) << err.message;
    return st;
}

bool all_zero(const uint8_t* p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (p[i]) return false;
    return true;
}

cmk_key_slot slot_of(uint32_t generation) {
    cmk_key_slot s{};
    s.generation = generation;
    cmk::SecureBytes d = dek_of(static_cast<uint8_t>(generation));
    std::memcpy(s.dek, d.data(), CMK_DEK_BYTES);
    return s;
}

}  // namespace

TEST(CoreKeyringChange, UnknownGenerationsAreThoseWithoutAKeyInMemory) {
    cmk::Keyring next = keyring_of({1, 2, 5}, 5);
    auto unknown = cmk::unknown_generations(next, held({1, 2, 3}));
    EXPECT_EQ(unknown, std::vector<uint32_t>{5});
    EXPECT_TRUE(cmk::unknown_generations(next, held({1, 2, 5})).empty());
}

TEST(CoreKeyringChange, FinishMarksTheRecordPositionAndTheNewCurrentGeneration) {
    cmk::Keyring before = keyring_of({1}, 1);
    before.entries[0].current_from_lsn = 0;
    cmk::Keyring next = keyring_of({1, 2}, 2);  // a DEK rotation as the primary makes it
    cmk::Bytes file = cmk::finish_keyring_change(encode(next), held({1, 2}), 1, 3, 0x5000123ull);
    cmk::Keyring k = cmk::decode_keyring(file);
    EXPECT_EQ(k.installed_timeline, 3u);
    EXPECT_EQ(k.installed_lsn, 0x5000123ull);
    EXPECT_EQ(k.entry(1).current_from_lsn, 0u) << "the old generation keeps its own";
    EXPECT_EQ(k.entry(2).current_from_lsn, 0x5000123ull) << "the new current one starts at the record";
    cmk::SecureBytes d2 = dek_of(2);
    EXPECT_NO_THROW(cmk::verify_keyring_mac(file, cmk::derive_keys(d2.data(), d2.size()).keyring_mac));
    // The same record on another server (same keys) gives the same bytes.
    EXPECT_EQ(cmk::finish_keyring_change(encode(next), held({2, 1}), 1, 3, 0x5000123ull), file);
}

TEST(CoreKeyringChange, AKekRotationKeepsWhenEachGenerationBecameCurrent) {
    cmk::Keyring next = keyring_of({1, 2}, 2);
    next.entries[1].current_from_lsn = 0x4000000ull;  // from the keyring on disk
    for (auto& e : next.entries) e.wrapped.kek_base = "file:/etc/cmk/kek2.pem";
    cmk::Keyring k = cmk::decode_keyring(cmk::finish_keyring_change(encode(next), held({1, 2}), 2, 1, 0x9000000ull));
    EXPECT_EQ(k.entry(2).current_from_lsn, 0x4000000ull);
    EXPECT_EQ(k.entry(2).wrapped.kek_base, "file:/etc/cmk/kek2.pem");
    EXPECT_EQ(k.installed_lsn, 0x9000000ull);
}

TEST(CoreKeyringChange, AKeyCheckValueThatDoesNotMatchTheKeyHeldIsRefusedWithAHint) {
    cmk::Keyring next = keyring_of({1, 2}, 2);
    std::vector<cmk::UnwrappedGeneration> keys = held({1, 2});
    keys[0].dek = dek_of(99);  // this server holds another key for generation 1
    cmk::Error e = expect_error([&] { cmk::finish_keyring_change(encode(next), keys, 1, 1, 100); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::KeyringCorrupt));
    EXPECT_TRUE(contains(e.what(), "generation 1")) << e.what();
    EXPECT_FALSE(e.hint().empty());
}

TEST(CoreKeyringChange, AnAlteredRecordFailsTheMac) {
    cmk::Bytes bytes = encode(keyring_of({1, 2}, 2));
    bytes[30] ^= 1;  // in the installed LSN: structure still fine
    cmk::Error e = expect_error([&] { cmk::finish_keyring_change(bytes, held({1, 2}), 1, 1, 100); });
    EXPECT_TRUE(contains(e.what(), "authentication code")) << e.what();
}

TEST(CoreKeyringChange, AGenerationWithoutAKeyIsAnInternalErrorNotAnUnwrap) {
    cmk::Error e = expect_error([&] { cmk::finish_keyring_change(encode(keyring_of({1, 2}, 2)), held({1}), 1, 1, 100); });
    EXPECT_EQ(kind_str(e.kind()), kind_str(cmk::ErrorKind::Internal));
}

TEST(CoreKeyringChangeCapi, UnknownAndGenerationsListed) {
    cmk::Keyring k1 = keyring_of({1}, 1);
    auto st = state_of(k1, {1});
    cmk::Bytes next = encode(keyring_of({1, 2, 3}, 3));
    uint32_t gens[CMK_MAX_GENERATIONS];
    uint32_t n = 0;
    cmk_error err;
    ASSERT_EQ(cmk_core_keyring_unknown(next.data(), next.size(), st.get(), gens, &n, &err), 0);
    ASSERT_EQ(n, 2u);
    EXPECT_EQ(gens[0], 2u);
    EXPECT_EQ(gens[1], 3u);
    ASSERT_EQ(cmk_core_keyring_generations(next.data(), next.size(), gens, &n, &err), 0);
    EXPECT_EQ(n, 3u);
    ByteVec junk = bytes_of("not a keyring at all, not at all, not at all, really");
    EXPECT_NE(cmk_core_keyring_unknown(junk.data(), junk.size(), st.get(), gens, &n, &err), 0);
    EXPECT_EQ(err.kind, CMK_ERR_KEYRING_CORRUPT);
}

TEST(CoreKeyringChangeCapi, ADekRotationAddsTheKeyThenSwitchesAndStartsWalTwoSegmentsLater) {
    auto st = state_of(keyring_of({1}, 1), {1});
    EXPECT_EQ(st->current_generation, 1u);
    ASSERT_EQ(st->n_wal, 1u);
    EXPECT_EQ(st->wal[0].from_lsn, 0u);

    cmk::Bytes record = encode(keyring_of({1, 2}, 2));
    cmk_key_slot added = slot_of(2);
    uint8_t* file = nullptr;
    size_t len = 0;
    cmk_error err;
    uint64_t lsn = 5 * kSeg + 1234;
    ASSERT_EQ(cmk_core_finish_keyring_change(record.data(), record.size(), st.get(), &added, 1, 1, lsn, &file, &len, &err), 0)
        << err.message;
    uint32_t seq = st->wal_table_seq;
    ASSERT_EQ(cmk_core_apply_keyring(file, len, st.get(), &added, 1, nullptr, 0, &err), 0) << err.message;
    cmk_core_free(file);
    EXPECT_EQ(st->current_generation, 2u);
    EXPECT_EQ(st->n_slots, 2u);
    EXPECT_EQ(st->installed_lsn, lsn);
    EXPECT_EQ(st->wal_table_seq, seq + 2) << "the table is rewritten under its counter, which ends even";
    ASSERT_EQ(st->n_wal, 2u);
    EXPECT_EQ(st->wal[0].generation, 1u);
    EXPECT_EQ(st->wal[0].from_lsn, 0u);
    EXPECT_EQ(st->wal[1].generation, 2u);
    EXPECT_EQ(st->wal[1].current_from_lsn, lsn);
    EXPECT_EQ(st->wal[1].from_lsn, 7 * kSeg) << "the start of the second segment after the record";
}

TEST(CoreKeyringChangeCapi, ARetirementWipesTheKeyUnlessKept) {
    cmk::Keyring k = keyring_of({1, 2, 3}, 3);
    k.entries[1].current_from_lsn = 2 * kSeg;
    k.entries[2].current_from_lsn = 9 * kSeg + 8;
    auto st = state_of(k, {1, 2, 3});
    ASSERT_EQ(st->n_wal, 3u);
    uint32_t epoch = st->retired_epoch;

    cmk::Keyring without1 = k;
    without1.entries.erase(without1.entries.begin());
    cmk::Bytes file = encode(without1);
    uint32_t keep = 2;  // (a generation a follower still needs; here the one not retired anyway)
    cmk_error err;
    ASSERT_EQ(cmk_core_apply_keyring(file.data(), file.size(), st.get(), nullptr, 0, &keep, 1, &err), 0);
    EXPECT_EQ(st->slots[0].generation, 0u) << "generation 1 is wiped";
    EXPECT_TRUE(all_zero(st->slots[0].dek, CMK_DEK_BYTES));
    EXPECT_EQ(st->retired_epoch, epoch + 1);
    ASSERT_EQ(st->n_wal, 2u);
    EXPECT_EQ(st->wal[0].generation, 2u);
    EXPECT_EQ(st->wal[1].from_lsn, 11 * kSeg);

    // Retiring generation 2 while listing it as kept leaves its key in memory
    // (not in the WAL table: nothing new is encrypted with it).
    cmk::Keyring only3 = without1;
    only3.entries.erase(only3.entries.begin());
    file = encode(only3);
    ASSERT_EQ(cmk_core_apply_keyring(file.data(), file.size(), st.get(), nullptr, 0, &keep, 1, &err), 0);
    EXPECT_EQ(st->slots[1].generation, 2u);
    ASSERT_EQ(st->n_wal, 1u);
    EXPECT_EQ(st->wal[0].generation, 3u);

    // A new generation reuses the wiped slot.
    cmk::Keyring with4 = only3;
    with4.entries.push_back(entry_for(4));
    with4.current_generation = 4;
    file = encode(with4);
    cmk_key_slot added = slot_of(4);
    ASSERT_EQ(cmk_core_apply_keyring(file.data(), file.size(), st.get(), &added, 1, nullptr, 0, &err), 0);
    EXPECT_EQ(st->slots[0].generation, 4u);
    EXPECT_EQ(st->n_slots, 3u);
    EXPECT_EQ(st->slots[1].generation, 0u) << "no longer kept: wiped";
}

TEST(CoreKeyringChangeCapi, WithoutRecordedPositionsTheCurrentGenerationEncryptsWal) {
    // A keyring from before format 2: every current-from LSN is 0.
    auto st = state_of(keyring_of({1, 2}, 2), {1, 2});
    ASSERT_EQ(st->n_wal, 2u);
    EXPECT_EQ(st->wal[1].generation, 2u) << "ties: the current generation last, so it wins at every address";
    EXPECT_EQ(st->wal[1].from_lsn, 0u);
}

TEST(CoreKeyringChangeCapi, ApplyRefusesAKeyringWhoseCurrentKeyIsNotHeld) {
    auto st = state_of(keyring_of({1}, 1), {1});
    cmk::Bytes file = encode(keyring_of({1, 2}, 2));
    cmk_error err;
    EXPECT_NE(cmk_core_apply_keyring(file.data(), file.size(), st.get(), nullptr, 0, nullptr, 0, &err), 0);
    EXPECT_EQ(st->current_generation, 1u) << "nothing switched";
}
