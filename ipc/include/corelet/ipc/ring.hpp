#pragma once
// corelet/ipc/ring.hpp — a single-producer single-consumer byte ring for
// shared memory: variable-size frames, cache-line-separated indices, cached
// peer indices and batched publication.
//
// Memory layout (one ring = RingHeader followed by `capacity` data bytes):
//
//   +0    write            producer's line: published end (monotonic bytes)
//         producer_waiting   the producer sleeps until space is freed
//   +64   read             consumer's line: released end (monotonic bytes)
//   +128  capacity, magic, user word (the cluster's reset handshake)
//   +192  data[capacity]   frames: [size u32 | kind u16 | flags u16 | payload, 8-aligned]
//
// A frame never wraps: when it does not fit before the end of the data, the
// producer writes a pad frame there and starts again at offset 0.
//
// Memory ordering. The producer writes frame bytes with plain stores, then
// publishes with a release store of `write`; the consumer's acquire load of
// `write` makes those bytes visible before it reads them. Symmetrically the
// consumer reads frame bytes, then releases them with a release store of
// `read`; the producer's acquire load of `read` orders its overwrite of that
// space after the consumer's reads. Each side keeps a private copy of the
// other's index (`read_cache_` / `write_cache_`) and loads the shared one only
// when the copy says the ring looks full / empty, so in steady state neither
// side touches the other's cache line per message. Publication and release are
// batched by the caller (publish() / release()), one shared store per batch.
//
// The producer's sleep until space is freed is a Dekker handshake: the
// producer stores producer_waiting, then loads `read`; the consumer stores
// `read`, then loads producer_waiting. All four are seq_cst operations (one
// total order), so at least one side sees the other's store: the producer
// finds the space, or the consumer finds the flag and wakes it. Hence every
// store of `read` is seq_cst (an xchg on x86, once per batch). See
// announce_waiting() and release_and_check_waiter().

#include <atomic>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

namespace corelet::ipc {

inline constexpr std::size_t kCacheLine = 64;

struct RingHeader {
  // Producer's line.
  alignas(kCacheLine) std::atomic<std::uint64_t> write{0};
  std::atomic<std::uint32_t> producer_waiting{0};
  // Consumer's line.
  alignas(kCacheLine) std::atomic<std::uint64_t> read{0};
  // Set once when the ring is made; `user` belongs to the layer above.
  alignas(kCacheLine) std::uint64_t capacity = 0;
  std::uint32_t magic = 0;
  std::atomic<std::uint32_t> user{0};
};
static_assert(std::is_standard_layout_v<RingHeader>);
static_assert(sizeof(RingHeader) == 3 * kCacheLine);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

struct FrameHeader {
  std::uint32_t size;   // payload bytes
  std::uint16_t kind;   // kPad or the layer above's message kind
  std::uint16_t flags;  // the layer above's (chunking)
};
static_assert(sizeof(FrameHeader) == 8);

inline constexpr std::uint16_t kPadKind = 0xffff;
inline constexpr std::uint32_t kRingMagic = 0x52494e47;  // "RING"

// ring_bytes — the shared bytes a ring of `capacity` data bytes needs.
constexpr std::size_t ring_bytes(std::size_t capacity) noexcept { return sizeof(RingHeader) + capacity; }

// frame_bytes — a frame's footprint for a payload of `size` bytes.
constexpr std::uint64_t frame_bytes(std::uint64_t size) noexcept { return sizeof(FrameHeader) + ((size + 7) & ~std::uint64_t{7}); }

// init_ring — makes a ring in `mem` (ring_bytes(capacity) bytes, 64-aligned,
// zeroed or not). capacity: a power of two, at least 256. Only while nobody
// uses the ring.
inline RingHeader* init_ring(void* mem, std::size_t capacity) noexcept {
  assert(capacity >= 256 && (capacity & (capacity - 1)) == 0 && "ring capacity must be a power of two >= 256");
  assert(reinterpret_cast<std::uintptr_t>(mem) % kCacheLine == 0 && "ring memory must be cache-line aligned");
  auto* h = new (mem) RingHeader;
  h->capacity = capacity;
  h->magic = kRingMagic;
  return h;
}

inline std::byte* ring_data(RingHeader* h) noexcept { return reinterpret_cast<std::byte*>(h + 1); }

// RingWriter — the producer's side; one per ring, used by one thread at a time.
class RingWriter {
 public:
  RingWriter() = default;
  explicit RingWriter(RingHeader* h) noexcept { attach(h); }

  void attach(RingHeader* h) noexcept {
    assert(h->magic == kRingMagic && "not a corelet ring");
    h_ = h;
    data_ = ring_data(h);
    cap_ = h->capacity;
    pos_ = published_ = h->write.load(std::memory_order_relaxed);
    read_cache_ = h->read.load(std::memory_order_acquire);
  }
  bool attached() const noexcept { return h_ != nullptr; }

  // max_payload — the largest payload one frame may carry; larger messages
  // are the layer above's to split. A quarter of the ring, so a frame always
  // fits once the consumer has caught up, pad included.
  std::uint32_t max_payload() const noexcept { return static_cast<std::uint32_t>(cap_ / 4 - sizeof(FrameHeader)); }

  // try_reserve — room for a frame of `size` payload bytes (<= max_payload()).
  // Returns where to write the payload, or nullptr if the ring is full now.
  // The frame is invisible to the consumer until commit() and publish().
  std::byte* try_reserve(std::uint32_t size) noexcept {
    assert(size <= max_payload() && "frame larger than max_payload()");
    const std::uint64_t need = frame_bytes(size);
    const std::uint64_t tail_room = cap_ - (pos_ & (cap_ - 1));
    const std::uint64_t total = footprint(size);
    if (cap_ - (pos_ - read_cache_) < total) {
      read_cache_ = h_->read.load(std::memory_order_acquire);
      if (cap_ - (pos_ - read_cache_) < total) return nullptr;
    }
    if (need > tail_room) {  // pad to the end, start again at offset 0
      const FrameHeader pad{static_cast<std::uint32_t>(tail_room - sizeof(FrameHeader)), kPadKind, 0};
      std::memcpy(data_ + (pos_ & (cap_ - 1)), &pad, sizeof pad);
      pos_ += tail_room;
    }
    return data_ + (pos_ & (cap_ - 1)) + sizeof(FrameHeader);
  }

  // commit — the frame reserved last is complete with `size` payload bytes
  // (at most what was reserved).
  void commit(std::uint32_t size, std::uint16_t kind, std::uint16_t flags = 0) noexcept {
    const FrameHeader fh{size, kind, flags};
    std::memcpy(data_ + (pos_ & (cap_ - 1)), &fh, sizeof fh);
    pos_ += frame_bytes(size);
  }

  // try_write — reserve, copy and commit in one (not published yet).
  bool try_write(std::uint16_t kind, const void* payload, std::uint32_t size, std::uint16_t flags = 0) noexcept {
    std::byte* p = try_reserve(size);
    if (!p) return false;
    if (size) std::memcpy(p, payload, size);
    commit(size, kind, flags);
    return true;
  }

  // unpublished — bytes committed since the last publish().
  std::uint64_t unpublished() const noexcept { return pos_ - published_; }
  // depth — bytes published and not yet released by the consumer (a
  // snapshot, for stats).
  std::uint64_t depth() const noexcept {
    return h_ ? published_ - h_->read.load(std::memory_order_relaxed) : 0;
  }

  // publish — makes every committed frame visible to the consumer (one
  // release store). Returns false if there was nothing to publish.
  bool publish() noexcept {
    if (pos_ == published_) return false;
    h_->write.store(pos_, std::memory_order_release);
    published_ = pos_;
    return true;
  }

  // has_room — would try_reserve(size) succeed now? Refreshes the cached index.
  bool has_room(std::uint32_t size) noexcept {
    read_cache_ = h_->read.load(std::memory_order_acquire);
    return cap_ - (pos_ - read_cache_) >= footprint(size);
  }

  // announce_waiting — the producer is about to sleep until the consumer
  // frees space. Returns true if it must not sleep: room for `size` appeared
  // after the flag was raised (the flag is withdrawn then).
  bool announce_waiting(std::uint32_t size) noexcept {
    h_->producer_waiting.store(1, std::memory_order_seq_cst);  // Dekker: flag, then index
    read_cache_ = h_->read.load(std::memory_order_seq_cst);
    if (cap_ - (pos_ - read_cache_) >= footprint(size)) {
      h_->producer_waiting.store(0, std::memory_order_relaxed);
      return true;
    }
    return false;
  }

  RingHeader* header() const noexcept { return h_; }

 private:
  // footprint — the bytes a frame of `size` takes from here: the frame, plus
  // the pad before it when it does not fit before the end.
  std::uint64_t footprint(std::uint32_t size) const noexcept {
    const std::uint64_t need = frame_bytes(size);
    const std::uint64_t tail_room = cap_ - (pos_ & (cap_ - 1));
    return need <= tail_room ? need : tail_room + need;
  }

  RingHeader* h_ = nullptr;
  std::byte* data_ = nullptr;
  std::uint64_t cap_ = 0;
  std::uint64_t pos_ = 0;         // end of committed frames (private)
  std::uint64_t published_ = 0;   // last value stored to h_->write
  std::uint64_t read_cache_ = 0;  // last value loaded from h_->read
};

// Frame — a frame as the consumer sees it; `data` stays valid until pop().
struct Frame {
  const std::byte* data;
  std::uint32_t size;
  std::uint16_t kind;
  std::uint16_t flags;
};

// RingReader — the consumer's side; one per ring, used by one thread at a time.
class RingReader {
 public:
  RingReader() = default;
  explicit RingReader(RingHeader* h) noexcept { attach(h); }

  void attach(RingHeader* h) noexcept {
    assert(h->magic == kRingMagic && "not a corelet ring");
    h_ = h;
    data_ = ring_data(h);
    cap_ = h->capacity;
    pos_ = released_ = h->read.load(std::memory_order_relaxed);
    write_cache_ = h->write.load(std::memory_order_acquire);
  }
  bool attached() const noexcept { return h_ != nullptr; }

  // peek — the next published frame, if any. Pad frames are skipped.
  bool peek(Frame& f) noexcept {
    for (;;) {
      if (pos_ == write_cache_) {
        write_cache_ = h_->write.load(std::memory_order_acquire);
        if (pos_ == write_cache_) return false;
      }
      FrameHeader fh;
      const std::uint64_t off = pos_ & (cap_ - 1);
      std::memcpy(&fh, data_ + off, sizeof fh);
      if (fh.kind == kPadKind) {
        pos_ += cap_ - off;
        continue;
      }
      assert(frame_bytes(fh.size) <= cap_ - off && "corrupt ring frame");
      f = Frame{data_ + off + sizeof fh, fh.size, fh.kind, fh.flags};
      return true;
    }
  }

  // pop — done with the frame peek() returned. Its space is released to the
  // producer at the next release() (automatically once a quarter of the ring
  // is pending, so a long drain never starves the producer).
  void pop(const Frame& f) noexcept {
    pos_ += frame_bytes(f.size);
    if (pos_ - released_ >= cap_ / 4) release();
  }

  // empty — nothing published is left to read (loads the shared index).
  // depth — bytes published by the producer and not yet released here (a
  // snapshot, for stats).
  std::uint64_t depth() const noexcept {
    return h_ ? h_->write.load(std::memory_order_relaxed) - released_ : 0;
  }
  bool empty() noexcept {
    if (pos_ != write_cache_) return false;
    write_cache_ = h_->write.load(std::memory_order_acquire);
    return pos_ == write_cache_;
  }

  // release — gives the space of every popped frame back (one release store).
  void release() noexcept {
    if (pos_ == released_) return;
    h_->read.store(pos_, std::memory_order_seq_cst);  // release, and Dekker with announce_waiting
    released_ = pos_;
    unchecked_ = true;
  }

  // release_and_check_waiter — release(), then report (and clear) a producer
  // sleeping until space is freed: the caller must wake it. Only space freed
  // since the last check can help a waiting producer, so without any the flag
  // is left alone.
  bool release_and_check_waiter() noexcept {
    release();
    if (!unchecked_) return false;
    unchecked_ = false;
    if (h_->producer_waiting.load(std::memory_order_seq_cst) == 0) return false;  // Dekker: index, then flag
    return h_->producer_waiting.exchange(0, std::memory_order_relaxed) != 0;
  }

  RingHeader* header() const noexcept { return h_; }

 private:
  RingHeader* h_ = nullptr;
  const std::byte* data_ = nullptr;
  std::uint64_t cap_ = 0;
  std::uint64_t pos_ = 0;          // end of popped frames (private)
  std::uint64_t released_ = 0;     // last value stored to h_->read
  std::uint64_t write_cache_ = 0;  // last value loaded from h_->write
  bool unchecked_ = false;         // released since release_and_check_waiter looked
};

}  // namespace corelet::ipc
