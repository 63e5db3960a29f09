// Tests of the SPSC byte ring (corelet/ipc/ring.hpp) on its own: one thread
// and two threads. The same source is also built with ThreadSanitizer
// (ring_tsan_test) so the memory-ordering argument is checked by a tool.

#include <corelet/ipc/ring.hpp>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace {

using namespace corelet::ipc;

struct Region {
  explicit Region(std::size_t capacity) : cap(capacity) {
    mem = static_cast<std::byte*>(std::aligned_alloc(kCacheLine, ring_bytes(cap)));
    h = init_ring(mem, cap);
  }
  ~Region() { std::free(mem); }
  std::size_t cap;
  std::byte* mem;
  RingHeader* h;
};

// A payload that encodes its sequence number and length, so the reader can
// check every byte of it.
void fill(std::byte* p, std::uint32_t n, std::uint64_t seq) {
  for (std::uint32_t i = 0; i < n; ++i) p[i] = static_cast<std::byte>((seq * 131 + i) & 0xff);
}
bool check(const std::byte* p, std::uint32_t n, std::uint64_t seq) {
  for (std::uint32_t i = 0; i < n; ++i)
    if (p[i] != static_cast<std::byte>((seq * 131 + i) & 0xff)) return false;
  return true;
}

TEST(Ring, LayoutKeepsIndicesOnTheirOwnCacheLines) {
  EXPECT_EQ(offsetof(RingHeader, write) / kCacheLine, 0u);
  EXPECT_EQ(offsetof(RingHeader, read) / kCacheLine, 1u);
  EXPECT_EQ(offsetof(RingHeader, capacity) / kCacheLine, 2u);
  EXPECT_EQ(frame_bytes(0), 8u);
  EXPECT_EQ(frame_bytes(1), 16u);
  EXPECT_EQ(frame_bytes(8), 16u);
}

TEST(Ring, FramesComeOutAsWrittenOnlyAfterPublish) {
  Region r(4096);
  RingWriter w(r.h);
  RingReader rd(r.h);
  ASSERT_TRUE(w.try_write(3, "hello", 5, 1));
  ASSERT_TRUE(w.try_write(4, "", 0, 2));
  Frame f;
  EXPECT_FALSE(rd.peek(f)) << "a committed frame is invisible before publish()";
  EXPECT_TRUE(w.publish());
  EXPECT_FALSE(w.publish()) << "nothing new to publish";
  ASSERT_TRUE(rd.peek(f));
  EXPECT_EQ(f.kind, 3);
  EXPECT_EQ(f.flags, 1);
  ASSERT_EQ(f.size, 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(f.data), 5), "hello");
  rd.pop(f);
  ASSERT_TRUE(rd.peek(f));
  EXPECT_EQ(f.kind, 4);
  EXPECT_EQ(f.size, 0u);
  rd.pop(f);
  EXPECT_FALSE(rd.peek(f));
  EXPECT_TRUE(rd.empty());
}

TEST(Ring, FullRingRefusesUntilTheReaderReleases) {
  Region r(4096);
  RingWriter w(r.h);
  RingReader rd(r.h);
  std::vector<std::byte> buf(1000);
  int written = 0;
  while (w.try_write(1, buf.data(), 1000)) ++written;
  EXPECT_EQ(written, 4) << "4096 bytes hold four 1008-byte frames";
  w.publish();
  Frame f;
  ASSERT_TRUE(rd.peek(f));
  rd.pop(f);
  EXPECT_FALSE(w.try_write(1, buf.data(), 1000)) << "popped but not released: still full";
  rd.release();
  EXPECT_TRUE(w.try_write(1, buf.data(), 1000));
}

TEST(Ring, WrapsWithAPadFrameAndNeverSplitsAFrame) {
  Region r(1024);
  RingWriter w(r.h);
  RingReader rd(r.h);
  std::uint64_t seq_w = 0, seq_r = 0;
  std::mt19937 rng(7);
  for (int round = 0; round < 5000; ++round) {
    const auto n = static_cast<std::uint32_t>(rng() % (w.max_payload() + 1));
    std::byte* p = w.try_reserve(n);
    if (p) {
      fill(p, n, seq_w);
      w.commit(n, 9, static_cast<std::uint16_t>(seq_w & 0xffff));
      ++seq_w;
      w.publish();
    }
    Frame f;
    while ((rng() & 1) && rd.peek(f)) {
      ASSERT_EQ(f.kind, 9);
      ASSERT_EQ(f.flags, static_cast<std::uint16_t>(seq_r & 0xffff));
      ASSERT_GE(f.data, ring_data(r.h));
      ASSERT_LE(f.data + f.size, ring_data(r.h) + r.cap) << "a frame must not wrap";
      ASSERT_TRUE(check(f.data, f.size, seq_r));
      ++seq_r;
      rd.pop(f);
      rd.release();
    }
  }
  EXPECT_GT(seq_w, 1000u);
}

TEST(Ring, LargestFrameAlwaysFitsInAnEmptyRing) {
  Region r(256);
  RingWriter w(r.h);
  RingReader rd(r.h);
  std::vector<std::byte> buf(w.max_payload());
  for (int i = 0; i < 100; ++i) {  // every alignment of the write position
    ASSERT_TRUE(w.try_write(1, buf.data(), static_cast<std::uint32_t>(buf.size()))) << i;
    w.publish();
    Frame f;
    ASSERT_TRUE(rd.peek(f));
    rd.pop(f);
    rd.release();
    ASSERT_TRUE(w.try_write(1, buf.data(), static_cast<std::uint32_t>(i % 8))) << i;
    w.publish();
    ASSERT_TRUE(rd.peek(f));
    rd.pop(f);
    rd.release();
  }
}

TEST(Ring, WaitingProducerIsReportedOnceAfterARelease) {
  Region r(4096);
  RingWriter w(r.h);
  RingReader rd(r.h);
  std::vector<std::byte> buf(1000);
  while (w.try_write(1, buf.data(), 1000)) {
  }
  w.publish();
  EXPECT_FALSE(w.announce_waiting(1000)) << "still full: the producer must sleep";
  EXPECT_FALSE(rd.release_and_check_waiter()) << "nothing was freed: no reason to wake the producer";
  EXPECT_EQ(r.h->producer_waiting.load(), 1u) << "the flag stays for the release that frees space";
  Frame f;
  ASSERT_TRUE(rd.peek(f));
  rd.pop(f);
  EXPECT_TRUE(rd.release_and_check_waiter());
  EXPECT_FALSE(rd.release_and_check_waiter()) << "reported once";
  EXPECT_TRUE(w.has_room(1000));
}

// Two threads: a producer publishing in batches, a consumer releasing in
// batches, frames of random size with checksummed contents.
void run_threads(std::size_t cap, std::uint64_t messages, std::uint32_t max_size, unsigned seed) {
  Region r(cap);
  std::atomic<bool> failed{false};
  std::thread producer([&] {
    RingWriter w(r.h);
    std::mt19937 rng(seed);
    for (std::uint64_t seq = 0; seq < messages;) {
      const auto n = static_cast<std::uint32_t>(8 + rng() % (std::min(max_size, w.max_payload()) - 7));
      std::byte* p = w.try_reserve(n);
      if (!p) {
        w.publish();
        std::this_thread::yield();
        continue;
      }
      std::memcpy(p, &seq, sizeof seq);
      fill(p + 8, n - 8, seq);
      w.commit(n, 1);
      if (++seq % 16 == 0) w.publish();
    }
    w.publish();
  });
  std::thread consumer([&] {
    RingReader rd(r.h);
    std::uint64_t seq = 0;
    Frame f;
    while (seq < messages && !failed) {
      int got = 0;
      while (rd.peek(f)) {
        std::uint64_t s;
        std::memcpy(&s, f.data, sizeof s);
        if (s != seq || !check(f.data + 8, f.size - 8, seq)) {
          failed = true;
          break;
        }
        ++seq;
        rd.pop(f);
        ++got;
      }
      rd.release();
      if (!got) std::this_thread::yield();
    }
  });
  producer.join();
  consumer.join();
  EXPECT_FALSE(failed) << "a frame came out wrong (order or contents)";
}

TEST(RingThreads, SmallFramesThroughABigRing) { run_threads(1 << 16, 200'000, 64, 1); }
// A tiny ring: a full ring every few frames, each a yield away from the other
// side, which on a loaded machine costs a time slice; thousands of wraps
// still, but a run far inside the ctest timeout there.
TEST(RingThreads, MixedFramesThroughATinyRing) { run_threads(256, 20'000, 56, 2); }
TEST(RingThreads, LargeFrames) { run_threads(1 << 14, 20'000, 4000, 3); }

}  // namespace

namespace {

// The producer sleeps whenever the ring is full (no polling) and relies on
// the consumer's release_and_check_waiter to wake it: a lost wakeup would
// hang here (and fail by the ctest timeout). Every sleep costs a wakeup's
// scheduling latency, milliseconds on a loaded machine: the message count
// (thousands of sleeps) keeps the run far inside the ctest timeout there.
TEST(RingThreads, SleepingProducerIsNeverLeftAsleep) {
  Region r(512);
  constexpr std::uint64_t kMessages = 25'000;
  std::atomic<std::uint32_t> wakeups{0};
  std::atomic<std::uint64_t> sleeps{0};
  std::thread producer([&] {
    RingWriter w(r.h);
    for (std::uint64_t seq = 0; seq < kMessages;) {
      std::byte* p = w.try_reserve(40);
      if (!p) {
        w.publish();
        const std::uint32_t seen = wakeups.load(std::memory_order_acquire);
        if (w.announce_waiting(40)) continue;
        sleeps.fetch_add(1, std::memory_order_relaxed);
        wakeups.wait(seen, std::memory_order_acquire);
        continue;
      }
      std::memcpy(p, &seq, sizeof seq);
      w.commit(40, 1);
      ++seq;
    }
    w.publish();
  });
  RingReader rd(r.h);
  std::uint64_t seq = 0;
  bool in_order = true;
  Frame f;
  while (seq < kMessages) {
    bool got = false;
    while (rd.peek(f)) {
      std::uint64_t s;
      std::memcpy(&s, f.data, sizeof s);
      in_order &= s == seq;
      ++seq;
      rd.pop(f);
      got = true;
    }
    if (rd.release_and_check_waiter()) {
      wakeups.fetch_add(1, std::memory_order_release);
      wakeups.notify_one();
    }
    // Nothing there: give the CPU up (on a busy machine, a consumer that
    // spins flat out keeps the producer it just woke from running).
    if (!got) std::this_thread::yield();
  }
  producer.join();
  EXPECT_TRUE(in_order);
  EXPECT_GT(sleeps.load(), 0u) << "the ring is tiny: the producer must have slept";
}

}  // namespace
