// The one place where C++ exceptions stop: every C entry runs its body in
// guarded(), which turns any exception into a cmk_error.
#include "capi.h"

#include "error.h"
#include "key_derivation.h"
#include "key_lifecycle.h"
#include "azure/azure_environment.h"
#include "key_store.h"
#include "secure_memory.h"
#include "verify.h"
#include "verify_control.h"
#include "data_page.h"
#include "temp_unit.h"
#include "wal_page.h"
#include "xts_cipher.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#define CMK_EXPORT extern "C" __attribute__((visibility("default")))

namespace {

void copy_text(char* dst, size_t cap, const std::string& src) {
    std::snprintf(dst, cap, "%s", src.c_str());
}

cmk_error_kind to_c(cmk::ErrorKind kind) {
    switch (kind) {
    case cmk::ErrorKind::Config: return CMK_ERR_CONFIG;
    case cmk::ErrorKind::KeyUnavailable: return CMK_ERR_KEY_UNAVAILABLE;
    case cmk::ErrorKind::WrongKey: return CMK_ERR_WRONG_KEY;
    case cmk::ErrorKind::KeyringCorrupt: return CMK_ERR_KEYRING_CORRUPT;
    case cmk::ErrorKind::Transient: return CMK_ERR_TRANSIENT;
    case cmk::ErrorKind::Protocol: return CMK_ERR_PROTOCOL;
    case cmk::ErrorKind::Io: return CMK_ERR_IO;
    case cmk::ErrorKind::Crypto: return CMK_ERR_CRYPTO;
    case cmk::ErrorKind::Internal: return CMK_ERR_INTERNAL;
    }
    return CMK_ERR_INTERNAL;
}

// Key material may have passed through the stack and the vector registers
// of what body called (libraries' key setup, copies): wiped on the way out.
struct WipeOnExit {
    ~WipeOnExit() { cmk::secure_memory::wipe_stack_below(); }
};

template <typename Body>
int guarded(cmk_error* err, Body&& body) noexcept {
    WipeOnExit wipe;
    if (err) std::memset(err, 0, sizeof *err);
    try {
        body();
        return 0;
    } catch (const cmk::Error& e) {
        if (err) {
            err->kind = to_c(e.kind());
            copy_text(err->message, sizeof err->message, e.what());
            copy_text(err->detail, sizeof err->detail, e.detail());
            copy_text(err->hint, sizeof err->hint, e.hint());
        }
    } catch (const std::bad_alloc&) {
        if (err) {
            err->kind = CMK_ERR_INTERNAL;
            copy_text(err->message, sizeof err->message, "out of memory");
        }
    } catch (const std::exception& e) {
        if (err) {
            err->kind = CMK_ERR_INTERNAL;
            copy_text(err->message, sizeof err->message, std::string("internal error: ") + e.what());
        }
    } catch (...) {
        if (err) {
            err->kind = CMK_ERR_INTERNAL;
            copy_text(err->message, sizeof err->message, "internal error");
        }
    }
    return -1;
}

cmk::ProviderSettings to_settings(const cmk_provider_settings* s) {
    cmk::ProviderSettings out;
    if (!s) return out;
    if (s->wrap_algorithm && *s->wrap_algorithm) out.wrap_algorithm = s->wrap_algorithm;
    if (s->api_version && *s->api_version) out.api_version = s->api_version;
    if (s->auth && *s->auth) out.auth = s->auth;
    if (s->ca_file && *s->ca_file) out.ca_file = s->ca_file;
    if (s->request_timeout_ms > 0) out.request_timeout_ms = s->request_timeout_ms;
    if (s->retry_total_ms > 0) out.retry_total_ms = s->retry_total_ms;
    if (s->allowed_key_urls) out.allowed_key_urls = s->allowed_key_urls;
    out.allow_purgeable_key = s->allow_purgeable_key != 0;
    for (const char* e = s->environment; e && *e; e += std::strlen(e) + 1) {
        const char* eq = std::strchr(e, '=');
        if (eq) out.environment[std::string(e, eq)] = cmk::SecureString(eq + 1);
    }
    return out;
}

}  // namespace

namespace {

std::string join_lines(const std::vector<std::string>& lines) {
    std::string all;
    for (const auto& l : lines) all += l + "\n";
    return all;
}

bool holds(const cmk_key_state* state, uint32_t generation) {
    for (uint32_t i = 0; i < state->n_slots; i++)
        if (state->slots[i].generation == generation) return true;
    return false;
}

// The WAL table of *state from the keyring (generations whose keys are held),
// under its sequence counter: readers retry while it is odd or moved.
void set_wal_table(cmk_key_state* state, const cmk::Keyring& k) {
    std::vector<cmk_wal_generation> t;
    uint64_t seg = state->wal_segment_bytes ? state->wal_segment_bytes : (16u << 20);
    for (const auto& e : k.entries)
        if (holds(state, e.generation))
            t.push_back({e.current_from_lsn ? (e.current_from_lsn / seg + 2) * seg : 0, e.current_from_lsn, e.generation});
    // Ties (keyrings written before WAL from LSNs existed): the current one last.
    std::sort(t.begin(), t.end(), [&](const cmk_wal_generation& a, const cmk_wal_generation& b) {
        if (a.from_lsn != b.from_lsn) return a.from_lsn < b.from_lsn;
        bool ac = a.generation == k.current_generation, bc = b.generation == k.current_generation;
        if (ac != bc) return bc;
        return a.generation < b.generation;
    });
    __atomic_add_fetch(&state->wal_table_seq, 1, __ATOMIC_ACQ_REL);
    for (size_t i = 0; i < t.size(); i++) state->wal[i] = t[i];
    state->n_wal = static_cast<uint32_t>(t.size());
    __atomic_add_fetch(&state->wal_table_seq, 1, __ATOMIC_ACQ_REL);
}

void set_kek_fields(cmk_key_state* state, const cmk::Keyring& k) {
    const cmk::KeyringEntry& cur = k.current();
    copy_text(state->kek_base, sizeof state->kek_base, cur.wrapped.kek_base);
    copy_text(state->kek_version, sizeof state->kek_version, cur.wrapped.kek_version);
    copy_text(state->wrap_algorithm, sizeof state->wrap_algorithm, cur.wrapped.algorithm);
    state->created_at = static_cast<int64_t>(cur.created_at);
    state->installed_timeline = k.installed_timeline;
    state->installed_lsn = k.installed_lsn;
    cmk::KeyUrl url = cmk::parse_key_url(cur.wrapped.kek_base);
    copy_text(state->provider, sizeof state->provider, url.kind == cmk::KeyUrl::Kind::File ? "file" : "azure-key-vault");
}

}  // namespace

CMK_EXPORT int cmk_core_open_keys(const char* datadir, const char* key_url, const cmk_provider_settings* settings,
                                  int (*encrypted_data_exists)(void*), void* arg, cmk_key_state* state,
                                  cmk_messages* messages, cmk_error* err) {
    std::vector<std::string> log;
    std::vector<std::string> warnings;
    int rc = guarded(err, [&] {
        cmk::ProviderSettings ps = to_settings(settings);
        ps.log = [&log](const std::string& line) { log.push_back(line); };
        cmk::OpenedKeys keys = cmk::open_or_create_keys(
            datadir, key_url ? key_url : "", ps,
            [&] { return encrypted_data_exists != nullptr && encrypted_data_exists(arg) != 0; });
        uint64_t segment_bytes = state->wal_segment_bytes;
        std::memset(state, 0, sizeof *state);
        state->wal_segment_bytes = segment_bytes;
        const cmk::KeyringEntry& cur = keys.keyring.current();
        state->current_generation = keys.keyring.current_generation;
        state->created_at = static_cast<int64_t>(cur.created_at);
        state->keyring_created = keys.created ? 1 : 0;
        copy_text(state->provider, sizeof state->provider, keys.provider_name);
        copy_text(state->kek_base, sizeof state->kek_base, cur.wrapped.kek_base);
        copy_text(state->kek_version, sizeof state->kek_version, cur.wrapped.kek_version);
        copy_text(state->wrap_algorithm, sizeof state->wrap_algorithm, cur.wrapped.algorithm);
        state->installed_timeline = keys.keyring.installed_timeline;
        state->installed_lsn = keys.keyring.installed_lsn;
        for (const auto& g : keys.generations) {
            cmk_key_slot& slot = state->slots[state->n_slots++];
            slot.generation = g.generation;
            std::memcpy(slot.dek, g.dek.data(), CMK_DEK_BYTES);
        }
        set_wal_table(state, keys.keyring);
        warnings = keys.warnings;
    });
    if (messages) {
        try {
            copy_text(messages->warnings, sizeof messages->warnings, join_lines(warnings));
            copy_text(messages->log, sizeof messages->log, join_lines(log));
        } catch (...) {
            messages->warnings[0] = messages->log[0] = '\0';
        }
    }
    return rc;
}

namespace {

std::vector<cmk::UnwrappedGeneration> deks_of(const cmk_key_state* state) {
    std::vector<cmk::UnwrappedGeneration> out;
    for (uint32_t i = 0; i < state->n_slots; i++) {
        const cmk_key_slot& slot = state->slots[i];
        if (slot.generation == 0) continue;
        out.push_back({slot.generation, cmk::SecureBytes(slot.dek, slot.dek + CMK_DEK_BYTES)});
    }
    return out;
}

cmk::Keyring read_keyring(const char* datadir) {
    std::string path = cmk::keyring_path(datadir);
    auto file = cmk::read_file_if_exists(path);
    if (!file) throw cmk::Error(cmk::ErrorKind::KeyringCorrupt, "keyring \"" + path + "\" is missing");
    return cmk::decode_keyring(*file);
}

// Runs body with a ProviderSettings whose log lines end up in *messages.
template <typename Body>
int with_provider_log(const cmk_provider_settings* settings, cmk_messages* messages, cmk_error* err, Body&& body) {
    std::vector<std::string> log;
    int rc = guarded(err, [&] {
        cmk::ProviderSettings ps = to_settings(settings);
        ps.log = [&log](const std::string& line) { log.push_back(line); };
        body(ps);
    });
    if (messages) {
        messages->warnings[0] = '\0';
        try {
            copy_text(messages->log, sizeof messages->log, join_lines(log));
        } catch (...) {
            messages->log[0] = '\0';
        }
    }
    return rc;
}

}  // namespace

CMK_EXPORT int cmk_core_check_kek(const char* datadir, const cmk_key_state* state, const cmk_provider_settings* settings,
                                  int want_newest, cmk_kek_check* out, cmk_messages* messages, cmk_error* err) {
    return with_provider_log(settings, messages, err, [&](const cmk::ProviderSettings& ps) {
        cmk::Keyring k = read_keyring(datadir);
        std::vector<cmk::UnwrappedGeneration> deks = deks_of(state);
        const cmk::SecureBytes* dek = nullptr;
        for (const auto& g : deks)
            if (g.generation == k.current_generation) dek = &g.dek;
        if (!dek) throw cmk::Error(cmk::ErrorKind::Internal, "the current key generation is not in memory");
        cmk::KekCheck c = cmk::check_kek(k, *dek, ps, want_newest != 0);
        std::memset(out, 0, sizeof *out);
        copy_text(out->current_version, sizeof out->current_version, c.current.version);
        copy_text(out->newest_version, sizeof out->newest_version, c.newest_version);
        out->enabled = c.current.enabled ? 1 : 0;
        out->expires = c.current.expires ? *c.current.expires : 0;
    });
}

namespace {

void export_keyring(const cmk::Keyring& k, const std::vector<cmk::UnwrappedGeneration>& deks, uint8_t** bytes, size_t* len) {
    const cmk::SecureBytes* dek = nullptr;
    for (const auto& g : deks)
        if (g.generation == k.current_generation) dek = &g.dek;
    if (!dek) throw cmk::Error(cmk::ErrorKind::Internal, "the current key generation is not in memory");
    cmk::Bytes file = cmk::encode_keyring(k, cmk::derive_keys(dek->data(), dek->size()).keyring_mac);
    uint8_t* out = static_cast<uint8_t*>(std::malloc(file.size()));
    if (!out) throw std::bad_alloc();
    std::memcpy(out, file.data(), file.size());
    *bytes = out;
    *len = file.size();
}

}  // namespace

CMK_EXPORT int cmk_core_rewrap_keyring(const char* datadir, const cmk_key_state* state, const char* new_key_url,
                                       const cmk_provider_settings* settings, uint8_t** bytes, size_t* len,
                                       cmk_messages* messages, cmk_error* err) {
    *bytes = nullptr;
    *len = 0;
    return with_provider_log(settings, messages, err, [&](const cmk::ProviderSettings& ps) {
        std::vector<cmk::UnwrappedGeneration> deks = deks_of(state);
        cmk::Keyring next = cmk::rewrap_keyring(read_keyring(datadir), deks, new_key_url ? new_key_url : "", ps);
        export_keyring(next, deks, bytes, len);
    });
}

CMK_EXPORT int cmk_core_add_generation(const char* datadir, const cmk_key_state* state, const cmk_provider_settings* settings,
                                       uint8_t** bytes, size_t* len, cmk_key_slot* new_slot, cmk_messages* messages,
                                       cmk_error* err) {
    *bytes = nullptr;
    *len = 0;
    return with_provider_log(settings, messages, err, [&](const cmk::ProviderSettings& ps) {
        std::vector<cmk::UnwrappedGeneration> deks = deks_of(state);
        cmk::Keyring next = cmk::add_generation(read_keyring(datadir), deks, ps);
        export_keyring(next, deks, bytes, len);
        const cmk::UnwrappedGeneration& added = deks.back();
        std::memcpy(new_slot->dek, added.dek.data(), CMK_DEK_BYTES);
        new_slot->generation = added.generation;
    });
}

CMK_EXPORT int cmk_core_remove_generation(const char* datadir, const cmk_key_state* state, uint32_t generation,
                                          uint8_t** bytes, size_t* len, cmk_error* err) {
    *bytes = nullptr;
    *len = 0;
    return guarded(err, [&] {
        std::vector<cmk::UnwrappedGeneration> deks = deks_of(state);
        export_keyring(cmk::remove_generation(read_keyring(datadir), generation), deks, bytes, len);
    });
}

namespace {

std::vector<cmk::UnwrappedGeneration> deks_with(const cmk_key_state* state, const cmk_key_slot* extra, uint32_t n_extra) {
    std::vector<cmk::UnwrappedGeneration> deks = deks_of(state);
    for (uint32_t i = 0; i < n_extra; i++)
        if (extra[i].generation != 0 && !holds(state, extra[i].generation))
            deks.push_back({extra[i].generation, cmk::SecureBytes(extra[i].dek, extra[i].dek + CMK_DEK_BYTES)});
    return deks;
}

}  // namespace

CMK_EXPORT int cmk_core_keyring_generations(const uint8_t* bytes, size_t len, uint32_t* gens, uint32_t* n,
                                            cmk_error* err) {
    *n = 0;
    return guarded(err, [&] {
        cmk::Keyring k = cmk::decode_keyring(cmk::Bytes(bytes, bytes + len));
        for (const auto& e : k.entries) gens[(*n)++] = e.generation;
    });
}

CMK_EXPORT int cmk_core_keyring_unknown(const uint8_t* bytes, size_t len, const cmk_key_state* state, uint32_t* gens,
                                        uint32_t* n, cmk_error* err) {
    *n = 0;
    return guarded(err, [&] {
        cmk::Keyring next = cmk::decode_keyring(cmk::Bytes(bytes, bytes + len));
        for (uint32_t g : cmk::unknown_generations(next, deks_of(state))) gens[(*n)++] = g;
    });
}

CMK_EXPORT int cmk_core_unwrap_generations(const uint8_t* bytes, size_t len, const uint32_t* gens, uint32_t n,
                                           const cmk_provider_settings* settings, cmk_key_slot* out,
                                           cmk_messages* messages, cmk_error* err) {
    return with_provider_log(settings, messages, err, [&](const cmk::ProviderSettings& ps) {
        cmk::Keyring next = cmk::decode_keyring(cmk::Bytes(bytes, bytes + len));
        auto keys = cmk::unwrap_generations(next, std::vector<uint32_t>(gens, gens + n), ps);
        for (size_t i = 0; i < keys.size(); i++) {
            std::memcpy(out[i].dek, keys[i].dek.data(), CMK_DEK_BYTES);
            out[i].generation = keys[i].generation;
        }
    });
}

CMK_EXPORT int cmk_core_finish_keyring_change(const uint8_t* bytes, size_t len, const cmk_key_state* state,
                                              const cmk_key_slot* extra, uint32_t n_extra, uint32_t timeline,
                                              uint64_t lsn, uint8_t** file, size_t* file_len, cmk_error* err) {
    *file = nullptr;
    *file_len = 0;
    return guarded(err, [&] {
        cmk::Bytes out = cmk::finish_keyring_change(cmk::Bytes(bytes, bytes + len), deks_with(state, extra, n_extra),
                                                    state->current_generation, timeline, lsn);
        uint8_t* p = static_cast<uint8_t*>(std::malloc(out.size()));
        if (!p) throw std::bad_alloc();
        std::memcpy(p, out.data(), out.size());
        *file = p;
        *file_len = out.size();
    });
}

CMK_EXPORT int cmk_core_apply_keyring(const uint8_t* file, size_t len, cmk_key_state* state, const cmk_key_slot* extra,
                                      uint32_t n_extra, const uint32_t* keep, uint32_t n_keep, cmk_error* err) {
    return guarded(err, [&] {
        cmk::Keyring k = cmk::decode_keyring(cmk::Bytes(file, file + len));
        auto in_keyring = [&](uint32_t g) {
            for (const auto& e : k.entries)
                if (e.generation == g) return true;
            return false;
        };
        // Keys of new generations first: a reader sees a slot's generation
        // only after its key (a wiped slot, generation 0, is reused).
        for (uint32_t i = 0; i < n_extra; i++) {
            uint32_t g = extra[i].generation;
            if (g == 0 || !in_keyring(g) || holds(state, g)) continue;
            uint32_t at = state->n_slots;
            for (uint32_t j = 0; j < state->n_slots; j++)
                if (state->slots[j].generation == 0) { at = j; break; }
            if (at == CMK_MAX_GENERATIONS) throw cmk::Error(cmk::ErrorKind::Internal, "no room for another key generation in memory");
            std::memcpy(state->slots[at].dek, extra[i].dek, CMK_DEK_BYTES);
            __atomic_store_n(&state->slots[at].generation, g, __ATOMIC_RELEASE);
            if (at == state->n_slots) __atomic_store_n(&state->n_slots, at + 1, __ATOMIC_RELEASE);
        }
        if (!holds(state, k.current_generation))
            throw cmk::Error(cmk::ErrorKind::Internal, "the new current key generation is not in memory");
        set_kek_fields(state, k);
        set_wal_table(state, k);
        __atomic_store_n(&state->current_generation, k.current_generation, __ATOMIC_RELEASE);
        for (uint32_t i = 0; i < state->n_slots; i++) {
            uint32_t g = state->slots[i].generation;
            bool kept = g == 0 || in_keyring(g);
            for (uint32_t j = 0; j < n_keep; j++) kept = kept || keep[j] == g;
            if (kept) continue;
            __atomic_store_n(&state->slots[i].generation, 0u, __ATOMIC_RELEASE);  // retired
            __atomic_add_fetch(&state->retired_epoch, 1, __ATOMIC_ACQ_REL);
            OPENSSL_cleanse(state->slots[i].dek, CMK_DEK_BYTES);
        }
    });
}

CMK_EXPORT void cmk_core_free(void* p) { std::free(p); }

CMK_EXPORT int cmk_core_check_key_url(const char* key_url, cmk_error* err) {
    return guarded(err, [&] { cmk::parse_key_url(key_url ? key_url : ""); });
}

CMK_EXPORT int cmk_core_check_key_policy(const char* allowed_key_urls, cmk_error* err) {
    return guarded(err, [&] { cmk::KeyUrlPolicy::parse(allowed_key_urls ? allowed_key_urls : ""); });
}

CMK_EXPORT int cmk_core_check_key_allowed(const char* allowed_key_urls, const char* current_kek_base, const char* key_url,
                                          cmk_error* err) {
    return guarded(err, [&] {
        cmk::KeyUrl url = cmk::parse_key_url(key_url ? key_url : "");
        std::string source;
        cmk::KeyUrlPolicy policy =
            cmk::effective_key_policy(allowed_key_urls ? allowed_key_urls : "", current_kek_base ? current_kek_base : "", &source);
        cmk::require_allowed(policy, url, source);
    });
}

CMK_EXPORT int cmk_core_secure_memory_init(cmk_error* err) {
    return guarded(err, [&] {
        if (!cmk::secure_memory::init())
            throw cmk::Error(cmk::ErrorKind::Config, "could not set up locked memory for keys: " + cmk::secure_memory::error(),
                             {}, "Raise the memory lock limit of the server (ulimit -l, systemd LimitMEMLOCK=) to at least 1 MB.");
    });
}

CMK_EXPORT void cmk_core_wipe(void* p, size_t len) { OPENSSL_cleanse(p, len); }

CMK_EXPORT int cmk_core_credential_variable(const char* name) {
    const cmk::azure::EnvironmentVariable* v = name ? cmk::azure::environment_variable(name) : nullptr;
    return v ? (v->secret ? 2 : 1) : 0;
}

struct cmk_xts {
    explicit cmk_xts(const uint8_t* key) : cipher(key) {}
    cmk::XtsCipher cipher;
};

CMK_EXPORT cmk_xts* cmk_xts_create(const uint8_t* dek, cmk_key_purpose purpose, cmk_error* err) {
    cmk_xts* out = nullptr;
    guarded(err, [&] {
        cmk::DerivedKeys keys = cmk::derive_keys(dek, CMK_DEK_BYTES);
        const cmk::SecureBytes& key = purpose == CMK_PURPOSE_WAL ? keys.wal : keys.data_pages;
        out = new cmk_xts(key.data());
    });
    return out;
}

CMK_EXPORT void cmk_xts_free(cmk_xts* xts) { delete xts; }

CMK_EXPORT const char* cmk_xts_backend(const cmk_xts* xts) {
    return cmk::XtsCipher::backend_name(xts->cipher.backend());
}

CMK_EXPORT int cmk_xts_key_memory_protected(const cmk_xts* xts) { return xts->cipher.key_memory_protected() ? 1 : 0; }

CMK_EXPORT int cmk_xts_encrypt(cmk_xts* xts, const uint8_t* in, uint8_t* out, size_t len, const uint8_t* tweak) {
    return xts->cipher.encrypt(in, out, len, tweak) ? 0 : -1;
}

CMK_EXPORT int cmk_xts_decrypt(cmk_xts* xts, const uint8_t* in, uint8_t* out, size_t len, const uint8_t* tweak) {
    return xts->cipher.decrypt(in, out, len, tweak) ? 0 : -1;
}

struct cmk_temp_cipher {
    cmk_temp_cipher(const uint8_t* xts_key, const uint8_t* tail_key) : cipher(xts_key, tail_key) {}
    cmk::TempUnitCipher cipher;
};

CMK_EXPORT cmk_temp_cipher* cmk_temp_cipher_create(const uint8_t* dek, cmk_error* err) {
    cmk_temp_cipher* out = nullptr;
    guarded(err, [&] {
        cmk::DerivedKeys keys = cmk::derive_keys(dek, CMK_DEK_BYTES);
        out = new cmk_temp_cipher(keys.temp_files.data(), keys.temp_tails.data());
    });
    return out;
}

CMK_EXPORT void cmk_temp_cipher_free(cmk_temp_cipher* cipher) { delete cipher; }

CMK_EXPORT uint64_t cmk_temp_path_hash(const char* path) { return cmk::temp_file_path_hash(path, std::strlen(path)); }

CMK_EXPORT int cmk_temp_unit_encrypt(cmk_temp_cipher* c, uint64_t path_hash, uint64_t unit, const uint8_t* in,
                                     uint8_t* out, size_t len) {
    return c->cipher.encrypt(path_hash, unit, in, out, len) ? 0 : -1;
}

CMK_EXPORT int cmk_temp_unit_decrypt(cmk_temp_cipher* c, uint64_t path_hash, uint64_t unit, const uint8_t* in,
                                     uint8_t* out, size_t len) {
    return c->cipher.decrypt(path_hash, unit, in, out, len) ? 0 : -1;
}

static_assert(CMK_KEY_URL_MAX == cmk::kMaxKeyUrlBytes, "one key URL limit");
static_assert(CMK_WAL_PAGE_MAGIC == cmk::kWalPageMagic, "one WAL page magic");
static_assert(CMK_WAL_GENERATION_MASK == cmk::kWalGenerationMask, "one WAL generation mask");

CMK_EXPORT cmk_data_page_kind cmk_data_page_classify(const uint8_t* page) {
    switch (cmk::data_page_kind(page)) {
    case cmk::DataPageKind::New: return CMK_DATA_PAGE_NEW;
    case cmk::DataPageKind::Plaintext: return CMK_DATA_PAGE_PLAINTEXT;
    case cmk::DataPageKind::Encrypted: break;
    }
    return CMK_DATA_PAGE_ENCRYPTED;
}

CMK_EXPORT uint32_t cmk_data_page_generation(const uint8_t* page) { return cmk::data_page_generation(page); }

CMK_EXPORT int cmk_data_page_encrypt(cmk_xts* xts, uint32_t generation, uint32_t relfilenode, uint32_t blkno,
                                     cmk_page_checksum_fn checksum, const uint8_t* in, uint8_t* out) {
    return cmk::data_page_encrypt(xts->cipher, generation, relfilenode, blkno, checksum, in, out) ? 1 : 0;
}

CMK_EXPORT int cmk_data_page_decrypt(cmk_xts* xts, uint32_t relfilenode, uint32_t blkno, cmk_page_checksum_fn checksum,
                                     uint8_t* page) {
    return cmk::data_page_decrypt(xts->cipher, relfilenode, blkno, page, checksum) ? 1 : 0;
}

CMK_EXPORT uint32_t cmk_wal_page_generation(const uint8_t* page) { return cmk::wal_page_generation(page); }

CMK_EXPORT int cmk_wal_page_is_plaintext_wal(const uint8_t* page) { return cmk::wal_page_is_plaintext_wal(page) ? 1 : 0; }

CMK_EXPORT int cmk_wal_page_encrypt(cmk_xts* xts, uint32_t generation, const uint8_t* in, uint8_t* out) {
    return cmk::wal_page_encrypt(xts->cipher, generation, in, out) ? 1 : 0;
}

CMK_EXPORT int cmk_wal_page_decrypt(cmk_xts* xts, uint8_t* page) {
    return cmk::wal_page_decrypt(xts->cipher, page) ? 1 : 0;
}

static_assert(CMK_DATA_PAGE_GENERATION_MASK == cmk::kDataPageGenerationMask, "one data page generation mask");
static_assert(CMK_DATA_PAGE_CLEAR_BYTES == cmk::kDataPageClearBytes, "one data page plaintext header");
static_assert(CMK_PG_CONTROL_VERSION == cmk::kPgControlVersion && CMK_PG_CONTROL_BLCKSZ_OFFSET == cmk::kPgControlBlcksz &&
                  CMK_PG_CONTROL_RELSEG_SIZE_OFFSET == cmk::kPgControlRelsegSize &&
                  CMK_PG_CONTROL_CHECKSUM_VERSION_OFFSET == cmk::kPgControlChecksumVersionOffset,
              "one pg_control layout");

struct cmk_verify_result {
    cmk::VerifyReport report;
};

CMK_EXPORT cmk_verify_result* cmk_verify_scan(const char* datadir, int (*interrupted)(void*), void* arg, cmk_error* err) {
    cmk_verify_result* out = nullptr;
    guarded(err, [&] {
        cmk::VerifyOptions options;
        options.running_server = true;
        if (interrupted) options.interrupted = [interrupted, arg] { return interrupted(arg) != 0; };
        auto result = std::make_unique<cmk_verify_result>();
        result->report = cmk::verify_data_directory(datadir ? datadir : "", options);
        out = result.release();
    });
    return out;
}

CMK_EXPORT size_t cmk_verify_row_count(const cmk_verify_result* result) { return result->report.files.size(); }

CMK_EXPORT void cmk_verify_get_row(const cmk_verify_result* result, size_t i, cmk_verify_row* row) {
    const cmk::VerifyFile& f = result->report.files[i];
    row->file_class = cmk::verify_class_name(f.cls);
    row->relation = f.path.c_str();
    row->encrypted = static_cast<int64_t>(f.units.encrypted);
    row->plaintext = static_cast<int64_t>(f.units.plaintext);
    row->empty = static_cast<int64_t>(f.units.empty);
    row->unmarked = static_cast<int64_t>(f.units.unmarked);
}

CMK_EXPORT void cmk_verify_free(cmk_verify_result* result) { delete result; }
