"""The kernel interface: one set of names for every backend.

``get_backend("cpu")`` returns :mod:`skmoe._kernels.cpu`. Backends are imported
on first use, so nothing else in skmoe pays for a backend it does not use.
"""

import importlib

_BACKENDS = {"cpu": "skmoe._kernels.cpu"}


def get_backend(name):
    """Return the kernel module of backend ``name``.

    Parameters
    ----------
    name : {"cpu"}

    Returns
    -------
    module
        A module with the functions ``affine_log_softmax``, ``gaussian_log_prob``,
        ``categorical_log_prob``, ``posterior``, ``weighted_grams``, ``wls_stats``,
        ``softmax_stats``, ``mix`` and ``mix_categorical``.
    """
    try:
        module = _BACKENDS[name]
    except KeyError:
        raise ValueError(
            f"Unknown backend {name!r}; expected one of {sorted(_BACKENDS)}."
        ) from None
    return importlib.import_module(module)
