#include "node/source/prestager.h"

#include "common/log.h"
#include "common/thread_name.h"
#include "common/tls.h"

namespace gwmirror {
namespace {
constexpr absl::Duration kDefaultSettle = absl::Milliseconds(200);
constexpr absl::Duration kRetryAfterFailure = absl::Seconds(2);
// Unsettled for this long, the tree is churning (Churning()).
constexpr absl::Duration kChurn = absl::Seconds(1);
}  // namespace

Prestager::Prestager(gwmirror::v1::NodeConfig config, SourceTree* tree,
                     ChangeWatcher* watcher, EpochFile* epoch,
                     SendBudget* budget, std::function<void()> on_staged)
    : config_(std::move(config)),
      tree_(tree),
      watcher_(watcher),
      epoch_(epoch),
      budget_(budget),
      on_staged_(std::move(on_staged)),
      settle_(config_.source().prestage_settle_ms()
                  ? absl::Milliseconds(config_.source().prestage_settle_ms())
                  : kDefaultSettle) {}

Prestager::~Prestager() {
  {
    absl::MutexLock l(&mu_);
    stop_ = true;
  }
  cuts_waiting_++;  // Leave a round early.
  if (thread_.joinable()) thread_.join();
}

void Prestager::Start() {
  thread_ = std::thread([this] {
    NameThisThread("gwm-prestager");
    Run();
  });
}

void Prestager::SetTarget(const std::string& address,
                          const std::string& identity) {
  absl::MutexLock l(&mu_);
  if (address_ != address || identity_ != identity) poked_ = true;
  address_ = address;
  identity_ = identity;
}

void Prestager::Poke() {
  absl::MutexLock l(&mu_);
  poked_ = true;
}

Prestager::CutGuard::CutGuard(Prestager* p) : p_(p) {
  if (p_ == nullptr) return;
  p_->cuts_waiting_++;
  p_->push_mu_.Lock();
}

Prestager::CutGuard::~CutGuard() {
  if (p_ == nullptr) return;
  p_->push_mu_.Unlock();
  p_->cuts_waiting_--;
}

void Prestager::Run() {
  absl::Time retry_at = absl::InfinitePast();
  // Since when a round has been put off for a tree that did not settle.
  absl::Time unsettled_since = absl::InfinitePast();
  for (;;) {
    std::string address, identity;
    {
      absl::MutexLock l(&mu_);
      // Wake on a poke or at most every second (to see settled changes).
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return stop_ || poked_;
      };
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(1));
      if (stop_) return;
      poked_ = false;
      address = address_;
      identity = identity_;
    }
    ChangeWatcher::Pending p = watcher_->Snapshot();
    if (p.unstaged_since == absl::InfinitePast() || address.empty()) {
      unsettled_since = absl::InfinitePast();
      churning_ = false;
      continue;
    }
    absl::Time now = absl::Now();
    // A small burst: once it is over, tell the coordinator at once that it
    // need not wait for a round (WorthWaitingFor), whatever the rounds do.
    // (Told only after a pause that a failed round set, the coordinator
    // waited for the next heartbeat instead: up to a second a change.)
    if (Small(p) && p.last_change != small_told_) {
      if (!SmallAndOver(p, now)) {
        absl::SleepFor(p.last_change + kSmallQuiet - now);
        Poke();
        continue;
      }
      small_told_ = p.last_change;
      if (on_staged_) on_staged_();
    }
    // A file still being written is sent once the tree is quiet.
    if (now < p.last_change + settle_) {
      if (unsettled_since == absl::InfinitePast()) unsettled_since = now;
      const bool was = churning_.exchange(now - unsettled_since > kChurn);
      if (!was && churning_ && on_staged_) on_staged_();  // Tell at once.
      absl::SleepFor(p.last_change + settle_ - now);
      Poke();
      continue;
    }
    unsettled_since = absl::InfinitePast();
    churning_ = false;
    if (now < retry_at) continue;
    switch (Round(address, identity)) {
      case RoundEnd::kStaged:
        retry_at = absl::InfinitePast();
        if (on_staged_) on_staged_();
        break;
      case RoundEnd::kGaveWay:
        // Not a failure: the cut ships what the round did not; the next
        // change, or the next second, looks again.
        break;
      case RoundEnd::kFailed:
        retry_at = absl::Now() + kRetryAfterFailure;
        break;
    }
  }
}

Prestager::RoundEnd Prestager::Round(const std::string& address,
                                     const std::string& identity) {
  if (cuts_waiting_.load() > 0 || !push_mu_.TryLock()) {
    return RoundEnd::kGaveWay;
  }
  absl::Status st;
  PrestageReport r;
  auto scan = tree_->Refresh();
  absl::Time start =
      scan.ok() ? absl::FromUnixNanos(scan->started_ns) : absl::Now();
  if (!scan.ok()) {
    st = scan.status();
  } else {
    if (channel_ == nullptr || channel_address_ != address + "|" + identity) {
      auto ch = DialMutualTls(config_.tls(), address, identity);
      if (ch.ok()) {
        channel_ = *ch;
        channel_address_ = address + "|" + identity;
      }
      st = ch.status();
    }
    if (st.ok()) {
      Pusher pusher(config_, channel_);
      // A pre-stage round is bounded: a replica that stops answering is
      // given up on and the round tried again.
      pusher.SetDeadline(absl::Now() + absl::Hours(1));
      pusher.SetSendBudget(budget_);
      pusher.SetLedger(&ledger_);
      pusher.SetMemo(&memo_);
      pusher.SetHeld(&*scan);
      pusher.SetDigestSink(tree_->LearnSink());
      auto report = pusher.Prestage(scan->manifest, epoch_->Stamp(), [this] {
        return cuts_waiting_.load() > 0;
      });
      if (report.ok()) {
        r = *report;
      } else {
        st = report.status();
      }
    }
  }
  push_mu_.Unlock();
  if (!st.ok()) {
    // A busy replica or a file that changed mid-send is routine; say each
    // different problem once.
    if (st.ToString() != last_error_) {
      last_error_ = st.ToString();
      Logf(LogLevel::kInfo, "source", "slot=%s pre-stage: %s", config_.slot(),
           last_error_);
    }
    return RoundEnd::kFailed;
  }
  last_error_.clear();
  if (r.files_sent > 0) {
    Logf(LogLevel::kInfo, "source",
         "slot=%s pre-staged %d files (%d bytes, %d on the wire)%s; %d files "
         "await the cut",
         config_.slot(), r.files_sent, r.bytes_sent, r.wire_bytes,
         r.stopped ? ", stopped for a cut" : "", r.pending_files);
  }
  // Stopped early: what was sent counts, but not everything is staged.
  if (r.stopped) return RoundEnd::kGaveWay;
  watcher_->Prestaged(start, r.pending_files, r.pending_bytes);
  return RoundEnd::kStaged;
}

}  // namespace gwmirror
