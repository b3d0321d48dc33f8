#include "node/replica/staging.h"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/fault.h"
#include "common/fd.h"
#include "common/log.h"
#include "common/manifest_edit.h"
#include "common/status_macros.h"

namespace gwmirror {

using gwmirror::v1::ENTRY_TYPE_FILE;

bool NeedsContent(const Entry& next, const Entry* old) {
  return next.type() == ENTRY_TYPE_FILE &&
         (old == nullptr || old->type() != ENTRY_TYPE_FILE ||
          old->sha256() != next.sha256());
}

absl::StatusOr<std::unique_ptr<Staging>> Staging::Open(std::string dir,
                                                       Limits limits,
                                                       Env* env) {
  std::unique_ptr<Staging> s(new Staging(std::move(dir), limits, env));
  RETURN_IF_ERROR(RemoveTree(s->dir_ + "/prestage", env));
  RETURN_IF_ERROR(MakeDirs(s->dir_ + "/prestage", 0700, env));
  if (getrandom(&s->pool_id_, sizeof s->pool_id_, 0) != sizeof s->pool_id_) {
    return ErrnoStatus(errno, "getrandom");
  }
  return s;
}

std::string Staging::StagingDir(uint64_t n) const {
  return absl::StrCat(dir_, "/staging/", n);
}

std::string Staging::ObjectPath(uint64_t n, absl::string_view sha) const {
  return absl::StrCat(StagingDir(n), "/objects/", HexOf(sha));
}

std::string Staging::ManifestEditPath(uint64_t n) const {
  return StagingDir(n) + "/manifest.edit";
}

absl::StatusOr<Manifest> Staging::ReadStaged(uint64_t n,
                                             const Manifest& committed) const {
  const std::string path = ManifestEditPath(n);
  ASSIGN_OR_RETURN(std::string bytes, ReadFileToString(path, env_));
  absl::StatusOr<ManifestEdit> edit = DecodeManifestEdit(bytes);
  if (!edit.ok()) {
    return absl::DataLossError(
        absl::StrCat(path, ": ", edit.status().message()));
  }
  if (edit->checkpoint != n ||
      edit->base_digest != DigestBytes(committed.ComputeDigest())) {
    return absl::DataLossError(absl::StrCat(
        path, ": checkpoint ", edit->checkpoint,
        " staged against another manifest than the committed one"));
  }
  absl::StatusOr<Manifest> m = ApplyManifestEdit(committed, *edit);
  if (!m.ok() || DigestBytes(m->ComputeDigest()) != edit->digest) {
    return absl::DataLossError(absl::StrCat(
        path, ": does not give checkpoint ", n, "'s manifest",
        m.ok() ? "" : absl::StrCat(" (", m.status().message(), ")")));
  }
  return m;
}

std::string Staging::PoolPath(absl::string_view sha) const {
  return absl::StrCat(dir_, "/prestage/", HexOf(sha));
}

uint64_t Staging::checkpoint() const {
  absl::MutexLock l(&mu_);
  return checkpoint_;
}

std::optional<Staging::Complete> Staging::complete() const {
  absl::MutexLock l(&mu_);
  return complete_;
}

absl::Status Staging::Recover(uint64_t committed,
                              const Manifest& committed_manifest) {
  absl::MutexLock l(&mu_);
  ASSIGN_OR_RETURN(std::vector<std::string> staged,
                   ListDir(dir_ + "/staging", env_));
  for (const std::string& name : staged) {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(name, &n) || n <= committed || checkpoint_ != 0) {
      continue;
    }
    absl::StatusOr<Manifest> m = ReadStaged(n, committed_manifest);
    if (!m.ok()) {
      if (!absl::IsNotFound(m.status())) {
        Logf(LogLevel::kWarning, "replica", "checkpoint=%d staging dropped: %s",
             n, m.status().message());
      }
      continue;
    }
    ASSIGN_OR_RETURN(std::vector<std::string> objects,
                     ListDir(StagingDir(n) + "/objects", env_));
    for (const std::string& o : objects) {
      if (o.size() == 64 &&
          o.find_first_not_of("0123456789abcdef") == std::string::npos) {
        objects_.insert(absl::HexStringToBytes(o));
      } else {
        RETURN_IF_ERROR(RemoveTree(StagingDir(n) + "/objects/" + o, env_));
      }
    }
    checkpoint_ = n;
    std::string digest = DigestBytes(m->ComputeDigest());
    complete_ = Complete{n, std::make_shared<const Manifest>(*std::move(m)),
                         std::move(digest)};
    Logf(LogLevel::kInfo, "replica", "checkpoint=%d kept staged across restart",
         n);
  }
  if (checkpoint_ == 0) return RemoveTree(dir_ + "/staging", env_);
  for (const std::string& name : staged) {
    if (name != absl::StrCat(checkpoint_)) {
      RETURN_IF_ERROR(RemoveTree(dir_ + "/staging/" + name, env_));
    }
  }
  return absl::OkStatus();
}

absl::Status Staging::Begin(uint64_t n) {
  absl::MutexLock l(&mu_);
  if (checkpoint_ != n) {
    DiscardLocked();
    RETURN_IF_ERROR(RemoveTree(dir_ + "/staging", env_));
    RETURN_IF_ERROR(MakeDirs(StagingDir(n) + "/objects", 0700, env_));
    checkpoint_ = n;
  }
  // A new push may change the manifest; it is complete again only at Finish.
  complete_.reset();
  return absl::OkStatus();
}

absl::Status Staging::CheckSpace(const Entry& e, bool prestage) const {
  const uint64_t size = e.size();
  if (prestage) {
    absl::MutexLock l(&mu_);
    // Written so that no sum can wrap: a declared size near 2^64 is full.
    if (size > limits_.pool_cap || pool_bytes_ > limits_.pool_cap - size) {
      return absl::ResourceExhaustedError(
          absl::StrCat("the pre-stage pool is full (", pool_bytes_, " of ",
                       limits_.pool_cap, " bytes, \"", e.path(), "\" needs ",
                       size, "); the rest travels with the next cut"));
    }
  }
  const std::string dir =
      prestage ? dir_ + "/prestage" : StagingDir(checkpoint());
  struct statvfs fs;
  if (statvfs(dir.c_str(), &fs) != 0) {
    return ErrnoStatus(errno, absl::StrCat("statvfs ", dir));
  }
  const uint64_t block = fs.f_frsize ? fs.f_frsize : fs.f_bsize;
  const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * block;
  const uint64_t reserve =
      limits_.min_free_bytes
          ? limits_.min_free_bytes
          : std::min<uint64_t>(1ull << 30,
                               static_cast<uint64_t>(fs.f_blocks) * block / 20);
  if (free_bytes < reserve || size > free_bytes - reserve) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "no space to stage \"", e.path(), "\": it needs ", size,
        " bytes and the file system of ", dir, " has ", free_bytes,
        " free, of which ", reserve,
        " stay in reserve; free space there (the committed tree is "
        "unchanged, and mirroring resumes once there is room)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Staging::TakeFromPool(uint64_t n, const Entry& e) {
  absl::MutexLock l(&mu_);
  auto it = pool_.find(e.sha256());
  if (it != pool_.end() && it->second.size == e.size()) {
    std::string from = PoolPath(e.sha256());
    std::string to = ObjectPath(n, e.sha256());
    if (env_->LinkAt(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), 0) == 0 ||
        errno == EEXIST) {
      objects_.insert(e.sha256());
      resend_whole_.erase(e.path());
      return true;
    }
    if (errno != ENOENT) return ErrnoStatus(errno, "link pre-staged object");
  }
  // Not in the pool (a restart emptied it, or it was trimmed): ask for it.
  resend_whole_.insert(e.path());
  return false;
}

void Staging::Staged(const Entry& e, bool prestage) {
  absl::MutexLock l(&mu_);
  if (prestage) {
    auto [it, added] =
        pool_.emplace(e.sha256(), PoolObject{e.size(), generation_});
    if (added) pool_bytes_ += e.size();
    it->second.generation = generation_;
  } else {
    objects_.insert(e.sha256());
    resend_whole_.erase(e.path());
  }
}

void Staging::AskWhole(const std::string& path) {
  absl::MutexLock l(&mu_);
  resend_whole_.insert(path);
}

absl::StatusOr<std::vector<std::string>> Staging::Finish(
    uint64_t n, Manifest m, std::string digest, const Manifest& committed) {
  absl::MutexLock l(&mu_);
  if (checkpoint_ != n) {
    return absl::AbortedError(
        absl::StrCat("checkpoint ", n, " is no longer staged here"));
  }
  std::vector<std::string> missing, whole;
  ForEachPath(committed, m, [&](const Entry* old, const Entry* e) {
    if (e == nullptr || !NeedsContent(*e, old)) return;
    if (objects_.count(e->sha256())) return;
    (resend_whole_.count(e->path()) ? whole : missing).push_back(e->path());
  });
  if (!missing.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", n, " is incomplete: no content for ", missing.size(),
        " file(s), first \"", missing.front(), "\""));
  }
  if (!whole.empty()) return whole;
  // Every byte is here: make it durable before saying so.
  const std::string dir = StagingDir(n);
  RETURN_IF_ERROR(FaultPoint("stage:sync"));
  {
    UniqueFd fd(env_->Open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid() || env_->Syncfs(fd.get()) != 0) {
      return ErrnoStatus(errno, "sync staging");
    }
  }
  RETURN_IF_ERROR(WriteFileAtomic(
      ManifestEditPath(n), EncodeManifestEdit(DiffManifests(committed, m, n)),
      0600, Durability::kSynced, env_));
  complete_ = Complete{n, std::make_shared<const Manifest>(std::move(m)),
                       std::move(digest)};
  return whole;
}

absl::Status Staging::Adopt(uint64_t n, std::set<std::string> objects,
                            Manifest m, std::string digest,
                            const Manifest& committed) {
  absl::MutexLock l(&mu_);
  if (checkpoint_ != n) {
    return absl::AbortedError(
        absl::StrCat("checkpoint ", n, " is no longer staged here"));
  }
  RETURN_IF_ERROR(WriteFileAtomic(
      ManifestEditPath(n), EncodeManifestEdit(DiffManifests(committed, m, n)),
      0600, Durability::kSynced, env_));
  objects_ = std::move(objects);
  complete_ = Complete{n, std::make_shared<const Manifest>(std::move(m)),
                       std::move(digest)};
  return absl::OkStatus();
}

void Staging::Discard() {
  absl::MutexLock l(&mu_);
  DiscardLocked();
}

void Staging::DiscardLocked() {
  if (checkpoint_ != 0) {
    absl::Status st = RemoveTree(StagingDir(checkpoint_), env_);
    if (!st.ok()) {
      Logf(LogLevel::kWarning, "replica", "discard staging: %s", st.ToString());
    }
  }
  checkpoint_ = 0;
  objects_.clear();
  resend_whole_.clear();
  complete_.reset();
}

absl::Status Staging::Committed(uint64_t n) {
  absl::MutexLock l(&mu_);
  ++generation_;
  for (auto it = pool_.begin(); it != pool_.end();) {
    // Used by this commit (its inode is now in the tree: keeping the pool's
    // link would alias it), or unused by two commits: gone.
    if (objects_.count(it->first) == 0 &&
        it->second.generation + 2 > generation_) {
      ++it;
      continue;
    }
    env_->UnlinkAt(AT_FDCWD, PoolPath(it->first).c_str(), 0);
    pool_bytes_ -= it->second.size;
    it = pool_.erase(it);
  }
  DiscardLocked();
  return RemoveTree(StagingDir(n), env_);
}

}  // namespace gwmirror
