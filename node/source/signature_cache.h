// The source's cache of librsync signatures of the replica's committed
// files, keyed by block length and content SHA-256. A hit means an
// incremental sync neither re-reads the replica's file nor moves its
// signature over the network. Entries are written atomically (temp +
// rename); a damaged entry can only produce a delta that fails the
// replica's digest check, which falls back to a whole-file send, so no fsync
// is spent on it. Thread-compatible.
#ifndef GWMIRROR_NODE_SOURCE_SIGNATURE_CACHE_H_
#define GWMIRROR_NODE_SOURCE_SIGNATURE_CACHE_H_

#include <memory>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/fd.h"

namespace gwmirror {

class SignatureCache {
 public:
  SignatureCache(std::string dir, uint32_t block_len);
  bool Has(absl::string_view sha256) const;
  // The entry, mapped read-only (entries are replaced by rename, never
  // rewritten in place), or NOT_FOUND.
  absl::StatusOr<std::shared_ptr<const MappedFile>> Map(
      absl::string_view sha256) const;

  // A signature stored as it is built (a large file's runs to megabytes,
  // which need not sit in memory): appended to a temporary file, in place
  // once committed, removed if the writer goes without.
  class Writer {
   public:
    ~Writer();
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;
    absl::Status Append(absl::string_view bytes);
    // Puts it in place under the digest Start named, or, for a writer
    // started without one, under `sha256`.
    absl::Status Commit(absl::string_view sha256 = {});

   private:
    friend class SignatureCache;
    Writer(const SignatureCache* cache, std::string path, std::string tmp,
           UniqueFd fd);
    const SignatureCache* cache_;
    std::string path_;  // Empty until the digest is known.
    std::string tmp_;
    UniqueFd fd_;
    bool committed_ = false;
  };
  // The signature of the file whose digest is `sha256`, or of a file whose
  // digest is not known yet (empty: named at Commit).
  absl::StatusOr<std::unique_ptr<Writer>> Start(absl::string_view sha256);
  // Drops every entry whose digest is not in `keep`.
  void Prune(const std::set<std::string>& keep);
  uint32_t block_len() const { return block_len_; }

 private:
  std::string PathOf(absl::string_view sha256) const;
  std::string dir_;
  uint32_t block_len_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SOURCE_SIGNATURE_CACHE_H_
