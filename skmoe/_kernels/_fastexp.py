"""A vectorisable ``exp`` for the CPU kernels' log-space loops.

``math.exp`` compiles to a scalar libm call, which keeps LLVM from vectorising
the loops of the E-step and the gate step, and those loops are mostly
exponentials. This ``exp`` is straight-line arithmetic that LLVM turns into
SIMD code: ``exp(x) = 2^k exp(r)`` with ``k = round(x / ln 2)`` (read off the
mantissa of ``x / ln 2 + 1.5 * 2^52``), ``r = x - k ln 2`` in two parts
(Cody and Waite), and the Taylor polynomial of degree 13 for ``exp(r)`` on
``|r| <= ln(2) / 2``, whose remainder is below 2^-60. The result is within one
ulp of ``math.exp`` (tested); below ``MIN_ARG`` it is 0 (where ``math.exp``
would give a subnormal number) and above ``MAX_ARG`` it is ``inf``.

CPU only: the bit casts are LLVM intrinsics, which CUDA does not need.
"""

import math

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from .. import _config

MIN_ARG = -708.0
MAX_ARG = 709.782712893384

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
# Adding 1.5 * 2^52 rounds to an integer and leaves it in the low mantissa bits.
_SHIFTER = 6755399441055744.0


@intrinsic
def _as_bits(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, bits):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(inline="always", cache=_config.NUMBA_CACHE)
def exp(x):
    """``exp(x)`` to one ulp; 0 below ``MIN_ARG``, ``inf`` above ``MAX_ARG``, NaN for NaN."""
    clipped = min(max(x, MIN_ARG), MAX_ARG)
    shifted = clipped * _LOG2E + _SHIFTER
    k = shifted - _SHIFTER
    r = (clipped - k * _LN2_HI) - k * _LN2_LO
    poly = 1.0 / 6227020800.0
    poly = poly * r + 1.0 / 479001600.0
    poly = poly * r + 1.0 / 39916800.0
    poly = poly * r + 1.0 / 3628800.0
    poly = poly * r + 1.0 / 362880.0
    poly = poly * r + 1.0 / 40320.0
    poly = poly * r + 1.0 / 5040.0
    poly = poly * r + 1.0 / 720.0
    poly = poly * r + 1.0 / 120.0
    poly = poly * r + 1.0 / 24.0
    poly = poly * r + 1.0 / 6.0
    poly = poly * r + 0.5
    poly = poly * r + 1.0
    poly = poly * r + 1.0
    # 2^k as 2^(k-1) * 2: k reaches 1024 just below MAX_ARG, whose exponent field
    # would be that of inf. The low bits of the shifted value hold k.
    value = poly * _from_bits((_as_bits(shifted) + 1022) << 52) * 2.0
    if x < MIN_ARG:
        value = 0.0
    if x > MAX_ARG:
        value = math.inf
    if x != x:
        value = x
    return value
