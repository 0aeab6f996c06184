"""Tuning constants shared by the kernels (patched small in tests)."""

import os

# Numba's on-disk cache for serial kernels; parallel kernels are never cached
# because a cached parallel kernel fixes the thread count (pynndescent #175).
NUMBA_CACHE = os.getenv("SKMOE_NUMBA_CACHE", "true").lower() in {"1", "true"}

# Rows per chunk in the ordered reductions. The partition depends on n only,
# never on the thread count, so every sum is reproduced bit for bit.
CHUNK_SIZE = 4096

# Upper bound on the elements of one chunk's scaled block in the Gram kernels
# (rows x statistics x features); about 4 MiB of float64, so a block stays in cache.
BLOCK_ELEMENTS = 1 << 19

# Below this many coefficients per node, the exact Newton gate step is the
# default ("auto"); above it, the Boehning bound is cheaper per iteration.
NEWTON_MAX_COEFS = 64

# Below this many inner-loop steps a row kernel runs its serial build.
PARALLEL_MIN_WORK = 1 << 18
