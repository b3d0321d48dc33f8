// ReplicaStore driven directly (no gRPC): staging, commit, abort, hostile
// entries, injected full disks, and the redo journal's idempotency.
#include "node/replica/store.h"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "common/block_delta.h"
#include "common/delta.h"
#include "common/fault.h"
#include "common/status_macros.h"
#include "gtest/gtest.h"
#include "node/replica/drift_checker.h"
#include "node/replica/restore.h"
#include "tests/node/fault_injection_env.h"
#include "tests/node/replica/store_items.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

using gwmirror::v1::ENTRY_TYPE_DIRECTORY;
using gwmirror::v1::ENTRY_TYPE_FILE;
using gwmirror::v1::ENTRY_TYPE_SYMLINK;

using testing::D;
using testing::F;
using testing::Item;
using testing::L;
using testing::Text;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    SetFaultSpec("");
    config_.set_slot("gw1");
    config_.set_host_root(dir_ / "host");
    config_.set_state_dir(dir_ / "state");
    config_.add_roots()->set_path("r");
    Reopen();
  }
  void TearDown() override { SetFaultSpec(""); }

  void Reopen() {
    store_.reset();
    auto s = ReplicaStore::Open(config_);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = *std::move(s);
  }

  // Pushes `items` as checkpoint n with whole-file content.
  absl::StatusOr<gwmirror::v1::PushResult> Push(
      uint64_t n, const std::vector<Item>& items) {
    return testing::PushItems(store_.get(), n, items, &digest_);
  }

  absl::Status PushAndCommit(uint64_t n, const std::vector<Item>& items) {
    auto r = Push(n, items);
    if (!r.ok()) return r.status();
    return store_->Commit(n, digest_);
  }

  Manifest Tree() {
    gwmirror::v1::RootConfig r;
    r.set_path("r");
    return testing::Snapshot(config_.host_root(), {r});
  }

  testing::TempDir dir_;
  gwmirror::v1::NodeConfig config_;
  std::unique_ptr<ReplicaStore> store_;
  std::string digest_;
};

TEST_F(StoreTest, CommitMakesTreeEqualManifestIncludingModesAndTypeSwaps) {
  std::vector<Item> v1 = {D("d"),         F("d/a", "alpha", 04755),
                          F("b", "beta"), L("l", "/etc/passwd"),
                          D("x"),         F("x/y", "y")};
  ASSERT_TRUE(PushAndCommit(1, v1).ok());
  std::vector<Entry> want1;
  for (auto& i : v1) want1.push_back(i.entry);
  auto m1 = Manifest::FromEntries(want1);
  // Sizes/uids of dirs come from the manifest; the scan must agree exactly.
  EXPECT_EQ(testing::Diff(*m1, Tree()), "");
  EXPECT_EQ(store_->State().committed_checkpoint(), 1u);

  // file->dir, dir->symlink, symlink->file, delete, chmod.
  std::vector<Item> v2 = {D("d"),        F("d/a", "alpha", 0600), D("b"),
                          F("b/c", "c"), F("l", "now a file"),    L("x", "d")};
  ASSERT_TRUE(PushAndCommit(2, v2).ok());
  std::vector<Entry> want2;
  for (auto& i : v2) want2.push_back(i.entry);
  EXPECT_EQ(testing::Diff(*Manifest::FromEntries(want2), Tree()), "");
  // No staging left behind.
  EXPECT_NE(access((dir_ / "state/replica/staging/2").c_str(), F_OK), 0);
}

TEST_F(StoreTest, SameContentAtTwoPathsIsCopiedNotHardLinked) {
  ASSERT_TRUE(PushAndCommit(1, {F("a", "same"), F("b", "same")}).ok());
  struct stat sa, sb;
  ASSERT_EQ(stat((dir_ / "host/r/a").c_str(), &sa), 0);
  ASSERT_EQ(stat((dir_ / "host/r/b").c_str(), &sb), 0);
  EXPECT_NE(sa.st_ino, sb.st_ino);
  EXPECT_EQ(sa.st_nlink, 1u);
}

TEST_F(StoreTest, WrongDigestIsDataLossAndTreeUnchanged) {
  ASSERT_TRUE(PushAndCommit(1, {F("a", "one")}).ok());
  Manifest before = Tree();
  Item lie = F("a", "two");
  lie.content = "not two";
  auto r = Push(2, {lie});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kDataLoss) << r.status();
  EXPECT_NE(r.status().message().find("r/a"), std::string::npos);
  EXPECT_EQ(testing::Diff(before, Tree()), "");
}

// A file whose digest follows its bytes (FileHeader.digest_at_end): staged
// under the digest its FileEnd names once the replica's own hash agrees;
// any disagreement on where the digest is, or on its value, is refused by
// name and leaves the committed tree alone.
TEST_F(StoreTest, ADigestAtTheEndIsCheckedAsOneInTheHeader) {
  ASSERT_TRUE(PushAndCommit(1, {F("a", "one")}).ok());
  const Manifest before = Tree();
  const Item two = F("a", "two");
  // Sends `two` with `header` changes and `end`'s digest; the session's
  // first failure.
  auto send = [&](auto edit_header, const std::string& end_digest,
                  std::string* digest) -> absl::Status {
    gwmirror::v1::PushBegin b;
    b.set_checkpoint(2);
    b.set_base_checkpoint(1);
    auto s = store_->BeginPush(b);
    if (!s.ok()) return s.status();
    gwmirror::v1::FileHeader h;
    *h.mutable_entry() = two.entry;
    h.mutable_entry()->clear_sha256();
    h.set_digest_at_end(true);
    h.set_encoding(gwmirror::v1::ENCODING_WHOLE);
    edit_header(&h);
    RETURN_IF_ERROR((*s)->BeginFile(h));
    RETURN_IF_ERROR((*s)->FileData(two.content));
    gwmirror::v1::FileEnd end;
    end.set_sha256(end_digest);
    RETURN_IF_ERROR((*s)->EndFile(end));
    gwmirror::v1::ManifestPart part;
    *part.add_entries() = two.entry;
    RETURN_IF_ERROR((*s)->AddManifest(part));
    *digest = DigestBytes(testing::ManifestOf({two}).ComputeDigest());
    return (*s)->End(*digest).status();
  };
  auto as_is = [](gwmirror::v1::FileHeader*) {};
  std::string digest;
  const struct {
    std::function<void(gwmirror::v1::FileHeader*)> edit;
    std::string end_digest;
    absl::StatusCode code;
    std::string words;
  } refused[] = {
      {[&](gwmirror::v1::FileHeader* h) {
         h->mutable_entry()->set_sha256(two.entry.sha256());
       },
       two.entry.sha256(), absl::StatusCode::kInvalidArgument,
       "says its digest follows but carries one"},
      {[](gwmirror::v1::FileHeader* h) {
         h->set_encoding(gwmirror::v1::ENCODING_COPY);
       },
       two.entry.sha256(), absl::StatusCode::kInvalidArgument,
       "only a whole file or a delta"},
      {as_is, "", absl::StatusCode::kInvalidArgument,
       "no digest where its header said one follows"},
      {as_is, "short", absl::StatusCode::kInvalidArgument,
       "a digest that is not 32 bytes"},
      {[](gwmirror::v1::FileHeader* h) {
         h->set_digest_at_end(false);
         h->mutable_entry()->set_sha256(std::string(32, 'x'));
       },
       two.entry.sha256(), absl::StatusCode::kInvalidArgument,
       "a digest its header did not announce"},
      {as_is, DigestBytes(Sha256Of("three")), absl::StatusCode::kDataLoss,
       "does not match"},
  };
  for (const auto& c : refused) {
    SCOPED_TRACE(c.words);
    absl::Status st = send(c.edit, c.end_digest, &digest);
    EXPECT_EQ(st.code(), c.code) << st;
    EXPECT_TRUE(absl::StrContains(st.message(), c.words)) << st;
    EXPECT_TRUE(absl::StrContains(st.message(), "r/a")) << st;
    EXPECT_EQ(testing::Diff(before, Tree()), "");
  }
  ASSERT_TRUE(send(as_is, two.entry.sha256(), &digest).ok());
  ASSERT_TRUE(store_->Commit(2, digest).ok());
  EXPECT_EQ(testing::ReadFile(dir_ / "host/r/a"), "two");
  EXPECT_EQ(store_->CommittedManifest().Find("r/a")->sha256(),
            two.entry.sha256());
}

TEST_F(StoreTest, MissingContentAndOutsideEntriesAreRefused) {
  gwmirror::v1::PushBegin b;
  b.set_checkpoint(1);
  {
    auto s = store_->BeginPush(b);
    ASSERT_TRUE(s.ok());
    gwmirror::v1::ManifestPart part;
    *part.add_entries() = F("never-sent", "x").entry;
    ASSERT_TRUE((*s)->AddManifest(part).ok());
    auto m = Manifest::FromEntries({part.entries(0)});
    auto r = (*s)->End(DigestBytes(m->ComputeDigest()));
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  }
  Item outside = F("x", "x");
  outside.entry.set_path("etc/passwd");
  EXPECT_EQ(Push(1, {outside}).status().code(),
            absl::StatusCode::kPermissionDenied);
  Item dotdot = F("x", "x");
  dotdot.entry.set_path("r/../../etc/passwd");
  EXPECT_EQ(Push(1, {dotdot}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Tree().size(), 0u);
}

TEST_F(StoreTest, UnknownCheckpointAndStaleBaseAreRefused) {
  EXPECT_EQ(store_->Commit(7, std::string(32, 'x')).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Abort(7).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(PushAndCommit(1, {F("a", "1")}).ok());
  gwmirror::v1::PushBegin b;
  b.set_checkpoint(1);
  b.set_base_checkpoint(1);
  EXPECT_EQ(store_->BeginPush(b).status().code(),
            absl::StatusCode::kFailedPrecondition);
  b.set_checkpoint(3);
  b.set_base_checkpoint(0);
  EXPECT_EQ(store_->BeginPush(b).status().code(), absl::StatusCode::kAborted);
}

TEST_F(StoreTest, StaleEpochIsRefusedWithBothEpochs) {
  // Epochs above 1 need the coordinator's proof (tests/common/epoch_test).
  testing::Pki pki(dir_ / "pki");
  *config_.mutable_tls() = pki.Issue("gw1-standby");
  config_.mutable_coordinator()->set_identity("coordinator");
  Reopen();
  auto grant =
      SignEpochGrant(pki.Issue("coordinator"), 5, "standby", absl::Now());
  ASSERT_TRUE(grant.ok()) << grant.status();
  gwmirror::v1::Envelope e;
  e.set_epoch(5);
  *e.mutable_grant() = *grant;
  ASSERT_TRUE(store_->CheckEpoch(e).ok());
  e.set_epoch(4);
  e.clear_grant();
  absl::Status st = store_->CheckEpoch(e);
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(st.message().find("4"), std::string::npos);
  EXPECT_NE(st.message().find("5"), std::string::npos);
  Reopen();
  EXPECT_FALSE(store_->CheckEpoch(e).ok()) << "epoch must survive a restart";
  EXPECT_EQ(store_->State().epoch(), 5u);
}

TEST_F(StoreTest, PlantedSymlinkNeverRedirectsWrites) {
  testing::WriteFile(dir_ / "outside/keep", "secret");
  ASSERT_EQ(symlink((dir_ / "outside").c_str(), (dir_ / "host/r/evil").c_str()),
            0);
  Reopen();  // Adopts the planted link as part of checkpoint 0.
  ASSERT_TRUE(
      PushAndCommit(1, {D("evil"), F("evil/keep", "overwritten")}).ok());
  EXPECT_EQ(testing::ReadFile(dir_ / "outside/keep"), "secret");
  struct stat st;
  ASSERT_EQ(lstat((dir_ / "host/r/evil").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(testing::ReadFile(dir_ / "host/r/evil/keep"), "overwritten");
}

TEST_F(StoreTest, DeltaAgainstDriftedBasisAsksForWholeFile) {
  std::string v1(200000, 'a');
  ASSERT_TRUE(PushAndCommit(1, {F("big", v1)}).ok());
  // Someone edits the standby copy behind our back.
  testing::WriteFile(dir_ / "host/r/big", std::string(200000, 'z'));
  std::string v2 = v1;
  v2[100] = 'b';
  auto sig = SignatureOf(v1, 2048);
  auto delta = DeltaOf(*sig, v2);
  ASSERT_TRUE(delta.ok());
  gwmirror::v1::PushBegin b;
  b.set_checkpoint(2);
  b.set_base_checkpoint(1);
  Item item = F("big", v2);
  {
    auto s = store_->BeginPush(b);
    ASSERT_TRUE(s.ok());
    gwmirror::v1::FileHeader h;
    *h.mutable_entry() = item.entry;
    h.set_encoding(gwmirror::v1::ENCODING_DELTA);
    h.set_basis_sha256(DigestBytes(Sha256Of(v1)));
    ASSERT_TRUE((*s)->BeginFile(h).ok());
    ASSERT_TRUE((*s)->FileData(*delta).ok());
    ASSERT_TRUE((*s)->EndFile().ok());
    gwmirror::v1::ManifestPart part;
    *part.add_entries() = item.entry;
    ASSERT_TRUE((*s)->AddManifest(part).ok());
    auto m = Manifest::FromEntries({item.entry});
    auto r = (*s)->End(DigestBytes(m->ComputeDigest()));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->resend_whole_size(), 1);
    EXPECT_EQ(r->resend_whole(0), "r/big");
  }
  ASSERT_TRUE(PushAndCommit(2, {item}).ok());
  EXPECT_EQ(testing::ReadFile(dir_ / "host/r/big"), v2);
}

// Content the standby already holds travels as a header: a copy of a
// committed file at another path (a rename, an identical store of a new
// deployment), or a delta against another path's file (issue 20). Copies
// are verified: one that drifted is asked for whole; one naming what the
// checkpoint does not hold, or an unsafe path, is refused.
TEST_F(StoreTest, CopiesAndDeltasFromAnotherCommittedPath) {
  const std::string store_v1 = Text(4000);
  const std::string primary_v1 = Text(6000);
  ASSERT_TRUE(PushAndCommit(
                  1, {D("conf"), D("conf/u1"), F("conf/u1/Store.xml", store_v1),
                      F("conf/u1/Primary.xml", primary_v1)})
                  .ok());
  EXPECT_TRUE(store_->State().accepts_copy());
  const std::string primary_v2 = Text(6000, 77, "edited");
  Item copy = F("conf/u2/Store.xml", store_v1);
  Item changed = F("conf/u2/Primary.xml", primary_v2);
  auto sig = SignatureOf(primary_v1, 2048);
  auto delta = DeltaOf(*sig, primary_v2);
  ASSERT_TRUE(delta.ok());
  std::vector<Item> next = {D("conf"),
                            D("conf/u1"),
                            F("conf/u1/Store.xml", store_v1),
                            F("conf/u1/Primary.xml", primary_v1),
                            D("conf/u2"),
                            copy,
                            changed};
  auto header = [](const Item& i, gwmirror::v1::Encoding enc,
                   const std::string& basis_path, const std::string& basis) {
    gwmirror::v1::FileHeader h;
    *h.mutable_entry() = i.entry;
    h.set_encoding(enc);
    h.set_basis_path(basis_path);
    h.set_basis_sha256(DigestBytes(Sha256Of(basis)));
    return h;
  };
  {
    gwmirror::v1::PushBegin b;
    b.set_checkpoint(2);
    b.set_base_checkpoint(1);
    auto s = store_->BeginPush(b);
    ASSERT_TRUE(s.ok()) << s.status();
    ASSERT_TRUE((*s)->BeginFile(header(copy, gwmirror::v1::ENCODING_COPY,
                                       "r/conf/u1/Store.xml", store_v1))
                    .ok());
    EXPECT_EQ((*s)->FileData("x").code(), absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE((*s)->EndFile().ok());
    ASSERT_TRUE((*s)->BeginFile(header(changed, gwmirror::v1::ENCODING_DELTA,
                                       "r/conf/u1/Primary.xml", primary_v1))
                    .ok());
    ASSERT_TRUE((*s)->FileData(*delta).ok());
    ASSERT_TRUE((*s)->EndFile().ok());
    gwmirror::v1::ManifestPart part;
    for (const Item& i : next) *part.add_entries() = i.entry;
    ASSERT_TRUE((*s)->AddManifest(part).ok());
    auto r = (*s)->End(DigestBytes(ManifestOf(next).ComputeDigest()));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->resend_whole_size(), 0);
    digest_ = r->manifest_digest();
  }
  absl::Status committed = store_->Commit(2, digest_);
  ASSERT_TRUE(committed.ok()) << committed;
  EXPECT_EQ(testing::ReadFile(dir_ / "host/r/conf/u2/Store.xml"), store_v1);
  EXPECT_EQ(testing::ReadFile(dir_ / "host/r/conf/u2/Primary.xml"), primary_v2);

  // Refused before anything is written: a basis the checkpoint does not
  // hold, a digest that is not the entry's, an unsafe or empty path.
  gwmirror::v1::PushBegin b;
  b.set_checkpoint(3);
  b.set_base_checkpoint(2);
  Item third = F("conf/u3/Store.xml", store_v1);
  struct Bad {
    gwmirror::v1::FileHeader h;
    absl::StatusCode code;
  };
  std::vector<Bad> bad = {
      {header(third, gwmirror::v1::ENCODING_COPY, "r/conf/u9/Store.xml",
              store_v1),
       absl::StatusCode::kFailedPrecondition},
      {header(third, gwmirror::v1::ENCODING_COPY, "r/conf/u1/Primary.xml",
              primary_v1),
       absl::StatusCode::kInvalidArgument},
      {header(third, gwmirror::v1::ENCODING_COPY, "r/../../etc/passwd",
              store_v1),
       absl::StatusCode::kInvalidArgument},
      {header(third, gwmirror::v1::ENCODING_COPY, "", store_v1),
       absl::StatusCode::kInvalidArgument},
      {header(third, gwmirror::v1::ENCODING_DELTA, "/etc/passwd", store_v1),
       absl::StatusCode::kInvalidArgument},
  };
  for (const Bad& x : bad) {
    auto s = store_->BeginPush(b);
    ASSERT_TRUE(s.ok()) << s.status();
    absl::Status st = (*s)->BeginFile(x.h);
    EXPECT_EQ(st.code(), x.code) << x.h.basis_path() << ": " << st;
  }

  // A committed copy that drifted on the standby is asked for whole.
  testing::WriteFile(dir_ / "host/r/conf/u1/Store.xml", "drifted");
  {
    auto s = store_->BeginPush(b);
    ASSERT_TRUE(s.ok());
    ASSERT_TRUE((*s)->BeginFile(header(third, gwmirror::v1::ENCODING_COPY,
                                       "r/conf/u1/Store.xml", store_v1))
                    .ok());
    ASSERT_TRUE((*s)->EndFile().ok());
    std::vector<Item> with = next;
    with.push_back(D("conf/u3"));
    with.push_back(third);
    gwmirror::v1::ManifestPart part;
    for (const Item& i : with) *part.add_entries() = i.entry;
    ASSERT_TRUE((*s)->AddManifest(part).ok());
    auto r = (*s)->End(DigestBytes(ManifestOf(with).ComputeDigest()));
    ASSERT_TRUE(r.ok()) << r.status();
    ASSERT_EQ(r->resend_whole_size(), 1);
    EXPECT_EQ(r->resend_whole(0), "r/conf/u3/Store.xml");
  }
}

TEST_F(StoreTest, FullDiskWhileStagingLeavesCommittedTreeAlone) {
  ASSERT_TRUE(PushAndCommit(1, {F("a", "1")}).ok());
  Manifest before = Tree();
  SetFaultSpec("enospc:stage:write:1");
  auto r = Push(2, {F("a", "2"), F("b", "3")});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  SetFaultSpec("");
  EXPECT_EQ(testing::Diff(before, Tree()), "");
  ASSERT_TRUE(PushAndCommit(2, {F("a", "2"), F("b", "3")}).ok());
}

TEST_F(StoreTest, FullDiskDuringCommitIsFinishedByRetryOrRestart) {
  ASSERT_TRUE(PushAndCommit(1, {F("a", "1"), F("b", "1")}).ok());
  std::vector<Item> next = {F("a", "2"), D("b"), F("b/c", "3"), F("d", "4")};
  ASSERT_TRUE(Push(2, next).ok());
  SetFaultSpec("enospc:commit:place:2");
  absl::Status st = store_->Commit(2, digest_);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  // Half applied: new pushes wait for the commit to be finished.
  gwmirror::v1::PushBegin b;
  b.set_checkpoint(3);
  b.set_base_checkpoint(1);
  EXPECT_EQ(store_->BeginPush(b).status().code(),
            absl::StatusCode::kFailedPrecondition);
  SetFaultSpec("");
  // A restart finishes it from the redo intent.
  Reopen();
  EXPECT_EQ(store_->State().committed_checkpoint(), 2u);
  std::vector<Entry> want;
  for (auto& i : next) want.push_back(i.entry);
  EXPECT_EQ(testing::Diff(*Manifest::FromEntries(want), Tree()), "");
}

// The coordinator may record a checkpoint consistent and then the replica
// restarts before the Commit arrives: the completely staged checkpoint must
// still be there to commit.
TEST_F(StoreTest, CompleteStagingSurvivesRestartAndCommits) {
  ASSERT_TRUE(Push(1, {F("a", "1"), F("b", std::string(100000, 'b'))}).ok());
  EXPECT_EQ(store_->State().staged_checkpoint(), 1u);
  EXPECT_EQ(store_->State().staged_digest(), digest_);
  Reopen();
  EXPECT_EQ(store_->State().committed_checkpoint(), 0u);
  EXPECT_EQ(store_->State().staged_checkpoint(), 1u);
  EXPECT_EQ(store_->State().staged_digest(), digest_);
  ASSERT_TRUE(store_->Commit(1, digest_).ok());
  EXPECT_EQ(Tree().size(), 2u);
  EXPECT_EQ(store_->State().staged_checkpoint(), 0u);
}

// A push cut short (no manifest yet) is discarded at restart, leftovers and
// all.
TEST_F(StoreTest, PartialStagingIsDiscardedAtRestart) {
  {
    gwmirror::v1::PushBegin b;
    b.set_checkpoint(1);
    auto session = store_->BeginPush(b);
    ASSERT_TRUE(session.ok());
    gwmirror::v1::FileHeader h;
    *h.mutable_entry() = F("a", "xyz").entry;
    h.set_encoding(gwmirror::v1::ENCODING_WHOLE);
    ASSERT_TRUE((*session)->BeginFile(h).ok());
    ASSERT_TRUE((*session)->FileData("xyz").ok());
    ASSERT_TRUE((*session)->EndFile().ok());
  }
  Reopen();
  EXPECT_EQ(store_->State().staged_checkpoint(), 0u);
  EXPECT_NE(access((dir_ / "state/replica/staging").c_str(), F_OK), 0);
}

TEST_F(StoreTest, AbortDiscardsStaging) {
  ASSERT_TRUE(Push(1, {F("a", "1")}).ok());
  ASSERT_TRUE(store_->Abort(1).ok());
  EXPECT_EQ(store_->Commit(1, digest_).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Tree().size(), 0u);
  EXPECT_NE(access((dir_ / "state/replica/staging/1").c_str(), F_OK), 0);
}

TEST_F(StoreTest, AdoptsExistingTreeAsCheckpointZero) {
  testing::WriteFile(dir_ / "host/r/pre", "existing");
  config_.set_state_dir(dir_ / "state2");
  Reopen();
  EXPECT_EQ(store_->State().committed_checkpoint(), 0u);
  EXPECT_NE(store_->CommittedManifest().Find("r/pre"), nullptr);
  // Absent from the next checkpoint: deleted.
  ASSERT_TRUE(PushAndCommit(1, {F("a", "1")}).ok());
  EXPECT_NE(access((dir_ / "host/r/pre").c_str(), F_OK), 0);
}

// Regression: a redo that finds a file already linked to its staged inode
// left "<name>.gwmirror-tmp" behind (rename(2) of two links to one inode is
// a no-op).
TEST_F(StoreTest, RedoOverPlacedFilesLeavesNoTemporaryNames) {
  std::vector<Item> next = {F("a", "1"), D("d"), F("d/b", "2")};
  ASSERT_TRUE(Push(1, next).ok());
  SetFaultSpec("enospc:commit:record:1");  // Fails after the whole apply.
  EXPECT_FALSE(store_->Commit(1, digest_).ok());
  SetFaultSpec("");
  Reopen();  // Redo applies everything a second time.
  EXPECT_EQ(store_->State().committed_checkpoint(), 1u);
  std::vector<Entry> want;
  for (auto& i : next) want.push_back(i.entry);
  EXPECT_EQ(testing::Diff(*Manifest::FromEntries(want), Tree()), "");
}

TEST_F(StoreTest, ManifestDeltaCannotRemoveWhatTheBaseLacks) {
  ASSERT_TRUE(PushAndCommit(1, {F("a", "1")}).ok());
  gwmirror::v1::PushBegin b;
  b.set_checkpoint(2);
  b.set_base_checkpoint(1);
  b.set_manifest_delta(true);
  auto s = store_->BeginPush(b);
  ASSERT_TRUE(s.ok());
  gwmirror::v1::ManifestPart part;
  part.add_removed("r/never-there");
  ASSERT_TRUE((*s)->AddManifest(part).ok());
  auto r = (*s)->End(std::string(32, 'x'));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("r/never-there"), std::string::npos);
}

TEST_F(StoreTest, ManifestDeltaRebuildsTheWholeManifest) {
  ASSERT_TRUE(PushAndCommit(1, {F("a", "1"), F("b", "2"), D("d")}).ok());
  gwmirror::v1::PushBegin b;
  b.set_checkpoint(2);
  b.set_base_checkpoint(1);
  b.set_manifest_delta(true);
  Item c = F("c", "3");
  {
    auto s = store_->BeginPush(b);
    ASSERT_TRUE(s.ok());
    gwmirror::v1::FileHeader h;
    *h.mutable_entry() = c.entry;
    h.set_encoding(gwmirror::v1::ENCODING_WHOLE);
    ASSERT_TRUE((*s)->BeginFile(h).ok());
    ASSERT_TRUE((*s)->FileData("3").ok());
    ASSERT_TRUE((*s)->EndFile().ok());
    gwmirror::v1::ManifestPart part;
    *part.add_entries() = c.entry;
    part.add_removed("r/b");
    ASSERT_TRUE((*s)->AddManifest(part).ok());
    auto want =
        Manifest::FromEntries({F("a", "1").entry, c.entry, D("d").entry});
    digest_ = DigestBytes(want->ComputeDigest());
    ASSERT_TRUE((*s)->End(digest_).ok());
  }
  ASSERT_TRUE(store_->Commit(2, digest_).ok());
  EXPECT_EQ(testing::Diff(*Manifest::FromEntries(
                              {F("a", "1").entry, c.entry, D("d").entry}),
                          Tree()),
            "");
}

// ------------------------------------------------------------ pre-stage pool

class PrestageTest : public StoreTest {
 protected:
  // A pre-stage push of whole files; no manifest.
  absl::StatusOr<gwmirror::v1::PushResult> Prestage(
      const std::vector<Item>& items) {
    gwmirror::v1::PushBegin b;
    b.set_prestage(true);
    b.set_base_checkpoint(store_->State().committed_checkpoint());
    auto session = store_->BeginPush(b);
    if (!session.ok()) return session.status();
    for (const Item& i : items) {
      gwmirror::v1::FileHeader h;
      *h.mutable_entry() = i.entry;
      h.set_encoding(gwmirror::v1::ENCODING_WHOLE);
      absl::Status st = (*session)->BeginFile(h);
      if (st.ok()) st = (*session)->FileData(i.content);
      if (st.ok()) st = (*session)->EndFile();
      if (!st.ok()) return st;
    }
    return (*session)->End("");
  }

  // Checkpoint n with every file announced as pre-staged.
  absl::StatusOr<gwmirror::v1::PushResult> PushPrestaged(
      uint64_t n, const std::vector<Item>& items) {
    gwmirror::v1::PushBegin b;
    b.set_checkpoint(n);
    b.set_base_checkpoint(store_->State().committed_checkpoint());
    auto session = store_->BeginPush(b);
    if (!session.ok()) return session.status();
    std::vector<Entry> entries;
    gwmirror::v1::ManifestPart part;
    for (const Item& i : items) {
      entries.push_back(i.entry);
      *part.add_entries() = i.entry;
      gwmirror::v1::FileHeader h;
      *h.mutable_entry() = i.entry;
      h.set_encoding(gwmirror::v1::ENCODING_PRESTAGED);
      absl::Status st = (*session)->BeginFile(h);
      if (st.ok()) st = (*session)->EndFile();
      if (!st.ok()) return st;
    }
    absl::Status st = (*session)->AddManifest(part);
    if (!st.ok()) return st;
    auto m = Manifest::FromEntries(entries);
    digest_ = DigestBytes(m->ComputeDigest());
    return (*session)->End(digest_);
  }
};

TEST_F(PrestageTest, PrestagedContentCommitsWithoutBeingSentAgain) {
  ASSERT_TRUE(PushAndCommit(1, {F("a", "1")}).ok());
  Item big = F("big", std::string(300000, 'q'));
  auto pre = Prestage({big});
  ASSERT_TRUE(pre.ok()) << pre.status();
  EXPECT_EQ(pre->files_received(), 1u);
  // Nothing staged as a checkpoint, the committed tree untouched.
  EXPECT_EQ(store_->State().staged_checkpoint(), 0u);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "host/r/big"));
  auto r = PushPrestaged(2, {big});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->resend_whole_size(), 0);
  ASSERT_TRUE(store_->Commit(2, digest_).ok());
  EXPECT_EQ(testing::ReadFile(dir_ / "host/r/big"), big.content);
  // The commit used the pool's copy: it is gone from the pool, so the tree's
  // inode is not shared with anything.
  struct stat st;
  ASSERT_EQ(stat((dir_ / "host/r/big").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "state/replica/prestage"));
}

TEST_F(PrestageTest, MissingPoolObjectIsAskedForWhole) {
  Item f = F("x", "content");
  auto r = PushPrestaged(1, {f});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->resend_whole_size(), 1);
  EXPECT_EQ(r->resend_whole(0), "r/x");
  // The source resends it whole: complete.
  ASSERT_TRUE(PushAndCommit(1, {f}).ok());
  EXPECT_EQ(testing::ReadFile(dir_ / "host/r/x"), "content");
}

TEST_F(PrestageTest, RestartEmptiesThePoolUnderANewId) {
  Item f = F("x", "content");
  ASSERT_TRUE(Prestage({f}).ok());
  uint64_t pool = store_->State().prestage_pool();
  Reopen();
  EXPECT_NE(store_->State().prestage_pool(), pool);
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "state/replica/prestage"));
  auto r = PushPrestaged(1, {f});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->resend_whole_size(), 1);
}

TEST_F(PrestageTest, HostileOrMisplacedMessagesAreRefused) {
  gwmirror::v1::PushBegin b;
  b.set_prestage(true);
  b.set_checkpoint(5);
  EXPECT_TRUE(absl::IsInvalidArgument(store_->BeginPush(b).status()));
  b.set_checkpoint(0);
  b.set_base_checkpoint(7);
  EXPECT_TRUE(absl::IsAborted(store_->BeginPush(b).status()));
  b.set_base_checkpoint(0);
  {
    auto s = store_->BeginPush(b);
    ASSERT_TRUE(s.ok());
    gwmirror::v1::ManifestPart part;
    *part.add_entries() = F("x", "1").entry;
    auto st = (*s)->AddManifest(part);
    EXPECT_TRUE(absl::IsInvalidArgument(st));
    gwmirror::v1::FileHeader h;
    *h.mutable_entry() = F("x", "1").entry;
    h.set_encoding(gwmirror::v1::ENCODING_PRESTAGED);
    st = (*s)->BeginFile(h);
    EXPECT_TRUE(absl::StrContains(st.message(), "pre-stage pool")) << st;
    EXPECT_TRUE(absl::IsInvalidArgument((*s)->End("digest").status()));
  }
  // Data after a pre-staged header.
  gwmirror::v1::PushBegin n;
  n.set_checkpoint(1);
  auto s = store_->BeginPush(n);
  ASSERT_TRUE(s.ok());
  gwmirror::v1::FileHeader h;
  *h.mutable_entry() = F("x", "1").entry;
  h.set_encoding(gwmirror::v1::ENCODING_PRESTAGED);
  ASSERT_TRUE((*s)->BeginFile(h).ok());
  EXPECT_TRUE(absl::IsInvalidArgument((*s)->FileData("1")));
}

TEST_F(PrestageTest, PoolIsCappedAndTrimmedAfterTwoCommits) {
  config_.mutable_replica()->set_prestage_max_bytes(1000);
  Reopen();
  auto r = Prestage({F("big", std::string(1001, 'b'))});
  EXPECT_TRUE(absl::IsResourceExhausted(r.status())) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "pool is full"));
  // An unused version is dropped once two commits went by without it.
  ASSERT_TRUE(Prestage({F("unused", "never committed")}).ok());
  EXPECT_FALSE(std::filesystem::is_empty(dir_ / "state/replica/prestage"));
  ASSERT_TRUE(PushAndCommit(1, {F("a", "1")}).ok());
  EXPECT_FALSE(std::filesystem::is_empty(dir_ / "state/replica/prestage"));
  ASSERT_TRUE(PushAndCommit(2, {F("a", "2")}).ok());
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "state/replica/prestage"));
}

// Regression (issue 17, finding 6): a declared size near 2^64 wrapped the
// pool's capacity check and let 16 MiB be written before failing.
TEST_F(PrestageTest, ASizeNearTwoToTheSixtyFourIsRefusedBeforeAnyWrite) {
  gwmirror::v1::PushBegin b;
  b.set_prestage(true);
  auto s = store_->BeginPush(b);
  ASSERT_TRUE(s.ok());
  gwmirror::v1::FileHeader h;
  *h.mutable_entry() = F("huge", "x").entry;
  h.mutable_entry()->set_size(~uint64_t{0} - 7);
  h.set_encoding(gwmirror::v1::ENCODING_WHOLE);
  absl::Status st = (*s)->BeginFile(h);
  EXPECT_TRUE(absl::IsResourceExhausted(st)) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "r/huge")) << st;
  EXPECT_TRUE(absl::IsInvalidArgument((*s)->FileData(std::string(4096, 'x'))))
      << "no file is open to write to";
  EXPECT_TRUE(std::filesystem::is_empty(dir_ / "state/replica/prestage"));
}

// A checkpoint push is bounded by the disk's reserve, not only by the disk:
// a declared size that does not fit is refused by name before a byte.
TEST_F(StoreTest, AFileThatDoesNotFitAboveTheReserveIsRefusedByName) {
  gwmirror::v1::PushBegin b;
  b.set_checkpoint(1);
  auto s = store_->BeginPush(b);
  ASSERT_TRUE(s.ok());
  gwmirror::v1::FileHeader h;
  *h.mutable_entry() = F("dump.sql", "x").entry;
  h.mutable_entry()->set_size(uint64_t{1} << 62);
  h.set_encoding(gwmirror::v1::ENCODING_WHOLE);
  absl::Status st = (*s)->BeginFile(h);
  EXPECT_TRUE(absl::IsResourceExhausted(st)) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "r/dump.sql")) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "needs 4611686018427387904"))
      << st;
  EXPECT_TRUE(
      std::filesystem::is_empty(dir_ / "state/replica/staging/1/objects"));
}

// Regression (issue 17, finding 4): manifest parts were buffered without a
// bound until PushEnd (92 MB of entries raised the replica by 108 MB) and
// checked only there.
TEST_F(StoreTest, ManifestPartsAreCheckedAsTheyArriveAndBoundedByBytes) {
  config_.mutable_replica()->set_max_push_manifest_bytes(256 << 10);
  Reopen();
  gwmirror::v1::PushBegin b;
  b.set_checkpoint(1);
  b.set_manifest_delta(true);
  {
    auto s = store_->BeginPush(b);
    ASSERT_TRUE(s.ok());
    gwmirror::v1::ManifestPart bad;
    Item evil = F("x", "1");
    evil.entry.set_path("r/../../etc/passwd");
    *bad.add_entries() = evil.entry;
    EXPECT_TRUE(absl::IsInvalidArgument((*s)->AddManifest(bad)))
        << "refused at once, not at PushEnd";
  }
  auto s = store_->BeginPush(b);
  ASSERT_TRUE(s.ok());
  // Paths of about 4 KiB (components are at most 255 bytes).
  std::string deep;
  for (int i = 0; i < 15; ++i) deep += std::string(250, 'a' + i) + "/";
  absl::Status st;
  int parts = 0;
  for (; parts < 100 && st.ok(); ++parts) {
    gwmirror::v1::ManifestPart part;
    for (int i = 0; i < 8; ++i) {
      Item f = F(deep + std::to_string(parts * 8 + i), "1");
      *part.add_entries() = f.entry;
    }
    st = (*s)->AddManifest(part);
  }
  EXPECT_TRUE(absl::IsResourceExhausted(st)) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "max_push_manifest_bytes")) << st;
  EXPECT_LT(parts, 10) << "refused once the bytes pass the bound";
}

// Regression (issue 17, finding 5): the replica checked only that a path
// lay under a root, so a push could commit etc/init.d/anything where the
// root mirrors only vshell-* (a script the standby's init system runs).
TEST_F(StoreTest, TheReplicaAdmitsOnlyWhatItsOwnMirrorSetMirrors) {
  gwmirror::v1::RootConfig* init = config_.add_roots();
  init->set_path("init");
  init->add_include("vshell-*");
  Reopen();
  Item dir = D("x");
  dir.entry.set_path("init");
  auto with = [&](const std::string& path, const std::string& content) {
    Item f = F("x", content);
    f.entry.set_path(path);
    return f;
  };
  // A file the include rules do not name, sent as content or only listed.
  for (bool listed_only : {false, true}) {
    gwmirror::v1::PushBegin b;
    b.set_checkpoint(1);
    auto s = store_->BeginPush(b);
    ASSERT_TRUE(s.ok());
    Item evil = with("init/anything", "#!/bin/sh\nrm -rf /\n");
    absl::Status st;
    if (listed_only) {
      gwmirror::v1::ManifestPart part;
      *part.add_entries() = evil.entry;
      st = (*s)->AddManifest(part);
    } else {
      gwmirror::v1::FileHeader h;
      *h.mutable_entry() = evil.entry;
      h.set_encoding(gwmirror::v1::ENCODING_WHOLE);
      st = (*s)->BeginFile(h);
    }
    EXPECT_TRUE(absl::IsPermissionDenied(st)) << st;
    EXPECT_TRUE(absl::StrContains(st.message(), "init/anything")) << st;
    EXPECT_TRUE(absl::StrContains(st.message(), "include")) << st;
  }
  // Excluded paths (a default exclude here), as a directory or below one.
  auto r = Push(1, {D("logs")});
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
  r = Push(1, {F("trace.pid", "1")});
  EXPECT_TRUE(absl::IsPermissionDenied(r.status())) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "excludes"))
      << r.status();
  EXPECT_FALSE(std::filesystem::exists(dir_ / "host/init/anything"));
  // What the rules admit goes through.
  ASSERT_TRUE(PushAndCommit(1, {with("init/vshell-gw1", "#!/bin/sh\n"),
                                F("conf/a.xml", "<a/>"), D("conf")})
                  .ok());
  EXPECT_EQ(testing::ReadFile(dir_ / "host/init/vshell-gw1"), "#!/bin/sh\n");
}

// Regression (issue 17, finding 5): a committed entry that the config no
// longer mirrors was dropped from the manifest by the drift check and left
// in the tree, untracked for good.
TEST_F(StoreTest, DriftCheckNeverLeavesAFileItStopsTracking) {
  ASSERT_TRUE(
      PushAndCommit(1, {D("keep"), F("keep/a", "1"), F("b", "2")}).ok());
  config_.mutable_roots(0)->add_exclude("keep");
  Reopen();
  auto drifted = store_->CheckDrift(/*rehash=*/true);
  ASSERT_TRUE(drifted.ok()) << drifted.status();
  Manifest m = store_->CommittedManifest();
  EXPECT_NE(m.Find("r/keep/a"), nullptr) << "still tracked";
  EXPECT_NE(m.Find("r/keep"), nullptr);
  EXPECT_GT(store_->State().drifted_entries(), 0u) << "a cut is wanted";
  // The next checkpoint (its source excludes them too) removes them.
  ASSERT_TRUE(PushAndCommit(2, {F("b", "2")}).ok());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "host/r/keep"));
  EXPECT_EQ(store_->CheckDrift(/*rehash=*/true).value_or(-1), 0);
}

// ------------------------------------------------------------ drift repair

TEST_F(StoreTest, DriftCheckFindsNothingAfterCleanCommits) {
  ASSERT_TRUE(PushAndCommit(
                  1, {D("d"), F("d/a", "1"), F("b", "2", 0600), L("l", "d/a")})
                  .ok());
  ASSERT_TRUE(
      PushAndCommit(2, {D("d"), F("d/a", "11"), F("c", "3"), L("l", "c")})
          .ok());
  auto n = store_->CheckDrift(/*rehash=*/true);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 0);
  n = store_->CheckDrift(/*rehash=*/false);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 0);
  EXPECT_EQ(store_->State().drifted_entries(), 0u);
}

TEST_F(StoreTest, DriftIsRecordedAsItIsSoTheNextCutRepairsIt) {
  Item a = F("a", std::string(5000, 'a'));
  Item b = F("b", "bee");
  Item c = F("c", "sea");
  ASSERT_TRUE(PushAndCommit(1, {a, b, c}).ok());
  std::string digest = store_->State().manifest_digest();
  // Hand edits on the standby: a edited (same size, mtime put back), b
  // deleted, c chmodded, d added.
  std::string edited(5000, 'a');
  edited[10] = 'X';
  testing::WriteFile(dir_ / "host/r/a", edited);
  struct timespec times[2] = {
      {a.entry.mtime_ns() / 1000000000, a.entry.mtime_ns() % 1000000000},
      {a.entry.mtime_ns() / 1000000000, a.entry.mtime_ns() % 1000000000}};
  ASSERT_EQ(utimensat(AT_FDCWD, (dir_ / "host/r/a").c_str(), times, 0), 0);
  ASSERT_EQ(unlink((dir_ / "host/r/b").c_str()), 0);
  ASSERT_EQ(chmod((dir_ / "host/r/c").c_str(), 0600), 0);
  testing::WriteFile(dir_ / "host/r/d", "stray");
  auto n = store_->CheckDrift(/*rehash=*/false);
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 4);
  gwmirror::v1::ReplicaState s = store_->State();
  EXPECT_EQ(s.committed_checkpoint(), 1u);
  EXPECT_EQ(s.drifted_entries(), 4u);
  EXPECT_NE(s.manifest_digest(), digest);
  // The committed manifest now says what is really there.
  Manifest m = store_->CommittedManifest();
  EXPECT_EQ(m.Find("r/b"), nullptr);
  ASSERT_NE(m.Find("r/a"), nullptr);
  EXPECT_EQ(m.Find("r/a")->sha256(), DigestBytes(Sha256Of(edited)));
  EXPECT_EQ(m.Find("r/c")->mode(), 0600u);
  ASSERT_NE(m.Find("r/d"), nullptr);
  // A second look finds nothing new; the count holds until a commit.
  n = store_->CheckDrift(false);
  EXPECT_EQ(*n, 0);
  EXPECT_EQ(store_->State().drifted_entries(), 4u);
  // The next checkpoint, diffed against that manifest, repairs everything.
  ASSERT_TRUE(PushAndCommit(2, {a, b, c}).ok());
  EXPECT_EQ(testing::ReadFile(dir_ / "host/r/a"), a.content);
  EXPECT_EQ(testing::ReadFile(dir_ / "host/r/b"), "bee");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "host/r/d"));
  struct stat st;
  ASSERT_EQ(stat((dir_ / "host/r/c").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  EXPECT_EQ(store_->State().drifted_entries(), 0u);
  EXPECT_EQ(*store_->CheckDrift(true), 0);
}

TEST_F(StoreTest, DriftCheckStandsAsideWhileACheckpointIsStaged) {
  ASSERT_TRUE(PushAndCommit(1, {F("a", "1")}).ok());
  ASSERT_TRUE(Push(2, {F("a", "2")}).ok());
  ASSERT_EQ(unlink((dir_ / "host/r/a").c_str()), 0);
  auto n = store_->CheckDrift(true);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, -1);
  // The staged checkpoint commits; the deleted file is placed again.
  ASSERT_TRUE(store_->Commit(2, digest_).ok());
  EXPECT_EQ(testing::ReadFile(dir_ / "host/r/a"), "2");
}

// ------------------------------------------------------------------ History

#define ASSERT_OK(e)            \
  do {                          \
    absl::Status s_ = (e);      \
    ASSERT_TRUE(s_.ok()) << s_; \
  } while (0)

class HistoryTest : public StoreTest {
 protected:
  // The standby tree of checkpoint n, restored into a fresh directory.
  Manifest Restored(uint64_t n) {
    auto m = store_->history().LoadManifest(n);
    EXPECT_TRUE(m.ok()) << m.status();
    std::string dest = dir_ / absl::StrCat("restore-", n, "-", ++restores_);
    uint64_t bytes = 0;
    absl::Status st = RestoreTree(store_->history(), *m, dest, &bytes);
    EXPECT_TRUE(st.ok()) << st;
    return testing::Snapshot(dest,
                             {config_.roots().begin(), config_.roots().end()});
  }
  Manifest Want(const std::vector<Item>& items) {
    std::vector<Entry> e;
    for (const Item& i : items) e.push_back(i.entry);
    return *Manifest::FromEntries(e);
  }
  // A, B, C: edits, a deletion, an addition, a chmod, a new link.
  std::vector<Item> a_ = {F("dump.sql", Text(4000)), F("gone", "bye"),
                          D("conf", 0750), F("conf/x.props", "x=1\n", 0600)};
  std::vector<Item> b_ = {F("dump.sql", Text(4000, 17, "changed")),
                          D("conf", 0750), F("conf/x.props", "x=2\n", 0640),
                          F("new", "hello")};
  std::vector<Item> c_ = {F("dump.sql", Text(4100, 3000, "again")),
                          D("conf", 0750), F("conf/x.props", "x=2\n", 0600),
                          L("link", "conf/x.props")};
  int restores_ = 0;
};

TEST_F(HistoryTest, OlderCheckpointsRestoreExactlyAfterLaterChanges) {
  ASSERT_OK(PushAndCommit(1, a_));
  ASSERT_OK(PushAndCommit(2, b_));
  ASSERT_OK(PushAndCommit(3, c_));
  // Before and after the background compaction into increments.
  for (bool compacted : {false, true}) {
    if (compacted) ASSERT_TRUE(store_->MaintainHistory(/*gc=*/true).ok());
    EXPECT_EQ(testing::Diff(Want(a_), Restored(1)), "") << compacted;
    EXPECT_EQ(testing::Diff(Want(b_), Restored(2)), "") << compacted;
    EXPECT_EQ(testing::Diff(Want(c_), Restored(3)), "") << compacted;
  }
  // The 160 KB dump's older versions are deltas, not copies.
  EXPECT_LT(store_->history().TotalBytes(), 40'000u);
  std::vector<HistoryPoint> points = store_->history().Points();
  ASSERT_EQ(points.size(), 4u);  // 0 (the adopted empty tree), 1, 2, 3.
  EXPECT_EQ(points[2].checkpoint, 2u);
  EXPECT_EQ(points[2].added, 1u);    // new
  EXPECT_EQ(points[2].changed, 2u);  // dump.sql, conf/x.props
  EXPECT_EQ(points[2].removed, 1u);  // gone
  // And after a restart.
  Reopen();
  EXPECT_EQ(testing::Diff(Want(a_), Restored(1)), "");
}

TEST_F(HistoryTest, ExpiryAroundAPinnedCheckpointKeepsItsChain) {
  config_.mutable_replica()->mutable_retention()->set_max_count(1);
  Reopen();
  ASSERT_OK(PushAndCommit(1, a_));
  ASSERT_OK(PushAndCommit(2, b_));
  ASSERT_TRUE(store_->Commit(2, digest_, {2}).ok());  // A retry pins too.
  ASSERT_TRUE(Push(3, c_).ok());
  ASSERT_TRUE(store_->Commit(3, digest_, {2}).ok());
  std::vector<Item> d = c_;
  d[0] = F("dump.sql", Text(4100, 5, "fourth"));
  auto r = Push(4, d);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE(store_->Commit(4, digest_, {2}).ok());
  ASSERT_TRUE(store_->MaintainHistory(/*gc=*/true).ok());
  std::vector<uint64_t> kept;
  for (const HistoryPoint& p : store_->history().Points()) {
    kept.push_back(p.checkpoint);
  }
  EXPECT_EQ(kept, (std::vector<uint64_t>{2, 4}));
  EXPECT_EQ(testing::Diff(Want(b_), Restored(2)), "");
  EXPECT_EQ(testing::Diff(Want(d), Restored(4)), "");
  auto gone = store_->history().LoadManifest(3);
  EXPECT_TRUE(absl::IsNotFound(gone.status()));
  EXPECT_TRUE(absl::StrContains(gone.status().message(), "retained: 2, 4"))
      << gone.status();
}

TEST_F(HistoryTest, RetentionTiersKeepOnePerBucket) {
  gwmirror::v1::RetentionConfig p;
  auto* t = p.add_tiers();
  t->set_within_ms(60'000);  // Everything for a minute,
  t = p.add_tiers();
  t->set_within_ms(3'600'000);  // then one per 10 minutes for an hour.
  t->set_every_ms(600'000);
  const absl::Time now = absl::FromUnixMillis(10'000'000);
  std::vector<HistoryPoint> points;
  // Every 4 minutes for 2 hours, the newest now.
  for (int i = 0; i <= 30; ++i) {
    HistoryPoint h;
    h.checkpoint = i + 1;
    h.committed_unix_ms = 10'000'000 - (30 - i) * 240'000;
    points.push_back(h);
  }
  std::vector<uint64_t> expired = ChooseExpired(points, {3}, p, now);
  std::set<uint64_t> gone(expired.begin(), expired.end());
  EXPECT_FALSE(gone.count(31));  // The newest.
  EXPECT_FALSE(gone.count(3));   // Pinned, though two hours old.
  EXPECT_TRUE(gone.count(1));    // Older than every tier.
  // Within the hour, one per 10-minute bucket survives.
  std::map<int64_t, int> per_bucket;
  for (const HistoryPoint& h : points) {
    int64_t age = 10'000'000 - h.committed_unix_ms;
    if (gone.count(h.checkpoint) || age <= 60'000 || age > 3'600'000) continue;
    ++per_bucket[h.committed_unix_ms / 600'000];
  }
  EXPECT_GE(per_bucket.size(), 5u);
  for (auto [bucket, n] : per_bucket) EXPECT_EQ(n, 1) << bucket;
  p.set_max_count(4);
  expired = ChooseExpired(points, {3}, p, now);
  EXPECT_EQ(points.size() - expired.size(), 5u);  // 4 and the pinned one.
}

TEST_F(HistoryTest, VerifyNamesACorruptIncrementAndStandbyFileRepairFixes) {
  ASSERT_OK(PushAndCommit(1, a_));
  ASSERT_OK(PushAndCommit(2, b_));
  ASSERT_TRUE(store_->MaintainHistory(true).ok());
  auto clean = store_->Verify(false);
  ASSERT_TRUE(clean.ok()) << clean.status();
  EXPECT_EQ(clean->problems_size(), 0) << clean->problems(0);
  EXPECT_GT(clean->versions_checked(), 0u);
  // Checkpoint 1's dump.sql lives only as an increment now.
  std::string obj =
      dir_ / "state/replica/history/objects/" + HexOf(a_[0].entry.sha256());
  testing::FlipByte(obj, 100);
  testing::FlipByte(dir_ / "host/r/new", 1);
  auto r = store_->Verify(false);
  ASSERT_TRUE(r.ok()) << r.status();
  std::string all = absl::StrJoin(r->problems(), "\n");
  EXPECT_EQ(r->tree_differences(), 1u);
  EXPECT_TRUE(absl::StrContains(all, "standby file r/new differs")) << all;
  EXPECT_TRUE(absl::StrContains(all, "stored increment " + obj)) << all;
  EXPECT_TRUE(absl::StrContains(all, "r/dump.sql in checkpoint 1")) << all;
  EXPECT_EQ(store_->State().drifted_entries(), 0u);  // Only reported.
  // Repair: the standby file is recorded for the next cut (which brings
  // production's copy); the lost increment cannot come back.
  r = store_->Verify(true);
  ASSERT_TRUE(r.ok());
  all = absl::StrJoin(r->problems(), "\n");
  EXPECT_TRUE(absl::StrContains(all, "cannot be repaired")) << all;
  EXPECT_EQ(store_->State().drifted_entries(), 1u);
  ASSERT_TRUE(PushAndCommit(3, b_).ok());
  EXPECT_EQ(testing::ReadFile(dir_ / "host/r/new"), "hello");
}

// Regression: a verify beside a pre-stage push was sent away ("a push or
// commit is under way"), and under continuous mirroring one always is.
// A report reads beside a push; a repair waits for it to end.
TEST_F(HistoryTest, VerifyReadsBesideAPushAndARepairWaitsForIt) {
  ASSERT_OK(PushAndCommit(1, a_));
  gwmirror::v1::PushBegin b;
  b.set_prestage(true);
  b.set_base_checkpoint(1);
  auto session = store_->BeginPush(b);
  ASSERT_TRUE(session.ok()) << session.status();
  auto r = store_->Verify(false);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->committed_checkpoint(), 1u);
  EXPECT_EQ(r->problems_size(), 0);
  std::thread end([&] {
    absl::SleepFor(absl::Milliseconds(300));
    session->reset();  // The push ends.
  });
  r = store_->Verify(true);
  end.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->problems_size(), 0);
}

TEST_F(HistoryTest, RollbackBringsTheTreeToAnOlderCheckpoint) {
  ASSERT_OK(PushAndCommit(1, a_));
  ASSERT_OK(PushAndCommit(2, b_));
  ASSERT_OK(PushAndCommit(3, c_));
  ASSERT_TRUE(store_->MaintainHistory(true).ok());
  ASSERT_TRUE(store_->Rollback(1).ok());
  EXPECT_EQ(store_->State().committed_checkpoint(), 1u);
  EXPECT_EQ(testing::Diff(Want(a_), testing::Snapshot(dir_ / "host",
                                                      {config_.roots().begin(),
                                                       config_.roots().end()})),
            "");
  // Checkpoint 3 is still retained and restorable.
  EXPECT_EQ(testing::Diff(Want(c_), Restored(3)), "");
  Reopen();
  EXPECT_EQ(store_->State().committed_checkpoint(), 1u);
  auto none = store_->history().LoadManifest(99);
  EXPECT_TRUE(absl::IsNotFound(none.status()));
  EXPECT_FALSE(store_->Rollback(99).ok());
}

TEST_F(HistoryTest, CrashWhilePreservingIsFinishedAtRestart) {
  ASSERT_OK(PushAndCommit(1, a_));
  ASSERT_TRUE(Push(2, b_).ok());
  SetFaultSpec("enospc:history:preserve:2");
  EXPECT_FALSE(store_->Commit(2, digest_).ok());
  SetFaultSpec("");
  Reopen();
  EXPECT_EQ(store_->State().committed_checkpoint(), 2u);
  ASSERT_TRUE(store_->MaintainHistory(true).ok());
  EXPECT_EQ(testing::Diff(Want(a_), Restored(1)), "");
  EXPECT_EQ(testing::Diff(Want(b_), Restored(2)), "");
}

// Regression (found by history_bench): every version of a file (and every
// manifest) was a delta against the next, so the chain from the oldest grew
// with every checkpoint until reading it failed ("delta chain too long").
// Chains are now cut by a whole copy before they pass 16 links.
TEST_F(HistoryTest, LongHistoriesKeepDeltaChainsShort) {
  std::vector<Item> v;
  for (int i = 1; i <= 40; ++i) {
    v = {F("dump.sql", Text(2000, i, absl::StrCat("version ", i)))};
    ASSERT_OK(PushAndCommit(i, v));
    ASSERT_OK(store_->MaintainHistory());
  }
  for (int i : {1, 2, 20, 39}) {
    std::vector<Item> want = {
        F("dump.sql", Text(2000, i, absl::StrCat("version ", i)))};
    EXPECT_EQ(testing::Diff(Want(want), Restored(i)), "") << i;
  }
  // Still mostly deltas: far less than 40 copies.
  EXPECT_LT(store_->history().TotalBytes(), 8 * v[0].content.size());
}

}  // namespace
}  // namespace gwmirror

namespace gwmirror {
namespace {

// Regression (issue 18): a damaged commit time in a history point was read
// as 0 (an unchecked SimpleAtoi), and retention would then have expired a
// checkpoint as fifty years old. It is refused, naming the file.
TEST_F(StoreTest, ADamagedHistoryPointIsRefusedNotReadAsZero) {
  ASSERT_TRUE(PushAndCommit(1, {F("a", "1")}).ok());
  ASSERT_TRUE(PushAndCommit(2, {F("a", "2")}).ok());
  const std::string point = dir_ / "state/replica/history/points/1";
  std::string text = testing::ReadFile(point);
  size_t at = text.find("committed_unix_ms ");
  ASSERT_NE(at, std::string::npos) << text;
  text.replace(at + 18, 3, "x!?");
  testing::WriteFile(point, text, 0600);
  store_.reset();
  auto s = ReplicaStore::Open(config_);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kDataLoss) << s.status();
  EXPECT_TRUE(absl::StrContains(s.status().message(), point)) << s.status();
}

}  // namespace
}  // namespace gwmirror

namespace gwmirror {
namespace {

// A real full disk (issue 18): the standby's root and state on a small
// tmpfs this test mounts. A file that cannot fit is refused by name with
// the space it needs before a byte is written; one that fills the disk
// while it is written fails RESOURCE_EXHAUSTED; the committed tree stays
// as it was; once space is freed, the same push goes through.
class FullDiskTest : public StoreTest {
 protected:
  void SetUp() override {
    mount_ = dir_ / "small";
    ASSERT_EQ(mkdir(mount_.c_str(), 0700), 0);
    if (mount("gwmirror-test", mount_.c_str(), "tmpfs", 0, "size=8m") != 0) {
      GTEST_SKIP() << "cannot mount a tmpfs here (needs root): "
                   << strerror(errno);
    }
    mounted_ = true;
    config_.set_slot("gw1");
    config_.set_host_root(mount_ + "/host");
    config_.set_state_dir(mount_ + "/state");
    config_.add_roots()->set_path("r");
    // 8 MiB small: keep 512 KiB free rather than 5 % of it.
    config_.mutable_replica()->set_min_free_bytes(512 << 10);
    Reopen();
  }
  void TearDown() override {
    store_.reset();
    if (mounted_) umount2(mount_.c_str(), MNT_DETACH);
  }
  std::string mount_;
  bool mounted_ = false;
};

TEST_F(FullDiskTest, PushesFailByNameAndResumeOnceSpaceIsFreed) {
  ASSERT_TRUE(PushAndCommit(1, {F("keep.xml", "<keep/>")}).ok());
  const Manifest committed = Tree();
  // Larger than the file system: refused before any write.
  auto r = Push(2, {F("keep.xml", "<keep/>"), F("huge.sql", Text(400000))});
  ASSERT_TRUE(absl::IsResourceExhausted(r.status())) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), "r/huge.sql"));
  EXPECT_TRUE(absl::StrContains(r.status().message(), "needs")) << r.status();
  // It fits when its header arrives, but something else fills the disk
  // before its bytes do: the write itself meets ENOSPC.
  const std::string dump = Text(40000);  // About 1.3 MB.
  {
    gwmirror::v1::PushBegin b;
    b.set_checkpoint(2);
    b.set_base_checkpoint(1);
    auto session = store_->BeginPush(b);
    ASSERT_TRUE(session.ok()) << session.status();
    gwmirror::v1::FileHeader h;
    *h.mutable_entry() = F("dump.sql", dump).entry;
    h.set_encoding(gwmirror::v1::ENCODING_WHOLE);
    ASSERT_TRUE((*session)->BeginFile(h).ok());
    struct statvfs fs;
    ASSERT_EQ(statvfs(mount_.c_str(), &fs), 0);
    testing::WriteFile(mount_ + "/filler",
                       std::string(fs.f_bavail * fs.f_frsize - 4096, 'f'));
    absl::Status st = (*session)->FileData(dump);
    ASSERT_TRUE(absl::IsResourceExhausted(st)) << st;
    EXPECT_TRUE(absl::StrContains(st.message(), "r/dump.sql")) << st;
  }
  EXPECT_EQ(testing::Diff(committed, Tree()), "") << "the tree is untouched";
  EXPECT_EQ(store_->State().committed_checkpoint(), 1u);
  // Space is freed: the same push goes through, nothing else needed.
  ASSERT_EQ(unlink((mount_ + "/filler").c_str()), 0);
  ASSERT_TRUE(
      PushAndCommit(2, {F("keep.xml", "<keep/>"), F("dump.sql", dump)}).ok());
  EXPECT_EQ(testing::ReadFile(mount_ + "/host/r/dump.sql"), dump);
}

}  // namespace
}  // namespace gwmirror

namespace gwmirror {
namespace {

// A large file is staged past the page cache: its whole blocks with
// O_DIRECT from an aligned buffer, its tail through the page cache; data
// arriving in pieces of any size, whole or as a delta (its basis read
// past the page cache too), lands exactly. A write the file system
// refuses that way (EINVAL) goes through the page cache instead, and the
// file is still exact.
TEST_F(StoreTest, ALargeFileIsStagedPastThePageCacheExactly) {
  config_.mutable_replica()->set_direct_io_min_bytes(1 << 20);
  Reopen();
  const bool direct = testing::TakesDirectIo(dir_.path());
  // Two of the session's 4 MiB pieces and a tail not a block long.
  std::string v1 = Text(310000);
  v1.resize((9 << 20) + 4096 + 13, 'x');
  std::string v2 = v1;
  v2.replace(5 << 20, 6, "edited");
  // How many files the push wrote, and how many bases it read, directly.
  using Direct = std::pair<uint64_t, uint64_t>;
  auto push = [&](uint64_t n, const std::string& content, bool delta,
                  const std::string& basis) -> absl::StatusOr<Direct> {
    gwmirror::v1::PushBegin b;
    b.set_checkpoint(n);
    b.set_base_checkpoint(n - 1);
    ASSIGN_OR_RETURN(auto s, store_->BeginPush(b));
    Item item = F("dump.sql", content);
    gwmirror::v1::FileHeader h;
    *h.mutable_entry() = item.entry;
    std::string data = content;
    if (delta) {
      h.set_encoding(gwmirror::v1::ENCODING_DELTA);
      h.set_basis_sha256(DigestBytes(Sha256Of(basis)));
      ASSIGN_OR_RETURN(auto sig, SignatureOf(basis, 2048));
      ASSIGN_OR_RETURN(data, DeltaOf(sig, content));
    } else {
      h.set_encoding(gwmirror::v1::ENCODING_WHOLE);
    }
    RETURN_IF_ERROR(s->BeginFile(h));
    // Pieces that never line up with a block or the session's buffer.
    for (size_t at = 0; at < data.size(); at += (1 << 20) + 7) {
      RETURN_IF_ERROR(
          s->FileData(absl::string_view(data).substr(at, (1 << 20) + 7)));
    }
    RETURN_IF_ERROR(s->EndFile());
    gwmirror::v1::ManifestPart part;
    *part.add_entries() = item.entry;
    RETURN_IF_ERROR(s->AddManifest(part));
    digest_ = DigestBytes(testing::ManifestOf({item}).ComputeDigest());
    ASSIGN_OR_RETURN(auto r, s->End(digest_));
    if (r.resend_whole_size() != 0) return absl::InternalError("resend");
    const Direct direct{s->files_written_direct(), s->bases_read_direct()};
    s.reset();  // The push ends.
    RETURN_IF_ERROR(store_->Commit(n, digest_));
    return direct;
  };
  const uint64_t d = direct ? 1 : 0;
  auto r = push(1, v1, /*delta=*/false, "");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, Direct(d, 0));
  EXPECT_EQ(testing::ReadFile(dir_ / "host/r/dump.sql"), v1);
  // Its signature, read past the page cache too, is the file's: its
  // first, middle and last blocks' sums.
  std::string sig;
  ASSERT_TRUE(store_
                  ->Signature("r/dump.sql", DigestBytes(Sha256Of(v1)), 2048,
                              [&](absl::string_view s) {
                                sig.append(s.data(), s.size());
                                return absl::OkStatus();
                              })
                  .ok());
  auto parsed = BlockSignature::Parse(sig);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->blocks(), (v1.size() + 2047) / 2048);
  for (uint32_t b : {0u, parsed->blocks() / 2, parsed->blocks() - 1}) {
    const absl::string_view block =
        absl::string_view(v1).substr(b * 2048, 2048);
    EXPECT_EQ(parsed->weak(b), RabinKarpSum(block)) << b;
    uint8_t strong[32];
    parsed->StrongSum(block, strong);
    EXPECT_EQ(memcmp(parsed->strong(b), strong, parsed->strong_len()), 0) << b;
  }
  r = push(2, v2, /*delta=*/true, v1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, Direct(d, d));
  EXPECT_EQ(testing::ReadFile(dir_ / "host/r/dump.sql"), v2);
  EXPECT_EQ(Tree().Find("r/dump.sql")->sha256(), DigestBytes(Sha256Of(v2)));
  {
    // A copy of it to a second path reads it past the page cache too.
    gwmirror::v1::PushBegin b;
    b.set_checkpoint(3);
    b.set_base_checkpoint(2);
    auto s = store_->BeginPush(b);
    ASSERT_TRUE(s.ok()) << s.status();
    const Item dump = F("dump.sql", v2), copy = F("copy.sql", v2);
    gwmirror::v1::FileHeader h;
    *h.mutable_entry() = copy.entry;
    h.set_encoding(gwmirror::v1::ENCODING_COPY);
    h.set_basis_path("r/dump.sql");
    h.set_basis_sha256(copy.entry.sha256());
    ASSERT_TRUE((*s)->BeginFile(h).ok());
    ASSERT_TRUE((*s)->EndFile().ok());
    gwmirror::v1::ManifestPart part;
    for (const Item* i : {&copy, &dump}) *part.add_entries() = i->entry;
    ASSERT_TRUE((*s)->AddManifest(part).ok());
    digest_ = DigestBytes(testing::ManifestOf({copy, dump}).ComputeDigest());
    ASSERT_TRUE((*s)->End(digest_).ok());
    EXPECT_EQ((*s)->files_written_direct(), d);
    EXPECT_EQ((*s)->bases_read_direct(), d);
    s->reset();
    ASSERT_TRUE(store_->Commit(3, digest_).ok());
    EXPECT_EQ(testing::ReadFile(dir_ / "host/r/copy.sql"), v2);
  }
  // Below the size, the page cache as before.
  r = push(4, "small", /*delta=*/false, "");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(*r, Direct(0, 0));
}

// A replica under `dir`/w staging files of 4 KiB or more past the page
// cache.
gwmirror::v1::NodeConfig DirectConfig(const testing::TempDir& dir) {
  gwmirror::v1::NodeConfig config;
  config.set_slot("gw1");
  config.set_host_root(dir / "w/host");
  config.set_state_dir(dir / "w/state");
  config.add_roots()->set_path("r");
  config.mutable_replica()->set_direct_io_min_bytes(4096);
  return config;
}

// A dump of two of the session's 4 MiB pieces and a tail.
std::string TwoPiecesAndATail() {
  std::string content = Text(300000);
  content.resize((8 << 20) + 100, 'y');
  return content;
}

TEST(PushSessionDirectTest, AWriteRefusedPastThePageCacheGoesThroughIt) {
  testing::TempDir dir;
  testing::FaultInjectionEnv env(dir / "w", dir / "attic");
  if (!testing::TakesDirectIo(dir.path())) {
    GTEST_SKIP() << dir.path() << " takes no O_DIRECT write";
  }
  auto store = ReplicaStore::Open(DirectConfig(dir), &env, false);
  ASSERT_TRUE(store.ok()) << store.status();
  const std::string content = TwoPiecesAndATail();
  env.FailNext("write", ".part", EINVAL);
  std::string digest;
  auto r =
      testing::PushItems(store->get(), 1, {F("dump.sql", content)}, &digest);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE((*store)->Commit(1, digest).ok());
  EXPECT_EQ(testing::ReadFile(dir / "w/host/r/dump.sql"), content);
}

// A file system that refuses O_DIRECT outright: the large file is staged
// through the page cache, exactly. The same push where O_DIRECT is taken
// writes it directly (the control: the refusal is what changed the way).
TEST(PushSessionDirectTest,
     AFileSystemRefusingDirectIoStagesThroughThePageCache) {
  const std::string content = TwoPiecesAndATail();
  for (bool refuse : {true, false}) {
    SCOPED_TRACE(refuse ? "O_DIRECT refused" : "O_DIRECT taken");
    testing::TempDir dir;
    if (!refuse && !testing::TakesDirectIo(dir.path())) continue;
    testing::FaultInjectionEnv env(dir / "w", dir / "attic");
    auto store = ReplicaStore::Open(DirectConfig(dir), &env, false);
    ASSERT_TRUE(store.ok()) << store.status();
    if (refuse) env.FailNext("setfl", "", EINVAL, 1000);
    gwmirror::v1::PushBegin b;
    b.set_checkpoint(1);
    auto s = (*store)->BeginPush(b);
    ASSERT_TRUE(s.ok()) << s.status();
    const Item item = F("dump.sql", content);
    gwmirror::v1::FileHeader h;
    *h.mutable_entry() = item.entry;
    h.set_encoding(gwmirror::v1::ENCODING_WHOLE);
    ASSERT_TRUE((*s)->BeginFile(h).ok());
    ASSERT_TRUE((*s)->FileData(content).ok());
    ASSERT_TRUE((*s)->EndFile().ok());
    gwmirror::v1::ManifestPart part;
    *part.add_entries() = item.entry;
    ASSERT_TRUE((*s)->AddManifest(part).ok());
    const std::string digest =
        DigestBytes(testing::ManifestOf({item}).ComputeDigest());
    auto r = (*s)->End(digest);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ((*s)->files_written_direct(), refuse ? 0u : 1u);
    s->reset();
    ASSERT_TRUE((*store)->Commit(1, digest).ok());
    EXPECT_EQ(testing::ReadFile(dir / "w/host/r/dump.sql"), content);
  }
}

// Regression (issue 18): the restore of drills and imports applied metadata
// its own way and did not normalise a time before 1970 (negative
// nanoseconds), which utimensat refuses; the commit's writer did. Both go
// through one writer now.
TEST_F(StoreTest, ATimeBefore1970IsRestoredAsCommitted) {
  Item old = F("ancient.txt", "from the sixties");
  old.entry.set_mtime_ns(-1'500'000'000LL);  // 1969-12-31 23:59:58.5
  ASSERT_TRUE(PushAndCommit(1, {old}).ok());
  struct stat st;
  ASSERT_EQ(lstat((dir_ / "host/r/ancient.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, -2);
  EXPECT_EQ(st.st_mtim.tv_nsec, 500'000'000);
  auto m = store_->history().LoadManifest(1);
  ASSERT_TRUE(m.ok()) << m.status();
  uint64_t bytes = 0;
  absl::Status rs =
      RestoreTree(store_->history(), *m, dir_ / "restored", &bytes);
  ASSERT_TRUE(rs.ok()) << rs;
  ASSERT_EQ(lstat((dir_ / "restored/r/ancient.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mtim.tv_sec, -2);
  EXPECT_EQ(st.st_mtim.tv_nsec, 500'000'000);
}

}  // namespace
}  // namespace gwmirror

namespace gwmirror {
namespace {

// Regression (issue 18, found by the kill storm): a replica restarted with
// a complete staging kept for the coordinator refuses to re-read its tree
// until that staging is settled, and the drift checker retried the re-read
// in a loop without waiting (4 GB of log lines in a minute). It retries
// once an interval, and re-reads once the staging is settled.
TEST_F(StoreTest, ARefusedReReadIsRetriedOnceAnIntervalNotInALoop) {
  ASSERT_TRUE(PushAndCommit(1, {F("a", "1")}).ok());
  ASSERT_TRUE(Push(2, {F("a", "2")}).ok());  // Staged, not committed.
  gwmirror::v1::ReplicaConfig rc;
  rc.set_drift_check_interval_ms(200);
  DriftChecker checker(store_.get(), rc, [] {});
  checker.Start();
  checker.SetReplicaRole(false);  // Was a source: its tree is stale.
  checker.SetReplicaRole(true);
  absl::SleepFor(absl::Seconds(1));
  EXPECT_GE(checker.readopt_attempts(), 1u);
  EXPECT_LE(checker.readopt_attempts(), 8u) << "retried in a loop";
  EXPECT_TRUE(store_->stale());
  ASSERT_TRUE(store_->Abort(2).ok());
  for (int i = 0; i < 30 && store_->stale(); ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_FALSE(store_->stale()) << "re-read once the staging was settled";
}

// A stale replica's incomplete staging is dropped by the re-read: no push
// can continue it (pushes wait for the re-read) and nothing can commit it.
TEST_F(StoreTest, ARereadDropsAStagingNoPushCompleted) {
  ASSERT_TRUE(PushAndCommit(1, {F("a", "1")}).ok());
  {
    gwmirror::v1::PushBegin b;
    b.set_checkpoint(2);
    b.set_base_checkpoint(1);
    auto session = store_->BeginPush(b);
    ASSERT_TRUE(session.ok()) << session.status();
  }  // Cut off before its end.
  store_->MarkStale();
  ASSERT_TRUE(store_->Readopt().ok());
  EXPECT_FALSE(store_->stale());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "state/replica/staging/2"));
  // A complete staging is the coordinator's to settle, and says so.
  ASSERT_TRUE(Push(2, {F("a", "2")}).ok());
  store_->MarkStale();
  absl::Status st = store_->Readopt();
  EXPECT_TRUE(absl::IsUnavailable(st)) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "checkpoint 2 is staged here"))
      << st;
}

}  // namespace
}  // namespace gwmirror
