// macro_kernels.hpp — the seeds' CPU-bound macro benchmarks as plain C++
// kernels, shared by the sequential / std::thread / corelet-worker drivers so
// that all three do exactly the same work.
//
//   primes  ThreadingX (seed 000): "calculate prime numbers up to 400000 using
//           a basic sieve ... four times, in four sub-processes".
//   md5     ThreadingX (seed 000): "four processes are created, each of
//           which:" — the seed's text stops there, so the per-process work is
//           ours: each unit hashes 64 distinct 1 MiB blocks (the shape of
//           corelet's examples/md5_files: 64 files of 1 MiB), 4 units.
//   count   Beazley (seed 002): `def count(n): while n > 0: n -= 1`, run
//           twice (sequential) or in two threads/processes.
//
// Link with -lcrypto (OpenSSL 3).
#pragma once

#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <vector>

namespace corelet_perf {

// ---- primes ---------------------------------------------------------------

inline constexpr std::size_t kPrimesLimit = 400'000;
inline constexpr int kPrimesUnits = 4;

// Number of primes <= limit by the basic sieve of Eratosthenes: one flag per
// number (bytes, not vector<bool>, so the inner loop is a plain store),
// crossing out from i*i for every i with i*i <= limit. No wheel, no
// segmenting: the seed asks for the basic algorithm.
inline std::size_t count_primes_sieve(std::size_t limit) {
  if (limit < 2) return 0;
  std::vector<unsigned char> composite(limit + 1, 0);
  for (std::size_t i = 2; i * i <= limit; ++i)
    if (!composite[i])
      for (std::size_t j = i * i; j <= limit; j += i) composite[j] = 1;
  std::size_t n = 0;
  for (std::size_t i = 2; i <= limit; ++i) n += !composite[i];
  return n;
}

// One unit of the primes workload; returns the count (33,860 for 400,000).
inline std::uint64_t primes_work(int /*unit*/) { return count_primes_sieve(kPrimesLimit); }

// ---- count ----------------------------------------------------------------

inline constexpr int kCountUnits = 2;

// Beazley's count(n). Without a barrier the optimiser replaces the loop by
// `n = 0` (or deletes it). The empty asm takes n in a register and claims to
// modify it, so every iteration must really happen, yet no memory traffic is
// added (a `volatile` counter would turn each step into a load + store and
// measure store-forwarding latency instead). The loop is sub/jnz: ~1 cycle.
inline void count_down(std::uint64_t n) {
  while (n > 0) {
    n -= 1;
#if defined(__GNUC__)
    asm volatile("" : "+r"(n));
#else
    volatile std::uint64_t sink = n;
    n = sink;
#endif
  }
}

// ---- md5 ------------------------------------------------------------------

inline constexpr int kMd5Units = 4;
inline constexpr int kMd5BlocksPerUnit = 64;
inline constexpr std::size_t kMd5BlockBytes = 1 << 20;

// MD5 through OpenSSL's EVP interface. The algorithm is fetched once and
// shared (EVP_MD objects are immutable and thread-safe): an implicit fetch by
// EVP_md5() on every init takes a lock on the provider store, which would be
// measured as contention between threads.
inline const EVP_MD* md5_algorithm() {
  static const std::unique_ptr<EVP_MD, decltype(&EVP_MD_free)> md(EVP_MD_fetch(nullptr, "MD5", nullptr), EVP_MD_free);
  if (!md) throw std::runtime_error("EVP_MD_fetch(MD5) failed");
  return md.get();
}

inline std::array<unsigned char, 16> md5_of(const void* data, std::size_t len) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> ctx(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  std::array<unsigned char, 16> out{};
  unsigned int n = 0;
  if (!ctx || EVP_DigestInit_ex2(ctx.get(), md5_algorithm(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data, len) != 1 || EVP_DigestFinal_ex(ctx.get(), out.data(), &n) != 1 || n != out.size())
    throw std::runtime_error("EVP md5 failed");
  return out;
}

// One unit of the md5 workload: kMd5BlocksPerUnit blocks of 1 MiB, each its
// own digest (like separate files). Content is pseudo-random, seeded by the
// unit, and each block is stamped with its index so no two digests repeat.
// Returns the digests folded into 64 bits so the work cannot be discarded
// and runs can be compared for equality.
inline std::uint64_t md5_work(int unit) {
  std::vector<unsigned char> block(kMd5BlockBytes);
  std::uint64_t x = 0x9e3779b97f4a7c15ull ^ static_cast<std::uint64_t>(unit);
  for (unsigned char& b : block) {  // xorshift64: cheap next to the hashing
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    b = static_cast<unsigned char>(x);
  }
  std::uint64_t fold = 0;
  for (std::uint64_t i = 0; i < kMd5BlocksPerUnit; ++i) {
    std::memcpy(block.data(), &i, sizeof i);
    const auto d = md5_of(block.data(), block.size());
    std::uint64_t w;
    std::memcpy(&w, d.data(), sizeof w);
    fold ^= w + i;
  }
  return fold;
}

}  // namespace corelet_perf
