// The per-identity admission of every server (common/authz.h): who a peer
// claims to be and what it calls come from the network. The input is a
// sequence of operations (admit a method as an identity, release a held
// call, let time pass) run on a CallGate with a simulated clock. Whatever
// the sequence, no call is admitted that its identity's roles do not allow,
// the limits hold, and once every call is released nobody is remembered.
#include <cstdlib>
#include <deque>
#include <map>

#include "common/authz.h"
#include "tests/fuzz/fuzz.h"

namespace {

const char* const kIdentities[] = {
    "gw1-production", "gw1-standby", "coordinator", "operator", "viewer", "",
    "stranger"};

gwmirror::Roles RolesOf(const std::string& id) {
  if (id == "gw1-production")
    return gwmirror::kRoleSource | gwmirror::kRoleMember;
  if (id == "gw1-standby") return gwmirror::kRoleMember;
  if (id == "coordinator") return gwmirror::kRoleCoordinator;
  if (id == "operator") return gwmirror::kRoleOperator;
  if (id == "viewer") return gwmirror::kRoleViewer;
  return 0;
}

}  // namespace

std::vector<std::string> GwmFuzzSeeds() {
  return {std::string("\x00\x01\x02\x13\x24\x35\x40\x51\xff\x80", 10),
          std::string(40, '\x03'), std::string("\x10\x20\x30\xc0\xc1\xc2", 6)};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& table = gwmirror::AuthorizationTable();
  gwmirror::SimulatedClock clock;
  gwmirror::CallGate::Limits limits;
  limits.max_in_flight = 3;
  limits.max_expensive_in_flight = 2;
  limits.expensive_per_second = 5;
  limits.expensive_burst = 4;
  gwmirror::CallGate gate(RolesOf, limits, &clock);
  std::deque<gwmirror::CallGate::Ticket> held;
  std::map<std::string, int> in_flight;
  for (size_t i = 0; i < size; ++i) {
    const uint8_t op = data[i];
    if (op >= 0xc0) {  // Release the oldest held call.
      if (!held.empty()) {
        --in_flight[held.front().identity()];
        held.pop_front();
      }
      continue;
    }
    if (op >= 0x80) {  // Time passes.
      clock.Advance(absl::Milliseconds((op - 0x80) * 37));
      continue;
    }
    const std::string id = kIdentities[op % 7];
    const gwmirror::MethodRule& rule = table[(op / 7) % table.size()];
    auto t = gate.AdmitIdentity(id, rule.method);
    if (!t.ok()) continue;
    if ((RolesOf(id) & rule.allowed) == 0) std::abort();  // Let through!
    if (++in_flight[id] > limits.max_in_flight) std::abort();
    held.push_back(*std::move(t));
  }
  held.clear();
  // With nothing held and the buckets full again, an identity (one per
  // input) may call what it is allowed to.
  for (const char* id : {kIdentities[size > 0 ? data[0] % 7 : 0]}) {
    for (const auto& rule : table) {
      clock.Advance(absl::Seconds(1));
      auto t = gate.AdmitIdentity(id, rule.method);
      if (t.ok() != ((RolesOf(id) & rule.allowed) != 0)) std::abort();
    }
  }
  return 0;
}
