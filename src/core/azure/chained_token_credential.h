// ChainedTokenCredential: tries its credentials in order; one that is not
// configured here (CredentialUnavailable) passes to the next; the first that
// answers is used from then on; any other failure (a rejected secret, a
// denied identity) is reported at once rather than hidden behind the next
// credential's "not configured", as azure-identity for .NET and Python do.
// UnavailableCredential stands in the chain for one that could not be set up.
#pragma once
#include "core_guard.h"

#include "azure/pipeline.h"
#include "azure/token_credential.h"

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cmk::azure {

class ChainedTokenCredential : public TokenCredential {
public:
    ChainedTokenCredential(std::string name, std::vector<std::shared_ptr<TokenCredential>> sources, Pipeline* log_to = nullptr);
    std::string name() const override { return name_; }
    AccessToken get_token(const TokenRequestContext& context) override;
    std::string describe() const override;
    void collect_sensitive(std::vector<std::string>& out) const override;
    // The credential that answered, or null before the first success.
    const TokenCredential* selected() const;

private:
    std::string name_;
    std::vector<std::shared_ptr<TokenCredential>> sources_;
    Pipeline* log_to_;
    mutable std::mutex mutex_;
    int selected_ = -1;
};

// A credential that could not be set up; every get_token throws
// CredentialUnavailable with the reason.
class UnavailableCredential : public TokenCredential {
public:
    UnavailableCredential(std::string name, std::string reason) : name_(std::move(name)), reason_(std::move(reason)) {}
    std::string name() const override { return name_; }
    AccessToken get_token(const TokenRequestContext&) override { throw CredentialUnavailable(name_ + ": " + reason_); }
    std::string describe() const override { return name_ + " (not configured)"; }
    void collect_sensitive(std::vector<std::string>&) const override {}

private:
    std::string name_, reason_;
};

}  // namespace cmk::azure
