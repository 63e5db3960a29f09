// echo_client — talks to echo_server from several tasklets at once.
//
//   echo_client [ADDRESS] [CLIENTS] [MESSAGES]   (default 127.0.0.1:7000 10 5)
//
// Each client tasklet connects, sends its messages one by one and checks that
// each comes back unchanged, with a timeout on every exchange.
#include <corelet/corelet.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int main(int argc, char** argv) {
  const std::string address = argc > 1 ? argv[1] : "127.0.0.1:7000";
  const int clients = argc > 2 ? std::atoi(argv[2]) : 10;
  const int messages = argc > 3 ? std::atoi(argv[3]) : 5;
  try {
    corelet::run([&] {
      std::vector<corelet::Task<int>> tasks;
      for (int c = 0; c < clients; ++c)
        tasks.push_back(corelet::spawn([&, c] {
          corelet::TcpStream s = corelet::TcpStream::connect(address, 2s);
          int echoed = 0;
          for (int m = 0; m < messages; ++m) {
            const std::string msg = "client " + std::to_string(c) + " message " + std::to_string(m) + "\n";
            s.write_all(msg, 2s);
            std::string back(msg.size(), '\0');
            if (s.read_exact(back.data(), back.size(), 2s) && back == msg) ++echoed;
          }
          return echoed;
        }));
      int total = 0;
      for (auto& t : tasks) total += t.join();
      std::printf("echo_client: %d of %d messages came back unchanged from %s\n", total, clients * messages,
                  address.c_str());
      if (total != clients * messages) throw std::runtime_error("some messages were lost");
    });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "echo_client: %s\n", e.what());
    return 1;
  }
}
