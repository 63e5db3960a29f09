#pragma once
// Small Python types whose object holds one of sched's primitives (a
// Semaphore, an Event, a Barrier, a Queue) and whose methods are
// METH_FASTCALL C functions: the binding's cores (sync.cpp, queue.cpp).

#include "tasklet.hpp"

#include <new>
#include <utility>

namespace corelet::py {

template <class Core>
struct CoreObject {
  PyObject_HEAD
  Core core;
};

template <class Core>
Core& core_of(PyObject* self) noexcept {
  return reinterpret_cast<CoreObject<Core>*>(self)->core;
}

// make_core — tp_new's second half: the object, its Core made from args.
template <class Core, class... Args>
PyObject* make_core(PyTypeObject* type, Args&&... args) {
  PyObject* self = type->tp_alloc(type, 0);
  if (!self) return nullptr;
  new (&core_of<Core>(self)) Core(std::forward<Args>(args)...);
  return self;
}

// Every parked operation holds a reference to its core's object: no waiter
// is left when it goes.
template <class Core>
void core_dealloc(PyObject* self) {
  PyTypeObject* type = Py_TYPE(self);  // a heap type: the object holds a reference to it
  core_of<Core>(self).~Core();
  type->tp_free(self);
  Py_DECREF(type);
}

// make_core_type — the heap type of CoreObject<Core>.
template <class Core>
PyObject* make_core_type(const char* name, const char* doc, newfunc make, PyMethodDef* methods,
                         unsigned flags = Py_TPFLAGS_DEFAULT, PyGetSetDef* getset = nullptr) {
  PyType_Slot slots[] = {
      {Py_tp_new, reinterpret_cast<void*>(make)},
      {Py_tp_dealloc, reinterpret_cast<void*>(&core_dealloc<Core>)},
      {Py_tp_methods, methods},
      {Py_tp_doc, const_cast<char*>(doc)},
      {getset ? Py_tp_getset : 0, getset},
      {0, nullptr},
  };
  PyType_Spec spec{name, static_cast<int>(sizeof(CoreObject<Core>)), 0, flags, slots};
  return PyType_FromSpec(&spec);
}

}  // namespace corelet::py
