"""Per-row maths shared by every backend: plain Python, compiled by each.

``cpu.py`` compiles these with ``numba.njit(inline="always")``, ``cuda.py`` with
``cuda.jit(device=True)``; they use only ``math``, loops and NumPy's unsigned
integer constants, allocate nothing and write only to what they are given.
"""

import math

import numpy as np


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


# Wellons' "lowbias32" integer hash. Products stay below 2**64 (a 32-bit value
# times a 32-bit constant), so no backend ever overflows, the CUDA simulator's
# NumPy scalars included.
_LOW32 = np.uint64(0xFFFFFFFF)
_MUL1 = np.uint64(0x7FEB352D)
_MUL2 = np.uint64(0x846CA68B)
_SHIFT15 = np.uint64(15)
_SHIFT16 = np.uint64(16)
_SHIFT21 = np.uint64(21)
_SHIFT32 = np.uint64(32)
_SHIFT11 = np.uint64(11)
_STREAM = np.uint64(0x9E3779B9)


def uniform(seed, index):
    """A uniform draw in (0, 1) for ``(seed, index)``: counter-based, so any
    thread of any backend computes draw ``index`` alone and gets the same bits.

    ``seed`` (below 2**32) and ``index`` are unsigned 64-bit integers. Four
    rounds of the hash, each on the last one's result mixed with a new input
    (the backends compile this function alone, so the hash is not a call):
    the index's high word, then the seed (giving the key), the index's low
    word (the high 32 bits of the draw), then a stream constant (the low ones).
    """
    x = index >> _SHIFT32
    key = x
    high = x
    for step in range(4):
        if step == 1:
            x ^= seed
        elif step == 2:
            key = x
            x = (index & _LOW32) ^ key
        elif step == 3:
            high = x
            x ^= key ^ _STREAM
        x ^= x >> _SHIFT16
        x = (x * _MUL1) & _LOW32
        x ^= x >> _SHIFT15
        x = (x * _MUL2) & _LOW32
        x ^= x >> _SHIFT16
    # 53 random bits, centred in their interval: never 0, never 1.
    return (float((high << _SHIFT21) | (x >> _SHIFT11)) + 0.5) * 1.1102230246251565e-16
