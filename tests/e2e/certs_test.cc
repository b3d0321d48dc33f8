// `gwmirror certs` on a fresh machine: what it issues a node accepts and
// serves with; a node given an expired certificate or one from another CA
// refuses to start and says why; a client from another CA is refused at
// the handshake; `certs list` flags what a node would refuse.
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "common/tls.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

using testing::Bin;

using testing::RunResult;

class CertsTest : public ::testing::Test {
 protected:
  RunResult Certs(std::vector<std::string> args) {
    args.insert(args.begin(), {Bin("gwmirror"), "certs"});
    return testing::Run(args);
  }
  gwmirror::v1::TlsConfig Tls(const std::string& pki, const std::string& name) {
    gwmirror::v1::TlsConfig t;
    t.set_ca_file(pki + "/ca/ca.pem");
    t.set_cert_file(pki + "/certs/" + name + ".pem");
    t.set_key_file(pki + "/certs/" + name + ".key");
    return t;
  }
  // Writes a replica-only node config with `tls`; returns its path.
  std::string NodeConfig(const gwmirror::v1::TlsConfig& tls,
                         const std::string& name) {
    gwmirror::v1::NodeConfig c;
    c.set_slot("gw1");
    c.set_host_root(dir_ / "root");
    c.set_state_dir(dir_ / (name + "-state"));
    *c.mutable_tls() = tls;
    c.add_roots()->set_path("opt");
    c.mutable_replica()->set_source_identity("gw1-production");
    c.mutable_replica()->add_controller_identities("operator");
    c.set_listen("127.0.0.1:0");
    c.set_port_file(dir_ / (name + ".port"));
    std::string path = dir_ / (name + ".json");
    testing::WriteFile(path, ToJson(c));
    return path;
  }
  RunResult Health(const gwmirror::v1::TlsConfig& tls, int port) {
    gwmirror::v1::CliConfig cli;
    *cli.mutable_tls() = tls;
    cli.set_coordinator(absl::StrCat("127.0.0.1:", port));
    cli.set_coordinator_identity("gw1-standby");
    testing::WriteFile(dir_ / "cli.json", ToJson(cli));
    return testing::Run({Bin("gwmirror"), "health", "--config",
                         dir_ / "cli.json", "--service",
                         "gwmirror.v1.Replica"});
  }

  testing::TempDir dir_;
};

TEST_F(CertsTest, IssuedCertificatesServeAndBadOnesAreRefusedByName) {
  const std::string pki = dir_ / "pki";
  RunResult r = Certs({"init", "--dir", pki});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Certs({"init", "--dir", pki});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.err, "a CA already exists")) << r.err;
  for (const char* name : {"gw1-standby", "operator"}) {
    r = Certs({"issue", "--dir", pki, "--name", name, "--host",
               "gw1.example.com,10.1.2.3"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_TRUE(absl::StrContains(r.out, "valid until")) << r.out;
    EXPECT_TRUE(absl::StrContains(r.out, "gw1.example.com, 10.1.2.3")) << r.out;
  }
  r = Certs({"issue", "--dir", pki, "--name", "operator"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.err, "pass --renew")) << r.err;
  r = Certs({"issue", "--dir", pki, "--name", "operator", "--renew"});
  EXPECT_EQ(r.exit_code, 0) << r.err;

  // What certs issued, a node serves with.
  testing::Child node({Bin("gwmirror-node"), "serve", "--config",
                       NodeConfig(Tls(pki, "gw1-standby"), "good")});
  int port = testing::WaitForPort(dir_ / "good.port");
  ASSERT_GT(port, 0);
  r = Health(Tls(pki, "operator"), port);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "SERVING")) << r.out;

  // Another CA's material, consistent in itself: the client side accepts
  // it, the node refuses the handshake.
  const std::string other = dir_ / "other";
  ASSERT_EQ(Certs({"init", "--dir", other}).exit_code, 0);
  ASSERT_EQ(Certs({"issue", "--dir", other, "--name", "operator"}).exit_code,
            0);
  ASSERT_EQ(Certs({"issue", "--dir", other, "--name", "gw1-standby"}).exit_code,
            0);
  r = Health(Tls(other, "operator"), port);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_FALSE(absl::StrContains(r.out, "SERVING")) << r.out;

  // A node given another CA's certificate does not start.
  gwmirror::v1::TlsConfig foreign = Tls(other, "gw1-standby");
  foreign.set_ca_file(pki + "/ca/ca.pem");
  r = testing::Run({Bin("gwmirror-node"), "serve", "--config",
                    NodeConfig(foreign, "foreign")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(
      r.err, absl::StrCat(other,
                          "/certs/gw1-standby.pem (\"gw1-standby\", "
                          "issued by \"gwmirror cluster CA\") is not "
                          "issued by the cluster CA in ",
                          pki, "/ca/ca.pem")))
      << r.err;

  // Nor one that expired.
  IssueOptions o;
  o.not_before = absl::Now() - absl::Hours(24 * 30);
  o.days = 7;
  auto expired = IssueCertificate(pki + "/ca", "gw1-old", pki + "/certs", o);
  ASSERT_TRUE(expired.ok()) << expired.status();
  r = testing::Run({Bin("gwmirror-node"), "serve", "--config",
                    NodeConfig(*expired, "expired")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "gw1-old.pem (\"gw1-old\") expired on"))
      << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "gwmirror certs issue")) << r.err;

  // certs list names each certificate; the expired one fails the listing.
  r = Certs({"list", "--dir", pki});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_TRUE(absl::StrContains(r.out, "gw1-standby")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "REFUSED: certificate")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.err, "1 certificate(s)")) << r.err;
}

}  // namespace
}  // namespace gwmirror
