"""Per-row maths shared by every backend: plain Python, compiled by each.

``cpu.py`` compiles these with ``numba.njit(inline="always")``; they use only
``math`` and loops, allocate nothing and write only to what they are given.
"""

import math


def logsumexp_span(row, start, count):
    """``log sum_j exp(row[start + j])`` for ``j < count``, without overflow."""
    top = row[start]
    for j in range(1, count):
        if row[start + j] > top:
            top = row[start + j]
    total = 0.0
    for j in range(count):
        total += math.exp(row[start + j] - top)
    return top + math.log(total)
