// corelet/sched/generator.hpp
#include "support.hpp"

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace corelet_test;

namespace {

class GeneratorTest : public CoreletTest {};

TEST_F(GeneratorTest, RangeForYieldsEveryValue) {
  corelet::run([] {
    corelet::Generator<int> squares([](corelet::Yield<int>& yield) {
      for (int i = 0; i < 5; ++i) yield(i * i);
    });
    std::vector<int> got;
    for (int v : squares) got.push_back(v);
    EXPECT_EQ(got, (std::vector<int>{0, 1, 4, 9, 16}));
    EXPECT_FALSE(squares.next().has_value());  // stays exhausted
  });
}

TEST_F(GeneratorTest, BodyStartsOnlyWhenAskedAndRunsOneAhead) {
  corelet::run([] {
    int produced = 0;
    corelet::Generator<int> g([&](corelet::Yield<int>& yield) {
      for (int i = 0; i < 100; ++i) { ++produced; yield(i); }
    });
    yield_n(3);
    EXPECT_EQ(produced, 0);
    EXPECT_EQ(g.next(), 0);
    yield_n(3);
    EXPECT_LE(produced, 2);
  });
}

TEST_F(GeneratorTest, ExceptionReachesTheConsumerAfterTheValuesBeforeIt) {
  corelet::run([] {
    corelet::Generator<std::string> g([](corelet::Yield<std::string>& yield) {
      yield("one");
      yield("two");
      throw std::runtime_error("broken source");
    });
    std::vector<std::string> got;
    try {
      for (auto& s : g) got.push_back(s);
      FAIL() << "exception not propagated";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "broken source");
    }
    EXPECT_EQ(got, (std::vector<std::string>{"one", "two"}));
  });
}

TEST_F(GeneratorTest, PipelineOfGenerators) {
  corelet::run([] {
    corelet::Generator<int> numbers([](corelet::Yield<int>& yield) {
      for (int i = 1; i <= 20; ++i) yield(i);
    });
    corelet::Generator<int> evens([&](corelet::Yield<int>& yield) {
      for (int v : numbers)
        if (v % 2 == 0) yield(v);
    });
    int sum = 0;
    for (int v : evens) sum += v;
    EXPECT_EQ(sum, 110);
  });
}

TEST_F(GeneratorTest, BodyMayBlock) {
  corelet::run([] {
    corelet::Generator<int> g([](corelet::Yield<int>& yield) {
      for (int i = 0; i < 3; ++i) {
        corelet::this_tasklet::sleep_for(1ms);
        yield(i);
      }
    });
    int n = 0;
    for (int v : g) EXPECT_EQ(v, n++);
    EXPECT_EQ(n, 3);
  });
}

TEST_F(GeneratorTest, DestroyingEarlyUnwindsTheBody) {
  bool unwound = false;
  int produced = 0;
  corelet::run([&] {
    {
      corelet::Generator<int> g([&](corelet::Yield<int>& yield) {
        struct Guard { bool& f; ~Guard() { f = true; } } guard{unwound};
        for (int i = 0;; ++i) { ++produced; yield(i); }
      });
      EXPECT_EQ(g.next(), 0);
      EXPECT_EQ(g.next(), 1);
    }
    yield_n(3);
  });
  EXPECT_TRUE(unwound);
  EXPECT_LE(produced, 3);
}

TEST_F(GeneratorTest, MoveOnlyBody) {
  corelet::run([] {
    auto start = std::make_unique<int>(40);
    corelet::Generator<int> g([p = std::move(start)](corelet::Yield<int>& yield) {
      yield(*p);
      yield(*p + 2);
    });
    int sum = 0;
    for (int v : g) sum += v;
    EXPECT_EQ(sum, 82);
  });
}

TEST_F(GeneratorTest, ConsumingOutsideATaskletIsAUsageError) {
  corelet::Generator<int> g([](corelet::Yield<int>& yield) { yield(1); });
  EXPECT_THROW(g.next(), corelet::UsageError);
}

}  // namespace
