// corelet/sched/file.hpp — File on both reactor backends.

#include "io_support.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <vector>

using namespace corelet_test;
using corelet::File;

using Files = IoTest;
CORELET_IO_BACKENDS(Files);

TEST_P(Files, WriteThenReadAllBack) {
  run_io([] {
    const std::string path = temp_path("rw");
    std::string content;
    for (int i = 0; i < 300000; ++i) content += static_cast<char>(i % 253);
    {
      File f = File::open(path, "w");
      f.write_all(content);
      f.fsync();
      EXPECT_EQ(f.size(), static_cast<off_t>(content.size()));
    }
    File f = File::open(path, "r");
    EXPECT_TRUE(f.read_all() == content);
    EXPECT_EQ(f.read_all(), "");  // at the end now
    char buf[5];
    EXPECT_EQ(f.pread(buf, 5, 1000), 5u);
    EXPECT_EQ(std::string(buf, 5), content.substr(1000, 5));
    ::unlink(path.c_str());
  });
}

TEST_P(Files, ModesAppendExclusiveReadWrite) {
  run_io([] {
    const std::string path = temp_path("modes");
    ::unlink(path.c_str());
    File::open(path, "wx").write_all("one\n");
    expect_errno([&] { File::open(path, "wx"); }, EEXIST, path);
    File::open(path, "a").write_all("two\n");
    EXPECT_EQ(File::open(path, "r").read_all(), "one\ntwo\n");
    {
      File f = File::open(path, "r+");
      EXPECT_EQ(f.pwrite("ONE", 3, 0), 3u);
    }
    EXPECT_EQ(File::open(path, "rb").read_all(), "ONE\ntwo\n");
    File::open(path, "w+");  // truncates
    EXPECT_EQ(File::open(path, "r").size(), 0);
    expect_errno([&] { File::open(path, "r").write_all("x"); }, EBADF, "corelet::io::write");
    ::unlink(path.c_str());
  });
}

TEST_P(Files, ErrorsNameThePathAndTheCall) {
  run_io([] {
    expect_errno([] { File::open("/nonexistent/dir/file"); }, ENOENT, "corelet::File::open(\"/nonexistent/dir/file\")");
    expect_errno([] { File::open("/tmp/x", "q"); }, EINVAL, "the mode must be");
    expect_errno([] { File::open("/tmp/x", "rw"); }, EINVAL, "the mode must be");
    File closed;
    char c;
    expect_errno([&] { closed.read(&c, 1); }, EBADF, "the file is closed");
    expect_errno([&] { closed.size(); }, EBADF, "the file is closed");
  });
}

TEST_P(Files, ConcurrentReadersOfManyFiles) {
  run_io([] {
    constexpr int kFiles = 32;
    std::vector<std::string> paths;
    for (int i = 0; i < kFiles; ++i) {
      paths.push_back(temp_path("many" + std::to_string(i)));
      File::open(paths.back(), "w").write_all(std::string(10000 + i, static_cast<char>('a' + i % 26)));
    }
    std::vector<corelet::Task<std::size_t>> readers;
    for (int i = 0; i < kFiles; ++i)
      readers.push_back(corelet::spawn([&, i] { return File::open(paths[i]).read_all().size(); }));
    for (int i = 0; i < kFiles; ++i) EXPECT_EQ(readers[i].join(), 10000u + i);
    for (auto& p : paths) ::unlink(p.c_str());
  });
}

TEST_P(Files, MoveAndReleaseTransferOwnership) {
  run_io([] {
    const std::string path = temp_path("own");
    const int before = open_fds();
    {
      File a = File::open(path, "w");
      File b = std::move(a);
      EXPECT_FALSE(a.is_open());
      EXPECT_TRUE(b.is_open());
      const int fd = b.release();
      EXPECT_FALSE(b.is_open());
      File c(fd);
      c.write_all("x");
    }
    EXPECT_EQ(open_fds(), before);
    ::unlink(path.c_str());
  });
}
