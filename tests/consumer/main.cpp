// Uses the installed corelet: two tasklets over a channel; exits 0 on the right sum.
#include <corelet/corelet.hpp>

#include <cstdio>

int main() {
  const int sum = corelet::run([] {
    corelet::Channel<int> ch;
    auto producer = corelet::spawn({.name = "producer"}, [&] {
      for (int i = 1; i <= 100; ++i) ch.send(i);
      ch.close();
    });
    int total = 0;
    for (int v : ch) total += v;
    producer.join();
    return total;
  });
  std::printf("consumer: sum %d\n", sum);
  return sum == 5050 ? 0 : 1;
}
