// The fencing epoch and its proof: who may raise it, and that a refused
// raise changes nothing (issue 17: one read carrying epoch 999999 from a
// source certificate used to wedge a replica until its epoch file was
// edited by hand).
#include "common/epoch.h"

#include "absl/strings/match.h"
#include "common/fd.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

class EpochTest : public ::testing::Test {
 protected:
  EpochTest() : pki_(dir_.path()) {
    coordinator_ = pki_.Issue("coordinator");
    operator_ = pki_.Issue("operator");
    node_ = pki_.Issue("gw1-production");
    authority_.ca_file = coordinator_.ca_file();
    authority_.issuers = {"coordinator", "operator"};
  }

  std::unique_ptr<EpochFile> Open() {
    auto f = EpochFile::Open(dir_ / "epoch", "this replica", authority_);
    EXPECT_TRUE(f.ok()) << f.status();
    return f.ok() ? *std::move(f) : nullptr;
  }

  gwmirror::v1::EpochGrant Grant(const gwmirror::v1::TlsConfig& by,
                                 uint64_t epoch) {
    auto g = SignEpochGrant(by, epoch, "standby", absl::Now());
    EXPECT_TRUE(g.ok()) << g.status();
    return *g;
  }

  testing::TempDir dir_;
  testing::Pki pki_;
  gwmirror::v1::TlsConfig coordinator_, operator_, node_;
  EpochAuthority authority_;
};

TEST_F(EpochTest, StaleIsRefusedNamingBothAndSurvivesARestart) {
  auto f = Open();
  ASSERT_TRUE(f->Check(1, {}).ok());
  ASSERT_TRUE(f->Check(5, Grant(coordinator_, 5)).ok());
  absl::Status st = f->Check(4, {});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(st.message(), "stale epoch 4"));
  EXPECT_TRUE(absl::StrContains(st.message(), "at epoch 5"));
  f = Open();
  EXPECT_EQ(f->Get(), 5u);
  EXPECT_FALSE(f->Check(4, {}).ok()) << "epoch must survive a restart";
  // The proof survives too: it is relayed with every message sent.
  gwmirror::v1::Envelope e = f->Stamp();
  EXPECT_EQ(e.epoch(), 5u);
  EXPECT_TRUE(VerifyEpochGrant(e.grant(), 5, authority_).ok());
}

// Regression (issue 17, finding 2): a newer epoch without proof is refused
// and leaves nothing behind.
TEST_F(EpochTest, AnUnprovenRaiseIsRefusedAndChangesNothing) {
  auto f = Open();
  ASSERT_TRUE(f->Check(1, {}).ok()) << "epoch 1 is where every cluster starts";
  absl::Status st = f->Check(999999, {});
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(st.message(), "999999")) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "missing")) << st;
  EXPECT_EQ(f->Get(), 1u);
  EXPECT_TRUE(f->Check(1, {}).ok()) << "the current epoch still works";
  EXPECT_EQ(Open()->Get(), 1u) << "nothing was persisted";
}

TEST_F(EpochTest, OnlyTrustedIssuersFromTheClusterCaCanProveAnEpoch) {
  auto f = Open();
  // A node's own certificate is from the CA but may not raise epochs.
  absl::Status st = f->Check(2, Grant(node_, 2));
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(st.message(), "gw1-production")) << st;
  // A grant of another epoch proves nothing about this one.
  st = f->Check(3, Grant(coordinator_, 2));
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(st.message(), "grant of epoch 2")) << st;
  // Any change to what was signed breaks the signature.
  gwmirror::v1::EpochGrant forged = Grant(coordinator_, 2);
  forged.set_epoch(9);
  st = f->Check(9, forged);
  EXPECT_TRUE(absl::StrContains(st.message(), "signature")) << st;
  forged = Grant(coordinator_, 2);
  forged.set_active_site("production");
  EXPECT_FALSE(f->Check(2, forged).ok());
  // A "coordinator" certificate from a foreign CA.
  testing::TempDir other;
  testing::Pki foreign(other.path());
  st = f->Check(2, Grant(foreign.Issue("coordinator"), 2));
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(absl::StrContains(st.message(), "cluster CA")) << st;
  EXPECT_EQ(f->Get(), 0u);
  // The coordinator and an operator (a forced promote) may.
  EXPECT_TRUE(f->Check(2, Grant(coordinator_, 2)).ok());
  EXPECT_TRUE(f->Check(3, Grant(operator_, 3)).ok());
  EXPECT_EQ(f->Get(), 3u);
}

TEST_F(EpochTest, ADamagedEpochFileIsDataLoss) {
  ASSERT_TRUE(WriteFileAtomic(dir_ / "epoch", "7\ngrant !!!\n").ok());
  auto f = EpochFile::Open(dir_ / "epoch", "this replica", authority_);
  EXPECT_EQ(f.status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(WriteFileAtomic(dir_ / "epoch", "7\n").ok());
  EXPECT_EQ(Open()->Get(), 7u) << "an epoch without a grant line still reads";
}

}  // namespace
}  // namespace gwmirror
