#include "node/source/pusher.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <memory>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/block_delta.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "common/tls.h"
#include "gtest/gtest.h"
#include "gwmirror/v1/replica.grpc.pb.h"
#include "node/source/signature_cache.h"
#include "node/source/source_tree.h"
#include "node/source/watcher.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

// A source's config for slot gw1, its root "conf" under `dir`/prod, its
// certificate from `pki`.
gwmirror::v1::NodeConfig SourceConfig(const testing::TempDir& dir,
                                      testing::Pki* pki) {
  gwmirror::v1::NodeConfig config;
  config.set_slot("gw1");
  config.set_host_root(dir / "prod");
  config.set_state_dir(dir / "state");
  config.add_roots()->set_path("conf");
  *config.mutable_tls() = pki->Issue("source-gw1");
  config.mutable_source()->set_replica_identity("replica-gw1");
  return config;
}

// A replica service on loopback under the replica's certificate, and the
// source's channel to it; stopped when it goes.
struct Served {
  std::unique_ptr<grpc::Server> server;
  std::shared_ptr<grpc::Channel> channel;
  ~Served() {
    if (server != nullptr) StopServer(server.get());
  }
};
absl::StatusOr<std::unique_ptr<Served>> Serve(
    gwmirror::v1::Replica::Service* service, testing::Pki* pki,
    const gwmirror::v1::NodeConfig& source) {
  grpc::ServerBuilder builder;
  builder.RegisterService(service);
  int port = 0;
  auto served = std::make_unique<Served>();
  ASSIGN_OR_RETURN(served->server,
                   StartServer(builder, pki->Issue("replica-gw1"),
                               "127.0.0.1:0", "", &port, {}));
  ASSIGN_OR_RETURN(served->channel,
                   DialMutualTls(source.tls(), absl::StrCat("127.0.0.1:", port),
                                 "replica-gw1"));
  return served;
}

// A replica that holds `committed` and answers GetSignature as `answer`
// says: a broken or hostile one. Pushes are read to their end and refused.
class HostileReplica final : public gwmirror::v1::Replica::Service {
 public:
  enum class Answer { kOutOfOrder, kTooLong, kCutShort, kNothing };
  HostileReplica(Manifest committed, Answer answer)
      : committed_(std::move(committed)), answer_(answer) {}

  grpc::Status GetState(grpc::ServerContext*,
                        const gwmirror::v1::GetStateRequest*,
                        gwmirror::v1::ReplicaState* resp) override {
    resp->set_committed_checkpoint(1);
    resp->set_manifest_digest(DigestBytes(committed_.ComputeDigest()));
    return grpc::Status::OK;
  }
  grpc::Status GetManifest(
      grpc::ServerContext*, const gwmirror::v1::GetManifestRequest*,
      grpc::ServerWriter<gwmirror::v1::ManifestBatch>* writer) override {
    gwmirror::v1::ManifestBatch batch;
    for (const auto& e : committed_.entries()) *batch.add_entries() = e;
    writer->Write(batch);
    return grpc::Status::OK;
  }
  grpc::Status GetSignature(
      grpc::ServerContext*, const gwmirror::v1::GetSignatureRequest* req,
      grpc::ServerWriter<gwmirror::v1::SignatureChunk>* writer) override {
    gwmirror::v1::SignatureChunk c;
    switch (answer_) {
      case Answer::kOutOfOrder:
        c.set_target(req->targets_size());  // Beyond what was asked.
        c.set_last(true);
        writer->Write(c);
        break;
      case Answer::kTooLong:  // More than any signature of the file.
        c.set_data(std::string(4 << 20, 's'));
        writer->Write(c);
        break;
      case Answer::kCutShort:  // A piece, then nothing.
        c.set_data("rs\x01\x36");
        writer->Write(c);
        break;
      case Answer::kNothing:  // Not a word of any file.
        break;
    }
    return grpc::Status::OK;
  }
  grpc::Status Push(grpc::ServerContext*,
                    grpc::ServerReader<gwmirror::v1::PushMessage>* reader,
                    gwmirror::v1::PushResult*) override {
    gwmirror::v1::PushMessage m;
    while (reader->Read(&m)) {
    }
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "not a real replica");
  }

 private:
  const Manifest committed_;
  const Answer answer_;
};

// What a source does with each broken answer to GetSignature: refuses it
// by name, fails the push (nothing is sent against a signature it cannot
// trust), and leaves nothing in its signature cache.
TEST(PusherTest, ABrokenSignatureAnswerIsRefusedByNameAndNothingIsCached) {
  testing::TempDir dir;
  testing::Pki pki(dir / "pki");
  gwmirror::v1::NodeConfig config = SourceConfig(dir, &pki);
  const std::string file = dir / "prod/conf/store.xml";
  std::string body = testing::RandomBytes(300 << 10, 1);
  testing::WriteFile(file, body);
  const Manifest committed =
      testing::Snapshot(config.host_root(), {config.roots(0)});
  body.replace(1000, 5, "edit!");
  testing::WriteFile(file, body);
  const Manifest next =
      testing::Snapshot(config.host_root(), {config.roots(0)});
  ASSERT_NE(committed.Find("conf/store.xml")->sha256(),
            next.Find("conf/store.xml")->sha256());

  const struct {
    HostileReplica::Answer answer;
    std::string words;
  } cases[] = {
      {HostileReplica::Answer::kOutOfOrder,
       "answered signature 1 where 0 was due"},
      {HostileReplica::Answer::kTooLong, "bytes a signature of a 307200-byte"},
      {HostileReplica::Answer::kCutShort, "ended after 0 of 1 files"},
      {HostileReplica::Answer::kNothing, "ended after 0 of 1 files"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.words);
    HostileReplica replica(committed, c.answer);
    auto served = Serve(&replica, &pki, config);
    ASSERT_TRUE(served.ok()) << served.status();
    Pusher pusher(config, (*served)->channel);
    gwmirror::v1::Envelope envelope;
    envelope.set_epoch(1);
    auto report = pusher.Push(next, 2, envelope);
    ASSERT_FALSE(report.ok());
    EXPECT_TRUE(absl::IsDataLoss(report.status())) << report.status();
    EXPECT_TRUE(absl::StrContains(report.status().message(), c.words))
        << report.status();
    SignatureCache cache(config.state_dir() + "/source/signatures", 1024);
    EXPECT_FALSE(cache.Has(committed.Find("conf/store.xml")->sha256()));
  }
}

// A replica of an older version, which cannot take a digest at the end: it
// holds nothing and records the headers of what it is pushed.
class OlderReplica final : public gwmirror::v1::Replica::Service {
 public:
  grpc::Status GetState(grpc::ServerContext*,
                        const gwmirror::v1::GetStateRequest*,
                        gwmirror::v1::ReplicaState* resp) override {
    resp->set_manifest_digest(DigestBytes(Manifest().ComputeDigest()));
    return grpc::Status::OK;
  }
  grpc::Status GetManifest(
      grpc::ServerContext*, const gwmirror::v1::GetManifestRequest*,
      grpc::ServerWriter<gwmirror::v1::ManifestBatch>*) override {
    return grpc::Status::OK;
  }
  grpc::Status Push(grpc::ServerContext*,
                    grpc::ServerReader<gwmirror::v1::PushMessage>* reader,
                    gwmirror::v1::PushResult*) override {
    gwmirror::v1::PushMessage m;
    while (reader->Read(&m)) {
      if (m.has_file_header()) headers_.push_back(m.file_header());
    }
    return grpc::Status::OK;
  }
  const std::vector<gwmirror::v1::FileHeader>& headers() const {
    return headers_;
  }

 private:
  std::vector<gwmirror::v1::FileHeader> headers_;
};

// To a replica that does not say it takes a digest at the end, a file the
// scan left pending is hashed before the push and goes with its digest in
// its header, and the digest sink hears of it.
TEST(PusherTest, AReplicaThatCannotTakeADigestAtTheEndGetsItFirst) {
  testing::TempDir dir;
  testing::Pki pki(dir / "pki");
  gwmirror::v1::NodeConfig config = SourceConfig(dir, &pki);
  const std::string body = testing::RandomBytes(300 << 10, 2);
  testing::WriteFile(dir / "prod/conf/big.bin", body);
  absl::SleepFor(absl::Milliseconds(50));
  auto scan = ScanMirrorSet(config.host_root(), config.roots(), nullptr, 4,
                            Env::Default(), /*pending_from=*/64 << 10);
  ASSERT_TRUE(scan.ok()) << scan.status();
  ASSERT_TRUE(scan->pending.contains("conf/big.bin"));

  OlderReplica replica;
  auto served = Serve(&replica, &pki, config);
  ASSERT_TRUE(served.ok()) << served.status();
  Pusher pusher(config, (*served)->channel);
  pusher.SetHeld(&*scan);
  std::vector<std::string> told;
  pusher.SetDigestSink(
      [&](const std::string& path, const struct stat&, const std::string& sha) {
        told.push_back(path + "=" + HexOf(sha));
      });
  auto report = pusher.Push(scan->manifest, 1, {});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->digests_first, 1u);
  EXPECT_EQ(report->digests_at_end, 0u);
  const std::string sha = DigestBytes(Sha256Of(body));
  ASSERT_EQ(replica.headers().size(), 1u);
  EXPECT_FALSE(replica.headers()[0].digest_at_end());
  EXPECT_EQ(replica.headers()[0].entry().sha256(), sha);
  EXPECT_EQ(told, std::vector<std::string>{"conf/big.bin=" + HexOf(sha)});
}

// A watching tree keeps a pending entry across scans that do not read the
// file again, handing the push only its stamp: the push hashes the live
// file if it still has that stamp, and refuses one put at the path since,
// even of the same size and times (`cp -p`, `rsync -a`).
TEST(PusherTest, APendingDigestKeptAcrossScansIsHashedOnlyFromTheFileScanned) {
  testing::TempDir dir;
  testing::Pki pki(dir / "pki");
  gwmirror::v1::NodeConfig config = SourceConfig(dir, &pki);
  config.mutable_source()->set_digest_while_sending_from(64 << 10);
  const std::string path = dir / "prod/conf/big.bin";
  const std::string body = testing::RandomBytes(300 << 10, 3);
  testing::WriteFile(path, body);
  absl::SleepFor(absl::Milliseconds(50));
  ChangeWatcher watcher(config, {});
  ASSERT_TRUE(watcher.Start().ok());
  SourceTree tree(config, &watcher);
  auto first = tree.StableScan(absl::Seconds(5));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_NE(first->pending.at("conf/big.bin").fd, nullptr);
  auto kept = tree.StableScan(absl::Seconds(5));
  ASSERT_TRUE(kept.ok()) << kept.status();
  ASSERT_TRUE(kept->pending.contains("conf/big.bin"));
  EXPECT_EQ(kept->pending.at("conf/big.bin").fd, nullptr);
  EXPECT_TRUE(kept->pending.at("conf/big.bin").settled.has_value());

  OlderReplica replica;  // Every pending digest is hashed first for it.
  auto served = Serve(&replica, &pki, config);
  ASSERT_TRUE(served.ok()) << served.status();
  auto push = [&](const ScanResult& scan) {
    Pusher pusher(config, (*served)->channel);
    pusher.SetHeld(&scan);
    pusher.SetDigestSink(tree.LearnSink());
    return pusher.Push(scan.manifest, 1, {});
  };
  // Another file put at the path: the same size and times, not the same
  // file.
  struct stat was;
  ASSERT_EQ(stat(path.c_str(), &was), 0);
  testing::WriteFile(path + ".new", testing::RandomBytes(300 << 10, 4));
  const timespec times[2] = {was.st_atim, was.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, (path + ".new").c_str(), times, 0), 0);
  ASSERT_EQ(rename((path + ".new").c_str(), path.c_str()), 0);
  auto refused = push(*kept);
  EXPECT_TRUE(absl::IsAborted(refused.status())) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(),
                                "big.bin changed since the scan"))
      << refused.status();
  EXPECT_TRUE(replica.headers().empty());
  // Scanned again, it is read and goes.
  absl::SleepFor(absl::Milliseconds(50));
  auto again = tree.StableScan(absl::Seconds(5));
  ASSERT_TRUE(again.ok()) << again.status();
  auto sent = push(*again);
  ASSERT_TRUE(sent.ok()) << sent.status();
  EXPECT_EQ(sent->digests_first, 1u);
  ASSERT_EQ(replica.headers().size(), 1u);
  EXPECT_EQ(replica.headers()[0].entry().sha256(),
            DigestBytes(Sha256Of(testing::ReadFile(path))));
}

}  // namespace
}  // namespace gwmirror
