#include "common/audit.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/fd.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

std::string LineDigest(absl::string_view line) {
  return HexOf(DigestBytes(Sha256Of(line)));
}

std::string OneLine(const gwmirror::v1::AuditRecord& r) {
  std::string out;
  google::protobuf::util::JsonPrintOptions opts;
  opts.preserve_proto_field_names = true;
  (void)google::protobuf::util::MessageToJsonString(r, &out, opts);
  return out;
}

absl::StatusOr<std::string> ReadOrEmpty(const std::string& path) {
  auto text = ReadFileToString(path);
  if (absl::IsNotFound(text.status())) return std::string();
  return text;
}

}  // namespace

absl::StatusOr<std::unique_ptr<AuditLog>> AuditLog::Open(std::string path) {
  std::unique_ptr<AuditLog> log(new AuditLog(std::move(path)));
  ASSIGN_OR_RETURN(std::string text, ReadOrEmpty(log->path_));
  // A torn last line (a crash mid-append) is left as it is: the chain
  // continues from the last whole line, and Read names the torn one.
  absl::string_view body(text);
  if (!body.empty() && body.back() != '\n') {
    size_t nl = body.rfind('\n');
    body = nl == absl::string_view::npos ? "" : body.substr(0, nl + 1);
  }
  if (!body.empty()) {
    body.remove_suffix(1);
    size_t nl = body.rfind('\n');
    log->last_digest_ =
        LineDigest(nl == absl::string_view::npos ? body : body.substr(nl + 1));
  }
  auto sent = ReadOrEmpty(log->path_ + ".sent");
  if (sent.ok()) {
    (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(*sent), &log->sent_);
  }
  return log;
}

absl::Status AuditLog::Append(gwmirror::v1::AuditRecord r) {
  absl::MutexLock l(&mu_);
  r.set_prev(last_digest_);
  std::string line = OneLine(r);
  UniqueFd fd(
      open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path_));
  RETURN_IF_ERROR(WriteAll(fd.get(), line + "\n"));
  if (fsync(fd.get()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("fsync ", path_));
  }
  last_digest_ = LineDigest(line);
  return absl::OkStatus();
}

absl::StatusOr<gwmirror::v1::AuditList> AuditLog::Read(size_t limit) const {
  std::string text;
  {
    absl::MutexLock l(&mu_);
    ASSIGN_OR_RETURN(text, ReadOrEmpty(path_));
  }
  std::vector<absl::string_view> lines =
      absl::StrSplit(text, '\n', absl::SkipEmpty());
  gwmirror::v1::AuditList out;
  out.set_chain_intact(true);
  std::vector<gwmirror::v1::AuditRecord> records;
  std::string prev;
  for (size_t i = 0; i < lines.size(); ++i) {
    gwmirror::v1::AuditRecord r;
    google::protobuf::util::JsonParseOptions opts;
    auto st = google::protobuf::util::JsonStringToMessage(std::string(lines[i]),
                                                          &r, opts);
    if (!st.ok() || r.prev() != prev) {
      if (out.chain_intact()) {
        out.set_chain_intact(false);
        out.set_chain_problem(absl::StrCat(
            path_, " line ", i + 1,
            st.ok() ? " does not follow the line before it (edited, removed "
                      "or inserted lines)"
                    : " is not a record (damaged or torn)"));
      }
    }
    if (st.ok()) records.push_back(std::move(r));
    prev = LineDigest(lines[i]);
  }
  const size_t n = limit == 0 ? 100 : limit;
  for (size_t i = records.size(); i > 0 && out.records_size() < int(n); --i) {
    *out.add_records() = std::move(records[i - 1]);
  }
  return out;
}

absl::StatusOr<std::pair<std::vector<gwmirror::v1::AuditRecord>, uint64_t>>
AuditLog::Unsent(size_t max) const {
  std::string text;
  uint64_t from = 0;
  {
    absl::MutexLock l(&mu_);
    ASSIGN_OR_RETURN(text, ReadOrEmpty(path_));
    from = sent_;
  }
  std::vector<gwmirror::v1::AuditRecord> out;
  if (from > text.size()) from = 0;  // The log was replaced: send it all.
  uint64_t at = from;
  while (out.size() < max) {
    size_t nl = text.find('\n', at);
    if (nl == std::string::npos) break;  // Only whole lines.
    gwmirror::v1::AuditRecord r;
    if (google::protobuf::util::JsonStringToMessage(text.substr(at, nl - at),
                                                    &r, {})
            .ok()) {
      out.push_back(std::move(r));
    }
    at = nl + 1;
  }
  return std::make_pair(std::move(out), at);
}

absl::Status AuditLog::MarkSent(uint64_t offset) {
  absl::MutexLock l(&mu_);
  if (offset <= sent_) return absl::OkStatus();
  // A lost mark only sends some records twice.
  RETURN_IF_ERROR(WriteFileAtomic(path_ + ".sent", absl::StrCat(offset, "\n"),
                                  0600, Durability::kCache));
  sent_ = offset;
  return absl::OkStatus();
}

}  // namespace gwmirror
