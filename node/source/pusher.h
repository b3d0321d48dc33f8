// The active side of one slot: diffs a frozen source manifest against the
// replica's committed manifest and streams what the replica lacks on one
// Push stream (header, chunks of at most 1 MiB, trailer per file; no round
// trip per file). Files below `whole_file_below` travel whole; larger ones
// as librsync deltas from a cached signature of the replica's copy. While a
// file is read for sending, its own signature is built and cached, so the
// next incremental sync of it costs no signature fetch. One thread.
#ifndef GWMIRROR_NODE_SOURCE_PUSHER_H_
#define GWMIRROR_NODE_SOURCE_PUSHER_H_

#include <atomic>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/types/span.h"
#include "common/manifest.h"
#include "common/send_budget.h"
#include "gwmirror/v1/config.pb.h"
#include "gwmirror/v1/coordinator.pb.h"
#include "gwmirror/v1/replica.grpc.pb.h"
#include "node/scanner.h"
#include "node/source/anomaly_guard.h"
#include "node/source/signature_cache.h"
#include "node/work_progress.h"

namespace gwmirror {

struct PushReport {
  uint64_t checkpoint = 0;
  uint64_t base_checkpoint = 0;
  std::string manifest_digest;
  uint64_t files_whole = 0;
  uint64_t files_delta = 0;
  // Sizes of the changed files' new content.
  uint64_t content_bytes = 0;
  // Protocol bytes both ways (serialized messages: pushes, manifests,
  // signatures), the figure compared with rsync's.
  uint64_t wire_bytes = 0;
  uint64_t signature_fetches = 0;
  // GetSignature calls made for them (each names many files).
  uint64_t signature_calls = 0;
  uint64_t resent_whole = 0;
  // Files whose content the replica took from its pre-stage pool.
  uint64_t files_prestaged = 0;
  // Files the replica copied from its own committed content, and deltas
  // made against a committed file at another path.
  uint64_t files_copied = 0;
  uint64_t files_delta_other_path = 0;
  // Of the files sent as deltas: their content bytes and the delta bytes
  // that stood for them.
  uint64_t delta_content_bytes = 0;
  uint64_t delta_bytes = 0;
  // Chunks of file data sent compressed and raw (CompressionPolicy).
  uint64_t chunks_compressed = 0;
  uint64_t chunks_raw = 0;
  // Files whose digest the scan left pending: hashed before the push
  // (a decision needed it), and hashed as they were sent (the digest
  // followed their bytes).
  uint64_t digests_first = 0;
  uint64_t digests_at_end = 0;
  // The entries of the latter with their digests, in path order.
  std::vector<Entry> found_digests;
};

// A file to send and the replica's entry at its path (or null).
using FilePair = std::pair<const Entry*, const Entry*>;

// The regular files of `next` whose content `base` does not hold at their
// path, each with base's entry at that path (or null), in path order.
std::vector<FilePair> ChangedFiles(const Manifest& base, const Manifest& next);

// While alive, WorkProgress::Push() is a push of `files` (ChangedFiles'
// pairs): their count and bytes.
class PushScope {
 public:
  explicit PushScope(const std::vector<FilePair>& files);

 private:
  WorkProgress::Scope scope_;
};

// What one pre-stage push did, and what it found pending.
struct PrestageReport {
  uint64_t files_sent = 0;
  uint64_t bytes_sent = 0;
  uint64_t wire_bytes = 0;
  // Changed files (and their bytes) the replica's committed tree lacks.
  uint64_t pending_files = 0;
  uint64_t pending_bytes = 0;
  // Stopped early (a cut is waiting): some content was not sent.
  bool stopped = false;
};

// Which file versions the source has put into the replica's pre-stage
// pool, and the pool's id (a replica restart empties it under a new id).
// Shared by the pre-stager and the cut; thread-safe.
class PrestageLedger {
 public:
  // Forgets everything when the replica's pool is not `pool` any more, and
  // what the replica trimmed: content pre-staged at generation g once the
  // replica is at g + 2 (Staging::Committed's rule).
  void Sync(uint64_t pool, uint64_t generation) ABSL_LOCKS_EXCLUDED(mu_);
  bool Has(const std::string& sha) const ABSL_LOCKS_EXCLUDED(mu_);
  // The sizes of the versions pre-staged (a file of another size is none
  // of them, whatever its digest).
  absl::flat_hash_set<uint64_t> Sizes() const ABSL_LOCKS_EXCLUDED(mu_);
  // Records `versions` (digest, size) as pre-staged into `pool` at
  // `generation`.
  void Add(uint64_t pool, uint64_t generation,
           const std::vector<std::pair<std::string, uint64_t>>& versions)
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Version {
    uint64_t generation;
    uint64_t size;
  };
  mutable absl::Mutex mu_;
  uint64_t pool_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Version> shas_ ABSL_GUARDED_BY(mu_);
};

// Where a file's content, or a basis for its delta, lies among a replica's
// committed files other than at the file's own path: the same content
// anywhere (a rename, a move, a copy, an identical store of a new
// deployment), or the same-named file of a sibling folder (a new
// deployment's groups/G/conf/<uuid>/PrimaryStore.xml against the previous
// deployment's). Built per push, for the files it sends: only what those
// files can ask for is found (anything else answers null, and the file
// travels as it would without).
class CommittedContent {
 public:
  CommittedContent(const Manifest& committed,
                   const std::vector<FilePair>& files);
  const Entry* WithDigest(const std::string& sha) const;
  // For a path the replica does not hold: the most recently modified
  // committed file of the same name under the same grandparent folder.
  const Entry* SiblingOf(const std::string& path) const;

 private:
  absl::flat_hash_map<std::string, const Entry*> by_digest_;
  absl::flat_hash_map<std::string, const Entry*> by_sibling_key_;
  Manifest committed_;  // Keeps the entries alive (a shared body).
};

// The last two manifests the source pushed or read from the replica, by
// digest, so a push finds the replica's committed manifest without reading
// a file or asking the replica (copies of a Manifest share their body).
// Shared by the cut and the pre-stager; thread-safe.
class ManifestMemo {
 public:
  void Remember(const Manifest& m) ABSL_LOCKS_EXCLUDED(mu_);
  // True at most once per `every` (the first call included): whether a
  // push writes pushed.manifest and prunes the signature cache now.
  bool TakeSaveTurn(absl::Duration every) ABSL_LOCKS_EXCLUDED(mu_);
  // `digest` as raw bytes (DigestBytes).
  std::optional<Manifest> Find(const std::string& digest) const
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  std::deque<std::pair<std::string, Manifest>> recent_ ABSL_GUARDED_BY(mu_);
  absl::Time last_save_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

class Pusher {
 public:
  Pusher(const gwmirror::v1::NodeConfig& config,
         std::shared_ptr<grpc::Channel> channel);

  // Stages `scanned` (scanned under the config's host root) at the replica
  // as checkpoint `checkpoint`, with the digests its scan left pending
  // (the report's `manifest_digest` is of the whole). ABORTED when a
  // source file changed after the scan (scan again and retry).
  absl::StatusOr<PushReport> Push(const Manifest& scanned, uint64_t checkpoint,
                                  const gwmirror::v1::Envelope& envelope);

  // Sends the files of `scanned` that the replica's committed tree and
  // pre-stage pool lack into the pool, and records them in the ledger.
  // Checks `stop` before each file and ends the push early when it says so.
  // ABORTED when a file changed after the scan.
  absl::StatusOr<PrestageReport> Prestage(
      const Manifest& scanned, const gwmirror::v1::Envelope& envelope,
      const std::function<bool()>& stop);

  // Lets pushes use (and pre-stage pushes fill) `ledger`.
  void SetLedger(PrestageLedger* ledger) { ledger_ = ledger; }
  // Lets pushes find (and remember) manifests in `memo`.
  void SetMemo(ManifestMemo* memo) { memo_ = memo; }
  // Content the scan held (ScanResult::held and ::pending), sent instead
  // of re-reading the live file; `scan` outlives the pushes (null: none).
  void SetHeld(const ScanResult* scan) {
    held_ = scan != nullptr ? &scan->held : nullptr;
    pending_ = scan != nullptr ? &scan->pending : nullptr;
  }
  // Told every digest a push finds of a file its scan left pending, on the
  // pushing thread (the source tree records it, so no scan hashes the file
  // again while it stays as it is).
  void SetDigestSink(DigestSink sink) { digest_sink_ = std::move(sink); }

  // Holds pushes that would delete more than `max_fraction` of a root
  // (CheckMassDeletion); negative (the default) turns the guard off.
  void SetDeletionGuard(double max_fraction) {
    max_delete_fraction_ = max_fraction;
  }

  // Holds pushes whose change set looks like ransomware (CheckAnomaly,
  // with the config's source.anomaly_guard). Off unless set: CutService
  // sets it for every cut the operator did not release (and the config
  // does not turn off); pre-stage rounds commit nothing and need none.
  void SetAnomalyGuard(bool on) { anomaly_guard_ = on; }

  // Every call of this pusher ends by `deadline` (a cut's own deadline);
  // unary calls also within their own bound (30 s for a state, 10 min for
  // a manifest, a signature or a commit). Without one, pushes have no
  // deadline and unary calls only their bound.
  void SetDeadline(absl::Time deadline) { deadline_ = deadline; }

  // Every message this pusher sends draws from `budget` (the node's cap).
  void SetSendBudget(SendBudget* budget) { budget_ = budget; }

  // Commit/Abort as the controller would (tests and one-shot tools).
  absl::Status Commit(uint64_t checkpoint, const std::string& digest,
                      const gwmirror::v1::Envelope& envelope);

 private:
  class Stream;
  // The replica's state, with the ledger synced to its pool.
  absl::StatusOr<gwmirror::v1::ReplicaState> ReplicaState(
      const gwmirror::v1::Envelope& envelope);
  absl::StatusOr<Manifest> ReplicaManifest(
      const std::string& digest, const gwmirror::v1::Envelope& envelope,
      PushReport* report);
  // Header and end of a file the replica's pool holds.
  absl::Status SendPrestaged(Stream* stream, const Entry& e);
  // Header and end of a file the replica copies from its committed `from`.
  absl::Status SendCopy(Stream* stream, const Entry& e, const Entry& from);
  // Sends `e` by the cheapest way the replica allows: a copy of committed
  // content, a delta against its committed file at `old` or a sibling's,
  // or whole. `content` may be null (no copies, same-path deltas only).
  absl::Status SendChanged(Stream* stream, const Entry& e, const Entry* old,
                           const CommittedContent* content,
                           const gwmirror::v1::Envelope& envelope,
                           PushReport* report);
  // What of `replica` the files may reuse, when the replica takes copies.
  std::unique_ptr<CommittedContent> ContentFor(
      const gwmirror::v1::ReplicaState& state, const Manifest& replica,
      const std::vector<FilePair>& files) const;
  // `manifest` with every pending digest a push must know before sending
  // hashed now: a file the replica may hold already (a replica file, or a
  // version in the pre-stage ledger, has its size: unchanged content, a
  // copy, or pre-staged), one no held descriptor vouches for, or every one
  // when the replica cannot take a digest at the end.
  absl::StatusOr<Manifest> DigestsFirst(const Manifest& manifest,
                                        const Manifest& replica,
                                        const gwmirror::v1::ReplicaState& state,
                                        PushReport* report);
  // The scan's settled descriptor of the file at `path` whose digest it
  // left pending, or null.
  const HeldContent* SettledPending(const std::string& path) const;
  // The digest of pending `e`, from the scan's descriptor or the live file,
  // which must still have the stamp the scan kept (ABORTED otherwise); told
  // to the digest sink.
  absl::StatusOr<std::string> HashPending(const Entry& e);
  // `manifest` with the digests `report` found as it sent; INTERNAL if one
  // is still pending.
  static absl::StatusOr<Manifest> WithFoundDigests(const Manifest& manifest,
                                                   const PushReport& report);
  absl::Status SendFile(Stream* stream, const Entry& e, const Entry* old,
                        bool force_whole,
                        const gwmirror::v1::Envelope& envelope,
                        PushReport* report);
  // Sends only the entries of `next` that differ from `base`, and the paths
  // `next` removed.
  absl::Status SendManifestDelta(Stream* stream, const Manifest& next,
                                 const Manifest& base);
  // The anomaly guard's samplers: the first kEntropySample bytes of each
  // entry here, and of its committed version at the replica.
  absl::StatusOr<std::vector<ContentLook>> SampleHere(
      const std::vector<const Entry*>& entries);
  absl::StatusOr<std::vector<ContentLook>> SampleAtReplica(
      const std::vector<const Entry*>& entries,
      const gwmirror::v1::Envelope& envelope);
  // The replica's signatures of `files`, streamed into the signature
  // cache, as few calls as kMaxFilesPerCall allows; each file's outcome.
  std::vector<absl::Status> ReadSignatures(
      const std::vector<const Entry*>& files,
      const gwmirror::v1::Envelope& envelope, PushReport* report);
  // One call of ReadSignatures: a file's outcome in `got` as it completes;
  // the stream's own failure returned.
  absl::Status ReadSignatureBatch(absl::Span<const Entry* const> files,
                                  const gwmirror::v1::Envelope& envelope,
                                  PushReport* report,
                                  absl::Span<absl::Status> got);
  // The replica file a delta of `e` is made against (its committed `old`,
  // or a sibling from `content`), or null: sent whole or copied.
  const Entry* DeltaBasis(const Entry& e, const Entry* old,
                          const CommittedContent* content) const;
  // Fills the signature cache for every basis of `files` it lacks, several
  // calls in flight at once.
  void PrefetchSignatures(const std::vector<FilePair>& files,
                          const CommittedContent* content,
                          const gwmirror::v1::Envelope& envelope,
                          PushReport* report);
  // The signature of `old` from the cache, read from the replica first
  // when the cache lacks it.
  absl::StatusOr<std::shared_ptr<const MappedFile>> FetchSignature(
      const Entry& old, const gwmirror::v1::Envelope& envelope,
      PushReport* report);

  absl::Time Deadline(absl::Duration bound) const {
    return std::min(deadline_, absl::Now() + bound);
  }

  gwmirror::v1::NodeConfig config_;
  absl::Time deadline_ = absl::InfiniteFuture();
  SendBudget* budget_ = nullptr;
  std::string host_root_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<gwmirror::v1::Replica::Stub> stub_;
  SignatureCache sigs_;
  uint64_t whole_below_;
  uint64_t segment_bytes_;
  // Read buffer reused for every file (kMaxChunk bytes).
  std::string read_buf_;
  double max_delete_fraction_ = -1;
  bool anomaly_guard_ = false;
  PrestageLedger* ledger_ = nullptr;
  ManifestMemo* memo_ = nullptr;
  const absl::flat_hash_map<std::string, HeldContent>* held_ = nullptr;
  const absl::flat_hash_map<std::string, HeldContent>* pending_ = nullptr;
  DigestSink digest_sink_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SOURCE_PUSHER_H_
