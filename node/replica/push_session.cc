#include "node/replica/push_session.h"

#include <fcntl.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/fault.h"
#include "common/log.h"
#include "common/path.h"
#include "common/status_macros.h"

namespace gwmirror {

using gwmirror::v1::ENTRY_TYPE_FILE;

namespace {
// A large file's bytes go to writeback every this many bytes as they
// arrive, so the disk writes while the rest is received and the sync at
// the end finds little to do (a 1 GiB file left whole to its end waited
// 0.45 s there for the writeback to be queued).
constexpr uint64_t kWritebackEvery = 8 << 20;
}  // namespace

PushSession::PushSession(Staging* staging, const TreeWriter* tree, Env* env,
                         Params params, std::function<void()> on_end)
    : staging_(staging),
      tree_(tree),
      env_(env),
      params_(std::move(params)),
      on_end_(std::move(on_end)),
      mirror_set_(params_.roots),
      manifest_(params_.manifest_delta, params_.max_manifest_bytes,
                [this](const Entry& e) {
                  return mirror_set_.Admit(e.path(), e.type());
                }) {}

PushSession::~PushSession() {
  DropPartial();
  if (on_end_) on_end_();
}

void PushSession::DropPartial() {
  if (!part_path_.empty()) env_->UnlinkAt(AT_FDCWD, part_path_.c_str(), 0);
  part_path_.clear();
  direct_writer_.reset();
  patcher_.reset();
  basis_reader_.reset();
  part_fd_.Reset();
  basis_fd_.Reset();
  hash_.reset();
  header_.reset();
  from_pool_ = false;
  copied_ = false;
}

std::string PushSession::ObjectPath(absl::string_view sha) const {
  return params_.prestage ? staging_->PoolPath(sha)
                          : staging_->ObjectPath(params_.checkpoint, sha);
}

absl::Status PushSession::BeginFile(const gwmirror::v1::FileHeader& h) {
  if (header_) {
    return absl::InvalidArgumentError(
        absl::StrCat("file header for \"", h.entry().path(),
                     "\" before the end of \"", header_->entry().path(), "\""));
  }
  if (h.digest_at_end()) {
    // Its digest comes with FileEnd, and is checked there.
    if (!h.entry().sha256().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("file header for \"", h.entry().path(),
                       "\" says its digest follows but carries one"));
    }
    if (h.encoding() != gwmirror::v1::ENCODING_WHOLE &&
        h.encoding() != gwmirror::v1::ENCODING_DELTA) {
      return absl::InvalidArgumentError(absl::StrCat(
          "file header for \"", h.entry().path(),
          "\": only a whole file or a delta may send its digest at the end"));
    }
    RETURN_IF_ERROR(ValidateEntry(h.entry(), Digests::kMayBePending));
  } else {
    RETURN_IF_ERROR(ValidateEntry(h.entry()));
  }
  if (h.entry().type() != ENTRY_TYPE_FILE) {
    return absl::InvalidArgumentError(absl::StrCat(
        "file header for \"", h.entry().path(), "\" is not a regular file"));
  }
  RETURN_IF_ERROR(mirror_set_.Admit(h.entry().path(), ENTRY_TYPE_FILE));
  if (h.encoding() == gwmirror::v1::ENCODING_PRESTAGED) {
    if (params_.prestage) {
      return absl::InvalidArgumentError(absl::StrCat(
          "file \"", h.entry().path(),
          "\": a pre-stage push cannot refer to the pre-stage pool"));
    }
    ASSIGN_OR_RETURN(bool taken,
                     staging_->TakeFromPool(params_.checkpoint, h.entry()));
    if (taken) {
      ++files_;
      bytes_ += h.entry().size();
    }
    header_ = h;
    from_pool_ = true;
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(staging_->CheckSpace(h.entry(), params_.prestage));
  const bool copy = h.encoding() == gwmirror::v1::ENCODING_COPY;
  if (h.encoding() == gwmirror::v1::ENCODING_DELTA || copy) {
    const std::string& basis_path =
        h.basis_path().empty() ? h.entry().path() : h.basis_path();
    if (!h.basis_path().empty())
      RETURN_IF_ERROR(ValidateRelativePath(basis_path));
    if (copy &&
        (h.basis_path().empty() || h.basis_sha256() != h.entry().sha256())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "copy for \"", h.entry().path(),
          "\" must name another committed path with the entry's own digest"));
    }
    const Entry* basis = params_.committed->Find(basis_path);
    if (basis == nullptr || basis->type() != ENTRY_TYPE_FILE ||
        basis->sha256() != h.basis_sha256()) {
      return absl::FailedPreconditionError(absl::StrCat(
          copy ? "copy" : "delta", " for \"", h.entry().path(), "\" names ",
          h.basis_path().empty() ? "a basis"
                                 : absl::StrCat("\"", basis_path, "\""),
          " the replica's committed checkpoint does not hold"));
    }
    ASSIGN_OR_RETURN(basis_fd_, tree_->OpenFileForRead(basis_path));
    if (Direct(basis->size())) {
      basis_reader_ = std::make_unique<DirectReader>(env_, basis_fd_.get());
    }
    if (!copy) {
      patcher_ =
          basis_reader_ != nullptr
              ? std::make_unique<Patcher>(basis_reader_.get(), h.entry().size())
              : std::make_unique<Patcher>(basis_fd_.get(), h.entry().size());
    }
  } else if (h.encoding() != gwmirror::v1::ENCODING_WHOLE) {
    return absl::InvalidArgumentError(absl::StrCat(
        "file \"", h.entry().path(), "\": unknown encoding ", h.encoding()));
  }
  RETURN_IF_ERROR(FaultPoint("stage:open"));
  // One session at a time writes a staging directory, one file at a time:
  // a file without its digest yet has the one fixed part name.
  part_path_ = h.digest_at_end() ? ObjectPath("") + "digest-at-end.part"
                                 : ObjectPath(h.entry().sha256()) + ".part";
  part_fd_.Reset(
      env_->Open(part_path_.c_str(),
                 O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!part_fd_.valid()) {
    absl::Status st = ErrnoStatus(errno, "create staging file");
    part_path_.clear();
    return st;
  }
  if (Direct(h.entry().size())) {
    direct_writer_ = DirectWriter::Start(env_, part_fd_.get());
  }
  header_ = h;
  hash_ = std::make_unique<Sha256>();
  written_ = 0;
  written_back_ = 0;
  if (copy) {
    copied_ = true;
    absl::Status st = CopyBasis();
    if (!st.ok()) {
      DropPartial();
      return absl::Status(st.code(),
                          absl::StrCat("copying \"", h.basis_path(), "\" to \"",
                                       h.entry().path(), "\": ", st.message()));
    }
  }
  return absl::OkStatus();
}

// The committed file into the part file, through Write (hashed, bounded by
// the entry's size: a basis that grew is a mismatch found at EndFile).
absl::Status PushSession::CopyBasis() {
  std::string buf;
  // The next piece at `at`: from the direct reader's window, or read.
  auto next = [&](uint64_t at) -> absl::StatusOr<absl::string_view> {
    if (basis_reader_ != nullptr) {
      return basis_reader_->ReadAt(at, kDirectPiece);
    }
    buf.resize(1 << 20);
    for (;;) {
      ssize_t n = pread(basis_fd_.get(), buf.data(), buf.size(), at);
      if (n >= 0) return absl::string_view(buf.data(), n);
      if (errno != EINTR) return ErrnoStatus(errno, "read the committed copy");
    }
  };
  for (uint64_t at = 0;;) {
    ASSIGN_OR_RETURN(absl::string_view piece, next(at));
    if (piece.empty()) return absl::OkStatus();
    at += piece.size();
    if (written_ + piece.size() > header_->entry().size()) {
      written_ += piece.size();  // Over the size: EndFile asks for all.
      return absl::OkStatus();
    }
    RETURN_IF_ERROR(Write(piece));
  }
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
  if (direct_writer_ != nullptr) return direct_writer_->Append(out);
  RETURN_IF_ERROR(WriteAll(part_fd_.get(), out, env_));
  if (written_ - written_back_ >= kWritebackEvery) {
    RETURN_IF_ERROR(StartWriteback());
  }
  return absl::OkStatus();
}

// Starts writeback of the part file's bytes written since the last call.
// Advisory: only an I/O error matters (the syncfs at PushEnd would hit it
// anyway).
absl::Status PushSession::StartWriteback() {
  const uint64_t from = std::exchange(written_back_, written_);
  if (sync_file_range(part_fd_.get(), from, written_ - from,
                      SYNC_FILE_RANGE_WRITE) != 0 &&
      errno == EIO) {
    return ErrnoStatus(errno,
                       absl::StrCat("write back ", header_->entry().path()));
  }
  return absl::OkStatus();
}

absl::Status PushSession::FileData(absl::string_view raw) {
  if (!header_) {
    return absl::InvalidArgumentError("file chunk outside of a file");
  }
  if (from_pool_ || copied_) {
    return absl::InvalidArgumentError(
        absl::StrCat("file \"", header_->entry().path(), "\" is ",
                     from_pool_ ? "pre-staged" : "a copy",
                     ": no data may follow its header"));
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

absl::Status PushSession::CheckEnd(const gwmirror::v1::FileEnd& end) const {
  absl::string_view why;
  if (!header_->digest_at_end()) {
    if (!end.sha256().empty()) why = "a digest its header did not announce";
  } else if (end.sha256().empty()) {
    why = "no digest where its header said one follows";
  } else if (end.sha256().size() != 32) {
    why = "a digest that is not 32 bytes";
  }
  if (why.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("file end of \"", header_->entry().path(), "\": ", why));
}

absl::Status PushSession::EndFile(const gwmirror::v1::FileEnd& end) {
  if (!header_) return absl::InvalidArgumentError("file end outside of a file");
  if (absl::Status st = CheckEnd(end); !st.ok()) {
    DropPartial();
    return st;
  }
  if (from_pool_) {
    from_pool_ = false;
    header_.reset();
    return absl::OkStatus();
  }
  // DropPartial() resets header_: keep our own copy of the entry, with its
  // digest when it came last.
  Entry e = header_->entry();
  if (header_->digest_at_end()) e.set_sha256(end.sha256());
  const std::string& path = e.path();
  // A delta or a copy: the replica's own bytes went into it.
  bool delta = patcher_ != nullptr || copied_;
  absl::Status st;
  if (patcher_ != nullptr) {
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
      staging_->AskWhole(path);
      return absl::OkStatus();
    }
    return absl::DataLossError(detail);
  }
  RETURN_IF_ERROR(FaultPoint("stage:close"));
  // The rest to writeback now so the one syncfs at PushEnd finds little
  // to do (a direct writer's tail: its blocks are on the disk).
  if (absl::Status st = direct_writer_ != nullptr ? direct_writer_->Finish()
                                                  : StartWriteback();
      !st.ok()) {
    DropPartial();
    return absl::Status(st.code(),
                        absl::StrCat("staging \"", path, "\": ", st.message()));
  }
  const bool wrote_direct =
      direct_writer_ != nullptr && direct_writer_->wrote_direct();
  const bool read_direct = basis_reader_ != nullptr && basis_reader_->direct();
  std::string final_path = ObjectPath(e.sha256());
  if (env_->RenameAt(AT_FDCWD, part_path_.c_str(), AT_FDCWD,
                     final_path.c_str()) != 0) {
    absl::Status rs = ErrnoStatus(errno, "rename staging file");
    DropPartial();
    return rs;
  }
  part_path_.clear();
  DropPartial();
  staging_->Staged(e, params_.prestage);
  ++files_;
  bytes_ += e.size();
  files_written_direct_ += wrote_direct;
  bases_read_direct_ += read_direct;
  return absl::OkStatus();
}

absl::Status PushSession::AddManifest(const gwmirror::v1::ManifestPart& part) {
  if (params_.prestage) {
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
  gwmirror::v1::PushResult result;
  result.set_files_received(files_);
  result.set_bytes_received(bytes_);
  if (params_.prestage) {
    if (!digest.empty()) {
      return absl::InvalidArgumentError(
          "a pre-stage push ends without a manifest digest");
    }
    return result;
  }
  ASSIGN_OR_RETURN(
      Manifest m,
      manifest_.Finish(params_.manifest_delta ? *params_.committed : Manifest(),
                       digest));
  std::string computed = DigestBytes(m.ComputeDigest());
  RETURN_IF_ERROR(m.CheckStructure(RootPaths(params_.roots)));
  result.set_checkpoint(params_.checkpoint);
  result.set_manifest_digest(computed);
  ASSIGN_OR_RETURN(std::vector<std::string> whole,
                   staging_->Finish(params_.checkpoint, std::move(m),
                                    std::move(computed), *params_.committed));
  for (std::string& path : whole) result.add_resend_whole(std::move(path));
  return result;
}

}  // namespace gwmirror
