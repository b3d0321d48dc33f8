// Who may call what, checked on a running sandbox against the table in
// docs/ARCHITECTURE.md ("Who may call what"), both ways: every method is
// called as every kind of identity; an allowed caller passes the permission
// check (whatever the call then says), every other one is refused with
// PERMISSION_DENIED, and a refused call changes nothing (each sends the
// request that would do the most harm had it been let through). Then a
// flood from one node certificate, during which the operator's status keeps
// answering within a second (issue 17).
#include "common/authz.h"

#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <atomic>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/tls.h"
#include "gwmirror/v1/coordinator.grpc.pb.h"
#include "gwmirror/v1/replica.grpc.pb.h"
#include "tests/e2e/sandbox_fixture.h"

namespace gwmirror {
namespace {

// The identity kinds of the table, and one more that holds nothing.
const char* const kKinds[] = {"source",   "replica", "coordinator",
                              "operator", "viewer",  "stranger"};

std::string CertOf(const std::string& kind) {
  if (kind == "source") return "gw1-production";
  if (kind == "replica") return "gw1-standby";
  return kind;
}

// method -> kinds allowed, as docs/ARCHITECTURE.md says.
std::map<std::string, std::set<std::string>> DocumentedTable() {
  std::ifstream in(std::string(GWMIRROR_SOURCE_DIR) + "/docs/ARCHITECTURE.md");
  std::stringstream text;
  text << in.rdbuf();
  std::map<std::string, std::set<std::string>> out;
  std::vector<std::string> columns;
  for (absl::string_view line : absl::StrSplit(text.str(), '\n')) {
    if (absl::StartsWith(line, "| method | source |")) {
      for (absl::string_view c : absl::StrSplit(line, '|', absl::SkipEmpty())) {
        columns.emplace_back(absl::StripAsciiWhitespace(c));
      }
      continue;
    }
    if (columns.empty()) continue;
    if (!absl::StartsWith(line, "|")) break;  // The table's end.
    if (!absl::StartsWith(line, "| `")) continue;
    std::vector<std::string> cells;
    for (absl::string_view c : absl::StrSplit(line, '|', absl::SkipEmpty())) {
      cells.emplace_back(absl::StripAsciiWhitespace(c));
    }
    EXPECT_EQ(cells.size(), columns.size()) << line;
    std::string method(
        absl::StripSuffix(absl::StripPrefix(cells[0], "`"), "`"));
    std::set<std::string>& allowed = out[method];
    for (size_t i = 1; i < cells.size() && i < columns.size(); ++i) {
      if (cells[i] == "yes") allowed.insert(columns[i]);
    }
  }
  return out;
}

class AuthzTest : public ClusterTest {
 protected:
  std::shared_ptr<grpc::Channel> Channel(const std::string& kind,
                                         const std::string& address,
                                         const std::string& server) {
    auto ch = DialMutualTls(Tls(CertOf(kind)), address, server);
    EXPECT_TRUE(ch.ok()) << ch.status();
    return *ch;
  }
  std::unique_ptr<gwmirror::v1::Replica::Stub> Replica(const std::string& k) {
    return gwmirror::v1::Replica::NewStub(
        Channel(k, sb_.slots(0).standby().address(), "gw1-standby"));
  }
  std::unique_ptr<gwmirror::v1::Source::Stub> Source(const std::string& k) {
    return gwmirror::v1::Source::NewStub(
        Channel(k, sb_.slots(0).production().address(), "gw1-production"));
  }
  std::unique_ptr<gwmirror::v1::Coordinator::Stub> Coord(const std::string& k) {
    return gwmirror::v1::Coordinator::NewStub(
        Channel(k, sb_.coordinator(), "coordinator"));
  }
  std::unique_ptr<gwmirror::v1::Control::Stub> Control(const std::string& k) {
    return gwmirror::v1::Control::NewStub(
        Channel(k, sb_.coordinator(), "coordinator"));
  }

  // Calls `method` as `kind`: the harmless request when `allowed`, else
  // the most harmful one.
  grpc::Status Call(const std::string& method, const std::string& kind,
                    bool allowed);
};

gwmirror::v1::Envelope At(uint64_t epoch) {
  gwmirror::v1::Envelope e;
  e.set_epoch(epoch);
  return e;
}

template <typename Reader, typename Msg>
grpc::Status Drain(Reader reader, Msg msg) {
  while (reader->Read(&msg)) {
  }
  return reader->Finish();
}

grpc::Status AuthzTest::Call(const std::string& method, const std::string& kind,
                             bool allowed) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  const uint64_t harm_epoch = allowed ? 1 : 999999;
  const std::string service = method.substr(0, method.find('.'));
  const std::string name = method.substr(method.find('.') + 1);
  if (service == "Replica") {
    auto stub = Replica(kind);
    if (name == "GetState") {
      gwmirror::v1::GetStateRequest req;
      *req.mutable_envelope() = At(harm_epoch);
      gwmirror::v1::ReplicaState resp;
      return stub->GetState(&ctx, req, &resp);
    }
    if (name == "GetManifest") {
      gwmirror::v1::GetManifestRequest req;
      *req.mutable_envelope() = At(harm_epoch);
      return Drain(stub->GetManifest(&ctx, req), gwmirror::v1::ManifestBatch());
    }
    if (name == "GetSignature") {
      gwmirror::v1::GetSignatureRequest req;
      *req.mutable_envelope() = At(harm_epoch);
      req.add_targets()->set_path("opt/none");
      req.set_block_len(1024);
      return Drain(stub->GetSignature(&ctx, req),
                   gwmirror::v1::SignatureChunk());
    }
    if (name == "SampleContent") {
      gwmirror::v1::SampleContentRequest req;
      *req.mutable_envelope() = At(harm_epoch);
      auto* t = req.add_targets();
      t->set_path("opt/none");
      t->set_sha256(std::string(32, 'a'));
      gwmirror::v1::ContentSamples resp;
      return stub->SampleContent(&ctx, req, &resp);
    }
    if (name == "Push") {
      gwmirror::v1::PushResult resp;
      auto writer = stub->Push(&ctx, &resp);
      gwmirror::v1::PushMessage m;
      *m.mutable_begin()->mutable_envelope() = At(harm_epoch);
      m.mutable_begin()->set_checkpoint(999999);
      m.mutable_begin()->set_base_checkpoint(allowed ? 999998 : 1);
      writer->Write(m);
      writer->WritesDone();
      return writer->Finish();
    }
    if (name == "Commit") {
      gwmirror::v1::CommitRequest req;
      *req.mutable_envelope() = At(harm_epoch);
      req.set_checkpoint(999999);
      gwmirror::v1::CommitResult resp;
      return stub->Commit(&ctx, req, &resp);
    }
    if (name == "Abort") {
      gwmirror::v1::AbortRequest req;
      *req.mutable_envelope() = At(harm_epoch);
      req.set_checkpoint(999999);
      gwmirror::v1::AbortResult resp;
      return stub->Abort(&ctx, req, &resp);
    }
    if (name == "Activate") {
      gwmirror::v1::ActivateRequest req;
      *req.mutable_envelope() = At(harm_epoch);
      req.set_phase(allowed ? gwmirror::v1::ACTIVATION_PHASE_DRY_RUN
                            : gwmirror::v1::ACTIVATION_PHASE_CLAIM_ACTIVE);
      gwmirror::v1::ActivateResult resp;
      return stub->Activate(&ctx, req, &resp);
    }
    if (name == "Drill") {
      gwmirror::v1::DrillRequest req;
      *req.mutable_envelope() = At(1);
      req.set_drill_id(999);
      req.set_checkpoint(allowed ? 999999 : 0);
      gwmirror::v1::DrillResult resp;
      return stub->Drill(&ctx, req, &resp);
    }
    if (name == "ListHistory") {
      gwmirror::v1::ListHistoryRequest req;
      *req.mutable_envelope() = At(allowed ? 0 : 1);
      if (!allowed) {
        req.set_set_pins(true);
        req.add_pinned(1);
      }
      gwmirror::v1::HistoryList resp;
      return stub->ListHistory(&ctx, req, &resp);
    }
    if (name == "Export") {
      gwmirror::v1::ExportRequest req;
      *req.mutable_envelope() = At(1);
      req.set_checkpoint(allowed ? 999999 : 1);
      return Drain(stub->Export(&ctx, req), gwmirror::v1::ExportChunk());
    }
    if (name == "Verify") {
      gwmirror::v1::VerifyRequest req;
      *req.mutable_envelope() = At(1);
      req.set_repair(!allowed);
      gwmirror::v1::VerifyResult resp;
      return stub->Verify(&ctx, req, &resp);
    }
  } else if (service == "Source" && name == "Cut") {
    gwmirror::v1::CutRequest req;
    *req.mutable_envelope() = At(1);
    if (!allowed) {
      req.set_checkpoint(999);
      req.set_replica_address(sb_.slots(0).standby().address());
      req.set_replica_identity("gw1-standby");
    }
    gwmirror::v1::CutResult resp;
    return Source(kind)->Cut(&ctx, req, &resp);
  } else if (service == "Coordinator") {
    auto stub = Coord(kind);
    const bool standby = kind == "replica";
    if (name == "Register") {
      gwmirror::v1::RegisterRequest req;
      *req.mutable_envelope() = At(1);
      req.set_site(standby ? "standby" : "production");
      req.set_slot("gw1");
      req.set_address(standby ? sb_.slots(0).standby().address()
                              : sb_.slots(0).production().address());
      gwmirror::v1::RegisterResponse resp;
      return stub->Register(&ctx, req, &resp);
    }
    if (name == "Heartbeat") {
      gwmirror::v1::HeartbeatRequest req;
      *req.mutable_envelope() = At(0);  // Stale: refused before any update.
      gwmirror::v1::HeartbeatResponse resp;
      return stub->Heartbeat(&ctx, req, &resp);
    }
  } else if (service == "Control") {
    auto stub = Control(kind);
    if (name == "Status") {
      gwmirror::v1::ClusterStatus resp;
      return stub->Status(&ctx, {}, &resp);
    }
    if (name == "ListCheckpoints") {
      gwmirror::v1::CheckpointList resp;
      return stub->ListCheckpoints(&ctx, {}, &resp);
    }
    if (name == "ListDrills") {
      gwmirror::v1::DrillList resp;
      return stub->ListDrills(&ctx, {}, &resp);
    }
    if (name == "Audit") {
      gwmirror::v1::AuditList resp;
      return stub->Audit(&ctx, {}, &resp);
    }
    if (name == "CreateCheckpoint") {
      gwmirror::v1::CreateCheckpointRequest req;
      req.set_wait(!allowed);
      gwmirror::v1::CheckpointInfo resp;
      return stub->CreateCheckpoint(&ctx, req, &resp);
    }
    if (name == "Release") {
      gwmirror::v1::ReleaseRequest req;
      req.set_slot(allowed ? "none" : "gw1");
      gwmirror::v1::ReleaseResponse resp;
      return stub->Release(&ctx, req, &resp);
    }
    if (name == "Drill") {
      gwmirror::v1::StartDrillRequest req;
      req.set_checkpoint(allowed ? 999999 : 0);
      gwmirror::v1::DrillReport resp;
      return stub->Drill(&ctx, req, &resp);
    }
    if (name == "Promote") {
      gwmirror::v1::PromoteRequest req;
      req.set_dry_run(allowed);
      gwmirror::v1::PromoteReport resp;
      return stub->Promote(&ctx, req, &resp);
    }
    if (name == "Failback") {
      gwmirror::v1::FailbackRequest req;
      req.set_dry_run(allowed);
      gwmirror::v1::PromoteReport resp;
      return stub->Failback(&ctx, req, &resp);
    }
    if (name == "Pin") {
      gwmirror::v1::PinRequest req;
      req.set_checkpoint(allowed ? 999999 : 1);
      gwmirror::v1::PinResponse resp;
      return stub->Pin(&ctx, req, &resp);
    }
    if (name == "Verify") {
      gwmirror::v1::VerifyClusterRequest req;
      req.set_repair(!allowed);
      gwmirror::v1::VerifyReport resp;
      return stub->Verify(&ctx, req, &resp);
    }
  }
  ADD_FAILURE() << "the test cannot call " << method;
  return grpc::Status(grpc::StatusCode::UNIMPLEMENTED, method);
}

TEST_F(AuthzTest, EveryMethodAsEveryIdentityMatchesTheDocumentedTable) {
  Up(1);
  RunResult issued = testing::Run({Bin("gwmirror"), "certs", "issue", "--dir",
                                   Dir() + "/pki", "--name", "stranger"});
  ASSERT_EQ(issued.exit_code, 0) << issued.err;
  const auto table = DocumentedTable();
  // The document, the code's table and the protocol name the same methods.
  std::set<std::string> documented, coded, served;
  for (const auto& [m, kinds] : table) documented.insert(m);
  for (const MethodRule& r : AuthorizationTable()) coded.insert(r.method);
  const auto* pool = google::protobuf::DescriptorPool::generated_pool();
  for (const char* name : {"Replica", "Source", "Coordinator", "Control"}) {
    const auto* svc =
        pool->FindServiceByName(absl::StrCat("gwmirror.v1.", name));
    ASSERT_NE(svc, nullptr) << name;
    for (int i = 0; i < svc->method_count(); ++i) {
      served.insert(svc->name() + "." + svc->method(i)->name());
    }
  }
  EXPECT_EQ(documented, coded);
  EXPECT_EQ(documented, served);
  ASSERT_FALSE(documented.empty());

  const gwmirror::v1::ClusterStatus before = Status();
  int calls = 0;
  for (const auto& [method, allowed_kinds] : table) {
    for (const char* kind : kKinds) {
      const bool allowed = allowed_kinds.count(kind) > 0;
      grpc::Status st = Call(method, kind, allowed);
      ++calls;
      if (allowed) {
        EXPECT_NE(st.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << method << " as " << kind << ": " << st.error_message();
        EXPECT_NE(st.error_code(), grpc::StatusCode::UNIMPLEMENTED) << method;
        EXPECT_NE(st.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
            << method;
      } else {
        EXPECT_EQ(st.error_code(), grpc::StatusCode::PERMISSION_DENIED)
            << method << " as " << kind << ": " << st.error_message();
        EXPECT_TRUE(absl::StrContains(st.error_message(),
                                      absl::StrCat("may not call ", method)))
            << method << " as " << kind << ": " << st.error_message();
      }
    }
  }
  std::printf("authorization matrix: %d calls over %zu methods\n", calls,
              table.size());
  // Nothing a refused call asked for happened.
  gwmirror::v1::ClusterStatus after = Status();
  EXPECT_EQ(after.epoch(), 1u);
  EXPECT_EQ(after.active_site(), before.active_site());
  EXPECT_EQ(after.fenced_site(), "");
  RunResult pins = Cli({"checkpoints", "--json"});
  EXPECT_FALSE(absl::StrContains(pins.out, "\"pinned\": true")) << pins.out;
  {
    auto stub = Replica("operator");
    grpc::ClientContext ctx;
    gwmirror::v1::ReplicaState s;
    ASSERT_TRUE(stub->GetState(&ctx, {}, &s).ok());
    EXPECT_EQ(s.epoch(), 1u);
    EXPECT_FALSE(s.stale());
  }
  // The audit log holds the operator's acts, nobody else's.
  RunResult audit = Cli({"audit", "--json", "--limit", "1000"});
  ASSERT_EQ(audit.exit_code, 0) << audit.err;
  gwmirror::v1::AuditList list;
  ASSERT_TRUE(ParseJson(audit.out, "audit", &list).ok()) << audit.out;
  EXPECT_TRUE(list.chain_intact()) << list.chain_problem();
  std::set<std::string> actions;
  for (const auto& r : list.records()) {
    EXPECT_EQ(r.identity(), "operator") << ToJson(r);
    actions.insert(r.action());
  }
  for (const char* a : {"Control.Promote", "Control.Pin", "Control.Verify",
                        "Control.Release", "Control.Drill"}) {
    EXPECT_TRUE(actions.count(a)) << a << " not audited";
  }
  // The operator's direct calls on the standby node reach the coordinator's
  // log with the node's next heartbeats.
  const std::set<std::string> want = {"Replica.Commit",   "Replica.Abort",
                                      "Replica.Export",   "Replica.Verify",
                                      "Replica.Activate", "Replica.Drill"};
  std::set<std::string> on_node;
  for (int i = 0; i < 100 && on_node != want; ++i) {
    absl::SleepFor(absl::Milliseconds(200));
    audit = Cli({"audit", "--json", "--limit", "1000"});
    ASSERT_TRUE(ParseJson(audit.out, "audit", &list).ok()) << audit.out;
    on_node.clear();
    for (const auto& r : list.records()) {
      if (r.node() == "gw1-standby" && want.count(r.action())) {
        on_node.insert(r.action());
      }
    }
  }
  for (const std::string& a : want) {
    EXPECT_TRUE(on_node.count(a)) << a << " on the node not audited";
  }
  EXPECT_TRUE(list.chain_intact()) << list.chain_problem();
  // Still a working cluster.
  auto id = Checkpoint();
  EXPECT_TRUE(id.ok()) << id.status();
}

// Issue 17, finding 3: twenty concurrent calls carrying 16 MiB of metadata
// from one certificate took the coordinator from 138 to 581 MB and made
// `status` fail while they lasted.
TEST_F(AuthzTest, AFloodFromOneCertificateLeavesTheOperatorsStatusAnswering) {
  Up(1);
  auto rss_mb = [&](int pid) {
    auto text = ReadFileToString(absl::StrCat("/proc/", pid, "/status"));
    for (absl::string_view line : absl::StrSplit(*text, '\n')) {
      if (absl::ConsumePrefix(&line, "VmRSS:")) {
        int64_t kb = 0;
        (void)absl::SimpleAtoi(
            absl::StripSuffix(absl::StripAsciiWhitespace(line), " kB"), &kb);
        return kb / 1024;
      }
    }
    return int64_t{-1};
  };
  const int pid = sb_.coordinator_process().pid();
  const int64_t rss_before = rss_mb(pid);
  std::atomic<bool> stop{false};
  std::atomic<int> flood_calls{0}, flood_refused{0};
  const std::string big(1 << 20, 'x');
  std::vector<std::thread> flood;
  for (int t = 0; t < 20; ++t) {
    flood.emplace_back([&, t] {
      auto coord = Coord("source");
      auto control = Control("source");
      // Bounded: at most 5 s or 2000 calls per thread.
      for (int i = 0; i < 2000 && !stop; ++i) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(5));
        grpc::Status st;
        if ((i + t) % 2 == 0) {
          ctx.AddMetadata("x-flood", big);
          gwmirror::v1::HeartbeatRequest req;
          gwmirror::v1::HeartbeatResponse resp;
          st = coord->Heartbeat(&ctx, req, &resp);
        } else {
          gwmirror::v1::ClusterStatus resp;
          st = control->Status(&ctx, {}, &resp);
        }
        ++flood_calls;
        if (!st.ok()) ++flood_refused;
      }
    });
  }
  // The operator asks meanwhile.
  absl::Duration worst;
  int answered = 0;
  auto op = Control("operator");
  const absl::Time end = absl::Now() + absl::Seconds(5);
  while (absl::Now() < end) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(2));
    gwmirror::v1::ClusterStatus resp;
    absl::Time t0 = absl::Now();
    grpc::Status st = op->Status(&ctx, {}, &resp);
    worst = std::max(worst, absl::Now() - t0);
    EXPECT_TRUE(st.ok()) << st.error_message();
    answered += st.ok();
    absl::SleepFor(absl::Milliseconds(50));
  }
  const int64_t rss_during = rss_mb(pid);
  stop = true;
  for (auto& t : flood) t.join();
  std::printf(
      "flood: %d calls (%d refused) from one certificate; operator status "
      "answered %d times, worst %s; coordinator RSS %lld -> %lld MB\n",
      flood_calls.load(), flood_refused.load(), answered,
      absl::FormatDuration(worst).c_str(), static_cast<long long>(rss_before),
      static_cast<long long>(rss_during));
  EXPECT_LT(worst, absl::Seconds(1));
  EXPECT_GT(answered, 10);
  EXPECT_EQ(flood_refused.load(), flood_calls.load())
      << "every flood call is refused: oversized metadata or not allowed";
  EXPECT_LT(rss_during - rss_before, 100) << "MB";
}

}  // namespace
}  // namespace gwmirror

namespace gwmirror {
namespace {

// Issue 17: a new CA is introduced beside the old one, every certificate
// renewed from it and the old CA retired, each daemon taking the new
// material on SIGHUP, while production keeps changing and the cluster
// keeps mirroring; afterwards a certificate of the old CA gets no TLS
// session.
TEST_F(AuthzTest, CaRotationWhileTheClusterKeepsMirroring) {
  Up(1, /*follow=*/true);
  const std::string pki = Dir() + "/pki";
  // An operator's material from the old CA, kept aside.
  testing::TempDir kept;
  gwmirror::v1::TlsConfig old_operator = Tls("operator");
  for (const char* ext : {".pem", ".key"}) {
    testing::WriteFile(kept / (std::string("operator") + ext),
                       testing::ReadFile(pki + "/certs/operator" + ext), 0600);
  }
  testing::WriteFile(kept / "ca.pem", testing::ReadFile(pki + "/ca/ca.pem"));
  old_operator.set_ca_file(kept / "ca.pem");
  old_operator.set_cert_file(kept / "operator.pem");
  old_operator.set_key_file(kept / "operator.key");

  std::vector<int> pids = {sb_.coordinator_process().pid(),
                           sb_.slots(0).production().pid(),
                           sb_.slots(0).standby().pid()};
  auto hangup = [&] {
    for (int pid : pids) ASSERT_EQ(kill(pid, SIGHUP), 0);
  };
  // Production changes all along; each step must see new checkpoints.
  const std::string rel = "conf/envSettings.props";
  std::atomic<bool> stop{false};
  std::atomic<int> edits{0};
  std::thread writer([&] {
    for (int i = 0; i < 600 && !stop; ++i) {  // At most 2 minutes.
      testing::WriteFile(Gw(Prod(1), rel), absl::StrCat("env.EDIT=", i, "\n"));
      ++edits;
      absl::SleepFor(absl::Milliseconds(200));
    }
  });
  auto applied_after = [&](uint64_t after, const std::string& step) {
    gwmirror::v1::ClusterStatus s = WaitFor(
        [after](const auto& s) { return s.last_consistent().id() > after + 1; },
        "checkpoints after " + step);
    return s.last_consistent().id();
  };
  uint64_t id = Status().last_consistent().id();
  for (const char* step : {"start", "renew", "finish"}) {
    RunResult r = testing::Run(
        {Bin("gwmirror"), "certs", "rotate-ca", step, "--dir", pki});
    ASSERT_EQ(r.exit_code, 0) << step << ": " << r.out << r.err;
    hangup();
    id = applied_after(id, step);
  }
  stop = true;
  writer.join();
  const std::string last = testing::ReadFile(Gw(Prod(1), rel));
  absl::Time give_up = absl::Now() + absl::Seconds(20);
  while (testing::ReadFile(Gw(Standby(1), rel)) != last &&
         absl::Now() < give_up) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(testing::ReadFile(Gw(Standby(1), rel)), last);
  std::printf("CA rotated while %d edits were mirrored (checkpoint %llu)\n",
              edits.load(), static_cast<unsigned long long>(id));
  for (const auto* p : {&sb_.coordinator_process(), &sb_.slots(0).production(),
                        &sb_.slots(0).standby()}) {
    EXPECT_TRUE(
        absl::StrContains(testing::ReadFile(p->log()), "TLS material reloaded"))
        << p->log();
  }
  // The old CA is no longer trusted: no TLS session for its certificates,
  // while the renewed ones work.
  auto ch = DialMutualTls(old_operator, sb_.coordinator(), "coordinator");
  ASSERT_TRUE(ch.ok()) << ch.status();
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  gwmirror::v1::ClusterStatus resp;
  grpc::Status st =
      gwmirror::v1::Control::NewStub(*ch)->Status(&ctx, {}, &resp);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE)
      << st.error_message();
  EXPECT_TRUE(Checkpoint().ok());
}

}  // namespace
}  // namespace gwmirror
