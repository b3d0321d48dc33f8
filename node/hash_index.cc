#include "node/hash_index.h"

#include <time.h>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace gwmirror {
namespace {

constexpr absl::string_view kMagic = "GWMI2";
constexpr size_t kMaxBootId = 128;
constexpr int64_t kSettleNs = 2'000'000'000;

void Put64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

bool Get64(absl::string_view* in, uint64_t* v) {
  if (in->size() < 8) return false;
  *v = 0;
  for (int i = 0; i < 8; ++i) {
    *v |= static_cast<uint64_t>(static_cast<unsigned char>((*in)[i]))
          << (8 * i);
  }
  in->remove_prefix(8);
  return true;
}

int64_t Ns(const struct timespec& t) {
  return static_cast<int64_t>(t.tv_sec) * 1000000000LL + t.tv_nsec;
}

}  // namespace

HashIndex::HashIndex() {
  struct timespec t;
  clock_gettime(CLOCK_REALTIME, &t);
  now_ns_ = Ns(t);
}

HashIndex::Key HashIndex::KeyOf(const struct stat& st) {
  return Key{static_cast<uint64_t>(st.st_size),
             static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_dev),
             Ns(st.st_mtim), Ns(st.st_ctim)};
}

std::optional<std::string> HashIndex::Lookup(const std::string& path,
                                             const struct stat& st) const {
  auto it = entries_.find(path);
  if (it == entries_.end()) return std::nullopt;
  Key k = KeyOf(st);
  if (!(it->second.key == k)) return std::nullopt;
  if (k.mtime_ns > now_ns_ - kSettleNs || k.ctime_ns > now_ns_ - kSettleNs) {
    return std::nullopt;  // Too recent to trust a timestamp.
  }
  return it->second.sha256;
}

void HashIndex::Record(const std::string& path, const struct stat& st,
                       const std::string& sha256) {
  Value v{KeyOf(st), sha256};
  auto [it, added] = entries_.try_emplace(path, v);
  if (added || !(it->second.key == v.key) || it->second.sha256 != sha256) {
    it->second = std::move(v);
    ++changes_;
    recorded_bytes_ += st.st_size;
  }
}

std::string HashIndex::Encode(absl::string_view boot_id) const {
  std::string out(kMagic);
  boot_id = boot_id.substr(0, kMaxBootId);
  Put64(&out, boot_id.size());
  out.append(boot_id.data(), boot_id.size());
  Put64(&out, entries_.size());
  for (const auto& [path, v] : entries_) {
    Put64(&out, path.size());
    out += path;
    Put64(&out, v.key.size);
    Put64(&out, v.key.ino);
    Put64(&out, v.key.dev);
    Put64(&out, static_cast<uint64_t>(v.key.mtime_ns));
    Put64(&out, static_cast<uint64_t>(v.key.ctime_ns));
    out += v.sha256;
  }
  out += DigestBytes(Sha256Of(out));
  return out;
}

absl::StatusOr<HashIndex> HashIndex::Decode(absl::string_view data) {
  auto corrupt = [](absl::string_view why) {
    return absl::DataLossError(absl::StrCat("hash index: ", why));
  };
  if (data.size() < kMagic.size() + 8 + 32 ||
      data.substr(0, kMagic.size()) != kMagic) {
    return corrupt("bad header");
  }
  absl::string_view sum = data.substr(data.size() - 32);
  absl::string_view body = data.substr(0, data.size() - 32);
  if (DigestBytes(Sha256Of(body)) != sum) return corrupt("checksum mismatch");
  absl::string_view in = body.substr(kMagic.size());
  uint64_t boot_len = 0;
  if (!Get64(&in, &boot_len) || boot_len > kMaxBootId || in.size() < boot_len) {
    return corrupt("bad boot id");
  }
  HashIndex index;
  index.boot_id_ = std::string(in.substr(0, boot_len));
  in.remove_prefix(boot_len);
  uint64_t n = 0;
  if (!Get64(&in, &n) || n > in.size() / 80) return corrupt("bad count");
  for (uint64_t i = 0; i < n; ++i) {
    uint64_t len = 0;
    if (!Get64(&in, &len) || len > 4096 || in.size() < len) {
      return corrupt("truncated path");
    }
    std::string path(in.substr(0, len));
    in.remove_prefix(len);
    Value v;
    uint64_t mt = 0, ct = 0;
    if (!Get64(&in, &v.key.size) || !Get64(&in, &v.key.ino) ||
        !Get64(&in, &v.key.dev) || !Get64(&in, &mt) || !Get64(&in, &ct) ||
        in.size() < 32) {
      return corrupt("truncated entry");
    }
    v.key.mtime_ns = static_cast<int64_t>(mt);
    v.key.ctime_ns = static_cast<int64_t>(ct);
    v.sha256 = std::string(in.substr(0, 32));
    in.remove_prefix(32);
    index.entries_[path] = std::move(v);
  }
  if (!in.empty()) return corrupt("trailing bytes");
  return index;
}

absl::StatusOr<HashIndex> HashIndex::Load(const std::string& path, Env* env) {
  auto data = ReadFileToString(path, env);
  if (absl::IsNotFound(data.status())) return HashIndex();
  RETURN_IF_ERROR(data.status());
  ASSIGN_OR_RETURN(HashIndex index, Decode(*data));
  const std::string boot = env->BootId();
  if (boot.empty() || index.boot_id_ != boot) {
    return absl::FailedPreconditionError(absl::StrCat(
        "hash index ", path, " was written before the machine last booted (",
        index.boot_id_.empty() ? "unknown boot" : index.boot_id_, "; now ",
        boot.empty() ? "unknown" : boot, "): every file is read once"));
  }
  return index;
}

absl::Status HashIndex::Save(const std::string& path, Env* env) const {
  return WriteFileAtomic(path, Encode(env->BootId()), 0600, Durability::kCache,
                         env);
}

}  // namespace gwmirror
