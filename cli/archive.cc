// gwmirror export and import: one slot's retained checkpoint as a portable
// tar archive (what the vendor's manual procedure carries off-site), and
// its restore onto a cold machine with every digest verified.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <iostream>
#include <set>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "cli/commands.h"
#include "common/config.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/path.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/tar.h"
#include "common/tls.h"
#include "common/zstd_stream.h"
#include "gwmirror/v1/replica.grpc.pb.h"
#include "node/replica/restore.h"
#include "node/replica/tree_writer.h"

namespace gwmirror {
namespace {

using gwmirror::v1::ENTRY_TYPE_DIRECTORY;
using gwmirror::v1::ENTRY_TYPE_FILE;
using gwmirror::v1::ENTRY_TYPE_SYMLINK;

constexpr unsigned char kZstdMagic[4] = {0x28, 0xb5, 0x2f, 0xfd};

}  // namespace

absl::Status ExportCommand(const Args& a) {
  ASSIGN_OR_RETURN(std::string slot, a.Require("slot"));
  ASSIGN_OR_RETURN(std::string out_path, a.Require("out"));
  ASSIGN_OR_RETURN(uint64_t checkpoint, a.UintOr("checkpoint", 0));
  ASSIGN_OR_RETURN(auto config, LoadCliConfig(a));
  ASSIGN_OR_RETURN(auto control, DialControl(config));
  gwmirror::v1::ClusterStatus status;
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Seconds(20)));
    RETURN_IF_ERROR(FromGrpc(
        control->Status(&ctx, gwmirror::v1::StatusRequest(), &status)));
  }
  const gwmirror::v1::NodeStatus* replica = nullptr;
  for (const auto& s : status.slots()) {
    if (s.name() == slot) replica = &s.replica();
  }
  if (replica == nullptr) {
    return absl::NotFoundError(absl::StrCat("no slot \"", slot, "\""));
  }
  if (replica->address().empty()) {
    return absl::UnavailableError(
        absl::StrCat("slot ", slot, "'s standby node has not registered"));
  }
  ASSIGN_OR_RETURN(auto ch, DialMutualTls(config.tls(), replica->address(),
                                          replica->identity()));
  auto stub = gwmirror::v1::Replica::NewStub(ch);
  gwmirror::v1::ExportRequest req;
  req.mutable_envelope()->set_epoch(status.epoch());
  *req.mutable_envelope()->mutable_grant() = status.epoch_grant();
  req.set_checkpoint(checkpoint);
  req.set_slot(slot);
  // Written beside the target and renamed over it once complete.
  const std::string part = out_path + ".part";
  UniqueFd fd(
      open(part.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd.valid()) return ErrnoStatus(errno, absl::StrCat("create ", part));
  auto drop = absl::MakeCleanup([&] { unlink(part.c_str()); });
  std::unique_ptr<ZstdWriter> zstd;
  if (absl::EndsWith(out_path, ".zst")) {
    zstd = std::make_unique<ZstdWriter>(fd.get(), 3);
  }
  grpc::ClientContext ctx;
  // Generous (a large history over a slow link), never unbounded.
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Hours(12)));
  auto reader = stub->Export(&ctx, req);
  gwmirror::v1::ExportChunk chunk;
  uint64_t bytes = 0;
  absl::Status st;
  {
    Progress progress(absl::StrCat("export of ", slot));
    const absl::Time start = absl::Now();
    while (st.ok() && reader->Read(&chunk)) {
      bytes += chunk.data().size();
      st = zstd ? zstd->Write(chunk.data()) : WriteAll(fd.get(), chunk.data());
      const double s = absl::ToDoubleSeconds(absl::Now() - start);
      progress.Set(absl::StrFormat("%.1f MB of tar received, %.1f MB/s",
                                   bytes / 1e6, s > 0 ? bytes / 1e6 / s : 0));
    }
  }
  if (!st.ok()) ctx.TryCancel();
  absl::Status rpc = FromGrpc(reader->Finish());
  RETURN_IF_ERROR(st);
  RETURN_IF_ERROR(rpc);
  if (zstd) RETURN_IF_ERROR(zstd->Finish());
  if (fsync(fd.get()) != 0) return ErrnoStatus(errno, "fsync " + part);
  if (rename(part.c_str(), out_path.c_str()) != 0) {
    return ErrnoStatus(errno, absl::StrCat("rename to ", out_path));
  }
  std::move(drop).Cancel();
  std::cout << absl::StrFormat(
      "exported slot %s (checkpoint %s) from %s: %d bytes of tar to %s\n", slot,
      checkpoint ? absl::StrCat(checkpoint) : "last committed",
      replica->identity(), bytes, out_path);
  return absl::OkStatus();
}

absl::Status ImportCommand(const Args& a) {
  ASSIGN_OR_RETURN(std::string path, a.Require("file"));
  ASSIGN_OR_RETURN(std::string host_root, a.Require("host-root"));
  UniqueFd in(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.valid()) return ErrnoStatus(errno, absl::StrCat("open ", path));
  unsigned char magic[4] = {0};
  ssize_t got = pread(in.get(), magic, sizeof magic, 0);
  std::unique_ptr<ZstdReader> zstd;
  if (got == 4 && memcmp(magic, kZstdMagic, 4) == 0) {
    zstd = std::make_unique<ZstdReader>(in.get());
  }
  struct stat in_stat;
  const uint64_t in_size = fstat(in.get(), &in_stat) == 0
                               ? static_cast<uint64_t>(in_stat.st_size)
                               : 0;
  Progress progress(absl::StrCat("import of ", path));
  // How far into the archive file (compressed or not) the reading is.
  auto read_share = [&] {
    const off_t at = lseek(in.get(), 0, SEEK_CUR);
    return in_size > 0 && at > 0 ? 100.0 * at / in_size : 0.0;
  };
  TarReader tar([&](char* buf, size_t n) -> absl::StatusOr<size_t> {
    if (zstd) return zstd->Read(buf, n);
    ssize_t k;
    do {
      k = read(in.get(), buf, n);
    } while (k < 0 && errno == EINTR);
    if (k < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
    return static_cast<size_t>(k);
  });
  RETURN_IF_ERROR(MakeDirs(host_root, 0755));
  // Everything is verified in a staging directory inside the host root
  // (the same file system) before anything is put in place.
  const std::string staging = JoinPath(host_root, ".gwmirror-import");
  if (mkdir(staging.c_str(), 0700) != 0) {
    return errno == EEXIST
               ? absl::FailedPreconditionError(absl::StrCat(
                     staging,
                     " exists: an import was interrupted there; remove it "
                     "and import again"))
               : ErrnoStatus(errno, absl::StrCat("mkdir ", staging));
  }
  auto cleanup = absl::MakeCleanup([&] { (void)RemoveTree(staging); });
  TarMember m;
  ASSIGN_OR_RETURN(bool more, tar.Next(&m));
  ASSIGN_OR_RETURN(ExportInfo info, ParseExportComment(tar.comment()));
  const Manifest& manifest = info.manifest;
  std::set<std::string> seen;
  uint64_t bytes = 0;
  // One member: checked against the manifest; file content staged.
  auto take = [&]() -> absl::Status {
    const Entry* e = manifest.Find(m.path);
    if (e == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "archive member \"", m.path, "\" is not in its manifest"));
    }
    if (!seen.insert(m.path).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("archive member \"", m.path, "\" appears twice"));
    }
    const bool type_ok =
        (m.type == TarMember::kFile && e->type() == ENTRY_TYPE_FILE) ||
        (m.type == TarMember::kDirectory &&
         e->type() == ENTRY_TYPE_DIRECTORY) ||
        (m.type == TarMember::kSymlink && e->type() == ENTRY_TYPE_SYMLINK &&
         m.link_target == e->link_target());
    if (!type_ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "archive member \"", m.path, "\" differs from its manifest entry"));
    }
    if (m.type != TarMember::kFile) return absl::OkStatus();
    const std::string staged = JoinPath(staging, HexOf(e->sha256()));
    UniqueFd out(open(staged.c_str(),
                      O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                      0600));
    if (!out.valid()) return ErrnoStatus(errno, "create " + staged);
    Sha256 hash;
    uint64_t size = 0;
    RETURN_IF_ERROR(tar.ReadData([&](absl::string_view piece) {
      hash.Update(piece);
      size += piece.size();
      return WriteAll(out.get(), piece);
    }));
    if (size != e->size() || DigestBytes(hash.Finish()) != e->sha256()) {
      return absl::DataLossError(
          absl::StrCat("archive member \"", m.path,
                       "\" does not match its manifest digest: the archive "
                       "is damaged; nothing was restored"));
    }
    if (fsync(out.get()) != 0) return ErrnoStatus(errno, "fsync " + staged);
    bytes += size;
    progress.Set(absl::StrFormat(
        "%.0f %% read; %d of %d entries, %.1f MB verified", read_share(),
        seen.size(), manifest.size(), bytes / 1e6));
    return absl::OkStatus();
  };
  while (more) {
    RETURN_IF_ERROR(take());
    ASSIGN_OR_RETURN(more, tar.Next(&m));
  }
  for (const Entry& e : manifest.entries()) {
    if (!seen.count(e.path())) {
      return absl::DataLossError(
          absl::StrCat("archive lacks \"", e.path(),
                       "\" that its manifest lists: it is "
                       "truncated or damaged; nothing was restored"));
    }
  }
  // Every byte verified: put the tree in place, never through a symlink.
  // The mirrored roots: parents the manifest does not list itself.
  std::set<std::string> tops;
  for (const Entry& e : manifest.entries()) {
    size_t slash = e.path().rfind('/');
    std::string parent =
        slash == std::string::npos ? "" : e.path().substr(0, slash);
    if (!parent.empty() && manifest.Find(parent) == nullptr)
      tops.insert(parent);
  }
  progress.Set(absl::StrFormat("every byte verified; placing %d entries",
                               manifest.size()));
  ASSIGN_OR_RETURN(TreeWriter writer,
                   TreeWriter::Open(host_root, {tops.begin(), tops.end()}));
  std::set<std::string> linked;
  for (const Entry& e : manifest.entries()) {
    if (e.type() == ENTRY_TYPE_DIRECTORY) {
      RETURN_IF_ERROR(writer.EnsureDirectory(e.path()));
    } else if (e.type() == ENTRY_TYPE_SYMLINK) {
      RETURN_IF_ERROR(writer.PlaceSymlink(e.path(), e.link_target()));
      RETURN_IF_ERROR(writer.ApplyMetadata(e));
    } else if (e.type() == ENTRY_TYPE_FILE) {
      // The first path of a content takes the staged inode, the others
      // copies.
      RETURN_IF_ERROR(writer.PlaceFile(e.path(),
                                       JoinPath(staging, HexOf(e.sha256())),
                                       linked.insert(e.sha256()).second));
      RETURN_IF_ERROR(writer.ApplyMetadata(e));
    }
  }
  for (auto it = manifest.entries().rbegin(); it != manifest.entries().rend();
       ++it) {
    if (it->type() == ENTRY_TYPE_DIRECTORY) {
      RETURN_IF_ERROR(writer.ApplyMetadata(*it));
    }
  }
  RETURN_IF_ERROR(writer.SyncAll());
  std::cout << absl::StrFormat(
      "imported slot %s checkpoint %d: %d entries, %d file bytes verified "
      "into %s\n",
      info.slot, info.checkpoint, manifest.size(), bytes, host_root);
  return absl::OkStatus();
}

}  // namespace gwmirror
