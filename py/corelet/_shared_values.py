"""Value and Array, as multiprocessing's: ctypes objects in anonymous shared
memory (corelet._corelet.SharedMemory), by default with a cross-process
RLock that their .value and items are read and written under.

They reach the processes forked after they are made (corelet.Process
children and the workers of corelet.run(main, workers=N)): share them by
inheritance, as with multiprocessing; pickling a synchronized one raises
RuntimeError.
"""

import copyreg
import ctypes

from ._common import _reduce_for_child, _register_cores, _shareable
from multiprocessing import context as _mpcontext
from multiprocessing import sharedctypes as _mp_sharedctypes
from multiprocessing.reduction import ForkingPickler

from ._corelet import SharedMemory
from ._shared_sync import SharedRLock

__all__ = ["Value", "Array", "RawValue", "RawArray", "Synchronized", "SynchronizedArray"]

_TYPECODES = {
    "c": ctypes.c_char, "u": ctypes.c_wchar, "b": ctypes.c_byte, "B": ctypes.c_ubyte,
    "h": ctypes.c_short, "H": ctypes.c_ushort, "i": ctypes.c_int, "I": ctypes.c_uint,
    "l": ctypes.c_long, "L": ctypes.c_ulong, "q": ctypes.c_longlong, "Q": ctypes.c_ulonglong,
    "f": ctypes.c_float, "d": ctypes.c_double,
}


def _ctype(typecode_or_type):
    if isinstance(typecode_or_type, str):
        try:
            return _TYPECODES[typecode_or_type]
        except KeyError:
            raise ValueError(f"corelet: unknown typecode {typecode_or_type!r}") from None
    return typecode_or_type


def _raw(ctype):
    return _over(ctype, SharedMemory(max(ctypes.sizeof(ctype), 8), _shareable()))


_ctypes_made = set()  # the ctypes types of corelet's raw values


def _over(ctype, mem):
    obj = ctype.from_buffer(mem)
    obj._corelet_memory = mem  # the mapping lives as long as the object
    # A raw value pickles only to a child being started by 'spawn' or
    # 'forkserver' (multiprocessing registers its ctypes types likewise);
    # a ctypes object that is not corelet's pickles as before.
    copyreg.pickle(ctype, _reduce_ctype)
    _ctypes_made.add(ctype)
    return obj


def claim_ctypes_reducers():
    """Before a child's start: corelet's reducer for the ctypes types of its
    raw values in ForkingPickler too (multiprocessing registers its own
    there whenever it makes a value of such a type; corelet's hands
    multiprocessing's objects on to it)."""
    for ctype in _ctypes_made:
        ForkingPickler.register(ctype, _reduce_ctype)


def _reduce_ctype(obj):
    mem = getattr(obj, "_corelet_memory", None)
    if mem is None:
        if hasattr(obj, "_wrapper"):  # multiprocessing's own shared value
            return _mp_sharedctypes.reduce_ctype(obj)
        return obj.__reduce_ex__(2)  # ctypes' own (copyreg's entry is for every object of the type)
    if _mpcontext.get_spawning_popen() is None:
        raise RuntimeError(
            f"corelet.RawValue / RawArray objects ({type(obj).__name__}) are shared between processes by "
            "inheritance: make them before starting the processes (as with multiprocessing)"
        )
    if isinstance(obj, ctypes.Array):  # an array type pickles as its item type and length
        return _over_array, (obj._type_, obj._length_, mem)
    return _over, (type(obj), mem)


def _over_array(item_type, length, mem):
    return _over(item_type * length, mem)


def _lock_for(lock):
    if lock is True or lock is None:  # None: a new lock, as multiprocessing's
        return SharedRLock()
    if lock is False:
        return None
    if not hasattr(lock, "acquire"):
        raise AttributeError(f"{lock!r} has no method 'acquire'")
    return lock


class Synchronized:
    """A Value with its lock: .value reads and writes under the lock."""

    def __init__(self, obj, lock):
        self._from_child_state((obj, lock))

    __reduce__ = _reduce_for_child

    def _child_state(self):
        return self._obj, self._lock

    def _from_child_state(self, state):
        self._obj, self._lock = state
        self.acquire = self._lock.acquire
        self.release = self._lock.release

    def get_lock(self):
        return self._lock

    def get_obj(self):
        return self._obj

    def __enter__(self):
        return self._lock.__enter__()

    def __exit__(self, *exc):
        return self._lock.__exit__(*exc)

    @property
    def value(self):
        with self._lock:
            return self._obj.value

    @value.setter
    def value(self, v):
        with self._lock:
            self._obj.value = v

    def __repr__(self):
        return f"<corelet.Value {type(self._obj).__name__}({self._obj.value!r})>"


class SynchronizedArray(Synchronized):
    """An Array with its lock: items and slices read and write under it."""

    def __len__(self):
        return len(self._obj)

    def __getitem__(self, i):
        with self._lock:
            return self._obj[i]

    def __setitem__(self, i, v):
        with self._lock:
            self._obj[i] = v

    # value: Synchronized's, under the lock ('c' arrays: the bytes up to the
    # first NUL, as multiprocessing's).

    @property
    def raw(self):
        with self._lock:
            return self._obj.raw

    def __repr__(self):
        return f"<corelet.Array {type(self._obj).__name__} of {len(self)}>"


def RawValue(typecode_or_type, *args):  # noqa: N802 - multiprocessing's name
    """A ctypes object in shared memory, without a lock, as
    multiprocessing.RawValue: args initialise it as ctype(*args) would."""
    ctype = _ctype(typecode_or_type)
    obj = _raw(ctype)
    if args:
        if len(args) == 1 and not issubclass(ctype, ctypes.Structure):
            obj.value = args[0]
        else:
            ctypes.memmove(ctypes.addressof(obj), ctypes.addressof(ctype(*args)), ctypes.sizeof(ctype))
    return obj


def RawArray(typecode_or_type, size_or_initializer):  # noqa: N802
    """A ctypes array in shared memory, without a lock, as
    multiprocessing.RawArray: zeroed of that size, or a copy of the sequence."""
    ctype = _ctype(typecode_or_type)
    if isinstance(size_or_initializer, int):
        return _raw(ctype * size_or_initializer)
    init = list(size_or_initializer) if not isinstance(size_or_initializer, (bytes, str)) else size_or_initializer
    obj = _raw(ctype * len(init))
    obj[:] = init
    return obj


def Value(typecode_or_type, *args, lock=True):  # noqa: N802 - multiprocessing's name
    """A ctypes object in shared memory, as multiprocessing.Value: with a
    lock (lock=True or None: a new RLock; a lock object: that one) its .value
    is read and written under it; lock=False gives the raw ctypes object."""
    lk = _lock_for(lock)  # a bad lock fails before any memory is mapped
    obj = RawValue(typecode_or_type, *args)
    return obj if lk is None else Synchronized(obj, lk)


def Array(typecode_or_type, size_or_initializer, *, lock=True):  # noqa: N802
    """A ctypes array in shared memory, as multiprocessing.Array."""
    lk = _lock_for(lock)
    obj = RawArray(typecode_or_type, size_or_initializer)
    return obj if lk is None else SynchronizedArray(obj, lk)


_register_cores({SharedMemory: "Value"})
