// The source's persistent index: stat data -> SHA-256 per path, so a scan
// after a restart (or the next push) reads only files whose stat changed.
// A file is trusted from the index only when size, mtime, ctime, inode and
// device all match and its mtime is at least 2 s older than the scan (a
// write in the same timestamp tick could otherwise hide), and only in the
// boot that wrote it: after a reboot (a power cut may have kept an inode's
// new times and lost its new bytes) every file is read once. File format
// (docs/ARCHITECTURE.md): "GWMI2", the boot id, u64 count, entries,
// SHA-256 trailer; a damaged index is ignored, never trusted.
// Thread-compatible.
#ifndef GWMIRROR_NODE_HASH_INDEX_H_
#define GWMIRROR_NODE_HASH_INDEX_H_

#include <sys/stat.h>

#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/env.h"

namespace gwmirror {

class HashIndex {
 public:
  HashIndex();
  // Loads `path`; a missing file gives an empty index, a damaged one
  // DATA_LOSS, one written under another boot than `env`'s
  // FAILED_PRECONDITION (callers start empty and say so).
  static absl::StatusOr<HashIndex> Load(const std::string& path,
                                        Env* env = Env::Default());
  static absl::StatusOr<HashIndex> Decode(absl::string_view data);
  // The file's bytes, naming the boot whose stat data they hold.
  std::string Encode(absl::string_view boot_id) const;
  // The boot id Decode found.
  const std::string& boot_id() const { return boot_id_; }
  // Saves under `env`'s boot id.
  absl::Status Save(const std::string& path, Env* env = Env::Default()) const;

  // The digest recorded for `path` if `st` still describes the same bytes.
  std::optional<std::string> Lookup(const std::string& path,
                                    const struct stat& st) const;
  void Record(const std::string& path, const struct stat& st,
              const std::string& sha256);
  void Erase(const std::string& path) { changes_ += entries_.erase(path); }
  // Counts the changes Record and Erase made (to know when to save).
  uint64_t changes() const { return changes_; }
  // The bytes of the files Record recorded anew: what losing those records
  // would cost in hashing.
  uint64_t recorded_bytes() const { return recorded_bytes_; }
  size_t size() const { return entries_.size(); }
  // Lookups judge "too recent" against `now_ns` (FileClockNs) from now on;
  // an index kept in memory across scans is told each scan's start.
  void SetNow(int64_t now_ns) { now_ns_ = now_ns; }

 private:
  struct Key {
    uint64_t size, ino, dev;
    int64_t mtime_ns, ctime_ns;
    bool operator==(const Key&) const = default;
  };
  struct Value {
    Key key;
    std::string sha256;
  };
  static Key KeyOf(const struct stat& st);

  int64_t now_ns_;
  uint64_t changes_ = 0;
  uint64_t recorded_bytes_ = 0;
  std::string boot_id_;
  absl::flat_hash_map<std::string, Value> entries_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_HASH_INDEX_H_
