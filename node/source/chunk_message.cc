#include "node/source/chunk_message.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "google/protobuf/message_lite.h"
#include "grpcpp/impl/codegen/proto_utils.h"
#include "grpcpp/support/slice.h"

namespace gwmirror {
namespace {

// Wire tags (field number << 3 | wire type) of replica.proto's
// PushMessage.file_chunk (3, length-delimited), FileChunk.data (1,
// length-delimited) and FileChunk.raw_size (2, varint).
constexpr char kFileChunkTag = (3 << 3) | 2;
constexpr char kDataTag = (1 << 3) | 2;
constexpr char kRawSizeTag = (2 << 3) | 0;

void PutVarint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

size_t VarintSize(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

// A slice of bytes `owner` keeps alive, holding a reference to it.
grpc::Slice Referenced(absl::string_view bytes,
                       std::shared_ptr<const void> owner) {
  return grpc::Slice(
      const_cast<char*>(bytes.data()), bytes.size(),
      [](void* p) { delete static_cast<std::shared_ptr<const void>*>(p); },
      new std::shared_ptr<const void>(std::move(owner)));
}

// A slice that takes `s` over, without a copy.
grpc::Slice Owned(std::string s) {
  auto held = std::make_shared<const std::string>(std::move(s));
  return Referenced(*held, held);
}

}  // namespace

grpc::ByteBuffer FileChunkMessage(absl::string_view data, uint32_t raw_size,
                                  std::shared_ptr<const void> owner) {
  // Protobuf writes fields in number order and leaves out empty ones.
  std::string trailer;
  if (raw_size != 0) {
    trailer.push_back(kRawSizeTag);
    PutVarint(&trailer, raw_size);
  }
  const uint64_t field =
      data.empty() ? 0 : 1 + VarintSize(data.size()) + data.size();
  std::string head;
  head.push_back(kFileChunkTag);
  PutVarint(&head, field + trailer.size());
  if (!data.empty()) {
    head.push_back(kDataTag);
    PutVarint(&head, data.size());
  }
  if (owner == nullptr || data.empty()) {
    head.reserve(head.size() + data.size() + trailer.size());
    head.append(data.data(), data.size());
    head.append(trailer);
    grpc::Slice whole = Owned(std::move(head));
    return grpc::ByteBuffer(&whole, 1);
  }
  // The frame's few bytes are copied into slices of their own (inline,
  // no allocation); the data is referenced.
  grpc::Slice slices[3] = {grpc::Slice(head),
                           Referenced(data, std::move(owner)),
                           grpc::Slice(trailer)};
  return grpc::ByteBuffer(slices, trailer.empty() ? 2 : 3);
}

absl::StatusOr<grpc::ByteBuffer> SerializedMessage(
    const google::protobuf::MessageLite& m) {
  grpc::ByteBuffer out;
  bool own = false;
  grpc::Status st =
      grpc::SerializationTraits<google::protobuf::MessageLite>::Serialize(
          m, &out, &own);
  if (!st.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot serialize a push message: ", st.error_message()));
  }
  return out;
}

}  // namespace gwmirror
