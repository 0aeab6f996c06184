"""
==========================================================
Choosing the number of experts with a Pipeline and a grid
==========================================================

:class:`~skmoe.MixtureOfExpertsRegressor` is a scikit-learn regressor, so it
goes into a :class:`~sklearn.pipeline.Pipeline` and a
:class:`~sklearn.model_selection.GridSearchCV` like any other. Here the data
are **piecewise linear**: the input space is cut by oblique hyperplanes into
regimes, and ``y`` is a different linear function of ``x`` in each. A mixture of
linear experts with a softmax gate is the right model for such data; a
regression tree has to approximate each oblique boundary and each slope with
many axis-aligned steps.

The grid search scores each ``n_experts`` by cross-validated R^2 (the
estimator's ``score``) and keeps the smallest one whose score is within one
standard error of the best; we compare the result with a tuned
:class:`~sklearn.tree.DecisionTreeRegressor` on a held-out test set.
"""

# %%
# Piecewise-linear data
# ---------------------
# ``X ~ U[-1, 1]^3``; the regime of ``x`` is the argmax of three random linear
# scores; in regime ``k``, ``y = a_k + b_k . x + 0.3 e``. The best possible
# test MSE (the Bayes error) is the noise variance, 0.09.
from time import perf_counter

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsRegressor

rng = np.random.RandomState(0)
n_samples, n_features, n_regimes, noise = 2000, 3, 3, 0.3
X = rng.uniform(-1, 1, size=(n_samples, n_features))
scores = X @ rng.normal(size=(n_features, n_regimes)) + 0.3 * rng.normal(size=n_regimes)
regime = np.argmax(scores, axis=1)
intercepts = rng.uniform(-2, 2, size=n_regimes)
slopes = rng.normal(scale=2.0, size=(n_regimes, n_features))
y = intercepts[regime] + np.einsum("ij,ij->i", X, slopes[regime])
y += noise * rng.normal(size=n_samples)

X_train, X_test, y_train, y_test, regime_train, regime_test = train_test_split(
    X, y, regime, test_size=0.25, random_state=0
)
print("share of each regime:", np.round(np.bincount(regime) / n_samples, 2))

# %%
# Grid searches
# -------------
# The scaler is not needed by skmoe (it standardises internally) but shows that
# the estimator composes; the gate and the experts both see the scaled inputs.
#
# Beyond the true number of regimes, extra experts only split a regime in two
# and the score stays flat, so the plain argmax would pick a needlessly large
# model by a margin far below the noise of cross-validation. A callable
# ``refit`` keeps the simplest model within one standard error of the best.


def simplest_within_one_std(cv_results):
    """Index of the fewest experts whose mean score is within one std of the best."""
    mean, std = cv_results["mean_test_score"], cv_results["std_test_score"]
    best = np.argmax(mean)
    candidates = np.flatnonzero(mean >= mean[best] - std[best])
    n_experts = np.asarray(cv_results["param_moe__n_experts"], dtype=int)
    return candidates[np.argmin(n_experts[candidates])]


moe_search = GridSearchCV(
    Pipeline([
        ("scale", StandardScaler()),
        ("moe", MixtureOfExpertsRegressor(random_state=0)),
    ]),
    param_grid={"moe__n_experts": [1, 2, 3, 4, 5]},
    cv=3,
    refit=simplest_within_one_std,
)
tree_search = GridSearchCV(
    DecisionTreeRegressor(random_state=0),
    param_grid={"max_depth": [4, 6, 8, 10, 12], "min_samples_leaf": [1, 5, 20]},
    cv=3,
)

results = {}
for name, search in [("mixture of experts", moe_search), ("decision tree", tree_search)]:
    start = perf_counter()
    search.fit(X_train, y_train)
    seconds = perf_counter() - start
    mse = np.mean((search.predict(X_test) - y_test) ** 2)
    results[name] = (search, mse, seconds)

# %%
# Results
# -------
print(f"{'model':<20}{'best parameters':<42}{'CV R^2':>8}{'test MSE':>10}"
      f"{'test R^2':>10}{'search s':>10}")
for name, (search, mse, seconds) in results.items():
    params = ", ".join(f"{k.split('__')[-1]}={v}" for k, v in search.best_params_.items())
    cv_score = search.cv_results_["mean_test_score"][search.best_index_]
    print(f"{name:<20}{params:<42}{cv_score:>8.3f}{mse:>10.3f}"
          f"{search.score(X_test, y_test):>10.3f}{seconds:>10.1f}")
print(f"{'Bayes (noise only)':<20}{'':<42}{'':>8}{noise**2:>10.3f}")

# %%
# Cross-validated R^2 against the number of experts: it rises until the number
# of regimes, 3, and stays flat after it. The chosen model's experts are the
# regimes' linear functions; its gate has learnt the oblique boundaries.
cv = results["mixture of experts"][0].cv_results_
n_experts = np.asarray(cv["param_moe__n_experts"], dtype=int)
fig, ax = plt.subplots(figsize=(5.5, 3.8))
ax.errorbar(n_experts, cv["mean_test_score"], yerr=cv["std_test_score"], marker="o",
            capsize=3)
ax.axvline(n_regimes, color="0.6", ls=":", label="true number of regimes")
ax.set(xlabel="n_experts", ylabel="cross-validated $R^2$", xticks=n_experts,
       title="Grid search over the number of experts")
ax.legend(loc="lower right")
fig.tight_layout()
plt.show()

# %%
# What the chosen model learnt
# ----------------------------
# Route each test point to the expert with the highest gate probability and
# compare with the true regime: the gate has learnt the oblique boundaries. The
# experts' slopes, mapped back to the units of ``x`` (divided by the scaler's
# ``scale_``), are the regimes' slopes.
pipe = results["mixture of experts"][0].best_estimator_
scaler, moe = pipe[0], pipe[-1]
routed = np.argmax(moe.predict_gate(scaler.transform(X_test)), axis=1)
# Experts come out in an arbitrary order: name each after the regime it serves most.
expert_regime = np.array([np.bincount(regime_test[routed == k], minlength=n_regimes).argmax()
                          for k in range(moe.n_experts)])
agreement = np.mean(expert_regime[routed] == regime_test)
print(f"test points routed to their own regime's expert: {100 * agreement:.1f} %")
order = np.argsort(expert_regime)
print("true slopes, one row per regime:")
print(np.round(slopes, 2))
print("expert slopes in the units of x, same order:")
print(np.round(moe.expert_coef_[order] / scaler.scale_, 2))
