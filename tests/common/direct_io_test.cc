// Past the page cache and back: a file written in pieces of any size is
// exact, reads at any offsets return its bytes, and where the file system
// refuses a direct transfer (EINVAL, or O_DIRECT itself) the same bytes go
// through the page cache.
#include "common/direct_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <optional>
#include <string>

#include "common/fd.h"
#include "gtest/gtest.h"
#include "tests/node/fault_injection_env.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

// Writes `body` to `path` through a DirectWriter, in appends of `step`
// bytes; whether some of it went directly, or nullopt where O_DIRECT was
// refused at the start.
std::optional<bool> WriteDirect(Env* env, const std::string& path,
                                const std::string& body, size_t step) {
  UniqueFd fd(
      open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  EXPECT_TRUE(fd.valid());
  std::unique_ptr<DirectWriter> w = DirectWriter::Start(env, fd.get());
  if (w == nullptr) return std::nullopt;
  for (size_t at = 0; at < body.size(); at += step) {
    absl::Status st = w->Append(absl::string_view(body).substr(at, step));
    EXPECT_TRUE(st.ok()) << st;
  }
  absl::Status st = w->Finish();
  EXPECT_TRUE(st.ok()) << st;
  return w->wrote_direct();
}

// All of `r`'s file, read in order in reads of `step` bytes.
std::string ReadWhole(DirectReader& r, size_t step) {
  std::string all;
  for (;;) {
    auto got = r.ReadAt(all.size(), step);
    EXPECT_TRUE(got.ok()) << got.status();
    if (!got.ok() || got->empty()) return all;
    all.append(got->data(), got->size());
  }
}

// Reads of `body` at offsets forward, backward, across the window's edge
// and past the end, each checked against it.
void ExpectReadsOf(DirectReader& r, const std::string& body) {
  const uint64_t offsets[] = {0,
                              1,
                              kDirectPiece - 3,
                              kDirectPiece,
                              body.size() - 1,
                              4095,
                              2 * kDirectPiece + 4097,
                              body.size() / 2};
  for (uint64_t pos : offsets) {
    if (pos >= body.size()) continue;
    auto got = r.ReadAt(pos, 10000);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_FALSE(got->empty()) << pos;
    EXPECT_LE(got->size(), 10000u);
    EXPECT_EQ(*got, absl::string_view(body).substr(pos, got->size())) << pos;
  }
  // A read at the window's end is short; the next goes on from there.
  ASSERT_TRUE(r.ReadAt(0, 1).ok());
  auto edge = r.ReadAt(kDirectPiece - 3, 10000);
  ASSERT_TRUE(edge.ok());
  EXPECT_EQ(*edge, absl::string_view(body).substr(kDirectPiece - 3, 3));
  for (uint64_t pos : {body.size(), body.size() + 5000}) {
    auto end = r.ReadAt(pos, 100);
    ASSERT_TRUE(end.ok()) << end.status();
    EXPECT_TRUE(end->empty()) << pos;
  }
  EXPECT_EQ(ReadWhole(r, 1 << 20), body);
}

TEST(DirectIoTest, AFileWrittenAndReadPastThePageCacheIsExact) {
  testing::TempDir dir;
  const bool direct = testing::TakesDirectIo(dir.path());
  // Two pieces and a tail that is not a block long.
  const std::string body =
      testing::RandomBytes(2 * kDirectPiece + 3 * 4096 + 13, 7);
  const std::string path = dir / "f";
  // Appends that never line up with a block or a piece.
  auto wrote = WriteDirect(Env::Default(), path, body, (1 << 20) + 7);
  ASSERT_EQ(wrote.has_value(), direct);
  if (direct) EXPECT_TRUE(*wrote);
  EXPECT_EQ(testing::ReadFile(path), body);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  DirectReader r(Env::Default(), fd.get());
  EXPECT_EQ(r.direct(), direct);
  ExpectReadsOf(r, body);
  EXPECT_EQ(r.direct(), direct);
}

// Sizes at every edge: empty, one byte, a block either side, a block, a
// piece exactly (nothing held at Finish), a piece and a byte.
TEST(DirectIoTest, EdgeSizesAreExact) {
  testing::TempDir dir;
  for (size_t size :
       {size_t{0}, size_t{1}, kDirectAlign - 1, kDirectAlign, kDirectAlign + 1,
        3 * kDirectAlign, kDirectPiece, kDirectPiece + 1}) {
    SCOPED_TRACE(size);
    const std::string body = testing::RandomBytes(size, size);
    const std::string path = dir / "f";
    ASSERT_TRUE(WriteDirect(Env::Default(), path, body, 4096).has_value() ||
                !testing::TakesDirectIo(dir.path()));
    EXPECT_EQ(testing::ReadFile(path), body);
    UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
    DirectReader r(Env::Default(), fd.get());
    EXPECT_EQ(ReadWhole(r, kDirectPiece), body);
  }
}

// A scratch directory whose `w` is under fault injection (its attic
// beside it), and the file each test writes there.
struct Injected {
  Injected()
      : made(mkdir((dir / "w").c_str(), 0700) == 0 &&
             mkdir((dir / "attic").c_str(), 0700) == 0),
        env(dir / "w", dir / "attic"),
        path(dir / "w/f") {}
  testing::TempDir dir;
  const bool made;
  testing::FaultInjectionEnv env;
  const std::string path;
};

// A file system that refuses O_DIRECT outright (the flag cannot be set,
// as on tmpfs before Linux 6.6): no writer, so the caller writes as
// usual, and the reader reads through the page cache from the start.
TEST(DirectIoTest, AFileSystemRefusingDirectIoIsUsedThroughThePageCache) {
  Injected in;
  ASSERT_TRUE(in.made);
  testing::FaultInjectionEnv& env = in.env;
  const std::string& path = in.path;
  const std::string body = testing::RandomBytes(kDirectPiece + 5000, 9);
  {
    UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    env.FailNext("setfl", "/f", EINVAL);
    EXPECT_EQ(DirectWriter::Start(&env, fd.get()), nullptr);
    EXPECT_EQ(fcntl(fd.get(), F_GETFL) & O_DIRECT, 0);
  }
  testing::WriteFile(path, body);
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  env.FailNext("setfl", "/f", EINVAL);
  DirectReader r(&env, fd.get());
  EXPECT_FALSE(r.direct());
  ExpectReadsOf(r, body);
  EXPECT_FALSE(r.direct());
}

// An error ends the writer: the write in flight fails, and every later
// call says so, rather than writing the next bytes at a wrong offset.
TEST(DirectIoTest, AnErrorEndsTheWriter) {
  Injected in;
  if (!testing::TakesDirectIo(in.dir.path())) {
    GTEST_SKIP() << in.dir.path() << " takes no O_DIRECT";
  }
  ASSERT_TRUE(in.made);
  testing::FaultInjectionEnv& env = in.env;
  const std::string& path = in.path;
  UniqueFd fd(open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  std::unique_ptr<DirectWriter> w = DirectWriter::Start(&env, fd.get());
  ASSERT_NE(w, nullptr);
  env.FailNext("write", "/f", EIO);
  const std::string piece = testing::RandomBytes(kDirectPiece, 3);
  // The first piece's write (on the worker) fails; the next Append or
  // Finish reports it, and so does every call after.
  absl::Status st = w->Append(piece);
  if (st.ok()) st = w->Append(piece);
  if (st.ok()) st = w->Finish();
  EXPECT_FALSE(st.ok());
  EXPECT_NE(st.message().find("write: Input/output error"), std::string::npos)
      << st;
  EXPECT_FALSE(w->Append("x").ok());
  EXPECT_FALSE(w->Finish().ok());
}

TEST(DirectIoTest, TransfersRefusedDirectlyGoThroughThePageCache) {
  Injected in;
  if (!testing::TakesDirectIo(in.dir.path())) {
    GTEST_SKIP() << in.dir.path() << " takes no O_DIRECT";
  }
  ASSERT_TRUE(in.made);
  testing::FaultInjectionEnv& env = in.env;
  const std::string& path = in.path;
  const std::string body = testing::RandomBytes(kDirectPiece + 5000, 8);
  // The first direct write refused: the whole file through the cache.
  env.FailNext("write", "/f", EINVAL);
  auto wrote = WriteDirect(&env, path, body, 1 << 20);
  ASSERT_TRUE(wrote.has_value());
  EXPECT_FALSE(*wrote);
  EXPECT_EQ(testing::ReadFile(path), body);
  // The first direct read refused: the reader goes on through the cache.
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  {
    DirectReader r(&env, fd.get());
    EXPECT_TRUE(r.direct());
    env.FailNext("read", "/f", EINVAL);
    ExpectReadsOf(r, body);
    EXPECT_FALSE(r.direct());
  }
  // Any other error is named.
  DirectReader r2(&env, fd.get());
  env.FailNext("read", "/f", EIO);
  auto bad = r2.ReadAt(0, 10);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("read: Input/output error"),
            std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace gwmirror
