#include "node/source/chunk_message.h"

#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "gwmirror/v1/replica.pb.h"

namespace gwmirror {
namespace {

using gwmirror::v1::PushMessage;

std::string Flatten(const grpc::ByteBuffer& b) {
  std::vector<grpc::Slice> slices;
  EXPECT_TRUE(b.Dump(&slices).ok());
  std::string out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  EXPECT_EQ(out.size(), b.Length());
  return out;
}

PushMessage Chunk(const std::string& data, uint32_t raw_size) {
  PushMessage m;
  m.mutable_file_chunk()->set_data(data);
  m.mutable_file_chunk()->set_raw_size(raw_size);
  return m;
}

// The hand-made frame is protobuf's own serialization, byte for byte, and
// parses back to the same message, across the sizes where a varint grows
// a byte.
TEST(ChunkMessageTest, TheFrameIsProtobufsOwn) {
  for (size_t size : {0, 1, 113, 114, 127, 128, 300, 16377, 16383, 16384,
                      1 << 20, 2097139, 2097151, 2097152}) {
    std::string data(size, '\0');
    for (size_t i = 0; i < size; ++i) data[i] = static_cast<char>(i * 131);
    for (uint32_t raw : {0u, 1u, 127u, 128u, 1u << 20, 0xffffffffu}) {
      SCOPED_TRACE(testing::Message() << "size " << size << " raw " << raw);
      const std::string want = Chunk(data, raw).SerializeAsString();
      auto owner = std::make_shared<const std::string>(data);
      for (bool owned : {false, true}) {
        grpc::ByteBuffer b = FileChunkMessage(
            *owner, raw, owned ? owner : std::shared_ptr<const void>());
        const std::string got = Flatten(b);
        EXPECT_EQ(got, want);
        PushMessage back;
        ASSERT_TRUE(back.ParseFromString(got));
        EXPECT_EQ(back.file_chunk().data(), data);
        EXPECT_EQ(back.file_chunk().raw_size(), raw);
      }
    }
  }
}

// With an owner the bytes are not copied: the buffer points at them and
// keeps the owner alive until the buffer (and every copy of it) is gone.
TEST(ChunkMessageTest, OwnedBytesAreReferencedNotCopied) {
  auto owner = std::make_shared<const std::string>(1 << 20, 'x');
  std::weak_ptr<const std::string> watch = owner;
  const char* at = owner->data();
  {
    grpc::ByteBuffer b = FileChunkMessage(*owner, 0, owner);
    owner.reset();
    ASSERT_FALSE(watch.expired());
    std::vector<grpc::Slice> slices;
    ASSERT_TRUE(b.Dump(&slices).ok());
    bool referenced = false;
    for (const grpc::Slice& s : slices) {
      referenced |= reinterpret_cast<const char*>(s.begin()) == at;
    }
    EXPECT_TRUE(referenced);
    grpc::ByteBuffer copy(b);
    b.Clear();
    slices.clear();
    EXPECT_FALSE(watch.expired());
  }
  EXPECT_TRUE(watch.expired());
}

TEST(ChunkMessageTest, OtherMessagesAreSerializedByProtobuf) {
  PushMessage m;
  m.mutable_file_end()->set_sha256(std::string(32, 'a'));
  auto b = SerializedMessage(m);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(Flatten(*b), m.SerializeAsString());
}

}  // namespace
}  // namespace gwmirror
