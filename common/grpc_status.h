// The one place where absl::Status and grpc::Status meet. Codes are the
// same numbers on both sides, so the mapping is 1:1.
#ifndef GWMIRROR_COMMON_GRPC_STATUS_H_
#define GWMIRROR_COMMON_GRPC_STATUS_H_

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"

namespace gwmirror {

grpc::Status ToGrpc(const absl::Status& s);
absl::Status FromGrpc(const grpc::Status& s);

}  // namespace gwmirror

#endif  // GWMIRROR_COMMON_GRPC_STATUS_H_
