// One Push stream into a replica's staging area (staging.h): each file's
// header is checked against the replica's own mirror set, its bytes (whole,
// or a librsync delta against the committed file) are written to a part
// file, hashed, verified against the header and renamed into place; the
// manifest arrives in bounded parts; End completes the checkpoint (or says
// which files must come whole). Obtained from ReplicaStore::BeginPush, which
// lets one session run at a time; destroying it without End() leaves the
// staging as it was before the stream's current file (a part file is
// removed). Thread-compatible.
#ifndef GWMIRROR_NODE_REPLICA_PUSH_SESSION_H_
#define GWMIRROR_NODE_REPLICA_PUSH_SESSION_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/delta.h"
#include "common/direct_io.h"
#include "common/env.h"
#include "common/fd.h"
#include "common/manifest.h"
#include "common/manifest_delta.h"
#include "common/sha256.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/replica.pb.h"
#include "node/replica/staging.h"
#include "node/replica/tree_writer.h"
#include "node/scanner.h"

namespace gwmirror {

class PushSession {
 public:
  // Files (and delta bases) at least this big bypass the page cache
  // unless configured.
  static constexpr uint64_t kDefaultDirectMinBytes = 64 << 20;
  struct Params {
    // The checkpoint staged (0 for a pre-stage push into the pool).
    uint64_t checkpoint = 0;
    bool prestage = false;
    // The manifest comes as a delta against `committed`.
    bool manifest_delta = false;
    // The committed checkpoint's manifest; no commit runs during a push.
    std::shared_ptr<const Manifest> committed;
    // The replica's own roots: what it admits into its tree.
    google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig> roots;
    // Manifest bytes one push may buffer.
    uint64_t max_manifest_bytes = 0;
    // A file of at least this many bytes is written, and a basis of at
    // least this many read, with O_DIRECT where the file system allows it
    // (common/direct_io.h; 0: never).
    uint64_t direct_min_bytes = kDefaultDirectMinBytes;
  };
  // `tree` opens the committed files deltas apply to; `on_end` runs when
  // the session is destroyed.
  PushSession(Staging* staging, const TreeWriter* tree, Env* env, Params params,
              std::function<void()> on_end);
  ~PushSession();
  PushSession(const PushSession&) = delete;
  PushSession& operator=(const PushSession&) = delete;

  absl::Status BeginFile(const gwmirror::v1::FileHeader& h);
  absl::Status FileData(absl::string_view raw);
  // `end` carries the file's digest when its header said so.
  absl::Status EndFile(
      const gwmirror::v1::FileEnd& end = gwmirror::v1::FileEnd());
  absl::Status AddManifest(const gwmirror::v1::ManifestPart& part);
  absl::StatusOr<gwmirror::v1::PushResult> End(absl::string_view digest);
  // Files staged so far with some of their blocks written directly, and
  // deltas patched reading their basis directly (O_DIRECT).
  uint64_t files_written_direct() const { return files_written_direct_; }
  uint64_t bases_read_direct() const { return bases_read_direct_; }

 private:
  bool Direct(uint64_t size) const {
    return params_.direct_min_bytes > 0 && size >= params_.direct_min_bytes;
  }
  absl::Status Write(absl::string_view out);
  absl::Status CopyBasis();
  // INVALID_ARGUMENT when `end` and the current header disagree on where
  // the file's digest is.
  absl::Status CheckEnd(const gwmirror::v1::FileEnd& end) const;
  absl::Status StartWriteback();
  void DropPartial();
  // Where a verified object of this session goes.
  std::string ObjectPath(absl::string_view sha) const;

  Staging* const staging_;
  const TreeWriter* const tree_;
  Env* const env_;
  const Params params_;
  const std::function<void()> on_end_;
  MirrorSet mirror_set_;
  // The manifest parts, checked as they arrive and bounded.
  ManifestDeltaDecoder manifest_;
  // Current file.
  std::optional<gwmirror::v1::FileHeader> header_;
  // The current file came from the pool: no data may follow.
  bool from_pool_ = false;
  // The current file is a copy of a committed one: no data may follow.
  bool copied_ = false;
  std::string part_path_;
  UniqueFd part_fd_;
  UniqueFd basis_fd_;
  // A large basis is read, and a large file written, past the page cache.
  std::unique_ptr<DirectReader> basis_reader_;
  std::unique_ptr<DirectWriter> direct_writer_;
  std::unique_ptr<Patcher> patcher_;
  std::unique_ptr<Sha256> hash_;
  uint64_t written_ = 0;
  // The part file's bytes already handed to writeback (StartWriteback).
  uint64_t written_back_ = 0;
  uint64_t files_ = 0;
  uint64_t bytes_ = 0;
  uint64_t files_written_direct_ = 0;
  uint64_t bases_read_direct_ = 0;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_REPLICA_PUSH_SESSION_H_
