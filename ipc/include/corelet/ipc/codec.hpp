#pragma once
// corelet/ipc/codec.hpp — how values cross between workers.
//
// Trivially copyable types are copied byte for byte. Everything else
// (std::string, std::vector, std::map, std::optional, user types with a
// cereal `serialize` function) goes through cereal's binary archive, so a type
// is made transferable the way cereal documents:
//
//   struct Point { std::string name; std::vector<double> xs;
//                  template <class A> void serialize(A& a) { a(name, xs); } };
//
// Include the cereal/types/*.hpp header of each standard container you send
// (<corelet/ipc/codec.hpp> includes those for string, vector, map,
// unordered_map, optional, pair, tuple, array, variant and memory).
//
// The encoding is the in-memory one of this build (same binary on both ends,
// as every worker is a fork of the same program).

#include <cereal/archives/binary.hpp>
#include <cereal/types/array.hpp>
#include <cereal/types/map.hpp>
#include <cereal/types/memory.hpp>
#include <cereal/types/optional.hpp>
#include <cereal/types/string.hpp>
#include <cereal/types/tuple.hpp>
#include <cereal/types/unordered_map.hpp>
#include <cereal/types/utility.hpp>
#include <cereal/types/variant.hpp>
#include <cereal/types/vector.hpp>

#include <cstddef>
#include <cstring>
#include <istream>
#include <ostream>
#include <stdexcept>
#include <streambuf>
#include <string>
#include <string_view>
#include <type_traits>

namespace corelet::ipc {

// DecodeError — a message did not decode (truncated, or not what the
// receiving side expected).
class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {

// Appends everything written to a std::string, unbuffered, so direct
// appends and cereal output interleave in order.
class StringSink final : public std::streambuf {
 public:
  explicit StringSink(std::string& s) noexcept : s_(s) {}

 protected:
  std::streamsize xsputn(const char* p, std::streamsize n) override {
    s_.append(p, static_cast<std::size_t>(n));
    return n;
  }
  int_type overflow(int_type c) override {
    if (!traits_type::eq_int_type(c, traits_type::eof())) s_.push_back(traits_type::to_char_type(c));
    return traits_type::not_eof(c);
  }

 private:
  std::string& s_;
};

// Reads from a span of bytes; pos() says how far cereal got.
class SpanSource final : public std::streambuf {
 public:
  SpanSource(const char* b, const char* e) noexcept {
    char* p = const_cast<char*>(b);  // get area only: never written through
    setg(p, p, const_cast<char*>(e));
  }
  const char* pos() const noexcept { return gptr(); }
};

}  // namespace detail

// Encoder — builds a message in a std::string.
class Encoder {
 public:
  explicit Encoder(std::string& out) noexcept : out_(out) {}

  template <class T>
  void put(const T& v) {
    if constexpr (std::is_trivially_copyable_v<T>) {
      out_.append(reinterpret_cast<const char*>(&v), sizeof(T));
    } else {
      detail::StringSink sink(out_);
      std::ostream os(&sink);
      cereal::BinaryOutputArchive ar(os);
      ar(v);
    }
  }
  void put_bytes(const void* p, std::size_t n) { out_.append(static_cast<const char*>(p), n); }
  // put_string — a length-prefixed string (u32 length, bytes), without cereal.
  void put_string(std::string_view s) {
    put(static_cast<std::uint32_t>(s.size()));
    out_.append(s.data(), s.size());
  }
  std::string& buffer() noexcept { return out_; }

 private:
  std::string& out_;
};

// Decoder — reads a message made by Encoder, in the same order.
class Decoder {
 public:
  Decoder(const void* p, std::size_t n) noexcept : p_(static_cast<const char*>(p)), end_(p_ + n) {}

  template <class T>
  T get() {
    if constexpr (std::is_trivially_copyable_v<T>) {
      T v;
      std::memcpy(static_cast<void*>(&v), take(sizeof(T)), sizeof(T));
      return v;
    } else {
      static_assert(std::is_default_constructible_v<T>,
                    "corelet: a type decoded with cereal must be default-constructible");
      detail::SpanSource src(p_, end_);
      std::istream is(&src);
      T v;
      try {
        cereal::BinaryInputArchive ar(is);
        ar(v);
      } catch (const cereal::Exception& e) {
        throw DecodeError(std::string("corelet: message does not decode: ") + e.what());
      }
      p_ = src.pos();
      return v;
    }
  }
  std::string_view get_string() {
    const auto n = get<std::uint32_t>();
    return {take(n), n};
  }
  // take — the next n bytes, in place (DecodeError if fewer are left).
  const char* take(std::size_t n) {
    need(n);
    const char* p = p_;
    p_ += n;
    return p;
  }
  const char* position() const noexcept { return p_; }
  std::size_t remaining() const noexcept { return static_cast<std::size_t>(end_ - p_); }

 private:
  void need(std::size_t n) const {
    if (static_cast<std::size_t>(end_ - p_) < n) throw DecodeError("corelet: message is truncated");
  }
  const char* p_;
  const char* end_;
};

}  // namespace corelet::ipc
