// corelet/sched/net.hpp: addresses, TCP and Unix-domain sockets.

#include <corelet/sched/blocking.hpp>
#include <corelet/sched/net.hpp>


#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <memory>
#include <system_error>

namespace corelet {
namespace {

[[noreturn]] void fail(int err, const std::string& what) {
  throw std::system_error(err, std::system_category(), what);
}

[[noreturn]] void bad_address(std::string_view text, const char* why) {
  fail(EINVAL, "corelet::SocketAddress::parse(\"" + std::string(text) + "\"): " + why);
}

std::uint16_t parse_port(std::string_view text, std::string_view port) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
  if (port.empty() || ec != std::errc() || p != port.data() + port.size() || v > 65535)
    bad_address(text, "the port must be a number from 0 to 65535");
  return static_cast<std::uint16_t>(v);
}

void set_flag(int fd, int level, int opt, bool on, const char* what) {
  const int v = on ? 1 : 0;
  if (::setsockopt(fd, level, opt, &v, sizeof v) < 0) fail(errno, what);
}

}  // namespace

// ---------------------------------------------------------------------------
// SocketAddress

SocketAddress SocketAddress::ipv4(std::string_view ip, std::uint16_t port) {
  SocketAddress a;
  auto* sin = reinterpret_cast<sockaddr_in*>(&a.storage_);
  sin->sin_family = AF_INET;
  sin->sin_port = htons(port);
  const std::string s(ip);
  if (s.empty() || s == "*") {
    sin->sin_addr.s_addr = htonl(INADDR_ANY);
  } else if (::inet_pton(AF_INET, s.c_str(), &sin->sin_addr) != 1) {
    fail(EINVAL, "corelet::SocketAddress::ipv4: \"" + s + "\" is not an IPv4 address");
  }
  a.len_ = sizeof(sockaddr_in);
  return a;
}

SocketAddress SocketAddress::ipv6(std::string_view ip, std::uint16_t port) {
  SocketAddress a;
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.storage_);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  std::string s(ip);
  // A zone ("fe80::1%eth0") names the interface.
  if (auto pct = s.find('%'); pct != std::string::npos) {
    const std::string zone = s.substr(pct + 1);
    s.resize(pct);
    sin6->sin6_scope_id = ::if_nametoindex(zone.c_str());
    if (sin6->sin6_scope_id == 0)
      fail(EINVAL, "corelet::SocketAddress::ipv6: \"" + zone + "\" is not a network interface");
  }
  if (::inet_pton(AF_INET6, s.c_str(), &sin6->sin6_addr) != 1)
    fail(EINVAL, "corelet::SocketAddress::ipv6: \"" + s + "\" is not an IPv6 address");
  a.len_ = sizeof(sockaddr_in6);
  return a;
}

SocketAddress SocketAddress::unix_path(std::string_view path) {
  SocketAddress a;
  auto* sun = reinterpret_cast<sockaddr_un*>(&a.storage_);
  if (path.empty()) fail(EINVAL, "corelet::SocketAddress::unix_path: the path is empty");
  if (path.size() >= sizeof sun->sun_path)
    fail(ENAMETOOLONG, "corelet::SocketAddress::unix_path: \"" + std::string(path) + "\" is longer than " +
                           std::to_string(sizeof sun->sun_path - 1) + " bytes");
  if (path.find('\0') != std::string_view::npos)
    fail(EINVAL, "corelet::SocketAddress::unix_path: the path contains a NUL byte");
  sun->sun_family = AF_UNIX;
  std::memcpy(sun->sun_path, path.data(), path.size());
  if (path[0] == '@') sun->sun_path[0] = '\0';  // abstract: no NUL terminator counted
  a.len_ = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + (path[0] == '@' ? 0 : 1));
  return a;
}

SocketAddress SocketAddress::parse(std::string_view text) {
  if (text.empty()) bad_address(text, "empty");
  if (text.substr(0, 5) == "unix:") return unix_path(text.substr(5));
  if (text[0] == '/' || text[0] == '@' || text[0] == '.') return unix_path(text);
  if (text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      bad_address(text, "expected [IPv6]:port");
    try {
      return ipv6(text.substr(1, close - 1), parse_port(text, text.substr(close + 2)));
    } catch (const std::system_error&) {
      bad_address(text, "not an IPv6 address in brackets");
    }
  }
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) bad_address(text, "expected host:port, [IPv6]:port or a Unix socket path");
  if (text.find(':') != colon) bad_address(text, "an IPv6 address needs brackets: [addr]:port");
  const std::uint16_t port = parse_port(text, text.substr(colon + 1));
  try {
    return ipv4(text.substr(0, colon), port);
  } catch (const std::system_error&) {
    bad_address(text, "not an IPv4 address (names are looked up by SocketAddress::resolve)");
  }
}

SocketAddress SocketAddress::from(const sockaddr* sa, socklen_t len) {
  SocketAddress a;
  if (!sa || len > static_cast<socklen_t>(sizeof a.storage_))
    fail(EINVAL, "corelet::SocketAddress::from: bad address length");
  std::memcpy(&a.storage_, sa, len);
  a.len_ = len;
  return a;
}

std::vector<SocketAddress> SocketAddress::resolve(const std::string& host, std::uint16_t port) {
  struct Lookup {
    int rc = 0;
    int err = 0;  // errno of the helper thread, for EAI_SYSTEM
    std::vector<SocketAddress> addrs;
  };
  // Everything happens on the helper, the list is freed there: a cancelled
  // caller still waits for getaddrinfo (it cannot be interrupted), but
  // nothing leaks and errno is read on the thread that set it.
  Lookup r = run_blocking([host, service = std::to_string(port)] {
    Lookup out;
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* list = nullptr;
    out.rc = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &list);
    out.err = errno;
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(list, ::freeaddrinfo);
    if (out.rc == 0)
      for (addrinfo* ai = list; ai; ai = ai->ai_next) out.addrs.push_back(from(ai->ai_addr, ai->ai_addrlen));
    return out;
  });
  if (r.rc != 0) {
    // The errno says what kind of failure: a temporary one (EAGAIN) is worth
    // retrying, a name that does not exist (EHOSTUNREACH) is not.
    const int err = r.rc == EAI_SYSTEM ? r.err : r.rc == EAI_AGAIN ? EAGAIN : r.rc == EAI_MEMORY ? ENOMEM : EHOSTUNREACH;
    fail(err, "corelet::SocketAddress::resolve(\"" + host + "\"): " + ::gai_strerror(r.rc));
  }
  if (r.addrs.empty()) fail(EHOSTUNREACH, "corelet::SocketAddress::resolve(\"" + host + "\"): no address");
  return std::move(r.addrs);
}

std::uint16_t SocketAddress::port() const noexcept {
  if (family() == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&storage_)->sin_port);
  if (family() == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_port);
  return 0;
}

std::string SocketAddress::to_string() const {
  char buf[INET6_ADDRSTRLEN] = {};
  switch (family()) {
    case AF_INET:
      ::inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&storage_)->sin_addr, buf, sizeof buf);
      return std::string(buf) + ":" + std::to_string(port());
    case AF_INET6:
      ::inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&storage_)->sin6_addr, buf, sizeof buf);
      // (appends, not operator+ on a literal: GCC 12 warns falsely on that, -Wrestrict)
      return std::string("[").append(buf).append("]:").append(std::to_string(port()));
    case AF_UNIX: {
      const auto* sun = reinterpret_cast<const sockaddr_un*>(&storage_);
      const std::size_t n = len_ > offsetof(sockaddr_un, sun_path) ? len_ - offsetof(sockaddr_un, sun_path) : 0;
      if (n == 0) return "unix:(unnamed)";
      if (sun->sun_path[0] == '\0') return std::string("@").append(sun->sun_path + 1, n - 1);
      return std::string(sun->sun_path, ::strnlen(sun->sun_path, n));
    }
    default: return "(no address)";
  }
}

bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept {
  return a.len_ == b.len_ && std::memcmp(&a.storage_, &b.storage_, a.len_) == 0;
}

// ---------------------------------------------------------------------------
// Socket, Stream

namespace detail {

SocketAddress Socket::local_address() const {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (::getsockname(checked_fd("corelet::local_address"), reinterpret_cast<sockaddr*>(&ss), &len) < 0)
    fail(errno, "corelet::local_address");
  return SocketAddress::from(reinterpret_cast<sockaddr*>(&ss), len);
}

SocketAddress Stream::peer_address() const {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (::getpeername(checked_fd("corelet::peer_address"), reinterpret_cast<sockaddr*>(&ss), &len) < 0)
    fail(errno, "corelet::peer_address");
  return SocketAddress::from(reinterpret_cast<sockaddr*>(&ss), len);
}

std::size_t Stream::read(void* buf, std::size_t n, io::Timeout t) {
  return io::recv(checked_fd("corelet::io::recv"), buf, n, 0, t);
}

bool Stream::read_exact(void* buf, std::size_t n, io::Timeout t) {
  const Clock::time_point d = t.deadline();
  auto* p = static_cast<char*>(buf);
  std::size_t got = 0;
  while (got < n) {
    const std::size_t k = io::recv(checked_fd("corelet::io::recv"), p + got, n - got, 0, io::Timeout::until(d));
    if (k == 0) {
      if (got == 0) return false;
      fail(ENODATA, "corelet::read_exact: the stream ended after " + std::to_string(got) + " of " +
                        std::to_string(n) + " bytes");
    }
    got += k;
  }
  return true;
}

std::size_t Stream::write(const void* buf, std::size_t n, io::Timeout t) {
  return io::send(checked_fd("corelet::io::send"), buf, n, 0, t);
}

void Stream::write_all(const void* buf, std::size_t n, io::Timeout t) {
  const Clock::time_point d = t.deadline();
  const auto* p = static_cast<const char*>(buf);
  std::size_t done = 0;
  while (done < n) done += io::send(checked_fd("corelet::io::send"), p + done, n - done, 0, io::Timeout::until(d));
}

void Stream::shutdown_write() { io::shutdown(checked_fd("corelet::io::shutdown"), SHUT_WR); }

}  // namespace detail

// ---------------------------------------------------------------------------
// Connecting

namespace {

template <class S>
S connect_to(const SocketAddress& addr, io::Timeout t) {
  if (addr.empty()) fail(EINVAL, "corelet::io::connect: empty address");
  S s(io::socket(addr.family(), SOCK_STREAM));
  io::connect(s.fd(), addr.data(), addr.size(), t);
  return s;
}

}  // namespace

TcpStream TcpStream::connect(const SocketAddress& addr, io::Timeout t) {
  if (addr.family() != AF_INET && addr.family() != AF_INET6)
    fail(EAFNOSUPPORT, "corelet::TcpStream::connect: " + addr.to_string() + " is not an IP address");
  TcpStream s = connect_to<TcpStream>(addr, t);
  s.set_nodelay(true);  // request/response traffic: no Nagle delay
  return s;
}

TcpStream TcpStream::connect(std::string_view host_port, io::Timeout t) {
  const Clock::time_point d = t.deadline();
  const auto colon = host_port.rfind(':');
  const bool bracketed = !host_port.empty() && host_port[0] == '[';
  if (bracketed || colon == std::string_view::npos) return connect(SocketAddress::parse(host_port), t);
  const std::string host(host_port.substr(0, colon));
  const std::uint16_t port = parse_port(host_port, host_port.substr(colon + 1));
  in_addr probe;
  if (::inet_pton(AF_INET, host.c_str(), &probe) == 1) return connect(SocketAddress::ipv4(host, port), t);
  // A name: try its addresses in the resolver's order; report the last error.
  const std::vector<SocketAddress> addrs = SocketAddress::resolve(host, port);
  if (primitive::expired(d)) fail(ETIMEDOUT, "corelet::TcpStream::connect(\"" + std::string(host_port) + "\"): name lookup");
  std::system_error last(EHOSTUNREACH, std::system_category(), "corelet::TcpStream::connect");
  for (const SocketAddress& a : addrs) {
    try {
      return connect(a, io::Timeout::until(d));
    } catch (const std::system_error& e) {
      if (e.code() == std::errc::timed_out) throw;
      last = e;
    }
  }
  throw last;
}

void TcpStream::set_nodelay(bool on) {
  set_flag(checked_fd("corelet::TcpStream::set_nodelay"), IPPROTO_TCP, TCP_NODELAY, on,
           "corelet::TcpStream::set_nodelay");
}

UnixStream UnixStream::connect(const SocketAddress& addr, io::Timeout t) {
  if (addr.family() != AF_UNIX)
    fail(EAFNOSUPPORT, "corelet::UnixStream::connect: " + addr.to_string() + " is not a Unix socket address");
  return connect_to<UnixStream>(addr, t);
}

UnixStream UnixStream::connect(std::string_view path, io::Timeout t) {
  return connect(SocketAddress::unix_path(path), t);
}

std::pair<UnixStream, UnixStream> UnixStream::pair() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
    fail(errno, "corelet::UnixStream::pair");
  return {UnixStream(fds[0]), UnixStream(fds[1])};
}

// ---------------------------------------------------------------------------
// Listening

TcpListener TcpListener::bind(const SocketAddress& addr, const ListenOptions& opts) {
  if (addr.family() != AF_INET && addr.family() != AF_INET6)
    fail(EAFNOSUPPORT, "corelet::TcpListener::bind: " + addr.to_string() + " is not an IP address");
  TcpListener l(io::socket(addr.family(), SOCK_STREAM));
  if (opts.reuse_address) set_flag(l.fd(), SOL_SOCKET, SO_REUSEADDR, true, "corelet::TcpListener::bind: SO_REUSEADDR");
  if (opts.reuse_port) set_flag(l.fd(), SOL_SOCKET, SO_REUSEPORT, true, "corelet::TcpListener::bind: SO_REUSEPORT");
  if (addr.family() == AF_INET6)
    set_flag(l.fd(), IPPROTO_IPV6, IPV6_V6ONLY, opts.v6_only, "corelet::TcpListener::bind: IPV6_V6ONLY");
  if (::bind(l.fd(), addr.data(), addr.size()) < 0) fail(errno, "corelet::TcpListener::bind(" + addr.to_string() + ")");
  io::listen(l.fd(), opts.backlog);
  return l;
}

TcpListener TcpListener::bind(std::string_view addr, const ListenOptions& opts) {
  return bind(SocketAddress::parse(addr), opts);
}

TcpStream TcpListener::accept(io::Timeout t) { return accept(nullptr, t); }

TcpStream TcpListener::accept(SocketAddress* peer, io::Timeout t) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  TcpStream s(io::accept(checked_fd("corelet::io::accept"), reinterpret_cast<sockaddr*>(&ss), &len, t));
  s.set_nodelay(true);
  if (peer) *peer = SocketAddress::from(reinterpret_cast<sockaddr*>(&ss), len);
  return s;
}

UnixListener::UnixListener(UnixListener&& o) noexcept
    : Socket(std::move(o)), path_(std::exchange(o.path_, std::string())) {}

UnixListener& UnixListener::operator=(UnixListener&& o) noexcept {
  if (this != &o) {
    remove_path();
    Socket::operator=(std::move(o));
    path_ = std::exchange(o.path_, std::string());
  }
  return *this;
}

UnixListener::~UnixListener() { remove_path(); }

void UnixListener::remove_path() noexcept {
  if (!path_.empty()) ::unlink(path_.c_str());  // also after a close() through OwnedFd
  path_.clear();
}

void UnixListener::close() {
  remove_path();
  OwnedFd::close();
}

UnixListener UnixListener::bind(const SocketAddress& addr, const ListenOptions& opts) {
  if (addr.family() != AF_UNIX)
    fail(EAFNOSUPPORT, "corelet::UnixListener::bind: " + addr.to_string() + " is not a Unix socket address");
  const int fd = io::socket(AF_UNIX, SOCK_STREAM);
  Socket guard(fd);  // closes fd if anything below throws
  if (::bind(fd, addr.data(), addr.size()) < 0) fail(errno, "corelet::UnixListener::bind(" + addr.to_string() + ")");
  const std::string name = addr.to_string();
  std::string path = name[0] == '@' ? std::string() : name;
  try {
    io::listen(fd, opts.backlog);
  } catch (...) {
    if (!path.empty()) ::unlink(path.c_str());
    throw;
  }
  return UnixListener(guard.release(), std::move(path));
}

UnixListener UnixListener::bind(std::string_view path, const ListenOptions& opts) {
  return bind(path.substr(0, 5) == "unix:" ? SocketAddress::parse(path) : SocketAddress::unix_path(path), opts);
}

UnixStream UnixListener::accept(io::Timeout t) {
  return UnixStream(io::accept(checked_fd("corelet::io::accept"), nullptr, nullptr, t));
}

}  // namespace corelet
