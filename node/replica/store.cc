#include "node/replica/store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/direct_io.h"
#include "common/entropy.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/manifest_edit.h"
#include "common/path.h"
#include "common/status_macros.h"
#include "common/thread_name.h"
#include "node/hash_index.h"
#include "node/scanner.h"

namespace gwmirror {
namespace {

using gwmirror::v1::ENTRY_TYPE_DIRECTORY;
using gwmirror::v1::ENTRY_TYPE_FILE;
using gwmirror::v1::ENTRY_TYPE_SYMLINK;

constexpr uint64_t kDefaultPoolCap = 2ull << 30;
constexpr uint64_t kDefaultMaxManifestBytes = 512ull << 20;
// How long Verify waits for a commit (or push) in flight to end.
constexpr absl::Duration kVerifyWait = absl::Seconds(20);

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

}  // namespace

ReplicaStore::ReplicaStore(const gwmirror::v1::NodeConfig& config,
                           TreeWriter writer, Env* env)
    : env_(env),
      state_dir_(config.state_dir()),
      site_(config.site()),
      roots_(RootPaths(config.roots())),
      host_root_(config.host_root().empty() ? "/" : config.host_root()),
      root_configs_(config.roots()),
      max_manifest_bytes_(config.replica().max_push_manifest_bytes()
                              ? config.replica().max_push_manifest_bytes()
                              : kDefaultMaxManifestBytes),
      direct_min_bytes_(config.replica().direct_io_min_bytes()
                            ? config.replica().direct_io_min_bytes()
                            : PushSession::kDefaultDirectMinBytes),
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
  Staging::Limits limits;
  limits.pool_cap = config.replica().prestage_max_bytes()
                        ? config.replica().prestage_max_bytes()
                        : kDefaultPoolCap;
  limits.min_free_bytes = config.replica().min_free_bytes();
  ASSIGN_OR_RETURN(store->staging_, Staging::Open(store->Dir(), limits, env));
  absl::MutexLock l(&store->mu_);
  ManifestFile committed;
  auto log = CommittedLog::Open(store->Dir(), env, &committed);
  if (log.ok()) {
    store->log_ = *std::move(log);
    store->committed_ = committed.checkpoint;
    store->committed_manifest_ = std::move(committed.manifest);
  } else if (absl::IsNotFound(log.status())) {
    // First start: adopt what is already there as checkpoint 0.
    ASSIGN_OR_RETURN(ScanResult scan,
                     ScanMirrorSet(host_root, config.roots(), nullptr, 0, env));
    ASSIGN_OR_RETURN(store->log_,
                     CommittedLog::Create(store->Dir(), env, 0, scan.manifest));
    store->committed_manifest_ = std::move(scan.manifest);
  } else {
    return log.status();
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
  if (keeper) {
    store->keeper_ = std::thread([raw] {
      NameThisThread("gwm-keeper");
      raw->KeeperLoop();
    });
  }
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
      ASSIGN_OR_RETURN(Manifest next,
                       staging_->ReadStaged(n, committed_manifest_));
      RETURN_IF_ERROR(PreserveAndApply(n, next));
      RETURN_IF_ERROR(FinishCommit(n, next, DigestBytes(next.ComputeDigest())));
    }
    env_->UnlinkAt(AT_FDCWD, intent_path.c_str(), 0);
  } else if (!absl::IsNotFound(intent.status())) {
    return intent.status();
  }
  // A completely staged checkpoint survives a restart: the coordinator may
  // have recorded it consistent already and will ask for its commit.
  return staging_->Recover(committed_, committed_manifest_);
}

gwmirror::v1::ReplicaState ReplicaStore::State() const {
  absl::MutexLock l(&mu_);
  gwmirror::v1::ReplicaState s;
  s.set_committed_checkpoint(committed_);
  s.set_manifest_digest(committed_digest_);
  s.set_epoch(epoch_->Get());
  s.set_site(site_);
  s.set_prestage_pool(staging_->pool_id());
  s.set_prestage_generation(staging_->generation());
  s.set_accepts_copy(true);
  s.set_accepts_digest_at_end(true);
  s.set_drifted_entries(drifted_entries_);
  s.set_scrub_problems(scrub_problems_);
  s.set_stale(stale_);
  if (auto staged = staging_->complete()) {
    s.set_staged_checkpoint(staged->checkpoint);
    s.set_staged_digest(staged->digest);
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
    return NewSession(0, /*prestage=*/true, false);
  }
  if (applying_) {
    const uint64_t n = staging_->checkpoint();
    return absl::FailedPreconditionError(absl::StrCat(
        "the commit of checkpoint ", n, " was interrupted; retry Commit(", n,
        ") or restart the node"));
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
  RETURN_IF_ERROR(staging_->Begin(begin.checkpoint()));
  push_active_ = true;
  return NewSession(begin.checkpoint(), /*prestage=*/false,
                    begin.manifest_delta());
}

std::unique_ptr<PushSession> ReplicaStore::NewSession(uint64_t checkpoint,
                                                      bool prestage,
                                                      bool manifest_delta) {
  PushSession::Params p;
  p.checkpoint = checkpoint;
  p.prestage = prestage;
  p.manifest_delta = manifest_delta;
  {
    // No commit runs while the session does: what was last published stays
    // the committed manifest throughout.
    absl::MutexLock l(&sha_mu_);
    p.committed = sha_source_;
  }
  p.roots = root_configs_;
  p.max_manifest_bytes = max_manifest_bytes_;
  p.direct_min_bytes = direct_min_bytes_;
  return std::make_unique<PushSession>(staging_.get(), &writer_, env_,
                                       std::move(p), [this] { EndSession(); });
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
  SignatureBuilder sig(size, block_len, SignatureKind::kSeededXxh3);
  // A large file past the page cache, as it was written.
  std::optional<DirectReader> direct;
  if (direct_min_bytes_ > 0 && size >= direct_min_bytes_) {
    direct.emplace(env_, fd.get());
  }
  std::string buf;
  for (uint64_t at = 0;;) {
    absl::string_view piece;
    if (direct) {
      absl::StatusOr<absl::string_view> got = direct->ReadAt(at, kDirectPiece);
      if (!got.ok()) {
        return absl::Status(got.status().code(),
                            absl::StrCat(path, ": ", got.status().message()));
      }
      piece = *got;
    } else {
      buf.resize(1 << 20);
      ssize_t n = env_->Read(fd.get(), buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, absl::StrCat("read ", path));
      }
      piece = absl::string_view(buf.data(), n);
    }
    at += piece.size();
    RETURN_IF_ERROR(sig.Feed(piece, piece.empty(), sink));
    if (piece.empty()) return absl::OkStatus();
  }
}

absl::StatusOr<ContentLook> ReplicaStore::SampleContent(
    const std::string& path, absl::string_view sha256) {
  RETURN_IF_ERROR(ValidateRelativePath(path));
  {
    absl::MutexLock l(&mu_);
    const Entry* e = committed_manifest_.Find(path);
    if (e == nullptr || e->type() != ENTRY_TYPE_FILE || e->sha256() != sha256) {
      return absl::NotFoundError(
          absl::StrCat("committed checkpoint holds no file \"", path,
                       "\" with that sha256"));
    }
  }
  ASSIGN_OR_RETURN(UniqueFd fd, writer_.OpenFileForRead(path));
  std::string buf(kEntropySample, '\0');
  size_t got = 0;
  while (got < buf.size()) {
    ssize_t n = env_->Read(fd.get(), buf.data() + got, buf.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", path));
    }
    if (n == 0) break;
    got += n;
  }
  buf.resize(got);
  return LookAt(buf);
}

absl::Status ReplicaStore::Apply(uint64_t n, const Manifest& next) {
  // The committed entries the next manifest drops, and each of its entries
  // with the committed one at its path (or null): one pass in path order,
  // no lookups.
  std::vector<const Entry*> gone;
  std::vector<std::pair<const Entry*, const Entry*>> now;
  now.reserve(next.size());
  ForEachPath(committed_manifest_, next, [&](const Entry* o, const Entry* e) {
    if (e == nullptr) {
      gone.push_back(o);
    } else {
      now.emplace_back(e, o);
    }
  });
  std::set<std::string> touched_dirs;
  // 1. Deletions, children before parents.
  for (auto it = gone.rbegin(); it != gone.rend(); ++it) {
    RETURN_IF_ERROR(FaultPoint("commit:delete"));
    absl::Status st = writer_.Remove((*it)->path());
    // A parent that is now a file or a symlink means the path is gone.
    if (!st.ok() && !absl::IsFailedPrecondition(st)) return st;
    touched_dirs.insert(ParentOf((*it)->path()));
  }
  // 2. Directories, parents before children.
  for (const auto& [e, o] : now) {
    if (e->type() != ENTRY_TYPE_DIRECTORY) continue;
    if (o == nullptr || o->type() != ENTRY_TYPE_DIRECTORY) {
      RETURN_IF_ERROR(FaultPoint("commit:mkdir"));
      touched_dirs.insert(ParentOf(e->path()));
    }
    RETURN_IF_ERROR(writer_.EnsureDirectory(e->path()));
  }
  // 3. Files and symlinks. The first path of an object takes it by hard link
  // (the staging copy is removed at the end, so nothing stays aliased);
  // further paths with the same content get copies.
  std::set<std::string> linked;
  std::vector<const Entry*> changed;
  for (const auto& [ep, o] : now) {
    const Entry& e = *ep;
    if (o == nullptr || !SameEntry(*o, e)) changed.push_back(&e);
    if (e.type() == ENTRY_TYPE_FILE && NeedsContent(e, o)) {
      RETURN_IF_ERROR(FaultPoint("commit:place"));
      bool link = linked.insert(e.sha256()).second;
      RETURN_IF_ERROR(writer_.PlaceFile(
          e.path(), staging_->ObjectPath(n, e.sha256()), link));
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
  // What changed, appended to the committed journal and synced.
  RETURN_IF_ERROR(
      log_->Append(DiffManifests(committed_manifest_, next, n), next));
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
  return staging_->Committed(n);
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
  const std::optional<Staging::Complete> staged = staging_->complete();
  const bool here = staged && staged->checkpoint == checkpoint;
  if (applying_ && here) {
    RETURN_IF_ERROR(PreserveAndApply(checkpoint, *staged->manifest));
    applying_ = false;
    return FinishCommit(checkpoint, *staged->manifest, staged->digest);
  }
  if (!here) {
    return absl::FailedPreconditionError(absl::StrCat(
        "checkpoint ", checkpoint, " is not staged here (staged: ",
        staged ? absl::StrCat(staged->checkpoint) : std::string("none"),
        ", committed: ", committed_, ")"));
  }
  if (staged->digest != digest) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", checkpoint, ": commit names manifest ",
                     HexOf(digest).substr(0, 16), "... but ",
                     HexOf(staged->digest).substr(0, 16), "... is staged"));
  }
  RETURN_IF_ERROR(FaultPoint("commit:intent"));
  RETURN_IF_ERROR(WriteFileAtomic(Dir() + "/applying",
                                  absl::StrCat(checkpoint, "\n"), 0600,
                                  Durability::kSynced, env_));
  const Manifest& next = *staged->manifest;
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
  return FinishCommit(checkpoint, next, staged->digest);
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
  if (staging_->checkpoint() != checkpoint) {
    return absl::FailedPreconditionError(
        absl::StrCat("checkpoint ", checkpoint, " is not staged here"));
  }
  staging_->Discard();
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
    if (!push_active_ && !applying_ && staging_->checkpoint() != 0 &&
        !staging_->complete()) {
      staging_->Discard();
    }
  }
  // Pushes are refused meanwhile, so CheckDrift cannot stand aside.
  ASSIGN_OR_RETURN(int64_t drifted, CheckDrift(/*rehash=*/true));
  if (drifted < 0) {
    const auto staged = staging_->complete();
    return absl::UnavailableError(
        staged ? absl::StrCat("checkpoint ", staged->checkpoint,
                              " is staged here and waits for the coordinator "
                              "to commit or abort it; re-read after that")
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
  // Only a commit (or roll back) moves the tree, so a report can be made
  // beside a push; recording rewrites the committed manifest a push was
  // diffed against, so it waits for none to be under way.
  const auto busy = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return applying_ ||
           (record && (push_active_ || staging_->checkpoint() != 0));
  };
  {
    absl::MutexLock l(&mu_);
    if (busy()) return -1;
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
  // A commit (or, when recording, a push) that began meanwhile owns the
  // tree: what the scan saw may be half of it. Look again later.
  const auto moved = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return committed_ != n || committed_digest_ != digest || busy();
  };
  {
    absl::MutexLock l(&mu_);
    if (moved()) return -1;
  }
  if (paths != nullptr) *paths = drifted;
  if (drifted.empty() || !record) {
    return static_cast<int64_t>(drifted.size());
  }
  ASSIGN_OR_RETURN(Manifest m, Manifest::FromEntries(std::move(corrected)));
  absl::MutexLock l(&mu_);
  if (moved()) return -1;
  RETURN_IF_ERROR(log_->Snapshot(n, m));
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
  // Stage what the tree lacks, reading outside the lock (History reads go
  // through OpenBySha). The roll back holds the push slot meanwhile: no
  // push can replace its staging, and no commit or drift record can move
  // the committed tree under it.
  auto [base, current] = CommittedSnapshot();
  {
    absl::MutexLock l(&mu_);
    if (push_active_ || applying_) {
      return absl::AbortedError(
          "a push or commit is under way; roll back after it");
    }
    push_active_ = true;
  }
  auto release = absl::MakeCleanup([this] { EndSession(); });
  RETURN_IF_ERROR(staging_->Begin(n));
  std::set<std::string> staged;
  for (const Entry& e : target.entries()) {
    if (!NeedsContent(e, current.Find(e.path())) ||
        !staged.insert(e.sha256()).second) {
      continue;
    }
    const std::string path = staging_->ObjectPath(n, e.sha256());
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
  RETURN_IF_ERROR(
      staging_->Adopt(n, std::move(staged), target, digest, current));
  absl::MutexLock l(&mu_);
  if (committed_ != base || applying_) {
    return absl::AbortedError(
        "a commit came in during the roll back; run it again");
  }
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
  // A commit or push in flight ends within seconds: wait it out rather
  // than send the operator away, bounded.
  int64_t differ = -1;
  for (const absl::Time until = absl::Now() + kVerifyWait;;) {
    ASSIGN_OR_RETURN(differ, CheckDrift(/*rehash=*/true, repair, &paths));
    if (differ >= 0 || absl::Now() >= until) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (differ < 0) {
    return absl::UnavailableError(absl::StrCat(
        repair ? "pushes or commits" : "commits", " kept the tree busy for ",
        absl::FormatDuration(kVerifyWait), "; verify again in a moment"));
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
