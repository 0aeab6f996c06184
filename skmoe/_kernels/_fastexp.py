"""A vectorisable ``exp`` and ``log`` for the CPU kernels' log-space loops.

``math.exp`` and ``math.log`` compile to scalar libm calls, which keep LLVM
from vectorising the loops of the E-step and the gate step, and those loops
are mostly exponentials and logarithms. These are straight-line arithmetic
that LLVM turns into SIMD code, each within one ulp of libm (tested):

- ``exp(x) = 2^k exp(r)`` with ``k = round(x / ln 2)`` (read off the mantissa
  of ``x / ln 2 + 1.5 * 2^52``), ``r = x - k ln 2`` in two parts (Cody and
  Waite), and the Taylor polynomial of degree 13 for ``exp(r)`` on
  ``|r| <= ln(2) / 2``, whose remainder is below 2^-60. Below ``MIN_ARG`` it
  is 0 (where ``math.exp`` would give a subnormal number) and above
  ``MAX_ARG`` it is ``inf``.
- ``log(x) = k ln 2 + log(m)`` with ``x = 2^k m``, ``m`` in
  ``[sqrt(2)/2, sqrt(2))`` read off the bits, and ``log(m) = log(1 + f)``
  by fdlibm's ``e_log.c``: ``s = f / (2 + f)`` and a minimax polynomial in
  ``s^2`` (error below 2^-58.45), with its branches turned into selects.

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

# 1/13!, 1/12!, ..., 1/1!, 1/0!: the Taylor coefficients of exp, Horner order.
_EXP_TAYLOR = tuple(1.0 / math.factorial(k) for k in range(13, -1, -1))

# fdlibm's e_log.c: the minimax coefficients of (log(1+f) - 2s + s^2 ... ) / s^2
# in s^2, s = f / (2 + f), and the mantissa offset that puts m above sqrt(2)
# into the next binade.
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_SQRT2_OFFSET = 0x95F6400000000
_SMALLEST_NORMAL = 2.2250738585072014e-308
_TWO54 = 18014398509481984.0
_TWO52 = 4503599627370496.0
_TWO52_BITS = 0x4330000000000000
_MANTISSA = 0x000FFFFFFFFFFFFF
_IMPLICIT_ONE = 0x0010000000000000
_ONE_BITS = 0x3FF0000000000000


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


@intrinsic
def _divide(typingctx, a, b):
    # A bare fdiv: Numba's ``/`` tests for a zero divisor, a branch that stops
    # vectorisation (the divisor here is never zero).
    def codegen(context, builder, signature, args):
        return builder.fdiv(args[0], args[1])

    return types.float64(types.float64, types.float64), codegen


@intrinsic
def _mul_add(typingctx, a, b, c):
    # ``a * b + c``, fused where the CPU has FMA (llvm.fmuladd): only the
    # polynomials use it, whatever the fastmath flags of the calling kernel.
    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fn = builder.module.declare_intrinsic(
            "llvm.fmuladd", [double], ir.FunctionType(double, [double] * 3)
        )
        return builder.call(fn, args)

    return types.float64(types.float64, types.float64, types.float64), codegen


# Compiled once each, without wrappers (only kernels call them), and inlined by
# LLVM into every loop that calls them, which vectorises as well as with
# inline="always": that inlined them at Numba's IR level, where every call site
# typed and lowered the whole body again.
_jit = njit(cache=_config.NUMBA_CACHE, no_cpython_wrapper=True, no_cfunc_wrapper=True)


@_jit
def exp(x):
    """``exp(x)`` to one ulp; 0 below ``MIN_ARG``, ``inf`` above ``MAX_ARG``, NaN for NaN."""
    clipped = min(max(x, MIN_ARG), MAX_ARG)
    shifted = _mul_add(clipped, _LOG2E, _SHIFTER)
    k = shifted - _SHIFTER
    r = _mul_add(-k, _LN2_LO, _mul_add(-k, _LN2_HI, clipped))
    poly = _EXP_TAYLOR[0]
    for c in _EXP_TAYLOR[1:]:
        poly = _mul_add(poly, r, c)
    # 2^k as 2 * 2^(k-1): k reaches 1024 just below MAX_ARG, whose exponent field
    # would be that of inf. 2 * poly first, so that near MIN_ARG the product
    # stays normal and is rounded once. The low bits of the shifted value hold k.
    value = (2.0 * poly) * _from_bits((_as_bits(shifted) + 1022) << 52)
    if x < MIN_ARG:
        value = 0.0
    if x > MAX_ARG:
        value = math.inf
    if x != x:
        value = x
    return value


@_jit
def log(x):
    """``log(x)`` to one ulp; ``-inf`` at 0, NaN below 0 and for NaN, ``inf`` at ``inf``."""
    # Subnormal inputs are scaled into the normal range first (a select, not a branch).
    subnormal = x < _SMALLEST_NORMAL
    bits = _as_bits(x * _TWO54 if subnormal else x)
    fraction = bits & _MANTISSA
    # One more binade when the mantissa exceeds sqrt(2): m = x / 2^k in [sqrt(2)/2, sqrt(2)).
    carry = (fraction + _SQRT2_OFFSET) & _IMPLICIT_ONE
    m = _from_bits(fraction | (carry ^ _ONE_BITS))
    # The biased exponent as a float through the bits of 2^52 + e: AVX2 has no
    # int64-to-double conversion, and would scalarise float(e).
    biased = ((bits >> 52) & 0x7FF) + (carry >> 52)
    dk = (_from_bits(biased | _TWO52_BITS) - _TWO52) - (1077.0 if subnormal else 1023.0)
    f = m - 1.0
    s = _divide(f, 2.0 + f)
    z = s * s
    w = z * z
    odd = _mul_add(_mul_add(_mul_add(_LG7, w, _LG5), w, _LG3), w, _LG1)
    even = _mul_add(_mul_add(_LG6, w, _LG4), w, _LG2)
    r = z * odd + w * even
    half_f2 = 0.5 * f * f
    value = dk * _LN2_HI - ((half_f2 - (s * (half_f2 + r) + dk * _LN2_LO)) - f)
    if x == 0.0:
        value = -math.inf
    if x < 0.0:
        value = math.nan
    if x == math.inf:
        value = math.inf
    if x != x:
        value = x
    return value
