"""Row groups and the thread pool that runs them (the CPU backend's and the host's).

Rows are split into groups of ``GROUP_CHUNKS * CHUNK_SIZE``: the partition
depends on the problem size only, so sums combined in group order do not
depend on the number of threads.
"""

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numba

from .. import _config

_POOL = {"key": None, "executor": None}


def _executor(threads):
    """The shared thread pool, rebuilt if the thread count or the process changed."""
    key = (threads, os.getpid())
    if _POOL["key"] != key:
        _POOL["executor"] = ThreadPoolExecutor(max_workers=threads,
                                               thread_name_prefix="skmoe")
        _POOL["key"] = key
    return _POOL["executor"]


def _groups(n):
    size = _config.CHUNK_SIZE * _config.GROUP_CHUNKS
    return [(start, min(n, start + size)) for start in range(0, n, size)]


def _map_groups(n, fn):
    """``fn(start, stop)`` for every row group, results in group order.

    The pool runs consecutive groups per task, at most
    ``POOL_TASKS_PER_THREAD`` tasks a thread: each task costs the pool's queue,
    a future and the GIL, and with one task per group (611 at n = 1e7) that
    cost exceeded the work of the light passes over a column.
    """
    groups = _groups(n)
    # The group count first: numba.get_num_threads() takes a lock (a microsecond).
    threads = 1 if len(groups) < _config.PARALLEL_MIN_GROUPS else numba.get_num_threads()
    if threads <= 1:
        return [fn(start, stop) for start, stop in groups]
    # Tasks of as many groups as can be (one more or not), so that the threads
    # finish together.
    n_tasks = min(len(groups), _config.POOL_TASKS_PER_THREAD * threads)
    bounds = [len(groups) * task // n_tasks for task in range(n_tasks + 1)]
    tasks = [groups[first:last] for first, last in zip(bounds[:-1], bounds[1:])]
    return itertools.chain.from_iterable(_executor(threads).map(
        lambda task: [fn(start, stop) for start, stop in task], tasks))


def _sum_groups(n, fn):
    """Element-wise sum, in group order, of the tuples of arrays ``fn`` returns."""
    total = None
    for part in _map_groups(n, fn):
        total = list(part) if total is None else [a + b for a, b in zip(total, part)]
    return total
