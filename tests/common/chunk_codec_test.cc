#include "common/chunk_codec.h"

#include <random>

#include "gtest/gtest.h"

namespace gwmirror {
namespace {

TEST(ChunkCodecTest, CompressesOnlyWhenItPays) {
  ChunkEncoder enc(1);
  ChunkDecoder dec;
  std::string text(kMaxChunk, 'a');
  std::string data;
  uint32_t raw = 0;
  enc.Encode(text, &data, &raw);
  EXPECT_EQ(raw, text.size());
  EXPECT_LT(data.size(), text.size() / 10);
  auto back = dec.Decode(data, raw);
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(*back == text);

  std::mt19937_64 rng(1);
  std::string noise(100000, '\0');
  for (char& c : noise) c = static_cast<char>(rng());
  enc.Encode(noise, &data, &raw);
  EXPECT_EQ(raw, 0u);
  EXPECT_TRUE(data == noise);
}

TEST(ChunkCodecTest, RefusesLiesAndOversize) {
  ChunkEncoder enc(1);
  ChunkDecoder dec;
  std::string data;
  uint32_t raw = 0;
  enc.Encode(std::string(4096, 'b'), &data, &raw);
  EXPECT_EQ(dec.Decode(data, raw + 1).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(dec.Decode(data, kMaxChunk + 1).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::string corrupt = data;
  corrupt[corrupt.size() / 2] ^= 0x55;
  EXPECT_FALSE(dec.Decode(corrupt, raw).ok());
  EXPECT_EQ(dec.Decode(std::string(kMaxChunk + 1, 'x'), 0).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace gwmirror
