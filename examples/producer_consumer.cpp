// producer_consumer — a bounded Queue between one producer and three consumers,
// with task_done()/join() as in Python's queue module (Chun 2009; Beazley 2009).
//
// The producer parks when the queue is full (maxsize 4); consumers park when it
// is empty; join() parks until every item has been marked done. Each consumer
// "works" by sleeping a little — a timer wait, not a blocked thread.
#include <corelet/corelet.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

using namespace std::chrono_literals;

int main() {
  return corelet::run([] {
    corelet::Queue<int> q(4);
    std::vector<int> handled(3, 0);
    std::vector<corelet::Task<void>> consumers;
    for (int c = 0; c < 3; ++c)
      consumers.push_back(corelet::spawn({.name = "consumer-" + std::to_string(c)}, [&, c] {
        try {
          for (;;) {
            int item = q.get();
            corelet::this_tasklet::sleep_for(std::chrono::milliseconds(1 + item % 3));
            ++handled[c];
            q.task_done();
          }
        } catch (const corelet::QueueShutDown&) {
          // the producer is done and the queue drained: leave
        }
      }));
    for (int i = 0; i < 30; ++i) q.put(i);
    q.join();  // every item handled
    q.shutdown();
    for (auto& c : consumers) c.join();
    int total = 0;
    for (int c = 0; c < 3; ++c) {
      std::printf("consumer-%d handled %d items\n", c, handled[c]);
      total += handled[c];
    }
    std::printf("total %d of 30\n", total);
    return total == 30 ? 0 : 1;
  });
}
