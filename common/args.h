// A small command-line parser for subcommand tools: "--name value" and
// "--flag" forms, with clear errors for unknown or missing options.
#ifndef GWMIRROR_COMMON_ARGS_H_
#define GWMIRROR_COMMON_ARGS_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace gwmirror {

class Args {
 public:
  // `valued` options take a value, `flags` do not. Positional arguments are
  // kept in order.
  static absl::StatusOr<Args> Parse(int argc, char** argv, int first,
                                    const std::set<std::string>& valued,
                                    const std::set<std::string>& flags);
  std::optional<std::string> Get(const std::string& name) const;
  absl::StatusOr<std::string> Require(const std::string& name) const;
  absl::StatusOr<uint64_t> RequireUint(const std::string& name) const;
  absl::StatusOr<uint64_t> UintOr(const std::string& name, uint64_t dflt) const;
  bool Has(const std::string& flag) const { return flags_.count(flag) > 0; }
  const std::vector<std::string>& positional() const { return positional_; }
  // --name IDENTITY@HOST:PORT[,...] (nodes named by certificate and
  // address), in order.
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> RequireNodes(
      const std::string& name) const;

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
  std::vector<std::string> positional_;
};

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_ARGS_H_
