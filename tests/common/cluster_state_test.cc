#include "common/cluster_state.h"

#include <gtest/gtest.h>

namespace gwmirror {
namespace {

gwmirror::v1::SlotStatus Healthy(const std::string& name) {
  gwmirror::v1::SlotStatus s;
  s.set_name(name);
  s.mutable_source()->set_identity(name + "-production");
  s.mutable_source()->set_healthy(true);
  s.mutable_replica()->set_identity(name + "-standby");
  s.mutable_replica()->set_healthy(true);
  return s;
}

std::string StateOf(gwmirror::v1::SlotStatus s, bool answered = true) {
  ClassifySlot(StateThresholds{}, answered, &s);
  return s.state() + ": " + s.state_reason();
}

TEST(ClusterStateTest, EachSlotStateAndItsReason) {
  EXPECT_EQ(StateOf(Healthy("gw1")), "OK: ");
  auto s = Healthy("gw1");
  s.set_lag_ms(31000);
  EXPECT_EQ(StateOf(s),
            "LAGGING: the oldest unstaged change is 31 s old (lagging after "
            "30 s)");
  s.set_lag_ms(121000);
  EXPECT_EQ(StateOf(s).substr(0, 8), "STALLED:");
  s.set_held("mass deletion held: conf would lose all of its 12 entries");
  EXPECT_EQ(StateOf(s),
            "HELD: mass deletion held: conf would lose all of its 12 entries");
  s = Healthy("gw1");
  s.mutable_source()->set_healthy(false);
  EXPECT_EQ(StateOf(s), "DEGRADED: production node gw1-production down");
  s = Healthy("gw1");
  s.mutable_replica()->set_drifted_entries(3);
  EXPECT_EQ(StateOf(s).substr(0, 11), "DEGRADED: 3");
  s = Healthy("gw1");
  s.mutable_replica()->set_healthy(false);
  s.mutable_replica()->set_heartbeat_age_ms(9000);
  s.set_held("held");  // Unreachable is worse than held.
  EXPECT_EQ(StateOf(s),
            "PARTITIONED: standby node gw1-standby unreachable (no heartbeat "
            "for 9 s)");
  EXPECT_EQ(StateOf(Healthy("gw1"), /*answered=*/false),
            "PARTITIONED: standby node gw1-standby does not answer the "
            "coordinator");
  s = Healthy("gw1");
  s.mutable_replica()->clear_identity();
  EXPECT_EQ(StateOf(s), "PARTITIONED: no standby node has registered");
}

TEST(ClusterStateTest, TheWorstSlotWinsAndParityCanMakeItWorse) {
  gwmirror::v1::ClusterStatus c;
  c.set_parity(true);
  c.set_parity_policy("strict");
  auto a = Healthy("gw1");
  auto b = Healthy("gw2");
  b.set_lag_ms(40000);
  for (auto* s : {&a, &b}) ClassifySlot(StateThresholds{}, true, s);
  *c.add_slots() = a;
  *c.add_slots() = b;
  ClassifyCluster(&c);
  EXPECT_EQ(c.state(), "LAGGING");
  EXPECT_EQ(c.state_reason().substr(0, 10), "slot gw2: ");
  // A deployment half done holds every cut: HELD, with the reason and
  // since when, over a lagging slot.
  c.set_held("deployment in progress: group \"G\" runs different archives");
  c.set_held_since_unix_ms(1764900000000);
  ClassifyCluster(&c);
  EXPECT_EQ(c.state(), "HELD");
  EXPECT_EQ(c.state_reason(),
            "deployment in progress: group \"G\" runs different archives "
            "(since 2025-12-05T02:00:00Z)");
  c.set_parity(false);
  c.add_differences("standby lacks group QuickStart Group");
  ClassifyCluster(&c);
  EXPECT_EQ(c.state(), "BLOCKED");
  c.set_parity_policy("warn");
  ClassifyCluster(&c);
  EXPECT_EQ(c.state(), "DEGRADED");
}

TEST(ClusterStateTest, CheckExitCodesFollowTheMonitoringConvention) {
  EXPECT_EQ(CheckExitCode("OK"), 0);
  for (const char* w : {"LAGGING", "HELD", "DEGRADED"}) {
    EXPECT_EQ(CheckExitCode(w), 1) << w;
  }
  for (const char* c : {"STALLED", "PARTITIONED", "BLOCKED"}) {
    EXPECT_EQ(CheckExitCode(c), 2) << c;
  }
  EXPECT_EQ(CheckExitCode("SOMETHING"), 3);
  gwmirror::v1::CoordinatorConfig config;
  config.set_lagging_after_ms(10000);
  StateThresholds t = StateThresholds::From(config);
  EXPECT_EQ(t.lagging, absl::Seconds(10));
  EXPECT_EQ(t.stalled, absl::Seconds(40));
}

TEST(ClusterStateTest, RatesInBytesAndBits) {
  EXPECT_EQ(RateText(2'000'000), "2.0 MB/s (16 Mbit/s)");
  EXPECT_EQ(RateText(12'500), "12.5 KB/s (0.10 Mbit/s)");
  EXPECT_EQ(RateText(125'000'000), "125.0 MB/s (1000 Mbit/s)");
}

TEST(ClusterStateTest, ProgressLineSaysHowFarHowFastAndHowLong) {
  gwmirror::v1::SyncProgress p;
  p.set_files_done(120);
  p.set_files_total(400);
  p.set_bytes_done(1200000000);
  p.set_bytes_total(3400000000);
  const absl::Time now = absl::FromUnixSeconds(1764900000);
  p.set_started_unix_ms(absl::ToUnixMillis(now - absl::Seconds(15)));
  EXPECT_EQ(ProgressLine(p, now),
            "35 % (1.2 GB of 3.4 GB; 120 of 400 files), 80.0 MB/s, ETA 28 s");
  // Just begun: no rate yet.
  p.set_started_unix_ms(absl::ToUnixMillis(now));
  EXPECT_EQ(ProgressLine(p, now), "35 % (1.2 GB of 3.4 GB; 120 of 400 files)");
  p.Clear();
  EXPECT_EQ(ProgressLine(p, now), "0 % (0 bytes of 0 bytes; 0 of 0 files)");
}

TEST(ClusterStateTest, DrillLineNamesTheStep) {
  const absl::Time now = absl::FromUnixSeconds(1764900000);
  gwmirror::v1::SyncProgress p;
  EXPECT_EQ(DrillLine(p, now), "");
  p.set_step("restore");
  p.set_files_done(1);
  p.set_files_total(4);
  p.set_bytes_done(225);
  p.set_bytes_total(900);
  p.set_started_unix_ms(absl::ToUnixMillis(now));
  EXPECT_EQ(DrillLine(p, now),
            "restoring and verifying 25 % (225 bytes of 900 bytes; 1 of 4 "
            "files)");
  p.set_step("databases");
  EXPECT_EQ(DrillLine(p, now), "restoring databases into scratch names");
  p.set_step("smoke");
  EXPECT_EQ(DrillLine(p, now), "running the smoke command");
}

}  // namespace
}  // namespace gwmirror
