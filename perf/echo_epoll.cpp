// echo_epoll — the plain epoll echo server of the echo comparison: what a
// careful C programmer writes without a runtime. One thread, edge-triggered
// epoll, non-blocking sockets; a connection's unsent bytes wait for EPOLLOUT.
//
//   echo_epoll HOST:PORT      prints "echo_epoll: listening on HOST:PORT"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <unordered_map>

namespace {

[[noreturn]] void die(const char* what) {
  std::fprintf(stderr, "echo_epoll: %s: %s\n", what, std::strerror(errno));
  std::exit(1);
}

struct Conn {
  std::string pending;  // bytes read but not yet written back
};

}  // namespace

int main(int argc, char** argv) {
  std::string hp = argc > 1 ? argv[1] : "127.0.0.1:7002";
  const auto colon = hp.rfind(':');
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::atoi(hp.c_str() + colon + 1)));
  inet_pton(AF_INET, hp.substr(0, colon).c_str(), &addr.sin_addr);
  rlimit r;
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }

  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int one = 1;
  ::setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) die("bind");
  if (::listen(lfd, 4096) < 0) die("listen");
  socklen_t alen = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &alen);
  char ip[INET_ADDRSTRLEN];
  inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof ip);
  std::printf("echo_epoll: listening on %s:%d (epoll)\n", ip, ntohs(addr.sin_port));
  std::fflush(stdout);

  const int ep = ::epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = lfd;
  ::epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  std::unordered_map<int, Conn> conns;
  static char buf[64 * 1024];
  epoll_event events[256];

  auto close_conn = [&](int fd) {
    ::close(fd);  // also leaves the epoll set
    conns.erase(fd);
  };
  // Writes c's pending bytes; false if the connection failed.
  auto flush = [&](int fd, Conn& c) {
    while (!c.pending.empty()) {
      const ssize_t n = ::send(fd, c.pending.data(), c.pending.size(), MSG_NOSIGNAL);
      if (n < 0) return errno == EAGAIN;
      c.pending.erase(0, static_cast<std::size_t>(n));
    }
    return true;
  };

  for (;;) {
    const int n = ::epoll_wait(ep, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; ++i) {
      const int fd = events[i].data.fd;
      if (fd == lfd) {
        for (;;) {
          const int c = ::accept4(lfd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
          if (c < 0) break;
          ::setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP;
          cev.data.fd = c;
          ::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          conns.emplace(c, Conn{});
        }
        continue;
      }
      auto it = conns.find(fd);
      if (it == conns.end()) continue;
      Conn& c = it->second;
      if ((events[i].events & EPOLLOUT) && !flush(fd, c)) {
        close_conn(fd);
        continue;
      }
      if (!(events[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) continue;
      bool closed = false;
      for (;;) {  // edge-triggered: read until EAGAIN
        const ssize_t got = ::recv(fd, buf, sizeof buf, 0);
        if (got > 0) {
          if (!c.pending.empty()) {
            c.pending.append(buf, static_cast<std::size_t>(got));
            continue;
          }
          const ssize_t sent = ::send(fd, buf, static_cast<std::size_t>(got), MSG_NOSIGNAL);
          if (sent < 0 && errno != EAGAIN) {
            closed = true;
            break;
          }
          const std::size_t s = sent < 0 ? 0 : static_cast<std::size_t>(sent);
          if (s < static_cast<std::size_t>(got)) c.pending.append(buf + s, static_cast<std::size_t>(got) - s);
          continue;
        }
        if (got == 0 || errno != EAGAIN) closed = true;
        break;
      }
      if (closed) close_conn(fd);
    }
  }
}
