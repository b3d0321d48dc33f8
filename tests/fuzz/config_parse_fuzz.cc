// Config files (JSON with comments): StripJsonComments keeps the length
// and every newline and never touches string contents; parsing any input
// as a node config either fails with a message or yields a config that
// validation can judge, without crashing.
#include <cstdlib>

#include "common/config.h"
#include "node/databases.h"
#include "tests/fuzz/fuzz.h"

std::vector<std::string> GwmFuzzSeeds() {
  return {
      "// c\n{\"slot\": \"gw1\", /* x */ \"state_dir\": \"/s\", "
      "\"roots\": [{\"path\": \"opt\"}]}",
      "{\"a\": \"//not a comment\\\"\"}", "/* open", "\"unterminated //",
      "{\"databases\": [{\"name\": \"m\", \"kind\": \"mariadb\"}]}"};
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string in(reinterpret_cast<const char*>(data), size);
  std::string out = gwmirror::StripJsonComments(in);
  if (out.size() != in.size()) std::abort();
  for (size_t i = 0; i < in.size(); ++i) {
    if ((in[i] == '\n') != (out[i] == '\n')) std::abort();
    if (out[i] != in[i] && out[i] != ' ') std::abort();
  }
  gwmirror::v1::NodeConfig c;
  if (gwmirror::ParseJson(in, "fuzz.json", &c).ok()) {
    (void)gwmirror::ValidateNodeConfig(c);
    (void)gwmirror::ValidateDatabaseJobs(c);
  }
  return 0;
}
