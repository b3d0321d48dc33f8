// What the replica-store tests push: files, directories and links under the
// root "r", with their content, and a push of them through a real
// PushSession (whole files, the whole manifest).
#ifndef GWMIRROR_TESTS_NODE_REPLICA_STORE_ITEMS_H_
#define GWMIRROR_TESTS_NODE_REPLICA_STORE_ITEMS_H_

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/manifest.h"
#include "node/replica/store.h"

namespace gwmirror::testing {

// One file or link to push, with its content.
struct Item {
  Entry entry;
  std::string content;
};

inline Item F(const std::string& path, const std::string& content,
              int mode = 0644) {
  Item i;
  i.entry.set_path("r/" + path);
  i.entry.set_type(gwmirror::v1::ENTRY_TYPE_FILE);
  i.entry.set_mode(mode);
  i.entry.set_mtime_ns(1700000000000000000LL + content.size());
  i.entry.set_size(content.size());
  i.entry.set_sha256(DigestBytes(Sha256Of(content)));
  i.content = content;
  return i;
}

inline Item D(const std::string& path, int mode = 0755) {
  Item i;
  i.entry.set_path("r/" + path);
  i.entry.set_type(gwmirror::v1::ENTRY_TYPE_DIRECTORY);
  i.entry.set_mode(mode);
  i.entry.set_mtime_ns(1600000000000000000LL);
  return i;
}

inline Item L(const std::string& path, const std::string& target) {
  Item i;
  i.entry.set_path("r/" + path);
  i.entry.set_type(gwmirror::v1::ENTRY_TYPE_SYMLINK);
  i.entry.set_mode(0777);
  i.entry.set_mtime_ns(1600000000000000000LL);
  i.entry.set_link_target(target);
  return i;
}

// Deterministic text of `n` lines, with line `edit` changed to `with`.
inline std::string Text(int n, int edit = -1, const std::string& with = "") {
  std::string out;
  for (int i = 0; i < n; ++i) {
    out += i == edit
               ? with + "\n"
               : absl::StrCat("INSERT INTO t VALUES (", i, ", 'row ",
                              static_cast<int64_t>(i) * 7919 % 1000, "');\n");
  }
  return out;
}

inline Manifest ManifestOf(const std::vector<Item>& items) {
  std::vector<Entry> entries;
  for (const Item& i : items) entries.push_back(i.entry);
  return *Manifest::FromEntries(std::move(entries));
}

// Pushes `items` to `store` as checkpoint `n` with whole-file content
// (only what the committed tree lacks); the manifest's digest into
// `digest`.
inline absl::StatusOr<gwmirror::v1::PushResult> PushItems(
    ReplicaStore* store, uint64_t n, const std::vector<Item>& items,
    std::string* digest) {
  gwmirror::v1::PushBegin b;
  b.set_checkpoint(n);
  b.set_base_checkpoint(store->State().committed_checkpoint());
  auto session = store->BeginPush(b);
  if (!session.ok()) return session.status();
  Manifest committed = store->CommittedManifest();
  for (const Item& i : items) {
    const Entry* old = committed.Find(i.entry.path());
    if (i.entry.type() != gwmirror::v1::ENTRY_TYPE_FILE ||
        (old && old->sha256() == i.entry.sha256())) {
      continue;
    }
    gwmirror::v1::FileHeader h;
    *h.mutable_entry() = i.entry;
    h.set_encoding(gwmirror::v1::ENCODING_WHOLE);
    absl::Status st = (*session)->BeginFile(h);
    if (st.ok()) st = (*session)->FileData(i.content);
    if (st.ok()) st = (*session)->EndFile();
    if (!st.ok()) return st;
  }
  gwmirror::v1::ManifestPart part;
  for (const Item& i : items) *part.add_entries() = i.entry;
  absl::Status st = (*session)->AddManifest(part);
  if (!st.ok()) return st;
  *digest = DigestBytes(ManifestOf(items).ComputeDigest());
  return (*session)->End(*digest);
}

}  // namespace gwmirror::testing

#endif  // GWMIRROR_TESTS_NODE_REPLICA_STORE_ITEMS_H_
