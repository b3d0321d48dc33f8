// Pre-streaming: between cuts, once the source's changes have settled for
// a moment, the content of changed files goes to the replica's pre-stage
// pool, so the cut that follows ships only the tail (what changed since,
// the manifest, metadata and deletions). A cut always wins: it asks the
// pre-stager to step aside (between two files) and holds the source's one
// push slot while it runs. One background thread; thread-safe.
#ifndef GWMIRROR_NODE_SOURCE_PRESTAGER_H_
#define GWMIRROR_NODE_SOURCE_PRESTAGER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/epoch.h"
#include "common/send_budget.h"
#include "grpcpp/channel.h"
#include "gwmirror/v1/config.pb.h"
#include "node/source/pusher.h"
#include "node/source/source_tree.h"
#include "node/source/watcher.h"

namespace gwmirror {

class Prestager {
 public:
  // `tree`, `watcher`, `epoch` and `budget` (may be null; pushes draw from
  // it) outlive the pre-stager. `on_staged` runs
  // (on the pre-stager's thread) after a round caught up with the changes,
  // and when the tree starts churning, so the node can tell the coordinator
  // at once.
  Prestager(gwmirror::v1::NodeConfig config, SourceTree* tree,
            ChangeWatcher* watcher, EpochFile* epoch, SendBudget* budget,
            std::function<void()> on_staged);
  ~Prestager();  // Stops the thread.
  void Start();

  // The slot's current replica (from the coordinator); empty: none known.
  void SetTarget(const std::string& address, const std::string& identity)
      ABSL_LOCKS_EXCLUDED(mu_);
  // A change arrived: look soon.
  void Poke() ABSL_LOCKS_EXCLUDED(mu_);

  // Whether the coordinator should wait for a pre-stage round before it
  // cuts the changes `p` describes. Not for a small burst known to be over
  // (at most kSmallBurst path events and kSmallBytes, quiet for
  // kSmallQuiet: the cut ships it as fast as a round would, without the
  // settle time), and not while the tree churns (changes have kept it from
  // settling for over a second, so no round runs; the cut ships the content
  // itself). Until a burst is known to be small, wait.
  bool WorthWaitingFor(const ChangeWatcher::Pending& p) const {
    return !churning_.load() && !SmallAndOver(p, absl::Now());
  }
  static constexpr uint64_t kSmallBurst = 16;
  static constexpr uint64_t kSmallBytes = 1 << 20;
  static constexpr absl::Duration kSmallQuiet = absl::Milliseconds(20);
  static bool Small(const ChangeWatcher::Pending& p) {
    return p.changed_paths <= kSmallBurst && p.changed_bytes < kSmallBytes;
  }
  // Over: quiet for kSmallQuiet, and no file of it still open for writing
  // (a large file's first event, its creation, says 0 bytes).
  static bool SmallAndOver(const ChangeWatcher::Pending& p, absl::Time now) {
    return Small(p) && p.writing == 0 && now >= p.last_change + kSmallQuiet;
  }

  PrestageLedger* ledger() { return &ledger_; }
  ManifestMemo* memo() { return &memo_; }

  // Held by a cut for its whole run: the pre-stager stops at the next file
  // boundary and stays out until the guard goes.
  class CutGuard {
   public:
    explicit CutGuard(Prestager* p);
    ~CutGuard();
    CutGuard(const CutGuard&) = delete;
    CutGuard& operator=(const CutGuard&) = delete;

   private:
    Prestager* p_;
  };

 private:
  void Run();
  // How a round ended: every change in the pool; given way to a cut (one
  // holds the slot, or came while it sent: the cut ships the rest); or
  // failed (tried again after a pause).
  enum class RoundEnd { kStaged, kGaveWay, kFailed };
  // One pass: scan, send what the replica lacks.
  RoundEnd Round(const std::string& address, const std::string& identity);

  const gwmirror::v1::NodeConfig config_;
  SourceTree* const tree_;
  ChangeWatcher* const watcher_;
  EpochFile* const epoch_;
  SendBudget* const budget_;
  const std::function<void()> on_staged_;
  const absl::Duration settle_;
  PrestageLedger ledger_;
  ManifestMemo memo_;
  // The source's one push slot: a cut or a pre-stage round.
  absl::Mutex push_mu_;
  std::atomic<int> cuts_waiting_{0};
  std::atomic<bool> churning_{false};
  std::thread thread_;

  absl::Mutex mu_;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  bool poked_ ABSL_GUARDED_BY(mu_) = false;
  std::string address_ ABSL_GUARDED_BY(mu_);
  std::string identity_ ABSL_GUARDED_BY(mu_);
  // Only touched by the pre-stager's thread.
  std::shared_ptr<grpc::Channel> channel_;
  std::string channel_address_;
  std::string last_error_;
  // The burst (by its last change) already reported small.
  absl::Time small_told_ = absl::InfinitePast();
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SOURCE_PRESTAGER_H_
