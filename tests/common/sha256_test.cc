// The streaming hasher against the one-shot digest, and the digest of a
// descriptor: every byte from its start, whatever its offset, which stays.
#include "common/sha256.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "common/fd.h"
#include "gtest/gtest.h"
#include "tests/node/test_util.h"

namespace gwmirror {
namespace {

TEST(Sha256Test, ADescriptorIsHashedFromItsStartAndKeepsItsOffset) {
  testing::TempDir dir;
  // More than one read's worth (1 MiB), and not a multiple of it.
  const std::string body = testing::RandomBytes((3 << 20) + 17, 5);
  testing::WriteFile(dir / "f", body);
  UniqueFd fd(open((dir / "f").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(fd.valid());
  ASSERT_EQ(lseek(fd.get(), 1000, SEEK_SET), 1000);
  auto d = Sha256OfFd(fd.get(), "f");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->sha256, DigestBytes(Sha256Of(body)));
  EXPECT_EQ(d->bytes, body.size());
  EXPECT_EQ(lseek(fd.get(), 0, SEEK_CUR), 1000);
  // A descriptor that cannot be read is named.
  UniqueFd dir_fd(open(dir.path().c_str(), O_RDONLY | O_DIRECTORY));
  auto bad = Sha256OfFd(dir_fd.get(), "the directory");
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("read the directory"),
            std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace gwmirror
