// End to end over real processes and loopback mutual TLS: gwmirror-node
// serve (the replica) and gwmirror-node push (the source) mirror a sample
// gateway installation; hostile peers are refused; SIGKILL at every step of
// staging and commit never leaves a mixed tree.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <functional>
#include <regex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/block_delta.h"
#include "common/chunk_codec.h"
#include "common/config.h"
#include "common/epoch.h"
#include "common/fd.h"
#include "common/grpc_status.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "gtest/gtest.h"
#include "gwmirror/v1/replica.grpc.pb.h"
#include "node/sample/generator.h"
#include "node/source/pusher.h"
#include "node/source/source_tree.h"
#include "node/source/watcher.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

using testing::Bin;
using testing::Child;
using testing::RunResult;

constexpr char kPrefix[] = "opt/Axway-7.7";

uint64_t Field(const std::string& json, const std::string& name) {
  std::smatch m;
  std::regex re("\"" + name + "\": ([0-9]+)");
  uint64_t v = 0;
  if (std::regex_search(json, m, re)) (void)absl::SimpleAtoi(m[1].str(), &v);
  return v;
}

std::string StrField(const std::string& json, const std::string& name) {
  std::smatch m;
  std::regex re("\"" + name + "\": \"([0-9a-f]*)\"");
  return std::regex_search(json, m, re) ? m[1].str() : "";
}

// Runs `call` again (bounded: 100 x 20 ms) while the replica answers
// ABORTED "... in progress": it is still winding down a refused push, and
// ABORTED means retry.
template <typename F>
absl::Status RetryWhileBusy(F call) {
  absl::Status st;
  for (int i = 0; i < 100; ++i) {
    st = call();
    if (!absl::IsAborted(st) ||
        st.message().find("in progress") == std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return st;
}

class MirrorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = std::make_unique<testing::Pki>(dir_ / "pki");
    replica_tls_ = pki_->Issue("replica-gw1");
    source_tls_ = pki_->Issue("source-gw1");
    operator_tls_ = pki_->Issue("operator");
    SampleOptions o;
    o.size = "small";
    auto rep = GenerateSample(prod(), o);
    ASSERT_TRUE(rep.ok()) << rep.status();
    roots_ = SampleRoots(kPrefix);

    gwmirror::v1::NodeConfig r;
    r.set_slot("gw1");
    r.set_host_root(standby());
    r.set_state_dir(dir_ / "replica-state");
    *r.mutable_tls() = replica_tls_;
    for (auto& x : roots_) *r.add_roots() = x;
    r.mutable_replica()->set_source_identity("source-gw1");
    r.mutable_replica()->add_controller_identities("operator");
    r.set_listen("127.0.0.1:0");
    r.set_port_file(dir_ / "replica.port");
    testing::WriteFile(dir_ / "replica.json", ToJson(r));
    StartReplica();

    gwmirror::v1::NodeConfig s;
    s.set_slot("gw1");
    s.set_host_root(prod());
    s.set_state_dir(dir_ / "source-state");
    *s.mutable_tls() = source_tls_;
    for (auto& x : roots_) *s.add_roots() = x;
    s.mutable_source()->set_replica_address(address());
    s.mutable_source()->set_replica_identity("replica-gw1");
    // Small segments, so the 1 MiB KahaDB journal takes the parallel path.
    s.mutable_source()->set_delta_segment_bytes(256 << 10);
    testing::WriteFile(dir_ / "source.json", ToJson(s));
  }

  std::string prod() const { return dir_ / "prod"; }
  std::string standby() const { return dir_ / "standby"; }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }

  void StartReplica(const std::map<std::string, std::string>& env = {}) {
    unlink((dir_ / "replica.port").c_str());
    replica_ = std::make_unique<Child>(
        std::vector<std::string>{Bin("gwmirror-node"), "serve", "--config",
                                 dir_ / "replica.json"},
        env);
    int port = testing::WaitForPort(dir_ / "replica.port");
    ASSERT_GT(port, 0) << "replica did not start";
    if (port_ != 0 && port != port_) {
      // Keep the source config pointing at the live port.
      port_ = port;
      auto s = LoadNodeConfig(dir_ / "source.json");
      ASSERT_TRUE(s.ok());
      s->mutable_source()->set_replica_address(address());
      testing::WriteFile(dir_ / "source.json", ToJson(*s));
    }
    port_ = port;
  }

  RunResult Push(uint64_t checkpoint) {
    return testing::Run({Bin("gwmirror-node"), "push", "--config",
                         dir_ / "source.json", "--checkpoint",
                         absl::StrCat(checkpoint)});
  }

  std::unique_ptr<gwmirror::v1::Replica::Stub> StubAs(
      const gwmirror::v1::TlsConfig& tls) {
    auto ch = DialMutualTls(tls, address(), "replica-gw1");
    EXPECT_TRUE(ch.ok());
    return gwmirror::v1::Replica::NewStub(*ch);
  }

  // Commits as the operator; retries (bounded) while the replica is still
  // winding down a refused push ("in progress" is ABORTED: retry).
  absl::Status Commit(uint64_t checkpoint, const std::string& hex_digest) {
    return RetryWhileBusy([&] { return CommitOnce(checkpoint, hex_digest); });
  }

  // The source's config, its files of 2 MiB or more hashed as they are
  // sent (the digest-at-end tests' files are 3 MiB).
  gwmirror::v1::NodeConfig DigestAtEndConfig() {
    auto config = LoadNodeConfig(dir_ / "source.json");
    EXPECT_TRUE(config.ok()) << config.status();
    config->mutable_source()->set_digest_while_sending_from(2 << 20);
    return *std::move(config);
  }

  // Scans `tree` into `scan` and pushes and commits it as `checkpoint`, as
  // a cut does: the push sends what the scan holds and the tree learns the
  // digests found. `after_scan` runs between the scan and the push.
  absl::StatusOr<PushReport> ScanAndPush(
      const gwmirror::v1::NodeConfig& config, SourceTree* tree,
      uint64_t checkpoint, ScanResult* scan, PrestageLedger* ledger = nullptr,
      const std::function<void()>& after_scan = nullptr) {
    ASSIGN_OR_RETURN(*scan, tree->StableScan(absl::Seconds(5)));
    if (after_scan) after_scan();
    ASSIGN_OR_RETURN(auto channel,
                     DialMutualTls(config.tls(), address(), "replica-gw1"));
    Pusher pusher(config, channel);
    pusher.SetLedger(ledger);
    pusher.SetHeld(scan);
    pusher.SetDigestSink(tree->LearnSink());
    absl::StatusOr<PushReport> r;
    RETURN_IF_ERROR(RetryWhileBusy([&] {
      r = pusher.Push(scan->manifest, checkpoint, {});
      return r.status();
    }));
    RETURN_IF_ERROR(Commit(checkpoint, HexOf(r->manifest_digest)));
    return r;
  }

  // Writes `body` at `entry` in production, starts a watching tree of it
  // (watcher_, tree_) and pre-stages it into the replica's pool through
  // ledger_; `entry` must be left pending by the tree's scan.
  absl::Status WriteAndPrestage(const gwmirror::v1::NodeConfig& config,
                                const std::string& entry,
                                const std::string& body) {
    testing::WriteFile(prod() + "/" + entry, body);
    absl::SleepFor(absl::Milliseconds(50));
    watcher_ =
        std::make_unique<ChangeWatcher>(config, ChangeWatcher::Options{});
    RETURN_IF_ERROR(watcher_->Start());
    tree_ = std::make_unique<SourceTree>(config, watcher_.get());
    ASSIGN_OR_RETURN(ScanResult ahead, tree_->Refresh());
    if (!ahead.pending.contains(entry)) {
      return absl::InternalError(entry + " is not pending");
    }
    ASSIGN_OR_RETURN(auto channel,
                     DialMutualTls(config.tls(), address(), "replica-gw1"));
    Pusher pusher(config, channel);
    pusher.SetLedger(&ledger_);
    pusher.SetHeld(&ahead);
    pusher.SetDigestSink(tree_->LearnSink());
    absl::StatusOr<PrestageReport> pre;
    RETURN_IF_ERROR(RetryWhileBusy([&] {
      pre = pusher.Prestage(ahead.manifest, {}, nullptr);
      return pre.status();
    }));
    if (pre->files_sent == 0) return absl::InternalError("nothing pre-staged");
    return absl::OkStatus();
  }

  absl::Status CommitOnce(uint64_t checkpoint, const std::string& hex_digest) {
    auto stub = StubAs(operator_tls_);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    gwmirror::v1::CommitRequest req;
    req.set_checkpoint(checkpoint);
    std::string digest;
    for (size_t i = 0; i + 1 < hex_digest.size(); i += 2) {
      digest.push_back(
          static_cast<char>(std::stoi(hex_digest.substr(i, 2), nullptr, 16)));
    }
    req.set_manifest_digest(digest);
    gwmirror::v1::CommitResult resp;
    return FromGrpc(stub->Commit(&ctx, req, &resp));
  }

  gwmirror::v1::ReplicaState State() {
    auto stub = StubAs(operator_tls_);
    grpc::ClientContext ctx;
    gwmirror::v1::GetStateRequest req;
    req.mutable_envelope()->set_epoch(epoch_);
    gwmirror::v1::ReplicaState st;
    EXPECT_TRUE(stub->GetState(&ctx, req, &st).ok());
    return st;
  }

  // Pushes and commits checkpoint n; returns the push report.
  std::string Sync(uint64_t n) {
    RunResult r = Push(n);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    absl::Status st = Commit(n, StrField(r.out, "manifest_digest"));
    EXPECT_TRUE(st.ok()) << st;
    return r.out;
  }

  Manifest Prod() { return testing::Snapshot(prod(), roots_); }
  Manifest Standby() { return testing::Snapshot(standby(), roots_); }

  std::string gw(const std::string& rel) const {
    return absl::StrCat(prod(), "/", kPrefix, "/apigateway/", rel);
  }

  testing::TempDir dir_;
  std::unique_ptr<testing::Pki> pki_;
  gwmirror::v1::TlsConfig replica_tls_, source_tls_, operator_tls_;
  std::vector<gwmirror::v1::RootConfig> roots_;
  std::unique_ptr<Child> replica_;
  // WriteAndPrestage's tree (the watcher outlives it) and ledger.
  std::unique_ptr<ChangeWatcher> watcher_;
  std::unique_ptr<SourceTree> tree_;
  PrestageLedger ledger_;
  int port_ = 0;
  uint64_t epoch_ = 0;
};

TEST_F(MirrorTest, MirrorsInstallationThenChangeSetByDelta) {
  std::string out = Sync(1);
  EXPECT_EQ(testing::Diff(Prod(), Standby()), "");
  EXPECT_GT(Prod().size(), 150u);
  // Excludes: transient paths and files outside the include globs.
  std::string sb = standby() + "/" + kPrefix + "/apigateway/";
  for (const std::string& gone :
       {sb + "logs", sb + "trace", sb + "events", sb + "conf/opsdb.d",
        sb + "groups/certs/private/temp", sb + "conf/nodemanager.pid",
        sb + "system/conf/other-product-file.xml",
        standby() + "/etc/init.d/cron"}) {
    EXPECT_NE(access(gone.c_str(), F_OK), 0) << gone << " must not be mirrored";
  }
  struct stat st;
  ASSERT_EQ(stat((sb + "groups/certs/private/domainkey.pem").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);

  // A change set with every kind of change.
  ASSERT_TRUE(ApplyChangeSet(prod(), kPrefix, 7, 0.05, 10, 10, 5).ok());
  std::string kaha = gw("messaging-shared/kahadb/db-1.log");
  {
    std::string data = testing::ReadFile(kaha);
    data.replace(data.size() / 2, 11, "journal-rec");
    data.insert(1000, "shifted");
    testing::WriteFile(kaha, data);
  }
  // An owner change (on a file the change set left, or wrote anew).
  if (access(gw("conf/jvm.xml").c_str(), F_OK) != 0) {
    testing::WriteFile(gw("conf/jvm.xml"), "<jvm/>\n");
  }
  ASSERT_EQ(chown(gw("conf/jvm.xml").c_str(), 1234, 5678), 0);
  ASSERT_EQ(chmod(gw("conf/managedomain.props").c_str(), 04750), 0);
  // file -> directory
  ASSERT_EQ(unlink(gw("conf/acl.json").c_str()), 0);
  testing::WriteFile(gw("conf/acl.json/inner.json"), "{}");
  // directory -> symlink
  ASSERT_TRUE(RemoveTree(gw("conf/licenses")).ok());
  ASSERT_EQ(symlink("fed", gw("conf/licenses").c_str()), 0);
  // Regression: a file name that is not UTF-8 (Latin-1 "café") failed to
  // parse when Entry.path was a proto3 string.
  testing::WriteFile(gw("conf/caf\xe9.xml"), "latin-1 name");
  // symlink -> file
  std::string link = gw("groups/topologylinks/QuickStart-Group-Gateway1");
  ASSERT_EQ(unlink(link.c_str()), 0);
  testing::WriteFile(link, "now a file");

  out = Sync(2);
  EXPECT_EQ(testing::Diff(Prod(), Standby()), "");
  uint64_t wire = Field(out, "wire_bytes"),
           content = Field(out, "content_bytes");
  EXPECT_GE(Field(out, "files_delta"), 1u) << out;
  EXPECT_LT(wire, content) << out;
  std::printf(
      "change set: %lu bytes of changed files, %lu bytes on the wire "
      "(%.1f%%)\n",
      static_cast<unsigned long>(content), static_cast<unsigned long>(wire),
      100.0 * wire / content);
  ASSERT_EQ(
      stat((standby() + "/" + kPrefix + "/apigateway/conf/managedomain.props")
               .c_str(),
           &st),
      0);
  EXPECT_EQ(st.st_mode & 07777, 04750u);

  // No change: nothing but the manifest travels.
  out = Sync(3);
  EXPECT_EQ(Field(out, "files_whole") + Field(out, "files_delta"), 0u) << out;
}

// A source that lost its signature cache (a failback, a new host) fetches
// what it lacks before the push, every signature in one stream, rather
// than one round trip per file inside it; every file still goes as a
// delta.
TEST_F(MirrorTest, ALostSignatureCacheIsFetchedBeforeThePushAndUsed) {
  constexpr int kFiles = 12;
  std::string body(100 << 10, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = 'a' + (i * 7919 % 26);
  // Each its own content (a signature is fetched once per content).
  auto content = [&](int i) { return absl::StrCat("store ", i, "\n", body); };
  for (int i = 0; i < kFiles; ++i) {
    testing::WriteFile(gw(absl::StrCat("conf/store-", i, ".xml")), content(i));
  }
  Sync(1);
  ASSERT_TRUE(RemoveTree(dir_ / "source-state/source/signatures").ok());
  for (int i = 0; i < kFiles; ++i) {
    std::string edited = content(i);
    edited.replace(50'000, 6, "edited");
    testing::WriteFile(gw(absl::StrCat("conf/store-", i, ".xml")), edited);
  }
  std::string out = Sync(2);
  EXPECT_EQ(testing::Diff(Prod(), Standby()), "");
  EXPECT_EQ(Field(out, "signature_fetches"), static_cast<uint64_t>(kFiles))
      << out;
  EXPECT_EQ(Field(out, "signature_calls"), 1u) << out;
  EXPECT_EQ(Field(out, "files_delta"), static_cast<uint64_t>(kFiles)) << out;
  EXPECT_EQ(Field(out, "files_whole"), 0u) << out;
  // Cached now: the next change fetches nothing.
  testing::WriteFile(gw("conf/store-0.xml"), content(0));
  out = Sync(3);
  EXPECT_EQ(Field(out, "signature_fetches"), 0u) << out;
}

// One GetSignature call answers many files in order; a file the replica
// has no signature of is said for it alone and the others still come; a
// call naming too many files, or a bad block length, is refused whole.
TEST_F(MirrorTest, OneSignatureStreamAnswersEachFileOnItsOwn) {
  std::string body(100 << 10, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = 'a' + (i * 31 % 26);
  testing::WriteFile(gw("conf/a.xml"), "a" + body);
  testing::WriteFile(gw("conf/b.xml"), "b" + body);
  Sync(1);
  const Manifest m = Standby();
  const std::string a = absl::StrCat(kPrefix, "/apigateway/conf/a.xml");
  const std::string b = absl::StrCat(kPrefix, "/apigateway/conf/b.xml");
  auto source = StubAs(source_tls_);
  auto call = [&](const std::vector<std::pair<std::string, std::string>>& t,
                  uint32_t block_len,
                  std::vector<gwmirror::v1::SignatureChunk>* got) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::seconds(30));
    gwmirror::v1::GetSignatureRequest req;
    req.mutable_envelope()->set_epoch(epoch_);
    for (const auto& [path, sha] : t) {
      auto* target = req.add_targets();
      target->set_path(path);
      target->set_sha256(sha);
    }
    req.set_block_len(block_len);
    auto reader = source->GetSignature(&ctx, req);
    gwmirror::v1::SignatureChunk c;
    while (reader->Read(&c)) got->push_back(c);
    return FromGrpc(reader->Finish());
  };
  std::vector<gwmirror::v1::SignatureChunk> got;
  ASSERT_TRUE(call({{a, m.Find(a)->sha256()},
                    {b, std::string(32, 'x')},
                    {b, m.Find(b)->sha256()}},
                   1024, &got)
                  .ok());
  // Each target's chunks in order, its last one marked.
  std::vector<std::string> sig(3);
  std::vector<int> codes(3, -1);
  uint32_t at = 0;
  for (const auto& c : got) {
    ASSERT_EQ(c.target(), at);
    sig[at] += c.data();
    if (c.last()) codes[at++] = c.error_code();
  }
  ASSERT_EQ(at, 3u);
  EXPECT_EQ(codes[0], 0);
  EXPECT_EQ(codes[1], static_cast<int>(absl::StatusCode::kFailedPrecondition));
  EXPECT_EQ(codes[2], 0);
  EXPECT_TRUE(sig[1].empty());
  for (int i : {0, 2}) {
    auto parsed = BlockSignature::Parse(sig[i]);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->blocks(), (body.size() + 1 + 1023) / 1024);
  }
  got.clear();
  std::vector<std::pair<std::string, std::string>> many(
      kMaxFilesPerCall + 1, {a, m.Find(a)->sha256()});
  absl::Status st = call(many, 1024, &got);
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_NE(st.message().find("at most 4096"), std::string::npos) << st;
  st = call({{a, m.Find(a)->sha256()}}, 100, &got);
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_NE(st.message().find("block_len 100"), std::string::npos) << st;
  EXPECT_TRUE(got.empty());
}

// A redeployment writes a whole new conf/<uuid>/ folder: its stores that
// did not change, and a renamed large file, are copies of what the standby
// already holds (a header each); its edited PrimaryStore.xml is a delta
// against the previous deployment's (issue 20).
TEST_F(MirrorTest, ARedeploymentCostsItsDeltaAndRenamesCostNothing) {
  Sync(1);
  std::string conf = gw("groups/group-2/conf");
  std::string old_id;
  for (const auto& d : std::filesystem::directory_iterator(conf)) {
    if (d.is_directory()) old_id = d.path().filename();
  }
  ASSERT_FALSE(old_id.empty()) << "no deployment folder in " << conf;
  const std::string from = conf + "/" + old_id;
  const std::string to = conf + "/0b9d1e52-7c2f-4b8e-9d63-2f6a2a1b5c01";
  ASSERT_EQ(mkdir(to.c_str(), 0755), 0);
  uint64_t stores = 0;
  for (const auto& d : std::filesystem::directory_iterator(from)) {
    const std::string name = d.path().filename();
    std::string data = testing::ReadFile(from + "/" + name);
    if (name == "PrimaryStore.xml") {
      for (size_t at : {data.size() / 5, data.size() / 2, data.size() - 100}) {
        data.replace(at, 8, "EDITED!!");
      }
    } else {
      ++stores;
    }
    testing::WriteFile(to + "/" + name, data);
  }
  ASSERT_EQ(rename(gw("messaging-shared/kahadb/db-1.log").c_str(),
                   gw("messaging-shared/kahadb/db-7.log").c_str()),
            0);
  std::string out = Sync(2);
  EXPECT_EQ(testing::Diff(Prod(), Standby()), "");
  EXPECT_EQ(Field(out, "files_copied"), stores + 1) << out;
  EXPECT_EQ(Field(out, "files_delta_other_path"), 1u) << out;
  EXPECT_EQ(Field(out, "files_whole"), 0u) << out;
  uint64_t wire = Field(out, "wire_bytes"),
           content = Field(out, "content_bytes");
  EXPECT_LT(wire * 20, content) << out;
  std::printf(
      "redeployment of %lu stores and a rename: %lu bytes of new content, "
      "%lu bytes on the wire\n",
      static_cast<unsigned long>(stores + 1),
      static_cast<unsigned long>(content), static_cast<unsigned long>(wire));
}

// The scan holds what it read: a small file's bytes, a large one's open
// descriptor. A file rewritten after the scan (in place when small, by a
// rename over it when large, as deployments write) does not abort the push
// (under churn a cut still goes through), and the standby gets the version
// the manifest names. Without them the live files no longer match and the
// push asks for a new scan; a large file written in place under its held
// descriptor still does.
TEST_F(MirrorTest, APushSendsWhatTheScanHeld) {
  auto config = LoadNodeConfig(dir_ / "source.json");
  ASSERT_TRUE(config.ok()) << config.status();
  ChangeWatcher watcher(*config, {});
  ASSERT_TRUE(watcher.Start().ok());
  SourceTree tree(*config, &watcher);
  ASSERT_TRUE(tree.StableScan(absl::Seconds(30)).ok());
  const std::string small_rel = "apigateway/conf/held.props";
  const std::string big_rel = "apigateway/groups/held.bin";
  const std::string small = prod() + "/" + kPrefix + "/" + small_rel;
  const std::string big = prod() + "/" + kPrefix + "/" + big_rel;
  const std::string big_scanned(kHoldFileMax + 4096, 's');
  testing::WriteFile(small, "as scanned");
  testing::WriteFile(big, big_scanned);
  // What `scan` holds of `rel`; null when nothing.
  auto held_of = [](const ScanResult& scan,
                    const std::string& rel) -> const HeldContent* {
    const Entry* e = scan.manifest.Find(std::string(kPrefix) + "/" + rel);
    if (e == nullptr) return nullptr;
    auto it = scan.held.find(e->sha256());
    return it == scan.held.end() ? nullptr : &it->second;
  };
  auto scan = tree.StableScan(absl::Seconds(5));
  ASSERT_TRUE(scan.ok()) << scan.status();
  const HeldContent* small_held = held_of(*scan, small_rel);
  const HeldContent* big_held = held_of(*scan, big_rel);
  ASSERT_NE(small_held, nullptr);
  ASSERT_NE(big_held, nullptr);
  EXPECT_EQ(small_held->bytes, "as scanned");
  ASSERT_NE(big_held->fd, nullptr);
  testing::WriteFile(small, "rewritten after the scan");
  testing::WriteFile(big + ".tmp", std::string(big_scanned.size(), 'r'));
  ASSERT_EQ(rename((big + ".tmp").c_str(), big.c_str()), 0);

  auto channel = DialMutualTls(config->tls(), address(), "replica-gw1");
  ASSERT_TRUE(channel.ok()) << channel.status();
  Pusher pusher(*config, *channel);
  auto stale = pusher.Push(scan->manifest, 1, {});
  EXPECT_TRUE(absl::IsAborted(stale.status())) << stale.status();
  EXPECT_TRUE(absl::StrContains(stale.status().message(), "changed while"))
      << stale.status();

  pusher.SetHeld(&*scan);
  absl::StatusOr<PushReport> r;
  ASSERT_TRUE(RetryWhileBusy([&] {
                r = pusher.Push(scan->manifest, 1, {});
                return r.status();
              }).ok())
      << r.status();
  absl::Status committed = Commit(1, HexOf(r->manifest_digest));
  ASSERT_TRUE(committed.ok()) << committed;
  EXPECT_EQ(testing::ReadFile(standby() + "/" + kPrefix + "/" + small_rel),
            "as scanned");
  EXPECT_EQ(testing::ReadFile(standby() + "/" + kPrefix + "/" + big_rel),
            big_scanned);

  // In place, the held descriptor reads the new bytes: the digest check
  // aborts the push rather than send a state that never existed.
  testing::WriteFile(big, std::string(big_scanned.size(), 'a'));
  auto again = tree.StableScan(absl::Seconds(5));
  ASSERT_TRUE(again.ok()) << again.status();
  testing::WriteFile(big, std::string(big_scanned.size(), 'b'));
  pusher.SetHeld(&*again);
  auto in_place = pusher.Push(again->manifest, 2, {});
  EXPECT_TRUE(absl::IsAborted(in_place.status())) << in_place.status();
  EXPECT_TRUE(absl::StrContains(in_place.status().message(),
                                "held.bin changed while it was being sent"))
      << in_place.status();

  // A file last written well before the scan is not hashed again: its
  // stamp vouches for it, and a write in place after the scan moves the
  // stamp, so that push aborts too.
  testing::WriteFile(big, std::string(big_scanned.size(), 'c'));
  absl::SleepFor(absl::Milliseconds(50));
  auto settled = tree.StableScan(absl::Seconds(5));
  ASSERT_TRUE(settled.ok()) << settled.status();
  ASSERT_NE(held_of(*settled, big_rel), nullptr);
  EXPECT_TRUE(held_of(*settled, big_rel)->settled.has_value());
  testing::WriteFile(big, std::string(big_scanned.size(), 'd'));
  pusher.SetHeld(&*settled);
  auto moved = pusher.Push(settled->manifest, 2, {});
  EXPECT_TRUE(absl::IsAborted(moved.status())) << moved.status();
  EXPECT_TRUE(absl::StrContains(moved.status().message(),
                                "held.bin changed while it was being sent"))
      << moved.status();
  // Unchanged, it goes through, and the standby gets the scanned bytes.
  absl::SleepFor(absl::Milliseconds(50));
  auto clean = tree.StableScan(absl::Seconds(5));
  ASSERT_TRUE(clean.ok()) << clean.status();
  ASSERT_NE(held_of(*clean, big_rel), nullptr);
  EXPECT_TRUE(held_of(*clean, big_rel)->settled.has_value());
  pusher.SetHeld(&*clean);
  ASSERT_TRUE(RetryWhileBusy([&] {
                r = pusher.Push(clean->manifest, 2, {});
                return r.status();
              }).ok())
      << r.status();
  ASSERT_TRUE(Commit(2, HexOf(r->manifest_digest)).ok());
  EXPECT_EQ(testing::ReadFile(standby() + "/" + kPrefix + "/" + big_rel),
            std::string(big_scanned.size(), 'd'));
}

// A large changed file is not hashed by the scan but as it is sent, its
// digest following its bytes; the tree learns the digest, so the next scan
// reads nothing (a watching tree keeps it; the index, once the file's times
// are old enough to vouch for it). Where a decision needs the digest first (a
// replica file of its size: the same content may be there), it is hashed before
// the push. A write after the scan aborts the push.
TEST_F(MirrorTest, ALargeFileIsHashedAsItIsSentAndItsDigestLearnt) {
  const gwmirror::v1::NodeConfig config = DigestAtEndConfig();
  const std::string rel = "apigateway/groups/dump.bin";
  const std::string path = prod() + "/" + kPrefix + "/" + rel;
  const std::string body = testing::RandomBytes(3 << 20, 7);
  testing::WriteFile(path, body);
  // Old enough for the index to vouch for it once its digest is known, and
  // settled (its change time a clock tick behind the scan).
  const timespec old_times[2] = {{time(nullptr) - 60, 0},
                                 {time(nullptr) - 60, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), old_times, 0), 0);
  absl::SleepFor(absl::Milliseconds(50));
  ChangeWatcher watcher(config, {});
  ASSERT_TRUE(watcher.Start().ok());
  SourceTree tree(config, &watcher);
  // Scans and pushes `checkpoint` as the cut does.
  auto push = [&](uint64_t checkpoint, ScanResult* scan,
                  const std::function<void()>& after_scan = nullptr) {
    return ScanAndPush(config, &tree, checkpoint, scan, nullptr, after_scan);
  };
  const std::string entry = std::string(kPrefix) + "/" + rel;

  ScanResult scan;
  auto first = push(1, &scan);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(scan.manifest.Find(entry)->sha256(), "");
  EXPECT_TRUE(scan.pending.contains(entry));
  EXPECT_EQ(first->digests_at_end, 1u);
  EXPECT_EQ(first->digests_first, 0u);
  EXPECT_EQ(testing::ReadFile(standby() + "/" + kPrefix + "/" + rel), body);

  // Learnt: the next scan reads nothing of it.
  auto again = push(2, &scan);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(scan.manifest.Find(entry)->sha256(), DigestBytes(Sha256Of(body)));
  EXPECT_EQ(scan.bytes_hashed, 0u);
  EXPECT_EQ(again->digests_at_end + again->digests_first, 0u);
  EXPECT_EQ(again->content_bytes, 0u);

  // A copy has the size of a committed file: hashed first, and copied.
  testing::WriteFile(path + ".copy", body);
  absl::SleepFor(absl::Milliseconds(50));
  auto copied = push(3, &scan);
  ASSERT_TRUE(copied.ok()) << copied.status();
  EXPECT_EQ(copied->digests_first, 1u);
  EXPECT_EQ(copied->digests_at_end, 0u);
  EXPECT_EQ(copied->files_copied, 1u);
  EXPECT_EQ(testing::ReadFile(standby() + "/" + kPrefix + "/" + rel + ".copy"),
            body);

  // Written after the scan that left its digest pending: the push aborts
  // rather than send bytes the scan never saw, and commits nothing.
  const std::string grown = body + "more rows";
  testing::WriteFile(path, grown);
  absl::SleepFor(absl::Milliseconds(50));
  auto moved = push(4, &scan, [&] { testing::WriteFile(path, grown + "!"); });
  EXPECT_TRUE(absl::IsAborted(moved.status())) << moved.status();
  EXPECT_TRUE(absl::StrContains(moved.status().message(),
                                "dump.bin changed since the scan"))
      << moved.status();
  EXPECT_EQ(testing::ReadFile(standby() + "/" + kPrefix + "/" + rel), body);
  // Scanned again, it goes.
  absl::SleepFor(absl::Milliseconds(50));
  auto fixed = push(4, &scan);
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ(fixed->digests_at_end, 1u);
  EXPECT_EQ(testing::ReadFile(standby() + "/" + kPrefix + "/" + rel),
            grown + "!");
}

// A large file pre-staged with its digest at the end: the pre-stage push
// finds the digest, the tree learns it, and the cut's push names the file
// as pre-staged instead of sending it again.
TEST_F(MirrorTest, ALargeFilePrestagedWithItsDigestAtTheEndIsNotSentAgain) {
  const gwmirror::v1::NodeConfig config = DigestAtEndConfig();
  const std::string entry =
      std::string(kPrefix) + "/apigateway/groups/dump.bin";
  const std::string body = testing::RandomBytes(3 << 20, 11);
  absl::Status pre = WriteAndPrestage(config, entry, body);
  ASSERT_TRUE(pre.ok()) << pre;
  const std::string sha = DigestBytes(Sha256Of(body));
  EXPECT_TRUE(ledger_.Has(sha));

  ScanResult cut;
  auto r = ScanAndPush(config, tree_.get(), 1, &cut, &ledger_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(cut.manifest.Find(entry)->sha256(), sha);
  EXPECT_EQ(cut.bytes_hashed, 0u);
  EXPECT_GE(r->files_prestaged, 1u);
  EXPECT_EQ(r->digests_at_end + r->digests_first, 0u);
  EXPECT_EQ(testing::ReadFile(standby() + "/" + entry), body);
}

// Regression (issue 22): a pre-staged file read again before the cut (its
// times touched, its content the same) is pending again, and the tree no
// longer knows its digest. The pre-stage ledger holds a version of its
// size, so the cut hashes it first and finds it in the pool, instead of
// sending it again with its digest at the end.
TEST_F(MirrorTest, APrestagedFileReadAgainIsTakenFromThePool) {
  const gwmirror::v1::NodeConfig config = DigestAtEndConfig();
  const std::string entry =
      std::string(kPrefix) + "/apigateway/groups/dump.bin";
  const std::string body = testing::RandomBytes(3 << 20, 12);
  absl::Status pre = WriteAndPrestage(config, entry, body);
  ASSERT_TRUE(pre.ok()) << pre;
  ASSERT_EQ(utimensat(AT_FDCWD, (prod() + "/" + entry).c_str(), nullptr, 0), 0);
  absl::SleepFor(absl::Milliseconds(50));

  ScanResult cut;
  auto r = ScanAndPush(config, tree_.get(), 1, &cut, &ledger_);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(cut.pending.contains(entry));
  EXPECT_EQ(r->digests_first, 1u);
  EXPECT_EQ(r->digests_at_end, 0u);
  EXPECT_GE(r->files_prestaged, 1u);
  EXPECT_EQ(testing::ReadFile(standby() + "/" + entry), body);
}

// A file sent as a delta with its digest at the end, against a standby
// copy that drifted: the replica asks for it whole, and the second attempt
// sends it whole under the digest the first one found.
TEST_F(MirrorTest, ADriftedBasisOfADigestAtTheEndDeltaGetsTheFileWhole) {
  const gwmirror::v1::NodeConfig config = DigestAtEndConfig();
  const std::string entry = std::string(kPrefix) + "/apigateway/groups/d.bin";
  std::string body = testing::RandomBytes(3 << 20, 21);
  testing::WriteFile(prod() + "/" + entry, body);
  absl::SleepFor(absl::Milliseconds(50));
  SourceTree tree(config, nullptr);
  ScanResult scan;
  auto push = [&](uint64_t checkpoint) {
    return ScanAndPush(config, &tree, checkpoint, &scan);
  };
  ASSERT_TRUE(push(1).ok());
  // The standby's copy drifts behind the replica's back (same size).
  testing::WriteFile(standby() + "/" + entry,
                     testing::RandomBytes(3 << 20, 22));
  body.insert(1 << 20, "a row inserted");
  testing::WriteFile(prod() + "/" + entry, body);
  absl::SleepFor(absl::Milliseconds(50));
  auto r = push(2);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->digests_at_end, 1u);
  EXPECT_EQ(r->files_delta, 1u);
  EXPECT_EQ(r->resent_whole, 1u);
  EXPECT_EQ(testing::ReadFile(standby() + "/" + entry), body);
}

TEST_F(MirrorTest, PlantedSymlinkOnStandbyCannotRedirectWrites) {
  Sync(1);
  testing::WriteFile(dir_ / "outside/x", "untouched");
  testing::WriteFile(gw("conf/evil/x"), "from production");
  std::string planted = standby() + "/" + kPrefix + "/apigateway/conf/evil";
  ASSERT_EQ(symlink((dir_ / "outside").c_str(), planted.c_str()), 0);
  Sync(2);
  EXPECT_EQ(testing::ReadFile(dir_ / "outside/x"), "untouched");
  EXPECT_EQ(testing::ReadFile(planted + "/x"), "from production");
  EXPECT_EQ(testing::Diff(Prod(), Standby()), "");
}

absl::Status RawPushOnce(gwmirror::v1::Replica::Stub* stub,
                         const std::vector<gwmirror::v1::PushMessage>& msgs) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  gwmirror::v1::PushResult result;
  auto w = stub->Push(&ctx, &result);
  for (const auto& m : msgs) {
    if (!w->Write(m)) break;
  }
  w->WritesDone();
  return FromGrpc(w->Finish());
}

// Sends `msgs` on a Push stream and returns the status. The replica may
// still be winding down the previous refused stream when the client has its
// answer; ABORTED "another push is in progress" says to retry, so retry
// (bounded).
absl::Status RawPush(gwmirror::v1::Replica::Stub* stub,
                     const std::vector<gwmirror::v1::PushMessage>& msgs) {
  return RetryWhileBusy([&] { return RawPushOnce(stub, msgs); });
}

gwmirror::v1::PushMessage Begin(uint64_t n, uint64_t base, uint64_t epoch = 0) {
  gwmirror::v1::PushMessage m;
  m.mutable_begin()->set_checkpoint(n);
  m.mutable_begin()->set_base_checkpoint(base);
  m.mutable_begin()->mutable_envelope()->set_epoch(epoch);
  return m;
}

gwmirror::v1::PushMessage Header(
    const std::string& path, const std::string& content,
    gwmirror::v1::Encoding enc = gwmirror::v1::ENCODING_WHOLE) {
  gwmirror::v1::PushMessage m;
  auto* e = m.mutable_file_header()->mutable_entry();
  e->set_path(path);
  e->set_type(gwmirror::v1::ENTRY_TYPE_FILE);
  e->set_mode(0644);
  e->set_size(content.size());
  e->set_sha256(DigestBytes(Sha256Of(content)));
  m.mutable_file_header()->set_encoding(enc);
  return m;
}

gwmirror::v1::PushMessage Chunk(const std::string& data) {
  gwmirror::v1::PushMessage m;
  m.mutable_file_chunk()->set_data(data);
  return m;
}

gwmirror::v1::PushMessage FileEnd() {
  gwmirror::v1::PushMessage m;
  m.mutable_file_end();
  return m;
}

TEST_F(MirrorTest, HostileInputIsRefusedAndNothingIsWritten) {
  Sync(1);
  Manifest before = Standby();
  std::string conf = absl::StrCat(kPrefix, "/apigateway/conf/");
  auto source = StubAs(source_tls_);
  struct Case {
    std::string name;
    std::vector<gwmirror::v1::PushMessage> msgs;
    absl::StatusCode code;
    std::string words;
  };
  gwmirror::v1::PushMessage delta_hdr = Header(
      absl::StrCat(kPrefix, "/apigateway/messaging-shared/kahadb/db-1.log"),
      std::string(2 << 20, 'x'), gwmirror::v1::ENCODING_DELTA);
  delta_hdr.mutable_file_header()->set_basis_sha256(
      before
          .Find(absl::StrCat(kPrefix,
                             "/apigateway/messaging-shared/kahadb/db-1.log"))
          ->sha256());
  gwmirror::v1::PushMessage huge = Header(conf + "x", "x");
  huge.mutable_file_header()->mutable_entry()->set_link_target(
      std::string(5 << 20, 'L'));
  gwmirror::v1::PushMessage wrong =
      Header(conf + "jvm.xml", "the announced content");
  std::vector<Case> cases = {
      {"dot-dot path",
       {Begin(2, 1), Header("../../etc/cron.d/evil", "x")},
       absl::StatusCode::kInvalidArgument,
       "'..'"},
      {"absolute path",
       {Begin(2, 1), Header("/etc/passwd", "x")},
       absl::StatusCode::kInvalidArgument,
       "absolute"},
      {"corrupted delta",
       {Begin(2, 1), delta_hdr, Chunk("this is not a librsync delta"),
        FileEnd()},
       absl::StatusCode::kDataLoss,
       "librsync"},
      {"wrong digest",
       {Begin(2, 1), wrong, Chunk("other bytes!!!!!!!!!!"), FileEnd()},
       absl::StatusCode::kDataLoss,
       "does not match"},
      {"truncated stream",
       {Begin(2, 1), Header(conf + "new.xml", "0123456789"), Chunk("01234")},
       absl::StatusCode::kAborted,
       "truncated"},
      {"oversized message",
       {Begin(2, 1), huge},
       absl::StatusCode::kResourceExhausted,
       ""},
      {"stale base", {Begin(5, 0)}, absl::StatusCode::kAborted, "holds 1"},
      {"no begin",
       {Chunk("x")},
       absl::StatusCode::kInvalidArgument,
       "PushBegin"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    absl::Status st = RawPush(source.get(), c.msgs);
    EXPECT_EQ(st.code(), c.code) << st;
    EXPECT_NE(st.message().find(c.words), std::string::npos) << st;
  }
  // Unknown checkpoint.
  absl::Status st = Commit(99, std::string(64, 'a'));
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("99"), std::string::npos);
  // A valid certificate of another identity: refused by name.
  auto intruder = StubAs(pki_->Issue("source-gw2"));
  st = RawPush(intruder.get(), {Begin(2, 1)});
  EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied) << st;
  EXPECT_NE(st.message().find("source-gw2"), std::string::npos);
  // The source may not commit; the operator may not push.
  grpc::ClientContext cctx;
  gwmirror::v1::CommitRequest creq;
  gwmirror::v1::CommitResult cresp;
  EXPECT_EQ(source->Commit(&cctx, creq, &cresp).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  auto op = StubAs(operator_tls_);
  EXPECT_EQ(RawPush(op.get(), {Begin(2, 1)}).code(),
            absl::StatusCode::kPermissionDenied);
  // A certificate from another CA, with the right name: no TLS session.
  testing::Pki rogue(dir_ / "rogue");
  auto impostor = StubAs(rogue.Issue("source-gw1"));
  st = RawPush(impostor.get(), {Begin(2, 1)});
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  // An epoch without its proof is refused, from the source as from an
  // operator, and moves nothing (issue 17: this used to wedge the replica).
  const uint64_t epoch_before = State().epoch();
  for (auto* stub : {source.get(), op.get()}) {
    grpc::ClientContext ctx;
    gwmirror::v1::GetStateRequest req;
    req.mutable_envelope()->set_epoch(999999);
    gwmirror::v1::ReplicaState s;
    grpc::Status gs = stub->GetState(&ctx, req, &s);
    EXPECT_EQ(gs.error_code(), grpc::StatusCode::PERMISSION_DENIED);
    EXPECT_NE(gs.error_message().find("proof"), std::string::npos)
        << gs.error_message();
  }
  EXPECT_EQ(State().epoch(), epoch_before);
  // Stale epoch: once the replica saw epoch 5 (proven by the operator's
  // grant, as a forced promote would), epoch 4 is refused.
  {
    grpc::ClientContext ctx;
    gwmirror::v1::GetStateRequest req;
    req.mutable_envelope()->set_epoch(5);
    auto grant = SignEpochGrant(operator_tls_, 5, "standby", absl::Now());
    ASSERT_TRUE(grant.ok()) << grant.status();
    *req.mutable_envelope()->mutable_grant() = *grant;
    gwmirror::v1::ReplicaState s;
    grpc::Status gs = op->GetState(&ctx, req, &s);
    ASSERT_TRUE(gs.ok()) << gs.error_message();
    epoch_ = 5;
  }
  st = RawPush(source.get(), {Begin(2, 1, 4)});
  EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition) << st;
  EXPECT_NE(st.message().find("stale epoch 4"), std::string::npos) << st;

  EXPECT_EQ(testing::Diff(before, Standby()), "");
  EXPECT_EQ(State().committed_checkpoint(), 1u);
  // The replica still works after all that.
  testing::WriteFile(gw("conf/after.xml"), "fine");
  RunResult r =
      testing::Run({Bin("gwmirror-node"), "push", "--config",
                    dir_ / "source.json", "--checkpoint", "2", "--epoch", "5"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
}

// SIGKILL at every fault point of `prefix` (one process per point): after a
// restart the tree equals exactly the old or the new checkpoint and no
// staging file lingers.
TEST_F(MirrorTest, KilledAtAnyPointOfStagingOrCommitLeavesOneCheckpoint) {
  Sync(1);
  uint64_t n = 1;
  int crashes = 0;
  for (const std::string prefix : {"stage", "commit"}) {
    for (int k = 1; k <= 60; ++k) {
      SCOPED_TRACE(absl::StrCat(prefix, " point ", k));
      Manifest old_tree = Standby();
      // A small change with every kind of operation.
      testing::WriteFile(gw(absl::StrCat("conf/fed/crash-", k, ".xml")),
                         "added");
      testing::WriteFile(gw("conf/jvm.xml"),
                         absl::StrCat("edited ", prefix, k));
      std::string swap = gw("conf/swap");
      (void)RemoveTree(swap);
      if (k % 2) {
        testing::WriteFile(swap + "/inner", "dir");
      } else {
        testing::WriteFile(swap, "file");
      }
      Manifest new_tree = Prod();
      ++n;
      replica_.reset();
      StartReplica(
          {{"GWMIRROR_FAULT", absl::StrCat("crash:", prefix, ":", k)}});
      RunResult r = Push(n);
      absl::Status commit = absl::UnknownError("not reached");
      if (r.exit_code == 0)
        commit = Commit(n, StrField(r.out, "manifest_digest"));
      bool crashed = !commit.ok();
      replica_.reset();  // Reaps the killed process (or kills a live one).
      StartReplica();
      if (!crashed) {
        EXPECT_EQ(testing::Diff(new_tree, Standby()), "");
        break;  // Past the last fault point of this prefix.
      }
      ++crashes;
      std::string d_old = testing::Diff(old_tree, Standby());
      std::string d_new = testing::Diff(new_tree, Standby());
      EXPECT_TRUE(d_old.empty() || d_new.empty()) << "mixed tree\nvs old:\n"
                                                  << d_old << "vs new:\n"
                                                  << d_new;
      uint64_t committed = State().committed_checkpoint();
      EXPECT_EQ(committed == n, d_new.empty());
      EXPECT_NE(access((dir_ / "replica-state/replica/applying").c_str(), F_OK),
                0);
      if (committed == n) {
        EXPECT_NE(
            access((dir_ / "replica-state/replica/staging").c_str(), F_OK), 0);
      } else {
        // Only a completely staged n may stay (the coordinator may still
        // commit it); a partial one is gone.
        auto left = ListDir(dir_ / "replica-state/replica/staging");
        ASSERT_TRUE(left.ok());
        if (!left->empty()) {
          EXPECT_EQ(*left, std::vector<std::string>{absl::StrCat(n)});
          EXPECT_EQ(State().staged_checkpoint(), n);
        }
      }
      if (committed != n) {
        // Next round diffs against what the replica holds.
        ASSERT_EQ(testing::Diff(old_tree, Standby()), "");
      }
    }
  }
  std::printf("crash points exercised: %d\n", crashes);
  EXPECT_GT(crashes, 10);
}

}  // namespace
}  // namespace gwmirror
