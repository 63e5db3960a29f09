#pragma once
// corelet/ipc/pool.hpp — Pool: a function over many inputs, on every worker.
//
//   corelet::Pool pool;                                  // all workers, this one too
//   std::vector<long> sq = pool.map(square, inputs);     // in input order
//   auto f = pool.apply_async(count_primes, 400000);     // a Future
//   for (auto r : pool.imap_unordered(square, inputs)) ...  // as they finish (a Generator)
//
// Inputs travel in chunks (one message per chunk, one tasklet per chunk on
// the worker that runs it); each worker is given its next chunk when one in
// flight returns (a remote worker has a second one queued while at least one
// chunk per worker is left), so faster workers do more. Chunks for this
// worker run here, in a tasklet of the caller's worker, after the remote
// chunks have been sent.
//
// Failure: a chunk whose worker dies fails with WorkerLost; a chunk that
// throws fails with RemoteError. map() and imap_unordered() stop handing out
// chunks at the first failure, wait for the chunks in flight, and throw it.
// A worker found dead (being restarted) is skipped: the others take its
// share. Functions must be registered with CORELET_REMOTE.

#include <corelet/ipc/remote.hpp>
#include <corelet/sched/generator.hpp>
#include <corelet/sched/task.hpp>

#include <algorithm>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace corelet {

namespace ipc::detail {

// ChunkState — a chunk call's state: the results of `count` inputs.
template <class R>
struct ChunkState final : CallBase {
  std::vector<R> results;
  void complete(Decoder& in) override {
    const auto n = in.get<std::uint32_t>();
    results.reserve(n);
    for (std::uint32_t i = 0; i < n; ++i) results.push_back(in.get<R>());
  }
};
template <>
struct ChunkState<void> final : CallBase {
  void complete(Decoder& in) override { (void)in.get<std::uint32_t>(); }
};

// flush_now — publishes this worker's outbound messages at once (before a
// local chunk keeps the thread busy).
void flush_now() noexcept;

}  // namespace ipc::detail

class Pool {
 public:
  // Pool — over every worker of the cluster (this one included). UsageError
  // outside a cluster.
  Pool();
  // Pool(workers) — over the given workers (each once). std::out_of_range for
  // a bad id, std::invalid_argument if empty.
  explicit Pool(std::vector<int> workers);

  const std::vector<int>& workers() const noexcept { return workers_; }

  // map — [fn(x) for x in inputs], in input order. chunksize 0: about four
  // chunks per worker. Parks the calling tasklet, with no timeout. Throws as
  // said above. Cancellation of the caller: the pool's tasklets are cancelled
  // and waited for (a local chunk being computed finishes; remote chunks
  // finish on their workers and their results are dropped), then Cancelled
  // is thrown.
  template <class R, class P, class A>
  std::vector<std::decay_t<R>> map(R (*fn)(P), const std::vector<A>& inputs, std::size_t chunksize = 0) {
    using T = std::decay_t<R>;
    static_assert(!std::is_void_v<T>, "corelet::Pool::map: use for_each-style apply_async for void functions");
    std::vector<std::optional<T>> slots(inputs.size());
    run_chunks(fn, inputs, chunksize, [&](std::size_t first, std::vector<T>&& rs) {
      for (std::size_t i = 0; i < rs.size(); ++i) slots[first + i].emplace(std::move(rs[i]));
    });
    std::vector<T> out;
    out.reserve(slots.size());
    for (auto& s : slots) out.push_back(std::move(*s));
    return out;
  }

  // imap_unordered — the results of fn over inputs, in the order they finish,
  // as a Generator (for (T r : results), or next()): its body, a tasklet of
  // its own started at the first request, runs the chunks with its own copy
  // of the inputs and of the pool, and hands each result over as it comes. A
  // failure is thrown after the results that came before it. Destroying the
  // generator early cancels the work (chunks in flight still finish remotely).
  template <class R, class P, class A>
  Generator<std::decay_t<R>> imap_unordered(R (*fn)(P), std::vector<A> inputs, std::size_t chunksize = 0) {
    using T = std::decay_t<R>;
    return Generator<T>(
        [pool = *this, fn, in = std::move(inputs), chunksize](Yield<T>& yield) mutable {
          pool.run_chunks(fn, in, chunksize, [&](std::size_t, std::vector<T>&& rs) {
            for (auto& r : rs) yield(std::move(r));
          });
        },
        SpawnOptions{.name = "Pool::imap_unordered"});
  }

  // apply_async — fn(args...) on the next worker in turn; see spawn_on.
  template <class R, class... P, class... A>
  Future<std::decay_t<R>> apply_async(R (*fn)(P...), A&&... args) {
    const int w = workers_[next_++ % workers_.size()];
    return spawn_on(w, fn, std::forward<A>(args)...);
  }

 private:
  // run_chunks — the engine of map and imap_unordered: deliver(first index,
  // results) for every chunk, in completion order.
  template <class R, class P, class A, class Deliver>
  void run_chunks(R (*fn)(P), const std::vector<A>& inputs, std::size_t chunksize, Deliver&& deliver) {
    using T = std::decay_t<R>;
    using In = std::decay_t<P>;
    ipc::detail::check_wire_type<P>();
    ipc::detail::require_cluster("Pool::map");
    const auto& entry = ipc::detail::require_remote(reinterpret_cast<ipc::detail::FnKey>(fn), "Pool::map");
    const std::size_t n = inputs.size();
    if (n == 0) return;
    if (chunksize == 0) chunksize = std::max<std::size_t>(1, (n + 4 * workers_.size() - 1) / (4 * workers_.size()));
    const std::size_t chunks = (n + chunksize - 1) / chunksize;
    std::size_t next = 0;
    std::exception_ptr first_error;
    // feed(w, prefetch): a feeder hands worker w one chunk at a time. A
    // remote worker has a second, prefetching feeder so that it never waits
    // for its next chunk; that one stands back while there are fewer chunks
    // left than workers, which must each get one first.
    auto feed = [&](int w, bool prefetch) {
      while (!first_error && next < chunks) {
        if (!worker_alive(w)) return;  // being restarted: the others take its share
        if (prefetch && chunks - next < workers_.size()) return;
        const std::size_t c = next++;
        const std::size_t lo = c * chunksize;
        const std::size_t hi = std::min(n, lo + chunksize);
        try {
          if (w == this_worker()) {
            ipc::detail::flush_now();  // the remote chunks must be on their way first
            std::vector<T> rs;
            rs.reserve(hi - lo);
            try {
              for (std::size_t i = lo; i < hi; ++i) rs.push_back(fn(static_cast<In>(inputs[i])));
            } catch (const Cancelled&) {
              throw;
            } catch (...) {
              auto [type, msg] = ipc::detail::current_exception_info();
              throw RemoteError(type, msg, w);
            }
            deliver(lo, std::move(rs));
            this_tasklet::yield();  // let replies in between local chunks
          } else {
            std::string msg = ipc::detail::call_prologue(entry, ipc::detail::kCallChunk);
            ipc::Encoder enc(msg);
            enc.put(static_cast<std::uint32_t>(hi - lo));
            for (std::size_t i = lo; i < hi; ++i) enc.put(static_cast<In>(inputs[i]));
            auto st = std::make_shared<ipc::detail::ChunkState<T>>();
            st->worker = w;
            st->task = entry.name + " (Pool chunk " + std::to_string(c) + ")";
            ipc::detail::start_call(w, std::move(msg), st);
            while (!st->done) corelet::primitive::wait_on(st->waiters, "Pool chunk", st.get(), Clock::time_point::max(), WaitKind::Remote);
            if (st->error) std::rethrow_exception(st->error);
            deliver(lo, std::move(st->results));
          }
        } catch (const Cancelled&) {
          if (!first_error) first_error = std::current_exception();
          return;
        } catch (...) {
          if (!first_error) first_error = std::current_exception();
          return;
        }
      }
    };
    // Every feeder ends before we return: they use this frame. A cancel of
    // the caller (once or repeatedly) cancels them and still waits for each.
    std::vector<Task<void>> tasks;
    bool cancelled = false;
    auto wait_all = [&] {
      for (auto& t : tasks) {
        while (!t.done()) {
          try {
            t.wait_until(Clock::time_point::max());
          } catch (const Cancelled&) {
            if (!cancelled) {
              cancelled = true;
              for (auto& u : tasks) u.cancel();
            }
          }
        }
        t.join();  // ended: returns at once (feeders catch everything)
      }
    };
    try {
      // Remote feeders first: they send their chunks and park before this
      // worker's own feeder starts computing (it does not yield mid-chunk).
      // Then the prefetching ones, then the local one.
      for (int pass = 0; pass < 3; ++pass)
        for (int w : workers_) {
          const bool local = w == this_worker();
          if ((pass == 2) != local) continue;
          const bool prefetch = pass == 1;
          tasks.push_back(spawn(SpawnOptions{.name = "Pool feeder"}, [&feed, w, prefetch] { feed(w, prefetch); }));
        }
    } catch (...) {  // could not start them all: stop the ones that run
      for (auto& t : tasks) t.cancel();
      wait_all();
      throw;
    }
    wait_all();
    if (cancelled) throw Cancelled{};
    if (first_error) std::rethrow_exception(first_error);
    if (next < chunks) {
      // Every worker was found dead on the way: none of them is left to ask.
      throw UsageError("corelet::Pool: no worker of the pool is alive");
    }
  }

  std::vector<int> workers_;
  std::size_t next_ = 0;
};

}  // namespace corelet
