"""The start method, as multiprocessing's module-level state: which of
'fork', 'spawn' and 'forkserver' new Processes start by, the interpreter a
'spawn' child runs, and the modules the zygote imports before it forks a
'forkserver' child. _context.py gives the public functions; _process.py and
_spawning.py read the state here.
"""

import os
import sys

from . import _common

__all__ = [
    "METHODS",
    "check_method",
    "executable",
    "get_start_method",
    "preload",
    "set_executable",
    "set_forkserver_preload",
    "set_in_child",
    "set_start_method",
]

METHODS = ("fork", "spawn", "forkserver")
_method = None  # set by set_start_method, or by the first get_start_method
_executable = sys.executable
_preload = []


def check_method(method):
    if method in METHODS:
        return method
    raise ValueError(f"cannot find context for {method!r}")


def get_start_method(allow_none=False):
    """The start method; once asked for, it is fixed (set_start_method then
    needs force=True), as multiprocessing's."""
    global _method
    if _method is None:
        if allow_none:
            return None
        _method = "fork"
    return _method


def set_start_method(method, force=False):
    """Sets the start method: RuntimeError if it is already set, unless force."""
    if _method is not None and not force:
        raise RuntimeError("context has already been set")
    if method is None and force:
        _set(None)
        return
    _set(check_method(method))


def _set(method):
    global _method
    _method = method
    _common._spawning_method[0] = method in ("spawn", "forkserver")


def set_in_child(method):
    """In a 'spawn' or 'forkserver' child: the parent's method, as multiprocessing's children have."""
    _set(method)


def executable():
    return _executable


def set_executable(executable):
    """The interpreter a 'spawn' child runs (sys.executable by default)."""
    global _executable
    _executable = os.fsdecode(executable)


def preload():
    return list(_preload)


def set_forkserver_preload(module_names):
    """The modules the zygote imports before it forks the first 'forkserver'
    child after this call (one that fails to import is skipped)."""
    global _preload
    if not all(isinstance(m, str) for m in module_names):
        raise TypeError("module_names must be a list of strings")
    _preload = list(module_names)
