#include "node/replica/committed_log.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/fault.h"
#include "common/le.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

constexpr uint64_t kFoldAfterBytes = 1 << 20;
constexpr uint64_t kFoldAfterRecords = 1024;
// The journal starts with the digest of the snapshot it extends.
constexpr absl::string_view kHeaderStart("GWMJ\x24\0\0\0", 8);
constexpr uint64_t kHeaderBytes = 8 + 32;

}  // namespace

absl::Status CommittedLog::OpenJournal() {
  const std::string path = JournalPath();
  journal_ = UniqueFd(env_->Open(
      path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!journal_.valid()) return ErrnoStatus(errno, "open " + path);
  // Its directory entry is durable before a commit relies on it.
  return FsyncPath(dir_, env_);
}

absl::StatusOr<std::unique_ptr<CommittedLog>> CommittedLog::Open(
    const std::string& dir, Env* env, ManifestFile* out) {
  std::unique_ptr<CommittedLog> log(new CommittedLog(dir, env));
  ASSIGN_OR_RETURN(*out, ReadManifestFile(log->SnapshotPath(), env));
  log->snapshot_bytes_ = out->manifest.EncodedSize();
  auto journal = ReadFileToString(log->JournalPath(), env);
  if (!journal.ok() && !absl::IsNotFound(journal.status())) {
    return journal.status();
  }
  RETURN_IF_ERROR(log->OpenJournal());
  const std::string j = journal.ok() ? *std::move(journal) : "";
  const std::string where = log->JournalPath();
  const std::string snapshot_digest =
      DigestBytes(out->manifest.ComputeDigest());
  // A journal extends the snapshot its header names. Another one is the
  // journal a fold had written into that snapshot before power was lost
  // (it would give the snapshot again); a torn header, one that a fold was
  // writing. Either way the snapshot is the whole state.
  if (j.size() < kHeaderBytes || j.substr(0, 8) != kHeaderStart ||
      j.substr(8, 32) != snapshot_digest) {
    if (!j.empty()) {
      Logf(LogLevel::kInfo, "replica",
           "%s: extends an earlier snapshot; the snapshot holds it all", where);
    }
    RETURN_IF_ERROR(log->Reset(snapshot_digest));
    return log;
  }
  uint64_t at = kHeaderBytes;
  std::string last_digest;
  while (at < j.size()) {
    uint32_t len = 0;
    LeReader(absl::string_view(j).substr(at)).Get(&len);
    absl::StatusOr<ManifestEdit> edit =
        len > 0 && at + 4 + len <= j.size()
            ? DecodeManifestEdit(absl::string_view(j).substr(at + 4, len))
            : absl::DataLossError("torn");
    if (!edit.ok()) {
      // Only the last append can be torn: its commit never finished (the
      // redo intent finishes it again).
      if (at + 4 + len >= j.size() ||
          j.find_first_not_of('\0', at) == std::string::npos) {
        Logf(LogLevel::kWarning, "replica",
             "%s: cutting a torn last record (%d bytes at %d)", where,
             j.size() - at, at);
        if (env->Ftruncate(log->journal_.get(), at) != 0 ||
            env->Fdatasync(log->journal_.get()) != 0) {
          return ErrnoStatus(errno, "truncate " + where);
        }
        break;
      }
      return absl::DataLossError(absl::StrCat(where, ": record at byte ", at,
                                              ": ", edit.status().message()));
    }
    absl::StatusOr<Manifest> next = ApplyManifestEdit(out->manifest, *edit);
    if (!next.ok()) {
      return absl::DataLossError(
          absl::StrCat(where, ": ", next.status().message()));
    }
    at += 4 + len;
    ++log->journal_records_;
    out->manifest = *std::move(next);
    out->checkpoint = edit->checkpoint;
    last_digest = edit->digest;
  }
  log->journal_bytes_ = at;
  if (!last_digest.empty() &&
      DigestBytes(out->manifest.ComputeDigest()) != last_digest) {
    return absl::DataLossError(
        absl::StrCat(where, ": replayed onto ", log->SnapshotPath(),
                     " it does not give checkpoint ", out->checkpoint,
                     "'s manifest digest"));
  }
  return log;
}

absl::StatusOr<std::unique_ptr<CommittedLog>> CommittedLog::Create(
    const std::string& dir, Env* env, uint64_t n, const Manifest& m) {
  std::unique_ptr<CommittedLog> log(new CommittedLog(dir, env));
  RETURN_IF_ERROR(log->OpenJournal());
  RETURN_IF_ERROR(log->Snapshot(n, m));
  return log;
}

absl::Status CommittedLog::Snapshot(uint64_t n, const Manifest& m) {
  RETURN_IF_ERROR(
      WriteManifestFile(SnapshotPath(), n, m, Durability::kSynced, env_));
  snapshot_bytes_ = m.EncodedSize();
  RETURN_IF_ERROR(FaultPoint("commit:fold"));
  return Reset(DigestBytes(m.ComputeDigest()));
}

absl::Status CommittedLog::Reset(const std::string& snapshot_digest) {
  std::string header(kHeaderStart.data(), kHeaderStart.size());
  header += snapshot_digest;
  if (env_->Ftruncate(journal_.get(), 0) != 0 ||
      env_->PWrite(journal_.get(), header.data(), header.size(), 0) !=
          static_cast<ssize_t>(header.size()) ||
      env_->Fdatasync(journal_.get()) != 0) {
    return ErrnoStatus(errno, "start " + JournalPath());
  }
  journal_bytes_ = header.size();
  journal_records_ = 0;
  return absl::OkStatus();
}

absl::Status CommittedLog::Append(const ManifestEdit& edit,
                                  const Manifest& result) {
  const std::string body = EncodeManifestEdit(edit);
  std::string frame;
  frame.reserve(4 + body.size());
  PutLe<uint32_t>(&frame, body.size());
  frame += body;
  size_t done = 0;
  while (done < frame.size()) {
    ssize_t w = env_->PWrite(journal_.get(), frame.data() + done,
                             frame.size() - done, journal_bytes_ + done);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      const int err = w < 0 ? errno : ENOSPC;
      // Nothing half-appended stays for the next record to follow.
      (void)!env_->Ftruncate(journal_.get(), journal_bytes_);
      return ErrnoStatus(err, "append to " + JournalPath());
    }
    done += w;
  }
  if (env_->Fdatasync(journal_.get()) != 0) {
    return ErrnoStatus(errno, "sync " + JournalPath());
  }
  journal_bytes_ += frame.size();
  ++journal_records_;
  if (journal_records_ >= kFoldAfterRecords ||
      journal_bytes_ > std::max(kFoldAfterBytes, snapshot_bytes_ / 2)) {
    // The commit stands on its record; a fold that fails leaves a longer
    // journal (or one with records the new snapshot holds), both readable.
    if (absl::Status st = Snapshot(edit.checkpoint, result); !st.ok()) {
      Logf(LogLevel::kWarning, "replica",
           "checkpoint=%d journal not folded: %s", edit.checkpoint,
           st.message());
    }
  }
  return absl::OkStatus();
}

}  // namespace gwmirror
