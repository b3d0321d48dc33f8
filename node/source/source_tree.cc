#include "node/source/source_tree.h"

#include <algorithm>
#include <cassert>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/log.h"
#include "common/path.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

constexpr absl::Duration kIndexSaveEvery = absl::Minutes(1);
// Hashing this much again costs about what saving the index does; opening
// and reading a file costs about as much as hashing 16 KiB.
constexpr uint64_t kIndexSaveAfterBytes = 4 << 20;
constexpr uint64_t kIndexFileCostBytes = 16 << 10;
// What a scan keeps of the small files it read, for the push
// (ScanResult::held).
constexpr uint64_t kHoldBudget = 16 << 20;
// Files from this size on are hashed as they are sent, by default.
constexpr uint64_t kDefaultPendingFrom = 8 << 20;

absl::Duration Backoff(int attempt) {
  return absl::Milliseconds(std::min(25 * attempt, 250));
}

}  // namespace

SourceTree::SourceTree(gwmirror::v1::NodeConfig config, ChangeWatcher* watcher,
                       std::set<std::string> always, Env* env)
    : config_(std::move(config)),
      watcher_(watcher),
      always_(std::move(always)),
      host_root_(config_.host_root().empty() ? "/" : config_.host_root()),
      index_path_(config_.state_dir() + "/source/index"),
      pending_from_(config_.source().digest_while_sending_from() != 0
                        ? config_.source().digest_while_sending_from()
                        : kDefaultPendingFrom),
      env_(env) {
  for (const auto& r : config_.roots()) filters_.emplace_back(r);
}

SourceTree::~SourceTree() {
  absl::MutexLock l(&mu_);
  if (!IndexChanged()) return;
  if (absl::Status st = index_.Save(index_path_, env_); !st.ok()) {
    Logf(LogLevel::kWarning, "source", "slot=%s saving the hash index: %s",
         config_.slot(), st.ToString());
  }
}

absl::StatusOr<ScanResult> SourceTree::StableScan(
    absl::Duration max_wait, int* attempts,
    const std::function<void()>& read_along) {
  absl::MutexLock l(&mu_);
  if (watcher_ == nullptr) {
    return StatVerifiedScan(max_wait, attempts, read_along);
  }
  absl::Time give_up = absl::Now() + max_wait;
  ScanResult out = NewScan(/*hold_bytes=*/true);
  out.record_stamps = false;  // The event queue proves it stable.
  ChangeWatcher::Dirty dirty = Take(/*with_always=*/true);
  for (int attempt = 1;; ++attempt) {
    if (attempts != nullptr) *attempts = attempt;
    if (dirty.incomplete) {
      return StatVerifiedScan(give_up - absl::Now(), attempts, read_along);
    }
    // Every change completed before this instant is in `dirty` or in the
    // next Take.
    int64_t start = FileClockNs();
    RETURN_IF_ERROR(Apply(dirty, &out));
    if (read_along) read_along();
    ChangeWatcher::Dirty next = Take(/*with_always=*/false);
    if (next.empty()) {
      out.started_ns = start;
      return Finish(std::move(out), /*stable=*/true);
    }
    if (absl::Now() >= give_up) {
      std::string last = next.paths.empty()
                             ? std::string("the watcher asked for a whole walk")
                             : absl::StrCat(next.paths.begin()->first,
                                            " changed during the scan");
      return absl::AbortedError(absl::StrCat(
          "the source tree kept changing for ", absl::FormatDuration(max_wait),
          " (", attempt, " scans; last: ", last, ")"));
    }
    // Only a whole walk is worth a pause: a few re-read paths cost less
    // than waiting, and under churn a short window is what settles.
    if (next.all) absl::SleepFor(Backoff(attempt));
    dirty = std::move(next);
  }
}

absl::StatusOr<ScanResult> SourceTree::Refresh() {
  absl::MutexLock l(&mu_);
  if (watcher_ == nullptr) {
    ScanResult out;
    RETURN_IF_ERROR(WalkAll(&out));
    return Finish(std::move(out), /*stable=*/false);
  }
  ScanResult out = NewScan(/*hold_bytes=*/true);
  out.record_stamps = false;  // Not verified at all.
  ChangeWatcher::Dirty dirty = Take(/*with_always=*/false);
  out.started_ns = FileClockNs();
  RETURN_IF_ERROR(Apply(dirty, &out));
  return Finish(std::move(out), /*stable=*/false);
}

ScanResult SourceTree::NewScan(bool hold_bytes) const {
  ScanResult out;
  out.hold_budget = hold_bytes ? kHoldBudget : 0;
  out.hold_fds = kHoldFdMax;
  out.pending_from = pending_from_;
  return out;
}

void SourceTree::Learn(const std::string& path, const struct stat& st,
                       const std::string& sha) {
  absl::MutexLock l(&mu_);
  auto stamp = pending_stamps_.find(path);
  auto it = entries_.find(path);
  // Only the entry of the file hashed takes it: not one read again since,
  // nor another file put at its path.
  if (stamp == pending_stamps_.end() || stamp->second != StampOf("", st) ||
      it == entries_.end() || !it->second.sha256().empty()) {
    return;
  }
  pending_stamps_.erase(stamp);
  it->second.set_sha256(sha);
  dirty_.insert(path);
  manifest_stale_ = true;
  index_.Record(path, st, sha);
}

ChangeWatcher::Dirty SourceTree::Take(bool with_always) {
  ChangeWatcher::Dirty d = watcher_->TakeDirty();
  if (with_always) {
    for (const std::string& p : always_) d.paths.emplace(p, false);
  }
  return d;
}

absl::StatusOr<ScanResult> SourceTree::StatVerifiedScan(
    absl::Duration max_wait, int* attempts,
    const std::function<void()>& read_along) {
  absl::Time give_up = absl::Now() + max_wait;
  for (int attempt = 1;; ++attempt) {
    if (attempts != nullptr) *attempts = attempt;
    // What the watcher says is read by the walk anyway.
    if (watcher_ != nullptr) watcher_->TakeDirty();
    int64_t start = FileClockNs();
    ScanResult out = NewScan(/*hold_bytes=*/false);
    RETURN_IF_ERROR(WalkAll(&out));
    if (read_along) read_along();
    absl::Status stable = VerifyScanStable(host_root_, out.stamps, start);
    if (stable.ok()) {
      out.started_ns = start;
      return Finish(std::move(out), /*stable=*/true);
    }
    if (absl::Now() >= give_up) {
      return absl::AbortedError(absl::StrCat(
          "the source tree kept changing for ", absl::FormatDuration(max_wait),
          " (", attempt, " scans; last: ", stable.message(), ")"));
    }
    absl::SleepFor(Backoff(attempt));
  }
}

absl::Status SourceTree::Apply(const ChangeWatcher::Dirty& dirty,
                               ScanResult* out) {
  if (dirty.all || !walked_) return WalkAll(out);
  index_.SetNow(FileClockNs());
  // Sorted: a directory comes before what is below it, and what is below a
  // directory read whole is read with it.
  std::string whole;
  for (const auto& [path, subtree] : dirty.paths) {
    if (!whole.empty() && PathIsWithin(path, whole)) continue;
    if (subtree) whole = path;
    if (absl::Status st = ApplyPath(path, subtree, out); !st.ok()) {
      // The paths taken are lost: only a whole walk can catch up.
      walked_ = false;
      return st;
    }
  }
  return absl::OkStatus();
}

absl::Status SourceTree::WalkAll(ScanResult* out) {
  if (!index_loaded_) {
    index_loaded_ = true;
    auto loaded = HashIndex::Load(index_path_, env_);
    if (loaded.ok()) {
      index_ = *std::move(loaded);
    } else {
      Logf(LogLevel::kWarning, "source", "slot=%s ignoring the hash index: %s",
           config_.slot(), loaded.status().ToString());
    }
  }
  index_.SetNow(FileClockNs());
  ASSIGN_OR_RETURN(ScanResult scan,
                   ScanMirrorSet(host_root_, config_.roots(), &index_,
                                 out->hold_fds, env_, out->pending_from));
  entries_.clear();
  for (const Entry& e : scan.manifest.entries()) {
    entries_.emplace_hint(entries_.end(), e.path(), e);
  }
  manifest_ = scan.manifest;
  dirty_.clear();
  // The walk's index holds exactly the files it saw.
  index_ = std::move(scan.index);
  index_replaced_ = true;
  index_saved_bytes_ = 0;
  walked_ = true;
  manifest_stale_ = false;
  invalid_read_ = false;
  out->warnings.insert(out->warnings.end(), scan.warnings.begin(),
                       scan.warnings.end());
  out->bytes_hashed += scan.bytes_hashed;
  out->index_hits += scan.index_hits;
  out->objects_read += scan.objects_read;
  if (out->record_stamps) out->stamps = std::move(scan.stamps);
  out->held.merge(scan.held);
  // A whole walk re-decides every file: what an earlier attempt of the
  // same scan left pending is stale.
  out->pending = std::move(scan.pending);
  out->hold_fds = scan.hold_fds;
  return absl::OkStatus();
}

absl::Status SourceTree::ApplyPath(const std::string& path, bool subtree,
                                   ScanResult* out) {
  int root = -1;
  for (int i = 0; i < config_.roots_size(); ++i) {
    if (PathIsWithin(path, config_.roots(i).path())) root = i;
  }
  if (root < 0) return absl::OkStatus();  // Not in the mirror set.
  const bool is_root = path == config_.roots(root).path();
  // A root has no entry: only its disappearance or a new one matters.
  if (is_root && !subtree) return absl::OkStatus();
  auto it = entries_.find(path);
  const bool was_dir = it != entries_.end() &&
                       it->second.type() == gwmirror::v1::ENTRY_TYPE_DIRECTORY;
  // A directory that stays one keeps what is below it (each change there
  // has its own event); a new one is read whole.
  const bool recurse = subtree || !was_dir;
  manifest_stale_ = true;
  // What is re-read is recorded again; what is gone must not stay.
  if (recurse) ForgetIndex(path);
  std::vector<Entry> found;
  absl::Status st = ScanObject(host_root_, config_.roots(root), filters_[root],
                               path, recurse, &index_, out, &found, env_);
  out->objects_read += found.size();
  if (absl::IsNotFound(st)) {
    ForgetIndex(path);
    Erase(path);
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(st);
  for (const Entry& e : found) {
    if (!ValidateEntry(e, Digests::kMayBePending).ok()) invalid_read_ = true;
  }
  if (!recurse && !found.empty() &&
      found.front().type() == gwmirror::v1::ENTRY_TYPE_DIRECTORY) {
    it->second = std::move(found.front());
    dirty_.insert(path);
    return absl::OkStatus();
  }
  Erase(path);
  auto hint = entries_.lower_bound(path);
  for (Entry& e : found) {
    dirty_.insert(e.path());
    std::string key = e.path();
    hint = std::next(entries_.emplace_hint(hint, std::move(key), std::move(e)));
  }
  return absl::OkStatus();
}

// A root has no entry of its own; what is below `path` sorts between
// "path/" and "path0" ('0' follows '/').
void SourceTree::Erase(const std::string& path) {
  if (entries_.erase(path) > 0) dirty_.insert(path);
  auto from = entries_.lower_bound(path + "/");
  auto to = entries_.lower_bound(path + "0");
  for (auto it = from; it != to; ++it) dirty_.insert(it->first);
  entries_.erase(from, to);
}

void SourceTree::ForgetIndex(const std::string& path) {
  index_.Erase(path);
  for (auto it = entries_.lower_bound(path + "/");
       it != entries_.lower_bound(path + "0"); ++it) {
    index_.Erase(it->first);
  }
}

bool SourceTree::IndexChanged() const {
  return index_replaced_ || index_.changes() != index_saved_changes_;
}

absl::StatusOr<ScanResult> SourceTree::Finish(ScanResult out, bool stable) {
  if (manifest_stale_) {
    if (invalid_read_) {
      // Checked whole, to fail naming the bad entry as a walk would.
      std::vector<Entry> entries;
      entries.reserve(entries_.size());
      for (const auto& [path, e] : entries_) entries.push_back(e);
      ASSIGN_OR_RETURN(
          manifest_,
          Manifest::FromEntries(std::move(entries), Digests::kMayBePending));
      invalid_read_ = false;
    } else {
      // The last manifest edited by the paths read since: every entry was
      // checked as it was read.
      std::vector<Entry> set;
      std::vector<std::string> removed;
      for (const std::string& p : dirty_) {
        auto it = entries_.find(p);
        if (it != entries_.end()) {
          set.push_back(it->second);
        } else if (manifest_.Find(p) != nullptr) {
          removed.push_back(p);
        }
      }
      manifest_ = Manifest::Edit(manifest_, std::move(set), removed);
    }
    dirty_.clear();
    manifest_stale_ = false;
#ifndef NDEBUG
    assert(manifest_.size() == entries_.size());
    auto it = entries_.begin();
    for (const Entry& e : manifest_.entries()) {
      assert(e.path() == it->first && SameEntry(e, it->second));
      ++it;
    }
#endif
  }
  // The pending entries' stamps: those this scan read, and for the others
  // the stamps of their last read (their descriptors are not kept).
  for (const auto& [path, held] : out.pending) {
    if (held.settled) pending_stamps_.insert_or_assign(path, *held.settled);
  }
  for (auto it = pending_stamps_.begin(); it != pending_stamps_.end();) {
    auto e = entries_.find(it->first);
    if (e == entries_.end() || !e->second.sha256().empty()) {
      pending_stamps_.erase(it++);
      continue;
    }
    out.pending.try_emplace(it->first, HeldContent{{}, nullptr, it->second});
    ++it;
  }
  out.manifest = manifest_;
  // The index is a cache that every read checks against stat data, so a
  // lost save costs hashing again, never a wrong answer. A stable scan
  // saves what it learnt when losing it would cost more hashing than the
  // save costs (a whole walk, a one-shot scan, megabytes or hundreds of
  // files); a
  // watching node's small changes are saved once a minute and when it
  // stops: writing 19,000 entries at every one-file cut was a fifth of the
  // cut's CPU.
  const uint64_t unsaved =
      index_.recorded_bytes() - index_saved_bytes_ +
      (index_.changes() - index_saved_changes_) * kIndexFileCostBytes;
  if (IndexChanged() && ((stable && (index_replaced_ || watcher_ == nullptr ||
                                     unsaved >= kIndexSaveAfterBytes)) ||
                         absl::Now() >= index_saved_ + kIndexSaveEvery)) {
    RETURN_IF_ERROR(MakeDirs(config_.state_dir() + "/source", 0700));
    RETURN_IF_ERROR(index_.Save(index_path_, env_));
    index_replaced_ = false;
    index_saved_changes_ = index_.changes();
    index_saved_bytes_ = index_.recorded_bytes();
    index_saved_ = absl::Now();
  }
  return out;
}

}  // namespace gwmirror
