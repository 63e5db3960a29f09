"""corelet.pool: the names of multiprocessing.pool.

Pool is corelet's (processes on corelet's workers); ThreadPool is the
standard library's multiprocessing.pool.ThreadPool (threads in this
process, nothing to do with corelet's workers); TimeoutError is
multiprocessing's own class.
"""

from multiprocessing.pool import ThreadPool  # noqa: F401 - re-exported

from ._pool import AsyncResult, Pool, TimeoutError  # noqa: A004 - multiprocessing's name

__all__ = ["Pool", "ThreadPool", "AsyncResult"]
