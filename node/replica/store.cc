#include "node/replica/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/path.h"
#include "common/status_macros.h"
#include "node/hash_index.h"
#include "node/scanner.h"

namespace gwmirror {
namespace {

using gwmirror::v1::ENTRY_TYPE_DIRECTORY;
using gwmirror::v1::ENTRY_TYPE_FILE;
using gwmirror::v1::ENTRY_TYPE_SYMLINK;

constexpr uint64_t kDefaultPoolCap = 2ull << 30;
constexpr uint64_t kDefaultMaxManifestBytes = 512ull << 20;

// Whether the standby's `actual` object still is the committed `want`.
// Directory mtimes are not compared: a commit sets them only where it
// changed a listing, and they say nothing about the files.
bool StillCommitted(const Entry& want, const Entry& actual) {
  if (want.type() != actual.type() || want.mode() != actual.mode() ||
      want.uid() != actual.uid() || want.gid() != actual.gid()) {
    return false;
  }
  if (want.type() == ENTRY_TYPE_DIRECTORY) return true;
  return SameContent(want, actual) && want.mtime_ns() == actual.mtime_ns();
}

std::string ParentOf(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == std::string::npos ? "" : path.substr(0, slash);
}

// Whether `next` needs content that the committed tree does not hold at the
// same path.
bool NeedsContent(const Entry& next, const Entry* old) {
  return next.type() == ENTRY_TYPE_FILE &&
         (old == nullptr || old->type() != ENTRY_TYPE_FILE ||
          old->sha256() != next.sha256());
}

}  // namespace

// ---------------------------------------------------------------- PushSession

PushSession::PushSession(ReplicaStore* store, uint64_t checkpoint,
                         bool manifest_delta, bool prestage)
    : store_(store),
      checkpoint_(checkpoint),
      manifest_delta_(manifest_delta),
      prestage_(prestage),
      mirror_set_(store->root_configs_),
      manifest_(manifest_delta, store->max_manifest_bytes_,
                [this](const Entry& e) {
                  return mirror_set_.Admit(e.path(), e.type());
                }) {}

absl::Status PushSession::CheckSpace(const Entry& e) const {
  const uint64_t size = e.size();
  if (prestage_) {
    absl::MutexLock l(&store_->mu_);
    // Written so that no sum can wrap: a declared size near 2^64 is full.
    if (size > store_->pool_cap_ ||
        store_->pool_bytes_ > store_->pool_cap_ - size) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the pre-stage pool is full (", store_->pool_bytes_, " of ",
          store_->pool_cap_, " bytes, \"", e.path(), "\" needs ", size,
          "); the rest travels with the next cut"));
    }
  }
  const std::string dir =
      prestage_ ? store_->Dir() + "/prestage" : store_->StagingDir(checkpoint_);
  struct statvfs fs;
  if (statvfs(dir.c_str(), &fs) != 0) {
    return ErrnoStatus(errno, absl::StrCat("statvfs ", dir));
  }
  const uint64_t block = fs.f_frsize ? fs.f_frsize : fs.f_bsize;
  const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * block;
  const uint64_t reserve =
      store_->min_free_bytes_
          ? store_->min_free_bytes_
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

PushSession::~PushSession() {
  DropPartial();
  store_->EndSession();
}

void PushSession::DropPartial() {
  if (!part_path_.empty())
    store_->env_->UnlinkAt(AT_FDCWD, part_path_.c_str(), 0);
  part_path_.clear();
  part_fd_.Reset();
  basis_fd_.Reset();
  patcher_.reset();
  hash_.reset();
  header_.reset();
  from_pool_ = false;
}

absl::Status PushSession::BeginFile(const gwmirror::v1::FileHeader& h) {
  if (header_) {
    return absl::InvalidArgumentError(
        absl::StrCat("file header for \"", h.entry().path(),
                     "\" before the end of \"", header_->entry().path(), "\""));
  }
  RETURN_IF_ERROR(ValidateEntry(h.entry()));
  if (h.entry().type() != ENTRY_TYPE_FILE) {
    return absl::InvalidArgumentError(absl::StrCat(
        "file header for \"", h.entry().path(), "\" is not a regular file"));
  }
  RETURN_IF_ERROR(mirror_set_.Admit(h.entry().path(), ENTRY_TYPE_FILE));
  ReplicaStore* s = store_;
  if (h.encoding() == gwmirror::v1::ENCODING_PRESTAGED) {
    if (prestage_) {
      return absl::InvalidArgumentError(absl::StrCat(
          "file \"", h.entry().path(),
          "\": a pre-stage push cannot refer to the pre-stage pool"));
    }
    header_ = h;
    from_pool_ = true;
    return TakePrestaged(h.entry());
  }
  RETURN_IF_ERROR(CheckSpace(h.entry()));
  if (h.encoding() == gwmirror::v1::ENCODING_DELTA) {
    std::optional<Entry> basis = s->CommittedEntry(h.entry().path());
    if (!basis || basis->type() != ENTRY_TYPE_FILE ||
        basis->sha256() != h.basis_sha256()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "delta for \"", h.entry().path(),
          "\" names a basis the replica's committed checkpoint does not hold"));
    }
    ASSIGN_OR_RETURN(basis_fd_, s->writer_.OpenFileForRead(h.entry().path()));
    patcher_ = std::make_unique<Patcher>(basis_fd_.get(), h.entry().size());
  } else if (h.encoding() != gwmirror::v1::ENCODING_WHOLE) {
    return absl::InvalidArgumentError(absl::StrCat(
        "file \"", h.entry().path(), "\": unknown encoding ", h.encoding()));
  }
  RETURN_IF_ERROR(FaultPoint("stage:open"));
  part_path_ = ObjectPath(h.entry().sha256()) + ".part";
  part_fd_.Reset(store_->env_->Open(
      part_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
      0600));
  if (!part_fd_.valid()) {
    absl::Status st = ErrnoStatus(errno, "create staging file");
    part_path_.clear();
    return st;
  }
  header_ = h;
  hash_ = std::make_unique<Sha256>();
  written_ = 0;
  return absl::OkStatus();
}

std::string PushSession::ObjectPath(absl::string_view sha) const {
  return prestage_ ? store_->PoolPath(sha)
                   : store_->ObjectPath(checkpoint_, sha);
}

absl::Status PushSession::TakePrestaged(const Entry& e) {
  absl::MutexLock l(&store_->mu_);
  auto it = store_->pool_.find(e.sha256());
  if (it != store_->pool_.end() && it->second.size == e.size()) {
    std::string from = store_->PoolPath(e.sha256());
    std::string to = store_->ObjectPath(checkpoint_, e.sha256());
    if (store_->env_->LinkAt(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), 0) ==
            0 ||
        errno == EEXIST) {
      store_->staged_objects_.insert(e.sha256());
      store_->resend_whole_.erase(e.path());
      ++files_;
      bytes_ += e.size();
      return absl::OkStatus();
    }
    if (errno != ENOENT) return ErrnoStatus(errno, "link pre-staged object");
  }
  // Not in the pool (a restart emptied it, or it was trimmed): ask for it.
  store_->resend_whole_.insert(e.path());
  return absl::OkStatus();
}

absl::Status PushSession::Write(absl::string_view out) {
  written_ += out.size();
  if (written_ > header_->entry().size()) {
    return absl::DataLossError(absl::StrCat("file \"", header_->entry().path(),
                                            "\": more data than its declared ",
                                            header_->entry().size(), " bytes"));
  }
  RETURN_IF_ERROR(FaultPoint("stage:write"));
  hash_->Update(out);
  return WriteAll(part_fd_.get(), out, store_->env_);
}

absl::Status PushSession::FileData(absl::string_view raw) {
  if (!header_) {
    return absl::InvalidArgumentError("file chunk outside of a file");
  }
  if (from_pool_) {
    return absl::InvalidArgumentError(
        absl::StrCat("file \"", header_->entry().path(),
                     "\" is pre-staged: no data may follow its header"));
  }
  absl::Status st =
      patcher_
          ? patcher_->Feed(raw, false,
                           [this](absl::string_view o) { return Write(o); })
          : Write(raw);
  if (!st.ok()) {
    std::string path = header_->entry().path();
    DropPartial();
    return absl::Status(st.code(),
                        absl::StrCat("staging \"", path, "\": ", st.message()));
  }
  return absl::OkStatus();
}

absl::Status PushSession::EndFile() {
  if (!header_) return absl::InvalidArgumentError("file end outside of a file");
  if (from_pool_) {
    from_pool_ = false;
    header_.reset();
    return absl::OkStatus();
  }
  // DropPartial() resets header_: keep our own copy of the entry.
  const Entry e = header_->entry();
  const std::string& path = e.path();
  bool delta = patcher_ != nullptr;
  absl::Status st;
  if (delta) {
    st = patcher_->Feed("", true,
                        [this](absl::string_view o) { return Write(o); });
  }
  if (!st.ok()) {
    DropPartial();
    return absl::Status(st.code(),
                        absl::StrCat("staging \"", path, "\": ", st.message()));
  }
  std::string got = DigestBytes(hash_->Finish());
  if (got != e.sha256() || written_ != e.size()) {
    std::string detail = absl::StrCat(
        "content of \"", path, "\" (", written_, " bytes, sha256 ",
        HexOf(got).substr(0, 16), "...) does not match its header (", e.size(),
        " bytes, sha256 ", HexOf(e.sha256()).substr(0, 16), "...)");
    DropPartial();
    if (delta) {
      // The replica's copy differs from what its manifest says: ask for the
      // whole file instead of failing the checkpoint.
      Logf(LogLevel::kWarning, "replica", "%s; asking for a whole copy",
           detail);
      absl::MutexLock l(&store_->mu_);
      store_->resend_whole_.insert(path);
      return absl::OkStatus();
    }
    return absl::DataLossError(detail);
  }
  RETURN_IF_ERROR(FaultPoint("stage:close"));
  // Start writeback now so the one syncfs at PushEnd finds little to do.
  // Advisory: only an I/O error matters (the syncfs would hit it anyway).
  if (sync_file_range(part_fd_.get(), 0, 0, SYNC_FILE_RANGE_WRITE) != 0 &&
      errno == EIO) {
    absl::Status st = ErrnoStatus(errno, absl::StrCat("write back ", path));
    DropPartial();
    return st;
  }
  std::string final_path = ObjectPath(e.sha256());
  if (store_->env_->RenameAt(AT_FDCWD, part_path_.c_str(), AT_FDCWD,
                             final_path.c_str()) != 0) {
    absl::Status rs = ErrnoStatus(errno, "rename staging file");
    DropPartial();
    return rs;
  }
  part_path_.clear();
  DropPartial();
  {
    absl::MutexLock l(&store_->mu_);
    if (prestage_) {
      auto [it, added] = store_->pool_.emplace(
          e.sha256(), ReplicaStore::PoolObject{e.size(), store_->generation_});
      if (added) store_->pool_bytes_ += e.size();
      it->second.generation = store_->generation_;
    } else {
      store_->staged_objects_.insert(e.sha256());
      store_->resend_whole_.erase(path);
    }
  }
  ++files_;
  bytes_ += e.size();
  return absl::OkStatus();
}

absl::Status PushSession::AddManifest(const gwmirror::v1::ManifestPart& part) {
  if (prestage_) {
    return absl::InvalidArgumentError("a pre-stage push carries no manifest");
  }
  return manifest_.Add(part);
}

absl::StatusOr<gwmirror::v1::PushResult> PushSession::End(
    absl::string_view digest) {
  if (header_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "push ended inside file \"", header_->entry().path(), "\""));
  }
  if (prestage_) {
    if (!digest.empty()) {
      return absl::InvalidArgumentError(
          "a pre-stage push ends without a manifest digest");
    }
    gwmirror::v1::PushResult result;
    result.set_files_received(files_);
    result.set_bytes_received(bytes_);
    return result;
  }
  ASSIGN_OR_RETURN(
      Manifest m,
      manifest_.Finish(
          manifest_delta_ ? store_->CommittedManifest() : Manifest(), digest));
  const std::string computed = DigestBytes(m.ComputeDigest());
  RETURN_IF_ERROR(m.CheckStructure(store_->roots_));
  gwmirror::v1::PushResult result;
  result.set_checkpoint(checkpoint_);
  result.set_manifest_digest(computed);
  result.set_files_received(files_);
  result.set_bytes_received(bytes_);

  absl::MutexLock l(&store_->mu_);
  std::vector<std::string> missing;
  ForEachPath(store_->committed_manifest_, m,
              [&](const Entry* old, const Entry* e) {
                if (e == nullptr || !NeedsContent(*e, old)) return;
                if (store_->staged_objects_.count(e->sha256())) return;
                if (store_->resend_whole_.count(e->path())) {
                  result.add_resend_whole(e->path());
                } else {
                  missing.push_back(e->path());
                }
              });
  if (!missing.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", checkpoint_, " is incomplete: no content for ",
        missing.size(), " file(s), first \"", missing.front(), "\""));
  }
  if (result.resend_whole_size() > 0) return result;
  // Every byte is here: make it durable before saying so.
  std::string dir = store_->StagingDir(checkpoint_);
  RETURN_IF_ERROR(FaultPoint("stage:sync"));
  {
    UniqueFd fd(
        store_->env_->Open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!fd.valid() || store_->env_->Syncfs(fd.get()) != 0) {
      return ErrnoStatus(errno, "sync staging");
    }
  }
  RETURN_IF_ERROR(WriteManifestFile(dir + "/manifest", checkpoint_, m,
                                    Durability::kSynced, store_->env_));
  store_->staged_manifest_ = std::move(m);
  store_->staged_digest_ = computed;
  return result;
}

// --------------------------------------------------------------- ReplicaStore

ReplicaStore::ReplicaStore(const gwmirror::v1::NodeConfig& config,
                           TreeWriter writer, Env* env)
    : env_(env),
      state_dir_(config.state_dir()),
      site_(config.site()),
      roots_(RootPaths(config.roots())),
      host_root_(config.host_root().empty() ? "/" : config.host_root()),
      root_configs_(config.roots()),
      pool_cap_(config.replica().prestage_max_bytes()
                    ? config.replica().prestage_max_bytes()
                    : kDefaultPoolCap),
      max_manifest_bytes_(config.replica().max_push_manifest_bytes()
                              ? config.replica().max_push_manifest_bytes()
                              : kDefaultMaxManifestBytes),
      min_free_bytes_(config.replica().min_free_bytes()),
      writer_(std::move(writer)),
      scrub_interval_ms_(config.replica().scrub_interval_ms()
                             ? config.replica().scrub_interval_ms()
                             : 24 * 3600 * 1000) {}

ReplicaStore::~ReplicaStore() {
  {
    absl::MutexLock l(&keeper_mu_);
    keeper_stop_ = keeper_kick_ = true;
  }
  if (keeper_.joinable()) keeper_.join();
}

void ReplicaStore::KeeperLoop() {
  // History work yields to commits (on two cores it would slow the next
  // cut): it runs once commits have paused for kQuiet, and at the latest
  // kMaxDefer after the first commit it waits on; otherwise every minute.
  constexpr absl::Duration kQuiet = absl::Seconds(2);
  constexpr absl::Duration kMaxDefer = absl::Minutes(1);
  absl::Time next_scrub = absl::Now() + absl::Milliseconds(scrub_interval_ms_);
  absl::Time next_gc = absl::Now();  // The first round collects leftovers.
  absl::Time first_kick = absl::InfinitePast(), last_kick = first_kick;
  auto due = [&] {
    return first_kick == absl::InfinitePast()
               ? absl::Now() + absl::Minutes(1)
               : std::min(last_kick + kQuiet, first_kick + kMaxDefer);
  };
  for (;;) {
    {
      absl::MutexLock l(&keeper_mu_);
      keeper_mu_.AwaitWithDeadline(absl::Condition(&keeper_kick_), due());
      if (keeper_stop_) return;
      if (keeper_kick_) {
        keeper_kick_ = false;
        last_kick = absl::Now();
        if (first_kick == absl::InfinitePast()) first_kick = last_kick;
      }
    }
    if (first_kick != absl::InfinitePast() && absl::Now() < due()) continue;
    first_kick = absl::InfinitePast();
    const absl::Time now = absl::Now();
    absl::Status st = MaintainHistory(now >= next_gc);
    if (now >= next_gc) next_gc = now + absl::Minutes(10);
    if (!st.ok()) {
      Logf(LogLevel::kError, "history", "maintenance: %s", st.ToString());
    }
    if (now < next_scrub) continue;
    next_scrub = now + absl::Milliseconds(scrub_interval_ms_);
    std::vector<std::string> problems, repaired;
    uint64_t versions = 0;
    st = history_->Verify(/*repair=*/false, &problems, &repaired, &versions);
    if (!st.ok()) problems.push_back(std::string(st.message()));
    for (const std::string& p : problems) {
      Logf(LogLevel::kError, "history", "scrub: %s", p);
    }
    Logf(problems.empty() ? LogLevel::kInfo : LogLevel::kError, "history",
         "scrub: %d stored versions re-read, %d problems", versions,
         problems.size());
    absl::MutexLock l(&mu_);
    scrub_problems_ = problems.size();
  }
}

absl::Status ReplicaStore::MaintainHistory(bool gc) {
  return history_->Maintain(absl::Now(), gc).status();
}

absl::StatusOr<UniqueFd> ReplicaStore::OpenBySha(const std::string& sha) const {
  std::string path;
  {
    absl::MutexLock l(&sha_mu_);
    if (!sha_paths_built_ && sha_source_ != nullptr) {
      for (const Entry& e : sha_source_->entries()) {
        if (e.type() == ENTRY_TYPE_FILE)
          sha_paths_.emplace(e.sha256(), e.path());
      }
      sha_paths_built_ = true;
    }
    auto it = sha_paths_.find(sha);
    if (it == sha_paths_.end()) {
      return absl::NotFoundError("no committed file holds it");
    }
    path = it->second;
  }
  return writer_.OpenFileForRead(path);
}

void ReplicaStore::PublishCommitted() {
  auto m = std::make_shared<const Manifest>(committed_manifest_);
  absl::MutexLock l(&sha_mu_);
  sha_source_ = std::move(m);
  sha_paths_.clear();
  sha_paths_built_ = false;
}

absl::Status ReplicaStore::PreserveAndApply(uint64_t n, const Manifest& next) {
  RETURN_IF_ERROR(history_->Preserve(committed_manifest_, next,
                                     [this](const std::string& path) {
                                       return writer_.OpenFileForRead(path);
                                     }));
  return Apply(n, next);
}

std::string ReplicaStore::StagingDir(uint64_t n) const {
  return absl::StrCat(Dir(), "/staging/", n);
}

std::string ReplicaStore::ObjectPath(uint64_t n, absl::string_view sha) const {
  return absl::StrCat(StagingDir(n), "/objects/", HexOf(sha));
}

std::string ReplicaStore::PoolPath(absl::string_view sha) const {
  return absl::StrCat(Dir(), "/prestage/", HexOf(sha));
}

void ReplicaStore::TrimPool() {
  ++generation_;
  for (auto it = pool_.begin(); it != pool_.end();) {
    // Used by this commit (its inode is now in the tree: keeping the pool's
    // link would alias it), or unused by two commits: gone.
    if (staged_objects_.count(it->first) == 0 &&
        it->second.generation + 2 > generation_) {
      ++it;
      continue;
    }
    env_->UnlinkAt(AT_FDCWD, PoolPath(it->first).c_str(), 0);
    pool_bytes_ -= it->second.size;
    it = pool_.erase(it);
  }
}

absl::StatusOr<std::unique_ptr<ReplicaStore>> ReplicaStore::Open(
    const gwmirror::v1::NodeConfig& config, Env* env, bool keeper) {
  std::string host_root = config.host_root().empty() ? "/" : config.host_root();
  ASSIGN_OR_RETURN(TreeWriter writer,
                   TreeWriter::Open(host_root, RootPaths(config.roots()), env));
  std::unique_ptr<ReplicaStore> store(
      new ReplicaStore(config, std::move(writer), env));
  RETURN_IF_ERROR(MakeDirs(store->Dir(), 0700, env));
  if (env->FchmodAt(AT_FDCWD, config.state_dir().c_str(), 0700, 0) != 0) {
    return ErrnoStatus(errno, absl::StrCat("chmod ", config.state_dir()));
  }
  ASSIGN_OR_RETURN(store->epoch_,
                   EpochFile::Open(store->Dir() + "/epoch", "this replica",
                                   NodeEpochAuthority(config), env));
  // The pre-stage pool is a cache: a start empties it under a new id, and
  // sources that still think it holds their files get "resend whole".
  RETURN_IF_ERROR(RemoveTree(store->Dir() + "/prestage", env));
  RETURN_IF_ERROR(MakeDirs(store->Dir() + "/prestage", 0700, env));
  if (getrandom(&store->pool_id_, sizeof store->pool_id_, 0) !=
      sizeof store->pool_id_) {
    return ErrnoStatus(errno, "getrandom");
  }
  absl::MutexLock l(&store->mu_);
  std::string committed_path = store->Dir() + "/committed";
  auto committed = ReadManifestFile(committed_path, env);
  if (committed.ok()) {
    store->committed_ = committed->checkpoint;
    store->committed_manifest_ = std::move(committed->manifest);
  } else if (absl::IsNotFound(committed.status())) {
    // First start: adopt what is already there as checkpoint 0.
    ASSIGN_OR_RETURN(ScanResult scan,
                     ScanMirrorSet(host_root, config.roots(), nullptr, 0, env));
    RETURN_IF_ERROR(WriteManifestFile(committed_path, 0, scan.manifest,
                                      Durability::kSynced, env));
    store->committed_manifest_ = std::move(scan.manifest);
  } else {
    return committed.status();
  }
  store->committed_digest_ =
      DigestBytes(store->committed_manifest_.ComputeDigest());
  ReplicaStore* raw = store.get();
  ASSIGN_OR_RETURN(
      store->history_,
      History::Open(
          store->Dir() + "/history", config.replica().retention(),
          [raw](const std::string& sha) { return raw->OpenBySha(sha); }, env));
  RETURN_IF_ERROR(store->Recover());
  store->PublishCommitted();
  if (!store->history_->Has(store->committed_)) {
    RETURN_IF_ERROR(store->history_->Record(store->committed_,
                                            store->committed_manifest_, nullptr,
                                            nullptr, absl::Now()));
  }
  if (keeper) store->keeper_ = std::thread([raw] { raw->KeeperLoop(); });
  return store;
}

absl::Status ReplicaStore::Recover() {
  std::string intent_path = Dir() + "/applying";
  auto intent = ReadFileToString(intent_path, env_);
  if (intent.ok()) {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(*intent), &n)) {
      return absl::DataLossError(
          absl::StrCat(intent_path, ": unreadable redo intent"));
    }
    if (n != committed_) {
      Logf(LogLevel::kInfo, "replica",
           "checkpoint=%d finishing an interrupted commit", n);
      ASSIGN_OR_RETURN(ManifestFile next,
                       ReadManifestFile(StagingDir(n) + "/manifest", env_));
      RETURN_IF_ERROR(PreserveAndApply(n, next.manifest));
      RETURN_IF_ERROR(FinishCommit(n, next.manifest,
                                   DigestBytes(next.manifest.ComputeDigest())));
    }
    env_->UnlinkAt(AT_FDCWD, intent_path.c_str(), 0);
  } else if (!absl::IsNotFound(intent.status())) {
    return intent.status();
  }
  // A completely staged checkpoint survives a restart: the coordinator may
  // have recorded it consistent already and will ask for its commit. Its
  // manifest file is written only after every object was synced. Anything
  // else in staging is a push cut short, and goes.
  ASSIGN_OR_RETURN(std::vector<std::string> staged,
                   ListDir(Dir() + "/staging", env_));
  for (const std::string& name : staged) {
    uint64_t n = 0;
    if (!absl::SimpleAtoi(name, &n) || n <= committed_ || staging_ != 0)
      continue;
    auto mf = ReadManifestFile(StagingDir(n) + "/manifest", env_);
    if (!mf.ok() || mf->checkpoint != n) continue;
    ASSIGN_OR_RETURN(std::vector<std::string> objects,
                     ListDir(StagingDir(n) + "/objects", env_));
    for (const std::string& o : objects) {
      if (o.size() == 64 &&
          o.find_first_not_of("0123456789abcdef") == std::string::npos) {
        staged_objects_.insert(absl::HexStringToBytes(o));
      } else {
        RETURN_IF_ERROR(RemoveTree(StagingDir(n) + "/objects/" + o, env_));
      }
    }
    staging_ = n;
    staged_digest_ = DigestBytes(mf->manifest.ComputeDigest());
    staged_manifest_ = std::move(mf->manifest);
    Logf(LogLevel::kInfo, "replica", "checkpoint=%d kept staged across restart",
         n);
  }
  if (staging_ == 0) return RemoveTree(Dir() + "/staging", env_);
  for (const std::string& name : staged) {
    if (name != absl::StrCat(staging_)) {
      RETURN_IF_ERROR(RemoveTree(Dir() + "/staging/" + name, env_));
    }
  }
  return absl::OkStatus();
}

void ReplicaStore::DiscardStaging() {
  if (staging_ != 0) {
    absl::Status st = RemoveTree(StagingDir(staging_), env_);
    if (!st.ok()) {
      Logf(LogLevel::kWarning, "replica", "discard staging: %s", st.ToString());
    }
  }
  staging_ = 0;
  staged_objects_.clear();
  resend_whole_.clear();
  staged_manifest_.reset();
  staged_digest_.clear();
}

gwmirror::v1::ReplicaState ReplicaStore::State() const {
  absl::MutexLock l(&mu_);
  gwmirror::v1::ReplicaState s;
  s.set_committed_checkpoint(committed_);
  s.set_manifest_digest(committed_digest_);
  s.set_epoch(epoch_->Get());
  s.set_site(site_);
  s.set_prestage_pool(pool_id_);
  s.set_drifted_entries(drifted_entries_);
  s.set_scrub_problems(scrub_problems_);
  s.set_stale(stale_);
  if (staged_manifest_) {
    s.set_staged_checkpoint(staging_);
    s.set_staged_digest(staged_digest_);
  }
  return s;
}

std::optional<Entry> ReplicaStore::CommittedEntry(
    const std::string& path) const {
  absl::MutexLock l(&mu_);
  const Entry* e = committed_manifest_.Find(path);
  if (e == nullptr) return std::nullopt;
  return *e;
}

std::pair<uint64_t, Manifest> ReplicaStore::CommittedSnapshot() const {
  absl::MutexLock l(&mu_);
  return {committed_, committed_manifest_};
}

Manifest ReplicaStore::CommittedManifest() const {
  absl::MutexLock l(&mu_);
  return committed_manifest_;
}

absl::Status ReplicaStore::CheckEpoch(const gwmirror::v1::Envelope& e) {
  return epoch_->Check(e);
}

absl::StatusOr<std::unique_ptr<PushSession>> ReplicaStore::BeginPush(
    const gwmirror::v1::PushBegin& begin) {
  absl::MutexLock l(&mu_);
  if (push_active_) {
    return absl::AbortedError("another push is in progress on this replica");
  }
  if (stale_) {
    return absl::UnavailableError(
        "this node is (or was until now) a source: it takes pushes only as a "
        "replica, once it has re-read its tree");
  }
  if (begin.prestage()) {
    if (begin.checkpoint() != 0 || begin.manifest_delta()) {
      return absl::InvalidArgumentError(
          "a pre-stage push names no checkpoint and no manifest");
    }
    if (begin.base_checkpoint() != committed_) {
      return absl::AbortedError(absl::StrCat(
          "pre-stage push was diffed against checkpoint ",
          begin.base_checkpoint(), " but this replica holds ", committed_));
    }
    push_active_ = true;
    return std::unique_ptr<PushSession>(
        new PushSession(this, 0, false, /*prestage=*/true));
  }
  if (applying_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the commit of checkpoint ", staging_,
        " was interrupted; retry Commit(", staging_, ") or restart the node"));
  }
  if (begin.checkpoint() <= committed_) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", begin.checkpoint(),
                     " is not newer than the committed ", committed_));
  }
  if (begin.base_checkpoint() != committed_) {
    return absl::AbortedError(absl::StrCat(
        "push was diffed against checkpoint ", begin.base_checkpoint(),
        " but this replica holds ", committed_, "; diff again"));
  }
  if (staging_ != begin.checkpoint()) {
    DiscardStaging();
    RETURN_IF_ERROR(RemoveTree(Dir() + "/staging", env_));
    RETURN_IF_ERROR(
        MakeDirs(StagingDir(begin.checkpoint()) + "/objects", 0700, env_));
    staging_ = begin.checkpoint();
  }
  // A new push may change the manifest; it is complete again only at End.
  staged_manifest_.reset();
  push_active_ = true;
  return std::unique_ptr<PushSession>(new PushSession(this, begin.checkpoint(),
                                                      begin.manifest_delta(),
                                                      /*prestage=*/false));
}

void ReplicaStore::EndSession() {
  absl::MutexLock l(&mu_);
  push_active_ = false;
}

absl::Status ReplicaStore::Signature(const std::string& path,
                                     absl::string_view sha256,
                                     uint32_t block_len, const ByteSink& sink) {
  if (block_len < 256 || block_len > 65536) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_len ", block_len, " outside 256..65536"));
  }
  RETURN_IF_ERROR(ValidateRelativePath(path));
  uint64_t size = 0;
  {
    absl::MutexLock l(&mu_);
    const Entry* e = committed_manifest_.Find(path);
    if (e == nullptr || e->type() != ENTRY_TYPE_FILE || e->sha256() != sha256) {
      return absl::FailedPreconditionError(
          absl::StrCat("committed checkpoint holds no file \"", path,
                       "\" with that sha256"));
    }
    size = e->size();
  }
  ASSIGN_OR_RETURN(UniqueFd fd, writer_.OpenFileForRead(path));
  SignatureBuilder sig(size, block_len);
  std::string buf(1 << 20, '\0');
  for (;;) {
    ssize_t n = env_->Read(fd.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", path));
    }
    RETURN_IF_ERROR(sig.Feed(absl::string_view(buf.data(), n), n == 0, sink));
    if (n == 0) return absl::OkStatus();
  }
}

absl::Status ReplicaStore::Apply(uint64_t n, const Manifest& next) {
  const Manifest& old = committed_manifest_;
  std::set<std::string> touched_dirs;
  // 1. Deletions, children before parents.
  for (auto it = old.entries().rbegin(); it != old.entries().rend(); ++it) {
    if (next.Find(it->path()) != nullptr) continue;
    RETURN_IF_ERROR(FaultPoint("commit:delete"));
    absl::Status st = writer_.Remove(it->path());
    // A parent that is now a file or a symlink means the path is gone.
    if (!st.ok() && !absl::IsFailedPrecondition(st)) return st;
    touched_dirs.insert(ParentOf(it->path()));
  }
  // 2. Directories, parents before children.
  for (const Entry& e : next.entries()) {
    if (e.type() != ENTRY_TYPE_DIRECTORY) continue;
    const Entry* o = old.Find(e.path());
    if (o == nullptr || o->type() != ENTRY_TYPE_DIRECTORY) {
      RETURN_IF_ERROR(FaultPoint("commit:mkdir"));
      touched_dirs.insert(ParentOf(e.path()));
    }
    RETURN_IF_ERROR(writer_.EnsureDirectory(e.path()));
  }
  // 3. Files and symlinks. The first path of an object takes it by hard link
  // (the staging copy is removed at the end, so nothing stays aliased);
  // further paths with the same content get copies.
  std::set<std::string> linked;
  std::vector<const Entry*> changed;
  for (const Entry& e : next.entries()) {
    const Entry* o = old.Find(e.path());
    if (o == nullptr || !SameEntry(*o, e)) changed.push_back(&e);
    if (e.type() == ENTRY_TYPE_FILE && NeedsContent(e, o)) {
      RETURN_IF_ERROR(FaultPoint("commit:place"));
      bool link = linked.insert(e.sha256()).second;
      RETURN_IF_ERROR(
          writer_.PlaceFile(e.path(), ObjectPath(n, e.sha256()), link));
      touched_dirs.insert(ParentOf(e.path()));
    } else if (e.type() == ENTRY_TYPE_SYMLINK &&
               (o == nullptr || !SameContent(*o, e))) {
      RETURN_IF_ERROR(FaultPoint("commit:place"));
      RETURN_IF_ERROR(writer_.PlaceSymlink(e.path(), e.link_target()));
      touched_dirs.insert(ParentOf(e.path()));
    }
  }
  // 4. Metadata: changed entries, then every directory whose listing we
  // changed (its mtime moved), deepest first.
  for (const Entry* e : changed) {
    if (e->type() == ENTRY_TYPE_DIRECTORY) continue;
    RETURN_IF_ERROR(FaultPoint("commit:meta"));
    RETURN_IF_ERROR(writer_.ApplyMetadata(*e));
  }
  for (const Entry* e : changed) {
    if (e->type() == ENTRY_TYPE_DIRECTORY) touched_dirs.insert(e->path());
  }
  for (auto it = touched_dirs.rbegin(); it != touched_dirs.rend(); ++it) {
    const Entry* d = next.Find(*it);
    if (d == nullptr) continue;  // A root, or gone.
    RETURN_IF_ERROR(FaultPoint("commit:meta"));
    RETURN_IF_ERROR(writer_.ApplyMetadata(*d));
  }
  RETURN_IF_ERROR(FaultPoint("commit:sync"));
  return writer_.SyncAll();
}

absl::Status ReplicaStore::FinishCommit(uint64_t n, const Manifest& next,
                                        std::string digest) {
  RETURN_IF_ERROR(FaultPoint("commit:record"));
  RETURN_IF_ERROR(WriteManifestFile(Dir() + "/committed", n, next,
                                    Durability::kSynced, env_));
  committed_ = n;
  Manifest prev = std::exchange(committed_manifest_, next);
  committed_digest_ = digest;
  PublishCommitted();
  // The commit stands whatever happens to its history record.
  absl::Status recorded =
      history_->Record(n, next, &prev, &pinned_, absl::Now());
  if (!recorded.ok()) {
    Logf(LogLevel::kError, "history", "checkpoint=%d not recorded: %s", n,
         recorded.ToString());
  }
  {
    absl::MutexLock kl(&keeper_mu_);
    keeper_kick_ = true;
  }
  RETURN_IF_ERROR(FaultPoint("commit:done"));
  if (env_->UnlinkAt(AT_FDCWD, (Dir() + "/applying").c_str(), 0) != 0 &&
      errno != ENOENT) {
    return ErrnoStatus(errno, "remove redo intent");
  }
  RETURN_IF_ERROR(FsyncPath(Dir(), env_));
  drifted_entries_ = 0;
  TrimPool();
  DiscardStaging();
  return RemoveTree(StagingDir(n), env_);
}

absl::Status ReplicaStore::Commit(uint64_t checkpoint, absl::string_view digest,
                                  const std::vector<uint64_t>& pinned) {
  absl::MutexLock l(&mu_);
  pinned_ = pinned;
  if (push_active_) {
    return absl::AbortedError("a push is in progress; commit after it ends");
  }
  if (checkpoint == committed_ && digest == committed_digest_) {
    return history_->SetPins(pinned);  // Retried commit: already done.
  }
  if (applying_ && staging_ == checkpoint && staged_manifest_) {
    Manifest next = *staged_manifest_;
    RETURN_IF_ERROR(PreserveAndApply(checkpoint, next));
    applying_ = false;
    return FinishCommit(checkpoint, next, staged_digest_);
  }
  if (staging_ != checkpoint || !staged_manifest_) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", checkpoint, " is not staged here (staged: ",
        staged_manifest_ ? absl::StrCat(staging_) : std::string("none"),
        ", committed: ", committed_, ")"));
  }
  const std::string& staged_digest = staged_digest_;
  if (staged_digest != digest) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", checkpoint, ": commit names manifest ",
                     HexOf(digest).substr(0, 16), "... but ",
                     HexOf(staged_digest).substr(0, 16), "... is staged"));
  }
  RETURN_IF_ERROR(FaultPoint("commit:intent"));
  RETURN_IF_ERROR(WriteFileAtomic(Dir() + "/applying",
                                  absl::StrCat(checkpoint, "\n"), 0600,
                                  Durability::kSynced, env_));
  Manifest next = *staged_manifest_;
  applying_ = true;
  absl::Status st = PreserveAndApply(checkpoint, next);
  if (!st.ok()) {
    // The intent stays: the next start finishes this commit before anything
    // else, so the tree never stays a mix of two checkpoints.
    Logf(LogLevel::kError, "replica",
         "checkpoint=%d apply failed, will be finished at restart: %s",
         checkpoint, st.ToString());
    return absl::Status(st.code(), absl::StrCat("apply checkpoint ", checkpoint,
                                                ": ", st.message()));
  }
  applying_ = false;
  return FinishCommit(checkpoint, next, staged_digest_);
}

absl::Status ReplicaStore::Abort(uint64_t checkpoint) {
  absl::MutexLock l(&mu_);
  if (push_active_) {
    return absl::AbortedError("a push is in progress; abort after it ends");
  }
  if (applying_) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", checkpoint,
                     " is half applied and cannot be aborted; "
                     "retry its commit"));
  }
  if (staging_ != checkpoint) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", checkpoint, " is not staged here"));
  }
  DiscardStaging();
  return absl::OkStatus();
}

void ReplicaStore::MarkStale() {
  absl::MutexLock l(&mu_);
  stale_ = true;
}

bool ReplicaStore::stale() const {
  absl::MutexLock l(&mu_);
  return stale_;
}

absl::Status ReplicaStore::Readopt() {
  {
    absl::MutexLock l(&mu_);
    if (!stale_) return absl::OkStatus();
    // A staging no push completed cannot be continued (pushes are refused
    // until this re-read) nor committed: it goes. A complete one waits for
    // the coordinator, which commits or aborts it (heartbeats tell it).
    if (!push_active_ && !applying_ && staging_ != 0 && !staged_manifest_) {
      DiscardStaging();
    }
  }
  // Pushes are refused meanwhile, so CheckDrift cannot stand aside.
  ASSIGN_OR_RETURN(int64_t drifted, CheckDrift(/*rehash=*/true));
  if (drifted < 0) {
    absl::MutexLock l(&mu_);
    return absl::UnavailableError(
        staged_manifest_
            ? absl::StrCat("checkpoint ", staging_,
                           " is staged here and waits for the coordinator to "
                           "commit or abort it; re-read after that")
            : std::string("a push or commit is under way; re-read later"));
  }
  absl::MutexLock l(&mu_);
  stale_ = false;
  // What differs is the old source's own history, not drift to report.
  drifted_entries_ = 0;
  Logf(LogLevel::kInfo, "replica",
       "re-read the tree as a replica: %d entries differ from checkpoint %d "
       "and will come from the new source",
       drifted, committed_);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ReplicaStore::CheckDrift(
    bool rehash, bool record, std::vector<std::string>* paths) {
  uint64_t n = 0;
  Manifest committed;
  std::string digest;
  {
    absl::MutexLock l(&mu_);
    if (push_active_ || applying_ || staging_ != 0) return -1;
    n = committed_;
    committed = committed_manifest_;
    digest = committed_digest_;
  }
  const std::string index_path = Dir() + "/drift.index";
  HashIndex index;
  if (!rehash) {
    auto loaded = HashIndex::Load(index_path, env_);
    if (loaded.ok()) index = *std::move(loaded);
  }
  ASSIGN_OR_RETURN(ScanResult scan,
                   ScanMirrorSet(host_root_, root_configs_, &index, 0, env_));
  RETURN_IF_ERROR(scan.index.Save(index_path, env_));
  std::vector<Entry> corrected;
  std::vector<std::string> drifted;
  MirrorSet mirror_set(root_configs_);
  for (const Entry& want : committed.entries()) {
    const Entry* actual = scan.manifest.Find(want.path());
    if (actual != nullptr && StillCommitted(want, *actual)) {
      corrected.push_back(want);
      continue;
    }
    drifted.push_back(want.path());
    if (actual != nullptr) {
      corrected.push_back(*actual);
    } else if (!mirror_set.Admit(want.path(), want.type()).ok()) {
      // Committed, but outside what this node's config mirrors now, so
      // the scan cannot see it: it stays tracked (dropping it would leave
      // the file behind, untracked), and the next cut, whose manifest
      // lacks it, removes it from the tree.
      corrected.push_back(want);
    }
  }
  for (const Entry& actual : scan.manifest.entries()) {
    if (committed.Find(actual.path()) != nullptr) continue;
    drifted.push_back(actual.path());
    corrected.push_back(actual);
  }
  std::sort(drifted.begin(), drifted.end());
  if (paths != nullptr) *paths = drifted;
  if (drifted.empty() || !record) {
    return static_cast<int64_t>(drifted.size());
  }
  ASSIGN_OR_RETURN(Manifest m, Manifest::FromEntries(std::move(corrected)));
  absl::MutexLock l(&mu_);
  // A push or commit that began meanwhile owns the tree: look again later.
  if (committed_ != n || committed_digest_ != digest || push_active_ ||
      applying_ || staging_ != 0) {
    return -1;
  }
  RETURN_IF_ERROR(
      WriteManifestFile(Dir() + "/committed", n, m, Durability::kSynced, env_));
  committed_digest_ = DigestBytes(m.ComputeDigest());
  committed_manifest_ = std::move(m);
  PublishCommitted();
  drifted_entries_ += drifted.size();
  std::string sample;
  for (size_t i = 0; i < drifted.size() && i < 3; ++i) {
    absl::StrAppend(&sample, i ? ", " : "", drifted[i]);
  }
  Logf(LogLevel::kWarning, "replica",
       "checkpoint=%d drift: %d standby entries differ from the committed "
       "checkpoint (%s%s); the next cut repairs them",
       n, drifted.size(), sample, drifted.size() > 3 ? ", ..." : "");
  return static_cast<int64_t>(drifted.size());
}

absl::Status ReplicaStore::Rollback(uint64_t n) {
  ASSIGN_OR_RETURN(Manifest target, history_->LoadManifest(n));
  std::string digest = DigestBytes(target.ComputeDigest());
  // Stage what the tree lacks, reading outside the lock (reads go through
  // OpenBySha, which takes it).
  auto [base, current] = CommittedSnapshot();
  {
    absl::MutexLock l(&mu_);
    if (push_active_ || applying_) {
      return absl::AbortedError(
          "a push or commit is under way; roll back after it");
    }
    DiscardStaging();
  }
  RETURN_IF_ERROR(RemoveTree(StagingDir(n), env_));
  RETURN_IF_ERROR(MakeDirs(StagingDir(n) + "/objects", 0700, env_));
  std::set<std::string> staged;
  for (const Entry& e : target.entries()) {
    if (!NeedsContent(e, current.Find(e.path())) ||
        !staged.insert(e.sha256()).second) {
      continue;
    }
    const std::string path = ObjectPath(n, e.sha256());
    UniqueFd fd(
        env_->Open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
    if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", path));
    absl::Status st = history_->ReadTo(e.sha256(), fd.get());
    if (!st.ok()) {
      return absl::Status(
          st.code(),
          absl::StrCat("checkpoint ", n, ", ", e.path(), ": ", st.message()));
    }
    if (env_->Fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync " + path);
  }
  RETURN_IF_ERROR(WriteManifestFile(StagingDir(n) + "/manifest", n, target,
                                    Durability::kSynced, env_));
  absl::MutexLock l(&mu_);
  if (committed_ != base || push_active_ || applying_) {
    return absl::AbortedError(
        "a commit came in during the roll back; run it again");
  }
  staging_ = n;
  staged_objects_ = std::move(staged);
  staged_manifest_ = target;
  staged_digest_ = digest;
  RETURN_IF_ERROR(WriteFileAtomic(Dir() + "/applying", absl::StrCat(n, "\n"),
                                  0600, Durability::kSynced, env_));
  applying_ = true;
  RETURN_IF_ERROR(PreserveAndApply(n, target));
  applying_ = false;
  Logf(LogLevel::kWarning, "replica", "checkpoint=%d rolled back to (from %d)",
       n, base);
  return FinishCommit(n, target, digest);
}

absl::StatusOr<gwmirror::v1::VerifyResult> ReplicaStore::Verify(bool repair) {
  gwmirror::v1::VerifyResult r;
  std::vector<std::string> paths;
  ASSIGN_OR_RETURN(int64_t differ, CheckDrift(/*rehash=*/true, repair, &paths));
  if (differ < 0) {
    return absl::UnavailableError(
        "a push or commit is under way; verify again in a moment");
  }
  auto [n, m] = CommittedSnapshot();
  r.set_committed_checkpoint(n);
  for (const Entry& e : m.entries()) {
    r.set_files_checked(r.files_checked() + (e.type() == ENTRY_TYPE_FILE));
  }
  r.set_tree_differences(differ);
  for (const std::string& p : paths) {
    r.add_problems(
        absl::StrCat("standby file ", p, " differs from checkpoint ", n));
    if (repair) {
      r.add_repaired(absl::StrCat(p,
                                  ": recorded; the next cut brings it "
                                  "from the source"));
    }
  }
  std::vector<std::string> problems, repaired, unrepairable;
  uint64_t versions = 0;
  RETURN_IF_ERROR(
      history_->Verify(repair, &problems, &repaired, &versions, &unrepairable));
  r.set_versions_checked(versions);
  for (std::string& p : problems) r.add_problems(std::move(p));
  for (std::string& p : unrepairable) r.add_unrepairable(std::move(p));
  for (std::string& p : repaired) r.add_repaired(std::move(p));
  return r;
}

}  // namespace gwmirror
