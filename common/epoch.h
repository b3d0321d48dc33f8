// The fencing epoch: the highest one a process has seen, persisted in one
// small file so a restart cannot forget it, with the proof that it was
// raised by a party allowed to raise it. A message with an older epoch is
// refused; a newer one is adopted (written durably before it is acted on)
// only when it is 1 (the epoch every cluster starts at) or comes with an
// EpochGrant signed by an issuer the process trusts: the coordinator, or
// an operator (a forced promote). So no node, and no holder of a node's
// certificate, can move a peer's epoch (docs/ARCHITECTURE.md, "Epochs and
// their proof"). Thread-safe.
#ifndef GWMIRROR_COMMON_EPOCH_H_
#define GWMIRROR_COMMON_EPOCH_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/env.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/replica.pb.h"

namespace gwmirror {

// Who may raise an epoch past 1: certificate names, from the CA bundle in
// `ca_file`.
struct EpochAuthority {
  std::string ca_file;
  std::set<std::string> issuers;
};

// Who may raise a node's epoch: its coordinator, and the operators its
// replica config names as controllers (a forced promote).
EpochAuthority NodeEpochAuthority(const gwmirror::v1::NodeConfig& config);

// The bytes a grant's signature covers (replica.proto, EpochGrant).
std::string EpochGrantSignedBytes(const gwmirror::v1::EpochGrant& g);

// A grant of `epoch` making `active_site` active, signed with `tls`'s key
// (its certificate is the issuer's).
absl::StatusOr<gwmirror::v1::EpochGrant> SignEpochGrant(
    const gwmirror::v1::TlsConfig& tls, uint64_t epoch,
    const std::string& active_site, absl::Time now);

// OK (the issuer's name) when `g` proves `epoch`: it names that epoch, its
// issuer is one of `authority.issuers`, the issuer's certificate comes
// from the CA and was valid when the grant was issued, and the signature
// verifies. PERMISSION_DENIED saying what does not hold.
absl::StatusOr<std::string> VerifyEpochGrant(const gwmirror::v1::EpochGrant& g,
                                             uint64_t epoch,
                                             const EpochAuthority& authority);

class EpochFile {
 public:
  // Loads `path` (missing: epoch 0). `who` names the holder in refusals
  // ("this replica").
  static absl::StatusOr<std::unique_ptr<EpochFile>> Open(
      std::string path, std::string who, EpochAuthority authority,
      Env* env = Env::Default());

  uint64_t Get() const ABSL_LOCKS_EXCLUDED(mu_);
  // The epoch with its proof, for a message this process sends.
  gwmirror::v1::Envelope Stamp() const ABSL_LOCKS_EXCLUDED(mu_);
  // FAILED_PRECONDITION "stale epoch E: <who> is at epoch F" when `epoch` is
  // older; a newer one is adopted and persisted when it is 1 or `grant`
  // proves it, else PERMISSION_DENIED naming the epochs and what is wrong
  // with the proof. Nothing changes on a refusal.
  absl::Status Check(uint64_t epoch, const gwmirror::v1::EpochGrant& grant)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Check(const gwmirror::v1::Envelope& e) {
    return Check(e.epoch(), e.grant());
  }
  // VerifyEpochGrant against this file's authority.
  absl::StatusOr<std::string> Verify(const gwmirror::v1::EpochGrant& g,
                                     uint64_t epoch) const {
    return VerifyEpochGrant(g, epoch, authority_);
  }

 private:
  EpochFile(std::string path, std::string who, EpochAuthority authority,
            Env* env, uint64_t epoch, gwmirror::v1::EpochGrant grant)
      : path_(std::move(path)),
        who_(std::move(who)),
        authority_(std::move(authority)),
        env_(env),
        epoch_(epoch),
        grant_(std::move(grant)) {}
  const std::string path_;
  const std::string who_;
  const EpochAuthority authority_;
  Env* const env_;
  mutable absl::Mutex mu_;
  uint64_t epoch_ ABSL_GUARDED_BY(mu_);
  gwmirror::v1::EpochGrant grant_ ABSL_GUARDED_BY(mu_);
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_EPOCH_H_
