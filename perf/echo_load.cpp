// echo_load — the load generator of the echo comparison (perf/echo_compare.py).
// It uses no corelet: raw liburing, one thread, so every server is driven by
// the same client, and a client that batches its system calls costs less per
// message than any server it measures.
//
//   echo_load tput HOST:PORT CONNS SECONDS [SIZE]
//       CONNS connections, each in a closed loop (send SIZE bytes, wait for
//       all of them back, repeat); prints "msgs_per_sec N" after a warm-up.
//   echo_load rtt HOST:PORT SECONDS [SIZE]
//       one connection, round trips one at a time for SECONDS after a
//       warm-up; prints "rtt_median_ns N" and "rtt_p99_ns N".
//   echo_load idle HOST:PORT CONNS
//       opens CONNS connections, checks each with one echo, prints "ready",
//       and holds them until stdin closes.
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

[[noreturn]] void die(const char* what, int err = errno) {
  std::fprintf(stderr, "echo_load: %s: %s\n", what, std::strerror(err));
  std::exit(1);
}

sockaddr_in parse(const char* hp) {
  std::string s(hp);
  const auto colon = s.rfind(':');
  if (colon == std::string::npos) die("address must be HOST:PORT", EINVAL);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::atoi(s.c_str() + colon + 1)));
  if (inet_pton(AF_INET, s.substr(0, colon).c_str(), &a.sin_addr) != 1) die("bad IPv4 address", EINVAL);
  return a;
}

int dial(const sockaddr_in& a) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket");
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) < 0) die("connect");
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

void raise_fd_limit() {
  rlimit r;
  if (::getrlimit(RLIMIT_NOFILE, &r) == 0) {
    r.rlim_cur = r.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &r);
  }
}

struct Conn {
  int fd;
  std::size_t got = 0;  // bytes of the current echo received
  Clock::time_point sent_at;
  std::vector<char> out, in;
};

// Closed-loop echo on every connection until `until`; returns round trips
// completed after `measure_from`, and the RTTs if asked.
long drive(std::vector<Conn>& conns, std::size_t size, Clock::time_point measure_from, Clock::time_point until,
           std::vector<long>* rtts) {
  io_uring ring;
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  const unsigned entries = static_cast<unsigned>(std::max<std::size_t>(64, conns.size() * 2));
  int rc = io_uring_queue_init_params(entries, &ring, &p);
  if (rc == -EINVAL) rc = io_uring_queue_init(entries, &ring, 0);
  if (rc < 0) die("io_uring_queue_init", -rc);
  auto send = [&](std::size_t i) {
    io_uring_sqe* s = io_uring_get_sqe(&ring);
    io_uring_prep_send(s, conns[i].fd, conns[i].out.data(), size, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, i * 2);
    conns[i].sent_at = Clock::now();
  };
  auto recv = [&](std::size_t i) {
    io_uring_sqe* s = io_uring_get_sqe(&ring);
    io_uring_prep_recv(s, conns[i].fd, conns[i].in.data() + conns[i].got, size - conns[i].got, 0);
    io_uring_sqe_set_data64(s, i * 2 + 1);
  };
  for (std::size_t i = 0; i < conns.size(); ++i) {
    send(i);
    recv(i);
  }
  long done = 0;
  bool stopping = false;
  std::size_t outstanding = conns.size();
  while (outstanding > 0) {
    rc = io_uring_submit_and_wait(&ring, 1);
    if (rc < 0 && rc != -EINTR) die("io_uring_submit_and_wait", -rc);
    const auto now = Clock::now();
    if (now >= until) stopping = true;
    unsigned head, n = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++n;
      const std::size_t i = cqe->user_data / 2;
      const bool is_recv = cqe->user_data % 2;
      if (cqe->res < 0) die(is_recv ? "recv" : "send", -cqe->res);
      if (!is_recv) {
        if (static_cast<std::size_t>(cqe->res) != size) die("short send", EIO);
        continue;
      }
      if (cqe->res == 0) die("the server closed a connection", EPIPE);
      conns[i].got += static_cast<std::size_t>(cqe->res);
      if (conns[i].got < size) {
        recv(i);
        continue;
      }
      conns[i].got = 0;
      if (now >= measure_from) {
        ++done;
        if (rtts) rtts->push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(now - conns[i].sent_at).count());
      }
      if (stopping) {
        --outstanding;
      } else {
        send(i);
        recv(i);
      }
    }
    io_uring_cq_advance(&ring, n);
  }
  io_uring_queue_exit(&ring);
  return done;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: echo_load tput|rtt|idle HOST:PORT ...\n");
    return 2;
  }
  raise_fd_limit();
  const std::string mode = argv[1];
  const sockaddr_in addr = parse(argv[2]);
  if (mode == "tput") {
    if (argc < 5) die("tput needs CONNS SECONDS", EINVAL);
    const int nconns = std::atoi(argv[3]);
    const double seconds = std::atof(argv[4]);
    const std::size_t size = argc > 5 ? std::strtoul(argv[5], nullptr, 10) : 64;
    std::vector<Conn> conns(static_cast<std::size_t>(nconns));
    for (auto& c : conns) {
      c.fd = dial(addr);
      c.out.assign(size, 'e');
      c.in.resize(size);
    }
    const auto start = Clock::now();
    const auto warm = start + std::chrono::milliseconds(500);
    const auto until = warm + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
    const long done = drive(conns, size, warm, until, nullptr);
    std::printf("msgs_per_sec %.0f\n", static_cast<double>(done) / seconds);
    for (auto& c : conns) ::close(c.fd);
  } else if (mode == "rtt") {
    const double seconds = std::atof(argv[3]);
    const std::size_t size = argc > 4 ? std::strtoul(argv[4], nullptr, 10) : 64;
    std::vector<Conn> conns(1);
    conns[0].fd = dial(addr);
    conns[0].out.assign(size, 'r');
    conns[0].in.resize(size);
    std::vector<long> rtts;
    rtts.reserve(1 << 20);
    const auto warm = Clock::now() + std::chrono::milliseconds(300);
    drive(conns, size, warm, warm + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds)),
          &rtts);
    if (rtts.empty()) die("no round trips", EIO);
    std::sort(rtts.begin(), rtts.end());
    std::printf("rtt_median_ns %ld\nrtt_p99_ns %ld\nrtt_count %zu\n", rtts[rtts.size() / 2],
                rtts[rtts.size() * 99 / 100], rtts.size());
    ::close(conns[0].fd);
  } else if (mode == "idle") {
    const int nconns = std::atoi(argv[3]);
    std::vector<int> fds;
    for (int i = 0; i < nconns; ++i) {
      const int fd = dial(addr);
      char c = 'i';
      if (::send(fd, &c, 1, MSG_NOSIGNAL) != 1 || ::recv(fd, &c, 1, MSG_WAITALL) != 1) die("idle check echo");
      fds.push_back(fd);
    }
    std::printf("ready %d\n", nconns);
    std::fflush(stdout);
    char buf[16];
    while (::read(0, buf, sizeof buf) > 0) {
    }
    for (int fd : fds) ::close(fd);
  } else {
    die("mode must be tput, rtt or idle", EINVAL);
  }
}
