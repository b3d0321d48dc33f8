// Reads the External Connections of the deployments a host's gateway
// instances run: each instance's archive (groups/deployments.json) names a
// deployed configuration, groups/<group>/conf/<uuid>/, whose
// ExtConnsStore.xml is an entity store (namespace
// http://www.vordel.com/2005/06/24/entityStore). Every ${environment.KEY}
// in a connection is resolved from the instance's envSettings.props
// (instance over group over the installation's conf/), never guessed: an
// unresolvable reference is reported as such. Passwords never leave this
// file: a connection says only whether it carries one, and its URL is
// stripped of credentials.
//
// The XML is read with expat (streaming, bounded memory); DTDs with entity
// declarations are refused (no entity expansion at all), external entities
// are never loaded, and a store above 64 MiB is refused unread.
// Thread-safe: a process-wide cache keyed by the store file's identity
// (device, inode, size, mtime) keeps a heartbeat from parsing an unchanged
// store again.
#ifndef GWMIRROR_NODE_EXTERNAL_CONNECTIONS_H_
#define GWMIRROR_NODE_EXTERNAL_CONNECTIONS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gwmirror/v1/topology.pb.h"

namespace gwmirror {

// One <entity> of an entity store: its type and, per <fval name=...>, its
// first <value>'s text (entities and CDATA decoded).
struct StoreEntity {
  std::string type;
  std::map<std::string, std::string> fields;
};

// Parses an entity store. Refuses, naming the problem and its line,
// malformed XML, entity declarations, and stores of more than 100,000
// entities or values of more than 64 KiB.
absl::StatusOr<std::vector<StoreEntity>> ParseEntityStore(
    absl::string_view xml);

// envSettings.props: "env.KEY=value" lines; later files in `layers`
// override earlier ones. `Resolve` replaces every ${environment.KEY} in
// `value`, or says which key is set nowhere.
class EnvSettings {
 public:
  void Add(absl::string_view props, const std::string& source);
  absl::StatusOr<std::string> Resolve(absl::string_view value) const;

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> sources_;
};

// The connections of every deployment the report's instances run
// (r.deployments(), r.topology()), read under `gateway_dir`. Instances
// running the same archive with the same resolved settings share a row.
std::vector<gwmirror::v1::ExternalConnection> ReadExternalConnections(
    const std::string& gateway_dir, const gwmirror::v1::TopologyReport& r);

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_EXTERNAL_CONNECTIONS_H_
