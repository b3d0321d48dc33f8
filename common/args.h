// What a command was given on its command line (common/command_line.h
// parses it): named values, switches and positional words, with typed
// accessors whose errors name the flag.
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
  void SetValue(const std::string& name, std::string value) {
    values_[name] = std::move(value);
  }
  void SetFlag(const std::string& name) { flags_.insert(name); }
  void AddPositional(std::string word) {
    positional_.push_back(std::move(word));
  }

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
