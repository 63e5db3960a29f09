// The Python face of corelet's cross-process primitives: the binding of
// <corelet/ipc/queue.hpp> and <corelet/ipc/sync.hpp> (ShmQueue, ShmLock,
// ShmRLock, ShmSemaphore, ShmEvent, ShmCondition, ShmBarrier), and
// SharedMemory: memory for Value and Array, and raw words.
//
// Each object lives in its own ipc::Mapping, inherited by the processes
// forked after it is made (corelet.Process, corelet.run(workers=N)). The
// protocols, their memory ordering and the dead-holder rules are ipc's; this
// file only adds:
// - Python's encodings on a Queue: each message's kind byte says how get()
//   turns it back into an object (str and bytes cross as they are, the rest
//   as pickle, or corelet._wire where pickle alone fails);
// - waits in plain code with the GIL released and Ctrl-C seen (the futex
//   thread hooks below);
// - waits in a tasklet as operations (IpcWaitOp): the ipc call runs in a
//   small fiber, parked on the futex word until the other side's change wakes
//   it; no polling, and the Python frames stay on the loop's stack.
// - the fast paths of Queue.put / get and Lock.acquire / release as
//   METH_FASTCALL functions (no pybind11 argument packing on every call).

#include "fiber_op.hpp"
#include "tasklet.hpp"

#include <structmember.h>  // PyMemberDef, T_OBJECT_EX

#include <corelet/ipc/mapping.hpp>
#include <corelet/ipc/queue.hpp>
#include <corelet/ipc/sync.hpp>
#include <corelet/sched/futex.hpp>

#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstring>
#include <functional>
#include <memory>
#include <string>

namespace corelet::py {
namespace {

// ---- waits in plain code ----
//
// The GIL around a blocking wait, without RAII: a daemon thread that wakes
// while the interpreter finalizes must not take it back (Python 3.11 would
// end the thread with pthread_exit, whose unwinding cannot pass a destructor
// or a noexcept frame): it waits for the process to end instead, as CPython
// 3.14 makes such threads do.
thread_local PyThreadState* tl_saved = nullptr;
void gil_release() { tl_saved = PyEval_SaveThread(); }
void gil_restore() {
  if (_Py_IsFinalizing()) {
    for (;;) ::pause();
  }
  PyEval_RestoreThread(tl_saved);
}
void check_signals() {
  if (PyErr_CheckSignals() < 0) throw pyb::error_already_set();  // KeyboardInterrupt ends the wait
}
// 4,000 pauses: tens of microseconds, by the CPU's pause latency (a busy
// producer's next message).
const FutexThreadHooks kPyWaits{gil_release, gil_restore, check_signals, 4000};

// While one lives, this thread's ipc waits release the GIL and see Ctrl-C.
class PlainWaits {
 public:
  PlainWaits() noexcept { set_futex_thread_hooks(&kPyWaits); }
  ~PlainWaits() { set_futex_thread_hooks(nullptr); }
  PlainWaits(const PlainWaits&) = delete;
  PlainWaits& operator=(const PlainWaits&) = delete;
};

// A timeout of a non-blocking call: no wait at all.
constexpr Clock::time_point kNoWait = Clock::time_point::min();

// ---- waits in a tasklet ----

// IpcWaitOp — a wait on an ipc primitive, as an operation: run() (in the
// fiber: C++ only, no GIL use) does the blocking call, value() (under the
// GIL) turns its result into the tasklet's value or error. `keep` holds the
// primitive's mapping (and any buffer run() reads) until the op is gone.
class IpcWaitOp final : public FiberOp {
 public:
  using Run = std::function<long()>;
  using Value = std::function<PyObject*(long)>;
  IpcWaitOp(std::string what, Run run, Value value, std::shared_ptr<void> keep, PyObject* closed_type = nullptr,
            const char* closed_msg = nullptr)
      : FiberOp(std::move(what)), run_(std::move(run)), value_(std::move(value)), keep_(std::move(keep)),
        closed_type_(closed_type), closed_msg_(closed_msg) {}
  WaitKind kind() const noexcept override { return WaitKind::Sync; }

 private:
  long run() override { return run_(); }
  PyObject* value(long r) override { return value_(r); }
  bool translate(PyTasklet& t, const std::exception_ptr& e) override {
    if (!closed_type_) return false;
    try {
      std::rethrow_exception(e);
    } catch (const QueueShutDown&) {
      t.raise_new(closed_type_, closed_msg_);
      return true;
    } catch (...) {
      return false;
    }
  }

  Run run_;
  Value value_;
  std::shared_ptr<void> keep_;
  PyObject* closed_type_;
  const char* closed_msg_;
};

// ---- the module's cached objects ----

struct Cached {
  PyObject* dumps = nullptr;  // pickle.dumps
  PyObject* loads = nullptr;  // pickle.loads
  PyObject* wire_dumps = nullptr;  // corelet._wire.dumps (cloudpickle where pickle fails)
  PyObject* wire_loads = nullptr;
  PyObject* full = nullptr;   // queue.Full
  PyObject* empty = nullptr;  // queue.Empty
  PyObject* protocol = nullptr;  // 5
  PyObject* ready = nullptr;  // corelet._corelet.ready
  PyObject* ready_none = nullptr;  // an operation complete at once, giving None
  PyObject* ready_true = nullptr;
  PyObject* ready_false = nullptr;
};
Cached g_c;

bool load_cache() {
  if (g_c.wire_dumps) return true;
  PyObject* pk = PyImport_ImportModule("pickle");
  PyObject* q = PyImport_ImportModule("queue");
  PyObject* w = PyImport_ImportModule("corelet._wire");
  PyObject* c = PyImport_ImportModule("corelet._corelet");
  bool ok = pk && q && w && c;
  if (ok) {
    g_c.dumps = PyObject_GetAttrString(pk, "dumps");
    g_c.loads = PyObject_GetAttrString(pk, "loads");
    g_c.full = PyObject_GetAttrString(q, "Full");
    g_c.empty = PyObject_GetAttrString(q, "Empty");
    g_c.ready = PyObject_GetAttrString(c, "ready");
    g_c.protocol = PyLong_FromLong(5);
    g_c.ready_none = g_c.ready ? PyObject_CallOneArg(g_c.ready, Py_None) : nullptr;
    g_c.ready_true = g_c.ready ? PyObject_CallOneArg(g_c.ready, Py_True) : nullptr;
    g_c.ready_false = g_c.ready ? PyObject_CallOneArg(g_c.ready, Py_False) : nullptr;
    PyObject* wd = PyObject_GetAttrString(w, "dumps");
    PyObject* wl = PyObject_GetAttrString(w, "loads");
    ok = g_c.dumps && g_c.loads && g_c.full && g_c.empty && g_c.ready && g_c.ready_none && g_c.ready_true &&
         g_c.ready_false && wd && wl;
    g_c.wire_loads = wl;
    g_c.wire_dumps = ok ? wd : nullptr;
    if (!ok) Py_XDECREF(wd);
  }
  Py_XDECREF(pk);
  Py_XDECREF(q);
  Py_XDECREF(w);
  Py_XDECREF(c);
  return ok;
}

// ---- primitives a spawned child can attach ----

// A primitive's T in anonymous shared memory (inherited by forked children),
// or, shareable, in a memfd whose descriptor a process started by exec
// receives (the 'spawn' and 'forkserver' start methods) and attaches.
template <class T, class... A>
ipc::Shared<T> make_primitive(bool shareable, A&&... args) {
  return shareable ? ipc::Shared<T>::make_shareable(std::forward<A>(args)...)
                   : ipc::Shared<T>::make(std::forward<A>(args)...);
}

template <class T>
ipc::Shared<T> attach_primitive(int fd, const char* what) {
  try {
    return ipc::Shared<T>::attach(fd);
  } catch (const std::invalid_argument& e) {
    throw pyb::value_error(std::string("corelet: ") + what + ".attach: " + e.what());
  }
}

// ---- SharedMemory: raw words ----

class SharedMemory {
 public:
  explicit SharedMemory(std::size_t size, bool shareable = false)
      : m_(shareable ? std::make_shared<ipc::Mapping>(size, ipc::Mapping::Shareable{})
                     : std::make_shared<ipc::Mapping>(size)) {}
  explicit SharedMemory(std::shared_ptr<ipc::Mapping> m) : m_(std::move(m)) {}
  int fileno() const noexcept { return m_->fd(); }
  std::byte* base() const noexcept { return m_->data(); }
  std::size_t size() const noexcept { return m_->size(); }
  std::atomic<std::uint32_t>& word(std::size_t offset) const {
    if (offset % 4 != 0 || offset + 4 > m_->size()) throw pyb::value_error("corelet: bad shared word offset");
    return *reinterpret_cast<std::atomic<std::uint32_t>*>(m_->data() + offset);
  }
  const std::shared_ptr<ipc::Mapping>& mapping() const noexcept { return m_; }

 private:
  std::shared_ptr<ipc::Mapping> m_;
};

// ---- Queue ----

// Message kinds (ipc::Queue's kind byte): how get() turns one back into an
// object. 0 is plain bytes, as a C++ process puts them.
constexpr std::uint8_t kBytes = 0, kPickle = 1, kStr = 2, kWire = 4;

class ShmQueue {
 public:
  // shareable: in a memfd (fileno()) that an unrelated process can attach.
  ShmQueue(std::size_t capacity, std::size_t maxsize, bool shareable = false) {
    if (capacity < ipc::Queue::kMinCapacity)
      throw pyb::value_error("corelet: a shared queue needs a buffer of at least 64 bytes");
    q_ = shareable ? ipc::Shared<ipc::Queue>::make_shareable(capacity, maxsize)
                   : ipc::Shared<ipc::Queue>::make(capacity, maxsize);
    maxsize_ = maxsize;
  }
  // The queue in the memfd fd, made by another process's shareable ShmQueue.
  explicit ShmQueue(ipc::Shared<ipc::Queue> q) : q_(std::move(q)) {
    if (ipc::Queue::footprint(q_->capacity()) > q_.mapping()->size())
      throw pyb::value_error("corelet: the descriptor does not hold a shared queue");
    maxsize_ = q_->maxsize();
  }
  int fileno() const noexcept { return q_.mapping()->fd(); }
  ipc::Queue& q() const noexcept { return *q_; }
  const ipc::Shared<ipc::Queue>& shared() const noexcept { return q_; }
  std::size_t maxsize() const noexcept { return maxsize_; }

  // A message that can never fit: the error names the buffer= argument.
  void check_fits(std::size_t payload) const {
    if (payload + ipc::Queue::kFrameBytes > q_->capacity())
      throw pyb::value_error("corelet: a message of " + std::to_string(payload) +
                             " bytes does not fit the shared queue's buffer (" + std::to_string(q_->capacity()) +
                             " bytes, 9 of them per message for framing); make the queue with a larger buffer");
  }

  bool poll(const pyb::object& timeout) {
    const Clock::time_point d = deadline_from(timeout, "Connection.poll");
    PlainWaits w;
    return q_->wait_readable(d);
  }
  bool join(const pyb::object& timeout) {
    const Clock::time_point d = deadline_from(timeout, "Queue.join");
    PlainWaits w;
    return q_->join(d);
  }
  void task_done() {
    try {
      q_->task_done();
    } catch (const UsageError&) {
      throw pyb::value_error("task_done() called too many times");
    }
  }
  PyObject* join_op() {
    auto q = q_;
    return op_object(new IpcWaitOp(
        "Queue.join", [q] { return q->join(Clock::time_point::max()) ? 1L : 0L; },
        [](long) { return Py_NewRef(Py_None); }, q.mapping()));
  }
  PyObject* poll_op(const pyb::object& timeout) {
    const Clock::time_point d = deadline_from(timeout, "Connection.poll");
    if (q_->wait_readable(kNoWait)) return Py_NewRef(g_c.ready_true);
    auto q = q_;
    return op_object(new IpcWaitOp(
        "Connection.poll", [q, d] { return q->wait_readable(d) ? 1L : 0L; },
        [](long r) { return PyBool_FromLong(r); }, q.mapping()));
  }

 private:
  ipc::Shared<ipc::Queue> q_;
  std::size_t maxsize_ = 0;
};

// take — the object for a message of `kind` whose payload is in a and b (b
// empty unless it wraps), under the queue's lock: a str in one piece is
// decoded straight from the ring, the rest is copied into a bytes object
// (nullptr with the Python error set).
PyObject* take(std::uint8_t kind, std::span<const std::byte> a, std::span<const std::byte> b) {
  if (kind == kStr && b.empty())
    return PyUnicode_DecodeUTF8(reinterpret_cast<const char*>(a.data()), static_cast<Py_ssize_t>(a.size()), "strict");
  PyObject* bytes = PyBytes_FromStringAndSize(nullptr, static_cast<Py_ssize_t>(a.size() + b.size()));
  if (!bytes) return nullptr;
  std::memcpy(PyBytes_AS_STRING(bytes), a.data(), a.size());
  if (!b.empty()) std::memcpy(PyBytes_AS_STRING(bytes) + a.size(), b.data(), b.size());
  return bytes;
}

// decode — what take() gave, as the object that was put, after the queue's
// lock is released (unpickling runs arbitrary code, which may use the queue).
// Steals `taken`; nullptr with the Python error set.
PyObject* decode(std::uint8_t kind, PyObject* taken) {
  if (!taken || kind == kBytes || !PyBytes_CheckExact(taken)) return taken;  // bytes, or a str already
  PyObject* r;
  switch (kind) {
    case kStr: r = PyUnicode_DecodeUTF8(PyBytes_AS_STRING(taken), PyBytes_GET_SIZE(taken), "strict"); break;
    case kPickle: r = PyObject_CallOneArg(g_c.loads, taken); break;
    default: r = PyObject_CallOneArg(g_c.wire_loads, taken); break;
  }
  Py_DECREF(taken);
  return r;
}

// get_now — takes the next message if there is one, waiting until the
// deadline: 1 (*out set), 0 (none), -1 (a Python error: decoding, or
// EOFError once closed and empty). A message that fails to decode is taken
// all the same, as multiprocessing's.
int get_now(ipc::Queue& q, PyObject** out, Clock::time_point deadline) {
  PyObject* taken = nullptr;
  std::uint8_t kind = 0;
  try {
    const bool got = q.get_with(
        [&](std::uint8_t k, std::span<const std::byte> a, std::span<const std::byte> b) {
          kind = k;
          taken = take(k, a, b);
        },
        deadline);
    if (!got) return 0;
  } catch (const QueueShutDown&) {
    PyErr_SetString(PyExc_EOFError, "corelet: the queue is closed and empty");
    return -1;
  } catch (...) {
    set_python_error();
    return -1;
  }
  *out = decode(kind, taken);
  return *out ? 1 : -1;
}

// ---- the fast paths of SharedQueue.put / get (and Connection.send / recv) ----

// Parses (self, [first], block=True, timeout=None) of a FASTCALL method call.
// minus_one_forever: threading's convention for locks (timeout=-1 waits
// forever); a queue, as multiprocessing's, refuses every negative timeout.
bool parse(const char* name, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames, Py_ssize_t fixed,
           bool* block, PyObject** timeout, bool minus_one_forever = false) {
  *block = true;
  *timeout = Py_None;
  if (nargs < fixed) {
    PyErr_Format(PyExc_TypeError, "%s: missing arguments", name);
    return false;
  }
  if (nargs > fixed) *block = PyObject_IsTrue(args[fixed]) == 1;
  if (nargs > fixed + 1) *timeout = args[fixed + 1];
  if (nargs > fixed + 2) {
    PyErr_Format(PyExc_TypeError, "%s: too many arguments", name);
    return false;
  }
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t i = 0; i < nkw; ++i) {
    PyObject* k = PyTuple_GET_ITEM(kwnames, i);
    if (PyUnicode_CompareWithASCIIString(k, "block") == 0) {
      *block = PyObject_IsTrue(args[nargs + i]) == 1;
    } else if (PyUnicode_CompareWithASCIIString(k, "timeout") == 0) {
      *timeout = args[nargs + i];
    } else {
      PyErr_Format(PyExc_TypeError, "%s: unexpected keyword argument '%U'", name, k);
      return false;
    }
  }
  if (*timeout != Py_None) {
    const double v = PyFloat_AsDouble(*timeout);
    if (v == -1.0 && PyErr_Occurred()) return false;
    if (v == -1.0 && minus_one_forever) {
      *timeout = Py_None;
    } else if (v < 0) {
      PyErr_SetString(PyExc_ValueError, "'timeout' must be a non-negative number");
      return false;
    }
  }
  return true;
}

// The C++ object behind a SharedQueue (attribute `_qp`), a SharedLock
// (`_lp`) or a SharedRLock (`_rp`): the address of the ShmQueue / ShmLock /
// ShmRLock that its `_q` / `_core` attribute owns, set together in __init__
// (so it lives as long as the object); far cheaper to read than a pybind11
// cast on every call.
//
// Where the attribute is a __slots__ member of self's type (SharedLock's
// and SharedRLock's are), it is read at its offset: the generic attribute
// lookup cost ~270 instructions of a Lock's acquire/release pair (callgrind),
// where multiprocessing's whole pair costs ~1,000. One type is remembered
// per attribute (with a reference, so that its address is not reused);
// other types, and attributes kept in a __dict__, take the generic lookup.
struct SlotOffset {
  PyTypeObject* type = nullptr;
  Py_ssize_t offset = 0;  // 0: not a slot of `type`
};

inline PyObject* slot_or_null(PyObject* self, PyObject* attr, SlotOffset& c) {
  PyTypeObject* type = Py_TYPE(self);
  if (type != c.type) {
    Py_ssize_t offset = 0;
    PyObject* d = _PyType_Lookup(type, attr);  // borrowed
    if (d && Py_IS_TYPE(d, &PyMemberDescr_Type)) {
      PyMemberDef* m = reinterpret_cast<PyMemberDescrObject*>(d)->d_member;
      if (m->type == T_OBJECT_EX) offset = m->offset;
    }
    Py_INCREF(type);
    Py_XDECREF(reinterpret_cast<PyObject*>(c.type));
    c.type = type;
    c.offset = offset;
  }
  if (c.offset == 0) return nullptr;
  return *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(self) + c.offset);  // borrowed; null if unset
}

// The address itself is an object of a small type of the binding's own:
// reading it back is a type check and a load (an int's conversion cost ~60
// instructions a call, a capsule's ~18).
struct AddressObject {
  PyObject_HEAD
  void* p;
};

PyTypeObject* address_type() {
  static PyTypeObject* type = [] {
    PyType_Slot slots[] = {
        {Py_tp_doc, const_cast<char*>("The address of a C++ object that a Python object owns (for the C methods).")},
        {0, nullptr},
    };
    PyType_Spec spec{"corelet._corelet._Address", static_cast<int>(sizeof(AddressObject)), 0, Py_TPFLAGS_DEFAULT,
                     slots};
    return reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
  }();
  return type;
}

inline pyb::object make_address(const void* p) {
  PyTypeObject* type = address_type();
  if (!type) throw pyb::error_already_set();
  auto* a = PyObject_New(AddressObject, type);
  if (!a) throw pyb::error_already_set();
  a->p = const_cast<void*>(p);
  return pyb::reinterpret_steal<pyb::object>(reinterpret_cast<PyObject*>(a));
}

inline void* address_in(PyObject* a) {
  if (Py_TYPE(a) != address_type()) return nullptr;
  return reinterpret_cast<AddressObject*>(a)->p;
}

template <class T>
T* address_of(PyObject* self, PyObject* attr, const char* what, SlotOffset& cache) {
  void* p;
  if (PyObject* a = slot_or_null(self, attr, cache)) {
    p = address_in(a);
  } else {
    a = PyObject_GetAttr(self, attr);  // a __dict__ attribute, or the error for an unset one
    if (!a) return nullptr;
    p = address_in(a);
    Py_DECREF(a);
  }
  if (!p) {
    PyErr_Clear();
    PyErr_Format(PyExc_TypeError, "corelet: not a %s", what);
  }
  return static_cast<T*>(p);
}

ShmQueue* queue_of(PyObject* self) {
  static PyObject* name = PyUnicode_InternFromString("_qp");
  static SlotOffset cache;
  return address_of<ShmQueue>(self, name, "shared queue", cache);
}

// put(self, obj, block=True, timeout=None): the object goes as str / bytes /
// pickle / corelet wire (cloudpickle). In plain code it waits (GIL released)
// while full and raises queue.Full after timeout; in a tasklet it is done at
// once if there is room (returning a complete operation), else it returns an
// operation that waits for room.
PyObject* shmq_put(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  bool block;
  PyObject* timeout;
  if (!parse("put", args, nargs, kwnames, 2, &block, &timeout) || !load_cache()) return nullptr;
  ShmQueue* sq = queue_of(args[0]);
  if (!sq) return nullptr;
  PyObject* obj = args[1];
  std::uint8_t kind;
  PyObject* holder = nullptr;  // keeps the payload's memory alive
  const char* p;
  Py_ssize_t n;
  if (PyUnicode_CheckExact(obj)) {
    kind = kStr;
    p = PyUnicode_AsUTF8AndSize(obj, &n);
    if (!p) return nullptr;
  } else if (PyBytes_CheckExact(obj)) {
    kind = kBytes;
    p = PyBytes_AS_STRING(obj);
    n = PyBytes_GET_SIZE(obj);
  } else {
    kind = kPickle;
    PyObject* a[2] = {obj, g_c.protocol};
    holder = PyObject_Vectorcall(g_c.dumps, a, 2, nullptr);
    if (!holder) {
      PyErr_Clear();
      kind = kWire;
      holder = PyObject_CallOneArg(g_c.wire_dumps, obj);  // TypeError naming the object if it cannot cross
      if (!holder) return nullptr;
    }
    p = PyBytes_AS_STRING(holder);
    n = PyBytes_GET_SIZE(holder);
  }
  PyObject* result = nullptr;
  try {
    sq->check_fits(static_cast<std::size_t>(n));
    ipc::Queue& q = sq->q();
    if (primitive::current()) {
      if (q.put(p, static_cast<std::size_t>(n), kNoWait, kind)) {
        result = Py_NewRef(g_c.ready_none);
      } else if (!block) {
        PyErr_SetNone(g_c.full);
      } else {
        const Clock::time_point d = deadline_from(timeout, "Queue.put");
        // The op keeps its own bytes: str's UTF-8 buffer belongs to obj.
        auto payload = std::make_shared<std::string>(p, static_cast<std::size_t>(n));
        auto shared = sq->shared();  // the lambda's copies keep the mapping and the bytes
        result = op_object(new IpcWaitOp(
            "Queue.put",
            [shared, payload, d, kind] { return shared->put(payload->data(), payload->size(), d, kind) ? 1L : 0L; },
            [](long r) -> PyObject* {
              if (r) return Py_NewRef(Py_None);
              PyErr_SetNone(g_c.full);
              return nullptr;
            },
            shared.mapping(), PyExc_ValueError, "corelet: put on a closed queue"));
      }
    } else {
      const Clock::time_point d = block ? deadline_from(timeout, "Queue.put") : kNoWait;
      PlainWaits w;
      if (q.put(p, static_cast<std::size_t>(n), d, kind)) result = Py_NewRef(Py_None);
      else PyErr_SetNone(g_c.full);
    }
  } catch (const QueueShutDown&) {
    PyErr_SetString(PyExc_ValueError, "corelet: put on a closed queue");
  } catch (...) {
    result = set_python_error();
  }
  Py_XDECREF(holder);
  return result;
}

// get(self, block=True, timeout=None): the next object. In plain code it
// waits (GIL released) and raises queue.Empty after timeout; in a tasklet it
// returns a complete operation when an item is there, else an operation that
// waits for one. EOFError once the queue is closed and empty.
PyObject* shmq_get(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  bool block;
  PyObject* timeout;
  if (!parse("get", args, nargs, kwnames, 1, &block, &timeout) || !load_cache()) return nullptr;
  ShmQueue* sq = queue_of(args[0]);
  if (!sq) return nullptr;
  PyObject* v = nullptr;
  try {
    if (primitive::current()) {
      const int got = get_now(sq->q(), &v, kNoWait);
      if (got < 0) return nullptr;
      if (got == 1) {
        PyObject* op = PyObject_CallOneArg(g_c.ready, v);
        Py_DECREF(v);
        return op;
      }
      if (!block) {
        PyErr_SetNone(g_c.empty);
        return nullptr;
      }
      const Clock::time_point d = deadline_from(timeout, "Queue.get");
      auto shared = sq->shared();
      // The message, taken in the fiber (no GIL), decoded under the GIL.
      auto msg = std::make_shared<ipc::Queue::Message>();
      return op_object(new IpcWaitOp(
          "Queue.get",
          [shared, msg, d] {
            auto m = shared->get(d);
            if (!m) return 0L;
            *msg = std::move(*m);
            return 1L;
          },
          [msg](long r) -> PyObject* {
            if (!r) {
              PyErr_SetNone(g_c.empty);
              return nullptr;
            }
            return decode(msg->kind, take(msg->kind, std::span<const std::byte>(msg->bytes), {}));
          },
          shared.mapping(), PyExc_EOFError, "corelet: the queue is closed and empty"));
    }
    const Clock::time_point d = block ? deadline_from(timeout, "Queue.get") : kNoWait;
    PlainWaits w;
    const int got = get_now(sq->q(), &v, d);
    if (got < 0) return nullptr;
    if (got == 0) {
      PyErr_SetNone(g_c.empty);
      return nullptr;
    }
    return v;
  } catch (...) {
    return set_python_error();
  }
}

// _shmq_try_get(queue_holder) -> (True, obj) or (False, None), never waiting.
PyObject* shmq_try_get(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 1 || !load_cache()) {
    if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "_try_get(queue_holder)");
    return nullptr;
  }
  ShmQueue* sq = queue_of(args[0]);
  if (!sq) return nullptr;
  PyObject* v = nullptr;
  const int got = get_now(sq->q(), &v, kNoWait);
  if (got < 0) return nullptr;
  if (got == 0) return Py_BuildValue("(OO)", Py_False, Py_None);
  return Py_BuildValue("(ON)", Py_True, v);
}

// ---- locks ----

// ShmLock — multiprocessing.Lock: an ipc::Mutex (any thread or tasklet of the
// holding process may release it; a holder that dies hands it on).
class ShmLock {
 public:
  explicit ShmLock(bool shareable) : m_(make_primitive<ipc::Mutex>(shareable)) {}
  explicit ShmLock(ipc::Shared<ipc::Mutex> m) : m_(std::move(m)) {}
  int fileno() const noexcept { return m_.mapping()->fd(); }
  bool try_acquire() noexcept { return m_->try_lock(); }
  bool acquire(bool blocking, const pyb::object& timeout) {
    if (!blocking) return m_->try_lock();
    const Clock::time_point d = deadline_from(timeout, "Lock.acquire");
    PlainWaits w;
    return m_->try_lock_until(d);  // the free lock first, without a look at its holder
  }
  void release() {
    if (!m_->locked()) throw pyb::value_error("release unlocked lock");
    m_->unlock();
  }
  bool locked() const noexcept { return m_->locked(); }
  PyObject* acquire_op(Clock::time_point d) {
    auto m = m_;
    return op_object(new IpcWaitOp(
        "Lock.acquire", [m, d] { return m->try_lock_until(d) ? 1L : 0L; },
        [](long r) { return PyBool_FromLong(r); }, m.mapping()));
  }

 private:
  ipc::Shared<ipc::Mutex> m_;
};

// ShmRLock — multiprocessing.RLock: an ipc::RecursiveMutex whose owner is
// the calling tasklet, else the thread (ipc::this_owner(), read under the
// GIL: in a wait's fiber it is the Python tasklet's token that counts).
class ShmRLock {
 public:
  explicit ShmRLock(bool shareable) : r_(make_primitive<ipc::RecursiveMutex>(shareable)) {}
  explicit ShmRLock(ipc::Shared<ipc::RecursiveMutex> r) : r_(std::move(r)) {}
  int fileno() const noexcept { return r_.mapping()->fd(); }
  bool try_acquire() noexcept { return r_->try_lock(ipc::this_owner()); }
  bool acquire(bool blocking, const pyb::object& timeout) {
    const std::uint64_t me = ipc::this_owner();
    if (!blocking) return r_->try_lock(me);
    const Clock::time_point d = deadline_from(timeout, "RLock.acquire");
    PlainWaits w;
    return r_->try_lock_until(d, me);
  }
  void release() {
    try {
      r_->unlock(ipc::this_owner());
    } catch (const UsageError&) {
      throw pyb::value_error("cannot release un-acquired lock");
    }
  }
  std::uint32_t release_all() {
    try {
      return r_->release_all(ipc::this_owner());
    } catch (const UsageError&) {
      throw pyb::value_error("cannot release un-acquired lock");
    }
  }
  // restore — takes it back at `depth` (Condition.wait's end), waiting.
  void restore(std::uint32_t depth) {
    const std::uint64_t me = ipc::this_owner();
    PlainWaits w;
    r_->restore(depth, Clock::time_point::max(), me);
  }
  bool owned() const noexcept { return r_->owned_by(ipc::this_owner()); }
  // release_held — release(); false (nothing done) if the caller does not hold it.
  bool release_held() {
    const std::uint64_t me = ipc::this_owner();
    if (!r_->owned_by(me)) return false;
    r_->unlock(me);
    return true;
  }
  // acquire_op / restore_op — the same in a tasklet (depth 0: an acquire).
  PyObject* acquire_op(const pyb::object& timeout, std::uint32_t depth) {
    return acquire_op(deadline_from(timeout, "RLock.acquire"), depth);
  }
  PyObject* acquire_op(Clock::time_point d, std::uint32_t depth = 0) {
    const std::uint64_t me = ipc::this_owner();
    auto r = r_;
    return op_object(new IpcWaitOp(
        "RLock.acquire",
        [r, d, me, depth] {
          return (depth == 0 ? r->try_lock_until(d, me) : r->restore(depth, d, me)) ? 1L : 0L;
        },
        [depth](long ok) { return depth == 0 ? PyBool_FromLong(ok) : Py_NewRef(Py_None); }, r.mapping()));
  }

 private:
  ipc::Shared<ipc::RecursiveMutex> r_;
};

class ShmSemaphore {
 public:
  ShmSemaphore(std::uint32_t value, bool bounded, bool shareable)
      : s_(make_primitive<ipc::Semaphore>(shareable, value, bounded)) {}
  explicit ShmSemaphore(ipc::Shared<ipc::Semaphore> s) : s_(std::move(s)) {}
  int fileno() const noexcept { return s_.mapping()->fd(); }
  bool try_acquire() noexcept { return s_->try_acquire(); }
  bool acquire(bool blocking, const pyb::object& timeout) {
    if (s_->try_acquire()) return true;
    if (!blocking) return false;
    const Clock::time_point d = deadline_from(timeout, "Semaphore.acquire");
    PlainWaits w;
    return s_->try_acquire_until(d);
  }
  void release(std::uint32_t n) {
    try {
      s_->release(n);
    } catch (const UsageError&) {
      throw pyb::value_error("semaphore or lock released too many times");
    }
  }
  std::uint32_t value() const noexcept { return s_->value(); }
  PyObject* acquire_op(const pyb::object& timeout) {
    if (!load_cache()) throw pyb::error_already_set();
    if (s_->try_acquire()) return Py_NewRef(g_c.ready_true);
    const Clock::time_point d = deadline_from(timeout, "Semaphore.acquire");
    auto s = s_;
    return op_object(new IpcWaitOp(
        "Semaphore.acquire", [s, d] { return s->try_acquire_until(d) ? 1L : 0L; },
        [](long r) { return PyBool_FromLong(r); }, s.mapping()));
  }

 private:
  ipc::Shared<ipc::Semaphore> s_;
};

class ShmEvent {
 public:
  explicit ShmEvent(bool shareable) : e_(make_primitive<ipc::Event>(shareable)) {}
  explicit ShmEvent(ipc::Shared<ipc::Event> e) : e_(std::move(e)) {}
  int fileno() const noexcept { return e_.mapping()->fd(); }
  bool is_set() const noexcept { return e_->is_set(); }
  void set() noexcept { e_->set(); }
  void clear() noexcept { e_->clear(); }
  bool wait(const pyb::object& timeout) {
    if (e_->is_set()) return true;
    const Clock::time_point d = deadline_from(timeout, "Event.wait");
    PlainWaits w;
    return e_->wait(d);
  }
  PyObject* wait_op(const pyb::object& timeout) {
    if (!load_cache()) throw pyb::error_already_set();
    if (e_->is_set()) return Py_NewRef(g_c.ready_true);
    const Clock::time_point d = deadline_from(timeout, "Event.wait");
    auto e = e_;
    return op_object(new IpcWaitOp(
        "Event.wait", [e, d] { return e->wait(d) ? 1L : 0L; }, [](long r) { return PyBool_FromLong(r); },
        e.mapping()));
  }

 private:
  ipc::Shared<ipc::Event> e_;
};

// ShmCondition — the notification half of multiprocessing.Condition; the
// lock half (release, wait, re-acquire) is Python's, over any shared lock.
class ShmCondition {
 public:
  explicit ShmCondition(bool shareable) : c_(make_primitive<ipc::Condition>(shareable)) {}
  explicit ShmCondition(ipc::Shared<ipc::Condition> c) : c_(std::move(c)) {}
  int fileno() const noexcept { return c_.mapping()->fd(); }
  std::uint32_t prepare() noexcept { return c_->prepare_wait(); }
  bool wait(std::uint32_t seen, const pyb::object& timeout) {
    const Clock::time_point d = deadline_from(timeout, "Condition.wait");
    PlainWaits w;
    return c_->wait_from(seen, d);
  }
  PyObject* wait_op(std::uint32_t seen, const pyb::object& timeout) {
    const Clock::time_point d = deadline_from(timeout, "Condition.wait");
    auto c = c_;
    return op_object(new IpcWaitOp(
        "Condition.wait", [c, seen, d] { return c->wait_from(seen, d) ? 1L : 0L; },
        [](long r) { return PyBool_FromLong(r); }, c.mapping()));
  }
  void notify(std::uint32_t n) noexcept { c_->notify(n); }

 private:
  ipc::Shared<ipc::Condition> c_;
};

// ShmBarrier — multiprocessing.Barrier: an ipc::Barrier. In plain code
// wait() runs the action itself (under the GIL, between the two halves of
// the C++ wait); in a tasklet the Python side runs the halves as operations
// and the action between them (SharedBarrier._wait_op in _shared_sync.py).
class ShmBarrier {
 public:
  ShmBarrier(std::uint32_t parties, bool shareable) {
    if (parties < 1) throw pyb::value_error("parties must be > 0");
    b_ = make_primitive<ipc::Barrier>(shareable, parties);
  }
  explicit ShmBarrier(ipc::Shared<ipc::Barrier> b) : b_(std::move(b)) {}
  int fileno() const noexcept { return b_.mapping()->fd(); }
  std::uint32_t wait(const pyb::object& timeout, const pyb::object& action) {
    const Clock::time_point d = deadline_from(timeout, "Barrier.wait");
    PlainWaits w;
    if (action.is_none()) return b_->wait(d);
    return b_->wait(d, [&] {
      if (!PyObject_CallNoArgs(action.ptr())) throw pyb::error_already_set();
    });
  }
  PyObject* arrive_op(const pyb::object& timeout) {
    const Clock::time_point d = deadline_from(timeout, "Barrier.wait");
    auto b = b_;
    auto got = std::make_shared<ipc::Barrier::Arrival>();
    return op_object(new IpcWaitOp(
        "Barrier.wait",
        [b, d, got] {
          *got = b->arrive(d);
          return 1L;
        },
        [got](long) { return Py_BuildValue("(IIO)", got->index, got->gen, got->last ? Py_True : Py_False); },
        b.mapping()));
  }
  void complete(std::uint32_t index, std::uint32_t gen, bool ok) { b_->complete({index, gen, true}, ok); }
  PyObject* wait_passed_op(std::uint32_t index, std::uint32_t gen, const pyb::object& timeout) {
    const Clock::time_point d = deadline_from(timeout, "Barrier.wait");
    auto b = b_;
    return op_object(new IpcWaitOp(
        "Barrier.wait", [b, d, index, gen] { return static_cast<long>(b->wait_passed({index, gen, false}, d)); },
        [](long i) { return PyLong_FromLong(i); }, b.mapping()));
  }
  ipc::Barrier& get() const noexcept { return *b_; }

 private:
  ipc::Shared<ipc::Barrier> b_;
};

// SharedLock's and SharedRLock's acquire / release / __enter__ / __exit__,
// C functions (a pybind11 method and a Python frame around it cost ten times
// the lock): `_lp` / `_rp` holds the address of the ShmLock / ShmRLock its
// `_core` owns. In a tasklet acquire returns an operation (complete at once
// if the lock was free); in plain code it takes a free lock without
// anything else, and waits otherwise.
struct LockFns {
  static constexpr const char* kAttr = "_lp";
  static constexpr const char* kWhat = "shared lock";
  static constexpr const char* kAcquire = "Lock.acquire";
  static constexpr const char* kHeld = "corelet: `with` on a held Lock cannot wait in a tasklet; use `async with`";
  static PyObject* op(ShmLock& l, Clock::time_point d) { return l.acquire_op(d); }
  static bool release(ShmLock& l) {
    l.release();  // ValueError("release unlocked lock"), as threading's
    return true;
  }
  static constexpr const char* kNotHeld = "";
};
struct RLockFns {
  static constexpr const char* kAttr = "_rp";
  static constexpr const char* kWhat = "shared recursive lock";
  static constexpr const char* kAcquire = "RLock.acquire";
  static constexpr const char* kHeld = "corelet: `with` on a held RLock cannot wait in a tasklet; use `async with`";
  static PyObject* op(ShmRLock& r, Clock::time_point d) { return r.acquire_op(d); }
  static bool release(ShmRLock& r) { return r.release_held(); }
  // multiprocessing.RLock's words for it.
  static constexpr const char* kNotHeld = "attempt to release recursive lock not owned by thread";
};
template <class L> struct FnsOf;
template <> struct FnsOf<ShmLock> : LockFns {};
template <> struct FnsOf<ShmRLock> : RLockFns {};

template <class L>
L* lock_core(PyObject* self) {
  static PyObject* name = PyUnicode_InternFromString(FnsOf<L>::kAttr);
  static SlotOffset cache;
  return address_of<L>(self, name, FnsOf<L>::kWhat, cache);
}

template <class L>
PyObject* any_lock_acquire(PyObject*, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  bool block = true;
  PyObject* timeout = Py_None;
  if ((nargs != 1 || kwnames) && !parse("acquire", args, nargs, kwnames, 1, &block, &timeout, true)) return nullptr;
  L* l = lock_core<L>(args[0]);
  if (!l) return nullptr;
  try {
    if (primitive::current()) {
      if (!load_cache()) return nullptr;
      if (l->try_acquire()) return Py_NewRef(g_c.ready_true);
      if (!block) return Py_NewRef(g_c.ready_false);
      return FnsOf<L>::op(*l, deadline_from(timeout, FnsOf<L>::kAcquire));
    }
    if (l->try_acquire()) Py_RETURN_TRUE;
    return PyBool_FromLong(l->acquire(block, pyb::reinterpret_borrow<pyb::object>(timeout)));
  } catch (...) {
    return set_python_error();
  }
}

template <class L>
PyObject* any_lock_release(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "release: missing self");
    return nullptr;
  }
  L* l = lock_core<L>(args[0]);
  if (!l) return nullptr;
  try {
    if (!FnsOf<L>::release(*l)) {
      PyErr_SetString(PyExc_AssertionError, FnsOf<L>::kNotHeld);
      return nullptr;
    }
  } catch (...) {
    return set_python_error();
  }
  Py_RETURN_NONE;
}

// __enter__: plain code waits; a tasklet takes a free lock or gets UsageError.
template <class L>
PyObject* any_lock_enter(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1) {
    PyErr_SetString(PyExc_TypeError, "__enter__: missing self");
    return nullptr;
  }
  L* l = lock_core<L>(args[0]);
  if (!l) return nullptr;
  if (l->try_acquire()) Py_RETURN_TRUE;
  if (primitive::current()) {
    PyErr_SetString(g_exc.usage, FnsOf<L>::kHeld);
    return nullptr;
  }
  try {
    return PyBool_FromLong(l->acquire(true, pyb::none()));
  } catch (...) {
    return set_python_error();
  }
}

PyMethodDef g_fast[] = {
    {"_lock_acquire", as_cfunction(&any_lock_acquire<ShmLock>),
     METH_FASTCALL | METH_KEYWORDS, "acquire(block=True, timeout=None)"},
    {"_lock_release", as_cfunction(&any_lock_release<ShmLock>), METH_FASTCALL,
     "release()"},
    {"_lock_enter", as_cfunction(&any_lock_enter<ShmLock>), METH_FASTCALL,
     "__enter__()"},
    {"_rlock_acquire", as_cfunction(&any_lock_acquire<ShmRLock>),
     METH_FASTCALL | METH_KEYWORDS, "acquire(block=True, timeout=None)"},
    {"_rlock_release", as_cfunction(&any_lock_release<ShmRLock>), METH_FASTCALL,
     "release()"},
    {"_rlock_enter", as_cfunction(&any_lock_enter<ShmRLock>), METH_FASTCALL,
     "__enter__()"},
    {"_shmq_put", as_cfunction(&shmq_put),
     METH_FASTCALL | METH_KEYWORDS, "put(obj, block=True, timeout=None)"},
    {"_shmq_get", as_cfunction(&shmq_get),
     METH_FASTCALL | METH_KEYWORDS, "get(block=True, timeout=None)"},
    {"_shmq_try_get", as_cfunction(&shmq_try_get), METH_FASTCALL,
     nullptr},
};

// FastMethod — a builtin function (whose first argument is self) as a
// method. Unlike PyInstanceMethod it is a method descriptor
// (Py_TPFLAGS_METHOD_DESCRIPTOR): `obj.method(...)` calls the function
// with obj first without making a bound method object on every call (that
// allocation cost a Lock's acquire/release pair ~40% of multiprocessing's
// whole pair). Reading `obj.method` still gives a bound method.
struct FastMethod {
  PyObject_HEAD
  PyObject* func;
  vectorcallfunc vectorcall;
  // func's C function when it is a METH_FASTCALL builtin (else null: called as an object).
  _PyCFunctionFastWithKeywords fast_kw;
  _PyCFunctionFast fast;
  PyObject* fn_self;
};

PyObject* fast_method_call(PyObject* self, PyObject* const* args, std::size_t nargsf, PyObject* kwnames) {
  auto* m = reinterpret_cast<FastMethod*>(self);
  const Py_ssize_t n = PyVectorcall_NARGS(nargsf);
  if (m->fast_kw) return m->fast_kw(m->fn_self, args, n, kwnames);
  if (m->fast && (!kwnames || PyTuple_GET_SIZE(kwnames) == 0)) return m->fast(m->fn_self, args, n);
  return PyObject_Vectorcall(m->func, args, nargsf, kwnames);
}

PyObject* fast_method_get(PyObject* self, PyObject* obj, PyObject*) {
  PyObject* f = reinterpret_cast<FastMethod*>(self)->func;
  if (!obj) return Py_NewRef(f);  // on the class: the function itself
  return PyMethod_New(f, obj);
}

void fast_method_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);
  PyObject_GC_UnTrack(self);
  Py_CLEAR(reinterpret_cast<FastMethod*>(self)->func);
  type->tp_free(self);
  Py_DECREF(type);
}

int fast_method_traverse(PyObject* self, visitproc visit, void* arg) {
  Py_VISIT(reinterpret_cast<FastMethod*>(self)->func);
  Py_VISIT(Py_TYPE(self));
  return 0;
}

PyTypeObject* fast_method_type() {
  static PyTypeObject* type = [] {
    static PyMemberDef members[] = {
        {"__vectorcalloffset__", T_PYSSIZET, static_cast<Py_ssize_t>(offsetof(FastMethod, vectorcall)), READONLY,
         nullptr},
        {"__func__", T_OBJECT, static_cast<Py_ssize_t>(offsetof(FastMethod, func)), READONLY, nullptr},
        {nullptr, 0, 0, 0, nullptr},
    };
    PyType_Slot slots[] = {
        {Py_tp_dealloc, reinterpret_cast<void*>(&fast_method_dealloc)},
        {Py_tp_traverse, reinterpret_cast<void*>(&fast_method_traverse)},
        {Py_tp_descr_get, reinterpret_cast<void*>(&fast_method_get)},
        {Py_tp_call, reinterpret_cast<void*>(&PyVectorcall_Call)},
        {Py_tp_members, members},
        {Py_tp_doc, const_cast<char*>("A builtin function whose first argument is self, as a method.")},
        {0, nullptr},
    };
    PyType_Spec spec{"corelet._corelet.instancemethod", static_cast<int>(sizeof(FastMethod)), 0,
                     Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_METHOD_DESCRIPTOR |
                         Py_TPFLAGS_HAVE_VECTORCALL,
                     slots};
    return reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
  }();
  return type;
}

PyObject* make_fast_method(PyObject* func) {
  PyTypeObject* type = fast_method_type();
  if (!type) return nullptr;
  auto* m = PyObject_GC_New(FastMethod, type);
  if (!m) return nullptr;
  m->func = Py_NewRef(func);
  m->vectorcall = &fast_method_call;
  m->fast_kw = nullptr;
  m->fast = nullptr;
  m->fn_self = nullptr;
  if (PyCFunction_CheckExact(func)) {  // the binding's own functions (g_fast): skip the builtin's own call path
    const int flags = PyCFunction_GET_FLAGS(func) & ~(METH_CLASS | METH_STATIC | METH_COEXIST);
    m->fn_self = PyCFunction_GET_SELF(func);  // borrowed: func holds it, and m holds func
    if (flags == (METH_FASTCALL | METH_KEYWORDS))
      m->fast_kw = reinterpret_cast<_PyCFunctionFastWithKeywords>(reinterpret_cast<void (*)()>(PyCFunction_GET_FUNCTION(func)));
    else if (flags == METH_FASTCALL)
      m->fast = reinterpret_cast<_PyCFunctionFast>(reinterpret_cast<void (*)()>(PyCFunction_GET_FUNCTION(func)));
  }
  PyObject_GC_Track(m);
  return reinterpret_cast<PyObject*>(m);
}

}  // namespace

void bind_shm(pyb::module_& m) {
  for (PyMethodDef& d : g_fast) {
    PyObject* f = PyCFunction_NewEx(&d, nullptr, m.ptr());
    if (!f) throw pyb::error_already_set();
    m.add_object(d.ml_name, pyb::reinterpret_steal<pyb::object>(f));
  }
  m.def(
      "instancemethod",
      [](pyb::object f) {
        PyObject* r = make_fast_method(f.ptr());
        if (!r) throw pyb::error_already_set();
        return pyb::reinterpret_steal<pyb::object>(r);
      },
      "Binds a builtin function as a method (its first argument is self).");
  pyb::class_<IpcWaitOp, FiberOp>(m, "_IpcWait");

  pyb::class_<SharedMemory>(m, "SharedMemory", pyb::buffer_protocol(),
                            "An anonymous shared mapping, inherited by processes forked after it is made.")
      .def(pyb::init<std::size_t, bool>(), pyb::arg("size"), pyb::arg("shareable") = false)
      .def_static(
          "attach",
          [](int fd) {
            try {
              return std::make_unique<SharedMemory>(std::make_shared<ipc::Mapping>(fd, ipc::Mapping::Attach{}));
            } catch (const std::invalid_argument& e) {
              throw pyb::value_error(std::string("corelet: SharedMemory.attach: ") + e.what());
            }
          },
          pyb::arg("fd"), "The mapping of a shareable SharedMemory whose memfd another process sent.")
      .def("fileno", &SharedMemory::fileno, "The memfd of a shareable mapping (-1 for an inherited one).")
      .def_buffer([](SharedMemory& s) {
        return pyb::buffer_info(s.base(), 1, pyb::format_descriptor<unsigned char>::format(), 1,
                                {static_cast<pyb::ssize_t>(s.size())}, {1});
      })
      .def("__len__", &SharedMemory::size)
      // seq_cst throughout: raw words for protocols written in Python, as
      // if every operation happened in one order; futex_wait compares in the
      // kernel, so a change between a load and a wait is never missed.
      .def(
          "load", [](SharedMemory& s, std::size_t off) { return s.word(off).load(std::memory_order_seq_cst); },
          pyb::arg("offset"))
      .def(
          "store",
          [](SharedMemory& s, std::size_t off, std::uint32_t v) { s.word(off).store(v, std::memory_order_seq_cst); },
          pyb::arg("offset"), pyb::arg("value"))
      .def(
          "add",
          [](SharedMemory& s, std::size_t off, std::int64_t d) {
            return s.word(off).fetch_add(static_cast<std::uint32_t>(d), std::memory_order_seq_cst);
          },
          pyb::arg("offset"), pyb::arg("delta"), "Atomic add; gives the value before.")
      .def(
          "cas",
          [](SharedMemory& s, std::size_t off, std::uint32_t expected, std::uint32_t desired) {
            return s.word(off).compare_exchange_strong(expected, desired, std::memory_order_seq_cst);
          },
          pyb::arg("offset"), pyb::arg("expected"), pyb::arg("desired"))
      .def(
          "wait",
          [](SharedMemory& s, std::size_t off, std::uint32_t expected, pyb::object timeout) {
            const Clock::time_point d = deadline_from(timeout, "SharedMemory.wait");
            PlainWaits w;
            return futex_wait(s.word(off), expected, d) == FutexWait::Woken;
          },
          pyb::arg("offset"), pyb::arg("expected"), pyb::arg("timeout") = pyb::none(),
          "Waits while the word equals expected (the GIL released); False on timeout.")
      .def(
          "wait_op",
          [](SharedMemory& s, std::size_t off, std::uint32_t expected, pyb::object timeout) {
            const Clock::time_point d = deadline_from(timeout, "SharedMemory.wait");
            std::atomic<std::uint32_t>* w = &s.word(off);
            return pyb::reinterpret_steal<pyb::object>(op_object(new IpcWaitOp(
                "wait on shared memory", [w, expected, d] { return futex_wait(*w, expected, d) == FutexWait::Woken ? 1L : 0L; },
                [](long r) { return PyBool_FromLong(r); }, s.mapping())));
          },
          pyb::arg("offset"), pyb::arg("expected"), pyb::arg("timeout") = pyb::none(),
          "wait() as a tasklet's operation (woken by the change, never polling).")
      .def(
          "wake", [](SharedMemory& s, std::size_t off, int n) { futex_wake(s.word(off), n); }, pyb::arg("offset"),
          pyb::arg("n") = INT_MAX);

  pyb::class_<ShmLock>(m, "ShmLock", "multiprocessing.Lock's core: an ipc::Mutex in shared memory.")
      .def(pyb::init<bool>(), pyb::arg("shareable") = false)
      .def_static(
          "attach", [](int fd) { return std::make_unique<ShmLock>(attach_primitive<ipc::Mutex>(fd, "ShmLock")); },
          pyb::arg("fd"), "The ShmLock of a shareable one whose memfd another process sent (fd stays the caller's).")
      .def("fileno", &ShmLock::fileno, "The memfd of a shareable one (-1 for an inherited one).")
      .def("acquire", &ShmLock::acquire, pyb::arg("blocking") = true, pyb::arg("timeout") = pyb::none())
      .def("try_acquire", &ShmLock::try_acquire)
      .def("release", &ShmLock::release)
      .def("locked", &ShmLock::locked)
      .def(
          "acquire_op",
          [](ShmLock& l, pyb::object t) {
            return pyb::reinterpret_steal<pyb::object>(l.acquire_op(deadline_from(t, "Lock.acquire")));
          },
          pyb::arg("timeout") = pyb::none())
      .def("_address", [](ShmLock& l) { return make_address(&l); });

  pyb::class_<ShmRLock>(m, "ShmRLock", "multiprocessing.RLock's core: an ipc::RecursiveMutex in shared memory.")
      .def(pyb::init<bool>(), pyb::arg("shareable") = false)
      .def_static(
          "attach", [](int fd) { return std::make_unique<ShmRLock>(attach_primitive<ipc::RecursiveMutex>(fd, "ShmRLock")); },
          pyb::arg("fd"), "The ShmRLock of a shareable one whose memfd another process sent (fd stays the caller's).")
      .def("fileno", &ShmRLock::fileno, "The memfd of a shareable one (-1 for an inherited one).")
      .def("acquire", &ShmRLock::acquire, pyb::arg("blocking") = true, pyb::arg("timeout") = pyb::none())
      .def("try_acquire", &ShmRLock::try_acquire)
      .def("release", &ShmRLock::release)
      .def("release_all", &ShmRLock::release_all)
      .def("restore", &ShmRLock::restore)
      .def("owned", &ShmRLock::owned)
      .def("_address", [](ShmRLock& r) { return make_address(&r); })
      .def(
          "acquire_op", [](ShmRLock& r, pyb::object timeout) { return pyb::reinterpret_steal<pyb::object>(r.acquire_op(timeout, 0)); },
          pyb::arg("timeout") = pyb::none())
      .def("restore_op", [](ShmRLock& r, std::uint32_t depth) {
        return pyb::reinterpret_steal<pyb::object>(r.acquire_op(pyb::none(), depth));
      });

  pyb::class_<ShmSemaphore>(m, "ShmSemaphore", "multiprocessing.Semaphore's core: an ipc::Semaphore.")
      .def(pyb::init<std::uint32_t, bool, bool>(), pyb::arg("value"), pyb::arg("bounded") = false,
           pyb::arg("shareable") = false)
      .def_static(
          "attach", [](int fd) { return std::make_unique<ShmSemaphore>(attach_primitive<ipc::Semaphore>(fd, "ShmSemaphore")); },
          pyb::arg("fd"), "The ShmSemaphore of a shareable one whose memfd another process sent (fd stays the caller's).")
      .def("fileno", &ShmSemaphore::fileno, "The memfd of a shareable one (-1 for an inherited one).")
      .def("try_acquire", &ShmSemaphore::try_acquire)
      .def("acquire", &ShmSemaphore::acquire, pyb::arg("blocking") = true, pyb::arg("timeout") = pyb::none())
      .def(
          "acquire_op", [](ShmSemaphore& s, pyb::object t) { return pyb::reinterpret_steal<pyb::object>(s.acquire_op(t)); },
          pyb::arg("timeout") = pyb::none())
      .def("release", &ShmSemaphore::release, pyb::arg("n") = 1)
      .def_property_readonly("value", &ShmSemaphore::value);

  pyb::class_<ShmEvent>(m, "ShmEvent", "multiprocessing.Event's core: an ipc::Event.")
      .def(pyb::init<bool>(), pyb::arg("shareable") = false)
      .def_static(
          "attach", [](int fd) { return std::make_unique<ShmEvent>(attach_primitive<ipc::Event>(fd, "ShmEvent")); },
          pyb::arg("fd"), "The ShmEvent of a shareable one whose memfd another process sent (fd stays the caller's).")
      .def("fileno", &ShmEvent::fileno, "The memfd of a shareable one (-1 for an inherited one).")
      .def("is_set", &ShmEvent::is_set)
      .def("set", &ShmEvent::set)
      .def("clear", &ShmEvent::clear)
      .def("wait", &ShmEvent::wait, pyb::arg("timeout") = pyb::none())
      .def(
          "wait_op", [](ShmEvent& e, pyb::object t) { return pyb::reinterpret_steal<pyb::object>(e.wait_op(t)); },
          pyb::arg("timeout") = pyb::none());

  pyb::class_<ShmCondition>(m, "ShmCondition", "multiprocessing.Condition's notifications: an ipc::Condition.")
      .def(pyb::init<bool>(), pyb::arg("shareable") = false)
      .def_static(
          "attach", [](int fd) { return std::make_unique<ShmCondition>(attach_primitive<ipc::Condition>(fd, "ShmCondition")); },
          pyb::arg("fd"), "The ShmCondition of a shareable one whose memfd another process sent (fd stays the caller's).")
      .def("fileno", &ShmCondition::fileno, "The memfd of a shareable one (-1 for an inherited one).")
      .def("prepare", &ShmCondition::prepare)
      .def("wait", &ShmCondition::wait, pyb::arg("seen"), pyb::arg("timeout") = pyb::none())
      .def(
          "wait_op",
          [](ShmCondition& c, std::uint32_t seen, pyb::object t) {
            return pyb::reinterpret_steal<pyb::object>(c.wait_op(seen, t));
          },
          pyb::arg("seen"), pyb::arg("timeout") = pyb::none())
      .def("notify", &ShmCondition::notify, pyb::arg("n") = 1);

  pyb::class_<ShmBarrier>(m, "ShmBarrier", "multiprocessing.Barrier's core: an ipc::Barrier.")
      .def(pyb::init<std::uint32_t, bool>(), pyb::arg("parties"), pyb::arg("shareable") = false)
      .def_static(
          "attach", [](int fd) { return std::make_unique<ShmBarrier>(attach_primitive<ipc::Barrier>(fd, "ShmBarrier")); },
          pyb::arg("fd"), "The ShmBarrier of a shareable one whose memfd another process sent (fd stays the caller's).")
      .def("fileno", &ShmBarrier::fileno, "The memfd of a shareable one (-1 for an inherited one).")
      .def("wait", &ShmBarrier::wait, pyb::arg("timeout") = pyb::none(), pyb::arg("action") = pyb::none())
      .def(
          "arrive_op", [](ShmBarrier& b, pyb::object t) { return pyb::reinterpret_steal<pyb::object>(b.arrive_op(t)); },
          pyb::arg("timeout") = pyb::none())
      .def("complete", &ShmBarrier::complete, pyb::arg("index"), pyb::arg("gen"), pyb::arg("ok"))
      .def(
          "wait_passed_op",
          [](ShmBarrier& b, std::uint32_t index, std::uint32_t gen, pyb::object t) {
            return pyb::reinterpret_steal<pyb::object>(b.wait_passed_op(index, gen, t));
          },
          pyb::arg("index"), pyb::arg("gen"), pyb::arg("timeout") = pyb::none())
      .def("abort", [](ShmBarrier& b) { b.get().abort(); })
      .def("reset", [](ShmBarrier& b) { b.get().reset(); })
      .def_property_readonly("parties", [](ShmBarrier& b) { return b.get().parties(); })
      .def_property_readonly("n_waiting", [](ShmBarrier& b) { return b.get().waiting(); })
      .def_property_readonly("broken", [](ShmBarrier& b) { return b.get().broken(); });

  pyb::class_<ShmQueue>(m, "ShmQueue", "multiprocessing.Queue's core: an ipc::Queue in shared memory.")
      .def(pyb::init<std::size_t, std::size_t, bool>(), pyb::arg("capacity"), pyb::arg("maxsize") = 0,
           pyb::arg("shareable") = false)
      .def_static(
          "attach",
          [](int fd) {
            try {
              return std::make_unique<ShmQueue>(ipc::Shared<ipc::Queue>::attach(fd));
            } catch (const std::invalid_argument& e) {
              throw pyb::value_error(std::string("corelet: ShmQueue.attach: ") + e.what());
            }
          },
          pyb::arg("fd"), "The queue of a shareable ShmQueue whose descriptor another process sent.")
      .def("fileno", &ShmQueue::fileno, "The memfd of a shareable queue (-1 for an inherited one).")
      .def("poll", &ShmQueue::poll, pyb::arg("timeout") = pyb::none())
      .def(
          "poll_op", [](ShmQueue& q, pyb::object t) { return pyb::reinterpret_steal<pyb::object>(q.poll_op(t)); },
          pyb::arg("timeout") = pyb::none())
      .def("task_done", &ShmQueue::task_done)
      .def("join", &ShmQueue::join, pyb::arg("timeout") = pyb::none())
      .def("join_op", [](ShmQueue& q) { return pyb::reinterpret_steal<pyb::object>(q.join_op()); })
      .def("close", [](ShmQueue& q) { q.q().close(); })
      .def("add_writer", [](ShmQueue& q) { q.q().add_writer(); })
      .def("close_writer", [](ShmQueue& q) { q.q().close_writer(); })
      .def("qsize", [](ShmQueue& q) { return q.q().size(); })
      .def("full", [](ShmQueue& q) { return q.q().full(); })
      .def_property_readonly("unfinished", [](ShmQueue& q) { return q.q().unfinished(); })
      .def_property_readonly("closed", [](ShmQueue& q) { return q.q().closed(); })
      .def_property_readonly("capacity", [](ShmQueue& q) { return q.q().capacity(); })
      .def_property_readonly("maxsize", &ShmQueue::maxsize)
      .def("_address", [](ShmQueue& q) { return make_address(&q); });
}

}  // namespace corelet::py
