"""Per-row maths shared by every backend: plain Python, compiled by each.

Each backend compiles these with its own ``exp`` (``make_logsumexp_span``) and
``inline="always"``; they use only loops and arithmetic, allocate nothing and
write only to what they are given.
"""

import math


def make_logsumexp_span(exp):
    """``logsumexp_span`` computed with the backend's ``exp``."""

    def logsumexp_span(row, start, count):
        """``log sum_j exp(row[start + j])`` for ``j < count``, without overflow."""
        top = row[start]
        for j in range(1, count):
            if row[start + j] > top:
                top = row[start + j]
        total = 0.0
        for j in range(count):
            total += exp(row[start + j] - top)
        return top + math.log(total)

    return logsumexp_span


logsumexp_span = make_logsumexp_span(math.exp)
