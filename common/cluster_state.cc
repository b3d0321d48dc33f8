#include "common/cluster_state.h"

#include <algorithm>
#include <array>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace gwmirror {
namespace {

constexpr std::array<const char*, 7> kStates = {
    "OK", "LAGGING", "HELD", "DEGRADED", "STALLED", "PARTITIONED", "BLOCKED"};

std::string Seconds(int64_t ms) {
  return absl::StrFormat("%.0f s", ms / 1000.0);
}

void Set(gwmirror::v1::SlotStatus* slot, const char* state, std::string why) {
  slot->set_state(state);
  slot->set_state_reason(std::move(why));
}

}  // namespace

StateThresholds StateThresholds::From(
    const gwmirror::v1::CoordinatorConfig& c) {
  StateThresholds t;
  if (c.lagging_after_ms() > 0)
    t.lagging = absl::Milliseconds(c.lagging_after_ms());
  t.stalled = c.stalled_after_ms() > 0
                  ? absl::Milliseconds(c.stalled_after_ms())
                  : 4 * t.lagging;
  return t;
}

namespace {

std::string Bytes(double b) {
  const char* units[] = {"bytes", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000 && u < 4) {
    b /= 1000;
    ++u;
  }
  return u == 0 ? absl::StrFormat("%.0f %s", b, units[u])
                : absl::StrFormat("%.1f %s", b, units[u]);
}

}  // namespace

std::string ProgressLine(const gwmirror::v1::SyncProgress& p, absl::Time now) {
  const double total = std::max<double>(1, p.bytes_total());
  std::string out =
      absl::StrFormat("%.0f %% (%s of %s; %d of %d files)",
                      100.0 * p.bytes_done() / total, Bytes(p.bytes_done()),
                      Bytes(p.bytes_total()), p.files_done(), p.files_total());
  const double seconds =
      absl::ToDoubleSeconds(now - absl::FromUnixMillis(p.started_unix_ms()));
  if (seconds >= 1 && p.bytes_done() > 0) {
    const double rate = p.bytes_done() / seconds;
    absl::StrAppend(
        &out, ", ", Bytes(rate), "/s, ETA ",
        absl::StrFormat("%.0f s", (p.bytes_total() -
                                   std::min(p.bytes_total(), p.bytes_done())) /
                                      rate));
  }
  return out;
}

std::string DrillLine(const gwmirror::v1::SyncProgress& p, absl::Time now) {
  if (p.step() == "databases") return "restoring databases into scratch names";
  if (p.step() == "smoke") return "running the smoke command";
  if (p.files_total() == 0) return "";
  return "restoring and verifying " + ProgressLine(p, now);
}

std::string RateText(uint64_t b) {
  const double mbit = b * 8 / 1e6;
  return absl::StrCat(
      Bytes(b), "/s (",
      mbit >= 1 ? absl::StrFormat("%.0f", mbit) : absl::StrFormat("%.2f", mbit),
      " Mbit/s)");
}

std::string UnixMsText(int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", absl::FromUnixMillis(unix_ms),
                          absl::UTCTimeZone());
}

std::string SecondsText(int64_t ms, absl::string_view none) {
  return ms < 0 ? std::string(none) : absl::StrFormat("%.1f s", ms / 1000.0);
}

const std::vector<std::string>& StateNames() {
  static const auto* names =
      new std::vector<std::string>(kStates.begin(), kStates.end());
  return *names;
}

int Severity(const std::string& state) {
  auto it = std::find(kStates.begin(), kStates.end(), state);
  return it == kStates.end() ? -1 : static_cast<int>(it - kStates.begin());
}

int CheckExitCode(const std::string& state) {
  int s = Severity(state);
  if (s < 0) return 3;
  if (s == 0) return 0;
  return s <= Severity("DEGRADED") ? 1 : 2;
}

void ClassifySlot(const StateThresholds& t, bool replica_answered,
                  gwmirror::v1::SlotStatus* slot) {
  const auto& r = slot->replica();
  const auto& src = slot->source();
  const int64_t lag = slot->lag_ms();
  if (r.identity().empty()) {
    return Set(slot, "PARTITIONED", "no standby node has registered");
  }
  if (!r.healthy()) {
    return Set(
        slot, "PARTITIONED",
        absl::StrCat("standby node ", r.identity(), " unreachable",
                     r.heartbeat_age_ms() >= 0
                         ? absl::StrCat(" (no heartbeat for ",
                                        Seconds(r.heartbeat_age_ms()), ")")
                         : ""));
  }
  if (!replica_answered) {
    return Set(slot, "PARTITIONED",
               absl::StrCat("standby node ", r.identity(),
                            " does not answer the coordinator"));
  }
  if (!slot->held().empty()) {
    return Set(slot, "HELD", slot->held());
  }
  if (lag > absl::ToInt64Milliseconds(t.stalled)) {
    return Set(
        slot, "STALLED",
        absl::StrCat("the oldest unstaged change is ", Seconds(lag),
                     " old (stalled after ",
                     Seconds(absl::ToInt64Milliseconds(t.stalled)), ")"));
  }
  if (src.identity().empty() || !src.healthy()) {
    return Set(slot, "DEGRADED",
               src.identity().empty()
                   ? std::string("no production node has registered")
                   : absl::StrCat("production node ", src.identity(), " down"));
  }
  if (slot->differences_size() > 0) {
    return Set(slot, "DEGRADED",
               absl::StrCat("topology differs: ", slot->differences(0)));
  }
  if (r.drifted_entries() > 0) {
    return Set(
        slot, "DEGRADED",
        absl::StrCat(r.drifted_entries(),
                     " standby entries drifted (the next cut repairs them)"));
  }
  if (lag > absl::ToInt64Milliseconds(t.lagging)) {
    return Set(
        slot, "LAGGING",
        absl::StrCat("the oldest unstaged change is ", Seconds(lag),
                     " old (lagging after ",
                     Seconds(absl::ToInt64Milliseconds(t.lagging)), ")"));
  }
  Set(slot, "OK", "");
}

void ClassifyCluster(gwmirror::v1::ClusterStatus* s) {
  std::string state = "OK";
  std::vector<std::string> why;
  auto worse = [&](const std::string& st, const std::string& reason) {
    if (Severity(st) > Severity(state)) {
      state = st;
      why.clear();
    }
    if (st == state && !reason.empty()) why.push_back(reason);
  };
  for (const auto& slot : s->slots()) {
    worse(slot.state(),
          slot.state_reason().empty()
              ? ""
              : absl::StrCat("slot ", slot.name(), ": ", slot.state_reason()));
  }
  if (!s->held().empty()) {
    worse("HELD", absl::StrCat(s->held(), " (since ",
                               UnixMsText(s->held_since_unix_ms()), ")"));
  }
  if (s->unprotected_connections() > 0) {
    std::vector<std::string> names;
    for (const auto& row : s->coverage()) {
      if (row.state() != "UNPROTECTED" && row.state() != "UNRESOLVED") continue;
      if (names.size() == 3) {
        names.push_back("...");
        break;
      }
      names.push_back(
          absl::StrCat(row.slot(), " \"", row.connection().name(), "\""));
    }
    worse("DEGRADED",
          absl::StrCat(s->unprotected_connections(),
                       " external connection(s) hold state that nothing "
                       "protects: ",
                       absl::StrJoin(names, ", "), " (gwmirror coverage)"));
  }
  if (!s->parity()) {
    std::string d = s->differences_size() > 0 ? s->differences(0) : "";
    worse(s->parity_policy() == "strict" ? "BLOCKED" : "DEGRADED",
          absl::StrCat("topology parity fails (", s->parity_policy(),
                       " policy): ", d));
  }
  s->set_state(state);
  s->set_state_reason(absl::StrJoin(why, "; "));
}

}  // namespace gwmirror
