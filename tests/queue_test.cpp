// Tests for <corelet/sched/queue.hpp>: Queue, LifoQueue, PriorityQueue with the
// semantics of Python's `queue` module.
//
// Everything the three kinds share is a TYPED_TEST over the kinds, with the
// expected order computed by the kind's rule; "blocked call is cancelled" is a
// TEST_P over (kind x blocking call), "outside a tasklet" a TEST_P over calls.

#include "support.hpp"

#include <corelet/corelet.hpp>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace corelet_test;
using corelet::Clock;
using corelet::LifoQueue;
using corelet::PriorityQueue;
using corelet::Queue;
using corelet::QueueShutDown;
namespace this_tasklet = corelet::this_tasklet;

// True if f throws QueueShutDown.
template <class F>
bool throws_shut_down(F&& f) {
  try {
    f();
  } catch (const QueueShutDown&) {
    return true;
  }
  return false;
}

// Kind<Q>: the order in which Q gives back what was put, as a rule.
template <class Q>
struct Kind;
template <>
struct Kind<Queue<int>> {
  static constexpr const char* name = "Queue";
  static std::vector<int> pop_order(std::vector<int> v) { return v; }
};
template <>
struct Kind<LifoQueue<int>> {
  static constexpr const char* name = "LifoQueue";
  static std::vector<int> pop_order(std::vector<int> v) {
    std::reverse(v.begin(), v.end());
    return v;
  }
};
template <>
struct Kind<PriorityQueue<int>> {
  static constexpr const char* name = "PriorityQueue";
  static std::vector<int> pop_order(std::vector<int> v) {
    std::sort(v.begin(), v.end());
    return v;
  }
};

struct KindNames {
  template <class Q>
  static std::string GetName(int) {
    return Kind<Q>::name;
  }
};

template <class Q>
class QueueKindTest : public CoreletTest {};
using QueueKinds = ::testing::Types<Queue<int>, LifoQueue<int>, PriorityQueue<int>>;
TYPED_TEST_SUITE(QueueKindTest, QueueKinds, KindNames);

const std::vector<int> kInput = {5, 1, 4, 2, 8, 3, 9, 0, 7, 6};

TYPED_TEST(QueueKindTest, GivesItemsBackInTheKindsOrder) {
  TypeParam q;
  std::vector<int> got;
  std::vector<std::size_t> sizes;
  corelet::run([&] {
    for (int v : kInput) q.put(v);
    sizes.push_back(q.qsize());
    while (!q.empty()) got.push_back(q.get());
    sizes.push_back(q.qsize());
  });
  EXPECT_EQ(got, Kind<TypeParam>::pop_order(kInput));
  EXPECT_EQ(sizes, (std::vector<std::size_t>{kInput.size(), 0}));
  EXPECT_EQ(q.maxsize(), 0u);
  EXPECT_FALSE(q.full());  // unbounded
}

TYPED_TEST(QueueKindTest, ParkedGettersAreServedInArrivalOrder) {
  TypeParam q;
  const std::vector<int> input = {30, 10, 20};
  std::vector<int> arrivals;
  std::vector<std::pair<int, int>> got;  // (getter, value)
  corelet::run([&] {
    std::vector<corelet::Task<void>> getters;
    const int n = static_cast<int>(input.size());
    for (int i = 0; i < n; ++i)
      getters.push_back(corelet::spawn([&, i, n] {
        yield_n(n - i);  // arrive in the reverse of the spawn order
        arrivals.push_back(i);
        got.emplace_back(i, q.get());
      }));
    yield_n(n + 2);
    EXPECT_TRUE(got.empty());
    for (int v : input) q.put(v);  // no yield in between: all are queued first
    for (auto& g : getters) g.join();
  });
  const std::vector<int> expected_values = Kind<TypeParam>::pop_order(input);
  ASSERT_EQ(got.size(), input.size());
  ASSERT_EQ(arrivals.size(), input.size());
  for (std::size_t k = 0; k < got.size(); ++k) {
    EXPECT_EQ(got[k].first, arrivals[k]);  // woken in arrival order
    EXPECT_EQ(got[k].second, expected_values[k]);
  }
}

TYPED_TEST(QueueKindTest, PutParksWhileFullUntilAGetMakesRoom) {
  TypeParam q(2);
  bool putter_done_while_full = true;
  int first_get = -1;
  std::vector<int> rest;
  std::vector<bool> full_seen;
  corelet::run([&] {
    q.put(1);
    q.put(2);
    full_seen.push_back(q.full());
    auto putter = corelet::spawn([&] { q.put(3); });
    yield_n(3);
    putter_done_while_full = putter.done();
    first_get = q.get();
    putter.join();
    full_seen.push_back(q.full());
    while (auto v = q.try_get()) rest.push_back(*v);
    full_seen.push_back(q.full());
  });
  EXPECT_FALSE(putter_done_while_full);
  EXPECT_EQ(full_seen, (std::vector<bool>{true, true, false}));
  EXPECT_EQ(q.maxsize(), 2u);
  // Same items, in the kind's order: {1, 2} first, then {rest, 3}.
  EXPECT_EQ(first_get, Kind<TypeParam>::pop_order({1, 2}).front());
  std::vector<int> left = {1, 2};
  left.erase(std::find(left.begin(), left.end(), first_get));
  left.push_back(3);
  EXPECT_EQ(rest, Kind<TypeParam>::pop_order(left));
}

// maxsize 1 holds one item at a time, so every kind must give the putters'
// items back in the putters' arrival order.
TYPED_TEST(QueueKindTest, ParkedPuttersAreServedInArrivalOrder) {
  TypeParam q(1);
  std::vector<int> arrivals;
  std::vector<int> got;
  corelet::run([&] {
    q.put(-1);
    std::vector<corelet::Task<void>> putters;
    constexpr int kPutters = 3;
    for (int i = 0; i < kPutters; ++i)
      putters.push_back(corelet::spawn([&, i] {
        yield_n(kPutters - i);
        arrivals.push_back(i);
        q.put(i);
      }));
    yield_n(kPutters + 2);
    EXPECT_EQ(q.qsize(), 1u);
    for (int k = 0; k <= kPutters; ++k) {
      got.push_back(q.get());
      yield_n(2);  // the woken putter puts its item
    }
    for (auto& p : putters) p.join();
  });
  std::vector<int> expected = {-1};
  expected.insert(expected.end(), arrivals.begin(), arrivals.end());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(arrivals, (std::vector<int>{2, 1, 0}));
}

TYPED_TEST(QueueKindTest, TryFormsNeverPark) {
  TypeParam q(1);
  std::optional<int> from_empty = 0;
  std::vector<bool> puts;
  std::optional<int> got;
  bool other_ran = true;
  corelet::run([&] {
    bool ran = false;
    auto other = corelet::spawn([&] { ran = true; });
    from_empty = q.try_get();
    puts.push_back(q.try_put(1));
    puts.push_back(q.try_put(2));  // full: refused at once
    got = q.try_get();
    other_ran = ran;  // nothing above parked, so `other` has not run yet
    other.join();
  });
  EXPECT_EQ(from_empty, std::nullopt);
  EXPECT_EQ(puts, (std::vector<bool>{true, false}));
  EXPECT_EQ(got, std::optional<int>(1));
  EXPECT_FALSE(other_ran);
  EXPECT_TRUE(q.empty());
}

TYPED_TEST(QueueKindTest, TimedPutAndGetTimeOut) {
  TypeParam full(1);
  TypeParam empty;
  bool put_for_ok = true;
  bool put_until_ok = true;
  std::optional<int> get_for_v = 0;
  std::optional<int> get_until_v = 0;
  std::vector<std::int64_t> waited;
  std::vector<int> left;
  corelet::run([&] {
    full.put(1);
    auto t0 = Clock::now();
    put_for_ok = full.put_for(2, 20ms);
    waited.push_back(elapsed_us(t0));
    t0 = Clock::now();
    put_until_ok = full.put_until(3, t0 + 20ms);
    waited.push_back(elapsed_us(t0));
    t0 = Clock::now();
    get_for_v = empty.get_for(20ms);
    waited.push_back(elapsed_us(t0));
    t0 = Clock::now();
    get_until_v = empty.get_until(t0 + 20ms);
    waited.push_back(elapsed_us(t0));
    while (auto v = full.try_get()) left.push_back(*v);
  });
  EXPECT_FALSE(put_for_ok);
  EXPECT_FALSE(put_until_ok);
  EXPECT_EQ(get_for_v, std::nullopt);
  EXPECT_EQ(get_until_v, std::nullopt);
  ASSERT_EQ(waited.size(), 4u);
  for (std::int64_t w : waited) EXPECT_GE(w, us(20ms));
  EXPECT_EQ(left, (std::vector<int>{1}));  // the timed-out puts added nothing
  EXPECT_EQ(full.unfinished_tasks(), 1u);
}

TYPED_TEST(QueueKindTest, TimedPutAndGetSucceedBeforeDeadline) {
  TypeParam q(1);
  std::optional<int> get_for_v;
  std::optional<int> get_until_v;
  bool put_for_ok = false;
  bool put_until_ok = false;
  std::vector<int> drained;
  corelet::run([&] {
    auto g1 = corelet::spawn([&] { get_for_v = q.get_for(1h); });
    auto g2 = corelet::spawn([&] { get_until_v = q.get_until(Clock::now() + 1h); });
    yield_n(2);
    q.put(11);
    q.put(12);  // parks main until g1 took 11
    g1.join();
    g2.join();
    q.put(13);  // full again
    auto p1 = corelet::spawn([&] { put_for_ok = q.put_for(14, 1h); });
    auto p2 = corelet::spawn([&] { put_until_ok = q.put_until(15, Clock::now() + 1h); });
    yield_n(2);
    EXPECT_FALSE(p1.done());
    for (int i = 0; i < 3; ++i) drained.push_back(q.get());  // each get lets one putter in
    p1.join();
    p2.join();
  });
  EXPECT_EQ(get_for_v, std::optional<int>(11));
  EXPECT_EQ(get_until_v, std::optional<int>(12));
  EXPECT_TRUE(put_for_ok);
  EXPECT_TRUE(put_until_ok);
  EXPECT_EQ(drained, (std::vector<int>{13, 14, 15}));
}

TYPED_TEST(QueueKindTest, JoinWaitsUntilEveryItemIsTaskDone) {
  TypeParam q;
  std::vector<std::size_t> unfinished;
  std::vector<bool> joiner_done;
  bool join_at_zero_parked = true;
  corelet::run([&] {
    bool returned = false;
    auto other = corelet::spawn([&] { returned = true; });
    q.join();  // nothing unfinished: returns at once
    join_at_zero_parked = returned;
    other.join();
    for (int v : {1, 2, 3}) q.put(v);
    auto joiner = corelet::spawn([&] { q.join(); });
    unfinished.push_back(q.unfinished_tasks());
    for (int i = 0; i < 3; ++i) {
      (void)q.get();
      yield_n(2);
      joiner_done.push_back(joiner.done());  // getting is not finishing
      q.task_done();
      unfinished.push_back(q.unfinished_tasks());
      yield_n(2);
      joiner_done.push_back(joiner.done());
    }
    joiner.join();
  });
  EXPECT_FALSE(join_at_zero_parked);
  EXPECT_EQ(unfinished, (std::vector<std::size_t>{3, 2, 1, 0}));
  EXPECT_EQ(joiner_done, (std::vector<bool>{false, false, false, false, false, true}));
}

TYPED_TEST(QueueKindTest, TimedJoin) {
  TypeParam q;
  TimedWaits w;
  bool later_ok = false;
  corelet::run([&] {
    q.put(1);
    w = timed_waits([&](auto d) { return q.join_for(d); }, [&](auto t) { return q.join_until(t); });
    auto joiner = corelet::spawn([&] { later_ok = q.join_for(1h); });
    yield_n(2);
    (void)q.get();
    q.task_done();
    joiner.join();
  });
  expect_both_timed_out(w);
  EXPECT_TRUE(later_ok);
}

TYPED_TEST(QueueKindTest, TaskDoneTooManyTimesIsUsageError) {
  TypeParam q;
  std::vector<std::size_t> unfinished;
  corelet::run([&] {
    expect_usage_error([&] { q.task_done(); }, "Queue::task_done");
    q.put(1);
    (void)q.get();
    q.task_done();
    expect_usage_error([&] { q.task_done(); }, "Queue::task_done");
    unfinished.push_back(q.unfinished_tasks());
  });
  EXPECT_EQ(unfinished, (std::vector<std::size_t>{0}));
}

TYPED_TEST(QueueKindTest, ShutdownWakesParkedGettersAndPutters) {
  TypeParam empty;
  TypeParam full(1);
  std::vector<bool> getters_shut(2, false);
  bool putter_shut = false;
  std::vector<bool> after;
  std::optional<int> drained;
  corelet::run([&] {
    std::vector<corelet::Task<void>> tasks;
    for (int i = 0; i < 2; ++i)
      tasks.push_back(corelet::spawn([&, i] { getters_shut[i] = throws_shut_down([&] { (void)empty.get(); }); }));
    full.put(1);
    tasks.push_back(corelet::spawn([&] { putter_shut = throws_shut_down([&] { full.put(2); }); }));
    yield_n(2);
    empty.shutdown();
    full.shutdown();
    for (auto& t : tasks) t.join();
    after.push_back(empty.is_shut_down());
    after.push_back(throws_shut_down([&] { empty.put(3); }));
    after.push_back(throws_shut_down([&] { (void)empty.try_put(3); }));
    after.push_back(throws_shut_down([&] { (void)empty.get_for(1h); }));
    after.push_back(throws_shut_down([&] { (void)empty.try_get(); }));
    // What was queued before the shutdown can still be got, then gets fail.
    drained = full.get();
    after.push_back(throws_shut_down([&] { (void)full.get(); }));
  });
  EXPECT_EQ(getters_shut, (std::vector<bool>{true, true}));
  EXPECT_TRUE(putter_shut);
  EXPECT_EQ(after, (std::vector<bool>{true, true, true, true, true, true}));
  EXPECT_EQ(drained, std::optional<int>(1));
}

TYPED_TEST(QueueKindTest, ImmediateShutdownDiscardsItemsAndCountsThemDone) {
  TypeParam q;
  std::vector<std::size_t> sizes;
  std::vector<bool> joiner_done;
  bool get_shut = false;
  corelet::run([&] {
    for (int v : {1, 2, 3}) q.put(v);
    (void)q.get();  // one item out, not task_done yet
    auto joiner = corelet::spawn([&] { q.join(); });
    yield_n(2);
    q.shutdown(true);
    sizes.push_back(q.qsize());
    sizes.push_back(q.unfinished_tasks());  // the two discarded count as done
    yield_n(2);
    joiner_done.push_back(joiner.done());
    get_shut = throws_shut_down([&] { (void)q.get(); });
    q.task_done();
    yield_n(2);
    joiner_done.push_back(joiner.done());
    joiner.join();
  });
  EXPECT_EQ(sizes, (std::vector<std::size_t>{0, 1}));
  EXPECT_EQ(joiner_done, (std::vector<bool>{false, true}));
  EXPECT_TRUE(get_shut);
}

TYPED_TEST(QueueKindTest, DestroyingTheQueueWakesParkedTasklets) {
  std::optional<TypeParam> empty(std::in_place);
  std::optional<TypeParam> full(std::in_place, 1);
  bool getter_shut = false;
  bool putter_shut = false;
  corelet::run([&] {
    full->put(1);
    auto g = corelet::spawn([&] { getter_shut = throws_shut_down([&] { (void)empty->get(); }); });
    auto p = corelet::spawn([&] { putter_shut = throws_shut_down([&] { full->put(2); }); });
    yield_n(2);
    empty.reset();
    full.reset();
    g.join();
    p.join();
  });
  EXPECT_TRUE(getter_shut);
  EXPECT_TRUE(putter_shut);
}

// ---------------------------------------------------------------------------
// Kind-specific and value-type behaviour.

class QueueTest : public CoreletTest {};

TEST_F(QueueTest, PriorityQueueHonoursItsComparator) {
  PriorityQueue<int, std::greater<int>> largest_first;
  PriorityQueue<std::pair<int, std::string>> by_priority;  // Python's (priority, data) idiom
  std::vector<int> got;
  std::vector<std::string> names;
  corelet::run([&] {
    for (int v : kInput) largest_first.put(v);
    while (auto v = largest_first.try_get()) got.push_back(*v);
    by_priority.put({2, "write"});
    by_priority.put({0, "urgent"});
    by_priority.put({1, "read"});
    while (auto v = by_priority.try_get()) names.push_back(v->second);
  });
  std::vector<int> expected = kInput;
  std::sort(expected.begin(), expected.end(), std::greater<int>());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(names, (std::vector<std::string>{"urgent", "read", "write"}));
}

// A value whose put timed out, was refused, failed or was cancelled stays with
// the caller.
TEST_F(QueueTest, AFailedPutLeavesAMoveOnlyValueWithTheCaller) {
  Queue<std::unique_ptr<int>> q(1);
  std::vector<bool> kept;
  int cancelled_value = 0;
  bool cancelled_thrown = false;
  corelet::run([&] {
    q.put(std::make_unique<int>(0));
    auto p = std::make_unique<int>(42);
    EXPECT_FALSE(q.try_put(std::move(p)));
    kept.push_back(p != nullptr);
    EXPECT_FALSE(q.put_for(std::move(p), 1ms));
    kept.push_back(p != nullptr);
    EXPECT_FALSE(q.put_until(std::move(p), Clock::now() + 1ms));
    kept.push_back(p != nullptr);
    auto victim = corelet::spawn([&] {
      auto mine = std::make_unique<int>(7);
      try {
        q.put(std::move(mine));
      } catch (const corelet::Cancelled&) {
        cancelled_value = mine ? *mine : -1;
        throw;
      }
    });
    yield_n(2);
    cancelled_thrown = cancel_and_join(victim);
    q.shutdown();
    EXPECT_TRUE(throws_shut_down([&] { q.put(std::move(p)); }));
    kept.push_back(p != nullptr);
    auto first = q.get();  // the one queued before the shutdown
    EXPECT_TRUE(first && *first == 0);
  });
  EXPECT_EQ(kept, (std::vector<bool>{true, true, true, true}));
  EXPECT_TRUE(cancelled_thrown);
  EXPECT_EQ(cancelled_value, 7);
}

// ---------------------------------------------------------------------------
// Table: calls that would park are UsageErrors naming the call outside any
// tasklet.

struct OutsideCase {
  const char* call;
  std::function<void()> body;
};
void PrintTo(const OutsideCase& c, std::ostream* os) { *os << c.call; }

const OutsideCase kOutsideCases[] = {
    {"Queue::get", [] { Queue<int> q; (void)q.get(); }},
    {"Queue::get_for", [] { Queue<int> q; (void)q.get_for(1s); }},
    {"Queue::get_until", [] { Queue<int> q; (void)q.get_until(Clock::now() + 1s); }},
    {"Queue::put", [] { Queue<int> q(1); (void)q.try_put(0); q.put(1); }},
    {"Queue::put_for", [] { Queue<int> q(1); (void)q.try_put(0); (void)q.put_for(1, 1s); }},
    {"Queue::put_until", [] { Queue<int> q(1); (void)q.try_put(0); (void)q.put_until(1, Clock::now() + 1s); }},
    {"Queue::join", [] { Queue<int> q; (void)q.try_put(0); q.join(); }},
};

class QueueOutsideTaskletTest : public CoreletTestP<OutsideCase> {};

TEST_P(QueueOutsideTaskletTest, IsUsageErrorNamingTheCall) {
  expect_usage_error(GetParam().body, GetParam().call);
}

INSTANTIATE_TEST_SUITE_P(Calls, QueueOutsideTaskletTest, ::testing::ValuesIn(kOutsideCases),
                         [](const auto& p) { return test_name(p.param.call); });

// ---------------------------------------------------------------------------
// Table over (kind x blocking call): the parked call is cancelled. It throws
// Cancelled, its stack unwinds, nothing was put or got, and the next waiter of
// the same kind is served instead.

// A putter parked on a full queue is cancelled; its item never enters.
template <class Q>
void cancel_blocked_put(const std::function<void(Q&)>& put_7) {
  Q q(1);
  bool unwound = false;
  bool returned = false;
  bool cancelled_thrown = false;
  int first = -1;
  std::vector<int> left;
  std::size_t unfinished = 0;
  corelet::run([&] {
    q.put(1);
    auto victim = corelet::spawn([&] {
      Sentinel s{&unwound};
      put_7(q);
      returned = true;
    });
    auto second = corelet::spawn([&] { q.put(8); });
    yield_n(3);
    cancelled_thrown = cancel_and_join(victim);
    first = q.get();  // makes room: for `second`, not the cancelled victim
    second.join();
    while (auto v = q.try_get()) left.push_back(*v);
    unfinished = q.unfinished_tasks();
  });
  EXPECT_TRUE(cancelled_thrown);
  EXPECT_TRUE(unwound);
  EXPECT_FALSE(returned);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(left, (std::vector<int>{8}));
  EXPECT_EQ(unfinished, 2u);  // 1 and 8 were put; 7 never was
}

// A getter parked on an empty queue is cancelled; it takes nothing.
template <class Q>
void cancel_blocked_get(const std::function<void(Q&)>& get) {
  Q q;
  bool unwound = false;
  bool returned = false;
  bool cancelled_thrown = false;
  int second_got = -1;
  corelet::run([&] {
    auto victim = corelet::spawn([&] {
      Sentinel s{&unwound};
      get(q);
      returned = true;
    });
    auto second = corelet::spawn([&] { second_got = q.get(); });
    yield_n(3);
    cancelled_thrown = cancel_and_join(victim);
    q.put(5);  // must reach `second`
    second.join();
  });
  EXPECT_TRUE(cancelled_thrown);
  EXPECT_TRUE(unwound);
  EXPECT_FALSE(returned);
  EXPECT_EQ(second_got, 5);
  EXPECT_TRUE(q.empty());
}

// A joiner parked on unfinished work is cancelled; other joiners still return.
template <class Q>
void cancel_blocked_join(const std::function<void(Q&)>& join) {
  Q q;
  bool unwound = false;
  bool returned = false;
  bool cancelled_thrown = false;
  bool second_returned = false;
  corelet::run([&] {
    q.put(1);
    (void)q.get();
    auto victim = corelet::spawn([&] {
      Sentinel s{&unwound};
      join(q);
      returned = true;
    });
    auto second = corelet::spawn([&] {
      q.join();
      second_returned = true;
    });
    yield_n(3);
    cancelled_thrown = cancel_and_join(victim);
    EXPECT_FALSE(second_returned);
    q.task_done();
    second.join();
  });
  EXPECT_TRUE(cancelled_thrown);
  EXPECT_TRUE(unwound);
  EXPECT_FALSE(returned);
  EXPECT_TRUE(second_returned);
  EXPECT_EQ(q.unfinished_tasks(), 0u);
}

struct CancelCase {
  std::string name;
  std::function<void()> body;
};
void PrintTo(const CancelCase& c, std::ostream* os) { *os << c.name; }

template <class Q>
void add_cancel_cases(std::vector<CancelCase>& out) {
  const std::string k = Kind<Q>::name;
  out.push_back({k + "_put", [] { cancel_blocked_put<Q>([](Q& q) { q.put(7); }); }});
  out.push_back({k + "_put_for", [] { cancel_blocked_put<Q>([](Q& q) { (void)q.put_for(7, 1h); }); }});
  out.push_back({k + "_put_until",
                 [] { cancel_blocked_put<Q>([](Q& q) { (void)q.put_until(7, Clock::now() + 1h); }); }});
  out.push_back({k + "_get", [] { cancel_blocked_get<Q>([](Q& q) { (void)q.get(); }); }});
  out.push_back({k + "_get_for", [] { cancel_blocked_get<Q>([](Q& q) { (void)q.get_for(1h); }); }});
  out.push_back({k + "_get_until",
                 [] { cancel_blocked_get<Q>([](Q& q) { (void)q.get_until(Clock::now() + 1h); }); }});
  out.push_back({k + "_join", [] { cancel_blocked_join<Q>([](Q& q) { q.join(); }); }});
  out.push_back({k + "_join_for", [] { cancel_blocked_join<Q>([](Q& q) { (void)q.join_for(1h); }); }});
  out.push_back({k + "_join_until",
                 [] { cancel_blocked_join<Q>([](Q& q) { (void)q.join_until(Clock::now() + 1h); }); }});
}

std::vector<CancelCase> all_cancel_cases() {
  std::vector<CancelCase> out;
  add_cancel_cases<Queue<int>>(out);
  add_cancel_cases<LifoQueue<int>>(out);
  add_cancel_cases<PriorityQueue<int>>(out);
  return out;
}

class QueueCancelTest : public CoreletTestP<CancelCase> {};

TEST_P(QueueCancelTest, BlockedCallThrowsCancelledAndChangesNothing) { GetParam().body(); }

INSTANTIATE_TEST_SUITE_P(Calls, QueueCancelTest, ::testing::ValuesIn(all_cancel_cases()),
                         [](const auto& p) { return test_name(p.param.name); });

}  // namespace
