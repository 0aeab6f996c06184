"""Tuning constants shared by the kernels (patched small in tests)."""

import os

# Numba's on-disk cache for serial kernels; parallel kernels are never cached
# because a cached parallel kernel fixes the thread count (pynndescent #175).
NUMBA_CACHE = os.getenv("SKMOE_NUMBA_CACHE", "true").lower() in {"1", "true"}

# Rows per chunk in the ordered reductions. The partition depends on n only,
# never on the thread count, so every sum is reproduced bit for bit.
CHUNK_SIZE = 4096

# Chunks per row group, the unit of work of the CPU kernels' thread pool: large
# enough that a task outweighs its dispatch, small enough to share the rows out.
GROUP_CHUNKS = 4

# Fewer groups than this run on the caller's thread. Whole fits (K = 4, p = 10,
# 2026-12-05 on a 2-core Xeon, benchmarks.md): 2 groups (20 000 rows) 1.1 to 1.2
# times faster on one thread; 3, 4 and 7 groups (35 000, 50 000 and 100 000 rows)
# 1.2, 1.1 and 1.4 times faster on two. (On a busy 2-core EPYC in 2026-11, one
# thread had been as fast up to 50 000 rows.)
PARALLEL_MIN_GROUPS = 3

# Tasks per pool thread when the groups are many: a task runs consecutive groups,
# more than one a thread so that a thread the OS delays holds up little.
POOL_TASKS_PER_THREAD = 4

# Elements of one block of rows inside a group (rows x columns of the widest
# per-block buffer); about 1 MiB of float64, so that a block stays in cache.
BLOCK_ELEMENTS = 1 << 17

# Rows of a block at least, so that each BLAS call has work enough even when
# the rows are wide (the Gram of 100 features has 5050 products per row).
MIN_BLOCK_ROWS = 256

# Up to this many free coefficients per gate node, "auto" takes the exact Newton
# step; above it, Boehning steps. Chosen on whole fits, not on the cost of one
# iteration: Newton's iterations cost more but it needs far fewer of them
# (benchmarks.md, "Which gate solver"). Newton fitted faster in 12 of 13 shapes up
# to 315 coefficients (K = 4, p = 80: 6.3 times), Boehning from 341 (K = 32, p = 10).
NEWTON_MAX_GATE_COEFS = 320

# The same bound for multinomial experts (c classes: (c - 1) p coefficients each).
NEWTON_MAX_EXPERT_COEFS = 64

# On a GPU, predictions run over batches of rows of about this many doubles in
# all (the batch's X, designs and (rows, n_experts) arrays): 2 GiB, so that the
# device holds one batch however large the input. At n = 1e7, p = 20, K = 16 on
# an H100, predict took 0.24 s in batches of 2 GiB, 0.31 s of 512 MiB (the
# copies' page-locking is per batch; 2026-12-06, docs/benchmarks.md).
PREDICT_BATCH_ELEMENTS = 1 << 28

# Below this many inner-loop steps a prediction row kernel runs its serial build.
PARALLEL_MIN_WORK = 1 << 18

# CUDA backend: threads per block of every kernel launch. Reductions never depend
# on it (each output is summed in row order by one thread), so tests patch it small.
THREADS_PER_BLOCK = 128

# CUDA backend: rows per chunk of the ordered reductions (one block per chunk:
# smaller than CHUNK_SIZE, so that a GPU has thousands of blocks in flight).
CUDA_CHUNK_SIZE = 1024

# CUDA backend: launch compiled kernels directly (skmoe._kernels.cuda._Launcher)
# instead of through numba-cuda's dispatcher, which costs about 50 us a launch.
CUDA_DIRECT_LAUNCH = os.getenv("SKMOE_CUDA_DIRECT_LAUNCH", "true").lower() in {"1", "true"}
