// The pax tar writer and reader: round trips of long names, big ids and
// nanosecond times; damaged archives named; zstd streams round trip.
#include "common/tar.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/match.h"
#include "common/fd.h"
#include "common/zstd_stream.h"
#include "gtest/gtest.h"

namespace gwmirror {
namespace {

TarReader::Source FromString(const std::string& s, size_t* pos) {
  return [&s, pos](char* buf, size_t n) -> absl::StatusOr<size_t> {
    size_t k = std::min(n, s.size() - *pos);
    memcpy(buf, s.data() + *pos, k);
    *pos += k;
    return k;
  };
}

TEST(TarTest, RoundTripsWhatUstarAloneCannotHold) {
  TarMember f;
  f.path = std::string(150, 'a') + "/" + std::string(80, 'b');
  f.mode = 04755;
  f.uid = 70000000;  // Beyond ustar's 7 octal digits.
  f.gid = 42;
  f.mtime_ns = 1700000000123456789;
  f.size = 3;
  TarMember l;
  l.type = TarMember::kSymlink;
  l.path = "link";
  l.link_target = std::string(200, 't');
  TarMember d;
  d.type = TarMember::kDirectory;
  d.path = "dir";
  d.mode = 0700;
  std::string tar = TarGlobalComment("hello\nworld") + TarHeader(d) +
                    TarHeader(f) + "abc" + TarPadding(3) + TarHeader(l) +
                    TarEnd();
  EXPECT_EQ(tar.size() % 512, 0u);
  size_t pos = 0;
  TarReader r(FromString(tar, &pos));
  TarMember m;
  ASSERT_TRUE(*r.Next(&m));
  EXPECT_EQ(r.comment(), "hello\nworld");
  EXPECT_EQ(m.type, TarMember::kDirectory);
  EXPECT_EQ(m.path, "dir");
  ASSERT_TRUE(*r.Next(&m));
  EXPECT_EQ(m.path, f.path);
  EXPECT_EQ(m.mode, 04755u);
  EXPECT_EQ(m.uid, 70000000u);
  EXPECT_EQ(m.mtime_ns, f.mtime_ns);
  std::string data;
  ASSERT_TRUE(r.ReadData([&](absl::string_view p) {
                 data.append(p.data(), p.size());
                 return absl::OkStatus();
               }).ok());
  EXPECT_EQ(data, "abc");
  ASSERT_TRUE(*r.Next(&m));
  EXPECT_EQ(m.link_target, l.link_target);
  EXPECT_FALSE(*r.Next(&m));
}

TEST(TarTest, DamageIsNamed) {
  TarMember f;
  f.path = "x";
  f.size = 600;
  std::string tar =
      TarHeader(f) + std::string(600, 'z') + TarPadding(600) + TarEnd();
  std::string truncated = tar.substr(0, 1536 + 100);  // Pax, ustar, data.
  size_t pos = 0;
  TarReader r(FromString(truncated, &pos));
  TarMember m;
  ASSERT_TRUE(*r.Next(&m));
  absl::Status st =
      r.ReadData([](absl::string_view) { return absl::OkStatus(); });
  EXPECT_TRUE(absl::StrContains(st.message(), "truncated")) << st;
  std::string bad = tar;
  bad[1024 + 10] ^= 1;  // The ustar header after the pax block.
  pos = 0;
  TarReader r2(FromString(bad, &pos));
  auto next = r2.Next(&m);
  EXPECT_TRUE(absl::StrContains(next.status().message(), "bad checksum"))
      << next.status();
}

TEST(ZstdStreamTest, RoundTripsAndRefusesATruncatedFrame) {
  char path[] = "/tmp/gwmirror-zstd-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  unlink(path);
  std::string text;
  for (int i = 0; i < 100000; ++i) text += std::to_string(i) + ",";
  {
    ZstdWriter w(fd, 3);
    ASSERT_TRUE(w.Write(text.substr(0, 1000)).ok());
    ASSERT_TRUE(w.Write(text.substr(1000)).ok());
    ASSERT_TRUE(w.Finish().ok());
  }
  off_t size = lseek(fd, 0, SEEK_END);
  EXPECT_LT(size, static_cast<off_t>(text.size() / 3));
  for (bool cut : {false, true}) {
    if (cut) ASSERT_EQ(ftruncate(fd, size - 5), 0);
    lseek(fd, 0, SEEK_SET);
    ZstdReader r(fd);
    std::string out;
    char buf[4096];
    absl::Status st;
    for (;;) {
      auto n = r.Read(buf, sizeof buf);
      if (!n.ok()) {
        st = n.status();
        break;
      }
      if (*n == 0) break;
      out.append(buf, *n);
    }
    if (cut) {
      EXPECT_TRUE(absl::IsDataLoss(st)) << st;
    } else {
      EXPECT_TRUE(st.ok()) << st;
      EXPECT_EQ(out, text);
    }
  }
  close(fd);
}

}  // namespace
}  // namespace gwmirror
