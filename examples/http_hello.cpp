// http_hello — a small HTTP/1.1 server that answers every request with
// "hello": keep-alive, pipelining, one tasklet per connection.
//
//   http_hello [ADDRESS] [--reuse-port]      (default 127.0.0.1:8080)
//   http_hello [ADDRESS] --workers N         one server per worker (0: per CPU)
//   wrk -c 100 -d 5 http://127.0.0.1:8080/
//
// With --workers every worker process of a corelet cluster binds its own
// listener to the same port with SO_REUSEPORT, and the kernel spreads the
// connections over them: one scheduler per core, nothing shared.
//
// Requests are parsed just enough to be served correctly: the request line,
// Connection and Content-Length (a body is skipped). Responses to requests
// that arrived together go out in one write. A malformed request gets 400,
// an oversized header 431, and its connection is closed (after draining what
// the client still sends, so that it can read the answer); a connection idle
// for 60 s is closed.
#include <corelet/corelet.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr std::size_t kMaxHeader = 16 * 1024;
constexpr auto kIdleTimeout = 60s;

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return std::tolower(x) == std::tolower(y); });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

struct Request {
  bool keep_alive = true;
  std::size_t body = 0;  // Content-Length
};

// Parses the head (request line and headers, without the blank line).
// Returns false if it is malformed.
bool parse_head(std::string_view head, Request& req) {
  const std::size_t eol = head.find("\r\n");
  const std::string_view line = head.substr(0, eol);
  const std::size_t sp1 = line.find(' '), sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return false;
  const std::string_view version = line.substr(sp2 + 1);
  if (version == "HTTP/1.1") req.keep_alive = true;
  else if (version == "HTTP/1.0") req.keep_alive = false;
  else return false;
  std::string_view rest = eol == std::string_view::npos ? std::string_view() : head.substr(eol + 2);
  while (!rest.empty()) {
    const std::size_t e = rest.find("\r\n");
    const std::string_view h = rest.substr(0, e);
    rest = e == std::string_view::npos ? std::string_view() : rest.substr(e + 2);
    const std::size_t colon = h.find(':');
    if (colon == std::string_view::npos) return false;
    const std::string_view name = h.substr(0, colon), value = trim(h.substr(colon + 1));
    if (iequals(name, "connection")) {
      if (iequals(value, "close")) req.keep_alive = false;
      else if (iequals(value, "keep-alive")) req.keep_alive = true;
    } else if (iequals(name, "content-length")) {
      std::size_t n = 0;
      for (char c : value) {
        if (c < '0' || c > '9' || n > (1u << 30)) return false;
        n = n * 10 + static_cast<std::size_t>(c - '0');
      }
      req.body = n;
    }
  }
  return true;
}

const std::string_view kHello =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello";
const std::string_view kHelloClose =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
const std::string_view kBadRequest =
    "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
const std::string_view kTooLarge =
    "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

void serve(corelet::TcpStream& c) {
  std::string in;
  std::string out;
  std::size_t skip = 0;  // body bytes of the last request still to discard
  char buf[8192];
  for (;;) {
    const std::size_t n = c.read(buf, sizeof buf, kIdleTimeout);
    if (n == 0) return;
    in.append(buf, n);
    std::size_t pos = std::min(skip, in.size());
    skip -= pos;
    bool close = false;
    while (skip == 0 && !close) {
      const std::size_t end = in.find("\r\n\r\n", pos);
      if (end == std::string::npos) {
        if (in.size() - pos > kMaxHeader) {
          out += kTooLarge;
          close = true;
        }
        break;
      }
      Request req;
      if (!parse_head(std::string_view(in).substr(pos, end - pos), req)) {
        out += kBadRequest;
        close = true;
        break;
      }
      close = !req.keep_alive;
      out += close ? kHelloClose : kHello;
      pos = end + 4;
      const std::size_t body_here = std::min(req.body, in.size() - pos);
      pos += body_here;
      skip = req.body - body_here;
    }
    in.erase(0, pos);
    if (!out.empty()) {
      c.write_all(out);  // every response of this read in one write
      out.clear();
    }
    if (close) {
      // Lingering close: the client may still be sending (a request we
      // refused); closing with unread input would reset the connection and
      // could destroy our answer before it is read. Drain for a while first.
      c.shutdown_write();
      try {
        while (c.read(buf, sizeof buf, 1s) > 0) {
        }
      } catch (const std::system_error&) {
      }
      return;
    }
  }
}

// listen_and_serve — accepts forever, a tasklet per connection.
void listen_and_serve(const std::string& address, const corelet::ListenOptions& opts, bool announce) {
  corelet::TcpListener listener = corelet::TcpListener::bind(address, opts);
  if (announce) {
    std::printf("http_hello: listening on http://%s/ (%s)\n", listener.local_address().to_string().c_str(),
                std::string(corelet::io::backend_name(corelet::io::backend())).c_str());
    std::fflush(stdout);
  }
  for (;;) {
    corelet::TcpStream conn = listener.accept();
    corelet::spawn({.name = "http-conn", .stack_size = 32 * 1024}, [c = std::move(conn)]() mutable {
      try {
        serve(c);
      } catch (const std::system_error&) {
        // reset or idle: this connection ends, the server goes on
      }
    }).detach();
  }
}

// serve_on_worker — one worker's server in cluster mode (runs until the
// cluster stops: SIGINT / SIGTERM).
int serve_on_worker(std::string address) {
  corelet::ListenOptions opts;
  opts.backlog = 4096;
  opts.reuse_port = true;
  listen_and_serve(address, opts, false);
  return 0;
}
CORELET_REMOTE(serve_on_worker);

// pick_port — for "HOST:0" in cluster mode: every worker must bind the same
// port, so one is chosen here first.
std::string pick_port(const std::string& address) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || address.substr(colon + 1) != "0") return address;
  const std::string host = address.substr(0, colon);
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  socklen_t len = sizeof sa;
  if (fd < 0 || ::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1 ||
      ::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot pick a port on " + host);
  }
  ::close(fd);
  return host + ":" + std::to_string(ntohs(sa.sin_port));
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:8080";
  corelet::ListenOptions opts;
  opts.backlog = 4096;
  int workers = -1;  // -1: no cluster, one scheduler in this process
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reuse-port") == 0) opts.reuse_port = true;
    else if (std::strcmp(argv[i], "--workers") == 0 && i + 1 < argc) workers = std::atoi(argv[++i]);
    else address = argv[i];
  }
  try {
    if (workers >= 0) {
      address = pick_port(address);
      return corelet::run(corelet::Config{.workers = workers}, [&] {
        std::vector<corelet::Future<int>> servers;
        for (int w = 0; w < corelet::num_workers(); ++w) servers.push_back(corelet::spawn_on(w, serve_on_worker, address));
        corelet::this_tasklet::sleep_for(std::chrono::milliseconds(50));  // let every worker bind
        std::printf("http_hello: listening on http://%s/ on %d workers (%s)\n", address.c_str(),
                    corelet::num_workers(), std::string(corelet::io::backend_name(corelet::io::backend())).c_str());
        std::fflush(stdout);
        for (auto& f : servers) f.get();
        return 0;
      });
    }
    corelet::run([&] { listen_and_serve(address, opts, true); });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "http_hello: %s\n", e.what());
    return 1;
  }
}
