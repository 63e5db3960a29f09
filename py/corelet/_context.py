"""multiprocessing's module-level functions and errors: cpu_count,
freeze_support, the start-method functions and contexts, set_executable,
set_forkserver_preload, get_logger and log_to_stderr, and the error classes
(multiprocessing's own classes, so that an `except multiprocessing.X`
catches corelet's too).

The three start methods are multiprocessing's: 'fork' (the default, as on
Linux), 'spawn' and 'forkserver' (fresh interpreters; see _spawning.py).
get_context(method) is a context whose attributes are corelet's names
(ctx.Process, ctx.Queue, ...): its Process starts by its method whatever
the current one, and in a 'spawn' or 'forkserver' context the primitives
(ctx.Lock(), ctx.Queue(), ctx.Value(), ...) are made so that its children
can get them as arguments (in memfds, see corelet._common).
"""

import logging
import multiprocessing
import os
import sys

from . import _common
from ._process import ForkProcess, ForkServerProcess, SpawnProcess, current_process
from ._start import (
    METHODS,
    check_method,
    get_start_method,
    set_executable,
    set_forkserver_preload,
    set_start_method,
)

__all__ = [
    "AuthenticationError",
    "BufferTooShort",
    "ProcessError",
    "TimeoutError",
    "cpu_count",
    "freeze_support",
    "get_all_start_methods",
    "get_context",
    "get_logger",
    "get_start_method",
    "log_to_stderr",
    "set_executable",
    "set_forkserver_preload",
    "set_start_method",
]

ProcessError = multiprocessing.ProcessError
BufferTooShort = multiprocessing.BufferTooShort
TimeoutError = multiprocessing.TimeoutError  # noqa: A001 - multiprocessing's name
AuthenticationError = multiprocessing.AuthenticationError

def cpu_count():
    """The number of CPUs in the system, as multiprocessing.cpu_count;
    NotImplementedError if it cannot be told."""
    n = os.cpu_count()
    if n is None:
        raise NotImplementedError("cannot determine number of cpus")
    return n


def freeze_support():
    """multiprocessing's, for frozen Windows programs: nothing to do here."""


# What a 'spawn' or 'forkserver' context's factories make for its children.
_PRIMITIVES = frozenset(
    (
        "Lock", "RLock", "Semaphore", "BoundedSemaphore", "Event", "Condition", "Barrier",
        "Queue", "JoinableQueue", "SimpleQueue", "Value", "Array", "RawValue", "RawArray",
    )
)


class _Context:
    """A context: corelet's names, and one start method."""

    def __init__(self, name, process_class):
        self._name = name
        self.Process = process_class

    def get_start_method(self, allow_none=False):
        return self._name

    def get_context(self, method=None):
        return get_context(method)

    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        package = sys.modules[__name__.rpartition(".")[0]]  # loaded by then: its names are the context's
        try:
            value = getattr(package, name)
        except AttributeError:
            raise AttributeError(f"corelet's {self._name!r} context has no attribute {name!r}") from None
        if self._name != "fork" and name in _PRIMITIVES:
            value = _common._making_shareable(value)
        return value

    def __repr__(self):
        return f"<corelet context {self._name!r}>"


_CONTEXTS = {
    "fork": _Context("fork", ForkProcess),
    "spawn": _Context("spawn", SpawnProcess),
    "forkserver": _Context("forkserver", ForkServerProcess),
}


def get_context(method=None):
    """The context of a start method (None: the current one)."""
    return _CONTEXTS[get_start_method() if method is None else check_method(method)]


def get_all_start_methods():
    return list(METHODS)


# ---- logging ----------------------------------------------------------------

LOGGER_NAME = "corelet"
DEFAULT_LOGGING_FORMAT = "[%(levelname)s/%(processName)s] %(message)s"


class _ProcessName(logging.Filter):
    """Names the record's process as corelet knows it (logging asks
    multiprocessing, which does not know corelet's children)."""

    def filter(self, record):
        record.processName = current_process().name
        return True


def get_logger():
    """corelet's logger ("corelet"), as multiprocessing.get_logger gives
    multiprocessing's; it has no handler until log_to_stderr()."""
    logger = logging.getLogger(LOGGER_NAME)
    if not getattr(logger, "_corelet_set_up", False):
        logger.propagate = False
        logger._corelet_set_up = True
    return logger


def log_to_stderr(level=None):
    """Adds a stderr handler to corelet's logger, formatted as
    multiprocessing's ("[LEVEL/ProcessName] message"); returns the logger."""
    logger = get_logger()
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter(DEFAULT_LOGGING_FORMAT))
    handler.addFilter(_ProcessName())
    logger.addHandler(handler)
    if level:
        logger.setLevel(level)
    return logger
