// corelet.Channel: Stackless-style channels between Python tasklets of one
// scheduler. Rendezvous (capacity 0: a send waits for its receiver) or
// buffered (a send waits only while `capacity` values are queued). Values are
// handed over by reference, never copied.

#include "tasklet.hpp"

#include <corelet/sched/channel.hpp>
#include <corelet/sched/errors.hpp>

#include <optional>
#include <string>

namespace corelet::py {
namespace {

// The channel is sched's Channel<T> of Python objects: its non-blocking core
// (try_put / try_take / enlist_*) serves the stackless operations below as it
// serves fiber tasklets and select. Values move by reference, never copied.
class Channel : public corelet::Channel<pyb::object> {
 public:
  using corelet::Channel<pyb::object>::Channel;
  // Every op parked on the channel holds a reference to it, so no waiter is
  // left at destruction; only the buffered values are (released by the base).

  // Tasklets of two schedulers (two corelet.run on two threads) must not
  // meet on one channel: a wake would go to the wrong ready queue.
  void check_here() const {
    if (!waiters_are_here()) throw UsageError(not_here_message("Channel"));
  }
};

// What a send and a receive share: the channel (kept alive), the deadline,
// the waiter, and begin(): complete at once if the channel allows
// (try_now), else a timeout now or a park on the channel's queue (link). As
// cases of select they use try_now / link / fired the same way.
class ChannelOp : public Op {
 public:
  ChannelOp(pyb::object ch, Clock::time_point deadline)
      : ch_obj_(std::move(ch)), ch_(ch_obj_.cast<Channel&>()), deadline_(deadline) {}
  Begin begin(PyTasklet& t) override {
    PyObject* v = nullptr;
    switch (try_now(t, &v)) {
      case 1: t.give(v); return Begin::Done;
      case -1: return Begin::Done;
      default: break;
    }
    if (deadline_ <= Clock::now()) {
      t.raise_new(PyExc_TimeoutError, std::string("corelet: ") + what() + ": timed out");
      return Begin::Done;
    }
    w_.tasklet = &t;
    link(t, w_);
    t.waiters = &w_;
    return park(t, *this, &ch_, deadline_) ? Begin::Parked : Begin::Done;
  }
  bool selectable() const noexcept override { return true; }

 protected:
  using Try = Channel::Try;
  pyb::object ch_obj_;
  Channel& ch_;
  Clock::time_point deadline_;
  primitive::Waiter w_;
};

class RecvOp final : public ChannelOp {
 public:
  RecvOp(pyb::object ch, Clock::time_point deadline, bool async_iter)
      : ChannelOp(std::move(ch), deadline), async_iter_(async_iter) {}
  int try_now(PyTasklet& t, PyObject** value) override {
    ch_.check_here();
    switch (ch_.try_take(value_)) {
      case Try::Done: *value = value_->release().ptr(); return 1;
      case Try::Closed: closed(t); return -1;
      case Try::Wait: break;
    }
    return 0;
  }
  void link(PyTasklet&, primitive::Waiter& w) override { ch_.enlist_receiver(w, value_); }
  int fired(PyTasklet& t, primitive::Waiter& w, PyObject** value) override {
    if (w.state == primitive::Waiter::State::Closed) {
      closed(t);
      return -1;
    }
    *value = value_->release().ptr();
    return 1;
  }
  bool end(PyTasklet& t) override {
    if (t.wake == primitive::Wake::Notified && w_.state == primitive::Waiter::State::Closed) {
      closed(t);
      return true;
    }
    PyObject* got = value_ ? value_->release().ptr() : nullptr;
    return end_waiter(t, w_, got, "corelet: Channel.recv", g_exc.channel_closed);
  }
  const char* what() const noexcept override { return "Channel.recv"; }

 private:
  void closed(PyTasklet& t) {
    if (async_iter_) t.raise_new(PyExc_StopAsyncIteration, "");
    else t.raise_new(g_exc.channel_closed, "corelet: Channel.recv: the channel is closed and empty");
  }
  bool async_iter_;
  std::optional<pyb::object> value_;
};

class SendOp final : public ChannelOp {
 public:
  SendOp(pyb::object ch, pyb::object value, Clock::time_point deadline)
      : ChannelOp(std::move(ch), deadline), value_(std::move(value)) {}
  int try_now(PyTasklet& t, PyObject** value) override {
    ch_.check_here();
    if (ch_.closed()) {
      t.raise_new(g_exc.channel_closed, "corelet: Channel.send: the channel is closed");
      return -1;
    }
    if (!value_) {
      t.raise_new(g_exc.usage, "corelet: Channel.send: this send operation was already used");
      return -1;
    }
    if (ch_.try_put(value_) != Try::Done) return 0;
    *value = Py_NewRef(Py_None);
    return 1;
  }
  void link(PyTasklet&, primitive::Waiter& w) override { ch_.enlist_sender(w, value_); }
  int fired(PyTasklet& t, primitive::Waiter& w, PyObject** value) override {
    if (w.state == primitive::Waiter::State::Closed) {
      t.raise_new(g_exc.channel_closed, "corelet: Channel.send: the channel is closed");
      return -1;
    }
    *value = Py_NewRef(Py_None);
    return 1;
  }
  bool end(PyTasklet& t) override {
    PyObject* none = nullptr;  // a send resumes with None; the value stays ours unless taken
    return end_waiter(t, w_, none, "corelet: Channel.send", g_exc.channel_closed);
  }
  const char* what() const noexcept override { return "Channel.send"; }

 private:
  pyb::object value_;  // null once sent
};

}  // namespace

void bind_channel(pyb::module_& m) {
  pyb::class_<ChannelOp, Op>(m, "_ChannelOp");
  pyb::class_<RecvOp, ChannelOp>(m, "_Recv");
  pyb::class_<SendOp, ChannelOp>(m, "_Send");
  pyb::class_<Channel>(m, "Channel",
                       "Channel(capacity=0): values between tasklets. capacity 0 is a rendezvous (send waits\n"
                       "for a receiver); otherwise send waits only while capacity values are buffered.")
      .def(pyb::init([](long capacity) {
             if (capacity < 0) throw pyb::value_error("corelet.Channel: capacity must be >= 0");
             return new Channel(static_cast<std::size_t>(capacity));
           }),
           pyb::arg("capacity") = 0)
      .def(
          "send",
          [](pyb::object self, pyb::object value, pyb::object timeout) {
            return new SendOp(self, std::move(value), deadline_from(timeout, "corelet: Channel.send"));
          },
          pyb::arg("value"), pyb::arg("timeout") = pyb::none(),
          "send(value, timeout=None) -> operation: `yield ch.send(v)` / `await ch.send(v)`.\n"
          "Raises ChannelClosed if the channel is (or gets) closed, TimeoutError after timeout seconds.")
      .def(
          "recv",
          [](pyb::object self, pyb::object timeout) {
            return new RecvOp(self, deadline_from(timeout, "corelet: Channel.recv"), false);
          },
          pyb::arg("timeout") = pyb::none(),
          "recv(timeout=None) -> operation: `v = yield ch.recv()` / `v = await ch.recv()`.\n"
          "Raises ChannelClosed once the channel is closed and empty, TimeoutError after timeout seconds.")
      .def(
          "send_nowait",
          [](Channel& ch, pyb::object value) {
            if (ch.closed()) {
              PyErr_SetString(g_exc.channel_closed, "corelet: Channel.send_nowait: the channel is closed");
              throw pyb::error_already_set();
            }
            ch.check_here();
            return ch.try_put(value) == Channel::Try::Done;
          },
          pyb::arg("value"), "Sends without waiting; False (value not sent) if that would wait.")
      .def(
          "recv_nowait",
          [](Channel& ch) -> pyb::object {
            ch.check_here();
            std::optional<pyb::object> v;
            const Channel::Try got = ch.try_take(v);
            if (got == Channel::Try::Done) return std::move(*v);
            if (got == Channel::Try::Closed) {
              PyErr_SetString(g_exc.channel_closed, "corelet: Channel.recv_nowait: the channel is closed and empty");
              throw pyb::error_already_set();
            }
            throw pyb::value_error("corelet: Channel.recv_nowait: no value is ready");
          },
          "Receives without waiting; ValueError if no value is ready.")
      .def(
          "close",
          [](Channel& ch) {
            ch.check_here();
            ch.close();
          },
           "No more sends: waiting senders get ChannelClosed; receivers get the buffered values, then\n"
           "ChannelClosed.")
      .def_property_readonly("closed", [](const Channel& ch) { return ch.closed(); })
      .def_property_readonly("capacity", [](const Channel& ch) { return ch.capacity(); })
      .def_property_readonly("balance", [](const Channel& ch) { return ch.balance(); },
                             "Senders waiting (> 0) or receivers waiting (< 0), as in Stackless.")
      .def("__len__", [](const Channel& ch) { return ch.size(); }, "Buffered values.")
      .def("__aiter__", [](pyb::object self) { return self; })
      .def("__anext__",
           [](pyb::object self) { return new RecvOp(self, Clock::time_point::max(), true); })
      .def("__iter__", [](pyb::object) -> pyb::object {
        throw pyb::type_error(
            "corelet.Channel: iterate with `async for v in ch` in an async def tasklet; in a generator "
            "tasklet use `v = yield ch.recv()` until it raises corelet.ChannelClosed");
      });
}

}  // namespace corelet::py
