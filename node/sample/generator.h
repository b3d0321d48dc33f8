// Deterministic sample gateway installations (layout of
// shared/GATEWAY-LAYOUT.md) for tests, the sandbox and benchmarks, and
// deterministic change sets over them. Same seed and options, same bytes.
// Thread-compatible.
#ifndef GWMIRROR_NODE_SAMPLE_GENERATOR_H_
#define GWMIRROR_NODE_SAMPLE_GENERATOR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "gwmirror/v1/config.pb.h"

namespace gwmirror {

struct SampleOptions {
  std::string size =
      "small";  // "small" (~300 files) or "large" (~20k, 200+ MB)
  uint64_t seed = 1;
  int host_index = 1;  // 1-based: gw1, gw2, ...
  int host_count = 1;
  std::string prefix = "opt/Axway-7.7";
  std::string product_version = "7.7.20221130";
  // Every deployment's ExtConnsStore.xml names an SMTP relay (stateless).
  // With this set, also the databases and directory that host 1 serves
  // (MariaDB and PostgreSQL "metrics", slapd's dc=example,dc=com, through
  // ${environment.*} references that each instance's envSettings.props
  // resolves), and a billing database on Oracle that nothing here dumps.
  bool external_connections = false;
};

struct SampleReport {
  uint64_t files = 0;
  uint64_t bytes = 0;
  uint64_t transient_files = 0;
};

// Writes the installation of host `host_index` under `host_root`.
absl::StatusOr<SampleReport> GenerateSample(const std::string& host_root,
                                            const SampleOptions& opts);

// The mirror set of a sample host, as node configs want it.
std::vector<gwmirror::v1::RootConfig> SampleRoots(const std::string& prefix);

struct ChangeSetReport {
  uint64_t edited = 0, added = 0, deleted = 0, chmodded = 0;
  uint64_t changed_bytes = 0;  // Sizes of edited and added files.
};

// Edits `fraction` of the mirrored regular files in place (a few lines or
// bytes each), adds `adds` files, deletes `deletes`, chmods `chmods`.
absl::StatusOr<ChangeSetReport> ApplyChangeSet(const std::string& host_root,
                                               const std::string& prefix,
                                               uint64_t seed, double fraction,
                                               int adds, int deletes,
                                               int chmods);

// Writes a metrics-database-like SQL dump of about `mib` MiB to `base`
// (one INSERT row per line, ordered by primary key), and to `changed` the
// same dump with 1 % of its rows edited in place plus 0.05 % of rows
// deleted and 0.05 % inserted, which shift every later offset.
absl::Status GenerateDumpPair(const std::string& base,
                              const std::string& changed, uint64_t mib,
                              uint64_t seed);

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SAMPLE_GENERATOR_H_
