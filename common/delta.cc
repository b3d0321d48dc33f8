#include "common/delta.h"

#include <openssl/rand.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <mutex>
#include <random>

#include "absl/strings/str_cat.h"
#include "common/block_delta.h"
#include "common/direct_io.h"
#include "common/fd.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

constexpr size_t kOutBuf = 256 * 1024;

void PutBe32(uint32_t v, std::string* out) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out->append(b, 4);
}

void QuietLibrsync() {
  static std::once_flag once;
  // librsync reports errors on stderr; we report them as statuses instead.
  std::call_once(once, [] { rs_trace_set_level(RS_LOG_EMERG); });
}

}  // namespace

RsStream::RsStream(RsJobPtr job, std::string what, bool keep_trailing)
    : job_(std::move(job)),
      what_(std::move(what)),
      keep_trailing_(keep_trailing),
      out_(kOutBuf, '\0') {
  QuietLibrsync();
}

absl::Status RsStream::Feed(absl::string_view in, bool eof,
                            const ByteSink& sink) {
  if (done_) {
    if (keep_trailing_) {
      trailing_.append(in.data(), in.size());
      return absl::OkStatus();
    }
    if (!in.empty()) {
      return absl::DataLossError(
          absl::StrCat(what_, ": input continues after the end of the stream"));
    }
    return absl::OkStatus();
  }
  if (!job_) return absl::InternalError(absl::StrCat(what_, ": no job"));
  pending_.append(in.data(), in.size());
  size_t off = 0;
  for (;;) {
    rs_buffers_t b{};
    b.next_in = pending_.data() + off;
    b.avail_in = pending_.size() - off;
    b.eof_in = eof ? 1 : 0;
    b.next_out = out_.data();
    b.avail_out = out_.size();
    rs_result r = rs_job_iter(job_.get(), &b);
    size_t consumed = (pending_.size() - off) - b.avail_in;
    off += consumed;
    size_t produced = out_.size() - b.avail_out;
    if (produced > 0) {
      RETURN_IF_ERROR(sink(absl::string_view(out_.data(), produced)));
    }
    if (r == RS_DONE) {
      done_ = true;
      if (keep_trailing_) {
        trailing_ = pending_.substr(off);
      } else if (off != pending_.size()) {
        return absl::DataLossError(
            absl::StrCat(what_, ": ", pending_.size() - off,
                         " bytes of input after the end of the stream"));
      }
      pending_.clear();
      return absl::OkStatus();
    }
    if (r != RS_BLOCKED) {
      return absl::DataLossError(
          absl::StrCat(what_, ": librsync: ", rs_strerror(r)));
    }
    if (consumed == 0 && produced == 0) {
      if (eof) {
        return absl::DataLossError(absl::StrCat(
            what_, ": input ended before the stream was complete"));
      }
      break;  // Needs more input.
    }
  }
  pending_.erase(0, off);
  return absl::OkStatus();
}

SignatureBuilder::SignatureBuilder(uint64_t file_size, uint32_t block_len,
                                   SignatureKind kind)
    : kind_(kind) {
  rs_magic_number magic = RS_RK_BLAKE2_SIG_MAGIC;
  size_t blen = block_len == 0 ? RS_DEFAULT_BLOCK_LEN : block_len;
  size_t strong = static_cast<size_t>(-1);  // Minimum safe for file_size.
  if (rs_sig_args(static_cast<rs_long_t>(file_size), &magic, &blen, &strong) !=
      RS_DONE) {
    strong = RS_DEFAULT_MIN_STRONG_LEN;
  }
  block_len_ = static_cast<uint32_t>(blen);
  if (kind_ == SignatureKind::kLibrsync) {
    strong_len_ = static_cast<uint32_t>(strong);
    for (uint32_t v :
         {uint32_t{RS_RK_BLAKE2_SIG_MAGIC}, block_len_, strong_len_}) {
      PutBe32(v, &out_);
    }
    return;
  }
  // The length librsync finds safe for BLAKE2, within XXH3-128's 16 bytes.
  strong_len_ = static_cast<uint32_t>(std::min<size_t>(strong, 16));
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&seed_), sizeof seed_) != 1) {
    std::random_device rd;  // getrandom(2) in libstdc++, as RAND_bytes.
    seed_ = uint64_t{rd()} << 32 | rd();
  }
  for (uint32_t v :
       {kSeededXxh3SigMagic, block_len_, strong_len_,
        static_cast<uint32_t>(seed_ >> 32), static_cast<uint32_t>(seed_)}) {
    PutBe32(v, &out_);
  }
}

void SignatureBuilder::Block(absl::string_view data) {
  PutBe32(RabinKarpSum(data), &out_);
  uint8_t strong[32];
  if (kind_ == SignatureKind::kLibrsync) {
    BlakeStrongSum(data, strong);
  } else {
    Xxh3StrongSum(data, seed_, strong);
  }
  out_.append(reinterpret_cast<const char*>(strong), strong_len_);
}

absl::Status SignatureBuilder::Feed(absl::string_view in, bool eof,
                                    const ByteSink& sink) {
  if (done_) {
    if (in.empty()) return absl::OkStatus();
    return absl::DataLossError(
        "signature: input continues after the end of the stream");
  }
  if (!partial_.empty()) {
    const size_t take = std::min(in.size(), block_len_ - partial_.size());
    partial_.append(in.data(), take);
    in.remove_prefix(take);
    if (partial_.size() == block_len_) {
      Block(partial_);
      partial_.clear();
    }
  }
  for (; in.size() >= block_len_; in.remove_prefix(block_len_)) {
    Block(in.substr(0, block_len_));
  }
  partial_.append(in.data(), in.size());
  if (eof) {
    if (!partial_.empty()) Block(partial_);
    partial_.clear();
    done_ = true;
  }
  if (out_.size() >= kOutBuf || eof) {
    RETURN_IF_ERROR(sink(out_));
    out_.clear();
  }
  return absl::OkStatus();
}

absl::StatusOr<RsSignaturePtr> LoadSignature(absl::string_view sig) {
  QuietLibrsync();
  rs_signature_t* raw = nullptr;
  RsStream load(RsJobPtr(rs_loadsig_begin(&raw)), "load signature");
  absl::Status st =
      load.Feed(sig, true, [](absl::string_view) { return absl::OkStatus(); });
  RsSignaturePtr out(raw);
  RETURN_IF_ERROR(st);
  if (!out) return absl::DataLossError("load signature: empty signature");
  rs_result r = rs_build_hash_table(out.get());
  if (r != RS_DONE) {
    return absl::DataLossError(
        absl::StrCat("index signature: ", rs_strerror(r)));
  }
  return out;
}

DeltaBuilder::DeltaBuilder(rs_signature_t* sig)
    : stream_(RsJobPtr(rs_delta_begin(sig)), "delta") {}

Patcher::Patcher(int basis_fd, uint64_t max_output)
    : basis_fd_(basis_fd), max_output_(max_output), stream_(NewStream()) {}

Patcher::Patcher(DirectReader* basis, uint64_t max_output)
    : reader_(basis), max_output_(max_output), stream_(NewStream()) {}

std::unique_ptr<RsStream> Patcher::NewStream() {
  return std::make_unique<RsStream>(
      RsJobPtr(rs_patch_begin(&Patcher::CopyCallback, this)), "patch",
      /*keep_trailing=*/true);
}

rs_result Patcher::CopyCallback(void* opaque, rs_long_t pos, size_t* len,
                                void** buf) {
  auto* self = static_cast<Patcher*>(opaque);
  if (pos < 0) return RS_CORRUPT;
  if (self->reader_ != nullptr) {
    // librsync copies from the reader's window (it loops for the rest).
    absl::StatusOr<absl::string_view> got = self->reader_->ReadAt(pos, *len);
    if (!got.ok()) {
      self->read_error_ = got.status();
      return RS_IO_ERROR;
    }
    // A copy command that reaches past the basis is corrupt input.
    if (got->empty()) return RS_INPUT_ENDED;
    *buf = const_cast<char*>(got->data());
    *len = got->size();
    return RS_DONE;
  }
  size_t got = 0;
  while (got < *len) {
    ssize_t n = pread(self->basis_fd_, static_cast<char*>(*buf) + got,
                      *len - got, pos + static_cast<rs_long_t>(got));
    if (n < 0) {
      if (errno == EINTR) continue;
      self->read_error_ = ErrnoStatus(errno, "read");
      return RS_IO_ERROR;
    }
    if (n == 0) break;
    got += n;
  }
  // A copy command that reaches past the basis is corrupt input.
  if (got == 0) return RS_INPUT_ENDED;
  *len = got;
  return RS_DONE;
}

absl::Status Patcher::Feed(absl::string_view delta, bool eof,
                           const ByteSink& sink) {
  auto capped = [&](absl::string_view out) -> absl::Status {
    written_ += out.size();
    if (written_ > max_output_) {
      return absl::DataLossError(
          absl::StrCat("patch: output exceeds the declared size of ",
                       max_output_, " bytes"));
    }
    return sink(out);
  };
  std::string carry;
  absl::string_view in = delta;
  for (;;) {
    if (stream_->done()) {
      // The previous stream ended: what follows starts the next one.
      carry = stream_->TakeTrailing();
      carry.append(in.data(), in.size());
      if (carry.empty()) return absl::OkStatus();
      stream_ = NewStream();
      in = carry;
    }
    if (absl::Status st = stream_->Feed(in, eof, capped); !st.ok()) {
      // A basis that could not be read is the disk's failure, named as
      // such, not the delta's.
      if (!read_error_.ok()) {
        return absl::Status(
            read_error_.code(),
            absl::StrCat("patch: reading the basis: ", read_error_.message()));
      }
      return st;
    }
    if (!stream_->done()) return absl::OkStatus();
    in = absl::string_view();
  }
}

absl::StatusOr<std::string> SignatureOf(absl::string_view basis,
                                        uint32_t block_len,
                                        SignatureKind kind) {
  std::string out;
  SignatureBuilder b(basis.size(), block_len, kind);
  RETURN_IF_ERROR(b.Feed(basis, true, [&](absl::string_view s) {
    out.append(s.data(), s.size());
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::string> DeltaOf(absl::string_view signature,
                                    absl::string_view target) {
  ASSIGN_OR_RETURN(RsSignaturePtr sig, LoadSignature(signature));
  std::string out;
  DeltaBuilder b(sig.get());
  RETURN_IF_ERROR(b.Feed(target, true, [&](absl::string_view s) {
    out.append(s.data(), s.size());
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace gwmirror
