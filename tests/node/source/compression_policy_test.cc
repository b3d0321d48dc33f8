#include "node/source/compression_policy.h"

#include "gtest/gtest.h"

namespace gwmirror {
namespace {

using gwmirror::v1::SourceConfig;
constexpr uint64_t kChunk = 1 << 20;

// Feeds `n` chunks through `p`, each costing `compressed_ns` or `raw_ns`
// per byte by the way the policy chose; returns how many were compressed.
int Send(CompressionPolicy* p, int n, double compressed_ns, double raw_ns) {
  int compressed = 0;
  for (int i = 0; i < n; ++i) {
    bool c = p->Compress(kChunk, /*delta=*/false);
    compressed += c;
    p->Observe(c, kChunk, /*delta=*/false,
               absl::Nanoseconds((c ? compressed_ns : raw_ns) * kChunk));
  }
  return compressed;
}

TEST(CompressionPolicyTest, ASlowLinkKeepsCompressing) {
  // 100 MB/s link: raw costs 10 ns/B; compressing 3 ns/B plus a seventh of
  // the wire time.
  CompressionPolicy p;
  Send(&p, 20, 4.4, 10);
  EXPECT_NEAR(p.ns_per_byte(true), 4.4, 0.01);
  EXPECT_NEAR(p.ns_per_byte(false), 10, 0.01);
  // Explorations of 3 raw chunks find raw clearly dearer, so the runs of
  // compressed chunks between them double, 30 to 240: on a slow link a raw
  // chunk is the expensive one to try.
  int compressed = Send(&p, 700, 4.4, 10);
  EXPECT_GT(compressed, 700 * 0.96);
  EXPECT_LT(compressed, 700);
}

TEST(CompressionPolicyTest, LoopbackSendsRawAndStillLooksAtCompression) {
  CompressionPolicy p;
  Send(&p, 20, 3.5, 1.2);
  int compressed = Send(&p, 700, 3.5, 1.2);
  EXPECT_GT(compressed, 0);
  EXPECT_LT(compressed, 700 * 0.04);
  EXPECT_NEAR(p.ns_per_byte(false), 1.2, 0.01);
}

TEST(CompressionPolicyTest, CloseCostsAreLookedAtAsOftenAsBefore) {
  // Neither way clearly cheaper (within a quarter): runs of 30 and 3.
  CompressionPolicy p;
  Send(&p, 20, 1.1, 1.0);
  int compressed = Send(&p, 700, 1.1, 1.0);
  EXPECT_GT(compressed, 700 * 0.08);
  EXPECT_LT(compressed, 700 * 0.15);
}

TEST(CompressionPolicyTest, AWayThatTurnsDearerIsLeftAtOnce) {
  CompressionPolicy p;
  Send(&p, 1000, 3.5, 1.2);  // Loopback: runs of raw 240 chunks long.
  // The link slows mid-run: raw's own cost passes compression's within a
  // few chunks, and the run ends there, not 240 chunks on.
  Send(&p, 6, 3.5, 20);
  EXPECT_EQ(Send(&p, 25, 3.5, 20), 25);
}

TEST(CompressionPolicyTest, SmallChunksAndDeltasAreCompressedWhereBulkIsRaw) {
  CompressionPolicy p;
  Send(&p, 100, 3.5, 1.2);
  int raw_bulk = 0;
  for (int i = 0; i < 10; ++i) raw_bulk += !p.Compress(kChunk, false);
  EXPECT_GT(raw_bulk, 0);
  EXPECT_TRUE(p.Compress(CompressionPolicy::kMinMeasured - 1, false));
  EXPECT_TRUE(p.Compress(kChunk, /*delta=*/true));
  CompressionPolicy never(SourceConfig::COMPRESSION_NEVER);
  EXPECT_FALSE(never.Compress(100, false));
  EXPECT_FALSE(never.Compress(kChunk, true));
}

TEST(CompressionPolicyTest, ItFollowsTheLinkWhenItChanges) {
  CompressionPolicy p;
  Send(&p, 100, 3.5, 1.2);  // Loopback-like: raw.
  // The link slows (a WAN path): the explorations find compression
  // cheaper and the policy moves over within a few runs.
  Send(&p, 200, 3.5, 20);
  EXPECT_GT(Send(&p, 70, 3.5, 20), 70 * 0.85);
}

TEST(CompressionPolicyTest, SmallChunksAndFirstChunksOfARunAreNotMeasured) {
  CompressionPolicy p;
  // Small chunks (a config file each) are compressed, unmeasured.
  for (int i = 0; i < 50; ++i) {
    ASSERT_TRUE(p.Compress(CompressionPolicy::kMinMeasured - 1, false));
    p.Observe(true, CompressionPolicy::kMinMeasured - 1, false,
              absl::Seconds(1));
  }
  EXPECT_EQ(p.ns_per_byte(true), 0);
  // The first chunk of a run carries the other way's backlog: skipped.
  p.Observe(true, kChunk, false, absl::Seconds(100));
  EXPECT_EQ(p.ns_per_byte(true), 0);
  p.Observe(true, kChunk, false, absl::Nanoseconds(2.0 * kChunk));
  EXPECT_NEAR(p.ns_per_byte(true), 2.0, 0.01);
  // A chunk sent the other way than chosen (it did not shrink) is not
  // counted for either.
  p.Observe(false, kChunk, false, absl::Nanoseconds(50.0 * kChunk));
  EXPECT_EQ(p.ns_per_byte(false), 0);
  // Nor is a delta's chunk.
  p.Observe(true, kChunk, /*delta=*/true, absl::Nanoseconds(50.0 * kChunk));
  EXPECT_NEAR(p.ns_per_byte(true), 2.0, 0.01);
}

TEST(CompressionPolicyTest, AlwaysAndNeverAreFixed) {
  CompressionPolicy always(SourceConfig::COMPRESSION_ALWAYS);
  CompressionPolicy never(SourceConfig::COMPRESSION_NEVER);
  EXPECT_EQ(Send(&always, 100, 100, 1), 100);
  EXPECT_EQ(Send(&never, 100, 1, 100), 0);
}

}  // namespace
}  // namespace gwmirror
