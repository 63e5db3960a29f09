#pragma once
// corelet/sched/net.hpp — TCP and Unix-domain sockets for tasklets.
//
//   auto listener = corelet::TcpListener::bind("127.0.0.1:8080");
//   for (;;) {
//     corelet::TcpStream conn = listener.accept();
//     corelet::spawn([c = std::move(conn)]() mutable {
//       char buf[4096];
//       while (std::size_t n = c.read(buf, sizeof buf)) c.write_all(buf, n);
//     }).detach();
//   }
//
// Every blocking call parks only the calling tasklet and takes a timeout (see
// <corelet/sched/io.hpp> for the rules on timeouts, cancellation and errors:
// std::system_error with the errno and the call's name). Objects own their fd
// and close it when destroyed; they move, they do not copy. Closing a socket
// makes the calls other tasklets are still making on it fail with EBADF.

#include <corelet/sched/io.hpp>

#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace corelet {

// SocketAddress — an IPv4, IPv6 or Unix-domain address.
// parse() accepts "1.2.3.4:80", "[::1]:80", ":80" (every IPv4 interface),
// "[::]:80", "/path/to/socket" or "unix:relative/path", and "@name" for
// Linux's abstract namespace. Names are not looked up: see resolve().
class SocketAddress {
 public:
  SocketAddress() = default;
  // Throws std::system_error(EINVAL) naming the text and what was expected.
  static SocketAddress parse(std::string_view text);
  static SocketAddress ipv4(std::string_view ip, std::uint16_t port);
  static SocketAddress ipv6(std::string_view ip, std::uint16_t port);
  static SocketAddress unix_path(std::string_view path);  // "@name": abstract
  static SocketAddress from(const sockaddr* sa, socklen_t len);
  // getaddrinfo on a run_blocking helper (it may block on DNS): the
  // addresses of host, in the resolver's order. Throws std::system_error
  // (EAI_* text in what()) if there are none.
  static std::vector<SocketAddress> resolve(const std::string& host, std::uint16_t port);

  int family() const noexcept { return storage_.ss_family; }  // AF_UNSPEC when empty
  bool empty() const noexcept { return family() == AF_UNSPEC; }
  const sockaddr* data() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t size() const noexcept { return len_; }
  std::uint16_t port() const noexcept;  // 0 for Unix addresses
  std::string to_string() const;        // in parse()'s syntax
  friend bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept;

 private:
  sockaddr_storage storage_{};
  socklen_t len_ = 0;
};

namespace detail {
// An owned socket fd.
class Socket : public io::OwnedFd {
 public:
  using OwnedFd::OwnedFd;
  SocketAddress local_address() const;

 protected:
  int checked_fd(const char* call) const { return OwnedFd::checked_fd(call, "socket"); }
};

// A connected byte stream (TCP or Unix).
class Stream : public Socket {
 public:
  using Socket::Socket;
  // Up to n bytes; 0 at end of stream.
  std::size_t read(void* buf, std::size_t n, io::Timeout t = io::no_timeout);
  // Exactly n bytes: false if the stream ended before the first one; throws
  // std::system_error(ENODATA) if it ended in the middle. The timeout bounds
  // the whole call.
  bool read_exact(void* buf, std::size_t n, io::Timeout t = io::no_timeout);
  // Up to n bytes written (at least 1).
  std::size_t write(const void* buf, std::size_t n, io::Timeout t = io::no_timeout);
  // All n bytes; the timeout bounds the whole call.
  void write_all(const void* buf, std::size_t n, io::Timeout t = io::no_timeout);
  void write_all(std::string_view s, io::Timeout t = io::no_timeout) { write_all(s.data(), s.size(), t); }
  void shutdown_write();  // the peer reads end of stream
  SocketAddress peer_address() const;
};
}  // namespace detail

class TcpStream : public detail::Stream {
 public:
  using Stream::Stream;
  // Connects to addr; "host:port" texts are looked up with resolve() and each
  // address is tried in turn. The timeout bounds the whole call.
  static TcpStream connect(const SocketAddress& addr, io::Timeout t = io::no_timeout);
  static TcpStream connect(std::string_view host_port, io::Timeout t = io::no_timeout);
  void set_nodelay(bool on);
};

class UnixStream : public detail::Stream {
 public:
  using Stream::Stream;
  static UnixStream connect(const SocketAddress& addr, io::Timeout t = io::no_timeout);
  static UnixStream connect(std::string_view path, io::Timeout t = io::no_timeout);
  // A connected pair (socketpair).
  static std::pair<UnixStream, UnixStream> pair();
};

struct ListenOptions {
  int backlog = SOMAXCONN;
  bool reuse_address = true;  // TCP: SO_REUSEADDR
  bool reuse_port = false;    // TCP: SO_REUSEPORT, so that every per-core scheduler can accept on one port
  bool v6_only = false;       // TCP over IPv6: IPV6_V6ONLY
};

class TcpListener : public detail::Socket {
 public:
  TcpListener() = default;
  // addr with port 0 takes a free port: see local_address().
  static TcpListener bind(const SocketAddress& addr, const ListenOptions& opts = {});
  static TcpListener bind(std::string_view addr, const ListenOptions& opts = {});
  TcpStream accept(io::Timeout t = io::no_timeout);
  TcpStream accept(SocketAddress* peer, io::Timeout t = io::no_timeout);

 private:
  explicit TcpListener(int fd) noexcept : Socket(fd) {}
};

class UnixListener : public detail::Socket {
 public:
  UnixListener() = default;
  UnixListener(UnixListener&& o) noexcept;
  UnixListener& operator=(UnixListener&& o) noexcept;
  ~UnixListener();
  // Binds to a path (EADDRINUSE if it exists) or an "@abstract" name. The
  // listener removes its path when closed or destroyed.
  static UnixListener bind(const SocketAddress& addr, const ListenOptions& opts = {});
  static UnixListener bind(std::string_view path, const ListenOptions& opts = {});
  UnixStream accept(io::Timeout t = io::no_timeout);
  void close();

 private:
  explicit UnixListener(int fd, std::string path) noexcept : Socket(fd), path_(std::move(path)) {}
  void remove_path() noexcept;
  std::string path_;  // to unlink; empty for abstract names
};

}  // namespace corelet
