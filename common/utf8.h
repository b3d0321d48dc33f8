// Text from files a peer or a product wrote (a damaged topology.json, a
// properties file, a directory name) goes into proto3 `string` fields,
// which must be valid UTF-8: a message holding anything else cannot be
// serialized, and the call carrying it fails ("No message returned for
// unary request"). Pure functions; thread-safe.
#ifndef GWMIRROR_COMMON_UTF8_H_
#define GWMIRROR_COMMON_UTF8_H_

#include <string>

#include "absl/strings/string_view.h"

namespace gwmirror {

bool IsValidUtf8(absl::string_view s);

// The length of the valid UTF-8 sequence at s[i] (1 for ASCII), or 0 when
// none starts there (overlong forms, surrogates and code points above
// U+10FFFF are not valid).
size_t Utf8SequenceAt(absl::string_view s, size_t i);

// `s` as is when it is valid UTF-8; otherwise every byte that is not part
// of a valid sequence written as "\xNN".
std::string ValidUtf8(absl::string_view s);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_UTF8_H_
