// corelet/sched/local.hpp
#include "support.hpp"

#include <string>
#include <vector>

using namespace corelet_test;

namespace {

class LocalTest : public CoreletTest {};

TEST_F(LocalTest, EachTaskletHasItsOwnValue) {
  corelet::run([] {
    corelet::TaskletLocal<int> counter;
    std::vector<corelet::Task<int>> ts;
    for (int i = 1; i <= 4; ++i)
      ts.push_back(corelet::spawn([&, i] {
        for (int k = 0; k < i; ++k) {
          ++counter.get();
          corelet::this_tasklet::yield();
        }
        return *counter;
      }));
    for (int i = 1; i <= 4; ++i) EXPECT_EQ(ts[i - 1].join(), i);
    EXPECT_EQ(counter.get(), 0);  // main's own, value-initialized
  });
}

TEST_F(LocalTest, InitializerAndDestructionAtTaskletEnd) {
  int destroyed = 0;
  struct Tracked {
    int* counter = nullptr;
    std::string tag;
    Tracked() = default;
    Tracked(int* c, std::string t) : counter(c), tag(std::move(t)) {}
    Tracked(Tracked&& o) noexcept : counter(std::exchange(o.counter, nullptr)), tag(std::move(o.tag)) {}
    ~Tracked() { if (counter) ++*counter; }
  };
  corelet::run([&] {
    corelet::TaskletLocal<Tracked> local([&] { return Tracked(&destroyed, "init"); });
    auto t = corelet::spawn([&] {
      EXPECT_FALSE(local.has_value());
      EXPECT_EQ(local->tag, "init");
      EXPECT_TRUE(local.has_value());
    });
    t.join();
    EXPECT_EQ(destroyed, 1);
    EXPECT_FALSE(local.has_value());
  });
}

TEST_F(LocalTest, OutsideATaskletIsAUsageError) {
  corelet::TaskletLocal<int> local;
  EXPECT_THROW(local.get(), corelet::UsageError);
  EXPECT_FALSE(local.has_value());
}

}  // namespace
