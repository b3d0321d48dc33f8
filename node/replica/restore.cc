#include "node/replica/restore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/fd.h"
#include "common/path.h"
#include "common/status_macros.h"
#include "common/tar.h"
#include "node/replica/tree_writer.h"

namespace gwmirror {
namespace {

using gwmirror::v1::ENTRY_TYPE_DIRECTORY;
using gwmirror::v1::ENTRY_TYPE_FILE;
using gwmirror::v1::ENTRY_TYPE_SYMLINK;

constexpr absl::string_view kCommentMagic = "gwmirror-export 1";

// `e`'s content from the history, verified, in `fd`; names the path.
absl::Status Content(const History& history, const Entry& e, int fd) {
  absl::Status st = history.ReadTo(e.sha256(), fd);
  if (st.ok()) return st;
  return absl::Status(
      st.code(), absl::StrCat("standby file ", e.path(), ": ", st.message()));
}

}  // namespace

absl::Status SetMetadata(const std::string& full, const Entry& e) {
  const size_t slash = full.rfind('/');
  const std::string dir =
      slash == std::string::npos ? "." : full.substr(0, slash);
  UniqueFd dfd(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dfd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", dir));
  return ApplyMetadataAt(Env::Default(), dfd.get(), full.substr(slash + 1), e,
                         Owners::kWherePermitted);
}

absl::Status RestoreTree(const History& history, const Manifest& m,
                         const std::string& dest, uint64_t* bytes,
                         const std::function<void(const Entry&)>& file_done) {
  RETURN_IF_ERROR(MakeDirs(dest, 0700));
  *bytes = 0;
  for (const Entry& e : m.entries()) {
    std::string full = JoinPath(dest, e.path());
    RETURN_IF_ERROR(MakeDirs(full.substr(0, full.rfind('/')), 0700));
    if (e.type() == ENTRY_TYPE_DIRECTORY) {
      if (mkdir(full.c_str(), 0700) != 0 && errno != EEXIST) {
        return ErrnoStatus(errno, absl::StrCat("mkdir ", full));
      }
      continue;  // Metadata once its content is in.
    }
    if (e.type() == ENTRY_TYPE_SYMLINK) {
      if (symlink(e.link_target().c_str(), full.c_str()) != 0) {
        return ErrnoStatus(errno, absl::StrCat("symlink ", full));
      }
    } else if (e.type() == ENTRY_TYPE_FILE) {
      UniqueFd out(open(full.c_str(),
                        O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                        0600));
      if (!out.valid())
        return ErrnoStatus(errno, absl::StrCat("create ", full));
      RETURN_IF_ERROR(Content(history, e, out.get()));
      *bytes += e.size();
      if (file_done) file_done(e);
    }
    RETURN_IF_ERROR(SetMetadata(full, e));
  }
  for (auto it = m.entries().rbegin(); it != m.entries().rend(); ++it) {
    if (it->type() == ENTRY_TYPE_DIRECTORY) {
      RETURN_IF_ERROR(SetMetadata(JoinPath(dest, it->path()), *it));
    }
  }
  return absl::OkStatus();
}

std::string ExportComment(const std::string& slot, uint64_t checkpoint,
                          const Manifest& m) {
  return absl::StrCat(kCommentMagic, "\nslot ", slot, "\ncheckpoint ",
                      checkpoint, "\nmanifest ", absl::Base64Escape(m.Encode()),
                      "\n");
}

absl::StatusOr<ExportInfo> ParseExportComment(absl::string_view comment) {
  if (!absl::StartsWith(comment, kCommentMagic)) {
    return absl::InvalidArgumentError(
        "the archive carries no gwmirror manifest (not made by gwmirror "
        "export)");
  }
  ExportInfo info;
  bool have_manifest = false;
  for (absl::string_view line : absl::StrSplit(comment, '\n')) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, absl::MaxSplits(' ', 1));
    if (kv.first == "slot") {
      info.slot = std::string(kv.second);
    } else if (kv.first == "checkpoint") {
      if (!absl::SimpleAtoi(kv.second, &info.checkpoint)) {
        return absl::InvalidArgumentError("archive: bad checkpoint line");
      }
    } else if (kv.first == "manifest") {
      std::string bytes;
      if (!absl::Base64Unescape(kv.second, &bytes)) {
        return absl::InvalidArgumentError("archive: manifest is not base64");
      }
      auto m = Manifest::Decode(bytes);
      if (!m.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("archive manifest: ", m.status().message()));
      }
      info.manifest = *std::move(m);
      have_manifest = true;
    }
  }
  if (!have_manifest) {
    return absl::InvalidArgumentError("archive comment has no manifest");
  }
  return info;
}

absl::Status WriteTar(const History& history, const Manifest& m,
                      const std::string& slot, uint64_t checkpoint,
                      const std::string& scratch_dir, const ByteSink& sink) {
  RETURN_IF_ERROR(sink(TarGlobalComment(ExportComment(slot, checkpoint, m))));
  std::string buf(1 << 20, '\0');
  for (const Entry& e : m.entries()) {
    TarMember t;
    t.path = e.path();
    t.mode = e.mode() & 07777;
    t.uid = e.uid();
    t.gid = e.gid();
    t.mtime_ns = e.mtime_ns();
    if (e.type() == ENTRY_TYPE_DIRECTORY) {
      t.type = TarMember::kDirectory;
      RETURN_IF_ERROR(sink(TarHeader(t)));
      continue;
    }
    if (e.type() == ENTRY_TYPE_SYMLINK) {
      t.type = TarMember::kSymlink;
      t.link_target = e.link_target();
      RETURN_IF_ERROR(sink(TarHeader(t)));
      continue;
    }
    UniqueFd tmp(
        open(scratch_dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!tmp.valid()) {
      return ErrnoStatus(errno,
                         absl::StrCat("temporary file in ", scratch_dir));
    }
    RETURN_IF_ERROR(Content(history, e, tmp.get()));
    t.size = e.size();
    RETURN_IF_ERROR(sink(TarHeader(t)));
    off_t off = 0;
    for (;;) {
      ssize_t n = pread(tmp.get(), buf.data(), buf.size(), off);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return ErrnoStatus(errno, "read restored version");
      if (n == 0) break;
      off += n;
      RETURN_IF_ERROR(sink(absl::string_view(buf.data(), n)));
    }
    if (uint64_t(off) != e.size()) {
      return absl::InternalError(absl::StrCat(e.path(), ": size changed"));
    }
    RETURN_IF_ERROR(sink(TarPadding(e.size())));
  }
  return sink(TarEnd());
}

}  // namespace gwmirror
