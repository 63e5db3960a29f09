"""How Python objects cross between processes: pickle protocol 5 with
out-of-band buffers, and cloudpickle where pickle cannot (lambdas, local
functions, classes defined in __main__ of a process the receiver is not a
fork of).

A message is a header, the pickle stream, then the raw out-of-band buffers:
memoryviews and numpy arrays (anywhere in the object), and bytes and
bytearrays of 1 KiB or more (at the top, or one level into tuples, lists and
dict values: where arguments, results and Pool items are) travel beside the
stream instead of being copied into it; memoryviews (with their format and
shape) and arrays arrive as read-only views of the received message.
"""

import io
import pickle
import struct
import traceback
import types

try:
    import cloudpickle
except ImportError:  # python3-cloudpickle is a dependency; without it lambdas cannot cross
    cloudpickle = None

__all__ = ["dumps", "loads", "dumps_call", "pack_exception", "raise_remote", "RemoteError", "RemoteTraceback"]

_MAGIC = b"CLW1"
_HEAD = struct.Struct("<4sII")  # magic, buffers, stream length
_LEN = struct.Struct("<Q")
_OOB_MIN = 1024  # bytes objects at least this long go out of band


def _bytes_from(buf):
    return bytes(buf)


def _memoryview_from(buf, fmt="B", shape=None, readonly=False):
    m = memoryview(buf)
    if fmt != "B" or (shape is not None and len(shape) != 1):
        m = m.cast("B").cast(fmt, shape)
    return m.toreadonly() if readonly else m


class _BytesOOB:
    """Carries a large bytes or bytearray out of band. Picklers never ask
    reducer_override about those (they have their own opcodes), so dumps swaps
    them for this at the top of the object and one level into tuples, lists
    and dict values (where call arguments, results and Pool items are)."""

    __slots__ = ("b",)

    def __init__(self, b):
        self.b = b

    def __reduce_ex__(self, protocol):
        return (_bytes_from if type(self.b) is bytes else bytearray), (pickle.PickleBuffer(self.b),)


def _big(x):
    return (type(x) is bytes or type(x) is bytearray) and len(x) >= _OOB_MIN


def _swap(obj):
    t = type(obj)
    if _big(obj):
        return _BytesOOB(obj)
    if t is tuple or t is list:
        if any(_big(x) for x in obj):
            return t(_BytesOOB(x) if _big(x) else x for x in obj)
        if t is tuple:
            return tuple(_swap(x) if type(x) in (tuple, list, dict) else x for x in obj)
        return obj
    if t is dict and any(_big(v) for v in obj.values()):
        return {k: (_BytesOOB(v) if _big(v) else v) for k, v in obj.items()}
    return obj


def _oob(obj):
    if type(obj) is memoryview and obj.contiguous:
        # The raw bytes go out of band; format, shape and readonly with them.
        return _memoryview_from, (pickle.PickleBuffer(obj), obj.format, obj.shape, obj.readonly)
    return NotImplemented


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj):
        return _oob(obj)


if cloudpickle is not None:

    class _CloudPickler(cloudpickle.Pickler):
        def reducer_override(self, obj):
            r = _oob(obj)
            if r is NotImplemented:
                return super().reducer_override(obj)
            return r


def _pickle(obj, cls, buffers):
    out = io.BytesIO()
    cls(out, protocol=5, buffer_callback=buffers.append).dump(obj)
    return out.getbuffer()


def _frame(stream, buffers):
    raws = [b.raw() for b in buffers]
    parts = [_HEAD.pack(_MAGIC, len(raws), len(stream))]
    parts.extend(_LEN.pack(r.nbytes) for r in raws)
    parts.append(stream)
    parts.extend(raws)
    return b"".join(parts)


def dumps(obj, by_value=False):
    """The message for obj. by_value: cloudpickle first (for a receiver that
    is not a fork of this process: functions of __main__ go by value)."""
    buffers = []
    obj = _swap(obj)
    if not by_value or cloudpickle is None:
        try:
            return _frame(_pickle(obj, _Pickler, buffers), buffers)
        except Exception as e:  # noqa: BLE001 - any pickling failure: try cloudpickle, then say which
            first = e
            if cloudpickle is None:
                raise TypeError(f"corelet: cannot send {_short(obj)} to another process: {e}") from e
    else:
        first = None
    buffers = []
    try:
        return _frame(_pickle(obj, _CloudPickler, buffers), buffers)
    except Exception as e:  # noqa: BLE001
        raise TypeError(f"corelet: cannot send {_short(obj)} to another process: {e}") from (first or e)


def loads(data):
    """The object of a message made by dumps (a bytes-like object)."""
    view = memoryview(data)
    magic, nbuf, nstream = _HEAD.unpack_from(view, 0)
    if magic != _MAGIC:
        raise ValueError("corelet: not a corelet message")
    pos = _HEAD.size
    lengths = []
    for _ in range(nbuf):
        lengths.append(_LEN.unpack_from(view, pos)[0])
        pos += _LEN.size
    stream = view[pos : pos + nstream]
    pos += nstream
    buffers = []
    for n in lengths:
        buffers.append(view[pos : pos + n])
        pos += n
    return pickle.loads(stream, buffers=buffers)


def _short(obj):
    try:
        r = repr(obj)
    except Exception:  # noqa: BLE001
        r = f"<{type(obj).__name__} object>"
    return r if len(r) <= 120 else r[:117] + "..."


def dumps_call(fn, args, kwargs, by_value=False):
    """The message for a call fn(*args, **kwargs); TypeError naming the
    argument that cannot be pickled (at submit time, in the caller)."""
    try:
        return dumps((fn, args, kwargs), by_value)
    except TypeError:
        pass
    for what, obj in [("the function", fn)] + [(f"argument {i}", a) for i, a in enumerate(args)] + [
        (f"keyword argument {k!r}", v) for k, v in kwargs.items()
    ]:
        try:
            dumps(obj, by_value)
        except TypeError as e:
            raise TypeError(f"corelet: {what} of the call cannot be sent to another process: {e}") from None
    raise TypeError(f"corelet: the call {_short(fn)}(...) cannot be sent to another process")


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in another process (set as
    the __cause__ of the exception raised here, as multiprocessing does)."""

    def __init__(self, tb):
        super().__init__(tb)
        self.tb = tb

    def __str__(self):
        return self.tb


class RemoteError(Exception):
    """An exception raised in another process that could not be pickled:
    its type name, message and traceback text."""

    def __init__(self, type_name, message, tb=""):
        super().__init__(f"{type_name}: {message}")
        self.type_name = type_name
        self.message = message
        self.traceback = tb


def pack_exception(exc):
    """What raise_remote needs to raise exc again in another process."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        pickled = dumps(exc)
        loads(pickled)  # an exception whose constructor takes other arguments fails here
    except Exception:  # noqa: BLE001
        pickled = None
    return (type(exc).__module__ + "." + type(exc).__qualname__, str(exc), tb, pickled)


def raise_remote(packed):
    type_name, message, tb, pickled = packed
    exc = None
    if pickled is not None:
        try:
            exc = loads(pickled)
        except Exception:  # noqa: BLE001
            exc = None
    if exc is None:
        exc = RemoteError(type_name, message, tb)
    raise exc from RemoteTraceback('\n"""\n' + tb + '"""')


def is_tasklet_body(obj):
    return isinstance(obj, (types.GeneratorType, types.CoroutineType))


def callable_name(fn):
    """The user's name for a callable, for error messages: module.qualname
    (a wrapper of corelet's that has `_wrapped_call` names what it wraps)."""
    while hasattr(fn, "_wrapped_call"):
        fn = fn._wrapped_call
    name = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    module = getattr(fn, "__module__", None)
    return f"{module}.{name}" if module and module not in ("builtins", "__main__") else name
