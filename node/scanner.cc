#include "node/scanner.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/fd.h"
#include "common/path.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace gwmirror {

const std::vector<std::string>& DefaultExcludes() {
  static const auto* kList =
      new std::vector<std::string>{"opsdb.d",
                                   "logs",
                                   "trace",
                                   "events",
                                   "groups/certs/private/temp",
                                   "*.pid",
                                   "*.lock",
                                   "*.gwmirror-tmp",
                                   std::string(kStagingDirName)};
  return *kList;
}

MirrorFilter::MirrorFilter(const gwmirror::v1::RootConfig& root)
    : include_(root.include().begin(), root.include().end()),
      exclude_(root.exclude().begin(), root.exclude().end()) {
  if (!root.no_default_excludes()) {
    exclude_.insert(exclude_.end(), DefaultExcludes().begin(),
                    DefaultExcludes().end());
  } else {
    exclude_.emplace_back(kStagingDirName);
  }
}

// A glob without '/' matches the last component; one with '/' matches the
// path relative to the root or any trailing part of the full path that
// starts at a component ("groups/certs/private/temp" matches below a root
// "apigateway" and below a root "apigateway/groups" alike).
static bool AnyMatch(const std::vector<std::string>& globs,
                     const std::string& rel, const std::string& name,
                     const std::string& full) {
  for (const std::string& g : globs) {
    if (g.find('/') == std::string::npos) {
      if (fnmatch(g.c_str(), name.c_str(), 0) == 0) return true;
      continue;
    }
    if (fnmatch(g.c_str(), rel.c_str(), 0) == 0) return true;
    for (size_t at = full.find('/'); at != std::string::npos;
         at = full.find('/', at + 1)) {
      if (fnmatch(g.c_str(), full.c_str() + at + 1, 0) == 0) return true;
    }
  }
  return false;
}

bool MirrorFilter::Excluded(const std::string& rel, const std::string& name,
                            const std::string& full) const {
  return AnyMatch(exclude_, rel, name, full);
}

bool MirrorFilter::Included(const std::string& rel, const std::string& name,
                            const std::string& full) const {
  return include_.empty() || AnyMatch(include_, rel, name, full);
}

MirrorSet::MirrorSet(
    const google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig>& roots) {
  for (const auto& r : roots) roots_.push_back(Root{r.path(), MirrorFilter(r)});
}

absl::Status MirrorSet::Admit(const std::string& path,
                              gwmirror::v1::EntryType type) {
  const Root* root = nullptr;
  for (const Root& r : roots_) {
    if (path != r.path && PathIsWithin(path, r.path) &&
        (root == nullptr || r.path.size() > root->path.size())) {
      root = &r;
    }
  }
  auto refuse = [&](absl::string_view why) {
    return absl::PermissionDeniedError(
        absl::StrCat("entry \"", absl::string_view(path).substr(0, 300),
                     "\" is outside this replica's mirror set: ", why));
  };
  if (root == nullptr) return refuse("it lies below no mirrored root");
  // Every component from the root down, skipping directories admitted
  // before (entries arrive parents first).
  const std::string rel = path.substr(root->path.size() + 1);
  size_t from = 0;
  for (size_t end = rel.rfind('/'); end != std::string::npos && end > 0;
       end = rel.rfind('/', end - 1)) {
    if (admitted_dirs_.contains(
            absl::string_view(path).substr(0, root->path.size() + 1 + end))) {
      from = end + 1;
      break;
    }
  }
  for (size_t at = from; at <= rel.size();) {
    size_t end = rel.find('/', at);
    if (end == std::string::npos) end = rel.size();
    const std::string sub = rel.substr(0, end);
    const std::string name = rel.substr(at, end - at);
    const std::string full = JoinPath(root->path, sub);
    if (root->filter.Excluded(sub, name, full)) {
      return refuse(absl::StrCat("root ", root->path, " excludes ", full));
    }
    if (end < rel.size()) admitted_dirs_.insert(full);
    at = end + 1;
  }
  if (type == gwmirror::v1::ENTRY_TYPE_DIRECTORY) {
    admitted_dirs_.insert(path);
    return absl::OkStatus();
  }
  const size_t slash = rel.rfind('/');
  const std::string name =
      slash == std::string::npos ? rel : rel.substr(slash + 1);
  if (!root->filter.Included(rel, name, path)) {
    return refuse(absl::StrCat("root ", root->path,
                               " mirrors only files matching its include "
                               "rules"));
  }
  return absl::OkStatus();
}

namespace {

// A large file written within the last clock tick is waited for (at most
// kTickMarginNs) from this size on: hashing it would take more than twice
// as long (SHA-256 at about 1.4 GB/s here).
constexpr uint64_t kWaitOutFrom = 64 << 20;

struct Walker {
  const MirrorFilter* filter;
  std::string root;  // Relative to host root.
  std::vector<Entry>* out;
  ScanResult* result;
  // Where digests are looked up (may be null) and where they are recorded.
  const HashIndex* lookup;
  HashIndex* record;
  // One read buffer for the whole walk (not a zeroed 1 MiB per file).
  std::string buf = std::string(1 << 20, '\0');
  Env* env = Env::Default();

  void Fill(Entry* e, const struct stat& st) {
    if (result->record_stamps) {
      result->stamps.push_back(StampOf(e->path(), st));
    }
    e->set_mode(st.st_mode & 07777);
    e->set_uid(st.st_uid);
    e->set_gid(st.st_gid);
    e->set_mtime_ns(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000LL +
                    st.st_mtim.tv_nsec);
  }

  absl::Status HashFile(int dirfd, const char* name, Entry* e) {
    UniqueFd fd(env->OpenAt(dirfd, name,
                            O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno == ENOENT) return absl::NotFoundError(e->path());
      return ErrnoStatus(errno, absl::StrCat("open ", e->path()));
    }
    struct stat st;
    if (env->Fstat(fd.get(), &st) != 0) {
      return ErrnoStatus(errno, absl::StrCat("stat ", e->path()));
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::AbortedError(
          absl::StrCat(e->path(), " changed type during the scan"));
    }
    Fill(e, st);
    // What an earlier read of this path in the same scan left pending is
    // stale now (a scan that read it again re-decides below).
    result->pending.erase(e->path());
    if (lookup != nullptr) {
      if (auto sha = lookup->Lookup(e->path(), st)) {
        e->set_size(st.st_size);
        e->set_sha256(*sha);
        record->Record(e->path(), st, *sha);
        ++result->index_hits;
        return absl::OkStatus();
      }
    }
    const int64_t read_start_ns = FileClockNs();
    if (result->pending_from > 0 &&
        static_cast<uint64_t>(st.st_size) >= result->pending_from &&
        result->hold_fds > 0) {
      StatStamp stamp = StampOf("", st);
      const int64_t last = std::max(stamp.mtime_ns, stamp.ctime_ns);
      int64_t now = read_start_ns;
      if (last >= now - kTickMarginNs && last <= now &&
          static_cast<uint64_t>(st.st_size) >= kWaitOutFrom) {
        // Written within the last clock tick (a dump the cut has just
        // written): waiting the tick out costs less than hashing the file.
        // A smaller file hashes in about the time of the wait, and one
        // written all the time (a broker's journal) would pay both.
        absl::SleepFor(absl::Nanoseconds(last + kTickMarginNs - now) +
                       absl::Milliseconds(1));
        struct stat again;
        if (env->Fstat(fd.get(), &again) == 0 && StampOf("", again) == stamp) {
          now = FileClockNs();
        }
      }
      if (last < now - kTickMarginNs) {
        // Settled: any write from now on shows in its stamp, which the
        // push checks after hashing what it sends.
        --result->hold_fds;
        e->set_size(st.st_size);
        result->pending.insert_or_assign(
            e->path(),
            HeldContent{{},
                        std::make_shared<const UniqueFd>(std::move(fd)),
                        std::move(stamp)});
        return absl::OkStatus();
      }
    }
    Sha256 h;
    uint64_t total = 0;
    const bool hold = static_cast<uint64_t>(st.st_size) <= kHoldFileMax &&
                      static_cast<uint64_t>(st.st_size) <= result->hold_budget;
    std::string kept;
    for (;;) {
      ssize_t n = env->Read(fd.get(), buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, absl::StrCat("read ", e->path()));
      }
      if (n == 0) break;
      h.Update(buf.data(), n);
      if (hold && total + n <= kHoldFileMax) kept.append(buf.data(), n);
      total += n;
    }
    e->set_size(total);
    e->set_sha256(DigestBytes(h.Finish()));
    result->bytes_hashed += total;
    if (hold && kept.size() == total && total <= result->hold_budget) {
      result->hold_budget -= total;
      result->held.try_emplace(
          e->sha256(), HeldContent{std::move(kept), nullptr, std::nullopt});
    }
    // Only a file that did not change while we read it is worth indexing
    // (or holding open).
    struct stat after;
    if (env->Fstat(fd.get(), &after) == 0 && after.st_size == st.st_size &&
        after.st_mtim.tv_sec == st.st_mtim.tv_sec &&
        after.st_mtim.tv_nsec == st.st_mtim.tv_nsec &&
        static_cast<uint64_t>(st.st_size) == total) {
      record->Record(e->path(), st, e->sha256());
      if (total > kHoldFileMax && result->hold_fds > 0 &&
          !result->held.contains(e->sha256())) {
        --result->hold_fds;
        HeldContent held{
            {}, std::make_shared<const UniqueFd>(std::move(fd)), std::nullopt};
        StatStamp stamp = StampOf("", st);
        if (std::max(stamp.mtime_ns, stamp.ctime_ns) <
            read_start_ns - kTickMarginNs) {
          held.settled = std::move(stamp);
        }
        result->held.try_emplace(e->sha256(), std::move(held));
      }
    }
    return absl::OkStatus();
  }

  // Walks directory `dirfd`, whose path relative to the root is `rel_dir`.
  absl::Status Walk(int dirfd, const std::string& rel_dir) {
    std::vector<std::string> names;
    // A listing cut short by an error fails the scan: a short listing would
    // be mirrored as deletions.
    if (env->ReadDir(dirfd, &names) != 0) {
      return ErrnoStatus(
          errno, absl::StrCat("list directory ", JoinPath(root, rel_dir)));
    }
    std::sort(names.begin(), names.end());
    for (const std::string& name : names) {
      absl::Status st = Visit(dirfd, rel_dir, name, /*recurse=*/true);
      if (!absl::IsNotFound(st)) RETURN_IF_ERROR(st);
    }
    return absl::OkStatus();
  }

  // Adds the object `name` of directory `dirfd` (at `rel_dir` below the
  // root) and, for a directory with `recurse`, what is below it. NOT_FOUND
  // when it is not there (or not in the mirror set).
  absl::Status Visit(int dirfd, const std::string& rel_dir,
                     const std::string& name, bool recurse) {
    std::string rel = JoinPath(rel_dir, name);
    std::string full = JoinPath(root, rel);
    if (filter->Excluded(rel, name, full)) return absl::NotFoundError(full);
    struct stat st;
    if (env->FstatAt(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      // Deleted while we walked.
      if (errno == ENOENT) return absl::NotFoundError(full);
      return ErrnoStatus(errno, absl::StrCat("stat ", full));
    }
    if (!ValidateRelativePath(full).ok()) {
      result->warnings.push_back(
          absl::StrCat("skipped ", full, ": name cannot be mirrored"));
      return absl::NotFoundError(full);
    }
    Entry e;
    e.set_path(full);
    if (S_ISDIR(st.st_mode)) {
      e.set_type(gwmirror::v1::ENTRY_TYPE_DIRECTORY);
      Fill(&e, st);
      out->push_back(std::move(e));
      if (!recurse) return absl::OkStatus();
      UniqueFd sub(
          env->OpenAt(dirfd, name.c_str(),
                      O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!sub.valid()) {
        if (errno == ENOENT) {
          out->pop_back();
          return absl::NotFoundError(full);
        }
        return ErrnoStatus(errno, absl::StrCat("open ", full));
      }
      return Walk(sub.get(), rel);
    }
    if (!filter->Included(rel, name, full)) return absl::NotFoundError(full);
    if (S_ISREG(st.st_mode)) {
      e.set_type(gwmirror::v1::ENTRY_TYPE_FILE);
      RETURN_IF_ERROR(HashFile(dirfd, name.c_str(), &e));
    } else if (S_ISLNK(st.st_mode)) {
      e.set_type(gwmirror::v1::ENTRY_TYPE_SYMLINK);
      Fill(&e, st);
      std::string target(4096, '\0');
      ssize_t n =
          env->ReadLinkAt(dirfd, name.c_str(), target.data(), target.size());
      if (n < 0) {
        if (errno == ENOENT) return absl::NotFoundError(full);
        return ErrnoStatus(errno, absl::StrCat("readlink ", full));
      }
      target.resize(n);
      e.set_link_target(target);
    } else {
      result->warnings.push_back(
          absl::StrCat("skipped ", full, ": not a file, directory or symlink"));
      return absl::NotFoundError(full);
    }
    out->push_back(std::move(e));
    return absl::OkStatus();
  }
};

}  // namespace

std::vector<std::string> RootPaths(
    const google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig>& roots) {
  std::vector<std::string> out;
  for (const auto& r : roots) out.push_back(r.path());
  return out;
}

StatStamp StampOf(const std::string& path, const struct stat& st) {
  return StatStamp{path,
                   static_cast<uint64_t>(st.st_ino),
                   static_cast<uint64_t>(st.st_size),
                   static_cast<uint32_t>(st.st_mode),
                   st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
                   st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec};
}

int64_t FileClockNs() {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

absl::Status VerifyScanStable(const std::string& host_root,
                              const std::vector<StatStamp>& stamps,
                              int64_t scan_start_ns) {
  for (const StatStamp& s : stamps) {
    if (std::max(s.mtime_ns, s.ctime_ns) > scan_start_ns - kTickMarginNs) {
      return absl::AbortedError(
          absl::StrCat(s.path, " was changed just before the scan"));
    }
    struct stat st;
    if (lstat(JoinPath(host_root, s.path).c_str(), &st) != 0) {
      return absl::AbortedError(
          absl::StrCat(s.path, " vanished during the scan"));
    }
    if (!(StampOf(s.path, st) == s)) {
      return absl::AbortedError(
          absl::StrCat(s.path, " changed during the scan"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ScanResult> ScanMirrorSet(
    const std::string& host_root,
    const google::protobuf::RepeatedPtrField<gwmirror::v1::RootConfig>& roots,
    const HashIndex* previous, size_t hold_fds, Env* env,
    uint64_t pending_from) {
  ScanResult result;
  result.hold_fds = hold_fds;
  result.pending_from = pending_from;
  std::vector<Entry> entries;
  for (const auto& root : roots) {
    std::string dir = JoinPath(host_root, root.path());
    UniqueFd fd(env->Open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid()) {
      if (errno == ENOENT) continue;
      return ErrnoStatus(errno, absl::StrCat("open root ", dir));
    }
    struct stat st;
    if (env->Fstat(fd.get(), &st) != 0) {
      return ErrnoStatus(errno, "stat " + dir);
    }
    result.stamps.push_back(StampOf(root.path(), st));
    MirrorFilter filter(root);
    Walker w{&filter, root.path(), &entries, &result, previous, &result.index};
    w.env = env;
    RETURN_IF_ERROR(w.Walk(fd.get(), ""));
  }
  result.objects_read = entries.size();
  ASSIGN_OR_RETURN(
      result.manifest,
      Manifest::FromEntries(std::move(entries), pending_from > 0
                                                    ? Digests::kMayBePending
                                                    : Digests::kRequired));
  return result;
}

}  // namespace gwmirror

namespace gwmirror {

absl::Status ScanObject(const std::string& host_root,
                        const gwmirror::v1::RootConfig& root,
                        const MirrorFilter& filter, const std::string& full,
                        bool recurse, HashIndex* index, ScanResult* result,
                        std::vector<Entry>* out, Env* env) {
  if (!PathIsWithin(full, root.path())) {
    return absl::InvalidArgumentError(
        absl::StrCat(full, " is not in the root ", root.path()));
  }
  std::string dir = JoinPath(host_root, root.path());
  UniqueFd fd(env->Open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT || errno == ENOTDIR) return absl::NotFoundError(full);
    return ErrnoStatus(errno, absl::StrCat("open root ", dir));
  }
  if (full == root.path()) {
    Walker w{&filter, root.path(), out, result, index, index};
    w.env = env;
    return w.Walk(fd.get(), "");
  }
  // Down to the parent, never through a symlink, skipping nothing the
  // filter excludes.
  std::vector<std::string> parts =
      SplitPath(absl::string_view(full).substr(root.path().size() + 1));
  std::string rel_dir;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    std::string rel = JoinPath(rel_dir, parts[i]);
    if (filter.Excluded(rel, parts[i], JoinPath(root.path(), rel))) {
      return absl::NotFoundError(full);
    }
    UniqueFd sub(env->OpenAt(fd.get(), parts[i].c_str(),
                             O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub.valid()) {
      if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP) {
        return absl::NotFoundError(full);
      }
      return ErrnoStatus(errno, absl::StrCat("open ", rel));
    }
    fd = std::move(sub);
    rel_dir = std::move(rel);
  }
  Walker w{&filter, root.path(), out, result, index, index};
  w.env = env;
  return w.Visit(fd.get(), rel_dir, parts.back(), recurse);
}

}  // namespace gwmirror
