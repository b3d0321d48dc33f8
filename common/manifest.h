// Manifests: the entries of one slot at one checkpoint, their canonical
// binary encoding (docs/ARCHITECTURE.md, "Manifest format"), its digest,
// and the structural checks a replica applies to a manifest from the
// network. Value types; thread-compatible.
#ifndef GWMIRROR_COMMON_MANIFEST_H_
#define GWMIRROR_COMMON_MANIFEST_H_

#include <compare>
#include <cstddef>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/call_once.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/fd.h"
#include "common/sha256.h"
#include "gwmirror/v1/replica.pb.h"

namespace gwmirror {

using Entry = gwmirror::v1::Entry;

// Whether a file entry must carry its digest. Only a source's own scan
// leaves one pending (an empty sha256): a large file hashed as it is sent
// (docs/ARCHITECTURE.md, "Digests at the end"). A manifest with a pending
// digest never leaves the source; the source computes a manifest's digest
// only once every file's digest is found. The replica also checks the
// header of a file whose digest follows its bytes under kMayBePending.
enum class Digests { kRequired, kMayBePending };

// Entries sorted by path (bytewise), unique paths. Immutable once built:
// copies share one body (a copy costs a reference count, not the tree), and
// the digest is computed once per body. A body holds its entries in
// immutable blocks shared with the manifests it was edited from, and a
// sorted index of pointers into them: the next checkpoint's manifest, one
// file changed among 19,000, costs one new entry and a copy of the index,
// not 19,000 entry copies (and their destruction when it is dropped).
class Manifest {
 public:
  // A read-only, random-access view of the entries in path order; valid
  // while a Manifest sharing its body lives.
  class Entries {
   public:
    class iterator {
     public:
      using iterator_category = std::random_access_iterator_tag;
      using value_type = Entry;
      using difference_type = std::ptrdiff_t;
      using pointer = const Entry*;
      using reference = const Entry&;
      iterator() = default;
      explicit iterator(const Entry* const* p) : p_(p) {}
      reference operator*() const { return **p_; }
      pointer operator->() const { return *p_; }
      reference operator[](difference_type n) const { return *p_[n]; }
      iterator& operator++() { return ++p_, *this; }
      iterator operator++(int) { return iterator(p_++); }
      iterator& operator--() { return --p_, *this; }
      iterator operator--(int) { return iterator(p_--); }
      iterator& operator+=(difference_type n) { return p_ += n, *this; }
      iterator& operator-=(difference_type n) { return p_ -= n, *this; }
      friend iterator operator+(iterator i, difference_type n) {
        return i += n;
      }
      friend iterator operator+(difference_type n, iterator i) {
        return i += n;
      }
      friend iterator operator-(iterator i, difference_type n) {
        return i -= n;
      }
      friend difference_type operator-(iterator a, iterator b) {
        return a.p_ - b.p_;
      }
      friend auto operator<=>(iterator a, iterator b) = default;

     private:
      const Entry* const* p_ = nullptr;
    };
    using const_iterator = iterator;
    using reverse_iterator = std::reverse_iterator<iterator>;

    Entries(const Entry* const* data, size_t size) : data_(data), size_(size) {}
    iterator begin() const { return iterator(data_); }
    iterator end() const { return iterator(data_ + size_); }
    reverse_iterator rbegin() const { return reverse_iterator(end()); }
    reverse_iterator rend() const { return reverse_iterator(begin()); }
    size_t size() const { return size_; }
    bool empty() const { return size_ == 0; }
    const Entry& operator[](size_t i) const { return *data_[i]; }
    const Entry& front() const { return *data_[0]; }
    const Entry& back() const { return *data_[size_ - 1]; }

   private:
    const Entry* const* data_;
    size_t size_;
  };

  Manifest() = default;
  // Sorts; fails with INVALID_ARGUMENT on a duplicate path or a bad entry
  // (ValidateEntry under `digests`).
  static absl::StatusOr<Manifest> FromEntries(
      std::vector<Entry> entries, Digests digests = Digests::kRequired);
  // For entries that are sorted by path, unique, and each passed
  // ValidateEntry already (taken from another manifest, or checked one by
  // one as they arrived). Debug builds check the promise.
  static Manifest FromCheckedEntries(std::vector<Entry> entries);
  // `base` with `set` put in (replacing the base's entry at a path) and the
  // paths of `removed` taken out. `set` is sorted, unique and checked as
  // for FromCheckedEntries; `removed` is sorted, unique, held by `base` and
  // not in `set` (debug builds check). Costs the size of `set` plus a copy
  // of the index; the base's entries are shared, not copied.
  static Manifest Edit(const Manifest& base, std::vector<Entry> set,
                       const std::vector<std::string>& removed);

  Entries entries() const;
  // Binary search by path.
  const Entry* Find(absl::string_view path) const;
  size_t size() const { return body_ == nullptr ? 0 : body_->index.size(); }

  // Canonical encoding (the digest covers exactly these bytes).
  std::string Encode() const;
  // The same bytes in pieces of about 64 KiB, in order (hashing or writing
  // them needs no copy of the whole encoding).
  void EncodeInPieces(absl::FunctionRef<void(absl::string_view)> emit) const;
  size_t EncodedSize() const;
  Digest ComputeDigest() const;
  // Decodes Encode()'s output; every entry is validated.
  static absl::StatusOr<Manifest> Decode(absl::string_view data);

  // Structure against the replica's roots: every entry lies strictly below
  // one of `roots`, and its parent is a root or a DIRECTORY entry.
  absl::Status CheckStructure(const std::vector<std::string>& roots) const;

 private:
  using Block = std::vector<Entry>;
  struct Body {
    // Immutable once shared; the index points into them.
    std::vector<std::shared_ptr<const Block>> blocks;
    size_t stored = 0;  // Entries the blocks hold, live or not.
    std::vector<const Entry*> index;
    mutable absl::once_flag digest_once;
    mutable Digest digest;
  };
  static Manifest FromBlock(Block entries);
  std::shared_ptr<const Body> body_;
};

template <typename Fn>
void ForEachPath(const Manifest& base, const Manifest& next, Fn fn) {
  const Manifest::Entries a = base.entries();
  const Manifest::Entries b = next.entries();
  size_t i = 0, j = 0;
  while (i < a.size() || j < b.size()) {
    // Manifests edited from one another share their unchanged entries.
    int c = i == a.size()    ? 1
            : j == b.size()  ? -1
            : &a[i] == &b[j] ? 0
                             : a[i].path().compare(b[j].path());
    if (c < 0) {
      fn(&a[i++], static_cast<const Entry*>(nullptr));
    } else if (c > 0) {
      fn(static_cast<const Entry*>(nullptr), &b[j++]);
    } else {
      fn(&a[i++], &b[j++]);
    }
  }
}

// Field checks of one entry from an untrusted peer. Under
// Digests::kMayBePending a file may have no digest yet.
absl::Status ValidateEntry(const Entry& e,
                           Digests digests = Digests::kRequired);

// True when two entries describe the same object (type, content, metadata).
bool SameEntry(const Entry& a, const Entry& b);
// True when content is equal (file digest, link target, or both dirs).
bool SameContent(const Entry& a, const Entry& b);

// On-disk form: "GWMF", checkpoint id (u64 LE), canonical encoding, and a
// SHA-256 of everything before it; written atomically (temp, fsync, rename).
// Reading checks the trailing digest.
struct ManifestFile {
  uint64_t checkpoint = 0;
  Manifest manifest;
};
absl::Status WriteManifestFile(const std::string& path, uint64_t checkpoint,
                               const Manifest& m,
                               Durability durability = Durability::kSynced,
                               Env* env = Env::Default());
absl::StatusOr<ManifestFile> ReadManifestFile(const std::string& path,
                                              Env* env = Env::Default());

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_MANIFEST_H_
