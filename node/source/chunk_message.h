// A Push stream's file data goes to gRPC without being copied: each
// FileChunk message is framed by hand around the bytes, which gRPC then
// takes as one of the message's slices. Protobuf's own serialization
// would copy every byte twice on the way (into the message, then into the
// serialized buffer); at a gigabyte a dump, that was a tenth of the
// sending thread. The frame is byte for byte what protobuf writes for the
// same message, so the replica parses it as any other.
#ifndef GWMIRROR_NODE_SOURCE_CHUNK_MESSAGE_H_
#define GWMIRROR_NODE_SOURCE_CHUNK_MESSAGE_H_

#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message_lite.h"
#include "grpcpp/support/byte_buffer.h"

namespace gwmirror {

// The serialized PushMessage{file_chunk: {data: `data`, raw_size:
// `raw_size`}}. With an `owner`, `data` is not copied: the buffer holds a
// reference to `owner`, which must keep `data` alive and unchanged, until
// gRPC lets go of it (possibly after the Write that sent it returned).
// Without one, `data` is copied once.
grpc::ByteBuffer FileChunkMessage(absl::string_view data, uint32_t raw_size,
                                  std::shared_ptr<const void> owner);

// A PushMessage serialized by protobuf (every message but file data),
// straight into gRPC's slices.
absl::StatusOr<grpc::ByteBuffer> SerializedMessage(
    const google::protobuf::MessageLite& m);

}  // namespace gwmirror

#endif  // GWMIRROR_NODE_SOURCE_CHUNK_MESSAGE_H_
