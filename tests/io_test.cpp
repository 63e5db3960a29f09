// corelet::io — the low-level calls, on both reactor backends: parking,
// timeouts, cancellation, close while waiting, readiness, files, errors.

#include "io_support.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace corelet_test;
namespace io = corelet::io;

namespace {

struct Pipe {
  int r = -1, w = -1;
  Pipe() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) throw std::system_error(errno, std::system_category(), "pipe2");
    r = p[0];
    w = p[1];
  }
  ~Pipe() {
    io::close(r);
    io::close(w);
  }
};

}  // namespace

using Io = IoTest;
CORELET_IO_BACKENDS(Io);

TEST_P(Io, ReadParksUntilAnotherTaskletWrites) {
  run_io([] {
    Pipe p;
    std::vector<int> order;
    auto reader = corelet::spawn([&] {
      char buf[16] = {};
      const std::size_t n = io::read(p.r, buf, sizeof buf);
      order.push_back(2);
      return std::string(buf, n);
    });
    corelet::this_tasklet::yield();  // the reader runs and parks in read
    order.push_back(1);
    EXPECT_EQ(io::write(p.w, "ping", 4), 4u);
    EXPECT_EQ(reader.join(), "ping");
    EXPECT_EQ(order, (std::vector<int>{1, 2}));
  });
}

TEST_P(Io, OtherTaskletsRunWhileOneWaits) {
  run_io([] {
    Pipe p;
    int ticks = 0;
    auto reader = corelet::spawn([&] {
      char c;
      return io::read(p.r, &c, 1);
    });
    for (int i = 0; i < 100; ++i) {
      ++ticks;
      corelet::this_tasklet::yield();
    }
    EXPECT_FALSE(reader.done());
    EXPECT_EQ(ticks, 100);
    io::write(p.w, "x", 1);
    EXPECT_EQ(reader.join(), 1u);
  });
}

TEST_P(Io, ReadTimeoutThrowsTimedOutAndLosesNoData) {
  run_io([] {
    Pipe p;
    expect_errno([&] {
      char c;
      io::read(p.r, &c, 1, 20ms);
    }, ETIMEDOUT, "corelet::io::read");
    // The cancelled read took nothing: what comes next is all there.
    io::write(p.w, "abc", 3);
    char buf[3];
    EXPECT_EQ(io::read(p.r, buf, 3), 3u);
    EXPECT_EQ(std::string(buf, 3), "abc");
  });
}

TEST_P(Io, ZeroTimeoutPolls) {
  run_io([] {
    Pipe p;
    char c;
    expect_errno([&] { io::read(p.r, &c, 1, 0ms); }, ETIMEDOUT, "corelet::io::read");
    io::write(p.w, "z", 1);
    // Data already there: a zero timeout returns it (epoll tries first; on
    // io_uring the loop submits the read, which completes at once, before it
    // fires the due timer).
    EXPECT_EQ(io::read(p.r, &c, 1, 0ms), 1u);
    EXPECT_EQ(c, 'z');
  });
}

TEST_P(Io, CancelWhileWaitingUnwindsAndTakesNothing) {
  run_io([] {
    Pipe p;
    bool unwound = false;
    auto reader = corelet::spawn([&] {
      Sentinel s{&unwound};
      char buf[8];
      io::read(p.r, buf, sizeof buf);
      ADD_FAILURE() << "read returned after cancel";
    });
    corelet::this_tasklet::yield();
    reader.cancel();
    EXPECT_THROW(reader.join(), corelet::Cancelled);
    EXPECT_TRUE(unwound);
    io::write(p.w, "data", 4);
    char buf[8];
    EXPECT_EQ(io::read(p.r, buf, sizeof buf), 4u);
  });
}

TEST_P(Io, CancelRacingACompletionLosesNoData) {
  // The writer writes and cancels the reader in one step: the read either
  // completed (its bytes are returned, and the cancellation comes out of the
  // reader's next call) or was cancelled (the bytes are still in the pipe).
  // Both outcomes must occur over the rounds on io_uring (the read is queued
  // or in the kernel); on epoll the cancel always wins (nothing in flight).
  int completed = 0, cancelled_first = 0;
  run_io([&] {
    for (int round = 0; round < 60; ++round) {
      Pipe p;
      std::string got;
      bool cancelled_later = false;
      auto reader = corelet::spawn([&] {
        char buf[8];
        const std::size_t n = io::read(p.r, buf, sizeof buf);
        got.assign(buf, n);
        try {
          corelet::this_tasklet::sleep_for(1h);
        } catch (const corelet::Cancelled&) {
          cancelled_later = true;
          throw;
        }
      });
      yield_n(round % 3);
      // A plain write (not io::write, which would let the loop run): the
      // data and the cancel then reach the reader in the same instant.
      ASSERT_EQ(::write(p.w, "racy", 4), 4);
      reader.cancel();
      EXPECT_THROW(reader.join(), corelet::Cancelled);
      if (!got.empty()) {
        ++completed;
        EXPECT_EQ(got, "racy");
        EXPECT_TRUE(cancelled_later);
      } else {
        ++cancelled_first;
        char buf[8];
        EXPECT_EQ(io::read(p.r, buf, sizeof buf), 4u);
        EXPECT_EQ(std::string(buf, 4), "racy");
      }
    }
  });
  EXPECT_GT(cancelled_first, 0);
  if (GetParam() == io::Backend::io_uring) {
    EXPECT_GT(completed, 0) << "the completed-anyway path never ran";
  }
}

TEST_P(Io, CancelledTaskletReachesNoKernelCall) {
  run_io([] {
    Pipe p;
    io::write(p.w, "x", 1);
    bool reached = false;
    auto t = corelet::spawn([&] {
      corelet::this_tasklet::yield();  // main cancels it meanwhile
      reached = true;
      char c;
      io::read(p.r, &c, 1);  // cancellation pending: never reaches the pipe
    });
    corelet::this_tasklet::yield();
    t.cancel();
    EXPECT_THROW(t.join(), corelet::Cancelled);
    EXPECT_TRUE(reached);
    char c;
    EXPECT_EQ(io::read(p.r, &c, 1), 1u);
  });
}

TEST_P(Io, CloseWhileWaitingFailsTheWaiterWithEbadf) {
  run_io([] {
    Pipe p;
    auto reader = corelet::spawn([&] {
      char c;
      io::read(p.r, &c, 1);
    });
    corelet::this_tasklet::yield();
    const int fd = std::exchange(p.r, -1);
    io::close(fd);
    try {
      reader.join();
      ADD_FAILURE() << "read succeeded on a closed fd";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code().value(), EBADF);
      EXPECT_NE(std::string(e.what()).find("closed while waiting"), std::string::npos) << e.what();
    }
  });
}

TEST_P(Io, CloseWithMoreWaitersThanTheSubmissionQueueHolds) {
  // 1,500 reads wait on one fd; closing it cancels them all at once, more
  // cancel requests than the io_uring SQ ring holds (1,024).
  run_io([] {
    Pipe p;
    constexpr int kWaiters = 1500;
    int closed = 0, reading = 0;
    std::vector<corelet::Task<void>> readers;
    for (int i = 0; i < kWaiters; ++i)
      readers.push_back(corelet::spawn({.stack_size = 16 * 1024}, [&] {
        char c;
        ++reading;
        try {
          io::read(p.r, &c, 1);
        } catch (const std::system_error& e) {
          if (e.code().value() == EBADF) ++closed;
        }
      }));
    while (reading < kWaiters) corelet::this_tasklet::yield();  // every reader has issued its read
    corelet::this_tasklet::sleep_for(1ms);  // a trip through the reactor: the reads are submitted
    io::close(std::exchange(p.r, -1));
    for (auto& r : readers) r.join();
    EXPECT_EQ(closed, kWaiters);
  });
}

TEST_P(Io, AClosedFdNumberReusedAtOnceNeverGetsTheOldOperation) {
  // A write is queued (io_uring submits at the end of the batch) when another
  // tasklet closes its fd and a new socket takes the number: the bytes must
  // go to the old pipe or nowhere, never into the new socket.
  run_io([] {
    Pipe p;
    const int old_fd = p.w;
    auto writer = corelet::spawn([&] {
      try {
        io::write(old_fd, "SECRET", 6);
      } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), EBADF) << e.what();
      }
    });
    corelet::this_tasklet::yield();  // the writer queues its write and parks
    io::close(std::exchange(p.w, -1));
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    ASSERT_TRUE(sv[0] == old_fd || sv[1] == old_fd) << "the number was not reused; the test proves nothing";
    writer.join();
    char buf[8];
    EXPECT_EQ(::recv(sv[0] == old_fd ? sv[1] : sv[0], buf, sizeof buf, MSG_DONTWAIT), -1);
    EXPECT_EQ(errno, EAGAIN);
    ::close(sv[0]);
    ::close(sv[1]);
  });
}

TEST_P(Io, AQueuedFileJobNeverActsOnAReusedNumber) {
  // Every run_blocking helper is busy, so a file write waits in the queue
  // (epoll) while its fd is closed and the number reused by a new file: the
  // new file must stay empty. The new file takes the lowest free number,
  // which is the old one unless something else of the process (a helper
  // starting up) opened a file in between: then the round proves nothing
  // and is tried again, up to ten times.
  run_io([] {
    int proving = 0;
    for (int round = 0; round < 10 && proving == 0; ++round) {
      const std::string old_path = temp_path("reuse_old"), new_path = temp_path("reuse_new");
      const int fd = io::open(old_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      // Sixteen calls hold every helper the pool may start until released (or
      // 30 s, so that a failure does not hang): the write's job must wait in
      // the queue, whatever the machine's speed.
      std::atomic<int> busy{0};
      std::atomic<bool> release{false};
      std::vector<corelet::Task<void>> sleepers;
      for (int i = 0; i < 16; ++i)
        sleepers.push_back(corelet::spawn([&] {
          corelet::run_blocking([&] {
            ++busy;
            const auto give_up = std::chrono::steady_clock::now() + 30s;
            while (!release.load() && std::chrono::steady_clock::now() < give_up) ::usleep(200);
          });
        }));
      while (busy.load() < 16) corelet::this_tasklet::sleep_for(1ms);
      auto writer = corelet::spawn([&] {
        try {
          io::write(fd, "SECRET", 6);
        } catch (const std::system_error& e) {
          EXPECT_EQ(e.code().value(), EBADF) << e.what();
        }
      });
      corelet::this_tasklet::yield();
      io::close(fd);
      // Only now may the helpers go on (the open below may itself queue for
      // one, behind the write: the releaser runs once it parks).
      auto releaser = corelet::spawn([&] { release = true; });
      const int again = io::open(new_path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
      releaser.join();
      writer.join();
      for (auto& s : sleepers) s.join();
      if (again == fd) {
        ++proving;
        char buf[8];
        EXPECT_EQ(io::pread(again, buf, sizeof buf, 0), 0u) << "the old write landed in the new file";
      }
      io::close(again);
      ::unlink(old_path.c_str());
      ::unlink(new_path.c_str());
    }
    EXPECT_EQ(proving, 1) << "in ten rounds the number was never reused: the test proved nothing";
  });
}

TEST_P(Io, ATaskletThatNeverWaitsStillLetsOthersRun) {
  // The reader's socket holds all it will read: its reads never park. The
  // other tasklets must still run (every 64 calls, as the I/O budget says).
  run_io([] {
    auto [a, b] = corelet::UnixStream::pair();
    std::size_t filled = 0;
    const std::string block(4096, 'f');
    for (;;) {  // fill the socket buffers to the brim, without the scheduler
      const ssize_t n = ::send(a.fd(), block.data(), block.size(), MSG_DONTWAIT);
      if (n <= 0) break;
      filled += static_cast<std::size_t>(n);
    }
    ASSERT_GT(filled, 16384u);
    bool reading = true;
    int ticks = 0;
    auto ticker = corelet::spawn([&] {
      while (reading) {
        ++ticks;
        corelet::this_tasklet::yield();
      }
    });
    std::size_t got = 0, reads = 0;
    char buf[16];
    while (got < filled) {
      got += b.read(buf, sizeof buf);
      ++reads;
    }
    reading = false;
    ticker.join();
    // One turn per 64 reads; without the budget the ticker never runs
    // before the reader is done.
    EXPECT_GE(ticks, static_cast<int>(reads / 64 / 2)) << reads << " reads";
  });
}

TEST_P(Io, WriteToAClosedPipeIsEpipeNotSigpipe) {
  run_io([] {
    Pipe p;
    io::close(std::exchange(p.r, -1));
    expect_errno([&] { io::write(p.w, "x", 1); }, EPIPE, "corelet::io::write");
  });
  // run() consumed the SIGPIPE the write raised and restored the mask.
  sigset_t pending, mask;
  ASSERT_EQ(::sigpending(&pending), 0);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
  ASSERT_EQ(::pthread_sigmask(SIG_BLOCK, nullptr, &mask), 0);
  EXPECT_EQ(sigismember(&mask, SIGPIPE), 0);
}

TEST_P(Io, AnEnormousTimeoutIsNoTimeout) {
  run_io([] {
    Pipe p;
    auto writer = corelet::spawn([&] {
      corelet::this_tasklet::sleep_for(5ms);
      io::write(p.w, "y", 1);
    });
    char c;
    EXPECT_EQ(io::read(p.r, &c, 1, std::chrono::seconds::max()), 1u);  // saturates, does not overflow
    EXPECT_EQ(io::read(p.r, &c, 0, std::chrono::duration<double>(1.5)), 0u);
    writer.join();
  });
  EXPECT_TRUE(io::Timeout(std::chrono::hours::max()).is_none());
  EXPECT_EQ(io::Timeout(-5s).duration(), std::chrono::nanoseconds::zero());
  EXPECT_EQ(io::Timeout(20ms).duration(), std::chrono::nanoseconds(20'000'000));
}

TEST_P(Io, BadFdIsEbadfNamingTheCall) {
  run_io([] {
    char c;
    expect_errno([&] { io::read(-1, &c, 1); }, EBADF, "corelet::io::read");
    expect_errno([&] { io::write(987654, &c, 1); }, EBADF, "corelet::io::write");
    expect_errno([&] { io::recv(-1, &c, 1); }, EBADF, "corelet::io::recv");
    expect_errno([&] { io::wait_readable(-1); }, EBADF, "corelet::io::wait_readable");
    expect_errno([&] { io::pread(0, &c, 1, -5); }, EINVAL, "corelet::io::pread");
    expect_errno([&] { io::readv(0, nullptr, -1); }, EINVAL, "corelet::io::readv");
    expect_errno([&] { io::accept(-1, nullptr, nullptr); }, EBADF, "corelet::io::accept");
  });
}

TEST_P(Io, WaitReadableAndWritable) {
  run_io([] {
    Pipe p;
    io::wait_writable(p.w, 1s);  // an empty pipe is writable
    expect_errno([&] { io::wait_readable(p.r, 20ms); }, ETIMEDOUT, "corelet::io::wait_readable");
    auto waiter = corelet::spawn([&] { io::wait_readable(p.r); });
    corelet::this_tasklet::yield();
    EXPECT_FALSE(waiter.done());
    io::write(p.w, "r", 1);
    waiter.join();
    // Still readable (nothing read it): a second wait returns at once, even
    // though the readiness edge was reported already.
    io::wait_readable(p.r, 1s);
    char c;
    EXPECT_EQ(io::read(p.r, &c, 1), 1u);
    expect_errno([&] { io::wait_readable(p.r, 10ms); }, ETIMEDOUT, "corelet::io::wait_readable");
  });
}

TEST_P(Io, ABlockingFdIsBlockingAgainAfterTheRun) {
  // A terminal or pipe the program was handed blocking must not stay
  // non-blocking for whoever reads it after the run (the shell).
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  run_io([&] {
    auto reader = corelet::spawn([&] {
      char c;
      return io::read(p[0], &c, 1);
    });
    corelet::this_tasklet::yield();
    io::write(p[1], "x", 1);
    EXPECT_EQ(reader.join(), 1u);
  });
  EXPECT_FALSE(::fcntl(p[0], F_GETFL) & O_NONBLOCK);
  ::close(p[0]);
  ::close(p[1]);
}

TEST_P(Io, WaitReadableReportsHangUp) {
  run_io([] {
    Pipe p;
    auto waiter = corelet::spawn([&] { io::wait_readable(p.r); });
    corelet::this_tasklet::yield();
    io::close(std::exchange(p.w, -1));  // the reader sees end of file
    waiter.join();
    char c;
    EXPECT_EQ(io::read(p.r, &c, 1), 0u);
  });
}

TEST_P(Io, WriteParksWhenThePipeIsFull) {
  run_io([] {
    Pipe p;
    std::vector<char> big(1 << 20, 'q');
    std::size_t written = 0;
    auto writer = corelet::spawn([&] {
      while (written < big.size()) written += io::write(p.w, big.data() + written, big.size() - written);
    });
    corelet::this_tasklet::sleep_for(5ms);  // the write is in the kernel by now
    EXPECT_LT(written, big.size());          // the pipe holds 64 KiB: the writer waits
    std::size_t got = 0;
    std::vector<char> buf(1 << 16);
    while (got < big.size()) {
      const std::size_t n = io::read(p.r, buf.data(), buf.size());
      ASSERT_GT(n, 0u);
      for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(buf[i], 'q');
      got += n;
    }
    writer.join();
    EXPECT_EQ(got, big.size());
  });
}

TEST_P(Io, VectoredReadAndWrite) {
  run_io([] {
    Pipe p;
    char a[] = "hello ", b[] = "world";
    iovec out[2] = {{a, 6}, {b, 5}};
    EXPECT_EQ(io::writev(p.w, out, 2), 11u);
    char x[4], y[7];
    iovec in[2] = {{x, 4}, {y, 7}};
    EXPECT_EQ(io::readv(p.r, in, 2), 11u);
    EXPECT_EQ(std::string(x, 4) + std::string(y, 7), "hello world");
  });
}

TEST_P(Io, SendmsgAndRecvmsg) {
  run_io([] {
    int sv[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    char a[] = "one", b[] = "two";
    iovec out[2] = {{a, 3}, {b, 3}};
    msghdr m{};
    m.msg_iov = out;
    m.msg_iovlen = 2;
    EXPECT_EQ(io::sendmsg(sv[0], &m), 6u);
    char buf[6];
    iovec in{buf, 6};
    msghdr r{};
    r.msg_iov = &in;
    r.msg_iovlen = 1;
    EXPECT_EQ(io::recvmsg(sv[1], &r), 6u);
    EXPECT_EQ(std::string(buf, 6), "onetwo");
    io::close(sv[0]);
    io::close(sv[1]);
  });
}

TEST_P(Io, FilesOpenWritePreadFsync) {
  run_io([] {
    const std::string path = temp_path("files");
    const int fd = io::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    EXPECT_TRUE(::fcntl(fd, F_GETFD) & FD_CLOEXEC);
    EXPECT_EQ(io::write(fd, "0123456789", 10), 10u);
    EXPECT_EQ(io::pwrite(fd, "AB", 2, 4), 2u);
    io::fsync(fd);
    char buf[10];
    EXPECT_EQ(io::pread(fd, buf, 10, 0), 10u);
    EXPECT_EQ(std::string(buf, 10), "0123AB6789");
    EXPECT_EQ(io::pread(fd, buf, 10, 10), 0u);  // end of file
    io::close(fd);
    ::unlink(path.c_str());
    expect_errno([&] { io::open(path.c_str(), O_RDONLY); }, ENOENT, "corelet::io::open");
  });
}

TEST_P(Io, FileReadsOfManyTaskletsAtOnce) {
  run_io([] {
    const std::string path = temp_path("many");
    std::string content;
    for (int i = 0; i < 4096; ++i) content += static_cast<char>('a' + i % 26);
    const int fd = io::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT_EQ(io::write(fd, content.data(), content.size()), content.size());
    std::vector<corelet::Task<bool>> readers;
    for (int i = 0; i < 64; ++i)
      readers.push_back(corelet::spawn([&, i] {
        char buf[64];
        const off_t off = i * 64;
        return io::pread(fd, buf, 64, off) == 64 && std::string(buf, 64) == content.substr(off, 64);
      }));
    for (auto& r : readers) EXPECT_TRUE(r.join());
    io::close(fd);
    ::unlink(path.c_str());
  });
}

TEST_P(Io, RunBlockingCompletionWakesAnIoWaitingScheduler) {
  // The loop sleeps in the reactor (a read is pending); a helper's completion
  // must wake it through the eventfd the reactor watches.
  run_io([] {
    Pipe p;
    auto reader = corelet::spawn([&] {
      char c;
      return io::read(p.r, &c, 1);
    });
    const int v = corelet::run_blocking([] {
      ::usleep(20000);
      return 42;
    });
    EXPECT_EQ(v, 42);
    io::write(p.w, "k", 1);
    EXPECT_EQ(reader.join(), 1u);
  });
}

TEST_P(Io, CompletionsArriveWhileTaskletsStayBusy) {
  // The scheduler never goes idle (a tasklet yields in a loop): completions
  // must still be taken in the loop's poll, not only in its idle wait. The
  // write comes from another thread, so only the kernel can report it.
  run_io([] {
    Pipe p;
    bool got = false;
    auto reader = corelet::spawn([&] {
      char c;
      got = io::read(p.r, &c, 1) == 1;
    });
    corelet::this_tasklet::yield();
    std::thread writer([w = p.w] {
      std::this_thread::sleep_for(5ms);
      ASSERT_EQ(::write(w, "b", 1), 1);
    });
    const auto give_up = corelet::Clock::now() + 10s;  // a bound, not a timing assertion
    long spins = 0;
    while (!got && corelet::Clock::now() < give_up) {
      corelet::this_tasklet::yield();
      ++spins;
    }
    writer.join();
    EXPECT_TRUE(got) << "the read's completion was not taken in " << spins << " busy rounds";
    reader.join();
  });
}

TEST_P(Io, TimersFireWhileIoIsPending) {
  run_io([] {
    Pipe p;
    auto reader = corelet::spawn([&] {
      char c;
      return io::read(p.r, &c, 1);
    });
    const auto t0 = corelet::Clock::now();
    corelet::this_tasklet::sleep_for(30ms);
    EXPECT_GE(elapsed_us(t0), us(30ms));
    io::write(p.w, "k", 1);
    EXPECT_EQ(reader.join(), 1u);
  });
}

TEST_P(Io, DetachedWaiterIsCancelledWhenMainEnds) {
  bool unwound = false;
  int r = -1, w = -1;
  run_io([&] {
    int p[2];
    ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
    r = p[0];
    w = p[1];
    corelet::spawn([&] {
      Sentinel s{&unwound};
      char c;
      io::read(r, &c, 1);
    }).detach();
    corelet::this_tasklet::yield();
  });
  EXPECT_TRUE(unwound);
  ::close(r);
  ::close(w);
}

TEST_P(Io, OutsideATaskletIsAUsageError) {
  char c;
  expect_usage_error([&] { io::read(0, &c, 1); }, "corelet::io::read");
  expect_usage_error([] { io::backend(); }, "corelet::io::backend");
}

TEST(IoBackend, UnknownCoreletIoValueIsAUsageError) {
  ::setenv("CORELET_IO", "kqueue", 1);
  expect_usage_error([] { corelet::run([] { io::backend(); }); }, "CORELET_IO=kqueue");
  ::unsetenv("CORELET_IO");
}

TEST(IoBackend, AutoPrefersIoUringHere) {
  if (!uring_unavailable().empty()) GTEST_SKIP() << uring_unavailable();
  ::setenv("CORELET_IO", "auto", 1);
  corelet::run([] {
    EXPECT_EQ(io::backend(), io::Backend::io_uring) << io::fallback_reason();
    EXPECT_EQ(io::fallback_reason(), "");
    EXPECT_EQ(io::backend_name(io::backend()), "io_uring");
  });
  ::unsetenv("CORELET_IO");
}
