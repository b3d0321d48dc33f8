#include "node/replica/history_object.h"

#include <string>

#include "gtest/gtest.h"

namespace gwmirror {
namespace {

std::string Content(size_t n) {
  std::string s;
  for (int i = 0; s.size() < n; ++i) s += "line " + std::to_string(i) + "\n";
  s.resize(n);
  return s;
}

absl::StatusOr<std::string> Decode(absl::string_view records, size_t piece) {
  HistoryObjectDecoder decoder;
  std::string out;
  const ByteSink sink = [&](absl::string_view p) {
    out.append(p.data(), p.size());
    return absl::OkStatus();
  };
  for (size_t pos = 0; pos < records.size(); pos += piece) {
    absl::Status st = decoder.Feed(records.substr(pos, piece), sink);
    if (!st.ok()) return st;
  }
  if (absl::Status st = decoder.Finish(); !st.ok()) return st;
  return out;
}

TEST(HistoryObjectTest, HeaderRoundTrips) {
  HistoryObjectHeader h;
  h.delta = true;
  h.below = 7;
  h.size = (uint64_t{1} << 40) + 3;
  h.basis_sha = std::string(32, '\x11');
  const std::string bytes = EncodeHistoryObjectHeader(h);
  ASSERT_EQ(bytes.size(), kHistoryObjectHeaderSize);
  auto back = ParseHistoryObjectHeader(bytes);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_TRUE(back->delta);
  EXPECT_EQ(back->below, 7u);
  EXPECT_EQ(back->size, h.size);
  EXPECT_EQ(back->basis_sha, h.basis_sha);

  h.delta = false;
  back = ParseHistoryObjectHeader(EncodeHistoryObjectHeader(h));
  ASSERT_TRUE(back.ok());
  EXPECT_FALSE(back->delta);
  EXPECT_TRUE(back->basis_sha.empty());
}

TEST(HistoryObjectTest, BadHeadersAreRefused) {
  std::string good = EncodeHistoryObjectHeader(HistoryObjectHeader{});
  EXPECT_FALSE(ParseHistoryObjectHeader(good.substr(0, 20)).ok());
  for (int at : {0, 4, 5}) {
    std::string bad = good;
    bad[at] = '\x7f';
    EXPECT_EQ(ParseHistoryObjectHeader(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << "byte " << at;
  }
}

TEST(HistoryObjectTest, RecordsDecodeTheSameInAnyPieces) {
  const std::string content = Content(3 * kMaxChunk + 12345);
  HistoryObjectEncoder encoder(3);
  std::string records;
  // Added in odd pieces and flushed between them: only whole chunks go out
  // until the end.
  for (size_t pos = 0; pos < content.size(); pos += 50000) {
    encoder.Add(absl::string_view(content).substr(pos, 50000));
    encoder.Flush(/*all=*/false, &records);
  }
  encoder.Flush(/*all=*/true, &records);
  for (size_t piece : {size_t{1} << 30, size_t{4096}, size_t{7}}) {
    auto out = Decode(records, piece);
    ASSERT_TRUE(out.ok()) << out.status();
    EXPECT_EQ(*out, content) << "piece " << piece;
  }
}

TEST(HistoryObjectTest, ACutRecordOrAnOversizedLengthIsNamed) {
  HistoryObjectEncoder encoder(3);
  encoder.Add(Content(10000));
  std::string records;
  encoder.Flush(/*all=*/true, &records);
  auto cut =
      Decode(absl::string_view(records).substr(0, records.size() - 1), 1 << 20);
  EXPECT_EQ(cut.status().message(), "truncated record");
  std::string huge = records;
  huge[7] = '\x7f';  // data_len's top byte.
  auto over = Decode(huge, 1 << 20);
  EXPECT_EQ(over.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(over.status().message().find("bad record"), std::string::npos);
}

}  // namespace
}  // namespace gwmirror
