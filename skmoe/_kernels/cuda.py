"""CUDA kernels: the interface of :mod:`skmoe._kernels.cpu` on an NVIDIA GPU.

This is the only module of skmoe that imports CUDA, and only
``get_backend("cuda")`` imports it. The toolchain is taken in this order:

1. ``numba_cuda_mlir`` (numba-cuda-mlir, the successor of numba-cuda), unless
   the CUDA simulator is asked for (``NUMBA_ENABLE_CUDASIM=1``): it has none;
2. ``numba.cuda`` (NVIDIA's numba-cuda, or the target built into older Numba).

numba-cuda 0.30 and older register an overload of ``np.row_stack`` when they
compile their first kernel; NumPy 2.5 removed that alias of ``np.vstack``, so
the first launch fails with an AttributeError. :func:`_numpy_compat` puts the
alias back (the same function NumPy had) before numba-cuda loads; it changes
nothing on NumPy < 2.5 (tests/test_cuda.py checks both).

Every public function has the name and the signature of its CPU counterpart. It
takes device arrays (what :func:`to_device` returns) or NumPy arrays; NumPy
inputs are copied to the device for the call and NumPy outputs receive the
result, so the prediction paths work unchanged. A fit moves X, y and the
weights to the device once (large arrays page-locked in place for the copy),
checks X's finiteness and builds its scaling and designs there; every (n, K)
array of EM then stays there, and each kernel returns only O(K p^2)
statistics to the host, where the small solves run (shared with the CPU
backend).

Reductions over samples are ordered: each output of a chunk of
``_config.CUDA_CHUNK_SIZE`` rows is a sum over the chunk's rows in a fixed order
(row order, or 32 fixed lanes for the column sums), and the chunk partials are
summed in chunk order by one thread per output. No floating-point atomics: the
result depends on n and the chunk size only, never on the launch geometry
(``_config.THREADS_PER_BLOCK``). The GPU's chunks are smaller than the CPU's,
for more blocks in flight; the two backends agree to rounding, not bit for bit.

Every kernel of the CPU backend has its CUDA build here, the predictive
ones included: predictions build their designs, the gate and the experts'
means on the device too, and bring back only their results.
"""

import contextlib
import ctypes
import functools
import math
import os
import warnings

import numpy as np
from numba import float64, int32, uint64

from .. import _config
from . import _bohning, _design, _rowops
from . import cpu as _cpu

_INSTALL_HINT = (
    'backend="cuda" needs numba-cuda (or numba-cuda-mlir) and an NVIDIA GPU with its '
    'driver: pip install "skmoe[cuda]".'
)


def _numpy_compat():
    """Restore ``np.row_stack`` (removed in NumPy 2.5) for numba-cuda <= 0.30.

    numba-cuda registers ``overload(np.row_stack)`` while it loads its array
    typing at the first kernel compilation, which fails on NumPy 2.5 with
    "module 'numpy' has no attribute 'row_stack'". The alias was ``np.vstack``
    itself, so putting it back changes no NumPy behaviour.

    Returns
    -------
    applied : bool
        False when NumPy still has ``row_stack`` (nothing to do).
    """
    if "row_stack" in vars(np):
        return False
    np.row_stack = np.vstack
    return True


def _simulator_enabled():
    """Whether Numba's CUDA simulator is on (read as Numba reads it)."""
    from numba.core import config

    return bool(config.ENABLE_CUDASIM) or os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"


def _import_cuda():
    """The ``cuda`` module of the first toolchain found (see the module docstring)."""
    if not _simulator_enabled():
        try:
            from numba_cuda_mlir import cuda
        except ImportError:
            pass
        else:
            return cuda
    try:
        from numba import cuda
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT + f" ({exc})") from exc
    return cuda


# The E-steps' log-likelihoods arrive after the GPU ends them (``deferred``):
# EM queues the next M-step before it reads each one (see ``run_em``).
LOG_LIKELIHOOD_ARRIVES_LATE = True

# Predictions run over batches of rows (``_config.PREDICT_BATCH_ELEMENTS``), so
# that the device holds one batch's arrays at a time, whatever the input's size.
PREDICTS_IN_BATCHES = True

# A small problem gives small grids; that is expected, not worth a warning per launch.
warnings.filterwarnings("ignore", message=".*Grid size .* will likely result in GPU under-")

# Before numba-cuda loads: whether NumPy needed the row_stack alias back.
NUMPY_SHIM_APPLIED = _numpy_compat()
cuda = _import_cuda()


def check_available():
    """Raise a RuntimeError saying what is missing when no GPU can run the kernels."""
    try:
        available = cuda.is_available()
    except Exception as exc:  # a broken driver raises instead of answering False
        raise RuntimeError(f"{_INSTALL_HINT} CUDA did not initialise: {exc}") from exc
    if not available:
        raise RuntimeError(
            f"{_INSTALL_HINT} No usable CUDA GPU was found (numba.cuda.is_available() "
            "is False: no NVIDIA driver, or no device visible)."
        )


# What the driver raises: for memory it cannot lock (read-only, or locked
# already), and when the device's memory runs out.
_DRIVER_ERROR = cuda.cudadrv.driver.CudaAPIError


@contextlib.contextmanager
def device_memory_errors():
    """Re-raise running out of GPU memory as a MemoryError that says what to do.

    Everything a fit holds on the device grows with n: the designs, and EM's
    (n_samples, n_experts) arrays; predictions run over batches of rows
    (``_config.PREDICT_BATCH_ELEMENTS``). The driver's own error names only
    the allocation that failed.
    """
    try:
        yield
    except _DRIVER_ERROR as exc:
        if "OUT_OF_MEMORY" not in str(exc):
            raise
        try:
            free, total = cuda.current_context().get_memory_info()
            memory = f" ({free / 2**30:.1f} of {total / 2**30:.1f} GiB free now)"
        except Exception:  # a context may not report it (the simulator's): the advice stands
            memory = ""
        raise MemoryError(
            f"The GPU ran out of memory{memory}: with backend=\"cuda\" a fit holds the data "
            "and EM's arrays of shape (n_samples, n_experts) on the device (a prediction "
            "holds a batch of rows of about 2 GiB). Fit on fewer samples, use "
            "backend=\"cpu\", or a GPU with more memory."
        ) from exc


# --------------------------------------------------------------------------
# Array plumbing


def _on_device(a):
    return hasattr(a, "copy_to_host")


# A copy of at least this many bytes page-locks the host array where it is for
# the copy (cuMemHostRegister), instead of going through the driver's pageable
# staging: X at n = 1e7, p = 20 crossed in 0.09 s, locking included, against
# 0.19 s on an H100's host (2026-12-06, docs/benchmarks.md).
_LOCK_BYTES = 1 << 25


@contextlib.contextmanager
def _page_locked(a):
    """The C-contiguous host array ``a`` page-locked where it is, if it is large.

    For one synchronous copy to or from the device inside the block: such a
    copy is done before the unlock.
    """
    with contextlib.ExitStack() as stack:
        if a.nbytes >= _LOCK_BYTES:
            try:
                stack.enter_context(cuda.pinned(a))
            except _DRIVER_ERROR:
                pass  # the driver's pageable copy, then
        yield a


def _copy_to_device(a):
    """A copy of the C-contiguous host array ``a`` on the device."""
    with _page_locked(a):
        return cuda.to_device(a)


def _dev(a, dtype=np.float64):
    """``a`` on the device: itself if it is there, else a copy."""
    if _on_device(a):
        return a
    return _copy_to_device(np.ascontiguousarray(a, dtype=dtype))


def _flat(a):
    """The C-contiguous device array ``a`` as one dimension: the same view at each call.

    A numba-cuda view is a new Python object, whose numba type is worked out
    again at its launch: about 20 us a view on an H100's host, several times a
    Boehning step. So the view is kept on the array (it refers to the array's
    memory, not to the array: no cycle), where the array takes attributes.
    """
    flat = getattr(a, "_skmoe_flat", None)
    if flat is None:
        flat = a.reshape(a.size)
        with contextlib.suppress(AttributeError):
            a._skmoe_flat = flat
    return flat


# numba-cuda's copies between host and device arrays, without the checks and
# conversions of ``DeviceNDArray.copy_to_device`` and ``copy_to_host``: 4 to 11
# us of host time against 76 to 113 us (336 doubles from page-locked memory), and
# 9 against 18 us back (an H100's host, benchmarks.md). The small buffers they
# serve need none of them (contiguous float64 of the same size). None where the
# toolchain has no such functions (the simulator).
_HOST_TO_DEVICE, _DEVICE_TO_HOST = (
    (None, None) if _simulator_enabled()
    else (getattr(cuda.cudadrv.driver, "host_to_device", None),
          getattr(cuda.cudadrv.driver, "device_to_host", None)))


def _small_to_host(dev):
    """A small contiguous float64 device array copied to a new host array, synchronously.

    On the default stream, as ``copy_to_host()``: after the main line's kernels.
    """
    if _DEVICE_TO_HOST is None:
        return dev.copy_to_host()
    host = np.empty(dev.shape)
    _DEVICE_TO_HOST(host, dev, host.nbytes)
    return host


def _params(name, *arrays):
    """Small float64 host arrays (parameters) on the device, in one copy.

    A device allocation synchronises and each copy has a fixed cost, so the
    arrays of one call go through one kept page-locked buffer and one kept
    device buffer. The copy is queued on the main line's stream, behind the
    kernels that still read the device buffer and before the one that reads
    it next, so the host need not wait for the GPU; it waits only before it
    refills the page-locked buffer, until the last copy out of it is done.
    """
    sizes = [a.size for a in arrays]
    total = sum(sizes)
    key = ("params", name)
    entry = _SCRATCH.get(key)
    if entry is None or entry[0].shape[0] != total:
        if entry is not None:
            entry[2].synchronize()  # no copy may still read a buffer that is freed
        entry = _SCRATCH[key] = (cuda.pinned_array(total), cuda.device_array(total),
                                 cuda.event(), {})
    host, dev, copied, all_views = entry
    copied.synchronize()
    shapes = tuple(np.shape(a) for a in arrays)
    views = all_views.get(shapes)
    if views is None:
        views, offset = [], 0
        for shape, size in zip(shapes, sizes):
            views.append(dev[offset:offset + size].reshape(shape))
            offset += size
        views = all_views[shapes] = tuple(views)
    offset = 0
    for a, size in zip(arrays, sizes):
        host[offset:offset + size] = np.ravel(a)
        offset += size
    stream = _main_stream()
    if _HOST_TO_DEVICE is None:
        dev.copy_to_device(host, stream=stream)
    else:
        _HOST_TO_DEVICE(dev, host, host.nbytes, stream=stream)
    copied.record(stream)
    return views


def _out(out):
    """A device array to compute ``out`` into, and the NumPy array to fill after."""
    if _on_device(out):
        return out, None
    return cuda.device_array(out.shape, dtype=out.dtype), out


def _finish(dev, host):
    """Copy a result into the caller's NumPy array, if it gave one."""
    if host is None:
        return dev
    if host.flags.c_contiguous:
        dev.copy_to_host(host)
    else:
        host[...] = dev.copy_to_host()
    return host


_EMPTY = {}
_SCRATCH = {}


def _scratch(name, shape, dtype=np.float64):
    """A device buffer kept between calls for one internal use.

    Each use (``name``) is consumed before its function returns, so reusing it
    is safe and saves a device allocation, which synchronises, per launch.
    """
    buf = _SCRATCH.get(name)
    if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
        buf = _SCRATCH[name] = cuda.device_array(shape, dtype=dtype)
    return buf


def _empty(ndim, dtype=np.float64):
    """A cached zero-size device array standing for "not given"."""
    key = (ndim, np.dtype(dtype).str)
    if key not in _EMPTY:
        _EMPTY[key] = cuda.device_array((0,) * ndim, dtype=dtype)
    return _EMPTY[key]


def to_device(a):
    """``a`` on the GPU (C-contiguous; float64 unless it is an integer array).

    Parameters
    ----------
    a : ndarray or device array

    Returns
    -------
    device array
    """
    if _on_device(a):
        return a
    a = np.asarray(a)
    return _copy_to_device(np.ascontiguousarray(a, dtype=np.int64 if a.dtype.kind in "iu"
                                                else np.float64))


def to_host(a, out=None):
    """``a`` as a NumPy array, or copied into ``out``.

    Parameters
    ----------
    a : ndarray or device array
    out : C-contiguous ndarray of a's shape, default=None

    Returns
    -------
    ndarray
    """
    if not _on_device(a):
        if out is None:
            return np.asarray(a)
        out[...] = a
        return out
    with _page_locked(np.empty(a.shape, dtype=a.dtype) if out is None else out) as host:
        return a.copy_to_host(host)


def empty(shape, dtype=np.float64):
    """An uninitialised device array of ``shape``.

    Parameters
    ----------
    shape : tuple of int
    dtype : dtype, default=np.float64

    Returns
    -------
    device array of shape ``shape``
    """
    return cuda.device_array(shape, dtype=dtype)


# --------------------------------------------------------------------------
# Launches


class _Launcher:
    """Launches of compiled kernels, without numba-cuda's per-launch dispatch.

    ``kernel[grid, block](*args)`` costs about 39 us on the host in numba-cuda
    0.30 (an H100's host; 14 us launched here, benchmarks.md): it types every argument, builds a
    launch configuration and a stream wrapper, and checks the grid for a
    warning, each time. EM launches the same kernels with arguments of the
    same types thousands of times, so after the first launch of a signature
    (through the dispatcher, which compiles) this keeps the compiled function
    and packs the arguments as numba-cuda's ``_Kernel._prepare_args`` does, for
    the types skmoe passes: device arrays, integers, booleans and floats.
    Anything else, and any toolchain whose internals differ (numba-cuda-mlir,
    the simulator), goes through the dispatcher.
    """

    def __init__(self, launch, launch_config, core_stream):
        self._launch = launch
        self._launch_config = launch_config
        self._core_stream = core_stream
        self._streams = {}  # wrapped at their first launch: importing touches no driver
        self._configs = {}
        self._compiled = {}

    @classmethod
    def for_toolchain(cls):
        """The launcher of numba-cuda's internals, or None where they are not as expected."""
        if _simulator_enabled() or cuda.__name__ != "numba.cuda":
            return None
        try:
            from numba.cuda import dispatcher
            from numba.cuda.cudadrv import driver

            return cls(dispatcher.launch, dispatcher.LaunchConfig, driver._to_core_stream)
        except (ImportError, AttributeError):
            return None

    def __call__(self, kernel, griddim, blockdim, sharedmem, stream, args):
        key = (kernel, tuple(getattr(a, "_numba_type_", type(a)) for a in args))
        entry = self._compiled.get(key)
        if not entry:
            kernel[griddim, blockdim, stream, sharedmem](*args)
            if entry is None:
                self._compiled[key] = self._compiled_entry(kernel, args)
            return
        function, packers = entry
        config = self._configs.get((griddim, blockdim, sharedmem))
        if config is None:
            config = self._configs[(griddim, blockdim, sharedmem)] = self._launch_config(
                grid=griddim, block=blockdim, shmem_size=sharedmem)
        kernel_args = []
        for pack, value in zip(packers, args):
            pack(value, kernel_args)
        core_stream = self._streams.get(stream)
        if core_stream is None:
            core_stream = self._streams[stream] = self._core_stream(stream)
        self._launch(core_stream, config, function, *kernel_args)

    @staticmethod
    def _compiled_entry(kernel, args):
        """``(function, packers)`` of the overload ``args`` launched, or False (dispatch)."""
        try:
            if any(isinstance(a, np.ndarray) for a in args):
                return False  # copied to the device for the launch: the dispatcher's job
            compiled = kernel.overloads[tuple(kernel.typeof_pyval(a) for a in args)]
            if compiled.debug or compiled.cooperative or compiled.extensions:
                return False
            packers = [_arg_packer(ty) for ty in compiled.argument_types]
            function = compiled._codelibrary.get_cufunc().kernel
        except (AttributeError, KeyError, TypeError):
            return False
        return False if None in packers else (function, packers)


def _pack_array(a, out):
    # meminfo and parent (null on the device), then size, item size, data, shape, strides.
    out.extend((0, 0, a.size, a.dtype.itemsize, a.device_ctypes_pointer.value or 0))
    out.extend(a.shape)
    out.extend(a.strides)


def _arg_packer(ty):
    """How numba-cuda passes an argument of numba type ``ty``, or None if not one of ours."""
    name = str(ty)
    if hasattr(ty, "ndim") and hasattr(ty, "layout"):
        return _pack_array
    if name == "bool":
        return lambda value, out: out.append(bool(value))
    if name == "float64":
        return lambda value, out: out.append(ctypes.c_double(value))
    if name in ("int64", "uint64", "int32", "uint32"):
        c_type = getattr(ctypes, f"c_{name}")
        return lambda value, out: out.append(c_type(value))
    return None


_LAUNCHER = _Launcher.for_toolchain()


def _launch(kernel, griddim, blockdim, *args, shared=0, stream=None):
    """``kernel[griddim, blockdim, stream, shared](*args)``, through the launcher if any.

    ``stream`` None is EM's main line (:func:`_main_stream`).
    """
    if stream is None:
        stream = _main_stream()
    if _LAUNCHER is None or not _config.CUDA_DIRECT_LAUNCH:
        kernel[griddim, blockdim, stream, shared](*args)
    else:
        _LAUNCHER(kernel, griddim, blockdim, shared, stream, args)


# The streams of :func:`_main_stream` and :func:`_side_stream`, made at their first use.
_STREAMS = {}


def _new_stream(non_blocking, high_priority):
    """A new stream of numba-cuda, of the lowest or the highest priority; None where the
    toolchain's internals are not as expected (the simulator, other toolchains)."""
    if _simulator_enabled() or cuda.__name__ != "numba.cuda":
        return None
    try:
        from numba.cuda.cudadrv import driver

        context = cuda.current_context()  # the driver's calls below need one
        flags = driver.binding.CUstream_flags
        flag = flags.CU_STREAM_NON_BLOCKING if non_blocking else flags.CU_STREAM_DEFAULT
        least, greatest = driver.driver.cuCtxGetStreamPriorityRange()
        handle = driver.driver.cuStreamCreateWithPriority(
            flag.value, greatest if high_priority else least)
        return driver.Stream(
            handle, finalizer=driver._stream_finalizer(context.deallocations, handle))
    except (ImportError, AttributeError, TypeError, ValueError, _DRIVER_ERROR):
        return None


def _main_stream():
    """The stream of EM's main line: every kernel but the side's (``start_wls_stats``).

    Of the highest priority, so that the side's kernels take only what the
    main line leaves of the GPU (the gaps while the host solves, and the last
    wave of each kernel), instead of holding up the gate's steps. It
    synchronises with the default stream (numba-cuda's copies and
    allocations) as the default stream itself would. Where no such stream can
    be made, the default stream (0).
    """
    if "main" not in _STREAMS:
        _STREAMS["main"] = _new_stream(False, True) or 0
    return _STREAMS["main"]


def _side_stream():
    """The stream of the work that runs beside the main line's (``start_wls_stats``).

    Of the lowest priority, and non-blocking: it neither waits for the default
    stream nor holds it up. Returns the stream, and an event that the caller
    records on the main line and makes the side stream wait for, so that the
    side's kernels read what the main line's earlier kernels wrote. Where no
    such stream can be made, an ordinary stream: the same results, in turn.
    """
    if "side" not in _STREAMS:
        # The simulator's events take no arguments (and time nothing).
        event = cuda.event() if _simulator_enabled() else cuda.event(timing=False)
        _STREAMS["side"] = (_new_stream(True, False) or cuda.stream(), event)
    return _STREAMS["side"]


def _threads():
    return int(_config.THREADS_PER_BLOCK)


def _blocks(count):
    return max(1, -(-count // _threads()))


def _n_chunks(n):
    return max(1, -(-n // _config.CUDA_CHUNK_SIZE))


@cuda.jit
def _exp_kernel(a, out):
    e = cuda.grid(1)
    if e < a.shape[0]:
        out[e] = math.exp(a[e])


def exp(a, out):
    """Elementwise ``exp(a)`` into ``out`` (which may be ``a``).

    Parameters
    ----------
    a, out : device arrays (or ndarrays) of the same shape
        ``out`` is modified in place.

    Returns
    -------
    out
    """
    if not _on_device(a):
        return np.exp(a, out=out)
    flat_out = _flat(out)
    if a.size:
        _launch(_exp_kernel, _blocks(a.size), _threads(), _flat(a), flat_out)
    return out


_uniform = cuda.jit(device=True)(_rowops.uniform)


@cuda.jit
def _random_rows_kernel(seed, out):
    i = cuda.grid(1)
    n, K = out.shape
    if i < n:
        useed = uint64(seed)
        total = 0.0
        for k in range(K):
            out[i, k] = _uniform(useed, uint64(i * K + k))
            total += out[i, k]
        for k in range(K):
            out[i, k] /= total


def random_responsibilities(n_samples, n_columns, seed):
    """Uniform random rows normalised to sum to 1, drawn on the GPU.

    The same bits as the CPU backend's (counter-based draws); nothing crosses
    from the host.

    Parameters
    ----------
    n_samples, n_columns : int
    seed : int
        Below 2**32.

    Returns
    -------
    resp : device array of shape (n_samples, n_columns)
    """
    resp = cuda.device_array((n_samples, n_columns))
    if n_samples:
        _launch(_random_rows_kernel, _blocks(n_samples), _threads(), seed, resp)
    return resp


@cuda.jit
def _hard_rows_kernel(labels, softening, out):
    i = cuda.grid(1)
    n, K = out.shape
    if i < n:
        for k in range(K):
            out[i, k] = softening / K
        out[i, labels[i]] += 1.0 - softening


def hard_responsibilities(labels, n_columns, softening):
    """A hard partition softened, built on the GPU from the labels alone.

    Parameters
    ----------
    labels : device array or ndarray of shape (n_samples,), dtype int64
        In ``[0, n_columns)``.
    n_columns : int
    softening : float

    Returns
    -------
    resp : device array of shape (n_samples, n_columns)
        ``1 - softening + softening / K`` on each row's label, ``softening / K``
        elsewhere.
    """
    labels = _dev(labels, np.int64)
    n = labels.shape[0]
    resp = cuda.device_array((n, n_columns))
    if n:
        _launch(_hard_rows_kernel, _blocks(n), _threads(), labels, float(softening), resp)
    return resp


# --------------------------------------------------------------------------
# Column scaling and designs: a fit's preparation, where the data are


@cuda.jit
def _all_finite_kernel(a, flag):
    # Every thread that finds a non-finite entry writes the same 1: no race on the result.
    for e in range(cuda.grid(1), a.shape[0], cuda.gridsize(1)):
        if not math.isfinite(a[e]):
            flag[0] = 1


# Blocks of the finiteness check: a grid-stride loop reads the rest.
_FINITE_BLOCKS = 4096


def all_finite(X):
    """Whether every entry of X is finite: one pass on the device, one flag back.

    Parameters
    ----------
    X : device array or ndarray of shape (n_samples, n_features)

    Returns
    -------
    bool
    """
    X = _dev(X)
    flag = cuda.to_device(np.zeros(1, dtype=np.int64))
    if X.size:
        _launch(_all_finite_kernel, min(_FINITE_BLOCKS, _blocks(X.size)), _threads(),
            X.reshape(X.size), flag)
    return not flag.copy_to_host()[0]


@cuda.jit
def _chunk_moments_kernel(X, w, chunk_size, weight, high, low, unit_mean, unit_m2, first):
    """One chunk's moments of one column, formed as ``_design.group_moments`` forms a group's.

    One thread per (chunk, column), the column fastest: a warp reads
    consecutive entries of a row. ``first`` receives the chunk's first row of
    positive weight.
    """
    n, p = X.shape
    q = cuda.grid(1)
    if q >= weight.shape[0] * p:
        return
    c = q // p
    j = q - c * p
    start = c * chunk_size
    stop = min(n, start + chunk_size)
    total = 0.0
    hi = -math.inf
    lo = math.inf
    first_value = 0.0
    for i in range(start, stop):
        if w[i] > 0:
            value = X[i, j]
            if total == 0.0:
                first_value = value
            total += w[i]
            hi = max(hi, value)
            lo = min(lo, value)
    mean = 0.0
    m2 = 0.0
    if total > 0.0:
        max_abs = max(hi, -lo)
        if max_abs == 0.0:
            max_abs = 1.0
        for i in range(start, stop):
            if w[i] > 0:
                mean += w[i] * (X[i, j] / max_abs)
        mean /= total
        for i in range(start, stop):
            # A row of zero weight may lie beyond max_abs: its square could overflow.
            if w[i] > 0:
                deviation = X[i, j] / max_abs - mean
                m2 += w[i] * deviation * deviation
    if j == 0:
        weight[c] = total
    high[c, j] = hi
    low[c, j] = lo
    unit_mean[c, j] = mean
    unit_m2[c, j] = m2
    first[c, j] = first_value


def weighted_scaling(X, w):
    """Weighted column means and standard deviations of the data on the device.

    The moments of each chunk of ``_config.CUDA_CHUNK_SIZE`` rows are formed
    on the GPU as the CPU backend forms a group's, and combined on the host by
    the same code (``_design.scaling_from_moments``); only O(n p / chunk)
    numbers come back. The two backends agree to rounding.

    Parameters
    ----------
    X : device array or ndarray of shape (n_samples, n_features)
        Finite values.
    w : device array or ndarray of shape (n_samples,)
        Non-negative weights, at least one positive, with a finite sum.

    Returns
    -------
    mean, scale : ndarray of shape (n_features,)
    """
    X, w = _dev(X), _dev(w)
    n, p = X.shape
    chunks = _n_chunks(n)
    moments = [cuda.device_array(chunks)] + [cuda.device_array((chunks, p)) for _ in range(5)]
    _launch(_chunk_moments_kernel, _blocks(chunks * p), _threads(), X, w,
            _config.CUDA_CHUNK_SIZE, *moments)
    weight, high, low, unit_mean, unit_m2, first = (a.copy_to_host() for a in moments)
    return _design.scaling_from_moments(weight, high, low, unit_mean, unit_m2,
                                        first[np.flatnonzero(weight > 0)[0]])


@cuda.jit
def _design_kernel(X, idx, mean, scale, bound, out):
    """The entries of ``standardised_design``, one thread each, a row's consecutive."""
    q = cuda.grid(1)
    n, width = out.shape
    if q >= n * width:
        return
    i = q // width
    c = q - i * width
    if c == 0:
        out[i, 0] = 1.0
        return
    j = c - 1
    value = X[i, idx[j]]
    result = (value - mean[j]) / scale[j]
    if not math.isfinite(result):
        # The difference overflowed (values near 1e308): halve first.
        result = (0.5 * value - 0.5 * mean[j]) / (0.5 * scale[j])
    out[i, c] = min(max(result, -bound), bound)


def standardised_design(X, idx, mean, scale, bound):
    """An intercept column, then ``(X[:, idx] - mean) / scale`` saturated at ``+-bound``.

    Built on the device from the X it holds: the same operations as the CPU
    backend's, so for the same ``mean`` and ``scale`` the same bits.

    Parameters
    ----------
    X : device array or ndarray of shape (n_samples, n_features)
    idx : ndarray of shape (n_columns,), dtype intp
    mean, scale : ndarray of shape (n_columns,)
        For the columns ``idx``; ``scale`` is positive.
    bound : float

    Returns
    -------
    design : device array of shape (n_samples, n_columns + 1)
    """
    X = _dev(X)
    out = cuda.device_array((X.shape[0], np.size(idx) + 1))
    if out.size:
        _launch(_design_kernel, _blocks(out.size), _threads(),
            X, _dev(idx, np.int64), _dev(mean), _dev(scale), float(bound), out)
    return out


def as_column(w):
    """``w`` of shape (n_samples,) as one weight column, shape (n_samples, 1).

    Parameters
    ----------
    w : device array or ndarray of shape (n_samples,)

    Returns
    -------
    array of shape (n_samples, 1)
    """
    return w.reshape(w.shape[0], 1) if _on_device(w) else w[:, None]


# --------------------------------------------------------------------------
# Ordered reductions


# Lanes of the column reductions: lane l of a chunk sums rows l, l + 32, ... in
# order, then lane 0 adds the 32 lane sums in lane order. A constant, not the
# block size, so the order is fixed; 32 coalesced readers hide memory latency.
_LANES = 32
# Loads issued before the additions that consume them, in the serial loops.
_BATCH = 8


@cuda.jit
def _column_chunk_sums_kernel(A, w, B, chunk_size, partial):
    """``partial[c, j] = sum of w_i A[i, j] B[i, j]`` over chunk c (``w`` or ``B`` empty means 1).

    One block of ``_LANES`` threads per (chunk, column).
    """
    c = cuda.blockIdx.x
    j = cuda.blockIdx.y
    lane = cuda.threadIdx.x
    n = A.shape[0]
    has_w = w.shape[0] > 0
    has_b = B.shape[0] > 0
    lanes = cuda.shared.array(_LANES, dtype=float64)
    start = c * chunk_size
    stop = min(n, start + chunk_size)
    acc = 0.0
    for i in range(start + lane, stop, _LANES):
        a = A[i, j] * B[i, j] if has_b else A[i, j]
        acc += w[i] * a if has_w else a
    lanes[lane] = acc
    cuda.syncthreads()
    if lane == 0:
        total = 0.0
        for q in range(_LANES):
            total += lanes[q]
        partial[c, j] = total


# The final sums over chunks: outputs per block (consecutive, so that a warp's
# loads are coalesced) and lanes per output. Lane l of an output adds chunks
# l, l + _SUM_LANES, ... in order, then the lane sums are added in lane order:
# a fixed order, whatever the block size of the kernel that wrote the chunks.
# A gate pass at n = 1e6 leaves 3908 rows of partials (977 chunks x 4 row
# groups); 128 lanes sum them in 31 steps, not 122 (an H100's iteration 2.79
# ms against 2.88 with 32 x 32, run 16).
_SUM_COLS = 8
_SUM_LANES = 128
_SUM_KERNELS = {}


def _sum_chunks_kernel(cols, lanes):
    """The chunk-sum kernel for blocks of ``cols`` outputs x ``lanes`` lanes (compiled once)."""
    key = (cols, lanes)
    if key not in _SUM_KERNELS:
        _SUM_KERNELS[key] = _build_sum_chunks_kernel(cols, lanes)
    return _SUM_KERNELS[key]


def _build_sum_chunks_kernel(cols, lanes):
    add_columns = _chunk_sums_function(cols, lanes)

    @cuda.jit
    def kernel(partial, out):
        """``out[j] = sum_c partial[c, j]`` for the block's ``cols`` outputs j."""
        lane_sums = cuda.shared.array((lanes, cols), dtype=float64)
        add_columns(partial, out, lane_sums)

    return kernel


def _chunk_sums_function(cols, lanes):
    """The device function of one block's ordered chunk sums (``cols`` outputs x ``lanes`` lanes).

    ``add_columns(partial, out, lane_sums)``: ``out[j] = sum_c partial[c, j]``
    for the block's outputs j, strided lanes in order, then the lanes in
    order. The loads of a batch are issued before its additions (which keep
    their order), so a lane waits on memory once per batch, not once per
    chunk. The threads that write an output make it visible to the whole GPU
    (``threadfence``) before they return.
    """

    @cuda.jit(device=True)
    def add_columns(partial, out, lane_sums):
        col = cuda.threadIdx.x
        lane = cuda.threadIdx.y
        j = cuda.blockIdx.x * cols + col
        n_chunks, m = partial.shape
        acc = 0.0
        if j < m:
            c = lane
            while c + (_BATCH - 1) * lanes < n_chunks:
                v0 = partial[c, j]
                v1 = partial[c + lanes, j]
                v2 = partial[c + 2 * lanes, j]
                v3 = partial[c + 3 * lanes, j]
                v4 = partial[c + 4 * lanes, j]
                v5 = partial[c + 5 * lanes, j]
                v6 = partial[c + 6 * lanes, j]
                v7 = partial[c + 7 * lanes, j]
                acc += v0
                acc += v1
                acc += v2
                acc += v3
                acc += v4
                acc += v5
                acc += v6
                acc += v7
                c += _BATCH * lanes
            while c < n_chunks:
                acc += partial[c, j]
                c += lanes
        lane_sums[lane, col] = acc
        cuda.syncthreads()
        if lane == 0 and j < m:
            total = 0.0
            for q in range(lanes):
                total += lane_sums[q, col]
            out[j] = total
            cuda.threadfence()

    return add_columns


def _launch_sum_chunks(partial, out, stream=None):
    """Launch the ordered sum of device partials (n_chunks, m) into the device ``out`` (m,)."""
    m = partial.shape[1]
    cols, lanes = _SUM_COLS, _SUM_LANES
    _launch(_sum_chunks_kernel(cols, lanes), -(-m // cols), (cols, lanes), partial, out,
            stream=stream)


def _start_sum_chunks(partial, stream=None, name="sum_chunks"):
    """Launch the ordered sum of device partials (n_chunks, m); returns the function
    that waits for it and gives the sums on the host.

    Work off the main line (``stream`` not None) has buffers of its own (``name``).
    """
    out = _scratch(name, (partial.shape[1],))
    _launch_sum_chunks(partial, out, stream)
    if stream is None:
        return functools.partial(_small_to_host, out)

    def finish():
        host = out.copy_to_host(stream=stream)
        stream.synchronize()
        return host

    return finish


def _sum_chunks(partial):
    """Device partials of shape (n_chunks, m) summed in a fixed order, on the host."""
    return _start_sum_chunks(partial)()


def _column_sums(A, w=None, B=None):
    """Ordered column sums of a device array (n, m) (times ``w`` and ``B``), on the host."""
    return _start_column_sums(A, w, B)()


def _start_column_sums(A, w=None, B=None, name="sum_chunks"):
    """Launch :func:`_column_sums`; returns the function that waits and gives them.

    ``name``: the buffer of the sums (one the caller keeps until it reads them).
    """
    n, m = A.shape
    n_chunks = _n_chunks(n)
    partial = _scratch("column_sums", (n_chunks, m))
    _launch(_column_chunk_sums_kernel, (n_chunks, m), _LANES,
        A, _empty(1) if w is None else w, _empty(2) if B is None else B,
        _config.CUDA_CHUNK_SIZE, partial)
    return _start_sum_chunks(partial, name=name)


def weighted_sums(values, w, factor=None):
    """``sum_i w_i values[i, l]`` (times ``factor[i, l]`` if given), summed in chunk order.

    Parameters
    ----------
    values : array of shape (n_samples, n_columns)
    w : array of shape (n_samples,)
    factor : array of shape (n_samples, n_columns) or None

    Returns
    -------
    ndarray of shape (n_columns,)
    """
    if not _on_device(values):
        return _cpu.weighted_sums(values, w, factor)
    return _column_sums(values, _dev(w), None if factor is None else _dev(factor))


def total(w):
    """``sum_i w_i`` (ordered, as every reduction here) as a float.

    Parameters
    ----------
    w : device array or ndarray of shape (n_samples,)

    Returns
    -------
    float
    """
    if not _on_device(w):
        return _cpu.total(w)
    return float(_column_sums(as_column(w))[0])


@cuda.jit(device=True)
def _stage_rows(X_flat, tile, rows, p, sh, at, stride, t, threads):
    """Copy rows ``tile:tile + rows`` of X (p columns) to ``sh[at:]``, ``stride`` doubles a row.

    The rows are contiguous in X: threads take consecutive doubles (a coalesced
    copy). Where the stride is p, the copy is one straight run with unsigned
    indices (Numba tests signed ones for wraparound). Else the first
    ``threads // p`` rows' doubles each have a thread, which steps that many
    rows at a time (no division a double); wider rows find theirs by division.
    """
    size = uint64(rows * p)
    src = uint64(tile * p)
    dst = uint64(at)
    q = uint64(t)
    step = uint64(threads)
    if stride == p:
        while q < size:
            sh[dst + q] = X_flat[src + q]
            q += step
    elif threads >= p:
        per_pass = threads // p
        if t < per_pass * p:
            r = t // p
            q = dst + uint64(r * stride + t - r * p)
            end = src + size
            src += uint64(t)
            src_step = uint64(per_pass * p)
            dst_step = uint64(per_pass * stride)
            while src < end:
                sh[q] = X_flat[src]
                src += src_step
                q += dst_step
    else:
        up = uint64(p)
        pad = uint64(stride - p)
        while q < size:
            sh[dst + q + (q // up) * pad] = X_flat[src + q]
            q += step


# --------------------------------------------------------------------------
# Row kernels: one thread per row (or per element), no reductions

_logsumexp_span = cuda.jit(device=True)(_rowops.logsumexp_span)


@cuda.jit
def _affine_log_softmax_kernel(X_flat, p, coef, n_children, tile_rows, out_flat):
    """Log-softmax of ``X coef^T`` per node, for ``tile_rows`` rows per block.

    The block copies its rows of X to shared memory (they are contiguous), one
    thread per (row, edge) computes a logit, one per (row, node) its
    log-sum-exp, and the tile goes back to ``out`` in one coalesced sweep.
    """
    m = coef.shape[0]
    n = out_flat.shape[0] // m
    n_nodes = m // n_children
    gs = _group_stride(n_children)
    width = tile_rows * n_nodes * gs
    T = cuda.blockDim.x
    t = cuda.threadIdx.x
    row0 = cuda.blockIdx.x * tile_rows
    rows = min(tile_rows, n - row0)
    shared = cuda.shared.array(0, dtype=float64)
    sX = shared[: tile_rows * p]
    sZ = shared[tile_rows * p: tile_rows * p + width]
    sE = shared[tile_rows * p + width: tile_rows * p + 2 * width]
    sL = shared[tile_rows * p + 2 * width: tile_rows * (p + n_nodes) + 2 * width]
    for e in range(t, rows * p, T):
        sX[e] = X_flat[row0 * p + e]
    cuda.syncthreads()
    for q in range(t, rows * m, T):
        g = q // n_children
        r = g // n_nodes
        e = q - r * m
        sZ[g * gs + q - g * n_children] = _dot(coef, e, sX, r * p, p)
    cuda.syncthreads()
    _groups_logsumexp(sZ, sE, sL, rows * n_nodes, n_children, t, T)
    for q in range(t, rows * m, T):
        g = q // n_children
        out_flat[row0 * m + q] = sZ[g * gs + q - g * n_children] - sL[g]


@cuda.jit(device=True)
def _group_stride(size):
    """Doubles between groups of ``size`` in shared memory: odd, so that threads
    reading one group each hit distinct banks (an even stride of 16 puts them all
    on one bank)."""
    return size | 1


@cuda.jit(device=True)
def _groups_logsumexp(z, e, lse, n_groups, size, t, T):
    """``lse[g] = log sum_j exp(z[g*gs + j])`` for groups at a stride gs, block-wide.

    ``gs = _group_stride(size)``. The same operations as
    ``_rowops.logsumexp_span`` (the group's maximum, then the exponentials
    summed in order), but one thread per element computes the exponentials.
    Ends with a barrier; ``e`` is scratch of the size of ``z``.
    """
    gs = _group_stride(size)
    for g in range(t, n_groups, T):
        base = g * gs
        top = z[base]
        for j in range(1, size):
            if z[base + j] > top:
                top = z[base + j]
        lse[g] = top
    cuda.syncthreads()
    for q in range(t, n_groups * size, T):
        g = q // size
        at = g * gs + q - g * size
        e[at] = math.exp(z[at] - lse[g])
    cuda.syncthreads()
    for g in range(t, n_groups, T):
        base = g * gs
        total = 0.0
        for j in range(size):
            total += e[base + j]
        lse[g] = lse[g] + math.log(total)
    cuda.syncthreads()


@cuda.jit(device=True)
def _dot(coef, e, x, start, p):
    """``coef[e] . x[start:start + p]`` with four independent partial sums.

    Four chains of fused multiply-adds in flight instead of one: the loop is
    latency-bound otherwise.
    """
    a0 = 0.0
    a1 = 0.0
    a2 = 0.0
    a3 = 0.0
    a = 0
    while a + 4 <= p:
        a0 += coef[e, a] * x[start + a]
        a1 += coef[e, a + 1] * x[start + a + 1]
        a2 += coef[e, a + 2] * x[start + a + 2]
        a3 += coef[e, a + 3] * x[start + a + 3]
        a += 4
    while a < p:
        a0 += coef[e, a] * x[start + a]
        a += 1
    return (a0 + a1) + (a2 + a3)


# Elements (row, column) per thread of a row-tile kernel. One made blocks of 8
# rows at 16 columns: a block's barriers and staging then outweigh its work.
_ROW_ITEMS = 8


def _tile_rows(T, width, per_row):
    """Rows per block of a row-tile kernel: ``_ROW_ITEMS`` elements a thread, shared-bounded."""
    return max(1, min(max(1, _ROW_ITEMS * T // max(width, 1)),
                      _SHARED_DOUBLES // max(per_row, 1)))


def affine_log_softmax(X, coef, out):
    """Log-softmax of ``X @ coef[v].T`` for every node v of one gating level.

    Parameters
    ----------
    X : array of shape (n_samples, n_coefs)
    coef : ndarray of shape (n_nodes, n_children, n_coefs)
    out : array of shape (n_samples, n_nodes * n_children)
        Log gate probabilities, node-major (modified in place).

    Returns
    -------
    out
    """
    n_nodes, n_children, p = coef.shape
    m = n_nodes * n_children
    d_out, host = _out(out)
    X = _dev(X)
    n = X.shape[0]
    if n:
        T = _threads()
        per_row = p + 2 * n_nodes * (n_children | 1) + n_nodes
        rows = _tile_rows(T, m, per_row)
        _launch(_affine_log_softmax_kernel, -(-n // rows), T,
            _flat(X), p, *_params("gate", coef.reshape(m, p)), n_children, rows,
            _flat(d_out), shared=rows * per_row * 8)
    return _finish(d_out, host)


@cuda.jit
def _linear_experts_kernel(X_flat, p, y, coef, log_norm, inv_var, tile_rows, out_flat):
    """One thread per (row, expert) of a tile whose rows of X sit in shared memory.

    With ``y``, the experts' Gaussian log-densities; with ``y`` empty, their means.
    """
    K = coef.shape[0]
    n = out_flat.shape[0] // K
    density = y.shape[0] > 0
    T = cuda.blockDim.x
    t = cuda.threadIdx.x
    row0 = cuda.blockIdx.x * tile_rows
    rows = min(tile_rows, n - row0)
    sX = cuda.shared.array(0, dtype=float64)
    for e in range(t, rows * p, T):
        sX[e] = X_flat[row0 * p + e]
    cuda.syncthreads()
    for q in range(t, rows * K, T):
        r = q // K
        k = q - r * K
        mean = _dot(coef, k, sX, r * p, p)
        if density:
            resid = y[row0 + r] - mean
            out_flat[row0 * K + q] = log_norm[k] - 0.5 * resid * resid * inv_var[k]
        else:
            out_flat[row0 * K + q] = mean


def gaussian_log_prob(X, y, coef, var, out):
    """Gaussian linear experts' log-densities ``log N(y_i; coef_l . x_i, var_l)``.

    Parameters
    ----------
    X : array of shape (n_samples, n_coefs)
    y : array of shape (n_samples,)
    coef : ndarray of shape (n_leaves, n_coefs)
    var : ndarray of shape (n_leaves,)
    out : array of shape (n_samples, n_leaves)
        Modified in place.

    Returns
    -------
    out
    """
    var = np.asarray(var, dtype=np.float64)
    log_norm = -0.5 * np.log(2.0 * np.pi * var)
    return _linear_experts(X, _dev(y), _params("expert", coef, log_norm, 1.0 / var), out)


def linear_predictor(X, coef, out):
    """:func:`skmoe._kernels.cpu.linear_predictor` on the device; returns ``out``."""
    return _linear_experts(X, _empty(1), (*_params("means", coef), _empty(1), _empty(1)), out)


def _linear_experts(X, y, params, out):
    """``_linear_experts_kernel`` over X's rows, with ``params`` = (coef, log_norm, inv_var)."""
    d_out, host = _out(out)
    X = _dev(X)
    n, p = X.shape
    K = params[0].shape[0]
    if n:
        T = _threads()
        rows = _tile_rows(T, K, p)
        _launch(_linear_experts_kernel, -(-n // rows), T, _flat(X), p, y, *params, rows,
                _flat(d_out), shared=rows * p * 8)
    return _finish(d_out, host)


# The E-step of a flat mixture of Gaussian experts in one pass over the rows


_E_STEP_KERNELS = {}


def _e_step_kernel(n_experts, p_gate, p_expert, two_designs, with_gradient):
    """The fused E-step kernel of one shape, compiled at its first use."""
    key = (n_experts, p_gate, p_expert, two_designs, with_gradient, _threads(),
           _SHARED_DOUBLES, _SHARED_COEFS, _E_STEP_MAX_REGISTERS)
    if key not in _E_STEP_KERNELS:
        _E_STEP_KERNELS[key] = _build_e_step_kernel(*key)
    return _E_STEP_KERNELS[key]


# Registers per thread of the fused E-step kernel at most (None: the compiler's
# choice). On an H100 (n = 1e6, K = 16, p = 21) the compiler took 142 and the
# kernel ran in 0.89 ms (wall); capped at 128 it took 0.81 ms, at 96 0.87, at 64
# 1.07 (benchmarks.md).
_E_STEP_MAX_REGISTERS = 128


def _build_e_step_kernel(K, pg, pe, two_designs, with_gradient, threads, shared_doubles,
                         shared_coefs, max_registers):
    """Compile the fused E-step of K Gaussian experts under one softmax gate.

    One block per chunk, in tiles of rows staged in shared memory. One thread
    per row keeps the row's gate logits and expert terms in registers (K and
    the widths are compile-time constants, so the loops over experts unroll):
    the gate's log-softmax (or the given log-probabilities), the experts'
    log-densities, their log-sum-exp and the responsibilities. The tile's
    results go back through shared memory in coalesced sweeps. The rows'
    weighted log-normalisers are summed in 32 fixed lanes (lane l: the chunk's
    rows l, l + 32, ... in order), then over the lanes in order, so the chunk's
    sum depends on the chunk size only. No (n, K) array is touched but the
    results and the gate's log-probabilities (read when given, written when
    computed). Indices are unsigned: Numba tests signed ones for wraparound,
    which once took two thirds of the kernel's instructions.

    ``with_gradient``: the gate's log-probabilities are not written; instead
    the rows' residuals ``w_i (h_ik - g_ik)`` go to shared memory beside the
    gate's design, and the gate pass's units (:func:`_gradient_units`) add the
    gate's gradient ``sum_i w_i (h_ik - g_ik) x_i`` over the tile, as the
    first gate step of the M-step would in a pass of its own. Its partials are
    columns 1.. of the chunk's ``_GRAD_GROUPS`` rows (the log-likelihood is
    column 0 of the first).
    """
    gx = pg | 1  # odd strides: one row per thread without bank conflicts
    ex = (pe | 1) if two_designs else 0
    ks = K | 1
    n_grad_units, _, r_stride, add_tile, write_units = _gradient_units(pg, K)
    if with_gradient:
        n_units, rs = n_grad_units, r_stride
        # The designs stay for the gradient's sums: the results go beside them.
        row_doubles = gx + ex + rs
    else:
        n_units, rs = 0, ks
        row_doubles = max(gx + ex, 2 * ks)
    n_params = K * (pg + pe + 2)
    coef_shared = n_params <= shared_coefs
    coef_size = n_params if coef_shared else 1
    rows_per_tile = max(1, min(threads, (shared_doubles - coef_size - _LANES)
                               // (row_doubles + 1)))
    tile_size = rows_per_tile * (gx + ex if with_gradient else row_doubles)
    res_size = rows_per_tile * rs if with_gradient else 1
    units_per_thread = -(-n_units // threads)
    grad_size = max(1, 12 * units_per_thread)
    G = _GRAD_GROUPS
    e_at = rows_per_tile * gx  # the expert design's rows, after the gate's
    g_at = rows_per_tile * ks  # the log gate tile, after the results'
    b_at = K * pg  # expert coefficients, then log-normalisers, then 1 / variances
    n_at = b_at + K * pe
    v_at = n_at + K
    # The simulator takes no register limit (it has no registers).
    options = {} if _simulator_enabled() or max_registers is None else {
        "max_registers": max_registers}

    # Unsigned constants of the hot loops (an unsigned index skips Numba's
    # wraparound test; a signed operand would make the sum a float).
    u_gx = uint64(gx)
    u_ex = uint64(ex)
    u_k = uint64(K)
    u_rs = uint64(rs)
    u_pad = uint64(rs - K)
    u_g_at = uint64(g_at)
    u_threads = uint64(threads)
    u_lanes = uint64(_LANES)
    u_groups = uint64(G)

    @cuda.jit(**options)
    def kernel(Xg_flat, Xe_flat, y, w, params, gate_known, exponentiate, chunk_size,
               log_gate, out, partial):
        sh = cuda.shared.array(tile_size, dtype=float64)
        sh_res = cuda.shared.array(res_size, dtype=float64)
        sh_ll = cuda.shared.array(rows_per_tile, dtype=float64)
        sh_lanes = cuda.shared.array(_LANES, dtype=float64)
        sh_c = cuda.shared.array(coef_size, dtype=float64)
        z = cuda.local.array(K, dtype=float64)
        u = cuda.local.array(K, dtype=float64)
        grad = cuda.local.array(grad_size, dtype=float64)
        # The tile's results (and with the gradient, first its residuals).
        res = sh_res if with_gradient else sh
        t = cuda.threadIdx.x
        c = cuda.blockIdx.x
        n = w.shape[0]
        if coef_shared:
            for q in range(t, n_params, threads):
                sh_c[q] = params[q]
        for lane in range(t, _LANES, threads):
            sh_lanes[lane] = 0.0
        for q in range(grad_size):
            grad[q] = 0.0
        ll_sum = 0.0
        start = c * chunk_size
        stop = min(n, start + chunk_size)
        for tile in range(start, stop, rows_per_tile):
            rows = min(rows_per_tile, stop - tile)
            cuda.syncthreads()
            _stage_rows(Xg_flat, tile, rows, pg, sh, 0, gx, t, threads)
            if two_designs:
                _stage_rows(Xe_flat, tile, rows, pe, sh, e_at, ex, t, threads)
            cuda.syncthreads()
            i = uint64(tile + t)
            at_row = i * u_k
            rr = uint64(t) * u_rs
            L = 0.0
            if t < rows:
                xr = uint64(t) * u_gx
                wi = w[i]
                if gate_known:
                    for k in range(K):
                        z[k] = log_gate[at_row + uint64(k)]
                        if with_gradient:
                            res[rr + uint64(k)] = -wi * math.exp(z[k])
                else:
                    for k in range(K):
                        z[k] = 0.0
                    for a in range(pg):
                        ua = uint64(a)
                        x = sh[xr + ua]
                        for k in range(K):
                            if coef_shared:
                                z[k] += x * sh_c[uint64(k * pg) + ua]
                            else:
                                z[k] += x * params[uint64(k * pg) + ua]
                    top = z[0]
                    for k in range(1, K):
                        top = max(top, z[k])
                    total = 0.0
                    for k in range(K):
                        share = math.exp(z[k] - top)
                        total += share
                        if with_gradient:
                            res[rr + uint64(k)] = share
                    lse = top + math.log(total)
                    for k in range(K):
                        z[k] = z[k] - lse
                        if with_gradient:  # minus the row's weighted gate probabilities
                            res[rr + uint64(k)] *= -wi / total
                er = uint64(e_at) + uint64(t) * u_ex if two_designs else xr
                for k in range(K):
                    u[k] = 0.0
                for a in range(pe):
                    ua = uint64(a)
                    x = sh[er + ua]
                    for k in range(K):
                        if coef_shared:
                            u[k] += x * sh_c[uint64(b_at + k * pe) + ua]
                        else:
                            u[k] += x * params[uint64(b_at + k * pe) + ua]
                yi = y[i]
                for k in range(K):
                    resid = yi - u[k]
                    if coef_shared:
                        log_lik = sh_c[n_at + k] - 0.5 * resid * resid * sh_c[v_at + k]
                    else:
                        log_lik = params[n_at + k] - 0.5 * resid * resid * params[v_at + k]
                    u[k] = z[k] + log_lik
                top = u[0]
                for k in range(1, K):
                    top = max(top, u[k])
                total = 0.0
                for k in range(K):
                    share = math.exp(u[k] - top)
                    total += share
                    if exponentiate:
                        u[k] = share
                L = top + math.log(total)
                sh_ll[t] = wi * L
                # The responsibilities from the same exponentials.
                scale = 1.0 / total
                for k in range(K):
                    u[k] = u[k] * scale if exponentiate else u[k] - L
                if with_gradient:
                    for k in range(K):
                        res[rr + uint64(k)] += wi * u[k]
                    for k in range(K, rs - 1):
                        res[rr + uint64(k)] = 0.0
            if with_gradient:
                # The gradient's sums over the tile, from the designs and the residuals.
                cuda.syncthreads()
                offset = uint64(tile - start) % u_groups
                for slot in range(units_per_thread):
                    unit = t + slot * threads
                    if unit < n_units:
                        add_tile(sh, sh_res, grad, 12 * slot, unit, rows, offset)
            # The designs' tile (or the residuals) is read; the results take its place.
            cuda.syncthreads()
            if t < rows:
                for k in range(K):
                    res[rr + uint64(k)] = u[k]
                    if not gate_known and not with_gradient:
                        res[u_g_at + rr + uint64(k)] = z[k]
            cuda.syncthreads()
            # Back in coalesced sweeps: the tile's rows are contiguous in out.
            size = uint64(rows) * u_k
            first = uint64(tile) * u_k
            q = uint64(t)
            while q < size:
                at = q + (q // u_k) * u_pad if rs > K else q
                out[first + q] = res[at]
                if not gate_known and not with_gradient:
                    log_gate[first + q] = res[u_g_at + at]
                q += u_threads
            # Lane l adds the chunk's rows l, l + 32, ... in order (the tile's
            # rows stay in shared memory until the next tile's second barrier).
            offset = uint64(tile - start) % u_lanes
            for lane in range(t, _LANES, threads):
                r = (uint64(lane) + u_lanes - offset) % u_lanes
                value = sh_lanes[lane]
                while r < uint64(rows):
                    value += sh_ll[r]
                    r += u_lanes
                sh_lanes[lane] = value
        cuda.syncthreads()
        if t == 0:
            for lane in range(_LANES):
                ll_sum += sh_lanes[lane]
            partial[c * G if with_gradient else c, 0] = ll_sum
            if with_gradient:
                for g in range(1, G):
                    partial[c * G + g, 0] = 0.0
        for slot in range(units_per_thread):
            unit = t + slot * threads
            if unit < n_units:
                write_units(partial, grad, 12 * slot, unit, c, 1)

    return kernel


def gaussian_posterior(X_gate, gate_coef, X_expert, y, coef, var, w, log_gate, out,
                       exponentiate=False, deferred=False, gate_gradient=False):
    """The E-step of a flat mixture of Gaussian linear experts, in one pass.

    The same numbers as ``affine_log_softmax`` (unless the gate's
    log-probabilities are given), ``gaussian_log_prob`` and ``posterior`` in
    turn, with no (n, K) intermediate read back; with ``gate_gradient``, also
    those of ``softmax_gradient`` at the responsibilities, in the same pass.

    Parameters
    ----------
    X_gate : array of shape (n_samples, n_gate_coefs)
    gate_coef : ndarray of shape (1, n_experts, n_gate_coefs) or None
        The gate; None when ``log_gate`` holds its log-probabilities already.
    X_expert : array of shape (n_samples, n_expert_coefs)
        May be ``X_gate`` itself.
    y : array of shape (n_samples,)
    coef : ndarray of shape (n_experts, n_expert_coefs)
    var : ndarray of shape (n_experts,)
    w : array of shape (n_samples,)
    log_gate : array of shape (n_samples, n_experts) or None
        The gate's log-probabilities: read when ``gate_coef`` is None, else
        written, unless ``gate_gradient`` (then it may be None).
    out : array of shape (n_samples, n_experts)
        Log-responsibilities, or with ``exponentiate`` the responsibilities
        (modified in place).
    exponentiate, deferred : bool, default=False
        As :func:`posterior`.
    gate_gradient : bool, default=False
        Also return the gate's gradient at the responsibilities (with
        ``exponentiate`` only).

    Returns
    -------
    log_likelihood : float, or a function giving it with ``deferred``
        ``sum_i w_i log sum_l exp(log_gate + log_lik)``, summed in chunk order.
    gradient : array of shape (1, n_experts, n_gate_coefs)
        Only with ``gate_gradient``: ``sum_i w_i (h_ik - g_ik) x_i``, the first
        gate step's gradient (``softmax_gradient``), on the device until the
        next call.
    """
    if gate_gradient and not exponentiate:
        raise ValueError("the gate's gradient is taken at the responsibilities: "
                         "exponentiate=True")
    var = np.asarray(var, dtype=np.float64)
    gate_known = gate_coef is None
    d_out, host = _out(out)
    if gate_known:
        d_gate, gate_host = _dev(log_gate), None
    elif gate_gradient:
        d_gate, gate_host = _empty(2), None
    else:
        d_gate, gate_host = _out(log_gate)
    Xg = _dev(X_gate)
    Xe = Xg if X_expert is X_gate else _dev(X_expert)
    n, pg = Xg.shape
    K, pe = coef.shape
    n_grad = K * pg if gate_gradient else 0
    if gate_gradient:
        partial = _scratch("e_step gradient", (_n_chunks(n) * _GRAD_GROUPS, 1 + n_grad))
    else:
        partial = _scratch("e_step", (_n_chunks(n), 1))
    if n:
        gate = np.zeros(K * pg) if gate_known else gate_coef.reshape(K * pg)
        params = np.concatenate([gate, coef.reshape(K * pe), -0.5 * np.log(2.0 * np.pi * var),
                                 1.0 / var])
        two_designs = Xe is not Xg
        _launch(_e_step_kernel(K, pg, pe, two_designs, gate_gradient), _n_chunks(n),
            _threads(), _flat(Xg), _flat(Xe) if two_designs else _empty(1), _dev(y),
            _dev(w), *_params("e_step", params), gate_known, bool(exponentiate),
            _config.CUDA_CHUNK_SIZE, _flat(d_gate), _flat(d_out), partial)
    _finish(d_out, host)
    if gate_host is not None:
        _finish(d_gate, gate_host)
    if not n:
        ll = _log_likelihood(lambda: [0.0], deferred)
        return (ll, np.zeros((1, K, pg))) if gate_gradient else ll
    name = "e_step gradient sums" if gate_gradient else "e_step sums"
    ll = _log_likelihood(_start_sum_chunks(partial, name=name), deferred)
    if not gate_gradient:
        return ll
    # A view of the sums' buffer, kept on it: a new view would be typed again at each launch.
    sums = _scratch(name, (1 + n_grad,))
    gradient = getattr(sums, "_skmoe_gradient", None)
    if gradient is None or gradient.shape != (1, K, pg):
        gradient = sums[1:].reshape(1, K, pg)
        with contextlib.suppress(AttributeError):
            sums._skmoe_gradient = gradient
    return ll, gradient


@cuda.jit(device=True)
def _logit(coef, row, X, i):
    acc = 0.0
    for a in range(X.shape[1]):
        acc += coef[row, a] * X[i, a]
    return acc


@cuda.jit(device=True)
def _group_logsumexp(coef, base, count, X, i):
    """``log sum_c exp(coef[base + c] . x_i)``, streaming (no temporary)."""
    top = _logit(coef, base, X, i)
    total = 1.0
    for c in range(1, count):
        z = _logit(coef, base + c, X, i)
        if z > top:
            total = total * math.exp(top - z) + 1.0
            top = z
        else:
            total += math.exp(z - top)
    return top + math.log(total)


@cuda.jit
def _categorical_log_prob_kernel(X, coef, y_idx, n_classes, out):
    i = cuda.grid(1)
    n, K = out.shape
    if i < n:
        for k in range(K):
            base = k * n_classes
            out[i, k] = (_logit(coef, base + y_idx[i], X, i)
                         - _group_logsumexp(coef, base, n_classes, X, i))


def categorical_log_prob(X, coef, y_idx, out):
    """Multinomial-logistic experts' ``log P_l(y_i | x_i)``, no (n, K, c) temporary.

    Parameters
    ----------
    X : array of shape (n_samples, n_coefs)
    coef : ndarray of shape (n_leaves, n_classes, n_coefs)
    y_idx : array of shape (n_samples,), dtype int64
    out : array of shape (n_samples, n_leaves)
        Modified in place.

    Returns
    -------
    out
    """
    K, n_classes, p = coef.shape
    d_out, host = _out(out)
    n = X.shape[0]
    if n:
        _launch(_categorical_log_prob_kernel, _blocks(n), _threads(),
            _dev(X), *_params("categorical", coef.reshape(K * n_classes, p)),
            _dev(y_idx, np.int64), n_classes, d_out)
    return _finish(d_out, host)


@cuda.jit
def _posterior_kernel(prior_flat, lik_flat, w, K, tile_rows, exponentiate, out_flat, row_ll):
    """Log-responsibilities (or their exp) of a tile of rows, written back coalesced."""
    n = w.shape[0]
    T = cuda.blockDim.x
    t = cuda.threadIdx.x
    row0 = cuda.blockIdx.x * tile_rows
    rows = min(tile_rows, n - row0)
    gs = _group_stride(K)
    shared = cuda.shared.array(0, dtype=float64)
    sZ = shared[: tile_rows * gs]
    sE = shared[tile_rows * gs: 2 * tile_rows * gs]
    sL = shared[2 * tile_rows * gs: tile_rows * (2 * gs + 1)]
    base = row0 * K
    for q in range(t, rows * K, T):
        r = q // K
        sZ[r * gs + q - r * K] = prior_flat[base + q] + lik_flat[base + q]
    cuda.syncthreads()
    _groups_logsumexp(sZ, sE, sL, rows, K, t, T)
    for r in range(t, rows, T):
        row_ll[row0 + r, 0] = w[row0 + r] * sL[r]
    for q in range(t, rows * K, T):
        r = q // K
        value = sZ[r * gs + q - r * K] - sL[r]
        out_flat[base + q] = math.exp(value) if exponentiate else value


def posterior(log_prior, log_lik, w, out, exponentiate=False, deferred=False):
    """Log-responsibilities and the weighted log-likelihood in one pass.

    Parameters
    ----------
    log_prior, log_lik : arrays of shape (n_samples, n_leaves)
    w : array of shape (n_samples,)
    out : array of shape (n_samples, n_leaves)
        Log-responsibilities (modified in place; may alias ``log_lik``).
    exponentiate : bool, default=False
        Write the responsibilities instead.
    deferred : bool, default=False
        Return a function that waits for the log-likelihood and gives it: the
        host can queue the M-step's work while the GPU ends this pass. Call it
        before this function runs again: it reuses the buffer.

    Returns
    -------
    log_likelihood : float, or a function giving it with ``deferred``
        ``sum_i w_i log sum_l exp(log_prior + log_lik)``, summed in chunk order.
    """
    d_lik = _dev(log_lik)
    if out is log_lik:
        d_out, host = d_lik, (None if _on_device(out) else out)
    else:
        d_out, host = _out(out)
    n, K = d_out.shape
    row_ll = _scratch("row_ll", (n, 1))
    if n:
        T = _threads()
        rows = _tile_rows(T, K, 2 * (K | 1) + 1)
        _launch(_posterior_kernel, -(-n // rows), T,
            _flat(_dev(log_prior)), _flat(d_lik), _dev(w), K, rows,
            bool(exponentiate), _flat(d_out), row_ll, shared=rows * (2 * (K | 1) + 1) * 8)
    _finish(d_out, host)
    return _log_likelihood(_start_column_sums(row_ll, name="posterior sums"), deferred)


def _log_likelihood(finish, deferred):
    """The float ``finish()[0]``, or with ``deferred`` the function that gives it."""
    if deferred:
        return lambda: float(finish()[0])
    return float(finish()[0])


@cuda.jit
def _mix_kernel(log_weight, values, out):
    i = cuda.grid(1)
    n, K = values.shape
    if i < n:
        acc = 0.0
        for k in range(K):
            acc += math.exp(log_weight[i, k]) * values[i, k]
        out[i] = acc


def mix(log_weight, values, out):
    """``out[i] = sum_l exp(log_weight[i, l]) * values[i, l]``.

    Parameters
    ----------
    log_weight, values : arrays of shape (n_samples, n_leaves)
    out : array of shape (n_samples,)
        Modified in place.

    Returns
    -------
    out
    """
    d_out, host = _out(out)
    n = d_out.shape[0]
    if n:
        _launch(_mix_kernel, _blocks(n), _threads(), _dev(log_weight), _dev(values), d_out)
    return _finish(d_out, host)


@cuda.jit
def _mix_categorical_kernel(X, coef, log_prior, n_classes, out):
    i = cuda.grid(1)
    n, K = log_prior.shape
    if i < n:
        for c in range(n_classes):
            out[i, c] = 0.0
        for k in range(K):
            base = k * n_classes
            shift = log_prior[i, k] - _group_logsumexp(coef, base, n_classes, X, i)
            for c in range(n_classes):
                out[i, c] += math.exp(shift + _logit(coef, base + c, X, i))


def mix_categorical(X, coef, log_prior, out):
    """Mixture class probabilities ``sum_l g_l(x) softmax(B_l x)``.

    Parameters
    ----------
    X : array of shape (n_samples, n_coefs)
    coef : ndarray of shape (n_leaves, n_classes, n_coefs)
    log_prior : array of shape (n_samples, n_leaves)
    out : array of shape (n_samples, n_classes)
        Modified in place.

    Returns
    -------
    out
    """
    K, n_classes, p = coef.shape
    d_out, host = _out(out)
    n = d_out.shape[0]
    if n:
        _launch(_mix_categorical_kernel, _blocks(n), _threads(),
            _dev(X), _dev(coef.reshape(K * n_classes, p)), _dev(log_prior), n_classes, d_out)
    return _finish(d_out, host)


@cuda.jit
def _prune_experts_kernel(log_weight, experts):
    i = cuda.grid(1)
    if i < log_weight.shape[0]:
        row = log_weight[i]
        for j in range(experts.shape[0]):
            row[experts[j]] = -math.inf
        lse = _logsumexp_span(row, 0, row.shape[0])
        for k in range(row.shape[0]):
            row[k] -= lse


def prune_experts(log_weight, experts):
    """:func:`skmoe._kernels.cpu.prune_experts` on the device; returns ``log_weight``."""
    d_weight, host = _out(log_weight)
    if host is not None:
        d_weight.copy_to_device(np.ascontiguousarray(host))
    n = d_weight.shape[0]
    if n:
        _launch(_prune_experts_kernel, _blocks(n), _threads(), d_weight,
                _dev(experts, np.int64))
    return _finish(d_weight, host)


# --------------------------------------------------------------------------
# Predictive distributions and sparse routing: one thread a row, the rows of
# ``_rowops`` (the CPU backend's, compiled for the device). Each function is
# its CPU namesake (the same arguments, documented there) on device arrays or
# NumPy arrays.

_log_mix_row = cuda.jit(device=True)(_rowops.log_mix_row)
_top_k_row = cuda.jit(device=True)(_rowops.top_k_row)
_gaussian_mix_moments_row = cuda.jit(device=True)(_rowops.gaussian_mix_moments_row)
_gaussian_mix_sparse_row = cuda.jit(device=True)(_rowops.gaussian_mix_sparse_row)
_mix_categorical_sparse_row = cuda.jit(device=True)(_rowops.mix_categorical_sparse_row)
_gaussian_mix_quantiles_row = cuda.jit(device=True)(_rowops.gaussian_mix_quantiles_row)


def _launch_rows(kernel, outputs, *inputs):
    """``kernel(*inputs, *outputs)`` on a thread a row of the first output.

    NumPy outputs are computed on the device and copied into after; returns
    the outputs (one, or a tuple).
    """
    outs = [_out(a) for a in outputs]
    n = outs[0][0].shape[0]
    if n:
        _launch(kernel, _blocks(n), _threads(), *inputs, *(dev for dev, _ in outs))
    results = tuple(_finish(dev, host) for dev, host in outs)
    return results if len(results) > 1 else results[0]


@cuda.jit
def _log_mix_kernel(log_weight, log_values, out):
    i = cuda.grid(1)
    if i < log_weight.shape[0]:
        _log_mix_row(i, log_weight, log_values, out)


def log_mix(log_weight, log_values, out):
    """:func:`skmoe._kernels.cpu.log_mix` on the device; returns ``out``."""
    return _launch_rows(_log_mix_kernel, (out,), _dev(log_weight), _dev(log_values))


@cuda.jit
def _top_k_kernel(log_weight, idx, weight, dropped):
    i = cuda.grid(1)
    if i < log_weight.shape[0]:
        _top_k_row(i, log_weight, idx, weight, dropped)


def top_k_gate(log_weight, idx, weight, dropped):
    """:func:`skmoe._kernels.cpu.top_k_gate` on the device; returns ``idx, weight, dropped``."""
    return _launch_rows(_top_k_kernel, (idx, weight, dropped), _dev(log_weight))


@cuda.jit
def _gaussian_mix_moments_kernel(log_weight, means, var, mean_out, var_out):
    i = cuda.grid(1)
    if i < means.shape[0]:
        _gaussian_mix_moments_row(i, log_weight, means, var, mean_out, var_out)


def gaussian_mix_moments(log_weight, means, var, mean_out, var_out):
    """:func:`skmoe._kernels.cpu.gaussian_mix_moments` on the device; returns the outputs."""
    return _launch_rows(_gaussian_mix_moments_kernel, (mean_out, var_out), _dev(log_weight),
                        _dev(means), *_params("mixture variances", var))


@cuda.jit
def _gaussian_mix_sparse_kernel(X, coef, var, idx, weight, mean_out, var_out):
    i = cuda.grid(1)
    if i < X.shape[0]:
        _gaussian_mix_sparse_row(i, X, coef, var, idx, weight, mean_out, var_out)


def gaussian_mix_sparse(X, coef, var, idx, weight, mean_out, var_out):
    """:func:`skmoe._kernels.cpu.gaussian_mix_sparse` on the device; returns the outputs."""
    return _launch_rows(_gaussian_mix_sparse_kernel, (mean_out, var_out), _dev(X),
                        *_params("sparse experts", coef, var), _dev(idx, np.int64),
                        _dev(weight))


@cuda.jit
def _mix_categorical_sparse_kernel(X, coef, idx, weight, logits, out):
    i = cuda.grid(1)
    if i < X.shape[0]:
        _mix_categorical_sparse_row(i, X, coef, idx, weight, logits[i], out)


def mix_categorical_sparse(X, coef, idx, weight, out):
    """:func:`skmoe._kernels.cpu.mix_categorical_sparse` on the device; returns ``out``."""
    # A row of logits a thread in global memory: a thread's registers cannot hold
    # a number of classes known only at run time.
    return _launch_rows(_mix_categorical_sparse_kernel, (out,), _dev(X),
                        *_params("sparse experts", coef), _dev(idx, np.int64), _dev(weight),
                        cuda.device_array(out.shape))


@cuda.jit
def _gaussian_mix_quantiles_kernel(log_weight, means, sd, z, quantiles, out):
    i = cuda.grid(1)
    if i < means.shape[0]:
        _gaussian_mix_quantiles_row(i, log_weight, means, sd, z, quantiles, out)


def gaussian_mix_quantiles(log_weight, means, var, z, quantiles, out):
    """:func:`skmoe._kernels.cpu.gaussian_mix_quantiles` on the device; returns ``out``."""
    return _launch_rows(_gaussian_mix_quantiles_kernel, (out,), _dev(log_weight), _dev(means),
                        *_params("quantiles", np.sqrt(var), z, quantiles))


@cuda.jit
def _add_level_kernel(log_gate, first, out):
    # Leaf l sits below edge l // stride of this level.
    e = cuda.grid(1)
    n, n_leaves = out.shape
    if e < n * n_leaves:
        i = e // n_leaves
        leaf = e - i * n_leaves
        value = log_gate[i, leaf // (n_leaves // log_gate.shape[1])]
        out[i, leaf] = value if first else out[i, leaf] + value


def leaf_log_prior(level_log_gates, out):
    """Sum the log gate probabilities of every level along each leaf's path.

    Parameters
    ----------
    level_log_gates : list of arrays of shape (n_samples, m_d)
    out : array of shape (n_samples, n_leaves)
        Modified in place.

    Returns
    -------
    out
    """
    d_out, host = _out(out)
    size = d_out.shape[0] * d_out.shape[1]
    for d, log_gate in enumerate(level_log_gates):
        if size:
            _launch(_add_level_kernel, _blocks(size), _threads(), _dev(log_gate), d == 0, d_out)
    return _finish(d_out, host)


@cuda.jit
def _level_targets_kernel(resp, n_children, targets, mass):
    i = cuda.grid(1)
    n, n_leaves = resp.shape
    n_edges = targets.shape[1]
    stride = n_leaves // n_edges
    if i < n:
        for e in range(n_edges):
            acc = 0.0
            for s in range(stride):
                acc += resp[i, e * stride + s]
            targets[i, e] = acc
        for v in range(mass.shape[1]):
            acc = 0.0
            for j in range(n_children):
                acc += targets[i, v * n_children + j]
            mass[i, v] = acc


def level_targets(resp, n_nodes, n_children, root):
    """Posterior targets and mass of the gates of one level.

    Parameters
    ----------
    resp : array of shape (n_samples, n_leaves)
    n_nodes, n_children : int
    root : bool
        The root's mass is 1 and is not returned.

    Returns
    -------
    targets : device array of shape (n_samples, n_nodes * n_children)
    mass : device array of shape (n_samples, n_nodes) or None
    """
    if not _on_device(resp):
        return _cpu.level_targets(resp, n_nodes, n_children, root)
    n, n_leaves = resp.shape
    if root and n_leaves == n_nodes * n_children:
        return resp, None
    targets = cuda.device_array((n, n_nodes * n_children))
    mass = cuda.device_array((n, 0 if root else n_nodes))
    if n:
        _launch(_level_targets_kernel, _blocks(n), _threads(), resp, n_children, targets, mass)
    return targets, (None if root else mass)


# --------------------------------------------------------------------------
# Weighted Grams: a product of the weights and the rows' outer products


# Doubles of shared memory a block may stage (48 KiB, the static limit).
_SHARED_DOUBLES = 6144

# The Gram is a matrix product: entries e = (a, b) of the lower triangle of
# z z^T times weight columns m, summed over rows, G[e, m] = sum_i z_ia z_ib
# W[i, m] w_i. FP64 tensor cores take it in warp-wide steps, mma.sync with
# f64 operands: (_MMA_SHAPE[0] entries x k rows) times (k rows x 8 columns),
# k = _MMA_SHAPE[1]. Hopper has these shapes natively: (8, 4), (16, 4),
# (16, 8), (16, 16).
_MMA_SHAPE = (16, 8)
# Accumulator tiles a warp holds at most (entry tiles, column tiles), warps a
# block takes at most, and rows of a staged tile at most (whole k-steps). On
# an H100 at K = 16, d = 23 (run 21): (16, 8) with 2 x 2 tiles a warp, 9
# warps, 0.59 ms for wls_stats; (16, 4) and (16, 16) with 3 x 2, 0.67 and
# 0.83 ms; with (16, 16) and 1 x 2, tiles of 32, 64 and 128 rows, 1.06, 0.87
# and 0.77 ms.
_GRAM_TILES = (2, 2)
_GRAM_WARPS = 9
_GRAM_ROWS = 128
# Registers per thread of the Gram kernel at most (None: the compiler's choice):
# two blocks of 9 warps an SM.
_GRAM_MAX_REGISTERS = 96
_GRAM_KERNELS = {}
_MMA_FUNCTIONS = {}


@functools.cache
def _tensor_cores():
    """Whether the Gram kernel issues FP64 ``mma.sync`` (else it emulates it).

    That takes numba-cuda's inline PTX (not the simulator, nor
    numba-cuda-mlir) and a GPU of compute capability 8.0 or more.
    """
    if _simulator_enabled() or not cuda.__name__.startswith("numba.cuda"):
        return False
    try:
        from numba.cuda.extending import intrinsic  # noqa: F401
    except ImportError:
        return False
    return cuda.get_current_device().compute_capability >= (8, 0)


def _fragment_sizes(m, k):
    """Doubles a lane holds of A (m x k), B (k x 8) and C (m x 8) in ``mma.sync``."""
    return m * k // 32, k // 4, m // 4


def _mma_function(m, k, tensor_cores):
    """``mma(a, b, b_at, c, c_at, scratch)``: one warp's ``C += A B`` in place.

    A lane holds its fragments as PTX lays them out for f64 (lane l, group
    ``g = l // 4``, ``t = l % 4``): ``a[i]`` is A[g + 8 (i % (m / 8)), t + 4 (i //
    (m / 8))], ``b[b_at + i]`` is B[t + 4 i, g] and ``c[c_at + i]`` is C[g + 8 (i
    // 2), 2 t + i % 2]. With tensor cores this is one instruction; else the
    warp's fragments meet in ``scratch`` (``m k + 8 k`` doubles a warp, between
    two barriers: the whole block must call it together).
    """
    key = (m, k, tensor_cores)
    if key not in _MMA_FUNCTIONS:
        build = _dmma_instruction if tensor_cores else _emulated_mma
        _MMA_FUNCTIONS[key] = build(m, k)
    return _MMA_FUNCTIONS[key]


def _dmma_instruction(m, k):
    """The ``mma.sync.aligned.m{m}n8k{k}.row.col.f64`` instruction as a Numba intrinsic."""
    from llvmlite import ir
    from numba.core import types
    from numba.cuda.extending import intrinsic

    na, nb, nc = _fragment_sizes(m, k)

    def operands(first, count):
        return "{" + ", ".join(f"${first + i}" for i in range(count)) + "}"

    text = (f"mma.sync.aligned.m{m}n8k{k}.row.col.f64.f64.f64.f64 {operands(0, nc)}, "
            f"{operands(nc, na)}, {operands(nc + na, nb)}, {operands(nc + na + nb, nc)};")
    f64 = ir.DoubleType()
    asm = ir.InlineAsm(ir.FunctionType(ir.LiteralStructType([f64] * nc), [f64] * (na + nb + nc)),
                       text, ",".join(["=d"] * nc + ["d"] * (na + nb + nc)))

    @intrinsic
    def mma(typingctx, a, b, b_at, c, c_at, scratch):
        def codegen(context, builder, sig, args):
            def pointers(ty, array, at, count):
                data = context.make_array(ty)(context, builder, array).data
                start = builder.sext(at, ir.IntType(64)) if at.type.width < 64 else at
                return [builder.gep(data, [builder.add(start, ir.Constant(start.type, i))])
                        for i in range(count)]

            zero = ir.Constant(ir.IntType(64), 0)
            out_ptrs = pointers(sig.args[3], args[3], args[4], nc)
            values = ([builder.load(q) for q in pointers(sig.args[0], args[0], zero, na)]
                      + [builder.load(q) for q in pointers(sig.args[1], args[1], args[2], nb)]
                      + [builder.load(q) for q in out_ptrs])
            out = builder.call(asm, values)
            for i, q in enumerate(out_ptrs):
                builder.store(builder.extract_value(out, i), q)
            return context.get_dummy_value()

        return types.none(a, b, b_at, c, c_at, scratch), codegen

    return mma


def _emulated_mma(m, k):
    """:func:`_mma_function` through shared memory (the simulator, GPUs before sm_80)."""
    na, nb, nc = _fragment_sizes(m, k)
    halves = m // 8
    size = m * k + 8 * k

    @cuda.jit(device=True)
    def mma(a, b, b_at, c, c_at, scratch):
        lane = cuda.threadIdx.x % 32
        base = (cuda.threadIdx.x // 32) * size
        g = lane // 4
        t = lane % 4
        cuda.syncthreads()  # the last call's reads are done
        for i in range(na):
            scratch[base + (g + 8 * (i % halves)) * k + t + 4 * (i // halves)] = a[i]
        for i in range(nb):
            scratch[base + m * k + (t + 4 * i) * 8 + g] = b[b_at + i]
        cuda.syncthreads()
        for i in range(nc):
            row = g + 8 * (i // 2)
            column = 2 * t + i % 2
            s = c[c_at + i]
            for j in range(k):
                s += scratch[base + row * k + j] * scratch[base + m * k + j * 8 + column]
            c[c_at + i] = s

    return mma


def _gram_layout(M, d, m, max_tiles, max_warps):
    """How the Gram kernel splits M weight columns of d-vectors' outer products.

    Returns
    -------
    layout : tuple
        ``(n_entries, entry_tiles, column_tiles, entry_tasks, column_tasks,
        warps, blocks)``: the lower triangle's entries, in tiles of m; the
        weight columns, in tiles of 8; a warp's task is ``entry_tiles`` x
        ``column_tiles`` of them, there are ``entry_tasks x column_tasks``
        tasks, ``warps`` a block, and ``blocks`` blocks a chunk.
    """
    n_entries = d * (d + 1) // 2
    n_entry_tiles = -(-n_entries // m)
    n_column_tiles = -(-M // 8)
    column_tiles = min(n_column_tiles, max_tiles[1])
    column_tasks = -(-n_column_tiles // column_tiles)
    entry_tiles = min(n_entry_tiles, max_tiles[0])
    entry_tasks = -(-n_entry_tiles // entry_tiles)
    entry_tiles = -(-n_entry_tiles // entry_tasks)  # the same share for every task
    tasks = entry_tasks * column_tasks
    blocks = -(-tasks // max_warps)
    return (n_entries, entry_tiles, column_tiles, entry_tasks, column_tasks,
            -(-tasks // blocks), blocks)


def _gram_kernel(M, p, with_y):
    """The Gram kernel of one shape, compiled at its first use."""
    key = (M, p, with_y, _MMA_SHAPE, _GRAM_TILES, _GRAM_WARPS, _SHARED_DOUBLES, _GRAM_ROWS,
           _GRAM_MAX_REGISTERS, _tensor_cores())
    if key not in _GRAM_KERNELS:
        _GRAM_KERNELS[key] = _build_gram_kernel(*key)
    return _GRAM_KERNELS[key]


def _build_gram_kernel(M, p, with_y, shape, max_tiles, max_warps, shared_doubles, max_rows,
                       max_registers, tensor_cores):
    """Compile the chunk partials of ``sum_i W[i, m] w_i z_i z_i^T`` for one shape.

    ``z_i = (x_i, y_i, 1)`` with ``y``, else ``x_i``. A tile of rows is staged
    in shared memory: the rows' z, and their weights ``W[i, m] w_i`` (0 past
    the last row or column). Then each warp steps through the tile k rows at a
    time: every lane forms its products ``z_ia z_ib`` of A's fragment, and the
    warp adds A times the weights' fragment into its accumulators, one
    ``mma.sync`` per entry tile and column tile. Each output is the warp's sum
    over the chunk's rows in k-steps, in row order: the partials depend on the
    chunk size only.
    """
    m, k = shape
    d = p + 2 if with_y else p
    (n_entries, entry_tiles, column_tiles, entry_tasks, column_tasks, warps,
     _) = _gram_layout(M, d, m, max_tiles, max_warps)
    tasks = entry_tasks * column_tasks
    threads = 32 * warps
    na, nb, nc = _fragment_sizes(m, k)
    halves = m // 8
    mma = _mma_function(m, k, tensor_cores)
    scratch_size = 1 if tensor_cores else warps * (m * k + 8 * k)
    # Strides of 4 mod 8 doubles: a half-warp's fragment loads (4 rows x 4
    # neighbouring columns) fall in 32 distinct banks.
    z_stride = d + (4 - d) % 8
    r_stride = 8 * column_tiles * column_tasks + 4
    rows_per_tile = k * max(1, min(max_rows, (shared_doubles - scratch_size)
                                   // (z_stride + r_stride)) // k)
    z_size = rows_per_tile * z_stride
    r_size = rows_per_tile * r_stride
    b_size = nb * column_tiles
    n_acc = entry_tiles * column_tiles * nc
    n_index = entry_tiles * halves
    u_p = uint64(p)
    u_M = uint64(M)
    u_z = uint64(z_stride)
    u_r = uint64(r_stride)
    u_threads = uint64(threads)
    u_k = uint64(k)
    # The weights' staging: threads // r_stride rows a pass, or columns in turn.
    u_stage_rows = uint64(max(1, threads // r_stride))
    u_stage_columns = uint64(r_stride if threads >= r_stride else threads)
    options = {} if _simulator_enabled() or max_registers is None else {
        "max_registers": max_registers}

    @cuda.jit(**options)
    def kernel(X_flat, y, W_flat, w, chunk_size, partial):
        sz = cuda.shared.array(z_size, dtype=float64)
        sr = cuda.shared.array(r_size, dtype=float64)
        scratch = cuda.shared.array(scratch_size, dtype=float64)
        a = cuda.local.array(na, dtype=float64)
        b = cuda.local.array(b_size, dtype=float64)
        acc = cuda.local.array(n_acc, dtype=float64)
        left = cuda.local.array(n_index, dtype=uint64)
        right = cuda.local.array(n_index, dtype=uint64)
        t = cuda.threadIdx.x
        c = cuda.blockIdx.x
        lane = t % 32
        g = lane // 4
        row_in_step = uint64(lane % 4)
        # Warps past the last task repeat it (every warp must reach the
        # barriers) and write nothing.
        task = cuda.blockIdx.y * warps + t // 32
        writes = task < tasks
        task = min(task, tasks - 1)
        first_entry = (task % entry_tasks) * entry_tiles * m
        first_column = (task // entry_tasks) * column_tiles * 8
        n = X_flat.shape[0] // p
        has_w = w.shape[0] > 0
        first_stage_column = t % r_stride
        first_stage_row = t // r_stride
        if threads < r_stride:
            first_stage_row = 0
        elif t >= (threads // r_stride) * r_stride:
            first_stage_column = r_stride  # idle
        # This lane's entries of A (past the last: (0, 0), computed, never written).
        for j in range(n_index):
            e = first_entry + (j // halves) * m + 8 * (j % halves) + g
            row = 0
            col = 0
            if e < n_entries:
                row = int((math.sqrt(8.0 * e + 1.0) - 1.0) / 2.0)
                while row * (row + 1) // 2 > e:
                    row -= 1
                while (row + 1) * (row + 2) // 2 <= e:
                    row += 1
                col = e - row * (row + 1) // 2
            left[j] = uint64(row)
            right[j] = uint64(col)
        for q in range(n_acc):
            acc[q] = 0.0
        start = c * chunk_size
        stop = min(n, start + chunk_size)
        for tile in range(start, stop, rows_per_tile):
            n_rows = min(rows_per_tile, stop - tile)
            rows = uint64(n_rows)
            padded = uint64(-(-n_rows // k) * k)
            row0 = uint64(tile)
            cuda.syncthreads()
            _stage_rows(X_flat, tile, n_rows, p, sz, 0, z_stride, t, threads)
            if with_y:
                r = uint64(t)
                while r < rows:
                    sz[r * u_z + u_p] = y[row0 + r]
                    sz[r * u_z + u_p + uint64(1)] = 1.0
                    r += u_threads
            # The last k-step's rows past the chunk: z = 0 (not stale values).
            q = rows * u_z + uint64(t)
            while q < padded * u_z:
                sz[q] = 0.0
                q += u_threads
            # Each thread has one column of the rows' weights, or a few.
            column = uint64(first_stage_column)
            while column < u_r:
                r = uint64(first_stage_row)
                while r < padded:
                    value = 0.0
                    if r < rows and column < u_M:
                        value = W_flat[(row0 + r) * u_M + column]
                        if has_w:
                            value *= w[row0 + r]
                    sr[r * u_r + column] = value
                    r += u_stage_rows
                column += u_stage_columns
            cuda.syncthreads()
            base = row_in_step
            while base < padded:
                for i in range(column_tiles):
                    for h in range(nb):
                        b[i * nb + h] = sr[(base + uint64(4 * h)) * u_r
                                           + uint64(first_column + 8 * i + g)]
                for j in range(entry_tiles):
                    for h in range(na):
                        at = (base + uint64(4 * (h // halves))) * u_z
                        index = j * halves + h % halves
                        a[h] = sz[at + left[index]] * sz[at + right[index]]
                    for i in range(column_tiles):
                        mma(a, b, i * nb, acc, (j * column_tiles + i) * nc, scratch)
                base += u_k
        if writes:
            for j in range(entry_tiles):
                for i in range(column_tiles):
                    for h in range(nc):
                        e = first_entry + j * m + 8 * (h // 2) + g
                        column = first_column + 8 * i + 2 * (lane % 4) + h % 2
                        if e < n_entries and column < M:
                            partial[c, column * n_entries + e] = acc[
                                (j * column_tiles + i) * nc + h]

    return kernel


def _gram(X, W, y=None, w=None):
    """``G[m] = sum_i W[i, m] w_i z_i z_i^T`` for z = (x, y, 1) with y, else x; ordered sums.

    Returns
    -------
    G : ndarray of shape (M, d, d), on the host
    """
    return _start_gram(X, W, y, w)()


def _start_gram(X, W, y=None, w=None, stream=None, name="gram"):
    """Launch :func:`_gram` on ``stream``; returns the function that waits and gives G.

    Work off the main line (``stream`` not None) has buffers of its own (``name``).
    """
    X, W = _dev(X), _dev(W)
    n, p = X.shape
    M = W.shape[1]
    with_y = y is not None
    d = p + 2 if with_y else p
    n_entries, *_, warps, n_blocks = _gram_layout(M, d, _MMA_SHAPE[0], _GRAM_TILES,
                                                  _GRAM_WARPS)
    if n:
        partial = _scratch(name, (_n_chunks(n), M * n_entries))
        _launch(_gram_kernel(M, p, with_y), (_n_chunks(n), n_blocks), 32 * warps,
            _flat(X), _dev(y) if with_y else _empty(1), _flat(W),
            _empty(1) if w is None else _dev(w), _config.CUDA_CHUNK_SIZE, partial,
            stream=stream)
        sums = _start_sum_chunks(partial, stream, f"{name} sums")
    else:
        sums = functools.partial(np.zeros, M * n_entries)

    def finish():
        lower = sums().reshape(M, n_entries)
        rows, cols = np.tril_indices(d)  # the entries' order: row by row
        G = np.empty((M, d, d))
        G[:, rows, cols] = lower
        G[:, cols, rows] = lower
        return G

    return finish


def weighted_grams(X, weights):
    """``sum_i weights[i, m] x_i x_i^T`` for every column m, in one pass over X.

    Parameters
    ----------
    X : array of shape (n_samples, n_coefs)
    weights : array of shape (n_samples, n_stats)

    Returns
    -------
    grams : ndarray of shape (n_stats, n_coefs, n_coefs)
    """
    return np.ascontiguousarray(_gram(X, weights))


def wls_stats(X, y, resp, w):
    """All experts' weighted least-squares statistics, from one pass over X.

    The Gram of ``z = (x, y, 1)`` weighted by ``w_i h_il`` holds all four:
    ``x x^T``, ``y x``, ``y^2`` and the mass.

    Parameters
    ----------
    X : array of shape (n_samples, n_coefs)
    y : array of shape (n_samples,)
    resp : array of shape (n_samples, n_leaves)
    w : array of shape (n_samples,)

    Returns
    -------
    gram : ndarray of shape (n_leaves, n_coefs, n_coefs)
    xty : ndarray of shape (n_leaves, n_coefs)
    yty : ndarray of shape (n_leaves,)
    mass : ndarray of shape (n_leaves,)
    """
    return _wls_parts(X.shape[1], _start_gram(X, resp, y=y, w=w)())


def start_wls_stats(X, y, resp, w):
    """Start :func:`wls_stats` beside the default stream; returns the function that ends it.

    The Gram runs on a stream of its own, after what the default stream has
    queued so far (the E-step that wrote ``resp``), while the caller goes on
    (the gate's steps, on the default stream): the GPU computes it in the gaps
    between them. The caller must end it before anything overwrites the inputs.

    Parameters
    ----------
    X, y, resp, w : as :func:`wls_stats`

    Returns
    -------
    finish : callable
        ``finish()`` waits for the statistics and returns what :func:`wls_stats` returns.
    """
    stream, ready = _side_stream()
    ready.record(_main_stream())
    ready.wait(stream)
    p = X.shape[1]
    gram = _start_gram(X, resp, y=y, w=w, stream=stream, name="side gram")
    return lambda: _wls_parts(p, gram())


def _wls_parts(p, G):
    """``wls_stats``'s four parts of the Gram of ``z = (x, y, 1)``."""
    return (np.ascontiguousarray(G[:, :p, :p]), np.ascontiguousarray(G[:, p, :p]),
            G[:, p, p].copy(), G[:, p + 1, p + 1].copy())


# --------------------------------------------------------------------------
# Softmax regressions (gates and multinomial experts)


# Row groups of the softmax kernel's gradient: a thread's 12 sums take every
# G-th row of a chunk, so that G x (4 edges x 3 coefficients) units keep a
# block's threads busy (K = 16, p = 21: 112 units).
_GRAD_GROUPS = 4


def _gradient_units(p, m):
    """The softmax gradient's sums over a tile of rows, in units of 4 edges x 3 coefficients.

    Shared by the softmax pass and the fused E-step. The tile's rows are in
    shared memory: their p coefficients ``x_stride`` doubles apart, and their
    m residuals ``w_i (T_ie - s_i g_ie)`` ``r_stride`` apart (zero from m to
    ``r_stride - 1``). Unit u takes edges ``4 quad .. 4 quad + 3`` and
    coefficients ``col .. col + 2`` over the rows of one of the
    ``_GRAD_GROUPS`` row groups (a chunk's rows g, g + G, ...), in row order
    (7 shared loads for 12 sums a row). A chunk's partials are G rows, one a
    group, so every sum is in a fixed order that depends on the chunk size
    only.

    Returns
    -------
    n_units, x_stride, r_stride : int
        The units, and the odd strides (one row per thread without bank
        conflicts).
    add_tile : device function ``(sh_x, sh_r, acc, at, u, rows, offset)``
        Adds the tile's rows to unit u's 12 sums ``acc[at:at + 12]``;
        ``offset``: the tile's first row in the chunk, modulo G.
    write_units : device function ``(partial, acc, at, u, c, first)``
        Writes unit u's sums, chunk c's, to ``partial[c G + g, first + e p + a]``.
    """
    n_quads = -(-m // 4)
    n_triples = -(-p // 3)
    group_units = n_quads * n_triples
    G = _GRAD_GROUPS
    x_stride = p | 1
    r_stride = (4 * n_quads) | 1
    # Unsigned constants of the hot loop (an unsigned index skips Numba's
    # wraparound test; a signed operand would make the sum a float).
    ux = uint64(x_stride)
    ur = uint64(r_stride)
    u_groups = uint64(G)
    x_jump = uint64(G * x_stride)
    r_jump = uint64(G * r_stride)

    @cuda.jit(device=True)
    def add_tile(sh_x, sh_r, acc, at, u, rows, offset):
        g = u // group_units
        quad = (u - g * group_units) // n_triples
        col = 3 * (u - g * group_units - quad * n_triples)
        # Past the last coefficient: sums of valid loads, never written.
        col1 = uint64(min(col + 1, p - 1) - col)
        col2 = uint64(min(col + 2, p - 1) - col)
        r = (uint64(g) + u_groups - offset) % u_groups
        xi = r * ux + uint64(col)
        ri = r * ur + uint64(4 * quad)
        s = cuda.local.array(12, dtype=float64)
        for q in range(12):
            s[q] = acc[at + q]
        while r < uint64(rows):
            x0 = sh_x[xi]
            x1 = sh_x[xi + col1]
            x2 = sh_x[xi + col2]
            for e in range(4):
                res = sh_r[ri + uint64(e)]
                s[3 * e] += res * x0
                s[3 * e + 1] += res * x1
                s[3 * e + 2] += res * x2
            xi += x_jump
            ri += r_jump
            r += u_groups
        for q in range(12):
            acc[at + q] = s[q]

    @cuda.jit(device=True)
    def write_units(partial, acc, at, u, c, first):
        g = u // group_units
        quad = (u - g * group_units) // n_triples
        col = 3 * (u - g * group_units - quad * n_triples)
        row = c * G + g
        for e in range(4):
            edge = 4 * quad + e
            for j in range(3):
                if edge < m and col + j < p:
                    partial[row, first + edge * p + col + j] = acc[at + 3 * e + j]

    return G * group_units, x_stride, r_stride, add_tile, write_units

# Doubles of coefficients a block keeps in shared memory at most (larger gates
# read theirs through the L1 cache: every thread of a warp loads the same one).
_SHARED_COEFS = 1024


def _softmax_max_registers(n_edges):
    """Registers per thread of the softmax kernel at most, by the edges a row keeps.

    On an H100 (n = 1e6, p = 21, 16 children), with the gradient in units of
    4 x 3 sums: 128 took a gate pass 0.36 ms, 96 (which spills in the
    gradient's loop) 0.45 ms and 160 0.40 ms; with 64 children 128 was the
    fastest before too (benchmarks.md).
    """
    return 128


_SOFTMAX_KERNELS = {}


def _softmax_kernel(n_nodes, b, p):
    """The gate-statistics kernel of one shape, compiled at its first use."""
    key = (n_nodes, b, p, _threads(), _SHARED_DOUBLES, _SHARED_COEFS,
           _softmax_max_registers(n_nodes * b))
    if key not in _SOFTMAX_KERNELS:
        _SOFTMAX_KERNELS[key] = _build_softmax_kernel(*key)
    return _SOFTMAX_KERNELS[key]


def _build_softmax_kernel(n_nodes, b, p, threads, shared_doubles, shared_coefs, max_registers):
    """Compile the chunk-partials kernel of N softmax regressions for one shape.

    The shape (nodes, children, coefficients) and the block size are
    compile-time constants: a thread keeps the logits of its row in registers
    (the loops over edges unroll), and a thread's share of the gradient stays
    in registers for the whole chunk. One block per chunk, in tiles of
    ``rows`` rows staged in shared memory (the targets and the given
    log-probabilities too, by coalesced copies). Per tile:

    1. one thread per row: the logits ``x_i C^T`` (or, with ``log_proba``, the
       given log-probabilities), then per node the log-sum-exp, the objective
       ``w_i sum_j T_ij log g_ij`` and the residuals ``w_i (T_ie - s_i g_ie)``;
    2. one thread per unit of 4 edges x 3 coefficients x one of the
       ``_GRAD_GROUPS`` row groups (the chunk's rows g, g + G, ...), and one
       per node for the objective: its sums over the tile's rows of its group,
       in row order (7 shared loads for 12 sums per row).

    A chunk's partials are G rows, one per row group (the objective in the
    first), which the chunk sums add with the others. So every output is a sum
    in a fixed order that depends on the chunk size only, not on the block
    size or the tile. Shared rows have an odd stride in doubles (one row per
    thread without bank conflicts), and the hot loops index with unsigned
    integers, which Numba does not test for negative (wrapped-around) values.
    """
    m = n_nodes * b
    n_grad_units, x_stride, r_stride, add_tile, write_units = _gradient_units(p, m)
    coef_shared = m * p <= shared_coefs
    coef_size = m * p if coef_shared else 1
    per_row = x_stride + r_stride + n_nodes
    rows_per_tile = max(1, min(threads, (shared_doubles - coef_size) // per_row))
    G = _GRAD_GROUPS
    units_per_thread = -(-(n_grad_units + n_nodes) // threads)
    # Array sizes must be constants when the kernel is typed, not expressions in it.
    x_size = rows_per_tile * x_stride
    r_size = rows_per_tile * r_stride
    o_size = rows_per_tile * n_nodes
    acc_size = 12 * units_per_thread
    # The simulator takes no register limit (it has no registers).
    options = {} if _simulator_enabled() else {"max_registers": max_registers}
    # Unsigned constants of the hot loops (an unsigned index skips Numba's
    # wraparound test; a signed operand would make the sum a float).
    u_m = uint64(m)
    u_nodes = uint64(n_nodes)
    u_groups = uint64(G)

    @cuda.jit(**options)
    def kernel(X_flat, coef_flat, log_proba, w, mass, targets, y_idx, want_grad, obj_at,
               chunk_size, partial, proba):
        sh_x = cuda.shared.array(x_size, dtype=float64)
        sh_r = cuda.shared.array(r_size, dtype=float64)
        sh_o = cuda.shared.array(o_size, dtype=float64)
        sh_c = cuda.shared.array(coef_size, dtype=float64)
        z = cuda.local.array(m, dtype=float64)
        acc = cuda.local.array(acc_size, dtype=float64)
        t = cuda.threadIdx.x
        c = cuda.blockIdx.x
        n = w.shape[0]
        has_mass = mass.shape[0] > 0
        has_targets = targets.shape[0] > 0
        keep_proba = proba.shape[0] > 0
        from_log = log_proba.shape[0] > 0
        if coef_shared:
            for q in range(t, m * p, threads):
                sh_c[q] = coef_flat[q]
        for q in range(acc_size):
            acc[q] = 0.0
        start = c * chunk_size
        stop = min(n, start + chunk_size)
        for tile in range(start, stop, rows_per_tile):
            rows = min(rows_per_tile, stop - tile)
            cuda.syncthreads()
            _stage_rows(X_flat, tile, rows, p, sh_x, 0, x_stride, t, threads)
            # Row-major (n, m) inputs come through the residuals' rows in
            # coalesced copies (a row's thread would take m strided loads):
            # the given log-probabilities first, then the targets.
            if from_log:
                _stage_rows(log_proba, tile, rows, m, sh_r, 0, r_stride, t, threads)
                cuda.syncthreads()
                if t < rows:
                    for k in range(m):
                        z[k] = sh_r[uint64(t * r_stride + k)]
                cuda.syncthreads()
            if has_targets:
                _stage_rows(targets, tile, rows, m, sh_r, 0, r_stride, t, threads)
            cuda.syncthreads()
            # 1. One thread per row.
            if t < rows:
                i = uint64(tile + t)
                xr = uint64(t * x_stride)
                at_row = i * u_m
                if not from_log:
                    for k in range(m):
                        z[k] = 0.0
                    for a in range(p):
                        ua = uint64(a)
                        x = sh_x[xr + ua]
                        for k in range(m):
                            if coef_shared:
                                z[k] += x * sh_c[uint64(k * p) + ua]
                            else:
                                z[k] += x * coef_flat[uint64(k * p) + ua]
                wi = w[i]
                rr = uint64(t * r_stride)
                for v in range(n_nodes):
                    s = mass[i * u_nodes + uint64(v)] if has_mass else 1.0
                    top = 0.0
                    log_total = 0.0
                    if not from_log:
                        top = z[v * b]
                        for j in range(1, b):
                            top = max(top, z[v * b + j])
                    weighted = 0.0
                    mass_t = 0.0
                    total = 0.0
                    for j in range(b):
                        k = v * b + j
                        if has_targets:
                            target = sh_r[rr + uint64(k)]
                        else:
                            target = s if y_idx[i] == j else 0.0
                            # Kept where the residual goes, for the second loop.
                            sh_r[rr + uint64(k)] = target
                        shifted = z[k] - top
                        weighted += target * shifted
                        mass_t += target
                        z[k] = math.exp(shifted)
                        total += z[k]
                    if not from_log:
                        log_total = math.log(total)
                    sh_o[uint64(t * n_nodes + v)] = wi * (weighted - mass_t * log_total)
                    # The given log-probabilities are normalised already.
                    scale = 1.0 if from_log else 1.0 / total
                    for j in range(b):
                        k = v * b + j
                        target = sh_r[rr + uint64(k)]
                        prob = z[k] * scale
                        if keep_proba:
                            proba[at_row + uint64(k)] = prob
                        sh_r[rr + uint64(k)] = wi * (target - s * prob)
                for k in range(m, r_stride - 1):
                    sh_r[rr + uint64(k)] = 0.0
            cuda.syncthreads()
            # 2. One thread per unit, over its group's rows of the tile in order.
            offset = uint64(tile - start) % u_groups
            for slot in range(units_per_thread):
                u = t + slot * threads
                at = 12 * slot
                if u < n_grad_units:
                    if want_grad:
                        add_tile(sh_x, sh_r, acc, at, u, rows, offset)
                elif u < n_grad_units + n_nodes:
                    oi = uint64(u - n_grad_units)
                    value = acc[at]
                    for _ in range(rows):
                        value += sh_o[oi]
                        oi += u_nodes
                    acc[at] = value
        for slot in range(units_per_thread):
            u = t + slot * threads
            at = 12 * slot
            if u < n_grad_units:
                if want_grad:
                    write_units(partial, acc, at, u, c, 0)
            elif u < n_grad_units + n_nodes:
                v = u - n_grad_units
                partial[c * G, obj_at + v] = acc[at]
                for g in range(1, G):
                    partial[c * G + g, obj_at + v] = 0.0

    return kernel


@cuda.jit
def _newton_pairs_kernel(proba, w, mass, n_children, pairs):
    """``pairs[i, v*P + (j, k)] = w_i s_iv g_ij (delta_jk - g_ik)`` for j <= k."""
    i = cuda.grid(1)
    n, m = proba.shape
    b = n_children
    n_pair = b * (b + 1) // 2
    if i < n:
        for v in range(m // b):
            ws = w[i] * (mass[i, v] if mass.shape[0] > 0 else 1.0)
            col = v * n_pair
            for j in range(b):
                gj = proba[i, v * b + j]
                for k in range(j, b):
                    gk = proba[i, v * b + k]
                    pairs[i, col] = ws * gj * ((1.0 if j == k else 0.0) - gk)
                    col += 1


def _softmax_sums(X, coef, log_proba, w, mass, targets, y_idx, want_grad, proba):
    """The gradient (None unless ``want_grad``) and the per-node objectives, in chunk order.

    Returns
    -------
    grad : ndarray of shape (n_nodes, n_children, n_coefs) or None
    objective : ndarray of shape (n_nodes,)
    """
    return _start_softmax_sums(X, coef, log_proba, w, mass, targets, y_idx, want_grad, proba)()


def _softmax_partials(X, shape, coef, log_proba, w, mass, targets, y_idx, want_grad, proba):
    """Launch the softmax pass over the n > 0 rows of X; returns its chunk partials.

    ``shape`` is (n_nodes, n_children); ``coef`` the coefficients, flat on
    the device. Columns of the partials: the gradient (when ``want_grad``),
    then the nodes' objectives.
    """
    n, p = X.shape
    n_nodes, b = shape
    n_grad = n_nodes * b * p if want_grad else 0
    n_chunks = _n_chunks(n)
    partial = _scratch("softmax", (n_chunks * _GRAD_GROUPS, n_grad + n_nodes))
    _launch(_softmax_kernel(n_nodes, b, p), n_chunks, _threads(),
        _flat(X), coef, _flat(log_proba), w, _flat(mass), _flat(targets), y_idx, want_grad,
        n_grad, _config.CUDA_CHUNK_SIZE, partial, _flat(proba))
    return partial


def _start_softmax_sums(X, coef, log_proba, w, mass, targets, y_idx, want_grad, proba):
    """Launch :func:`_softmax_sums`'s pass; returns the function that waits and gives them."""
    n, p = X.shape
    n_nodes, b, _ = coef.shape
    m = n_nodes * b
    n_grad = m * p if want_grad else 0
    if n:
        partial = _softmax_partials(X, (n_nodes, b), *_params("softmax", coef.reshape(m * p)),
                                    log_proba, w, mass, targets, y_idx, want_grad, proba)
        sums = _start_sum_chunks(partial)
    else:
        sums = functools.partial(np.zeros, n_grad + n_nodes)

    def finish():
        values = sums()
        grad = values[:n_grad].reshape(n_nodes, b, p) if want_grad else None
        return grad, values[n_grad:].copy()

    return finish


def softmax_gradient(X, log_proba, w, targets):
    """Gradient of the root's weighted softmax regression at known probabilities.

    The first Boehning step of an M-step starts where the E-step computed the
    root's log-probabilities; from them the gradient needs no logits.

    Parameters
    ----------
    X : array of shape (n_samples, n_coefs)
    log_proba : array of shape (n_samples, n_children)
        Log gate probabilities of the root at the current coefficients.
    w : array of shape (n_samples,)
    targets : array of shape (n_samples, n_children)

    Returns
    -------
    grad : ndarray of shape (1, n_children, n_coefs)
        ``sum_i w_i (T_ij - g_ij) x_i``, as from ``softmax_stats``.
    """
    X = _dev(X)
    p = X.shape[1]
    b = log_proba.shape[1]
    # Zero coefficients, never used for logits: they give the kernel its shape.
    shape = np.zeros((1, b, p))
    return _softmax_sums(X, shape, _dev(log_proba), _dev(w), _empty(2), _dev(targets),
                         _empty(1, np.int64), True, _empty(2))[0]


_BOHNING_KERNELS = {}


def _bohning_update_kernel(b, p):
    """The root's Boehning update of one shape, compiled at its first use."""
    key = (b, p, _threads())
    if key not in _BOHNING_KERNELS:
        _BOHNING_KERNELS[key] = _build_bohning_update_kernel(*key)
    return _BOHNING_KERNELS[key]


def _build_bohning_update_kernel(b, p, threads):
    """Compile one block's move of the root's coefficients by a Boehning step
    (:func:`_bohning_update_function`)."""
    update, shared_sizes = _bohning_update_function(b, p)
    maps_size, size = shared_sizes

    @cuda.jit
    def kernel(sums, coef, maps, reg, relaxation):
        sh_maps = cuda.shared.array(maps_size, dtype=float64)
        rhs = cuda.shared.array(size, dtype=float64)
        centre = cuda.shared.array(p, dtype=float64)
        update(sums, coef, maps, reg, relaxation, cuda.threadIdx.x, threads, sh_maps, rhs,
               centre)

    return kernel


def _bohning_update_function(b, p):
    """The device function of one block's move of the root's coefficients by a Boehning step.

    From the gradient's sums (child-major, then the objective, as the softmax
    pass's chunk sums leave them) and the coefficients, both flat on the
    device: the right-hand side ``r = g - reg V`` of children 1..b-1 (no ridge
    on the intercept), its mean over the children, then
    ``relaxation * ((r - mean) M1^-1 + mean M2^-1)`` added to the coefficients
    (``maps``: ``M1^-1`` then ``M2^-1``, row-major). The maps and ``r`` are
    staged in shared memory (one coalesced read each); every value is formed
    by one thread, in a fixed order.

    Returns
    -------
    update : device function
        ``(sums, coef, maps, reg, relaxation, t, threads, sh_maps, rhs, centre)``,
        called by every thread of one block (t of ``threads``), with shared
        arrays of the sizes below and p.
    shared_sizes : tuple of int
        The sizes of ``sh_maps`` and ``rhs``.
    """
    rows = b - 1
    size = rows * p
    maps_size = 2 * p * p
    maps_at = p * p

    @cuda.jit(device=True)
    def update(sums, coef, maps, reg, relaxation, t, threads, sh_maps, rhs, centre):
        for q in range(t, maps_size, threads):
            sh_maps[q] = maps[q]
        for q in range(t, size, threads):
            ridge = reg if q % p else 0.0
            rhs[q] = sums[p + q] - ridge * coef[p + q]
        cuda.syncthreads()
        for a in range(t, p, threads):
            total = 0.0
            for j in range(rows):
                total += rhs[j * p + a]
            centre[a] = total / rows
        cuda.syncthreads()
        for q in range(t, size, threads):
            j = q // p
            a = q - j * p
            spread = 0.0
            mean = 0.0
            for c in range(p):
                spread += (rhs[j * p + c] - centre[c]) * sh_maps[c * p + a]
                mean += centre[c] * sh_maps[maps_at + c * p + a]
            coef[p + q] += relaxation * (spread + mean)

    return update, (maps_size, size)


def _bohning_sums_kernel(b, p):
    """The root's chunk sums and Boehning update of one shape, compiled at its first use."""
    key = ("sums", b, p, _SUM_COLS, _SUM_LANES)
    if key not in _BOHNING_KERNELS:
        _BOHNING_KERNELS[key] = _build_bohning_sums_kernel(*key[1:])
    return _BOHNING_KERNELS[key]


def _build_bohning_sums_kernel(b, p, cols, lanes):
    """Compile the chunk sums of a gate pass and then, in the last block, its Boehning update.

    Each block adds its outputs' chunks (:func:`_chunk_sums_function`) and
    takes a ticket; the block that takes the last one, when every sum is
    written, moves the coefficients (:func:`_bohning_update_function`) and
    resets the ticket counter for the next launch. The same numbers as the
    chunk sums and then the update kernel, with one launch fewer a step.
    """
    add_columns = _chunk_sums_function(cols, lanes)
    update, (maps_size, size) = _bohning_update_function(b, p)
    threads = cols * lanes

    @cuda.jit
    def kernel(partial, sums, coef, maps, reg, relaxation, counter):
        lane_sums = cuda.shared.array((lanes, cols), dtype=float64)
        sh_maps = cuda.shared.array(maps_size, dtype=float64)
        rhs = cuda.shared.array(size, dtype=float64)
        centre = cuda.shared.array(p, dtype=float64)
        last = cuda.shared.array(1, dtype=int32)
        add_columns(partial, sums, lane_sums)
        t = cuda.threadIdx.y * cols + cuda.threadIdx.x
        cuda.syncthreads()
        if t == 0:
            last[0] = cuda.atomic.add(counter, 0, 1) == cuda.gridDim.x - 1
        cuda.syncthreads()
        if last[0]:
            update(sums, coef, maps, reg, relaxation, t, threads, sh_maps, rhs, centre)
            if t == 0:
                counter[0] = 0

    return kernel


def _tickets():
    """The ticket counter of :func:`_build_bohning_sums_kernel` (zero between launches)."""
    if "tickets" not in _SCRATCH:
        _SCRATCH["tickets"] = cuda.to_device(np.zeros(1, dtype=np.int32))
    return _SCRATCH["tickets"]


def root_bohning_steps(X, coef, w, targets, log_proba, maps, reg, n_steps, relaxation,
                       meanwhile=None, gradient=None):
    """Boehning steps on the root gate with its fixed bound, all on the device.

    The numbers of the CPU backend's ``root_bohning_steps`` (see there). The
    coefficients go to the device once; each step is the softmax pass, then
    its chunk sums, whose last block updates the coefficients in place (a step
    from a given ``gradient``: the update alone), queued back to back on the
    main line with no copy and no wait between steps. The
    host calls ``meanwhile`` once every step is queued, then waits for the
    coefficients. The maps and the right-hand side live in one block's shared
    memory: where they do not fit (``2 p^2 + b p`` doubles above
    ``_SHARED_DOUBLES``, p above about 50), the steps go through the host as
    the CPU backend takes them.
    """
    X, w = _dev(X), _dev(w)
    n, p = X.shape
    _, b, _ = coef.shape
    if not n or 2 * p * p + b * p > _SHARED_DOUBLES:
        if gradient is not None and _on_device(gradient):
            gradient = _small_to_host(gradient)
        if not n:
            return _cpu.root_bohning_steps(np.zeros((0, p)), coef, np.zeros(0),
                                           np.zeros((0, b)), None, maps, reg, n_steps,
                                           relaxation, meanwhile, gradient)
        return _bohning.steps_on_host(softmax_gradient, softmax_stats, X, coef, w, targets,
                                      log_proba, maps, reg, n_steps, relaxation, meanwhile,
                                      gradient)
    d_coef, d_maps = _params("bohning", coef.reshape(b * p),
                             np.concatenate([m.reshape(p * p) for m in maps]))
    d_targets = _dev(targets)
    sums = _scratch("bohning_sums", (b * p + 1,))
    update = _bohning_update_kernel(b, p)
    first = _empty(2) if log_proba is None else _dev(log_proba)
    for step in range(n_steps):
        if step == 0 and gradient is not None:
            # The E-step's pass gave the first gradient (its sums, child-major).
            _launch(update, 1, _threads(), _flat(_dev(gradient)), d_coef, d_maps, float(reg),
                    float(relaxation))
            continue
        partial = _softmax_partials(X, (1, b), d_coef, first if step == 0 else _empty(2), w,
                                    _empty(2), d_targets, _empty(1, np.int64), True, _empty(2))
        _launch(_bohning_sums_kernel(b, p), -(-partial.shape[1] // _SUM_COLS),
                (_SUM_COLS, _SUM_LANES), partial, sums, d_coef, d_maps, float(reg),
                float(relaxation), _tickets())
    if meanwhile is not None:
        meanwhile()
    return _small_to_host(d_coef).reshape(coef.shape)


def softmax_stats(X, coef, w, mass, targets, y_idx, curvature):
    """Objective, gradient and curvature of a set of weighted softmax regressions.

    Node v has children j; its soft counts are ``targets[:, v*b + j]`` or, for
    multinomial experts, ``mass[:, v]`` placed on the class ``y_idx``.

    Parameters
    ----------
    X : array of shape (n_samples, n_coefs)
    coef : ndarray of shape (n_nodes, n_children, n_coefs)
    w : array of shape (n_samples,)
    mass : array of shape (n_samples, n_nodes) or None
        Posterior mass reaching each node; None means 1 (the root).
    targets : array of shape (n_samples, n_nodes * n_children) or None
    y_idx : array of shape (n_samples,) or None
        Used when ``targets`` is None.
    curvature : {None, "gradient", "bohning", "newton"}
        None: objective only; "gradient": objective and gradient.

    Returns
    -------
    objective : ndarray of shape (n_nodes,)
    grad : ndarray of shape (n_nodes, n_children, n_coefs) or None
    curv : ndarray or None
        "bohning": (n_nodes, n_coefs, n_coefs), ``sum_i w_i s_iv x_i x_i^T``;
        "newton": (n_nodes, b*n_coefs, b*n_coefs), the Fisher information.
    """
    return start_softmax_stats(X, coef, w, mass, targets, y_idx, curvature)()


def start_softmax_stats(X, coef, w, mass, targets, y_idx, curvature):
    """Launch :func:`softmax_stats`'s pass over the data; returns the function that ends it.

    The caller may work on the host while the GPU takes the pass; ``finish()``
    waits for it (and computes the curvature, where one is asked) and returns
    what :func:`softmax_stats` returns.
    """
    X, w = _dev(X), _dev(w)
    n, p = X.shape
    n_nodes, b, _ = coef.shape
    m = n_nodes * b
    want_grad = curvature is not None
    newton = curvature == "newton"
    d_mass = _empty(2) if mass is None else _dev(mass)
    d_targets = _empty(2) if targets is None else _dev(targets)
    d_y = _empty(1, np.int64) if y_idx is None else _dev(y_idx, np.int64)
    proba = cuda.device_array((n, m)) if newton else _empty(2)
    sums = _start_softmax_sums(X, coef, _empty(2), w, d_mass, d_targets, d_y, want_grad, proba)

    def finish():
        grad, objective = sums()
        if not want_grad:
            return objective, None, None
        if curvature == "gradient":
            return objective, grad, None
        if curvature == "bohning":
            if mass is None:
                return objective, grad, _gram(X, as_column(w))[[0] * n_nodes]
            return objective, grad, _gram(X, d_mass, w=w)
        n_pair = b * (b + 1) // 2
        pairs = cuda.device_array((n, n_nodes * n_pair))
        if n:
            _launch(_newton_pairs_kernel, _blocks(n), _threads(), proba, w, d_mass, b, pairs)
        blocks = _gram(X, pairs)
        curv = np.empty((n_nodes, b * p, b * p))
        for v in range(n_nodes):
            col = v * n_pair
            for j in range(b):
                for k in range(j, b):
                    block = blocks[col]
                    curv[v, j * p:(j + 1) * p, k * p:(k + 1) * p] = block
                    curv[v, k * p:(k + 1) * p, j * p:(j + 1) * p] = block
                    col += 1
        return objective, grad, curv

    return finish
