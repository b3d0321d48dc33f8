// Gateway deployments as the Admin Node Manager (or projdeploy) makes them:
// a group's deployed configuration is a folder groups/<group>/conf/<id>/ of
// entity stores (PrimaryStore.xml of policies, ListenersStore, CertStore,
// ExtConnsStore, ...), each with a <Store>.sha256 beside it (configs.xml
// has none); deploying writes a new folder, switches the group's instances
// to it one by one (groups/deployments.json), and may prune the previous
// folder. Also shipped as a .fed archive: a zip with the stores and
// META-INF/MANIFEST.MF naming "Id: <id>".
//
// Used by the sample installations, `gwmirror sample deploy`, tests and
// benchmarks. Generation is deterministic: same seed, same bytes.
// Thread-compatible.
#ifndef GWMIRROR_NODE_SAMPLE_DEPLOYMENT_H_
#define GWMIRROR_NODE_SAMPLE_DEPLOYMENT_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace gwmirror {

struct Deployment {
  // The archive id (a uuid): the folder's name.
  std::string id;
  // File name -> content, the .sha256 files included.
  std::map<std::string, std::string> files;
};

// A deployment of realistic shape: PrimaryStore.xml of `primary_bytes` of
// policy entities (filter circuits and filters with the repetition real
// policies have), the other stores in proportion, ExtConnsStore.xml with
// `ext_conns_entities` (entity XML) among its entities.
// `id`: the archive id ("": one derived from the seed).
Deployment GenerateDeployment(uint64_t seed, uint64_t primary_bytes,
                              const std::string& ext_conns_entities = "",
                              const std::string& id = "");

// The next deployment of the same group: a new id, PrimaryStore.xml with
// about 2 % of its entities edited, 1 % added and 0.5 % removed,
// ListenersStore.xml with one entity edited, configs.xml rewritten (its
// timestamp); every other store byte-identical. Works on any entity
// store, generated or read from a .fed.
Deployment NextDeployment(const Deployment& previous, uint64_t seed);

// A .fed archive (its bytes): the stores at its top level and the id from
// META-INF/MANIFEST.MF. Refuses, naming the problem, what is not a zip,
// has no manifest or no Id, names a path outside its top level (a
// subfolder other than META-INF, "..", an absolute path), holds more than
// 1000 files or 256 MiB, or a file that does not read back whole.
absl::StatusOr<Deployment> ReadFed(absl::string_view bytes);

struct DeployOptions {
  std::string host_root;
  // The gateway's install directory under the host root.
  std::string gateway_dir = "opt/Axway-7.7/apigateway";
  // The group's id ("group-2") or name ("QuickStart Group").
  std::string group;
  // How many of this host's instances of the group to switch, in instance
  // order (-1: all; 0: write the folder only). Fewer than all leaves the
  // deployment half done, as a deployment that stopped part-way does.
  int switch_count = -1;
  // Pause between two instances' switches.
  absl::Duration switch_interval = absl::ZeroDuration();
  // Once every instance of the group runs it, remove the group's folders
  // that no instance runs any more.
  bool prune = false;
};

struct DeployReport {
  std::string group_id;
  std::string previous;  // The archive the first switched instance ran.
  std::vector<std::string> switched;
  std::vector<std::string> pruned;
  uint64_t bytes = 0;
};

// Deploys `d` on one host: its folder appears whole (written beside and
// renamed), then the instances switch one by one (deployments.json
// rewritten atomically each time). Refuses an id that is not a plain
// folder name, a group the host's topology does not have, and an id the
// group already has a folder for.
absl::StatusOr<DeployReport> Deploy(const Deployment& d,
                                    const DeployOptions& o);

// The deployment a host's group runs now (its first instance's), read from
// its folder; NOT_FOUND when the group runs none.
absl::StatusOr<Deployment> CurrentDeployment(const DeployOptions& o);

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SAMPLE_DEPLOYMENT_H_
