// The node registry on a simulated clock: who may register, which
// heartbeats count, when a member is lost, and how slots pair up.
#include "coordinator/node_registry.h"

#include "absl/strings/match.h"
#include "gtest/gtest.h"

namespace gwmirror {
namespace {

gwmirror::v1::ClusterMember Member(const std::string& id,
                                   const std::string& site,
                                   const std::string& slot) {
  gwmirror::v1::ClusterMember m;
  m.set_identity(id);
  m.set_site(site);
  m.set_slot(slot);
  return m;
}

gwmirror::v1::HeartbeatRequest Beat(uint64_t epoch) {
  gwmirror::v1::HeartbeatRequest req;
  req.mutable_envelope()->set_epoch(epoch);
  return req;
}

class NodeRegistryTest : public ::testing::Test {
 protected:
  NodeRegistryTest()
      : registry_(&clock_, absl::Seconds(5),
                  {Member("gw1-p", "production", "gw1"),
                   Member("gw1-s", "standby", "gw1"),
                   Member("gw2-p", "production", "gw2"),
                   Member("gw2-s", "standby", "gw2")}) {}

  void RegisterAll() {
    for (const char* id : {"gw1-p", "gw1-s", "gw2-p", "gw2-s"}) {
      registry_.Registered(id, std::string(id) + ":1", {});
    }
  }

  NodeRecord Find(const std::string& id) {
    for (const NodeView& n : registry_.Snapshot()) {
      if (n->member->identity() == id) return *n;
    }
    ADD_FAILURE() << "no member " << id;
    return {};
  }

  SimulatedClock clock_;
  NodeRegistry registry_;
};

TEST_F(NodeRegistryTest, OnlyTheListedMemberMayTakeItsSeat) {
  EXPECT_TRUE(registry_.CheckMember("gw1-p", "production", "gw1").ok());
  for (auto [id, site, slot] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"intruder", "production", "gw1"},
           {"gw1-p", "standby", "gw1"},
           {"gw1-p", "production", "gw2"}}) {
    absl::Status st = registry_.CheckMember(id, site, slot);
    EXPECT_EQ(st.code(), absl::StatusCode::kPermissionDenied) << id;
    EXPECT_TRUE(absl::StrContains(st.message(), id)) << st;
  }
  // A refused name is not added by a stray Registered either.
  registry_.Registered("intruder", "evil:1", {});
  EXPECT_EQ(registry_.Snapshot().size(), 4u);
}

TEST_F(NodeRegistryTest, HeartbeatsCountOnlyFromRegisteredMembersAtTheEpoch) {
  EXPECT_EQ(registry_.Heartbeat("intruder", Beat(1), 1).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(registry_.Heartbeat("gw1-p", Beat(1), 1).status().code(),
            absl::StatusCode::kNotFound);
  RegisterAll();
  const absl::Time registered = Find("gw1-p").last_heartbeat;
  clock_.Advance(absl::Seconds(1));
  for (uint64_t sent : {0, 2}) {
    auto r = registry_.Heartbeat("gw1-p", Beat(sent), 1);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_TRUE(absl::StrContains(r.status().message(),
                                  sent ? "unknown epoch 2" : "stale epoch 0"))
        << r.status();
  }
  EXPECT_EQ(Find("gw1-p").last_heartbeat, registered) << "nothing recorded";

  gwmirror::v1::HeartbeatRequest req = Beat(1);
  req.set_pending_since_unix_ms(1234);
  req.set_pending_files(3);
  req.set_prestaging(true);
  req.mutable_progress()->set_files_done(7);
  auto r = registry_.Heartbeat("gw1-p", req, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  const NodeView first = *r;
  EXPECT_EQ(first->last_heartbeat, clock_.Now());
  EXPECT_EQ(first->pending_since, absl::FromUnixMillis(1234));
  EXPECT_EQ(first->unstaged_since, absl::InfinitePast());
  EXPECT_EQ(first->pending_files, 3u);
  ASSERT_TRUE(first->progress.has_value());
  // The next heartbeat without a push under way clears the last one's.
  clock_.Advance(absl::Seconds(1));
  r = registry_.Heartbeat("gw1-p", Beat(1), 1);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE((*r)->progress.has_value());
  EXPECT_FALSE((*r)->prestaging);
  EXPECT_EQ(Find("gw1-p").last_heartbeat, clock_.Now());
  // A record once published never changes under whoever holds it: the
  // heartbeat published a new one.
  EXPECT_NE(first, *r);
  EXPECT_EQ(first->last_heartbeat, clock_.Now() - absl::Seconds(1));
  EXPECT_TRUE(first->progress.has_value());
  EXPECT_TRUE(first->prestaging);
}

TEST_F(NodeRegistryTest, AMemberIsLostWhenItsHeartbeatsStop) {
  RegisterAll();
  auto slots = registry_.HealthySlots("production");
  ASSERT_TRUE(slots.ok()) << slots.status();
  ASSERT_EQ(slots->size(), 2u);
  EXPECT_EQ((*slots)[0].slot, "gw1");
  EXPECT_EQ((*slots)[0].source->member->identity(), "gw1-p");
  EXPECT_EQ((*slots)[0].replica->member->identity(), "gw1-s");
  // Roles follow the active site the caller names.
  slots = registry_.HealthySlots("standby");
  ASSERT_TRUE(slots.ok());
  EXPECT_EQ((*slots)[1].source->member->identity(), "gw2-s");

  clock_.Advance(absl::Milliseconds(4900));
  for (const char* id : {"gw1-p", "gw1-s", "gw2-p"}) {
    ASSERT_TRUE(registry_.Heartbeat(id, Beat(1), 1).ok());
  }
  clock_.Advance(absl::Milliseconds(200));
  EXPECT_FALSE(registry_.Healthy(Find("gw2-s"), clock_.Now()));
  EXPECT_TRUE(registry_.Healthy(Find("gw2-p"), clock_.Now()));
  slots = registry_.HealthySlots("production");
  EXPECT_EQ(slots.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(slots.status().message(),
            "gw2: replica gw2-s lost (last heartbeat 5.1s ago)");
  auto standby = registry_.SiteNodes("standby");
  EXPECT_EQ(standby.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StrContains(standby.status().message(), "gw2-s (gw2)"))
      << standby.status();
  auto production = registry_.SiteNodes("production");
  ASSERT_TRUE(production.ok());
  EXPECT_EQ(production->size(), 2u);
  // The source of gw2 has no healthy replica to push to; gw1's has.
  EXPECT_EQ(registry_.HealthyPeer(Find("gw2-p")), nullptr);
  ASSERT_NE(registry_.HealthyPeer(Find("gw1-p")), nullptr);
  EXPECT_EQ(registry_.HealthyPeer(Find("gw1-p"))->address, "gw1-s:1");
}

TEST_F(NodeRegistryTest, AMemberThatNeverRegisteredIsNamed) {
  registry_.Registered("gw1-p", "a:1", {});
  registry_.Registered("gw1-s", "b:1", {});
  auto slots = registry_.HealthySlots("production");
  EXPECT_EQ(slots.status().message(),
            "gw2: source gw2-p never registered; gw2: replica gw2-s never "
            "registered");
  EXPECT_TRUE(registry_.HasSlot("gw2"));
  EXPECT_FALSE(registry_.HasSlot("gw3"));
  NodeRegistry empty(&clock_, absl::Seconds(5), {});
  EXPECT_EQ(empty.SiteNodes("production").status().message(),
            "no node of site production has registered");
}

TEST_F(NodeRegistryTest, ASlotWithOneMemberIsNamed) {
  NodeRegistry registry(
      &clock_, absl::Seconds(5),
      {Member("gw1-p", "production", "gw1"), Member("gw1-s", "standby", "gw1"),
       Member("gw3-p", "production", "gw3")});
  for (const char* id : {"gw1-p", "gw1-s", "gw3-p"}) {
    registry.Registered(id, std::string(id) + ":1", {});
  }
  auto slots = registry.HealthySlots("production");
  EXPECT_EQ(slots.status().message(), "slot gw3 has no replica member");
  EXPECT_TRUE(registry.HasSlot("gw3"));
  EXPECT_EQ(registry.HealthyPeer(*registry.SiteNodes("production")->back()),
            nullptr);
}

// Every change publishes a new record (registration, certificate,
// heartbeat); what one carried stays in the next.
TEST_F(NodeRegistryTest, EveryChangePublishesANewRecord) {
  const NodeRecord before = Find("gw1-p");
  NodeView unregistered;
  for (const NodeView& n : registry_.Snapshot()) {
    if (n->member->identity() == "gw1-p") unregistered = n;
  }
  ASSERT_NE(unregistered, nullptr);
  RegisterAll();
  EXPECT_FALSE(unregistered->registered);
  EXPECT_TRUE(Find("gw1-p").registered);
  const absl::Time expiry = clock_.Now() + absl::Hours(24);
  registry_.NoteCertificate("gw1-p", expiry);
  clock_.Advance(absl::Seconds(1));
  auto beat = registry_.Heartbeat("gw1-p", Beat(1), 1);
  ASSERT_TRUE(beat.ok()) << beat.status();
  EXPECT_EQ((*beat)->cert_not_after, expiry);
  EXPECT_EQ((*beat)->address, "gw1-p:1");
  EXPECT_EQ(before.cert_not_after, absl::InfinitePast());
  EXPECT_EQ(unregistered->cert_not_after, absl::InfinitePast());
}

TEST_F(NodeRegistryTest, ACutWaitsForHealthyPrestreamingSourcesOnly) {
  RegisterAll();
  EXPECT_EQ(registry_.PrestageWaitEnds(absl::Seconds(5)), absl::InfinitePast());
  const absl::Time t0 = clock_.Now();
  gwmirror::v1::HeartbeatRequest req = Beat(1);
  req.set_prestaging(true);
  req.set_unstaged_since_unix_ms(absl::ToUnixMillis(t0));
  ASSERT_TRUE(registry_.Heartbeat("gw1-p", req, 1).ok());
  req.set_unstaged_since_unix_ms(absl::ToUnixMillis(t0 - absl::Seconds(1)));
  ASSERT_TRUE(registry_.Heartbeat("gw2-p", req, 1).ok());
  EXPECT_EQ(registry_.PrestageWaitEnds(absl::Seconds(5)),
            absl::FromUnixMillis(absl::ToUnixMillis(t0)) + absl::Seconds(5));
  // gw1's source goes silent: only gw2's change is waited for.
  clock_.Advance(absl::Seconds(3));
  ASSERT_TRUE(registry_.Heartbeat("gw2-p", req, 1).ok());
  clock_.Advance(absl::Seconds(3));
  EXPECT_EQ(registry_.PrestageWaitEnds(absl::Seconds(5)),
            absl::FromUnixMillis(absl::ToUnixMillis(t0)) + absl::Seconds(4));
}

}  // namespace
}  // namespace gwmirror
