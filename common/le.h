// Little-endian fixed-width integers in byte strings: the encoding of the
// on-disk formats (manifests and manifest edits, the committed journal,
// epoch grants).
#ifndef GWMIRROR_COMMON_LE_H_
#define GWMIRROR_COMMON_LE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace gwmirror {

// Stores `v` at `p`; returns the byte after it.
template <typename T>
char* StoreLe(char* p, T v) {
  for (size_t i = 0; i < sizeof(T); ++i) {
    p[i] = static_cast<char>(static_cast<uint64_t>(v) >> (8 * i));
  }
  return p + sizeof(T);
}

template <typename T>
void PutLe(std::string* out, T v) {
  char buf[sizeof(T)];
  StoreLe(buf, v);
  out->append(buf, sizeof(T));
}

// Reads fields from the front of a byte string; each call is false, and
// takes nothing, when too few bytes are left.
class LeReader {
 public:
  explicit LeReader(absl::string_view d) : d_(d) {}
  template <typename T>
  bool Get(T* v) {
    if (d_.size() < sizeof(T)) return false;
    uint64_t x = 0;
    for (size_t i = 0; i < sizeof(T); ++i) {
      x |= static_cast<uint64_t>(static_cast<unsigned char>(d_[i])) << (8 * i);
    }
    *v = static_cast<T>(x);
    d_.remove_prefix(sizeof(T));
    return true;
  }
  bool Bytes(size_t n, std::string* out) {
    if (d_.size() < n) return false;
    out->assign(d_.data(), n);
    d_.remove_prefix(n);
    return true;
  }
  bool empty() const { return d_.empty(); }
  size_t size() const { return d_.size(); }
  // What is left.
  absl::string_view rest() const { return d_; }

 private:
  absl::string_view d_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_LE_H_
