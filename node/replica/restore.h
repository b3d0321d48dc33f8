// Restoring a retained checkpoint out of a replica's history: into a
// directory (drills, imports) or as a tar stream (exports). Every file's
// content is verified against the manifest's SHA-256 on the way.
#ifndef GWMIRROR_NODE_REPLICA_RESTORE_H_
#define GWMIRROR_NODE_REPLICA_RESTORE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "common/delta.h"
#include "common/manifest.h"
#include "node/replica/history.h"

namespace gwmirror {

// Owner, mode (not for symlinks) and mtime of `e` on `full`, without
// following a symlink. Owners are set only where the process may.
absl::Status SetMetadata(const std::string& full, const Entry& e);

// Writes `m`'s tree under `dest` (created 0700 when missing), content from
// `history`, with every entry's metadata; `*bytes` gets the file bytes.
// `file_done` (may be empty) is told each regular file written.
absl::Status RestoreTree(
    const History& history, const Manifest& m, const std::string& dest,
    uint64_t* bytes,
    const std::function<void(const Entry&)>& file_done = nullptr);

// The export archive's global comment: what `ParseExportComment` reads.
std::string ExportComment(const std::string& slot, uint64_t checkpoint,
                          const Manifest& m);
struct ExportInfo {
  std::string slot;
  uint64_t checkpoint = 0;
  Manifest manifest;
};
absl::StatusOr<ExportInfo> ParseExportComment(absl::string_view comment);

// Streams `m` as a pax tar archive (members in manifest order, then the
// end blocks) to `sink`; the first member is the global header with
// ExportComment. `scratch_dir` holds one temporary file at a time.
absl::Status WriteTar(const History& history, const Manifest& m,
                      const std::string& slot, uint64_t checkpoint,
                      const std::string& scratch_dir, const ByteSink& sink);

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_REPLICA_RESTORE_H_
