// echo_server — a TCP echo server: one tasklet per connection.
//
//   echo_server [ADDRESS] [--reuse-port]      (default 127.0.0.1:7000)
//
// Each connection's tasklet parks in read() until bytes come, and writes them
// back; thousands of connections cost one small stack each. A connection that
// fails (reset by its peer...) ends its own tasklet only. Ctrl-C stops it.
// perf/echo_compare.py drives this server, with CORELET_IO=io_uring or epoll.
#include <corelet/corelet.hpp>

#include <cstdio>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:7000";
  corelet::ListenOptions opts;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reuse-port") == 0) opts.reuse_port = true;
    else address = argv[i];
  }
  opts.backlog = 4096;
  try {
    corelet::run([&] {
      corelet::TcpListener listener = corelet::TcpListener::bind(address, opts);
      std::printf("echo_server: listening on %s (%s)\n", listener.local_address().to_string().c_str(),
                  std::string(corelet::io::backend_name(corelet::io::backend())).c_str());
      std::fflush(stdout);
      for (;;) {
        corelet::TcpStream conn = listener.accept();
        corelet::spawn({.name = "echo-conn", .stack_size = 16 * 1024}, [c = std::move(conn)]() mutable {
          char buf[4096];
          try {
            while (std::size_t n = c.read(buf, sizeof buf)) c.write_all(buf, n);
          } catch (const std::system_error& e) {
            std::fprintf(stderr, "echo_server: %s\n", e.what());  // this connection only
          }
        }).detach();
      }
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_server: %s\n", e.what());
    return 1;
  }
}
