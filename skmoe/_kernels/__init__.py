"""The kernel interface: one set of names for every backend.

``get_backend("cpu")`` returns :mod:`skmoe._kernels.cpu`, ``get_backend("cuda")``
:mod:`skmoe._kernels.cuda`. Backends are imported on first use, so nothing else
in skmoe pays for (or needs) a backend it does not use: CUDA is imported only
when an estimator with ``backend="cuda"`` is fitted or used.
"""

import importlib

_BACKENDS = {"cpu": "skmoe._kernels.cpu", "cuda": "skmoe._kernels.cuda"}


def get_backend(name):
    """Return the kernel module of backend ``name``.

    Parameters
    ----------
    name : {"cpu", "cuda"}

    Returns
    -------
    module
        A module with the functions ``affine_log_softmax``, ``gaussian_log_prob``,
        ``categorical_log_prob``, ``posterior``, ``weighted_grams``, ``wls_stats``,
        ``softmax_stats``, ``root_bohning_steps``, ``mix`` and ``mix_categorical``,
        and the array plumbing
        of the EM layer (``to_device``, ``to_host``, ``empty``, ``exp``,
        ``as_column``, ``total``, ``leaf_log_prior``, ``level_targets``,
        ``random_responsibilities``, ``hard_responsibilities``), and a fit's
        preparation where the data are (``all_finite``, ``weighted_scaling``,
        ``standardised_design``).

    Raises
    ------
    ImportError
        For "cuda" when neither numba-cuda nor numba-cuda-mlir can be imported.
    RuntimeError
        For "cuda" when no usable GPU (driver and device) is found.
    """
    try:
        module = _BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"Unknown backend {name!r}; expected one of {sorted(_BACKENDS)}."
        ) from None
    backend = importlib.import_module(module)
    if name == "cuda":
        backend.check_available()
    return backend
