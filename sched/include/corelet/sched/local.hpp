#pragma once
// corelet/sched/local.hpp — TaskletLocal<T>: one T per tasklet.
//
// get() returns the calling tasklet's value, created on first use (by the
// initializer given to the constructor, or value-initialized). It is destroyed
// when the tasklet ends. UsageError outside a tasklet.

#include <corelet/sched/primitive.hpp>

#include <functional>

namespace corelet {

template <class T>
class TaskletLocal {
 public:
  TaskletLocal() = default;
  explicit TaskletLocal(std::function<T()> init) : init_(std::move(init)) {}
  TaskletLocal(const TaskletLocal&) = delete;
  TaskletLocal& operator=(const TaskletLocal&) = delete;

  T& get() {
    detail::Tasklet* t = primitive::require_tasklet("TaskletLocal::get");
    for (detail::LocalSlot* s = t->locals; s; s = s->next)
      if (s->key == this) return static_cast<Slot*>(s)->value;
    auto* s = init_ ? new Slot(init_()) : new Slot();
    s->key = this;
    s->next = t->locals;
    t->locals = s;
    return s->value;
  }
  // has_value — whether the calling tasklet has created its value.
  bool has_value() const noexcept {
    detail::Tasklet* t = primitive::current();
    if (!t) return false;
    for (detail::LocalSlot* s = t->locals; s; s = s->next)
      if (s->key == this) return true;
    return false;
  }
  T& operator*() { return get(); }
  T* operator->() { return &get(); }

 private:
  struct Slot : detail::LocalSlot {
    Slot() : value() {}
    explicit Slot(T v) : value(std::move(v)) {}
    T value;
  };
  std::function<T()> init_;
};

}  // namespace corelet
