// POSIX pax archives (ustar headers with pax extended records), as GNU tar
// reads and writes them: what `gwmirror export` writes and `gwmirror
// import` reads. Every member carries a pax record with its exact path
// and nanosecond mtime (and uid, gid, size or link target where ustar's
// fields are too small); the archive may begin with a global header whose
// `comment` record carries text readers other than ours ignore.
#ifndef GWMIRROR_COMMON_TAR_H_
#define GWMIRROR_COMMON_TAR_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace gwmirror {

struct TarMember {
  enum Type : char { kFile = '0', kSymlink = '2', kDirectory = '5' };
  Type type = kFile;
  std::string path;   // Relative; no trailing slash.
  uint32_t mode = 0;  // Permission bits (07777).
  uint32_t uid = 0, gid = 0;
  int64_t mtime_ns = 0;
  uint64_t size = 0;  // kFile only.
  std::string link_target;
};

// Header blocks of one member (pax record and ustar header); the content
// follows, then TarPadding(size).
std::string TarHeader(const TarMember& m);
// A global pax header with one `comment` record.
std::string TarGlobalComment(absl::string_view comment);
// Zero bytes up to the next 512-byte block.
std::string TarPadding(uint64_t size);
// The two zero blocks that end an archive.
std::string TarEnd();

// Pull reader. `read` fills up to `n` bytes and returns how many (0 at the
// end of the input). Every malformed header is INVALID_ARGUMENT naming the
// member; members of types other than file, symlink and directory are
// refused.
class TarReader {
 public:
  using Source = std::function<absl::StatusOr<size_t>(char* buf, size_t n)>;
  explicit TarReader(Source read) : read_(std::move(read)) {}

  // The next member, or nullopt-like false at the end of the archive. The
  // previous member's content must have been read (or is skipped).
  absl::StatusOr<bool> Next(TarMember* m);
  // The current member's content, in pieces.
  absl::Status ReadData(
      const std::function<absl::Status(absl::string_view)>& sink);
  // The global header's comment, once Next() has passed it.
  const std::string& comment() const { return comment_; }

 private:
  absl::Status ReadExact(char* buf, size_t n);
  absl::Status Skip(uint64_t n);

  Source read_;
  uint64_t remaining_ = 0;  // Content plus padding of the current member.
  uint64_t content_ = 0;
  std::string comment_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_TAR_H_
