// Power loss, simulated: the replica store runs over a FaultInjectionEnv
// that cuts the power at its Nth mutating call (unsynced writes, renames
// and directory entries are then lost, as a machine that lost power shows
// them). The scenario stages and commits three checkpoints (new files, a
// changed dump, a deletion, a directory, a symlink retargeted, a mode
// change), with history compaction, retention and garbage collection in
// between, and is cut at every single step in turn. After each "reboot"
// the store must recover to exactly the checkpoint committed before the
// cut or the one being committed, with its history verifying, no partial
// staging left, and a working store (the rest of the scenario goes
// through on the recovered one).
#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "node/replica/store.h"
#include "tests/node/fault_injection_env.h"
#include "tests/node/replica/store_items.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

using testing::D;
using testing::F;
using testing::Item;
using testing::L;
using testing::Text;

// The checkpoints of the scenario; 0 is the empty tree a first start adopts.
std::vector<std::vector<Item>> Checkpoints() {
  return {
      {},
      {D("conf", 0750), F("conf/a.xml", "<a/>\n", 0600),
       F("dump.sql", Text(400)), F("gone", "bye"), L("link", "conf/a.xml")},
      {D("conf", 0750), F("conf/a.xml", "<a v='2'/>\n", 0640),
       F("dump.sql", Text(400, 17, "changed")), D("d2"), F("d2/new", "hello"),
       L("link", "dump.sql")},
      {D("conf", 0700), F("conf/a.xml", "<a v='2'/>\n", 0640),
       F("dump.sql", Text(420, 300, "again")), D("d2"), F("d2/new", "hello"),
       F("d2/more", Text(50)), L("link", "dump.sql")},
  };
}

// Equal as the replica judges its tree: directory mtimes aside (a commit
// sets them only where it changed a listing).
std::string TreeDiff(const Manifest& want, const Manifest& got) {
  std::string out;
  ForEachPath(want, got, [&](const Entry* w, const Entry* g) {
    if (w == nullptr) {
      absl::StrAppend(&out, "extra ", g->path(), "; ");
    } else if (g == nullptr) {
      absl::StrAppend(&out, "missing ", w->path(), "; ");
    } else if (w->type() == gwmirror::v1::ENTRY_TYPE_DIRECTORY
                   ? (g->type() != w->type() || g->mode() != w->mode())
                   : !SameEntry(*w, *g)) {
      absl::StrAppend(&out, "differs ", w->path(), "; ");
    }
  });
  return out;
}

class PowerLossTest : public ::testing::Test {
 protected:
  // On a tmpfs when there is one: the model decides what a cut loses, and
  // there a syncfs costs nothing (hundreds of runs stay fast).
  static std::string Base() {
    return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  }
  gwmirror::v1::NodeConfig Config(const std::string& dir) {
    gwmirror::v1::NodeConfig c;
    c.set_slot("gw1");
    c.set_host_root(dir + "/host");
    c.set_state_dir(dir + "/state");
    c.add_roots()->set_path("r");
    // Two retained checkpoints: the third commit expires the first, so
    // retention and garbage collection run too.
    c.mutable_replica()->mutable_retention()->set_max_count(2);
    // The dump is staged past the page cache (O_DIRECT, its whole blocks
    // then its tail), as a large file is.
    c.mutable_replica()->set_direct_io_min_bytes(4096);
    return c;
  }

  // Runs the scenario from checkpoint `from` on; returns the last
  // checkpoint whose commit returned OK (or `from - 1`... the committed one
  // the store started at) and the first error.
  struct Progress {
    uint64_t committed = 0;
    absl::Status error;
  };
  Progress Run(ReplicaStore* store, uint64_t from) {
    const auto cps = Checkpoints();
    Progress p;
    p.committed = store->State().committed_checkpoint();
    for (uint64_t n = from; n < cps.size(); ++n) {
      std::string digest;
      auto pushed = testing::PushItems(store, n, cps[n], &digest);
      p.error = pushed.status();
      if (p.error.ok()) p.error = store->Commit(n, digest);
      if (!p.error.ok()) return p;
      p.committed = n;
      // Compaction, retention and collection after each commit.
      p.error = store->MaintainHistory(/*gc=*/true);
      if (!p.error.ok()) return p;
    }
    return p;
  }

  // Checks the recovered store holds exactly checkpoint `n`.
  void ExpectExactly(ReplicaStore* store, uint64_t n, const std::string& dir,
                     const std::string& where) {
    const auto cps = Checkpoints();
    gwmirror::v1::RootConfig r;
    r.set_path("r");
    Manifest tree = testing::Snapshot(dir + "/host", {r});
    EXPECT_EQ(TreeDiff(testing::ManifestOf(cps[n]), tree), "")
        << where << ": the tree is not checkpoint " << n;
    EXPECT_EQ(DigestBytes(store->CommittedManifest().ComputeDigest()),
              DigestBytes(testing::ManifestOf(cps[n]).ComputeDigest()))
        << where;
    auto v = store->Verify(/*repair=*/false);
    ASSERT_TRUE(v.ok()) << where << ": " << v.status();
    EXPECT_EQ(v->problems_size(), 0) << where << ": " << v->ShortDebugString();
    // No partial staging file lingers.
    for (auto& e : std::filesystem::recursive_directory_iterator(
             dir + "/state/replica")) {
      EXPECT_FALSE(absl::EndsWith(e.path().string(), ".part"))
          << where << ": " << e.path();
    }
  }
};

TEST_F(PowerLossTest, EveryStepOfStagingCommitAndHistoryRecovers) {
  // A dry run counts the steps.
  int steps = 0;
  {
    testing::TempDir dir(Base());
    testing::FaultInjectionEnv env(dir / "w", dir / "attic");
    auto store = ReplicaStore::Open(Config(dir / "w"), &env, false);
    ASSERT_TRUE(store.ok()) << store.status();
    Progress p = Run(store->get(), 1);
    ASSERT_TRUE(p.error.ok()) << p.error;
    ASSERT_EQ(p.committed, 3u);
    steps = env.mutations();
  }
  ASSERT_GT(steps, 50);
  int recovered_old = 0, recovered_new = 0, staged_committed = 0;
  for (int cut = 1; cut <= steps; ++cut) {
    testing::TempDir dir(Base());
    const std::string where = absl::StrCat("power cut at step ", cut);
    testing::FaultInjectionEnv env(dir / "w", dir / "attic");
    env.CutPowerAt(cut);
    uint64_t committed = 0;
    {
      auto store = ReplicaStore::Open(Config(dir / "w"), &env, false);
      if (store.ok()) {
        Progress p = Run(store->get(), 1);
        committed = p.committed;
        EXPECT_FALSE(p.error.ok()) << where << ": the cut went unnoticed";
      }
    }
    ASSERT_TRUE(env.dead()) << where;
    env.PowerCut();
    // Reboot on the real file system.
    auto store = ReplicaStore::Open(Config(dir / "w"), Env::Default(), false);
    ASSERT_TRUE(store.ok()) << where << ": " << store.status();
    uint64_t now = (*store)->State().committed_checkpoint();
    // A checkpoint staged completely survives (the coordinator may have
    // recorded it consistent): commit it as that coordinator would, or
    // abort it as one that had not; every other cut point alike.
    if (const gwmirror::v1::ReplicaState s = (*store)->State();
        s.staged_checkpoint() != 0) {
      ASSERT_EQ(s.staged_checkpoint(), committed + 1) << where;
      if (cut % 2 == 0) {
        ASSERT_TRUE((*store)->Abort(s.staged_checkpoint()).ok()) << where;
      } else {
        ASSERT_TRUE(
            (*store)->Commit(s.staged_checkpoint(), s.staged_digest()).ok())
            << where;
        now = s.staged_checkpoint();
        ++staged_committed;
      }
    }
    ASSERT_TRUE(now == committed || now == committed + 1)
        << where << ": recovered checkpoint " << now
        << ", the last commit that returned was " << committed;
    (now == committed ? recovered_old : recovered_new)++;
    ExpectExactly(store->get(), now, dir / "w", where);
    // The store goes on: the rest of the scenario commits.
    Progress p = Run(store->get(), now + 1);
    ASSERT_TRUE(p.error.ok()) << where << ": after recovery: " << p.error;
    ExpectExactly(store->get(), 3, dir / "w", where + ", then resumed");
    if (HasFailure()) break;
  }
  std::printf(
      "power loss: %d cut points exercised; recovered to the checkpoint "
      "committed before the cut %d times, to the one being committed %d "
      "times (%d of them from a complete staging kept across the cut)\n",
      steps, recovered_old, recovered_new, staged_committed);
}

}  // namespace
}  // namespace gwmirror
