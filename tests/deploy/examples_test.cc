// deploy/examples: each example config loads and validates as the daemon
// would load it, and shows every option of its message (recursively) with
// a comment near its first use, so the examples cannot fall behind the
// config format.
#include <google/protobuf/descriptor.h>
#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/config.h"
#include "coordinator/coordinator.h"
#include "gtest/gtest.h"
#include "node/databases.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Value;

std::string Example(const std::string& name) {
  return testing::ReadFile(std::string(GWMIRROR_SOURCE_DIR) +
                           "/deploy/examples/" + name);
}

// Every field of `type` present in at least one of `objects`, recursively;
// the missing ones as "path.field".
void Missing(const Descriptor* type, const std::vector<const Value*>& objects,
             const std::string& path, std::vector<std::string>* out) {
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* f = type->field(i);
    std::vector<const Value*> children;
    bool shown_empty = false;  // "[]" shows a list of plain values
    for (const Value* o : objects) {
      auto it = o->struct_value().fields().find(f->name());
      if (it == o->struct_value().fields().end()) continue;
      shown_empty |=
          it->second.has_list_value() && f->message_type() == nullptr;
      if (it->second.has_list_value()) {
        for (const Value& v : it->second.list_value().values()) {
          children.push_back(&v);
        }
      } else {
        children.push_back(&it->second);
      }
    }
    if (children.empty() && !shown_empty) {
      out->push_back(path + f->name());
      continue;
    }
    if (f->message_type() != nullptr && !f->is_map()) {
      Missing(f->message_type(), children, path + f->name() + ".", out);
    }
  }
}

// Every field name of `type` (recursively) whose first "name": in `text`
// has no comment on its line or in the 12 lines before.
std::vector<std::string> Uncommented(const Descriptor* type,
                                     const std::string& text) {
  std::vector<std::string> lines = absl::StrSplit(text, '\n');
  std::vector<std::string> out;
  std::set<const Descriptor*> seen;
  std::vector<const Descriptor*> todo = {type};
  while (!todo.empty()) {
    const Descriptor* d = todo.back();
    todo.pop_back();
    if (!seen.insert(d).second) continue;
    for (int i = 0; i < d->field_count(); ++i) {
      const FieldDescriptor* f = d->field(i);
      if (f->message_type() != nullptr && !f->is_map()) {
        todo.push_back(f->message_type());
      }
      const std::string key = "\"" + f->name() + "\":";
      for (size_t l = 0; l < lines.size(); ++l) {
        if (!absl::StrContains(lines[l], key)) continue;
        bool commented = false;
        for (size_t k = l >= 12 ? l - 12 : 0; k <= l; ++k) {
          commented |= absl::StrContains(lines[k], "//");
        }
        if (!commented) out.push_back(f->name());
        break;
      }
    }
  }
  return out;
}

// Every option shows in one of `texts`, with a comment where it first
// does in each.
void ExpectComplete(const google::protobuf::Message& msg,
                    const std::vector<std::string>& texts) {
  std::vector<Value> roots(texts.size());
  std::vector<const Value*> objects;
  for (size_t i = 0; i < texts.size(); ++i) {
    ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(
                    StripJsonComments(texts[i]), &roots[i])
                    .ok());
    objects.push_back(&roots[i]);
  }
  std::vector<std::string> missing;
  Missing(msg.GetDescriptor(), objects, "", &missing);
  EXPECT_TRUE(missing.empty())
      << "options the examples do not show: " << absl::StrJoin(missing, ", ");
  for (const std::string& text : texts) {
    std::vector<std::string> bare = Uncommented(msg.GetDescriptor(), text);
    EXPECT_TRUE(bare.empty())
        << "options shown without a comment: " << absl::StrJoin(bare, ", ");
  }
}

TEST(ExamplesTest, CoordinatorConfigValidatesAndShowsEveryOption) {
  std::string text = Example("coordinator.json");
  gwmirror::v1::CoordinatorConfig c;
  ASSERT_TRUE(ParseJson(text, "coordinator.json", &c).ok());
  EXPECT_TRUE(ValidateCoordinatorConfig(c).ok())
      << ValidateCoordinatorConfig(c);
  EXPECT_EQ(c.members_size(), 4);
  // The etcd state store has an example of its own.
  std::string etcd = Example("coordinator-etcd.json");
  gwmirror::v1::CoordinatorConfig e;
  ASSERT_TRUE(ParseJson(etcd, "coordinator-etcd.json", &e).ok());
  EXPECT_TRUE(ValidateCoordinatorConfig(e).ok())
      << ValidateCoordinatorConfig(e);
  EXPECT_EQ(e.etcd().endpoints_size(), 3);
  ExpectComplete(c, {text, etcd});
}

TEST(ExamplesTest, NodeConfigsValidateAndShowEveryOption) {
  for (const char* name :
       {"node-gw1-production.json", "node-gw1-standby.json"}) {
    SCOPED_TRACE(name);
    std::string text = Example(name);
    testing::TempDir dir;
    testing::WriteFile(dir / name, text);
    auto c = LoadNodeConfig(dir / name);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_TRUE(ValidateDatabaseJobs(*c).ok()) << ValidateDatabaseJobs(*c);
    ExpectComplete(*c, {text});
  }
}

TEST(ExamplesTest, CliConfigShowsEveryOption) {
  std::string text = Example("cli.json");
  gwmirror::v1::CliConfig c;
  ASSERT_TRUE(ParseJson(text, "cli.json", &c).ok());
  ExpectComplete(c, {text});
}

}  // namespace
}  // namespace gwmirror
