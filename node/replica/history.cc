#include "node/replica/history.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/chunk_codec.h"
#include "common/delta.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "node/replica/history_object.h"

namespace gwmirror {
namespace {

using gwmirror::v1::ENTRY_TYPE_FILE;

// A delta chain longer than this is cut by a whole copy: reading the oldest
// version costs at most this many patches.
constexpr int kMaxChain = 16;
// A delta is kept only when it is smaller than this share of the version.
constexpr double kDeltaPays = 0.6;
constexpr int kLevel = 3;
constexpr size_t kBuf = 1 << 20;

bool IsHex64(absl::string_view s) {
  return s.size() == 64 &&
         s.find_first_not_of("0123456789abcdef") == absl::string_view::npos;
}

// Reads all of `fd` from its start in pieces.
absl::Status ForEachPiece(
    Env* env, int fd, const std::string& what,
    const std::function<absl::Status(absl::string_view piece, bool eof)>& fn) {
  // One buffer per thread (never nested): restores read many small files.
  thread_local std::string buf(kBuf, '\0');
  off_t off = 0;
  for (;;) {
    ssize_t n = env->PRead(fd, buf.data(), buf.size(), off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", what));
    off += n;
    RETURN_IF_ERROR(fn(absl::string_view(buf.data(), n), n == 0));
    if (n == 0) return absl::OkStatus();
  }
}

// Empties `fd` for a new content. A truncate only when there is something
// to drop: on ext4, truncating to zero and rewriting makes close() flush
// the file (auto_da_alloc), which made every restored file a disk write.
absl::Status Rewind(Env* env, int fd) {
  struct stat st;
  if (env->Fstat(fd, &st) != 0) return ErrnoStatus(errno, "stat output");
  if ((st.st_size > 0 && env->Ftruncate(fd, 0) != 0) ||
      lseek(fd, 0, SEEK_SET) != 0) {
    return ErrnoStatus(errno, "truncate output");
  }
  return absl::OkStatus();
}

// Copies `in` (from its start) to `out` (truncated), hashing; returns the
// raw SHA-256 of what was copied.
absl::StatusOr<std::string> CopyHashing(Env* env, int in, int out,
                                        const std::string& what) {
  RETURN_IF_ERROR(Rewind(env, out));
  Sha256 hash;
  RETURN_IF_ERROR(ForEachPiece(env, in, what, [&](absl::string_view p, bool) {
    hash.Update(p);
    return WriteAll(out, p, env);
  }));
  return DigestBytes(hash.Finish());
}

absl::StatusOr<UniqueFd> TempFile(Env* env, const std::string& dir) {
  UniqueFd fd(env->Open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
  if (!fd.valid()) {
    return ErrnoStatus(errno, absl::StrCat("temporary file in ", dir));
  }
  return fd;
}

}  // namespace

gwmirror::v1::RetentionConfig DefaultRetention() {
  gwmirror::v1::RetentionConfig p;
  auto tier = [&](int64_t within_s, int64_t every_s) {
    auto* t = p.add_tiers();
    t->set_within_ms(within_s * 1000);
    t->set_every_ms(every_s * 1000);
  };
  tier(3600, 0);
  tier(24 * 3600, 3600);
  tier(7 * 24 * 3600, 24 * 3600);
  p.set_max_count(500);
  return p;
}

std::vector<uint64_t> ChooseExpired(const std::vector<HistoryPoint>& points,
                                    const std::set<uint64_t>& pins,
                                    const gwmirror::v1::RetentionConfig& policy,
                                    absl::Time now) {
  std::vector<uint64_t> expired;
  if (points.empty()) return expired;
  const int64_t now_ms = absl::ToUnixMillis(now);
  std::vector<const gwmirror::v1::RetentionTier*> tiers;
  for (const auto& t : policy.tiers()) tiers.push_back(&t);
  std::sort(tiers.begin(), tiers.end(),
            [](auto* a, auto* b) { return a->within_ms() < b->within_ms(); });
  // Oldest first, so the first point of a bucket is the one kept.
  std::set<std::pair<size_t, int64_t>> buckets;
  std::vector<uint64_t> kept;  // Unpinned, not the newest, oldest first.
  for (size_t i = 0; i + 1 < points.size(); ++i) {
    const HistoryPoint& p = points[i];
    if (pins.count(p.checkpoint)) continue;
    const int64_t age = std::max<int64_t>(0, now_ms - p.committed_unix_ms);
    size_t tier = 0;
    while (tier < tiers.size() &&
           static_cast<uint64_t>(age) > tiers[tier]->within_ms()) {
      ++tier;
    }
    bool keep = tier < tiers.size() &&
                (tiers[tier]->every_ms() == 0 ||
                 buckets
                     .insert({tier, p.committed_unix_ms /
                                        int64_t(tiers[tier]->every_ms())})
                     .second);
    (keep ? kept : expired).push_back(p.checkpoint);
  }
  // The count bound spares the newest and the pinned; the oldest go first.
  const uint64_t max = policy.max_count();
  if (max > 0) {
    size_t total = kept.size() + 1;
    for (size_t i = 0; i < kept.size() && total > max; ++i, --total) {
      expired.push_back(kept[i]);
    }
  }
  std::sort(expired.begin(), expired.end());
  return expired;
}

History::History(std::string dir, gwmirror::v1::RetentionConfig policy,
                 TreeLookup tree, Env* env)
    : dir_(std::move(dir)),
      policy_(std::move(policy)),
      tree_(std::move(tree)),
      env_(env) {}

std::string History::ObjectPath(const std::string& sha) const {
  return absl::StrCat(dir_, "/objects/", HexOf(sha));
}

std::string History::PointPath(uint64_t n) const {
  return absl::StrCat(dir_, "/points/", n);
}

absl::StatusOr<std::unique_ptr<History>> History::Open(
    std::string dir, gwmirror::v1::RetentionConfig policy, TreeLookup tree,
    Env* env) {
  if (policy.tiers().empty() && policy.max_count() == 0) {
    policy = DefaultRetention();
  }
  std::unique_ptr<History> h(
      new History(std::move(dir), std::move(policy), std::move(tree), env));
  RETURN_IF_ERROR(MakeDirs(h->dir_ + "/points", 0700, h->env_));
  RETURN_IF_ERROR(MakeDirs(h->dir_ + "/objects", 0700, h->env_));
  // Temporaries of an encoding or a preserve cut short by a crash.
  ASSIGN_OR_RETURN(std::vector<std::string> objects,
                   ListDir(h->dir_ + "/objects", h->env_));
  for (const std::string& name : objects) {
    if (absl::EndsWith(name, ".tmp") || absl::EndsWith(name, ".enc")) {
      h->env_->UnlinkAt(AT_FDCWD, (h->dir_ + "/objects/" + name).c_str(), 0);
    }
  }
  ASSIGN_OR_RETURN(std::vector<std::string> names,
                   ListDir(h->dir_ + "/points", h->env_));
  absl::MutexLock l(&h->mu_);
  for (const std::string& name : names) {
    uint64_t n = 0;
    const std::string path = h->dir_ + "/points/" + name;
    if (!absl::SimpleAtoi(name, &n)) {
      h->env_->UnlinkAt(AT_FDCWD, path.c_str(),
                        0);  // A temporary left by a crash.
      continue;
    }
    ASSIGN_OR_RETURN(std::string text, ReadFileToString(path, h->env_));
    HistoryPoint p;
    p.checkpoint = n;
    // A damaged field is refused, never read as 0: a commit time of 0
    // would make retention expire the point.
    auto damaged = [&](absl::string_view line) {
      return absl::DataLossError(absl::StrCat(
          path, ": damaged history point line \"", line.substr(0, 80), "\""));
    };
    bool committed = false;
    for (absl::string_view line :
         absl::StrSplit(text, '\n', absl::SkipEmpty())) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(line, absl::MaxSplits(' ', 1));
      if (kv.first == "manifest") {
        if (!IsHex64(kv.second)) return damaged(line);
        p.manifest_sha = absl::HexStringToBytes(kv.second);
      } else if (kv.first == "committed_unix_ms") {
        if (!absl::SimpleAtoi(kv.second, &p.committed_unix_ms) ||
            p.committed_unix_ms <= 0) {
          return damaged(line);
        }
        committed = true;
      } else if (kv.first == "entries") {
        if (!absl::SimpleAtoi(kv.second, &p.entries)) return damaged(line);
      } else if (kv.first == "changes") {
        std::vector<absl::string_view> f = absl::StrSplit(kv.second, ' ');
        if (f.size() != 4 || !absl::SimpleAtoi(f[0], &p.added) ||
            !absl::SimpleAtoi(f[1], &p.changed) ||
            !absl::SimpleAtoi(f[2], &p.removed) ||
            !absl::SimpleAtoi(f[3], &p.changed_bytes)) {
          return damaged(line);
        }
      }
    }
    if (p.manifest_sha.empty() || !committed) {
      return absl::DataLossError(absl::StrCat(
          path, ": a history point without its manifest or commit time"));
    }
    h->points_[n] = p;
  }
  auto pins = ReadFileToString(h->dir_ + "/pins", h->env_);
  if (pins.ok()) {
    for (absl::string_view s : absl::StrSplit(*pins, '\n', absl::SkipEmpty())) {
      uint64_t n = 0;
      if (absl::SimpleAtoi(s, &n)) h->pins_.insert(n);
    }
  }
  return h;
}

bool History::Has(uint64_t n) const {
  absl::MutexLock l(&mu_);
  return points_.count(n) > 0;
}

std::set<uint64_t> History::pins() const {
  absl::MutexLock l(&mu_);
  return pins_;
}

std::vector<HistoryPoint> History::Points() const {
  absl::MutexLock l(&mu_);
  std::vector<HistoryPoint> out;
  for (const auto& [n, p] : points_) out.push_back(p);
  return out;
}

History::ObjectInfo History::Info(const std::string& sha) const {
  ObjectInfo info;
  const std::string path = ObjectPath(sha);
  UniqueFd fd(env_->Open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (fd.valid()) {
    char h[kHistoryObjectHeaderSize];
    struct stat st;
    if (env_->PRead(fd.get(), h, sizeof h, 0) == sizeof h &&
        env_->Fstat(fd.get(), &st) == 0) {
      if (auto header =
              ParseHistoryObjectHeader(absl::string_view(h, sizeof h));
          header.ok()) {
        info.kind = header->delta ? ObjectInfo::kDelta : ObjectInfo::kWhole;
        info.below = header->below;
        info.basis = header->basis_sha;
        info.size = st.st_size;
        return info;
      }
    }
  }
  struct stat st;
  if (env_->FstatAt(AT_FDCWD, (path + ".raw").c_str(), &st, 0) == 0) {
    info.kind = ObjectInfo::kRaw;
    info.size = st.st_size;
  }
  return info;
}

absl::Status History::PutRaw(const std::string& sha, absl::string_view content,
                             const std::string& basis) {
  if (Info(sha).kind == ObjectInfo::kNone) {
    RETURN_IF_ERROR(WriteFileAtomic(ObjectPath(sha) + ".raw", content, 0600,
                                    Durability::kSynced, env_));
  }
  if (!basis.empty()) {
    RETURN_IF_ERROR(WriteFileAtomic(ObjectPath(sha) + ".basis",
                                    HexOf(basis) + "\n", 0600,
                                    Durability::kCache, env_));
  }
  return absl::OkStatus();
}

absl::Status History::Preserve(
    const Manifest& old, const Manifest& next,
    const std::function<absl::StatusOr<UniqueFd>(const std::string&)>&
        open_old) {
  absl::ReaderMutexLock gl(&gc_mu_);
  // The versions the commit replaces or removes, with what replaces each
  // (an entry both manifests share is passed without a look).
  std::vector<std::pair<const Entry*, const Entry*>> replaced;
  ForEachPath(old, next, [&](const Entry* o, const Entry* n) {
    if (o != nullptr && o != n && o->type() == ENTRY_TYPE_FILE &&
        (n == nullptr || n->sha256() != o->sha256())) {
      replaced.emplace_back(o, n);
    }
  });
  if (replaced.empty()) return absl::OkStatus();
  // A replaced version the next tree still holds at another path needs no
  // keeping: a few are looked for entry by entry, more in a set of all.
  absl::flat_hash_set<absl::string_view> kept;
  if (replaced.size() > 8) {
    for (const Entry& e : next.entries()) {
      if (e.type() == ENTRY_TYPE_FILE) kept.insert(e.sha256());
    }
  }
  auto still_held = [&](const std::string& sha) {
    if (replaced.size() > 8) return kept.contains(sha);
    for (const Entry& e : next.entries()) {
      if (e.type() == ENTRY_TYPE_FILE && e.sha256() == sha) return true;
    }
    return false;
  };
  bool wrote = false;
  for (const auto& [o, n] : replaced) {
    const Entry& e = *o;
    if (still_held(e.sha256())) continue;
    const std::string obj = ObjectPath(e.sha256());
    std::string basis =
        n != nullptr && n->type() == ENTRY_TYPE_FILE ? n->sha256() : "";
    if (Info(e.sha256()).kind != ObjectInfo::kNone) continue;
    RETURN_IF_ERROR(FaultPoint("history:preserve"));
    auto in = open_old(e.path());
    if (!in.ok()) {
      // Gone already (a drifted standby): nothing left to keep.
      Logf(LogLevel::kWarning, "history",
           "version of %s not kept (%s): older checkpoints lack it", e.path(),
           in.status().message());
      continue;
    }
    const std::string raw = obj + ".raw";
    const std::string tmp = obj + ".tmp";
    env_->UnlinkAt(AT_FDCWD, tmp.c_str(), 0);
    // The replaced inode itself, when the tree shares the file system.
    std::string proc = absl::StrCat("/proc/self/fd/", in->get());
    if (env_->LinkAt(AT_FDCWD, proc.c_str(), AT_FDCWD, tmp.c_str(),
                     AT_SYMLINK_FOLLOW) != 0) {
      UniqueFd out(env_->Open(tmp.c_str(),
                              O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (!out.valid()) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
      RETURN_IF_ERROR(
          CopyHashing(env_, in->get(), out.get(), e.path()).status());
      if (env_->Fsync(out.get()) != 0)
        return ErrnoStatus(errno, "fsync " + tmp);
    }
    if (env_->RenameAt(AT_FDCWD, tmp.c_str(), AT_FDCWD, raw.c_str()) != 0) {
      return ErrnoStatus(errno, absl::StrCat("rename ", tmp));
    }
    if (!basis.empty()) {
      RETURN_IF_ERROR(WriteFileAtomic(obj + ".basis", HexOf(basis) + "\n", 0600,
                                      Durability::kCache, env_));
    }
    wrote = true;
  }
  return wrote ? FsyncPath(dir_ + "/objects", env_) : absl::OkStatus();
}

absl::Status History::SetPins(const std::vector<uint64_t>& pins) {
  std::set<uint64_t> next(pins.begin(), pins.end());
  {
    absl::MutexLock l(&mu_);
    if (next == pins_) return absl::OkStatus();
    pins_ = next;
  }
  std::string text;
  for (uint64_t n : next) absl::StrAppend(&text, n, "\n");
  return WriteFileAtomic(dir_ + "/pins", text, 0600, Durability::kSynced, env_);
}

absl::Status History::Record(uint64_t n, const Manifest& m,
                             const Manifest* prev,
                             const std::vector<uint64_t>* pins,
                             absl::Time now) {
  if (pins != nullptr) RETURN_IF_ERROR(SetPins(*pins));
  absl::ReaderMutexLock gl(&gc_mu_);
  const std::string bytes = m.Encode();
  // The digest covers exactly these bytes, and a committed manifest has it
  // computed already.
  const std::string sha = DigestBytes(m.ComputeDigest());
  HistoryPoint p;
  p.checkpoint = n;
  p.manifest_sha = sha;
  p.committed_unix_ms = absl::ToUnixMillis(now);
  p.entries = m.size();
  if (prev != nullptr) {
    ForEachPath(*prev, m, [&](const Entry* o, const Entry* e) {
      if (e == nullptr) {
        ++p.removed;
      } else if (o == nullptr) {
        ++p.added;
        p.changed_bytes += e->size();
      } else if (!SameEntry(*o, *e)) {
        ++p.changed;
        if (!SameContent(*o, *e)) p.changed_bytes += e->size();
      }
    });
  } else {
    p.added = m.size();
  }
  std::string newest;
  {
    absl::MutexLock l(&mu_);
    if (!points_.empty()) newest = points_.rbegin()->second.manifest_sha;
  }
  // The newest manifest stays whole (.raw); the one before it becomes a
  // delta against it.
  RETURN_IF_ERROR(PutRaw(sha, bytes, ""));
  if (!newest.empty() && newest != sha &&
      Info(newest).kind == ObjectInfo::kRaw) {
    RETURN_IF_ERROR(WriteFileAtomic(ObjectPath(newest) + ".basis",
                                    HexOf(sha) + "\n", 0600, Durability::kCache,
                                    env_));
  }
  RETURN_IF_ERROR(WriteFileAtomic(
      PointPath(n),
      absl::StrCat("manifest ", HexOf(sha), "\ncommitted_unix_ms ",
                   p.committed_unix_ms, "\nentries ", p.entries, "\nchanges ",
                   p.added, " ", p.changed, " ", p.removed, " ",
                   p.changed_bytes, "\n"),
      0600, Durability::kSynced, env_));
  absl::MutexLock l(&mu_);
  points_[n] = p;
  return absl::OkStatus();
}

absl::Status History::ReadObject(const std::string& sha, int fd,
                                 int depth) const {
  const std::string path = ObjectPath(sha);
  UniqueFd in(env_->Open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!in.valid()) {
    UniqueFd raw(
        env_->Open((path + ".raw").c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!raw.valid()) {
      // Compaction may have just turned the .raw into the encoded object.
      in =
          UniqueFd(env_->Open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
      if (!in.valid()) {
        return absl::NotFoundError(
            absl::StrCat("version ", HexOf(sha).substr(0, 16),
                         "... is in no standby file and no stored increment"));
      }
    } else {
      ASSIGN_OR_RETURN(std::string got,
                       CopyHashing(env_, raw.get(), fd, path + ".raw"));
      if (got != sha) {
        return absl::DataLossError(absl::StrCat(
            "stored increment ", path, ".raw does not verify (SHA-256 ",
            HexOf(got).substr(0, 16), "...)"));
      }
      return absl::OkStatus();
    }
  }
  auto corrupt = [&](absl::string_view why) {
    return absl::DataLossError(
        absl::StrCat("stored increment ", path, " does not verify: ", why));
  };
  char h[kHistoryObjectHeaderSize];
  auto header = env_->PRead(in.get(), h, sizeof h, 0) == sizeof h
                    ? ParseHistoryObjectHeader(absl::string_view(h, sizeof h))
                    : absl::InvalidArgumentError("bad header");
  if (!header.ok()) return corrupt(header.status().message());
  const uint64_t size = header->size;
  UniqueFd basis;
  std::unique_ptr<Patcher> patcher;
  if (header->delta) {
    if (depth >= kMaxChain * 2) return corrupt("delta chain too long");
    ASSIGN_OR_RETURN(basis, TempFile(env_, dir_ + "/objects"));
    absl::Status st = ReadToDepth(header->basis_sha, basis.get(), depth + 1);
    if (!st.ok()) {
      return absl::Status(st.code(),
                          absl::StrCat("basis of ", path, ": ", st.message()));
    }
    patcher = std::make_unique<Patcher>(basis.get(), size);
  }
  RETURN_IF_ERROR(Rewind(env_, fd));
  Sha256 hash;
  uint64_t out = 0;
  ByteSink sink = [&](absl::string_view p) {
    hash.Update(p);
    out += p.size();
    return WriteAll(fd, p, env_);
  };
  // Records follow the header: the codec decodes, this reads and writes.
  HistoryObjectDecoder decoder;
  const ByteSink decoded = [&](absl::string_view piece) {
    return patcher ? patcher->Feed(piece, false, sink) : sink(piece);
  };
  off_t off = kHistoryObjectHeaderSize;
  std::string buf(kBuf, '\0');
  for (;;) {
    ssize_t n = env_->PRead(in.get(), buf.data(), buf.size(), off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
    if (n == 0) break;
    off += n;
    absl::Status st = decoder.Feed(absl::string_view(buf.data(), n), decoded);
    if (!st.ok()) return corrupt(st.message());
  }
  if (absl::Status st = decoder.Finish(); !st.ok()) {
    return corrupt(st.message());
  }
  if (patcher) {
    absl::Status st = patcher->Feed("", true, sink);
    if (!st.ok()) return corrupt(st.message());
  }
  if (out != size || DigestBytes(hash.Finish()) != sha) {
    return corrupt(absl::StrCat("its content (", out,
                                " bytes) has another "
                                "SHA-256"));
  }
  return absl::OkStatus();
}

absl::Status History::ReadToDepth(const std::string& sha, int fd,
                                  int depth) const {
  {
    // Manifests are read newest first, each a delta of the one before.
    absl::MutexLock l(&cache_mu_);
    if (cached_sha_ == sha) {
      RETURN_IF_ERROR(Rewind(env_, fd));
      return WriteAll(fd, cached_, env_);
    }
  }
  std::string tree_problem;
  if (tree_) {
    auto in = tree_(sha);
    if (in.ok()) {
      ASSIGN_OR_RETURN(std::string got,
                       CopyHashing(env_, in->get(), fd, "tree file"));
      if (got == sha) return absl::OkStatus();
      tree_problem = "its SHA-256 differs";
    }
  }
  absl::Status st = ReadObject(sha, fd, depth);
  if (absl::IsNotFound(st) && !tree_problem.empty()) {
    return absl::DataLossError(
        absl::StrCat("does not hold the checkpoint's content (", tree_problem,
                     ") and no stored increment does"));
  }
  return st;
}

absl::Status History::ReadTo(const std::string& sha, int fd) const {
  absl::ReaderMutexLock gl(&gc_mu_);
  return ReadToDepth(sha, fd, 0);
}

absl::StatusOr<std::string> History::ReadBytes(const std::string& sha) const {
  {
    absl::MutexLock l(&cache_mu_);
    if (cached_sha_ == sha) return cached_;
  }
  ASSIGN_OR_RETURN(UniqueFd fd, TempFile(env_, dir_ + "/objects"));
  RETURN_IF_ERROR(ReadToDepth(sha, fd.get(), 0));
  std::string out;
  RETURN_IF_ERROR(
      ForEachPiece(env_, fd.get(), "version", [&](absl::string_view p, bool) {
        out.append(p.data(), p.size());
        return absl::OkStatus();
      }));
  absl::MutexLock l(&cache_mu_);
  cached_sha_ = sha;
  cached_ = out;
  return out;
}

absl::StatusOr<Manifest> History::LoadManifest(uint64_t n) const {
  std::string sha;
  {
    absl::MutexLock l(&mu_);
    auto it = points_.find(n);
    if (it == points_.end()) {
      std::string have;
      for (const auto& [k, p] : points_)
        absl::StrAppend(&have, have.empty() ? "" : ", ", k);
      return absl::NotFoundError(
          absl::StrCat("checkpoint ", n, " is not retained here (retained: ",
                       have.empty() ? "none" : have, ")"));
    }
    sha = it->second.manifest_sha;
  }
  absl::ReaderMutexLock gl(&gc_mu_);
  ASSIGN_OR_RETURN(std::string bytes, ReadBytes(sha));
  auto m = Manifest::Decode(bytes);
  if (!m.ok()) {
    return absl::DataLossError(
        absl::StrCat("manifest of checkpoint ", n, ": ", m.status().message()));
  }
  return m;
}

absl::Status History::WriteEncoded(const std::string& sha, int content_fd,
                                   bool whole_only, const std::string& basis,
                                   int below) {
  const std::string path = ObjectPath(sha);
  struct stat cs;
  if (env_->Fstat(content_fd, &cs) != 0)
    return ErrnoStatus(errno, "stat " + path);
  const uint64_t size = cs.st_size;
  const std::string tmp = path + ".enc";
  RsSignaturePtr sig;
  if (!whole_only && !basis.empty()) {
    ASSIGN_OR_RETURN(UniqueFd b, TempFile(env_, dir_ + "/objects"));
    absl::Status st = ReadToDepth(basis, b.get(), 0);
    if (st.ok()) {
      struct stat bs;
      if (env_->Fstat(b.get(), &bs) != 0) {
        return ErrnoStatus(errno, "stat the basis of " + path);
      }
      SignatureBuilder builder(bs.st_size, 0, SignatureKind::kLibrsync);
      std::string sig_bytes;
      RETURN_IF_ERROR(ForEachPiece(
          env_, b.get(), "basis", [&](absl::string_view p, bool eof) {
            return builder.Feed(p, eof, [&](absl::string_view s) {
              sig_bytes.append(s.data(), s.size());
              return absl::OkStatus();
            });
          }));
      ASSIGN_OR_RETURN(sig, LoadSignature(sig_bytes));
    }
  }
  UniqueFd out(
      env_->Open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out.valid()) return ErrnoStatus(errno, absl::StrCat("create ", tmp));
  HistoryObjectHeader hdr;
  hdr.delta = sig != nullptr;
  hdr.below = std::max(below, 0);
  hdr.size = size;
  if (sig) hdr.basis_sha = basis;
  const std::string header = EncodeHistoryObjectHeader(hdr);
  RETURN_IF_ERROR(WriteAll(out.get(), header, env_));
  HistoryObjectEncoder encoder(kLevel);
  std::string records;
  uint64_t written = header.size();
  const uint64_t limit = sig ? uint64_t(size * kDeltaPays) + 4096 : UINT64_MAX;
  auto flush = [&](bool all) -> absl::Status {
    records.clear();
    encoder.Flush(all, &records);
    if (records.empty()) return absl::OkStatus();
    RETURN_IF_ERROR(WriteAll(out.get(), records, env_));
    written += records.size();
    if (written > limit) {
      return absl::ResourceExhaustedError("delta does not pay");
    }
    return absl::OkStatus();
  };
  std::unique_ptr<DeltaBuilder> delta;
  if (sig) delta = std::make_unique<DeltaBuilder>(sig.get());
  Sha256 hash;
  absl::Status st = ForEachPiece(
      env_, content_fd, path,
      [&](absl::string_view p, bool eof) -> absl::Status {
        hash.Update(p);
        if (delta) {
          RETURN_IF_ERROR(delta->Feed(p, eof, [&](absl::string_view d) {
            encoder.Add(d);
            return absl::OkStatus();
          }));
        } else {
          encoder.Add(p);
        }
        return flush(eof);
      });
  if (absl::IsResourceExhausted(st)) {
    out.Reset();
    env_->UnlinkAt(AT_FDCWD, tmp.c_str(), 0);
    return WriteEncoded(sha, content_fd, /*whole_only=*/true, "", below);
  }
  RETURN_IF_ERROR(st);
  if (DigestBytes(hash.Finish()) != sha) {
    out.Reset();
    env_->UnlinkAt(AT_FDCWD, tmp.c_str(), 0);
    return absl::DataLossError(absl::StrCat(
        "kept version ", HexOf(sha).substr(0, 16),
        "... no longer has its content (the standby file was changed in "
        "place before its commit replaced it); checkpoints that need it "
        "cannot restore that file"));
  }
  if (env_->Fsync(out.get()) != 0) return ErrnoStatus(errno, "fsync " + tmp);
  out.Reset();
  RETURN_IF_ERROR(FaultPoint("history:encode"));
  if (env_->RenameAt(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename ", tmp));
  }
  return FsyncPath(dir_ + "/objects", env_);
}

absl::Status History::Compact(const std::string& sha) {
  absl::ReaderMutexLock gl(&gc_mu_);
  const std::string path = ObjectPath(sha);
  UniqueFd raw(
      env_->Open((path + ".raw").c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!raw.valid()) return absl::OkStatus();  // Collected meanwhile.
  std::string basis;
  auto hint = ReadFileToString(path + ".basis", env_);
  if (hint.ok()) {
    std::string hex(absl::StripAsciiWhitespace(*hint));
    if (IsHex64(hex)) basis = absl::HexStringToBytes(hex);
  }
  // A delta must not lead back to itself, nor make a chain too long to read:
  // the deltas below this one plus it plus those it stands on stay under
  // kMaxChain (a whole copy starts a new chain).
  const int below = below_[sha];
  if (below >= kMaxChain - 1) basis.clear();
  if (!basis.empty()) {
    std::string b = basis;
    for (int depth = 1;; ++depth) {
      if (b == sha || depth >= kMaxChain) {
        basis.clear();
        break;
      }
      ObjectInfo info = Info(b);
      if (info.kind != ObjectInfo::kDelta) break;
      b = info.basis;
    }
  }
  absl::Status s = WriteEncoded(sha, raw.get(), basis.empty(), basis, below);
  if (s.ok() && Info(sha).kind == ObjectInfo::kDelta) {
    int& b = below_[basis];
    b = std::max(b, below + 1);
  }
  if (absl::IsDataLoss(s)) {
    Logf(LogLevel::kError, "history", "%s", s.message());
  } else if (!s.ok()) {
    return s;
  }
  env_->UnlinkAt(AT_FDCWD, (path + ".raw").c_str(), 0);
  env_->UnlinkAt(AT_FDCWD, (path + ".basis").c_str(), 0);
  return absl::OkStatus();
}

absl::StatusOr<std::set<std::string>> History::Needed(
    std::map<std::string, std::vector<std::string>>* users) const {
  std::set<std::string> needed;
  std::vector<HistoryPoint> points = Points();
  // Newest first: each manifest is a delta of the one read just before.
  std::reverse(points.begin(), points.end());
  for (const HistoryPoint& p : points) {
    needed.insert(p.manifest_sha);
    ASSIGN_OR_RETURN(std::string bytes, ReadBytes(p.manifest_sha));
    ASSIGN_OR_RETURN(Manifest m, Manifest::Decode(bytes));
    for (const Entry& e : m.entries()) {
      if (e.type() != ENTRY_TYPE_FILE) continue;
      needed.insert(e.sha256());
      if (users != nullptr) {
        auto& u = (*users)[e.sha256()];
        if (u.empty()) u.push_back(e.path());
        u.push_back(absl::StrCat(p.checkpoint));
      }
    }
  }
  // Every basis of a kept delta chain.
  std::vector<std::string> todo(needed.begin(), needed.end());
  while (!todo.empty()) {
    std::string sha = std::move(todo.back());
    todo.pop_back();
    ObjectInfo info = Info(sha);
    if (info.kind == ObjectInfo::kDelta && needed.insert(info.basis).second) {
      todo.push_back(info.basis);
    }
  }
  return needed;
}

absl::Status History::CollectGarbage() {
  ASSIGN_OR_RETURN(std::set<std::string> needed, Needed(nullptr));
  ASSIGN_OR_RETURN(std::vector<std::string> names,
                   ListDir(dir_ + "/objects", env_));
  size_t removed = 0;
  for (const std::string& name : names) {
    std::string hex = name.substr(0, 64);
    if (IsHex64(hex) && needed.count(absl::HexStringToBytes(hex))) continue;
    const std::string path = dir_ + "/objects/" + name;
    if (env_->UnlinkAt(AT_FDCWD, path.c_str(), 0) == 0) {
      ++removed;
    } else if (errno != ENOENT) {
      // A disk that refuses is reported, not hidden behind a smaller count.
      return ErrnoStatus(errno, absl::StrCat("remove unneeded ", path));
    }
  }
  if (removed > 0) {
    Logf(LogLevel::kInfo, "history", "removed %d objects no checkpoint needs",
         removed);
  }
  return absl::OkStatus();
}

absl::Status History::ScanChains() {
  below_.clear();
  ASSIGN_OR_RETURN(std::vector<std::string> names,
                   ListDir(dir_ + "/objects", env_));
  for (const std::string& name : names) {
    if (name.size() != 64 || !IsHex64(name)) continue;
    ObjectInfo info = Info(absl::HexStringToBytes(name));
    if (info.kind != ObjectInfo::kDelta) continue;
    int& b = below_[info.basis];
    b = std::max(b, info.below + 1);
  }
  below_known_ = true;
  return absl::OkStatus();
}

absl::StatusOr<int> History::Maintain(absl::Time now, bool gc) {
  absl::MutexLock ml(&maintain_mu_);
  std::vector<uint64_t> expired;
  {
    absl::MutexLock l(&mu_);
    std::vector<HistoryPoint> points;
    for (const auto& [n, p] : points_) points.push_back(p);
    expired = ChooseExpired(points, pins_, policy_, now);
  }
  for (uint64_t n : expired) {
    RETURN_IF_ERROR(FaultPoint("history:expire"));
    if (env_->UnlinkAt(AT_FDCWD, PointPath(n).c_str(), 0) != 0 &&
        errno != ENOENT) {
      return ErrnoStatus(errno, absl::StrCat("remove ", PointPath(n)));
    }
    absl::MutexLock l(&mu_);
    points_.erase(n);
  }
  if (!expired.empty()) RETURN_IF_ERROR(FsyncPath(dir_ + "/points", env_));
  // Compaction: every .raw but the newest manifest, which the next one
  // deltas against.
  std::string newest;
  {
    absl::MutexLock l(&mu_);
    if (!points_.empty()) newest = points_.rbegin()->second.manifest_sha;
  }
  ASSIGN_OR_RETURN(std::vector<std::string> names,
                   ListDir(dir_ + "/objects", env_));
  // Older versions first: a version is compacted after those below it.
  std::vector<std::pair<int64_t, std::string>> raws;
  for (const std::string& name : names) {
    if (!absl::EndsWith(name, ".raw") || !IsHex64(name.substr(0, 64))) continue;
    std::string sha = absl::HexStringToBytes(name.substr(0, 64));
    if (sha == newest) continue;
    struct stat st;
    if (stat((dir_ + "/objects/" + name).c_str(), &st) != 0) continue;
    raws.push_back({st.st_ctim.tv_sec * 1000000000LL + st.st_ctim.tv_nsec,
                    std::move(sha)});
  }
  std::sort(raws.begin(), raws.end());
  if (!raws.empty() && !below_known_) RETURN_IF_ERROR(ScanChains());
  for (const auto& [when, sha] : raws) RETURN_IF_ERROR(Compact(sha));
  if (!expired.empty() || gc) {
    if (gc_mu_.WriterTryLock()) {
      absl::Status st = CollectGarbage();
      gc_mu_.WriterUnlock();
      below_known_ = false;
      RETURN_IF_ERROR(st);
    }
  }
  return static_cast<int>(expired.size());
}

std::vector<std::pair<uint64_t, uint64_t>> History::BytesByPoint() const {
  std::vector<std::pair<uint64_t, uint64_t>> out;
  std::vector<HistoryPoint> points = Points();
  absl::ReaderMutexLock gl(&gc_mu_);
  std::set<std::string> seen;
  // Newest first: an object counts for the newest checkpoint that needs it.
  for (auto it = points.rbegin(); it != points.rend(); ++it) {
    uint64_t bytes = 0;
    auto account = [&](const std::string& sha) {
      if (!seen.insert(sha).second) return;
      ObjectInfo info = Info(sha);
      bytes += info.size;
      while (info.kind == ObjectInfo::kDelta &&
             seen.insert(info.basis).second) {
        info = Info(info.basis);
        bytes += info.size;
      }
    };
    account(it->manifest_sha);
    auto bytes_m = ReadBytes(it->manifest_sha);
    if (bytes_m.ok()) {
      auto m = Manifest::Decode(*bytes_m);
      if (m.ok()) {
        for (const Entry& e : m->entries()) {
          if (e.type() == ENTRY_TYPE_FILE) account(e.sha256());
        }
      }
    }
    out.push_back({it->checkpoint, bytes});
  }
  std::reverse(out.begin(), out.end());
  return out;
}

uint64_t History::TotalBytes() const {
  uint64_t total = 0;
  auto names = ListDir(dir_ + "/objects", env_);
  if (!names.ok()) return 0;
  for (const std::string& name : *names) {
    struct stat st;
    if (stat((dir_ + "/objects/" + name).c_str(), &st) == 0) {
      total += st.st_size;
    }
  }
  return total;
}

absl::Status History::Verify(bool repair, std::vector<std::string>* problems,
                             std::vector<std::string>* repaired,
                             uint64_t* versions_checked,
                             std::vector<std::string>* unrepairable) {
  absl::MutexLock ml(&maintain_mu_);
  std::map<std::string, std::vector<std::string>> users;
  std::set<std::string> needed;
  {
    absl::ReaderMutexLock gl(&gc_mu_);
    auto n = Needed(&users);
    if (!n.ok()) {
      problems->push_back(
          absl::StrCat("history manifests: ", n.status().message()));
      return absl::OkStatus();
    }
    needed = *std::move(n);
  }
  ASSIGN_OR_RETURN(UniqueFd scratch, TempFile(env_, dir_ + "/objects"));
  for (const std::string& sha : needed) {
    const std::string path = ObjectPath(sha);
    ObjectInfo info = Info(sha);
    if (info.kind == ObjectInfo::kNone) continue;  // The tree holds it.
    ++*versions_checked;
    absl::Status st;
    {
      absl::ReaderMutexLock gl(&gc_mu_);
      st = ReadObject(sha, scratch.get(), 0);
    }
    if (st.ok()) continue;
    auto u = users.find(sha);
    std::string who = u == users.end()
                          ? std::string("a basis of other increments")
                          : absl::StrCat(u->second[0], " in checkpoint",
                                         u->second.size() > 2 ? "s " : " ",
                                         absl::StrJoin(u->second.begin() + 1,
                                                       u->second.end(), ", "));
    problems->push_back(absl::StrCat(st.message(), " (needed for ", who, ")"));
    if (!repair) continue;
    absl::ReaderMutexLock gl(&gc_mu_);
    auto in = tree_ ? tree_(sha) : absl::NotFoundError("no tree");
    if (in.ok()) {
      env_->UnlinkAt(AT_FDCWD, path.c_str(), 0);
      env_->UnlinkAt(AT_FDCWD, (path + ".raw").c_str(), 0);
      absl::Status w = WriteEncoded(sha, in->get(), true, "");
      if (w.ok()) {
        repaired->push_back(absl::StrCat("re-encoded ",
                                         HexOf(sha).substr(0, 16),
                                         "... from the standby tree"));
        continue;
      }
    }
    problems->back() += "; cannot be repaired: no standby file holds it";
    if (unrepairable != nullptr) unrepairable->push_back(problems->back());
  }
  return absl::OkStatus();
}

}  // namespace gwmirror
