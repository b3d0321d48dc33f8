// An append-only audit log: one JSON object per line (AuditRecord in
// coordinator.proto), each appended with O_APPEND and fsynced before the
// act it records is reported done, each naming the SHA-256 of the line
// before it, so an edited, removed or damaged line shows as a break in the
// chain. The coordinator keeps one; nodes keep one of the operators'
// direct calls on them and forward it (Unsent / MarkSent). Thread-safe.
#ifndef GWMIRROR_COMMON_AUDIT_H_
#define GWMIRROR_COMMON_AUDIT_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "gwmirror/v1/coordinator.pb.h"

namespace gwmirror {

class AuditLog {
 public:
  // Opens (creating, 0600) `path`; its last line's digest continues the
  // chain.
  static absl::StatusOr<std::unique_ptr<AuditLog>> Open(std::string path);

  // Appends `r` (its `prev` is set here) durably.
  absl::Status Append(gwmirror::v1::AuditRecord r) ABSL_LOCKS_EXCLUDED(mu_);

  // Up to `limit` records, newest first, and whether the whole chain holds.
  absl::StatusOr<gwmirror::v1::AuditList> Read(size_t limit) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Forwarding (nodes): up to `max` records not yet marked sent, oldest
  // first, and the offset to mark once they are delivered.
  absl::StatusOr<std::pair<std::vector<gwmirror::v1::AuditRecord>, uint64_t>>
  Unsent(size_t max) const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status MarkSent(uint64_t offset) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit AuditLog(std::string path) : path_(std::move(path)) {}
  const std::string path_;
  mutable absl::Mutex mu_;
  std::string last_digest_ ABSL_GUARDED_BY(mu_);
  uint64_t sent_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_AUDIT_H_
