// Test-side access to the running Key Vault emulator: its address and the
// material run.sh prepared (CMK_KV_* variables), and its admin endpoint
// (POST /_admin/<command> with the state directory's admin secret, the same
// requests the admin CLI sends). Talks to the emulator with libcurl directly,
// not through the code under test.
#pragma once

#include <curl/curl.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>

namespace kvtest {

using json = nlohmann::json;

inline std::string env(const char* name) {
    const char* v = std::getenv(name);
    if (!v || !*v) throw std::runtime_error(std::string(name) + " is not set: run the tests through test/provider/run.sh");
    return v;
}

inline std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    std::string s = ss.str();
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
    return s;
}

class Emulator {
public:
    Emulator()
        : url_(env("CMK_KV_URL")),
          port_(env("CMK_KV_PORT")),
          ca_(env("CMK_KV_CA")),
          state_(env("CMK_KV_STATE")),
          admin_secret_(read_file(state_ + "/admin_secret")) {}

    const std::string& url() const { return url_; }
    const std::string& port() const { return port_; }
    const std::string& ca() const { return ca_; }

    // Runs an admin command; returns its JSON answer, throws on a non-200 status.
    json admin(const std::string& command, const json& payload = json::object()) const {
        long status = 0;
        json out = admin_raw(command, payload, &status);
        if (status != 200) throw std::runtime_error("emulator admin " + command + " failed: " + out.dump());
        return out;
    }

    json admin_raw(const std::string& command, const json& payload, long* status) const {
        CURL* h = curl_easy_init();
        if (!h) throw std::runtime_error("curl_easy_init");
        std::string body = payload.dump(), answer;
        std::string target = url_ + "/_admin/" + command;
        curl_slist* headers = nullptr;
        headers = curl_slist_append(headers, "Content-Type: application/json");
        headers = curl_slist_append(headers, ("X-Admin-Secret: " + admin_secret_).c_str());
        curl_easy_setopt(h, CURLOPT_URL, target.c_str());
        curl_easy_setopt(h, CURLOPT_CAINFO, ca_.c_str());
        curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.c_str());
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, +[](char* d, size_t s, size_t n, void* u) {
            static_cast<std::string*>(u)->append(d, s * n);
            return s * n;
        });
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &answer);
        CURLcode rc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
        curl_slist_free_all(headers);
        curl_easy_cleanup(h);
        if (rc != CURLE_OK) throw std::runtime_error(std::string("emulator admin: ") + curl_easy_strerror(rc));
        return answer.empty() ? json::object() : json::parse(answer);
    }

    // Creates a key and returns its version.
    std::string create_key(const std::string& name, json options = json::object()) const {
        options["name"] = name;
        json b = admin("create-key", options);
        return version_of(b["key"]["kid"].get<std::string>());
    }

    std::string rotate_key(const std::string& name) const {
        return version_of(admin("rotate-key", {{"name", name}})["key"]["kid"].get<std::string>());
    }

    void add_identity(const std::string& client_id, const std::string& secret, const std::string& tenant = "tenant-a") const {
        admin("add-identity", {{"tenant", tenant}, {"client_id", client_id}, {"secret", secret}});
    }

    void grant(const std::string& client_id, const json& permissions) const {
        admin("grant", {{"client_id", client_id}, {"permissions", permissions}});
    }

    // Audit records since `since` (ISO 8601), optionally of one caller and operation.
    json audit(const std::string& since, const std::string& caller = {}, const std::string& operation = {}) const {
        json p = {{"since", since}};
        if (!caller.empty()) p["caller"] = caller;
        if (!operation.empty()) p["operation"] = operation;
        return admin("audit", p);
    }

    static std::string version_of(const std::string& kid) { return kid.substr(kid.rfind('/') + 1); }

    // The current UTC time as the emulator's audit writes it.
    static std::string now_iso() {
        using namespace std::chrono;
        auto now = system_clock::now();
        std::time_t t = system_clock::to_time_t(now);
        auto us = duration_cast<microseconds>(now.time_since_epoch()).count() % 1000000;
        std::tm tm{};
        gmtime_r(&t, &tm);
        char buf[64];
        std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
        char out[80];
        std::snprintf(out, sizeof out, "%s.%06lldZ", buf, static_cast<long long>(us));
        return out;
    }

private:
    std::string url_, port_, ca_, state_, admin_secret_;
};

}  // namespace kvtest
