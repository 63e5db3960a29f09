// corelet.Channel: Stackless-style channels between Python tasklets of one
// scheduler. Rendezvous (capacity 0: a send waits for its receiver) or
// buffered (a send waits only while `capacity` values are queued). Values are
// handed over by reference, never copied.

#include "tasklet.hpp"

#include <corelet/sched/errors.hpp>

#include <deque>
#include <string>

namespace corelet::py {
namespace {

class Channel {
 public:
  explicit Channel(std::size_t capacity) : capacity_(capacity) {}
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  ~Channel() {
    // Every op parked on the channel holds a reference to it, so no waiter is
    // left; only the buffered values are.
    for (PyObject* v : buf_) Py_DECREF(v);
  }

  // Tasklets of two schedulers (two corelet.run on two threads) must not
  // meet on one channel: a wake would go to the wrong ready queue.
  void check_here() const {
    for (const detail::WaitQueue* q : {&senders_, &receivers_})
      if (!q->empty() && !detail::on_this_scheduler(q->head->tasklet))
        throw UsageError("corelet: Channel: tasklets of another corelet.run (another thread, or a run that ended) "
                         "wait on this channel; a channel belongs to one scheduler");
  }

  // A receive that need not wait: the next value (new reference), or nullptr.
  PyObject* take() {
    check_here();
    if (!buf_.empty()) {
      PyObject* v = buf_.front();
      buf_.pop_front();
      if (detail::Waiter* s = senders_.pop_front()) {  // a waiting sender's value fills the slot
        buf_.push_back(steal(*static_cast<PyObject**>(s->slot)));
        s->state = detail::Waiter::State::Done;
        detail::unpark(s->tasklet);
      }
      return v;
    }
    if (detail::Waiter* s = senders_.pop_front()) {  // rendezvous: straight from the sender
      PyObject* v = steal(*static_cast<PyObject**>(s->slot));
      s->state = detail::Waiter::State::Done;
      detail::unpark(s->tasklet);
      return v;
    }
    return nullptr;
  }

  // A send that need not wait: true if *value (stolen then) went to a
  // receiver or into the buffer.
  bool put(PyObject*& value) {
    check_here();
    if (detail::Waiter* r = receivers_.pop_front()) {
      *static_cast<PyObject**>(r->slot) = steal(value);
      r->state = detail::Waiter::State::Done;
      detail::unpark(r->tasklet);
      return true;
    }
    if (buf_.size() < capacity_) {
      buf_.push_back(steal(value));
      return true;
    }
    return false;
  }

  void close() {
    check_here();
    closed_ = true;
    detail::wake_all(receivers_, detail::Waiter::State::Closed);  // they wait: the buffer is empty
    detail::wake_all(senders_, detail::Waiter::State::Closed);
  }

  bool closed() const noexcept { return closed_; }
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t size() const noexcept { return buf_.size(); }
  // Stackless's balance: senders waiting (> 0) or receivers waiting (< 0).
  long balance() const noexcept { return static_cast<long>(senders_.size()) - static_cast<long>(receivers_.size()); }

  detail::WaitQueue senders_;
  detail::WaitQueue receivers_;

 private:
  std::size_t capacity_;
  std::deque<PyObject*> buf_;
  bool closed_ = false;
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
  pyb::object ch_obj_;
  Channel& ch_;
  Clock::time_point deadline_;
  detail::Waiter w_;
};

class RecvOp final : public ChannelOp {
 public:
  RecvOp(pyb::object ch, Clock::time_point deadline, bool async_iter)
      : ChannelOp(std::move(ch), deadline), async_iter_(async_iter) {}
  ~RecvOp() override { Py_XDECREF(value_); }
  int try_now(PyTasklet& t, PyObject** value) override {
    if ((*value = ch_.take())) return 1;
    if (!ch_.closed()) return 0;
    closed(t);
    return -1;
  }
  void link(PyTasklet&, detail::Waiter& w) override {
    Py_CLEAR(value_);
    w.slot = &value_;
    w.state = detail::Waiter::State::Pending;
    ch_.receivers_.push_back(&w);
  }
  int fired(PyTasklet& t, detail::Waiter& w, PyObject** value) override {
    if (w.state == detail::Waiter::State::Closed) {
      closed(t);
      return -1;
    }
    *value = steal(value_);
    return 1;
  }
  bool end(PyTasklet& t) override {
    if (t.wake == detail::Wake::Notified && w_.state == detail::Waiter::State::Closed) {
      closed(t);
      return true;
    }
    return end_waiter(t, w_, value_, "corelet: Channel.recv", g_exc.channel_closed);
  }
  const char* what() const noexcept override { return "Channel.recv"; }

 private:
  void closed(PyTasklet& t) {
    if (async_iter_) t.raise_new(PyExc_StopAsyncIteration, "");
    else t.raise_new(g_exc.channel_closed, "corelet: Channel.recv: the channel is closed and empty");
  }
  bool async_iter_;
  PyObject* value_ = nullptr;
};

class SendOp final : public ChannelOp {
 public:
  SendOp(pyb::object ch, pyb::object value, Clock::time_point deadline)
      : ChannelOp(std::move(ch), deadline), value_(value.release().ptr()) {}
  ~SendOp() override { Py_XDECREF(value_); }
  int try_now(PyTasklet& t, PyObject** value) override {
    if (ch_.closed()) {
      t.raise_new(g_exc.channel_closed, "corelet: Channel.send: the channel is closed");
      return -1;
    }
    if (!value_) {
      t.raise_new(g_exc.usage, "corelet: Channel.send: this send operation was already used");
      return -1;
    }
    if (!ch_.put(value_)) return 0;
    *value = Py_NewRef(Py_None);
    return 1;
  }
  void link(PyTasklet&, detail::Waiter& w) override {
    w.slot = &value_;
    w.state = detail::Waiter::State::Pending;
    ch_.senders_.push_back(&w);
  }
  int fired(PyTasklet& t, detail::Waiter& w, PyObject** value) override {
    if (w.state == detail::Waiter::State::Closed) {
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
  PyObject* value_;
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
            PyObject* v = value.release().ptr();
            if (ch.put(v)) return true;
            Py_DECREF(v);
            return false;
          },
          pyb::arg("value"), "Sends without waiting; False (value not sent) if that would wait.")
      .def(
          "recv_nowait",
          [](Channel& ch) -> pyb::object {
            if (PyObject* v = ch.take()) return pyb::reinterpret_steal<pyb::object>(v);
            if (ch.closed()) {
              PyErr_SetString(g_exc.channel_closed, "corelet: Channel.recv_nowait: the channel is closed and empty");
              throw pyb::error_already_set();
            }
            throw pyb::value_error("corelet: Channel.recv_nowait: no value is ready");
          },
          "Receives without waiting; ValueError if no value is ready.")
      .def("close", &Channel::close,
           "No more sends: waiting senders get ChannelClosed; receivers get the buffered values, then\n"
           "ChannelClosed.")
      .def_property_readonly("closed", &Channel::closed)
      .def_property_readonly("capacity", &Channel::capacity)
      .def_property_readonly("balance", &Channel::balance,
                             "Senders waiting (> 0) or receivers waiting (< 0), as in Stackless.")
      .def("__len__", &Channel::size, "Buffered values.")
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
