#include "node/source/signature_cache.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace gwmirror {

SignatureCache::SignatureCache(std::string dir, uint32_t block_len)
    : dir_(absl::StrCat(dir, "/", block_len)), block_len_(block_len) {}

std::string SignatureCache::PathOf(absl::string_view sha256) const {
  return absl::StrCat(dir_, "/", HexOf(sha256));
}

bool SignatureCache::Has(absl::string_view sha256) const {
  return access(PathOf(sha256).c_str(), F_OK) == 0;
}

absl::StatusOr<std::shared_ptr<const MappedFile>> SignatureCache::Map(
    absl::string_view sha256) const {
  ASSIGN_OR_RETURN(MappedFile m, MappedFile::Open(PathOf(sha256)));
  return std::make_shared<const MappedFile>(std::move(m));
}

absl::StatusOr<std::unique_ptr<SignatureCache::Writer>> SignatureCache::Start(
    absl::string_view sha256) {
  std::string path = sha256.empty() ? "" : PathOf(sha256);
  // A signature whose digest is not known yet gets a name of its own: two
  // pushes may build one at once.
  static std::atomic<uint64_t> unnamed{0};
  std::string tmp = sha256.empty()
                        ? absl::StrCat(dir_, "/unnamed-", getpid(), "-",
                                       unnamed.fetch_add(1), ".tmp")
                        : path + ".tmp";
  // The directory is made on first use (a failure is this call's error).
  if (access(dir_.c_str(), F_OK) != 0) RETURN_IF_ERROR(MakeDirs(dir_, 0700));
  UniqueFd fd(
      open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoStatus(errno, "signature cache");
  return std::unique_ptr<Writer>(
      new Writer(this, std::move(path), std::move(tmp), std::move(fd)));
}

SignatureCache::Writer::Writer(const SignatureCache* cache, std::string path,
                               std::string tmp, UniqueFd fd)
    : cache_(cache),
      path_(std::move(path)),
      tmp_(std::move(tmp)),
      fd_(std::move(fd)) {}

SignatureCache::Writer::~Writer() {
  if (!committed_) unlink(tmp_.c_str());
}

absl::Status SignatureCache::Writer::Append(absl::string_view bytes) {
  return WriteAll(fd_.get(), bytes);
}

absl::Status SignatureCache::Writer::Commit(absl::string_view sha256) {
  if (path_.empty() == sha256.empty()) {
    return absl::InternalError(
        path_.empty() ? "a signature started without a digest was committed "
                        "without one"
                      : "a signature started with a digest was committed "
                        "under another name as well");
  }
  if (path_.empty()) path_ = cache_->PathOf(sha256);
  fd_.Reset();
  if (rename(tmp_.c_str(), path_.c_str()) != 0) {
    return ErrnoStatus(errno, "signature cache rename");
  }
  committed_ = true;
  return absl::OkStatus();
}

void SignatureCache::Prune(const std::set<std::string>& keep) {
  DIR* d = opendir(dir_.c_str());
  if (d == nullptr) return;
  std::set<std::string> keep_hex;
  for (const std::string& k : keep) keep_hex.insert(HexOf(k));
  while (struct dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    if (!keep_hex.count(e->d_name)) {
      unlinkat(dirfd(d), e->d_name, 0);
    }
  }
  closedir(d);
}

}  // namespace gwmirror
