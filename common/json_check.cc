#include "common/json_check.h"

#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/command_line.h"

namespace gwmirror {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;

constexpr int kMaxDepth = 64;

class Checker {
 public:
  Checker(absl::string_view json, absl::string_view what)
      : s_(json), what_(what) {}

  absl::Status Document(const Descriptor* type) {
    SkipSpace();
    if (AtEnd()) return Error("", "the file is empty; expected an object");
    if (Peek() != '{') return Error("", "expected an object ('{')");
    if (!Object(type, "", 0)) return status_;
    SkipSpace();
    if (!AtEnd()) return Error("", "text after the closing '}'");
    return absl::OkStatus();
  }

 private:
  bool AtEnd() const { return i_ >= s_.size(); }
  char Peek() const { return AtEnd() ? '\0' : s_[i_]; }
  void SkipSpace() {
    while (!AtEnd() &&
           absl::ascii_isspace(static_cast<unsigned char>(s_[i_]))) {
      ++i_;
    }
  }

  absl::Status Error(absl::string_view path, absl::string_view problem) {
    int line = 1, col = 1;
    for (size_t k = 0; k < i_ && k < s_.size(); ++k) {
      if (s_[k] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    status_ = absl::InvalidArgumentError(
        absl::StrCat(what_, ":", line, ":", col, ": ",
                     path.empty() ? "" : absl::StrCat(path, ": "), problem));
    return status_;
  }
  bool Fail(absl::string_view path, absl::string_view problem) {
    (void)Error(path, problem);
    return false;
  }

  // A JSON string at i_ (which is '"'); its text (escapes kept as written,
  // enough for keys and for checking).
  bool String(absl::string_view path, std::string* out) {
    const size_t start = i_++;
    std::string text;
    while (!AtEnd() && s_[i_] != '"') {
      char c = s_[i_];
      if (static_cast<unsigned char>(c) < 0x20) {
        return Fail(path, "a line break or control character inside a string");
      }
      if (c == '\\') {
        ++i_;
        if (AtEnd()) break;
        if (std::string("\"\\/bfnrtu").find(s_[i_]) == std::string::npos) {
          return Fail(path, absl::StrCat("\"\\", std::string(1, s_[i_]),
                                         "\" is not a JSON escape"));
        }
      }
      text.push_back(s_[i_]);
      ++i_;
    }
    if (AtEnd()) {
      i_ = start;
      return Fail(path, "this string is not closed ('\"' missing)");
    }
    ++i_;
    if (out != nullptr) *out = std::move(text);
    return true;
  }

  bool Literal(absl::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }

  bool Number() {
    size_t start = i_;
    if (Peek() == '-') ++i_;
    while (!AtEnd() &&
           (absl::ascii_isdigit(static_cast<unsigned char>(s_[i_])) ||
            s_[i_] == '.' || s_[i_] == 'e' || s_[i_] == 'E' || s_[i_] == '+' ||
            s_[i_] == '-')) {
      ++i_;
    }
    return i_ > start &&
           absl::ascii_isdigit(static_cast<unsigned char>(s_[i_ - 1]));
  }

  // What a JSON value at i_ is, in words, for messages.
  std::string KindHere() const {
    switch (Peek()) {
      case '{':
        return "an object";
      case '[':
        return "a list";
      case '"':
        return "a string";
      case 't':
      case 'f':
        return "true/false";
      case 'n':
        return "null";
      default:
        return "a number";
    }
  }

  static std::string Expected(const FieldDescriptor* f) {
    if (f->is_map()) return "an object (a map)";
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return "an object";
      case FieldDescriptor::CPPTYPE_STRING:
        return "a string";
      case FieldDescriptor::CPPTYPE_BOOL:
        return "true or false";
      case FieldDescriptor::CPPTYPE_ENUM: {
        std::vector<std::string> names;
        for (int k = 0; k < f->enum_type()->value_count(); ++k) {
          names.push_back(
              absl::StrCat("\"", f->enum_type()->value(k)->name(), "\""));
        }
        return absl::StrCat("one of ", absl::StrJoin(names, ", "));
      }
      default:
        return "a number";
    }
  }

  // Any JSON value (for well-known types and skipped parts).
  bool AnyValue(absl::string_view path, int depth) {
    if (depth > kMaxDepth) return Fail(path, "nested too deeply");
    SkipSpace();
    char c = Peek();
    if (c == '{' || c == '[') {
      const char close = c == '{' ? '}' : ']';
      ++i_;
      SkipSpace();
      if (Peek() == close) {
        ++i_;
        return true;
      }
      for (;;) {
        SkipSpace();
        if (close == '}') {
          if (Peek() != '"') return Fail(path, "expected a key in quotes");
          if (!String(path, nullptr)) return false;
          SkipSpace();
          if (Peek() != ':') return Fail(path, "expected ':' after the key");
          ++i_;
        }
        if (!AnyValue(path, depth + 1)) return false;
        if (!Separator(path, close)) return false;
        if (Peek() == close) {
          ++i_;
          return true;
        }
      }
    }
    if (c == '"') return String(path, nullptr);
    if (Literal("true") || Literal("false") || Literal("null")) return true;
    if (Number()) return true;
    return Fail(path, AtEnd() ? "the file ends where a value was expected"
                              : "expected a value (a string, number, object, "
                                "list, true, false or null)");
  }

  // After a member or element: ',' then more, or the closing bracket (left
  // for the caller). A trailing comma is named.
  bool Separator(absl::string_view path, char close) {
    SkipSpace();
    if (Peek() == close) return true;
    if (Peek() != ',') {
      return Fail(path, AtEnd() ? absl::StrCat("the file ends before '",
                                               std::string(1, close), "'")
                                : absl::StrCat("expected ',' or '",
                                               std::string(1, close), "'"));
    }
    ++i_;
    SkipSpace();
    if (Peek() == close) {
      --i_;
      while (i_ > 0 && s_[i_] != ',') --i_;
      return Fail(
          path, absl::StrCat("a trailing comma before '", std::string(1, close),
                             "' (JSON allows none)"));
    }
    return true;
  }

  const FieldDescriptor* FindField(const Descriptor* type,
                                   const std::string& key) {
    if (const FieldDescriptor* f = type->FindFieldByName(key)) return f;
    for (int k = 0; k < type->field_count(); ++k) {
      if (type->field(k)->json_name() == key) return type->field(k);
    }
    return nullptr;
  }

  bool Object(const Descriptor* type, const std::string& path, int depth) {
    if (depth > kMaxDepth) return Fail(path, "nested too deeply");
    ++i_;  // '{'
    SkipSpace();
    if (Peek() == '}') {
      ++i_;
      return true;
    }
    for (;;) {
      SkipSpace();
      if (Peek() != '"') {
        return Fail(path, Peek() == '}'
                              ? "a trailing comma before '}' (JSON allows none)"
                              : "expected a key in double quotes");
      }
      size_t key_at = i_;
      std::string key;
      if (!String(path, &key)) return false;
      std::string child = path.empty() ? key : absl::StrCat(path, ".", key);
      const FieldDescriptor* f = FindField(type, key);
      if (f == nullptr) {
        // Field names and their lowerCamel forms, case aside.
        std::vector<std::string> names;
        std::map<std::string, std::string> field_of;
        for (int k = 0; k < type->field_count(); ++k) {
          for (const std::string& name :
               {type->field(k)->name(), type->field(k)->json_name()}) {
            names.push_back(absl::AsciiStrToLower(name));
            field_of[names.back()] = type->field(k)->name();
          }
        }
        std::string best = NearestWord(absl::AsciiStrToLower(key), names);
        if (!best.empty()) best = field_of[best];
        i_ = key_at;
        return Fail(
            child, absl::StrCat("unknown key \"", key, "\"",
                                path.empty() ? "" : absl::StrCat(" in ", path),
                                best.empty() ? ""
                                             : absl::StrCat("; did you mean \"",
                                                            best, "\"?")));
      }
      SkipSpace();
      if (Peek() != ':') return Fail(child, "expected ':' after the key");
      ++i_;
      SkipSpace();
      if (!Value(f, child, depth + 1, /*element=*/false)) return false;
      if (!Separator(path, '}')) return false;
      if (Peek() == '}') {
        ++i_;
        return true;
      }
    }
  }

  bool Value(const FieldDescriptor* f, const std::string& path, int depth,
             bool element) {
    SkipSpace();
    if (Literal("null")) return true;
    if (f->is_repeated() && !f->is_map() && !element) {
      if (Peek() != '[') {
        return Fail(path, absl::StrCat("expected a list of ", Expected(f),
                                       ", found ", KindHere()));
      }
      ++i_;
      SkipSpace();
      if (Peek() == ']') {
        ++i_;
        return true;
      }
      for (int n = 0;; ++n) {
        std::string at = absl::StrCat(path, "[", n, "]");
        if (!Value(f, at, depth + 1, /*element=*/true)) return false;
        if (!Separator(path, ']')) return false;
        if (Peek() == ']') {
          ++i_;
          return true;
        }
      }
    }
    if (f->is_map()) {
      if (Peek() != '{')
        return Fail(path, absl::StrCat("expected ", Expected(f), ", found ",
                                       KindHere()));
      return AnyValue(path, depth);
    }
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (absl::StartsWith(f->message_type()->full_name(),
                             "google.protobuf.")) {
          return AnyValue(path, depth);  // Well-known types: protobuf checks.
        }
        if (Peek() != '{')
          return Fail(path,
                      absl::StrCat("expected an object, found ", KindHere()));
        return Object(f->message_type(), path, depth);
      case FieldDescriptor::CPPTYPE_STRING:
        if (Peek() != '"')
          return Fail(path,
                      absl::StrCat("expected a string, found ", KindHere()));
        return String(path, nullptr);
      case FieldDescriptor::CPPTYPE_BOOL:
        if (Literal("true") || Literal("false")) return true;
        return Fail(path,
                    absl::StrCat("expected true or false, found ", KindHere()));
      case FieldDescriptor::CPPTYPE_ENUM: {
        if (Number()) return true;
        std::string name;
        if (Peek() == '"') {
          size_t at = i_;
          if (!String(path, &name)) return false;
          if (f->enum_type()->FindValueByName(name) != nullptr) return true;
          i_ = at;
        }
        return Fail(
            path, absl::StrCat("expected ", Expected(f), ", found ",
                               name.empty() ? KindHere()
                                            : absl::StrCat("\"", name, "\"")));
      }
      default:  // Numbers: JSON numbers, or strings holding them.
        if (Peek() == '"') return String(path, nullptr);
        if (Number()) return true;
        return Fail(path,
                    absl::StrCat("expected a number, found ", KindHere()));
    }
  }

  absl::string_view s_;
  std::string what_;
  size_t i_ = 0;
  absl::Status status_;
};

}  // namespace

absl::Status CheckJson(absl::string_view json, const Descriptor* type,
                       absl::string_view what) {
  return Checker(json, what).Document(type);
}

}  // namespace gwmirror
