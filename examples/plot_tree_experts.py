"""
=====================================================================
Trees as experts: a learned gate over CART models
=====================================================================

``expert_estimator`` makes each expert of a mixture a clone of any
scikit-learn estimator. Here the experts are decision trees: the softmax gate
draws an oblique boundary, which axis-aligned trees can only approximate by
steps, and each tree fits the step function inside its regime, which a linear
expert cannot. ``gate_features`` and ``expert_features`` give each part its
inputs: the gate sees where a sample is (``x0, x1``), the experts what it
measures (``x2``). This example compares, by 5-fold cross-validation on the
same folds:

* :class:`~skmoe.MixtureOfExpertsRegressor` with two linear experts;
* the same mixture with two :class:`~sklearn.tree.DecisionTreeRegressor`
  experts of depth 3 (the best of 4 starts: EM with trees as experts has
  poor local optima more often than with lines);
* a single tree whose depth and leaf size are tuned by an inner grid search
  (CART);
* a :class:`~sklearn.ensemble.StackingRegressor` of the tuned tree and a
  linear model under a ridge regression: stacking with constant weights,
  where the mixture's weights depend on ``x``.
"""

# %%
# Data: two regimes split by an oblique line, a step function inside each
# -----------------------------------------------------------------------
# ``x`` is uniform on ``[-2, 2]^3``. Where ``x0 + x1 > 0`` the target is 2
# for ``|x2| < 1`` and -2 elsewhere; on the other side the signs swap; plus
# noise of standard deviation 0.1.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.ensemble import StackingRegressor
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsRegressor

rng = np.random.RandomState(0)
X = rng.uniform(-2, 2, size=(1500, 3))
step = np.where(np.abs(X[:, 2]) < 1, 2.0, -2.0)
y = np.where(X[:, 0] + X[:, 1] > 0, step, -step) + 0.1 * rng.normal(size=len(X))

# %%
# The contenders
# --------------
cart = GridSearchCV(DecisionTreeRegressor(random_state=0),
                    {"max_depth": [4, 6, 8, 10], "min_samples_leaf": [1, 5, 20]}, cv=3)
models = {
    "MoE, linear experts": MixtureOfExpertsRegressor(
        n_experts=2, gate_features=[0, 1], expert_features=[2], random_state=0),
    "MoE, tree experts": MixtureOfExpertsRegressor(
        n_experts=2, gate_features=[0, 1], expert_features=[2], n_init=4, tol=1e-3,
        random_state=0, expert_estimator=DecisionTreeRegressor(max_depth=3)),
    "CART (tuned)": cart,
    "stacking": StackingRegressor([("cart", cart), ("linear", LinearRegression())],
                                  final_estimator=RidgeCV()),
}

# %%
# Cross-validated error
# ---------------------
# The relative error is the mean squared error over the variance of ``y``;
# the noise alone gives about 0.0025.
folds = KFold(5, shuffle=True, random_state=0)
errors = {}
for name, model in models.items():
    scores = cross_validate(model, X, y, cv=folds, scoring="neg_mean_squared_error")
    errors[name] = -scores["test_score"] / np.var(y)
    print(f"{name:22s} relative error {errors[name].mean():.3f} "
          f"(+- {errors[name].std():.3f})")

fig, ax = plt.subplots(figsize=(6, 3))
ax.barh(list(errors), [e.mean() for e in errors.values()],
        xerr=[e.std() for e in errors.values()], color="tab:blue")
ax.set_xscale("log")
ax.set_xlabel("relative test error (MSE / Var y), 5 folds")
ax.invert_yaxis()
fig.tight_layout()

# %%
# What the mixture learned
# ------------------------
# The gate's log-odds of one expert against the other change along
# ``x0 + x1`` (equal slopes on ``x0`` and ``x1``): the oblique boundary, found
# without any split. Each tree fits the step of one regime.
moe = models["MoE, tree experts"].fit(X, y)
print(moe.export_text(decimals=2))
