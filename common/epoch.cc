#include "common/epoch.h"

#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/fd.h"
#include "common/le.h"
#include "common/status_macros.h"
#include "common/tls.h"

namespace gwmirror {
namespace {

void PutBytes(std::string* out, absl::string_view b) {
  PutLe<uint32_t>(out, static_cast<uint32_t>(b.size()));
  out->append(b.data(), b.size());
}

}  // namespace

EpochAuthority NodeEpochAuthority(const gwmirror::v1::NodeConfig& config) {
  EpochAuthority a;
  a.ca_file = config.tls().ca_file();
  if (config.has_coordinator())
    a.issuers.insert(config.coordinator().identity());
  for (const std::string& id : config.replica().controller_identities()) {
    a.issuers.insert(id);
  }
  return a;
}

std::string EpochGrantSignedBytes(const gwmirror::v1::EpochGrant& g) {
  std::string out = "GWEG1";
  PutLe<uint64_t>(&out, g.epoch());
  PutBytes(&out, g.active_site());
  PutLe<int64_t>(&out, g.issued_unix_ms());
  PutBytes(&out, g.issuer_certificate());
  return out;
}

absl::StatusOr<gwmirror::v1::EpochGrant> SignEpochGrant(
    const gwmirror::v1::TlsConfig& tls, uint64_t epoch,
    const std::string& active_site, absl::Time now) {
  gwmirror::v1::EpochGrant g;
  g.set_epoch(epoch);
  g.set_active_site(active_site);
  g.set_issued_unix_ms(absl::ToUnixMillis(now));
  ASSIGN_OR_RETURN(std::string cert, ReadFileToString(tls.cert_file()));
  g.set_issuer_certificate(std::move(cert));
  ASSIGN_OR_RETURN(std::string sig,
                   SignWithKey(tls.key_file(), EpochGrantSignedBytes(g)));
  g.set_signature(std::move(sig));
  return g;
}

absl::StatusOr<std::string> VerifyEpochGrant(const gwmirror::v1::EpochGrant& g,
                                             uint64_t epoch,
                                             const EpochAuthority& authority) {
  auto deny = [&](auto&&... parts) {
    return absl::PermissionDeniedError(
        absl::StrCat("the proof of epoch ", epoch, " ", parts...));
  };
  if (g.signature().empty() || g.issuer_certificate().empty()) {
    return deny(
        "is missing: only the coordinator (or an operator's forced "
        "promote) raises epochs");
  }
  if (g.epoch() != epoch) return deny("is a grant of epoch ", g.epoch());
  auto cert = VerifySignedBy(g.issuer_certificate(), authority.ca_file,
                             absl::FromUnixMillis(g.issued_unix_ms()),
                             EpochGrantSignedBytes(g), g.signature());
  if (!cert.ok()) return deny("does not verify: ", cert.status().message());
  if (!authority.issuers.count(cert->subject)) {
    return deny("is signed by \"", cert->subject,
                "\", which may not raise epochs here (allowed: ",
                absl::StrJoin(authority.issuers, ", "), ")");
  }
  return cert->subject;
}

absl::StatusOr<std::unique_ptr<EpochFile>> EpochFile::Open(
    std::string path, std::string who, EpochAuthority authority, Env* env) {
  // "<epoch>\n", then "grant <base64 of the EpochGrant>\n" when one proves
  // it.
  uint64_t epoch = 0;
  gwmirror::v1::EpochGrant grant;
  auto text = ReadFileToString(path, env);
  if (text.ok()) {
    std::vector<absl::string_view> lines =
        absl::StrSplit(*text, '\n', absl::SkipEmpty());
    std::string raw;
    if (lines.empty() ||
        !absl::SimpleAtoi(absl::StripAsciiWhitespace(lines[0]), &epoch) ||
        (lines.size() > 1 &&
         (!absl::ConsumePrefix(&lines[1], "grant ") ||
          !absl::Base64Unescape(lines[1], &raw) ||
          !grant.ParseFromString(raw) || grant.epoch() != epoch))) {
      return absl::DataLossError(
          absl::StrCat(path,
                       ": not an epoch file (\"<epoch>\" and an "
                       "optional \"grant <base64>\" line)"));
    }
  } else if (!absl::IsNotFound(text.status())) {
    return text.status();
  }
  return std::unique_ptr<EpochFile>(
      new EpochFile(std::move(path), std::move(who), std::move(authority), env,
                    epoch, std::move(grant)));
}

uint64_t EpochFile::Get() const {
  absl::MutexLock l(&mu_);
  return epoch_;
}

gwmirror::v1::Envelope EpochFile::Stamp() const {
  absl::MutexLock l(&mu_);
  gwmirror::v1::Envelope e;
  e.set_epoch(epoch_);
  if (grant_.epoch() == epoch_ && epoch_ > 0) *e.mutable_grant() = grant_;
  return e;
}

absl::Status EpochFile::Check(uint64_t epoch,
                              const gwmirror::v1::EpochGrant& grant) {
  absl::MutexLock l(&mu_);
  if (epoch < epoch_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "stale epoch ", epoch, ": ", who_, " is at epoch ", epoch_));
  }
  if (epoch == epoch_) return absl::OkStatus();
  gwmirror::v1::EpochGrant proof;
  if (epoch > 1) {
    auto issuer = VerifyEpochGrant(grant, epoch, authority_);
    if (!issuer.ok()) {
      return absl::PermissionDeniedError(
          absl::StrCat("epoch ", epoch, " is newer than ", who_, "'s ", epoch_,
                       " and is refused: ", issuer.status().message()));
    }
    proof = grant;
  }
  std::string text = absl::StrCat(epoch, "\n");
  if (epoch > 1) {
    absl::StrAppend(&text, "grant ",
                    absl::Base64Escape(proof.SerializeAsString()), "\n");
  }
  RETURN_IF_ERROR(
      WriteFileAtomic(path_, text, 0600, Durability::kSynced, env_));
  epoch_ = epoch;
  grant_ = std::move(proof);
  return absl::OkStatus();
}

}  // namespace gwmirror
