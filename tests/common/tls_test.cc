#include "common/tls.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

TEST(TlsTest, IssuesKeysPrivateAndCredentialsLoad) {
  testing::TempDir dir;
  testing::Pki pki(dir.path());
  auto tls = pki.Issue("node-a");
  struct stat st;
  ASSERT_EQ(stat(tls.key_file().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_TRUE(MakeServerCredentials(tls).ok());
  EXPECT_TRUE(DialMutualTls(tls, "127.0.0.1:1", "node-b").ok());
  gwmirror::v1::TlsConfig missing = tls;
  missing.set_key_file(dir / "nope.key");
  EXPECT_EQ(MakeServerCredentials(missing).status().code(),
            absl::StatusCode::kNotFound);
  gwmirror::v1::TlsConfig empty;
  EXPECT_EQ(MakeServerCredentials(empty).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// What `gwmirror certs` issues is accepted; an expired certificate, one
// from another CA and a key that is not the certificate's are refused before
// any connection, each with a message naming the file and the problem.
TEST(TlsTest, RefusesExpiredForeignAndMismatchedMaterialByName) {
  testing::TempDir dir;
  ASSERT_TRUE(CreateCa(dir / "ca", "cluster CA").ok());
  ASSERT_TRUE(CreateCa(dir / "other", "other CA").ok());
  IssueOptions o;
  o.hosts = {"gw1.example.com", "10.0.0.7", "::1"};
  auto good = IssueCertificate(dir / "ca", "gw1-standby", dir / "certs", o);
  ASSERT_TRUE(good.ok()) << good.status();
  auto info = CheckTlsMaterial(*good, absl::Now());
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->subject, "gw1-standby");
  EXPECT_EQ(info->issuer, "cluster CA");
  EXPECT_FALSE(info->is_ca);
  EXPECT_NEAR(absl::ToDoubleHours(info->not_after - absl::Now()) / 24, 825, 1);
  EXPECT_EQ(info->hosts,
            (std::vector<std::string>{"gw1-standby", "localhost", "127.0.0.1",
                                      "gw1.example.com", "10.0.0.7", "::1"}));
  EXPECT_TRUE(MakeServerCredentials(*good).ok());

  IssueOptions old;
  old.not_before = absl::Now() - absl::Hours(24 * 10);
  old.days = 2;
  auto expired = IssueCertificate(dir / "ca", "gw1-old", dir / "certs", old);
  ASSERT_TRUE(expired.ok());
  for (const auto& st :
       {CheckTlsMaterial(*expired, absl::Now()).status(),
        MakeServerCredentials(*expired).status(),
        DialMutualTls(*expired, "127.0.0.1:1", "x").status()}) {
    EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(absl::StrContains(st.message(), "gw1-old.pem"));
    EXPECT_TRUE(absl::StrContains(st.message(), "expired on")) << st;
  }
  auto early = CheckTlsMaterial(*good, absl::Now() - absl::Hours(48));
  EXPECT_TRUE(absl::StrContains(early.status().message(), "not valid before"))
      << early.status();

  auto foreign = IssueCertificate(dir / "other", "gw1-foreign", dir / "certs");
  ASSERT_TRUE(foreign.ok());
  foreign->set_ca_file(dir / "ca/ca.pem");
  auto st = MakeServerCredentials(*foreign).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(
      st.message(), "is not issued by the cluster CA in " + dir / "ca/ca.pem"))
      << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "issued by \"other CA\"")) << st;

  gwmirror::v1::TlsConfig mismatched = *good;
  mismatched.set_key_file(expired->key_file());
  st = CheckTlsMaterial(mismatched, absl::Now()).status();
  EXPECT_TRUE(absl::StrContains(st.message(), "does not match certificate"))
      << st;

  gwmirror::v1::TlsConfig not_ca = *good;
  not_ca.set_ca_file(good->cert_file());
  st = CheckTlsMaterial(not_ca, absl::Now()).status();
  EXPECT_TRUE(absl::StrContains(st.message(), "is not a CA certificate")) << st;
}

TEST(TlsTest, IssueRefusesNamesAndHostsThatAreNotHostNames) {
  testing::TempDir dir;
  ASSERT_TRUE(CreateCa(dir / "ca", "cluster CA").ok());
  for (const char* name : {"", "a,b", "x/y", "*.example.com", "10.0.0.1"}) {
    EXPECT_EQ(IssueCertificate(dir / "ca", name, dir / "certs").status().code(),
              absl::StatusCode::kInvalidArgument)
        << name;
  }
  IssueOptions o;
  o.hosts = {"ok.example.com", "bad,IP:1.2.3.4"};
  auto st = IssueCertificate(dir / "ca", "node", dir / "certs", o).status();
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(st.message(), "bad,IP:1.2.3.4")) << st;
}

}  // namespace
}  // namespace gwmirror
