// countdown — Beazley's round-robin generator scheduler (USENIX 2009), as tasklets.
//
// In the seed, each task is a generator and a loop cycles through a deque of
// them, running each to its next `yield`. Here each task is a tasklet and
// `this_tasklet::yield()` hands the CPU to the next ready one: the scheduler
// loop is corelet's. The output interleaves exactly as in the seed:
//   5 10 15 4 9 14 3 8 13 ...
#include <corelet/corelet.hpp>

#include <cstdio>
#include <vector>

void countdown_task(int n) {
  while (n > 0) {
    std::printf("%d ", n);
    corelet::this_tasklet::yield();
    --n;
  }
}

int main() {
  return corelet::run([] {
    std::vector<corelet::Task<void>> tasks;
    for (int n : {5, 10, 15}) tasks.push_back(corelet::spawn({.name = "countdown"}, countdown_task, n));
    for (auto& t : tasks) t.join();
    std::printf("\n");
  });
}
