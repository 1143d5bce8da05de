// ChainedTokenCredential (chained_token_credential.h).
#include "azure/chained_token_credential.h"

namespace cmk::azure {

ChainedTokenCredential::ChainedTokenCredential(std::string name, std::vector<std::shared_ptr<TokenCredential>> sources,
                                               Pipeline* log_to)
    : name_(std::move(name)), sources_(std::move(sources)), log_to_(log_to) {}

const TokenCredential* ChainedTokenCredential::selected() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return selected_ >= 0 ? sources_[static_cast<size_t>(selected_)].get() : nullptr;
}

std::string ChainedTokenCredential::describe() const {
    const TokenCredential* s = selected();
    return s ? s->describe() : name_ + " (no credential selected yet)";
}

void ChainedTokenCredential::collect_sensitive(std::vector<std::string>& out) const {
    for (const auto& s : sources_) s->collect_sensitive(out);
}

AccessToken ChainedTokenCredential::get_token(const TokenRequestContext& context) {
    int chosen;
    {
        std::lock_guard<std::mutex> lock(mutex_);
        chosen = selected_;
    }
    if (chosen >= 0) return sources_[static_cast<size_t>(chosen)]->get_token(context);

    std::string reasons;
    for (size_t i = 0; i < sources_.size(); i++) {
        try {
            AccessToken t = sources_[i]->get_token(context);
            {
                std::lock_guard<std::mutex> lock(mutex_);
                selected_ = static_cast<int>(i);
            }
            if (log_to_)
                log_to_->log("cmk: " + name_ + ": signed in with " + sources_[i]->name() + " as " + sources_[i]->describe());
            return t;
        } catch (const CredentialUnavailable& e) {
            reasons += std::string(reasons.empty() ? "" : "; ") + e.what();
        }
    }
    throw CredentialUnavailable(
        name_ + " found no credential configured in the server's environment: " + reasons);
}
}  // namespace cmk::azure
