#include "common/tls.h"

#include "absl/strings/match.h"
#include "common/grpc_status.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "gwmirror/v1/coordinator.grpc.pb.h"
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

// A daemon takes a renewed certificate without a restart; renewed material
// that does not check out is refused and the old one stays; channels of a
// reloading process still check the server's name.
TEST(TlsTest, ReloaderTakesRenewedMaterialAndKeepsCheckingNames) {
  testing::TempDir dir;
  testing::Pki pki(dir.path());
  auto server_tls = pki.Issue("srv");
  auto client_tls = pki.Issue("cli");
  auto server_reload = TlsReloader::Start(server_tls, dir / "srv-state");
  ASSERT_TRUE(server_reload.ok()) << server_reload.status();
  auto client_reload = TlsReloader::Start(client_tls, dir / "cli-state");
  ASSERT_TRUE(client_reload.ok()) << client_reload.status();
  grpc::ServerBuilder builder;
  // A sync server needs one sync service; its methods are never called.
  gwmirror::v1::Control::Service unused;
  builder.RegisterService(&unused);
  int port = 0;
  auto server = StartServer(builder, server_tls, "127.0.0.1:0", "", &port, {});
  ASSERT_TRUE(server.ok()) << server.status();
  const std::string address = absl::StrCat("127.0.0.1:", port);
  // The server certificate a new connection sees (its not_after), or the
  // call's failure.
  auto served = [&](const std::string& name) -> absl::StatusOr<absl::Time> {
    auto ch = DialMutualTls(client_tls, address, name);
    if (!ch.ok()) return ch.status();
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(5));
    grpc::health::v1::HealthCheckRequest req;
    grpc::health::v1::HealthCheckResponse resp;
    grpc::Status st =
        grpc::health::v1::Health::NewStub(*ch)->Check(&ctx, req, &resp);
    if (!st.ok()) return FromGrpc(st);
    auto pem = ctx.auth_context()->FindPropertyValues("x509_pem_cert");
    if (pem.empty()) return absl::InternalError("no peer certificate");
    auto info = InspectCertificate(
        absl::string_view(pem.front().data(), pem.front().size()), "peer");
    if (!info.ok()) return info.status();
    return info->not_after;
  };
  auto first = served("srv");
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(served("another-name").ok()) << "the server's name is checked";
  // Renewed with another lifetime: taken at the next reload.
  IssueOptions o;
  o.days = 100;
  ASSERT_TRUE(IssueCertificate(dir / "ca", "srv", dir / "certs", o).ok());
  ASSERT_TRUE((*server_reload)->Reload().ok());
  absl::StatusOr<absl::Time> now_served = first;
  for (int i = 0; i < 50 && now_served.ok() && *now_served == *first; ++i) {
    absl::SleepFor(absl::Milliseconds(100));  // gRPC's watcher: 1 s.
    now_served = served("srv");
  }
  ASSERT_TRUE(now_served.ok()) << now_served.status();
  EXPECT_NEAR(absl::ToDoubleHours(*now_served - absl::Now()) / 24, 100, 1);
  // A key that is not the certificate's is refused; the server goes on
  // with what it has.
  testing::WriteFile(server_tls.key_file(),
                     testing::ReadFile(client_tls.key_file()), 0600);
  absl::Status st = (*server_reload)->Reload();
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_TRUE(absl::StrContains(st.message(), "does not match")) << st;
  absl::SleepFor(absl::Milliseconds(1500));
  auto still = served("srv");
  ASSERT_TRUE(still.ok()) << still.status();
  EXPECT_EQ(*still, *now_served);
  StopServer(server->get());
}

}  // namespace
}  // namespace gwmirror
