#include "node/source/pusher.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <set>

#include "absl/cleanup/cleanup.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/block_delta.h"
#include "common/chunk_codec.h"
#include "common/delta.h"
#include "common/entropy.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/log.h"
#include "common/manifest_delta.h"
#include "common/path.h"
#include "common/status_macros.h"
#include "node/metrics.h"
#include "node/scanner.h"
#include "node/source/chunk_message.h"
#include "node/source/compression_policy.h"
#include "node/source/deletion_guard.h"

namespace gwmirror {

using gwmirror::v1::ENTRY_TYPE_FILE;
using gwmirror::v1::PushMessage;

namespace {
constexpr uint32_t kDefaultBlockLen = 1024;
constexpr uint64_t kDefaultWholeBelow = 64 * 1024;
constexpr int kCompressLevel = 1;
constexpr uint64_t kDefaultSegment = 4 << 20;
constexpr absl::Duration kPushedSaveEvery = absl::Minutes(1);
// The most a replica's GetManifest may make this source hold.
constexpr uint64_t kMaxReplicaManifestBytes = 1ull << 30;

// Bytes of a file, read once into memory that whoever uses them shares:
// the send (gRPC may hold them past the Write that sent them), the delta
// workers and the signature. Filled in order, then only read.
class Segment {
 public:
  explicit Segment(size_t capacity)
      : bytes_(std::make_unique_for_overwrite<char[]>(capacity)),
        capacity_(capacity) {}
  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;
  absl::string_view view() const { return {bytes_.get(), size_}; }
  // Where the next bytes go, and how many fit.
  char* free_space() { return bytes_.get() + size_; }
  size_t room() const { return capacity_ - size_; }
  // The next `n` bytes, written at free_space(), are in.
  absl::string_view Filled(size_t n) {
    size_ += n;
    return {bytes_.get() + size_ - n, n};
  }
  bool full() const { return size_ == capacity_; }

 private:
  std::unique_ptr<char[]> bytes_;
  size_t size_ = 0;
  const size_t capacity_;
};

// The file's own signature (for the next sync), built one segment at a
// time in order on a worker thread, so the thread that reads and sends
// does not wait for it. At most one segment is in the worker: a reader
// faster than the signature waits at the next Add instead of piling
// segments up in memory.
class SignatureChain {
 public:
  // The signature of a `file_size`-byte file in blocks of `block_len`;
  // `sink` receives its bytes, on the worker thread.
  SignatureChain(uint64_t file_size, uint32_t block_len, ByteSink sink)
      : own_(file_size, block_len, SignatureKind::kSeededXxh3),
        sink_(std::move(sink)) {}
  SignatureChain(const SignatureChain&) = delete;
  SignatureChain& operator=(const SignatureChain&) = delete;
  ~SignatureChain() {
    if (chain_.valid()) chain_.wait();
  }
  // A whole file in one segment (nothing in flight, `last`) is fed on the
  // calling thread: a small file gains nothing from a thread.
  absl::Status Add(std::shared_ptr<const Segment> segment, bool last) {
    if (chain_.valid()) {
      RETURN_IF_ERROR(chain_.get());
    } else if (last) {
      return own_.Feed(segment->view(), last, sink_);
    }
    chain_ = std::async(std::launch::async, [this, segment, last] {
      return own_.Feed(segment->view(), last, sink_);
    });
    return absl::OkStatus();
  }
  absl::Status Finish() {
    return chain_.valid() ? chain_.get() : absl::OkStatus();
  }

 private:
  SignatureBuilder own_;
  const ByteSink sink_;
  std::future<absl::Status> chain_;
};

// Deltas of consecutive segments of a file, computed two at a time on
// worker threads against one shared signature (mapped, not copied) and
// emitted in order. Each segment searches the basis blocks near its own
// offsets first (BlockDelta); the far index (BlockIndex::Far) is shared.
// The file's own signature goes to a SignatureChain, so the reading thread
// only reads and hashes. Memory does not grow with the file: at most
// kParallel segments are in delta workers and one in the signature, the
// far index is bounded, and the signature's pages below the segments
// still to search are given back as the file goes on.
class SegmentedDelta {
 public:
  // `own` (may be null) receives every segment in order.
  static absl::StatusOr<std::unique_ptr<SegmentedDelta>> Create(
      std::shared_ptr<const MappedFile> sig, SignatureChain* own) {
    ASSIGN_OR_RETURN(BlockSignature parsed,
                     BlockSignature::Parse(std::move(sig)));
    auto d = std::unique_ptr<SegmentedDelta>(new SegmentedDelta);
    d->sig_ = std::make_shared<const BlockSignature>(std::move(parsed));
    const BlockSignature& s = *d->sig_;
    if (uint64_t{s.blocks()} * s.block_len() > d->opt_.near_bytes) {
      d->all_ = BlockIndex::Far(s, d->opt_.far_blocks);
    }
    d->own_ = own;
    return d;
  }
  ~SegmentedDelta() {
    for (auto& f : inflight_) f.out.wait();
  }
  // Starts the delta of the next segment; emits finished ones in order.
  absl::Status Add(std::shared_ptr<const Segment> seg, bool last,
                   const ByteSink& sink) {
    if (inflight_.size() == kParallel) RETURN_IF_ERROR(EmitOldest(sink));
    const uint64_t offset = offset_;
    offset_ += seg->view().size();
    inflight_.push_back(Inflight{
        offset, std::async(std::launch::async, [sig = sig_, all = all_,
                                                opt = opt_, seg, offset, last] {
          BlockRange r = NearBlocks(*sig, offset, seg->view().size(), opt);
          BlockIndex near(*sig, r.first, r.end);
          const BlockIndex* far =
              near.Covers(0, sig->blocks()) ? nullptr : all.get();
          std::string out;
          BlockDelta(*sig, near, far, seg->view(), last, opt, &out);
          return out;
        })});
    return own_ != nullptr ? own_->Add(std::move(seg), last) : absl::OkStatus();
  }
  absl::Status Finish(const ByteSink& sink) {
    while (!inflight_.empty()) RETURN_IF_ERROR(EmitOldest(sink));
    return absl::OkStatus();
  }

 private:
  static constexpr size_t kParallel = 2;
  SegmentedDelta() = default;
  absl::Status EmitOldest(const ByteSink& sink) {
    std::string out = inflight_.front().out.get();
    inflight_.pop_front();
    // The signature's pages below every segment still to search go back.
    const uint64_t low = inflight_.empty() ? offset_ : inflight_.front().offset;
    const uint32_t below = NearBlocks(*sig_, low, 0, opt_).first;
    if (below > released_) {
      sig_->Release(released_, below);
      released_ = below;
    }
    return sink(out);
  }
  struct Inflight {
    uint64_t offset;
    std::future<std::string> out;
  };
  BlockDeltaOptions opt_;
  std::shared_ptr<const BlockSignature> sig_;
  std::shared_ptr<const BlockIndex> all_;  // Null: one window covers all.
  uint64_t offset_ = 0;
  uint32_t released_ = 0;  // Blocks below it are released.
  std::deque<Inflight> inflight_;
  SignatureChain* own_ = nullptr;
};

// The Push method's full name, as gRPC wants it (for the life of the
// process: gRPC keeps the pointer).
const std::string& PushMethod() {
  static const auto* name = new std::string(
      absl::StrCat("/", gwmirror::v1::Replica::service_full_name(), "/Push"));
  return *name;
}

// Adds what a push sent to the node's metrics, whatever its outcome.
void CountSent(const PushReport& r) {
  NodeMetrics& m = NodeMetrics::Get();
  m.files_sent.Add(r.files_whole, {"whole"});
  m.files_sent.Add(r.files_delta, {"delta"});
  m.content_bytes.Add(r.content_bytes);
  m.wire_bytes.Add(r.wire_bytes);
  if (r.delta_content_bytes > r.delta_bytes) {
    m.delta_saved_bytes.Add(r.delta_content_bytes - r.delta_bytes);
  }
}

// A descriptor's stat data, as StampOf gives it (no path); an empty stamp
// when fstat fails, which matches no scan's.
StatStamp StampNow(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0) return StatStamp{"", 0, 0, 0, -1, -1};
  return StampOf("", st);
}

}  // namespace

// One open Push stream with its chunk encoder and byte counter.
class Pusher::Stream {
 public:
  // The stream writes serialized messages (ByteBuffers) rather than
  // PushMessages, so that file data goes to gRPC uncopied
  // (FileChunkMessage); the replica reads PushMessages all the same. The
  // writer comes from grpc::internal::ClientWriterFactory, the factory the
  // generated Replica::Stub::Push calls itself (gRPC 1.51, Debian 12's);
  // a gRPC that changed it would fail to build, and every push test runs
  // through it.
  Stream(grpc::ChannelInterface* channel, PushReport* report,
         gwmirror::v1::SourceConfig::Compression compression,
         absl::Time deadline, SendBudget* budget)
      : encoder_(kCompressLevel),
        policy_(compression),
        report_(report),
        budget_(budget) {
    if (deadline != absl::InfiniteFuture()) {
      ctx_.set_deadline(absl::ToChronoTime(deadline));
    }
    writer_.reset(grpc::internal::ClientWriterFactory<grpc::ByteBuffer>::Create(
        channel,
        grpc::internal::RpcMethod(PushMethod().c_str(),
                                  grpc::internal::RpcMethod::CLIENT_STREAMING),
        &ctx_, &result_));
  }
  absl::Status Write(const PushMessage& m) {
    ASSIGN_OR_RETURN(grpc::ByteBuffer message, SerializedMessage(m));
    return Write(message);
  }
  absl::Status Write(const grpc::ByteBuffer& message) {
    const uint64_t bytes = message.Length();
    if (budget_ != nullptr) budget_->Take(bytes);
    report_->wire_bytes += bytes;
    if (!writer_->Write(message)) {
      // The replica ended the stream: its status says why.
      absl::StatusOr<gwmirror::v1::PushResult> r = Finish();
      return r.ok() ? absl::UnavailableError(
                          "the replica ended the push stream before its end")
                    : r.status();
    }
    return absl::OkStatus();
  }
  // Buffers file data; sends full chunks. A whole chunk goes at once
  // straight from `d`, uncopied when `owner` (which must keep `d` alive
  // and unchanged) is given.
  absl::Status Data(absl::string_view d,
                    const std::shared_ptr<const void>& owner = nullptr) {
    while (!d.empty()) {
      if (buf_.empty() && d.size() >= kMaxChunk) {
        RETURN_IF_ERROR(Send(d.substr(0, kMaxChunk), owner));
        d.remove_prefix(kMaxChunk);
        continue;
      }
      size_t take = std::min(d.size(), kMaxChunk - buf_.size());
      buf_.append(d.data(), take);
      d.remove_prefix(take);
      if (buf_.size() == kMaxChunk) RETURN_IF_ERROR(Flush());
    }
    return absl::OkStatus();
  }
  // A new file (its data a librsync delta or whole): try compressing its
  // chunks again.
  void NewFile(bool delta) {
    compress_ = true;
    delta_ = delta;
  }
  absl::Status Flush() {
    if (buf_.empty()) return absl::OkStatus();
    absl::Status st = Send(buf_);
    buf_.clear();
    return st;
  }
  // Sends one chunk of file data, compressed or raw; `owner` as for Data.
  absl::Status Send(absl::string_view chunk,
                    std::shared_ptr<const void> owner = nullptr) {
    // A file found incompressible goes raw by that rule, not the policy's.
    const bool measure = compress_;
    const bool compress = compress_ && policy_.Compress(chunk.size(), delta_);
    const uint64_t size = chunk.size();
    uint32_t raw = 0;
    const auto start = std::chrono::steady_clock::now();
    if (compress) {
      auto frame = std::make_shared<std::string>();
      if (encoder_.Compress(chunk, frame.get())) {
        raw = static_cast<uint32_t>(size);
        chunk = *frame;
        owner = std::move(frame);
      } else {
        // A chunk that did not compress (jars, KahaDB journals) says the
        // rest of the file will not either: stop spending CPU on it.
        compress_ = false;
      }
    }
    RETURN_IF_ERROR(Write(FileChunkMessage(chunk, raw, std::move(owner))));
    (raw != 0 ? report_->chunks_compressed : report_->chunks_raw) += 1;
    if (measure) {
      policy_.Observe(
          raw != 0, size, delta_,
          absl::FromChrono(std::chrono::steady_clock::now() - start));
    }
    return absl::OkStatus();
  }
  void Cancel() { ctx_.TryCancel(); }
  // Ends the stream after a failure, and gives its reason. A refusal by
  // the replica already ended the stream (Write gives the replica's own
  // status); a failure of ours (a file changed under us, a signature
  // refused, a read error) cancels it, so the replica drops what it
  // staged, and `st` says why rather than the replica's "ended before
  // PushEnd".
  absl::Status Abandon(absl::Status st) {
    if (!finished_) {
      ctx_.TryCancel();
      (void)Finish();
    }
    return st;
  }
  absl::StatusOr<gwmirror::v1::PushResult> Finish() {
    if (!finished_) {
      finished_ = true;
      writer_->WritesDone();
      status_ = FromGrpc(writer_->Finish());
      if (policy_.ns_per_byte(false) > 0) {
        Logf(LogLevel::kInfo, "source",
             "compression: %d chunks compressed (%.2f ns/byte), %d raw "
             "(%.2f ns/byte)",
             report_->chunks_compressed, policy_.ns_per_byte(true),
             report_->chunks_raw, policy_.ns_per_byte(false));
      }
    }
    if (!status_.ok()) return status_;
    report_->wire_bytes += result_.ByteSizeLong();
    return result_;
  }

 private:
  grpc::ClientContext ctx_;
  gwmirror::v1::PushResult result_;
  std::unique_ptr<grpc::ClientWriter<grpc::ByteBuffer>> writer_;
  ChunkEncoder encoder_;
  CompressionPolicy policy_;
  std::string buf_;
  PushReport* report_;
  SendBudget* const budget_;
  bool compress_ = true;
  bool delta_ = false;
  bool finished_ = false;
  absl::Status status_;
};

Pusher::Pusher(const gwmirror::v1::NodeConfig& config,
               std::shared_ptr<grpc::Channel> channel)
    : config_(config),
      host_root_(config.host_root().empty() ? "/" : config.host_root()),
      channel_(channel),
      stub_(gwmirror::v1::Replica::NewStub(channel)),
      sigs_(config.state_dir() + "/source/signatures",
            config.source().block_len() ? config.source().block_len()
                                        : kDefaultBlockLen),
      whole_below_(config.source().whole_file_below()
                       ? config.source().whole_file_below()
                       : kDefaultWholeBelow),
      segment_bytes_(config.source().delta_segment_bytes()
                         ? config.source().delta_segment_bytes()
                         : kDefaultSegment),
      read_buf_(kMaxChunk, '\0') {}

PushScope::PushScope(const std::vector<FilePair>& files)
    : scope_(WorkProgress::Push(), "push") {
  uint64_t bytes = 0;
  for (const auto& [e, old] : files) bytes += e->size();
  WorkProgress::Push().SetTotal(files.size(), bytes);
}

void PrestageLedger::Sync(uint64_t pool, uint64_t generation) {
  absl::MutexLock l(&mu_);
  if (pool_ != pool) {
    pool_ = pool;
    shas_.clear();
  }
  for (auto it = shas_.begin(); it != shas_.end();) {
    it = it->second.generation + 2 <= generation ? shas_.erase(it)
                                                 : std::next(it);
  }
}

bool PrestageLedger::Has(const std::string& sha) const {
  absl::MutexLock l(&mu_);
  return shas_.count(sha) > 0;
}

absl::flat_hash_set<uint64_t> PrestageLedger::Sizes() const {
  absl::MutexLock l(&mu_);
  absl::flat_hash_set<uint64_t> sizes;
  for (const auto& [sha, v] : shas_) sizes.insert(v.size);
  return sizes;
}

void PrestageLedger::Add(
    uint64_t pool, uint64_t generation,
    const std::vector<std::pair<std::string, uint64_t>>& versions) {
  absl::MutexLock l(&mu_);
  if (pool_ != pool) return;
  for (const auto& [sha, size] : versions) shas_[sha] = {generation, size};
}

namespace {

// "groups/G/conf/<uuid>/X.xml" → "X.xml".
absl::string_view BaseName(absl::string_view path) {
  size_t slash = path.rfind('/');
  return slash == absl::string_view::npos ? path : path.substr(slash + 1);
}

// "groups/G/conf/<uuid>/X.xml" → "groups/G/conf\0X.xml"; empty for a path
// without a grandparent folder.
std::string SiblingKey(absl::string_view path) {
  size_t name = path.rfind('/');
  if (name == absl::string_view::npos || name == 0) return "";
  size_t parent = path.rfind('/', name - 1);
  if (parent == absl::string_view::npos) return "";
  return absl::StrCat(path.substr(0, parent), std::string(1, '\0'),
                      path.substr(name + 1));
}

}  // namespace

std::vector<FilePair> ChangedFiles(const Manifest& base, const Manifest& next) {
  std::vector<FilePair> out;
  ForEachPath(base, next, [&](const Entry* old, const Entry* e) {
    if (e == nullptr || e->type() != ENTRY_TYPE_FILE) return;
    if (old != nullptr && old->type() == ENTRY_TYPE_FILE &&
        old->sha256() == e->sha256()) {
      return;
    }
    out.emplace_back(e, old);
  });
  return out;
}

CommittedContent::CommittedContent(const Manifest& committed,
                                   const std::vector<FilePair>& files)
    : committed_(committed) {
  // Only what these files can ask for is looked up: a push of one file
  // makes one pass over the committed entries and allocates nothing more.
  absl::flat_hash_set<absl::string_view> names;
  for (const auto& [e, old] : files) {
    by_digest_.emplace(e->sha256(), nullptr);
    if (old != nullptr && old->type() == ENTRY_TYPE_FILE) continue;
    std::string key = SiblingKey(e->path());
    if (key.empty()) continue;
    by_sibling_key_.emplace(std::move(key), nullptr);
    names.insert(BaseName(e->path()));
  }
  if (files.empty()) return;
  for (const Entry& e : committed_.entries()) {
    if (e.type() != ENTRY_TYPE_FILE) continue;
    if (auto it = by_digest_.find(e.sha256());
        it != by_digest_.end() && it->second == nullptr) {
      it->second = &e;
    }
    if (names.empty() || !names.contains(BaseName(e.path()))) continue;
    auto it = by_sibling_key_.find(SiblingKey(e.path()));
    if (it == by_sibling_key_.end()) continue;
    if (it->second == nullptr || e.mtime_ns() > it->second->mtime_ns()) {
      it->second = &e;
    }
  }
}

const Entry* CommittedContent::WithDigest(const std::string& sha) const {
  auto it = by_digest_.find(sha);
  return it == by_digest_.end() ? nullptr : it->second;
}

const Entry* CommittedContent::SiblingOf(const std::string& path) const {
  std::string key = SiblingKey(path);
  if (key.empty()) return nullptr;
  auto it = by_sibling_key_.find(key);
  return it == by_sibling_key_.end() ? nullptr : it->second;
}

bool ManifestMemo::TakeSaveTurn(absl::Duration every) {
  absl::MutexLock l(&mu_);
  const absl::Time now = absl::Now();
  if (now < last_save_ + every) return false;
  last_save_ = now;
  return true;
}

void ManifestMemo::Remember(const Manifest& m) {
  absl::MutexLock l(&mu_);
  std::string digest = DigestBytes(m.ComputeDigest());
  for (const auto& [d, kept] : recent_) {
    if (d == digest) return;
  }
  recent_.emplace_front(std::move(digest), m);
  if (recent_.size() > 2) recent_.pop_back();
}

std::optional<Manifest> ManifestMemo::Find(const std::string& digest) const {
  absl::MutexLock l(&mu_);
  for (const auto& [d, m] : recent_) {
    if (d == digest) return m;
  }
  return std::nullopt;
}

absl::StatusOr<gwmirror::v1::ReplicaState> Pusher::ReplicaState(
    const gwmirror::v1::Envelope& envelope) {
  gwmirror::v1::ReplicaState state;
  gwmirror::v1::GetStateRequest req;
  *req.mutable_envelope() = envelope;
  // The first call of a push: on a kept channel whose connection died with
  // a partition (the peer reset it once the link was back), it is the one
  // that finds out. It only reads, so it is asked once more, waiting for
  // the reconnect.
  grpc::Status st;
  for (int attempt = 0; attempt < 2; ++attempt) {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(Deadline(absl::Seconds(30))));
    ctx.set_wait_for_ready(attempt > 0);
    st = stub_->GetState(&ctx, req, &state);
    if (st.error_code() != grpc::StatusCode::UNAVAILABLE) break;
  }
  RETURN_IF_ERROR(FromGrpc(st));
  if (ledger_ != nullptr) {
    ledger_->Sync(state.prestage_pool(), state.prestage_generation());
  }
  return state;
}

absl::StatusOr<Manifest> Pusher::ReplicaManifest(
    const std::string& digest, const gwmirror::v1::Envelope& envelope,
    PushReport* report) {
  // The replica usually holds what we pushed last; then nothing is read.
  if (memo_ != nullptr) {
    if (std::optional<Manifest> m = memo_->Find(digest)) return *std::move(m);
  }
  std::string cache = config_.state_dir() + "/source/replica.manifest";
  for (const std::string& path :
       {config_.state_dir() + "/source/pushed.manifest", cache}) {
    auto cached = ReadManifestFile(path);
    if (cached.ok() &&
        DigestBytes(cached->manifest.ComputeDigest()) == digest) {
      if (memo_ != nullptr) memo_->Remember(cached->manifest);
      return std::move(cached->manifest);
    }
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(Deadline(absl::Minutes(10))));
  gwmirror::v1::GetManifestRequest req;
  *req.mutable_envelope() = envelope;
  auto reader = stub_->GetManifest(&ctx, req);
  // What a replica sends is bounded too: a hostile one must not make the
  // source hold more than a mirror set's manifest.
  ManifestAssembler assembler(kMaxReplicaManifestBytes);
  gwmirror::v1::ManifestBatch batch;
  absl::Status st;
  while (st.ok() && reader->Read(&batch)) {
    report->wire_bytes += batch.ByteSizeLong();
    st = assembler.Add(std::move(batch));
  }
  if (!st.ok()) {
    ctx.TryCancel();
    (void)reader->Finish();
    return st;
  }
  RETURN_IF_ERROR(FromGrpc(reader->Finish()));
  ASSIGN_OR_RETURN(Manifest m, assembler.Finish(digest));
  RETURN_IF_ERROR(WriteManifestFile(cache, 0, m, Durability::kCache));
  if (memo_ != nullptr) memo_->Remember(m);
  return m;
}

std::vector<absl::Status> Pusher::ReadSignatures(
    const std::vector<const Entry*>& files,
    const gwmirror::v1::Envelope& envelope, PushReport* report) {
  std::vector<absl::Status> got(files.size());
  for (size_t at = 0; at < files.size(); at += kMaxFilesPerCall) {
    const size_t n = std::min<size_t>(kMaxFilesPerCall, files.size() - at);
    absl::Status st =
        ReadSignatureBatch(absl::MakeConstSpan(files).subspan(at, n), envelope,
                           report, absl::MakeSpan(got).subspan(at, n));
    for (size_t i = at; i < at + n; ++i) {
      if (st.ok() && got[i].ok()) ++report->signature_fetches;
      // What the stream left unanswered failed with it.
      if (!st.ok() && got[i].ok()) got[i] = st;
    }
  }
  return got;
}

absl::Status Pusher::ReadSignatureBatch(absl::Span<const Entry* const> files,
                                        const gwmirror::v1::Envelope& envelope,
                                        PushReport* report,
                                        absl::Span<absl::Status> got) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(Deadline(absl::Minutes(10))));
  gwmirror::v1::GetSignatureRequest req;
  *req.mutable_envelope() = envelope;
  for (const Entry* e : files) {
    auto* t = req.add_targets();
    t->set_path(e->path());
    t->set_sha256(e->sha256());
  }
  req.set_block_len(sigs_.block_len());
  ++report->signature_calls;
  auto reader = stub_->GetSignature(&ctx, req);
  // Each target's signature streams into the cache (a temporary file,
  // renamed when complete). A hostile or broken replica must not make the
  // source store more than a signature of that file can be, nor answer out
  // of order.
  size_t next = 0;  // The target answered now, or next.
  std::unique_ptr<SignatureCache::Writer> out;
  uint64_t bytes = 0;
  gwmirror::v1::SignatureChunk chunk;
  absl::Status st;
  while (st.ok() && reader->Read(&chunk)) {
    report->wire_bytes += chunk.ByteSizeLong();
    if (chunk.target() != next) {
      st = absl::DataLossError(absl::StrCat("the replica answered signature ",
                                            chunk.target(), " where ", next,
                                            " was due"));
      break;
    }
    const Entry& e = *files[next];
    if (out == nullptr) {
      auto w = sigs_.Start(e.sha256());
      if (!w.ok()) {
        st = w.status();
        break;
      }
      out = *std::move(w);
      bytes = 0;
    }
    bytes += chunk.data().size();
    const uint64_t cap = MaxSignatureBytes(e.size(), sigs_.block_len());
    if (bytes > cap) {
      st = absl::DataLossError(absl::StrCat(
          "the replica's signature of ", e.path(), " exceeds the ", cap,
          " bytes a signature of a ", e.size(), "-byte file can take"));
      break;
    }
    st = out->Append(chunk.data());
    if (!st.ok() || !chunk.last()) continue;
    if (chunk.error_code() != 0) {
      got[next] =
          absl::Status(static_cast<absl::StatusCode>(chunk.error_code()),
                       absl::StrCat("the replica has no signature of ",
                                    e.path(), ": ", chunk.error()));
    } else {
      got[next] = out->Commit();
    }
    out.reset();  // Uncommitted, its temporary file goes.
    ++next;
  }
  if (!st.ok()) {
    ctx.TryCancel();
    (void)reader->Finish();
    return st;
  }
  RETURN_IF_ERROR(FromGrpc(reader->Finish()));
  if (next < files.size()) {
    return absl::DataLossError(
        absl::StrCat("the replica's signature stream ended after ", next,
                     " of ", files.size(), " files"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ContentLook>> Pusher::SampleHere(
    const std::vector<const Entry*>& entries) {
  std::vector<ContentLook> out(entries.size());
  std::string buf(kEntropySample, '\0');
  for (size_t i = 0; i < entries.size(); ++i) {
    UniqueFd fd(open(JoinPath(host_root_, entries[i]->path()).c_str(),
                     O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd.valid()) continue;  // Gone since the scan: not judged.
    ssize_t n = pread(fd.get(), buf.data(), buf.size(), 0);
    if (n < 0) continue;
    out[i] = LookAt(absl::string_view(buf.data(), n));
  }
  return out;
}

absl::StatusOr<std::vector<ContentLook>> Pusher::SampleAtReplica(
    const std::vector<const Entry*>& entries,
    const gwmirror::v1::Envelope& envelope) {
  gwmirror::v1::SampleContentRequest req;
  *req.mutable_envelope() = envelope;
  for (const Entry* e : entries) {
    auto* t = req.add_targets();
    t->set_path(e->path());
    t->set_sha256(e->sha256());
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(Deadline(absl::Minutes(1))));
  gwmirror::v1::ContentSamples resp;
  absl::Status st = FromGrpc(stub_->SampleContent(&ctx, req, &resp));
  if (absl::IsUnimplemented(st)) {
    // A replica of an older version: nothing sampled, nothing held (the
    // guard judges only what both sides sampled).
    Logf(LogLevel::kWarning, "source",
         "slot=%s the replica cannot sample content (an older version): the "
         "anomaly guard is blind until it is upgraded",
         config_.slot());
    return std::vector<ContentLook>(entries.size());
  }
  RETURN_IF_ERROR(st);
  if (resp.entropy_size() != req.targets_size() ||
      resp.sampled_bytes_size() != req.targets_size() ||
      resp.text_fraction_size() != req.targets_size()) {
    return absl::DataLossError(
        absl::StrCat("the replica answered ", resp.entropy_size(),
                     " samples for ", req.targets_size(), " files"));
  }
  std::vector<ContentLook> out(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    out[i] = {resp.entropy(i), resp.text_fraction(i), resp.sampled_bytes(i)};
  }
  return out;
}

absl::StatusOr<std::shared_ptr<const MappedFile>> Pusher::FetchSignature(
    const Entry& old, const gwmirror::v1::Envelope& envelope,
    PushReport* report) {
  if (!sigs_.Has(old.sha256())) {
    RETURN_IF_ERROR(ReadSignatures({&old}, envelope, report)[0]);
  }
  return sigs_.Map(old.sha256());
}

const Entry* Pusher::DeltaBasis(const Entry& e, const Entry* old,
                                const CommittedContent* content) const {
  if (content != nullptr) {
    if (content->WithDigest(e.sha256()) != nullptr) return nullptr;  // Copy.
    if (old == nullptr || old->type() != ENTRY_TYPE_FILE) {
      old = content->SiblingOf(e.path());
    }
  }
  const bool delta = old != nullptr && old->type() == ENTRY_TYPE_FILE &&
                     e.size() >= whole_below_ && old->size() >= whole_below_;
  return delta ? old : nullptr;
}

void Pusher::PrefetchSignatures(const std::vector<FilePair>& files,
                                const CommittedContent* content,
                                const gwmirror::v1::Envelope& envelope,
                                PushReport* report) {
  // The bases whose signatures the cache lacks, each once.
  std::vector<const Entry*> missing;
  std::set<std::string> seen;
  for (const auto& [e, old] : files) {
    const Entry* basis = DeltaBasis(*e, old, content);
    if (basis == nullptr || !seen.insert(basis->sha256()).second) continue;
    if (!sigs_.Has(basis->sha256())) missing.push_back(basis);
  }
  // All in one stream: a WAN round trip per file would otherwise be the
  // cost of a push after a lost cache (a failback, a new source). What
  // fails here is fetched again by the send, which may send it whole.
  if (!missing.empty()) (void)ReadSignatures(missing, envelope, report);
}

absl::Status Pusher::SendFile(Stream* stream, const Entry& e, const Entry* old,
                              bool force_whole,
                              const gwmirror::v1::Envelope& envelope,
                              PushReport* report) {
  std::string full = JoinPath(host_root_, e.path());
  // What the scan read, when it held the bytes or the descriptor;
  // otherwise the live file.
  const std::string* held = nullptr;
  int read_fd = -1;
  // The held file as the scan saw it, when unchanged since: its bytes are
  // the ones the scan hashed as long as its stamp stays, so they are not
  // hashed again (the replica still checks the digest).
  const StatStamp* settled = nullptr;
  // A pending digest (DigestsFirst left it to the send): the scan's held
  // descriptor, settled, is read and hashed, and the stamp checked after.
  const bool pending = e.sha256().empty();
  if (pending) {
    const HeldContent* h = SettledPending(e.path());
    if (h == nullptr) {
      return absl::InternalError(absl::StrCat(
          e.path(),
          ": its digest is pending but the scan holds no settled descriptor "
          "of it to send it from (DigestsFirst hashes such a file first)"));
    }
    read_fd = h->fd->get();
    settled = &*h->settled;
    if (StampNow(read_fd) != *settled) {
      return absl::AbortedError(
          absl::StrCat(e.path(), " changed since the scan; scan again"));
    }
  } else if (held_ != nullptr) {
    if (auto it = held_->find(e.sha256()); it != held_->end()) {
      if (it->second.fd != nullptr) {
        read_fd = it->second.fd->get();
        if (it->second.settled && StampNow(read_fd) == *it->second.settled) {
          settled = &*it->second.settled;
        }
      } else {
        held = &it->second.bytes;
      }
    }
  }
  UniqueFd fd;
  if (held == nullptr && read_fd < 0) {
    fd.Reset(
        open(full.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!fd.valid()) {
      return absl::AbortedError(absl::StrCat(
          e.path(), " vanished or changed type since the scan; scan again"));
    }
    read_fd = fd.get();
  }
  bool delta = !force_whole && old != nullptr &&
               old->type() == ENTRY_TYPE_FILE && e.size() >= whole_below_ &&
               old->size() >= whole_below_;
  // Our own signature, for the next sync of this file: written to the
  // cache as it is built, committed once the file is sent.
  std::unique_ptr<SignatureCache::Writer> own_sig_file;
  std::optional<SignatureChain> own_chain;
  if (e.size() >= whole_below_) {
    // A pending digest names it at Commit.
    ASSIGN_OR_RETURN(own_sig_file, sigs_.Start(e.sha256()));
    own_chain.emplace(e.size(), sigs_.block_len(),
                      [&own_sig_file](absl::string_view s) {
                        return own_sig_file->Append(s);
                      });
  }
  std::unique_ptr<SegmentedDelta> segmented;
  if (delta) {
    ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> sig,
                     FetchSignature(*old, envelope, report));
    auto s = SegmentedDelta::Create(std::move(sig),
                                    own_chain ? &*own_chain : nullptr);
    if (s.ok()) {
      segmented = *std::move(s);
    } else {
      Logf(LogLevel::kWarning, "source",
           "%s: the basis signature is unusable (%s); sending it whole",
           e.path(), s.status().message());
    }
    delta = segmented != nullptr;
  }
  PushMessage m;
  auto* h = m.mutable_file_header();
  *h->mutable_entry() = e;
  h->set_digest_at_end(pending);
  if (delta) {
    h->set_encoding(gwmirror::v1::ENCODING_DELTA);
    h->set_basis_sha256(old->sha256());
    if (old->path() != e.path()) {
      h->set_basis_path(old->path());
      ++report->files_delta_other_path;
    }
    ++report->files_delta;
  } else {
    h->set_encoding(gwmirror::v1::ENCODING_WHOLE);
    ++report->files_whole;
  }
  RETURN_IF_ERROR(stream->Write(m));
  stream->NewFile(delta);
  auto data_sink = [&](absl::string_view s) {
    if (delta) report->delta_bytes += s.size();
    return stream->Data(s);
  };
  Sha256 hash;
  std::string& buf = read_buf_;
  // The delta workers and the signature take the file in segments, read
  // straight into them; a whole file is sent from them uncopied, which
  // takes whole chunks: its segments hold a whole number of them.
  const bool segments = segmented != nullptr || own_chain.has_value();
  const size_t segment_bytes =
      segmented ? segment_bytes_
                : (segment_bytes_ + kMaxChunk - 1) / kMaxChunk * kMaxChunk;
  std::shared_ptr<Segment> segment;
  uint64_t total = 0;
  for (;;) {
    if (segments && segment == nullptr) {
      segment = std::make_shared<Segment>(segment_bytes);
    }
    const size_t room =
        segments ? std::min(buf.size(), segment->room()) : buf.size();
    absl::string_view piece;
    if (held != nullptr) {
      piece = absl::string_view(*held).substr(total, room);
      if (segments) {
        memcpy(segment->free_space(), piece.data(), piece.size());
        piece = segment->Filled(piece.size());
      }
    } else {
      // pread: a held descriptor may be sent again by a later push.
      char* into = segments ? segment->free_space() : buf.data();
      ssize_t n = pread(read_fd, into, room, total);
      if (n < 0) {
        if (errno == EINTR) continue;
        return ErrnoStatus(errno, absl::StrCat("read ", full));
      }
      piece = segments ? segment->Filled(n) : absl::string_view(into, n);
    }
    const size_t n = piece.size();
    WorkProgress::Push().Sent(n);
    bool eof = n == 0;
    if (settled == nullptr || pending) hash.Update(piece);
    total += n;
    if (!segmented) RETURN_IF_ERROR(stream->Data(piece, segment));
    if (segments && (segment->full() || eof)) {
      // To the delta workers (which feed own_chain) or to own_chain alone.
      if (segmented) {
        RETURN_IF_ERROR(segmented->Add(std::move(segment), eof, data_sink));
      } else {
        RETURN_IF_ERROR(own_chain->Add(std::move(segment), eof));
      }
      segment = nullptr;
    }
    if (eof) break;
  }
  if (segmented) RETURN_IF_ERROR(segmented->Finish(data_sink));
  if (own_chain) RETURN_IF_ERROR(own_chain->Finish());
  // A settled file kept its stamp, so its bytes are the ones the scan
  // saw; any other must hash to the scan's digest.
  const std::string digest =
      settled == nullptr || pending ? DigestBytes(hash.Finish()) : "";
  struct stat now;
  const bool same = settled != nullptr ? fstat(read_fd, &now) == 0 &&
                                             StampOf("", now) == *settled
                                       : digest == e.sha256();
  if (!same || total != e.size()) {
    stream->Cancel();
    return absl::AbortedError(
        absl::StrCat(e.path(), " changed while it was being sent; scan again"));
  }
  RETURN_IF_ERROR(stream->Flush());
  report->content_bytes += e.size();
  if (delta) report->delta_content_bytes += e.size();
  if (own_chain) RETURN_IF_ERROR(own_sig_file->Commit(pending ? digest : ""));
  PushMessage end;
  if (pending) {
    end.mutable_file_end()->set_sha256(digest);
    ++report->digests_at_end;
    Entry found = e;
    found.set_sha256(digest);
    report->found_digests.push_back(std::move(found));
    if (digest_sink_) digest_sink_(e.path(), now, digest);
  } else {
    end.mutable_file_end();
  }
  return stream->Write(end);
}

const HeldContent* Pusher::SettledPending(const std::string& path) const {
  if (pending_ == nullptr) return nullptr;
  auto it = pending_->find(path);
  if (it == pending_->end() || it->second.fd == nullptr ||
      !it->second.settled) {
    return nullptr;
  }
  return &it->second;
}

absl::StatusOr<std::string> Pusher::HashPending(const Entry& e) {
  // The scan's descriptor, or the live file, which must then be the one
  // whose stamp the scan kept, exactly (another file put at the path, even
  // of the same size and times, has another inode or change time).
  const HeldContent* held = nullptr;
  if (pending_ != nullptr) {
    if (auto it = pending_->find(e.path());
        it != pending_->end() && it->second.settled) {
      held = &it->second;
    }
  }
  if (held == nullptr) {
    return absl::AbortedError(
        absl::StrCat(e.path(),
                     ": the scan kept no stamp of it to hash it against; scan "
                     "again"));
  }
  UniqueFd own;
  int fd = -1;
  if (held->fd != nullptr) {
    fd = held->fd->get();
  } else {
    own.Reset(open(JoinPath(host_root_, e.path()).c_str(),
                   O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!own.valid()) {
      return absl::AbortedError(absl::StrCat(
          e.path(), " vanished or changed type since the scan; scan again"));
    }
    fd = own.get();
  }
  struct stat after;
  const StatStamp& stamp = *held->settled;
  if (StampNow(fd) != stamp) {
    return absl::AbortedError(
        absl::StrCat(e.path(), " changed since the scan; scan again"));
  }
  ASSIGN_OR_RETURN(FdDigest d, Sha256OfFd(fd, e.path()));
  if (fstat(fd, &after) != 0 || StampOf("", after) != stamp ||
      d.bytes != e.size()) {
    return absl::AbortedError(
        absl::StrCat(e.path(), " changed while it was hashed; scan again"));
  }
  if (digest_sink_) digest_sink_(e.path(), after, d.sha256);
  return d.sha256;
}

absl::StatusOr<Manifest> Pusher::DigestsFirst(
    const Manifest& manifest, const Manifest& replica,
    const gwmirror::v1::ReplicaState& state, PushReport* report) {
  std::vector<const Entry*> pending;
  for (const Entry& e : manifest.entries()) {
    if (e.type() == ENTRY_TYPE_FILE && e.sha256().empty()) {
      pending.push_back(&e);
    }
  }
  if (pending.empty()) return manifest;
  // Content the replica may hold already has a size one of its files, or
  // one of the versions pre-staged into its pool, has.
  absl::flat_hash_set<uint64_t> sizes =
      ledger_ != nullptr ? ledger_->Sizes() : absl::flat_hash_set<uint64_t>();
  for (const Entry& r : replica.entries()) {
    if (r.type() == ENTRY_TYPE_FILE) sizes.insert(r.size());
  }
  std::vector<Entry> hashed;
  for (const Entry* e : pending) {
    if (state.accepts_digest_at_end() && !sizes.contains(e->size()) &&
        SettledPending(e->path()) != nullptr) {
      continue;
    }
    ASSIGN_OR_RETURN(std::string digest, HashPending(*e));
    Entry h = *e;
    h.set_sha256(std::move(digest));
    hashed.push_back(std::move(h));
    ++report->digests_first;
  }
  if (hashed.empty()) return manifest;
  return Manifest::Edit(manifest, std::move(hashed), {});
}

absl::StatusOr<Manifest> Pusher::WithFoundDigests(const Manifest& manifest,
                                                  const PushReport& report) {
  Manifest m = report.found_digests.empty()
                   ? manifest
                   : Manifest::Edit(manifest, report.found_digests, {});
  for (const Entry& e : m.entries()) {
    if (e.type() == ENTRY_TYPE_FILE && e.sha256().empty()) {
      return absl::InternalError(absl::StrCat(
          e.path(), ": its digest is still pending after the push"));
    }
  }
  return m;
}

absl::Status Pusher::SendPrestaged(Stream* stream, const Entry& e) {
  WorkProgress::Push().Sent(e.size());
  PushMessage m;
  *m.mutable_file_header()->mutable_entry() = e;
  m.mutable_file_header()->set_encoding(gwmirror::v1::ENCODING_PRESTAGED);
  RETURN_IF_ERROR(stream->Write(m));
  PushMessage end;
  end.mutable_file_end();
  return stream->Write(end);
}

absl::Status Pusher::SendCopy(Stream* stream, const Entry& e,
                              const Entry& from) {
  WorkProgress::Push().Sent(e.size());
  PushMessage m;
  auto* h = m.mutable_file_header();
  *h->mutable_entry() = e;
  h->set_encoding(gwmirror::v1::ENCODING_COPY);
  h->set_basis_sha256(from.sha256());
  h->set_basis_path(from.path());
  RETURN_IF_ERROR(stream->Write(m));
  PushMessage end;
  end.mutable_file_end();
  return stream->Write(end);
}

absl::Status Pusher::SendChanged(Stream* stream, const Entry& e,
                                 const Entry* old,
                                 const CommittedContent* content,
                                 const gwmirror::v1::Envelope& envelope,
                                 PushReport* report) {
  if (content != nullptr) {
    if (const Entry* same = content->WithDigest(e.sha256())) {
      ++report->files_copied;
      return SendCopy(stream, e, *same);
    }
  }
  return SendFile(stream, e, DeltaBasis(e, old, content), false, envelope,
                  report);
}

std::unique_ptr<CommittedContent> Pusher::ContentFor(
    const gwmirror::v1::ReplicaState& state, const Manifest& replica,
    const std::vector<FilePair>& files) const {
  if (!state.accepts_copy()) return nullptr;
  return std::make_unique<CommittedContent>(replica, files);
}

absl::StatusOr<PrestageReport> Pusher::Prestage(
    const Manifest& scanned, const gwmirror::v1::Envelope& envelope,
    const std::function<bool()>& stop) {
  PushReport push;
  auto count = absl::MakeCleanup([&push] { CountSent(push); });
  ASSIGN_OR_RETURN(gwmirror::v1::ReplicaState state, ReplicaState(envelope));
  RETURN_IF_ERROR(MakeDirs(config_.state_dir() + "/source", 0700));
  ASSIGN_OR_RETURN(Manifest replica,
                   ReplicaManifest(state.manifest_digest(), envelope, &push));
  ASSIGN_OR_RETURN(const Manifest known,
                   DigestsFirst(scanned, replica, state, &push));
  // (file, the replica's entry at its path) for content to send.
  std::vector<FilePair> to_send;
  PrestageReport report;
  for (const auto& [e, old] : ChangedFiles(replica, known)) {
    ++report.pending_files;
    report.pending_bytes += e->size();
    if (ledger_ == nullptr || !ledger_->Has(e->sha256())) {
      to_send.emplace_back(e, old);
    }
  }
  if (to_send.empty()) return report;
  const auto content = ContentFor(state, replica, to_send);
  PrefetchSignatures(to_send, content.get(), envelope, &push);
  PushScope progress(to_send);
  Stream stream(channel_.get(), &push, config_.source().compression(),
                deadline_, budget_);
  PushMessage begin;
  *begin.mutable_begin()->mutable_envelope() = envelope;
  begin.mutable_begin()->set_base_checkpoint(state.committed_checkpoint());
  begin.mutable_begin()->set_prestage(true);
  absl::Status st = stream.Write(begin);
  std::vector<std::pair<std::string, uint64_t>> sent;  // Digest, size.
  std::set<std::string> seen;
  for (const auto& [e, old] : to_send) {
    if (!st.ok()) break;
    if (stop && stop()) {
      report.stopped = true;
      break;
    }
    // Same content twice (a pending digest is not known yet).
    if (!e->sha256().empty() && !seen.insert(e->sha256()).second) continue;
    st = SendChanged(&stream, *e, old, content.get(), envelope, &push);
    if (st.ok()) {
      // A digest found as it went: a later file of the same content is
      // not sent either.
      const std::string& sha = e->sha256().empty()
                                   ? push.found_digests.back().sha256()
                                   : e->sha256();
      seen.insert(sha);
      sent.emplace_back(sha, e->size());
      report.bytes_sent += e->size();
      WorkProgress::Push().FileDone();
    }
  }
  if (st.ok()) {
    PushMessage end;
    end.mutable_end();
    st = stream.Write(end);
  }
  if (!st.ok()) {
    st = stream.Abandon(st);
    report.wire_bytes = push.wire_bytes;
    return st;
  }
  absl::StatusOr<gwmirror::v1::PushResult> result = stream.Finish();
  report.wire_bytes = push.wire_bytes;
  RETURN_IF_ERROR(result.status());
  report.files_sent = sent.size();
  if (ledger_ != nullptr) {
    ledger_->Add(state.prestage_pool(), state.prestage_generation(), sent);
  }
  return report;
}

absl::Status Pusher::SendManifestDelta(Stream* stream, const Manifest& next,
                                       const Manifest& base) {
  return EncodeManifestDelta(base, next, 2000,
                             [stream](gwmirror::v1::ManifestPart part) {
                               PushMessage m;
                               *m.mutable_manifest_part() = std::move(part);
                               return stream->Write(m);
                             });
}

absl::StatusOr<PushReport> Pusher::Push(
    const Manifest& scanned, uint64_t checkpoint,
    const gwmirror::v1::Envelope& envelope) {
  PushReport report;
  auto count = absl::MakeCleanup([&report] { CountSent(report); });
  report.checkpoint = checkpoint;
  ASSIGN_OR_RETURN(gwmirror::v1::ReplicaState state, ReplicaState(envelope));
  report.base_checkpoint = state.committed_checkpoint();
  RETURN_IF_ERROR(MakeDirs(config_.state_dir() + "/source", 0700));
  ASSIGN_OR_RETURN(Manifest replica,
                   ReplicaManifest(state.manifest_digest(), envelope, &report));
  // What the scan left pending is hashed now where a decision needs it;
  // the rest as it is sent (`complete`, below).
  ASSIGN_OR_RETURN(const Manifest manifest,
                   DigestsFirst(scanned, replica, state, &report));
  if (max_delete_fraction_ >= 0) {
    RETURN_IF_ERROR(CheckMassDeletion(
        replica, manifest, RootPaths(config_.roots()), max_delete_fraction_));
  }
  if (anomaly_guard_) {
    RETURN_IF_ERROR(CheckAnomaly(
        replica, manifest, config_.source().anomaly_guard(),
        [this](const std::vector<const Entry*>& e) { return SampleHere(e); },
        [this, &envelope](const std::vector<const Entry*>& e) {
          return SampleAtReplica(e, envelope);
        }));
  }

  // What this push sends (and counts for progress in heartbeats).
  const auto changed = ChangedFiles(replica, manifest);
  std::unique_ptr<CommittedContent> content;
  {
    std::vector<FilePair> unstaged;
    for (const auto& [e, old] : changed) {
      if (ledger_ == nullptr || !ledger_->Has(e->sha256())) {
        unstaged.emplace_back(e, old);
      }
    }
    content = ContentFor(state, replica, unstaged);
    PrefetchSignatures(unstaged, content.get(), envelope, &report);
  }
  PushScope progress(changed);
  // `manifest` with the digests found as the files went (after the first
  // attempt).
  Manifest complete;
  std::set<std::string> resend;
  for (int attempt = 0; attempt < 2; ++attempt) {
    Stream stream(channel_.get(), &report, config_.source().compression(),
                  deadline_, budget_);
    PushMessage begin;
    *begin.mutable_begin()->mutable_envelope() = envelope;
    begin.mutable_begin()->set_checkpoint(checkpoint);
    begin.mutable_begin()->set_base_checkpoint(state.committed_checkpoint());
    begin.mutable_begin()->set_manifest_delta(true);
    RETURN_IF_ERROR(stream.Write(begin));
    absl::Status st;
    for (const auto& [listed, old] : changed) {
      // The replica's resend_whole names files of this push only.
      const bool force_whole = resend.count(listed->path()) > 0;
      if (attempt > 0 && !force_whole) continue;
      // Sent again, a file goes with the digest it was found to have.
      const Entry* e = attempt > 0 ? complete.Find(listed->path()) : listed;
      if (force_whole) {
        st = SendFile(&stream, *e, old, true, envelope, &report);
      } else if (ledger_ != nullptr && ledger_->Has(e->sha256())) {
        st = SendPrestaged(&stream, *e);
        ++report.files_prestaged;
      } else {
        st = SendChanged(&stream, *e, old, content.get(), envelope, &report);
      }
      if (!st.ok()) break;
      if (attempt == 0) WorkProgress::Push().FileDone();
    }
    if (st.ok() && attempt == 0) {
      absl::StatusOr<Manifest> found = WithFoundDigests(manifest, report);
      if (found.ok()) {
        complete = *std::move(found);
        report.manifest_digest = DigestBytes(complete.ComputeDigest());
      } else {
        st = found.status();
      }
    }
    if (st.ok()) st = SendManifestDelta(&stream, complete, replica);
    if (st.ok()) {
      PushMessage end;
      end.mutable_end()->set_manifest_digest(report.manifest_digest);
      st = stream.Write(end);
    }
    if (!st.ok()) return stream.Abandon(st);
    absl::StatusOr<gwmirror::v1::PushResult> result = stream.Finish();
    RETURN_IF_ERROR(result.status());
    if (result->resend_whole_size() == 0) {
      if (memo_ != nullptr) memo_->Remember(complete);
      // A cut that changed nothing leaves signatures and the file as they
      // are.
      if (report.manifest_digest == state.manifest_digest()) return report;
      // A running node remembers the manifest (memo_); its file and the
      // signature cache's pruning are then kept up once a minute, not at
      // every cut (a lost file costs one GetManifest, an unpruned
      // signature only disk).
      if (memo_ != nullptr && !memo_->TakeSaveTurn(kPushedSaveEvery)) {
        return report;
      }
      // Keep only signatures of what the replica will hold (only files that
      // do not travel whole have one).
      std::set<std::string> keep;
      for (const Entry& e : complete.entries()) {
        if (e.type() == ENTRY_TYPE_FILE && e.size() >= whole_below_) {
          keep.insert(e.sha256());
        }
      }
      sigs_.Prune(keep);
      RETURN_IF_ERROR(
          WriteManifestFile(config_.state_dir() + "/source/pushed.manifest",
                            checkpoint, complete, Durability::kCache));
      return report;
    }
    resend.clear();
    for (const std::string& p : result->resend_whole()) resend.insert(p);
    report.resent_whole += resend.size();
  }
  // Retryable at a higher level: the next cut scans and pushes again.
  return absl::AbortedError(
      "the replica kept asking for whole files after they were resent; the "
      "next cut pushes again");
}

absl::Status Pusher::Commit(uint64_t checkpoint, const std::string& digest,
                            const gwmirror::v1::Envelope& envelope) {
  grpc::ClientContext ctx;
  ctx.set_deadline(absl::ToChronoTime(Deadline(absl::Minutes(10))));
  gwmirror::v1::CommitRequest req;
  *req.mutable_envelope() = envelope;
  req.set_checkpoint(checkpoint);
  req.set_manifest_digest(digest);
  gwmirror::v1::CommitResult resp;
  return FromGrpc(stub_->Commit(&ctx, req, &resp));
}

}  // namespace gwmirror
