"""
=====================================================================
Mixtures of experts against a tuned tree and stacking
=====================================================================

When the data come from a few regimes, each with its own linear relation, a
mixture of experts fits one linear model per regime and learns where each
regime applies. This example compares, by 5-fold cross-validation on the same
folds:

* :class:`~skmoe.MixtureOfExpertsRegressor` with 4 experts;
* :class:`~skmoe.HierarchicalMixtureOfExpertsRegressor`, a binary tree of
  gates of depth 3 (8 experts) started from a CART tree;
* a :class:`~sklearn.tree.DecisionTreeRegressor` whose depth and leaf size are
  tuned by an inner grid search (CART);
* a :class:`~sklearn.ensemble.StackingRegressor` of the tuned tree, a random
  forest and a nearest-neighbours regressor under a ridge regression;
* a plain linear regression, as the floor.

The same comparison, on a built-in data set or on your own CSV file, is one
command: ``python -m skmoe compare``.
"""

# %%
# Data: oblique regimes with a linear function in each
# -----------------------------------------------------
# :func:`~skmoe.datasets.make_piecewise_linear` cuts the cube ``[-1, 1]^5``
# into 4 regimes by the argmax of 4 random linear scores; within each regime
# ``y`` is linear in ``x`` plus Gaussian noise of standard deviation 0.5. The
# boundaries are oblique, which axis-aligned trees can only approximate by
# steps. The best possible relative error (MSE over the variance of ``y``) is
# the noise variance over ``Var(y)``, about 0.017.
from time import perf_counter

import matplotlib.pyplot as plt
import numpy as np
from sklearn.ensemble import RandomForestRegressor, StackingRegressor
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from skmoe import HierarchicalMixtureOfExpertsRegressor, MixtureOfExpertsRegressor
from skmoe.datasets import make_piecewise_linear

X, y = make_piecewise_linear(n_samples=1500, noise=0.5, random_state=0)
bayes = 0.5**2 / np.var(y)
print(f"X: {X.shape}, Var(y) = {np.var(y):.2f}, Bayes relative error = {bayes:.3f}")

# %%
# The contenders
# --------------
# The tree is tuned by a 3-fold grid search inside each training fold; the
# stack refits that search, a 30-tree forest and a scaled 10-nearest-neighbours
# regressor on 3 folds of each training fold and combines their
# out-of-fold predictions with :class:`~sklearn.linear_model.RidgeCV`. The
# mixtures are used with their defaults apart from the number of experts (see
# :ref:`sphx_glr_auto_examples_plot_pipeline_gridsearch.py` to choose it by
# cross-validation), with one EM start each.


def tuned_tree():
    """CART with depth and leaf size chosen by a 3-fold grid search."""
    grid = {"max_depth": [4, 6, 8, 10, None], "min_samples_leaf": [1, 5, 20]}
    return GridSearchCV(DecisionTreeRegressor(random_state=0), grid, cv=3)


models = {
    "MoE, 4 experts": MixtureOfExpertsRegressor(n_experts=4, random_state=0),
    "HME (2, 2, 2), CART start": HierarchicalMixtureOfExpertsRegressor(
        branching=(2, 2, 2), init_params="tree", random_state=0
    ),
    "CART (tuned)": tuned_tree(),
    "stacking": StackingRegressor(
        estimators=[
            ("tree", tuned_tree()),
            ("forest", RandomForestRegressor(n_estimators=30, random_state=0)),
            ("knn", make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=10))),
        ],
        final_estimator=RidgeCV(),
        cv=3,
    ),
    "linear regression": LinearRegression(),
}

# %%
# Cross-validation
# ----------------
# The score is the relative error on the held-out fold, MSE / Var(y); the same
# shuffled folds serve every model. ``cross_validate`` also records the time
# to fit and to predict.


def relative_error(estimator, X_test, y_test):
    """Held-out MSE divided by the variance of the held-out targets."""
    return np.mean((estimator.predict(X_test) - y_test) ** 2) / np.var(y_test)


folds = KFold(n_splits=5, shuffle=True, random_state=0)
results = {}
start = perf_counter()
for name, model in models.items():
    results[name] = cross_validate(model, X, y, cv=folds, scoring=relative_error)
print(f"cross-validation of {len(models)} models: {perf_counter() - start:.1f} s")

print(f"\n{'model':<26}{'relative error':>18}{'fit s / fold':>14}{'predict ms':>12}")
for name, cv in results.items():
    err = cv["test_score"]
    print(f"{name:<26}{err.mean():>10.3f} +- {err.std():.3f}"
          f"{cv['fit_time'].mean():>14.2f}{1e3 * cv['score_time'].mean():>12.1f}")
print(f"{'Bayes (noise only)':<26}{bayes:>10.3f}")

# %%
# The flat mixture comes close to the Bayes error: four linear experts under
# one softmax gate are the model that generated these data (the fold where it
# errs more is a poorer local maximum of EM; more starts, ``n_init``, guard
# against that). The HME's gates split the input space into nested halves, and
# four cones that meet at one point are not nested halves, so it needs eight
# leaves to approximate them and lands between the flat mixture and the stack.
# The tuned tree needs many leaves to follow the oblique boundaries and the
# slopes within each regime and errs far more; stacking it with a forest and
# nearest neighbours halves its error, at a higher cost to fit and to predict.
#
# On data without such regimes the ranking can change: on the benchmark data
# sets of :doc:`/benchmarks` stacking wins on one of three.
names = list(results)
errors = [results[name]["test_score"] for name in names]
fit_times = [results[name]["fit_time"] for name in names]
positions = np.arange(len(names))

fig, (ax_err, ax_time) = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
ax_err.barh(positions, [e.mean() for e in errors], color="C0", alpha=0.4)
for pos, e in zip(positions, errors):
    ax_err.plot(e, np.full(e.size, pos), "o", color="C0", ms=4)
ax_err.axvline(bayes, color="k", ls=":", label="Bayes error")
ax_err.set_xscale("log")
ax_err.set(yticks=positions, yticklabels=names,
           xlabel="held-out relative error (MSE / Var(y)), log scale",
           title="Error, 5 folds (dots) and mean (bar)")
ax_err.invert_yaxis()
ax_err.legend(loc="upper right")

ax_time.barh(positions, [t.mean() for t in fit_times], color="C1", alpha=0.4)
for pos, t in zip(positions, fit_times):
    ax_time.plot(t, np.full(t.size, pos), "o", color="C1", ms=4)
ax_time.set_xscale("log")
ax_time.set(xlabel="fit time per fold (s), log scale", title="Fit time")
fig.tight_layout()
plt.show()

# %%
# What the mixture learnt
# -----------------------
# Unlike the stack, the mixture of experts is a readable model: each expert is
# a linear regression, and :meth:`~skmoe.MixtureOfExpertsRegressor.predict_gate`
# says which of them applies where. Fitted on all the data, its experts'
# noise variances are close to the true 0.25, and almost every sample is
# routed with a gate probability above 0.9.
moe = MixtureOfExpertsRegressor(n_experts=4, random_state=0).fit(X, y)
gate = moe.predict_gate(X)
print("expert noise variances:", np.round(moe.expert_variance_, 3))
print("share of samples per expert:", np.round(np.bincount(gate.argmax(axis=1)) / len(y), 2))
print(f"samples with a gate probability above 0.9: {np.mean(gate.max(axis=1) > 0.9):.1%}")
