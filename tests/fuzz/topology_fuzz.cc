// What nodes report travels from the network into the coordinator: the
// product's topology.json and deployments.json (parsed by nodes) and whole
// TopologyReports (parsed by the coordinator, judged by ComputeParity).
// Any input either fails cleanly or gives a verdict whose `parity` agrees
// with its list of differences.
#include <cstdlib>

#include "coordinator/parity.h"
#include "node/topology_report.h"
#include "tests/fuzz/fuzz.h"

namespace {

gwmirror::v1::TopologyReport Report(const std::string& site,
                                    const std::string& slot,
                                    const std::string& host) {
  gwmirror::v1::TopologyReport r;
  r.set_site(site);
  r.set_slot(slot);
  r.set_host_name(host);
  r.set_installed_version("7.7.20221130");
  auto* t = r.mutable_topology();
  t->set_version(3);
  auto* h = t->add_hosts();
  h->set_id("host-1");
  h->set_name(host);
  auto* g = t->add_groups();
  g->set_id("group-2");
  g->set_name("QuickStart Group");
  auto* s = g->add_services();
  s->set_id("instance-1");
  s->set_type("gateway");
  s->set_host_id("host-1");
  (*r.mutable_deployments())["instance-1"] = "a1";
  r.add_instances_on_disk("group-2/instance-1");
  return r;
}

}  // namespace

std::vector<std::string> GwmFuzzSeeds() {
  std::string pair;
  for (const auto& r : {Report("production", "gw1", "gw1.example.com"),
                        Report("standby", "gw1", "gw1.example.com")}) {
    std::string bytes = r.SerializeAsString();
    pair.push_back(static_cast<char>(bytes.size() & 0xff));
    pair.push_back(static_cast<char>(bytes.size() >> 8));
    pair += bytes;
  }
  return {
      R"({"id":"x","version":2,"productVersion":"7.7","hosts":[{"id":"host-1","name":"gw1"}],)"
      R"("groups":[{"id":"group-2","name":"G","services":[{"id":"instance-1","type":"gateway",)"
      R"("hostID":"host-1","tags":{"internal_admin_nm":"true"}}]}]})",
      R"({"serviceDeployments":{"instance-1":[{"archiveID":"u1"}],"instance-2":[]}})",
      pair};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  (void)gwmirror::ParseTopology(in);
  gwmirror::v1::TopologyReport r;
  (void)gwmirror::ParseDeployments(in, &r);
  // Length-prefixed (2 bytes, little endian) serialized reports.
  std::vector<gwmirror::v1::TopologyReport> reports;
  size_t at = 0;
  while (at + 2 <= in.size() && reports.size() < 8) {
    size_t n =
        static_cast<uint8_t>(in[at]) | (static_cast<uint8_t>(in[at + 1]) << 8);
    at += 2;
    if (n > in.size() - at) break;
    gwmirror::v1::TopologyReport one;
    if (one.ParseFromArray(in.data() + at, static_cast<int>(n))) {
      reports.push_back(std::move(one));
    }
    at += n;
  }
  for (bool instances : {false, true}) {
    gwmirror::ParityVerdict v = gwmirror::ComputeParity(reports, instances);
    if (v.parity != v.differences.empty()) std::abort();
  }
  return 0;
}
