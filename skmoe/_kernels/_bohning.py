"""The root gate's Boehning steps taken from the host, on any backend's statistics."""

import numpy as np


def steps_on_host(softmax_gradient, softmax_stats, X, coef, w, targets, log_proba, maps, reg,
                  n_steps, relaxation, meanwhile, gradient=None):
    """``root_bohning_steps`` from a backend's ``softmax_gradient`` and ``softmax_stats``.

    Each step brings the gradient to the host and moves the slopes' rows
    1..b-1 by ``relaxation * ((r - mean(r)) M1^-1 + mean(r) M2^-1)``, with
    ``r = g - reg * V`` (no ridge on the intercept). The arguments are those
    of ``root_bohning_steps``.
    """
    spread, mean = maps
    ridge = np.full(coef.shape[2], float(reg))
    ridge[0] = 0.0
    for step in range(n_steps):
        if step == 0 and gradient is not None:
            grad = gradient
        elif step == 0 and log_proba is not None:
            grad = softmax_gradient(X, log_proba, w, targets)
        else:
            _, grad, _ = softmax_stats(X, coef, w, None, targets, None, "gradient")
        rhs = grad[0, 1:] - ridge * coef[0, 1:]
        centre = rhs.mean(axis=0)
        coef = coef.copy()
        coef[0, 1:] += relaxation * ((rhs - centre) @ spread + centre @ mean)
    if meanwhile is not None:
        meanwhile()
    return coef
