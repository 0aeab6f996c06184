"""
=====================================================
Prediction intervals from a mixture of experts
=====================================================

A mixture of experts predicts a whole conditional distribution,
``p(y | x) = sum_l g_l(x) N(y; mu_l(x), sigma_l^2)``, not only its mean. From
it we get the predictive standard deviation (``predict(X, return_std=True)``),
quantiles and central intervals of the mixture CDF (``predict_quantiles``,
``predict_interval``), draws from ``p(y | x)`` (``sample``) and the log
predictive density of observed targets (``score_samples``).

The data switch between two regimes whose noise differs by a factor of four:
a quiet linear one on the right and a noisy quadratic one on the left. We
compare the mixture's 90 % intervals and its negative log predictive density
(NLPD) with those of CART and a stacking ensemble, each given a Gaussian around
its prediction with a constant variance estimated from cross-validated
residuals.
"""

# %%
# Data
# ----
# :func:`skmoe.datasets.make_heteroscedastic_regression`: three inputs, of which
# only ``x1`` matters. With probability ``sigmoid(3 x1)`` a sample follows
# ``y = 1 + 2 x1 + 0.2 e``, otherwise ``y = -x1^2 + 0.8 e``.
import matplotlib.pyplot as plt
import numpy as np
from scipy import stats
from sklearn.ensemble import RandomForestRegressor, StackingRegressor
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict
from sklearn.neighbors import KNeighborsRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from skmoe import MixtureOfExpertsRegressor
from skmoe.datasets import make_heteroscedastic_regression

X, y = make_heteroscedastic_regression(n_samples=3000, random_state=0)
X_test, y_test, truth = make_heteroscedastic_regression(
    n_samples=10000, random_state=1, return_truth=True
)

# %%
# Fit the mixture of experts
# --------------------------
# Three linear experts: two share the curved, noisy regime.
moe = MixtureOfExpertsRegressor(n_experts=3, n_init=3, random_state=0).fit(X, y)
y_mean, y_std = moe.predict(X_test, return_std=True)
low, high = moe.predict_interval(X_test, coverage=0.9).T

# %%
# Baselines with a Gaussian noise model
# -------------------------------------
# CART and a stack (tree, random forest and k-nearest neighbours, combined by
# ridge regression; smaller than the one of ``python -m skmoe compare``, to
# keep this example fast). Neither has a predictive distribution; we give each
# ``N(prediction, s^2)`` with ``s^2`` the mean squared error of its 3-fold
# cross-validated predictions on the training data.
stack = StackingRegressor(
    estimators=[
        ("tree", DecisionTreeRegressor(min_samples_leaf=20, random_state=0)),
        ("forest", RandomForestRegressor(n_estimators=30, min_samples_leaf=10,
                                         random_state=0)),
        ("knn", make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=30))),
    ],
    final_estimator=RidgeCV(),
    cv=3,
)
baselines = {
    "CART (min_samples_leaf=20)": DecisionTreeRegressor(min_samples_leaf=20, random_state=0),
    "stacking (tree, forest, kNN)": stack,
}
z90 = stats.norm.ppf(0.95)
steep, flat = X_test[:, 0] > 1.0, X_test[:, 0] < -1.0


def coverage(lower, upper):
    """Share of the test targets inside the intervals: overall, x1 > 1, x1 < -1."""
    inside = (lower <= y_test) & (y_test <= upper)
    return inside.mean(), inside[steep].mean(), inside[flat].mean()


rows = [("mixture of experts (K=3)", -moe.score_samples(X_test, y_test).mean(),
         *coverage(low, high))]
sigmas = {}
for name, model in baselines.items():
    folds = KFold(3, shuffle=True, random_state=0)
    sigmas[name] = np.sqrt(np.mean((y - cross_val_predict(model, X, y, cv=folds)) ** 2))
    pred = model.fit(X, y).predict(X_test)
    nlpd = -stats.norm.logpdf(y_test, pred, sigmas[name]).mean()
    half_width = z90 * sigmas[name]
    rows.append((name, nlpd, *coverage(pred - half_width, pred + half_width)))

print(f"{'model':<30}{'NLPD':>7}{'90% coverage':>14}{'x1 > 1':>8}{'x1 < -1':>9}")
for name, nlpd, overall, right, left in rows:
    print(f"{name:<30}{nlpd:>7.3f}{overall:>14.3f}{right:>8.3f}{left:>9.3f}")
print(f"{'generating model (Bayes)':<30}{-truth['log_density'].mean():>7.3f}")

# %%
# Overall, every 90 % interval covers about 90 % of the test points. Only the
# mixture's also cover about 90 % where one regime rules: the constant-width
# Gaussian intervals are much too wide where the quiet regime does (x1 > 1),
# and too narrow elsewhere to make up for it. The NLPD says the same in one
# number: the mixture is a few hundredths of a nat from the generating model,
# the baselines about half a nat worse.

# %%
# Plot: mean, intervals and draws along x1
# ----------------------------------------
# The irrelevant inputs are held at 0. Draws from ``p(y | x)`` (``sample``)
# show the two regimes that the mean and the intervals summarise.
grid = np.zeros((300, 3))
grid[:, 0] = np.linspace(-2.5, 2.5, 300)
grid_mean, grid_std = moe.predict(grid, return_std=True)
bands = {c: moe.predict_interval(grid, coverage=c) for c in (0.5, 0.9)}
draw_x = np.repeat(grid[::6, 0], 20)
draws = moe.sample(grid[::6], n_samples=20, random_state=0).ravel()

fig, (ax, ax_width) = plt.subplots(1, 2, figsize=(12, 4.5),
                                   gridspec_kw={"width_ratios": [2, 1]})
ax.scatter(X[:, 0], y, s=4, color="0.75", label="training data")
ax.fill_between(grid[:, 0], *bands[0.9].T, color="tab:blue", alpha=0.2,
                label="90 % interval")
ax.fill_between(grid[:, 0], *bands[0.5].T, color="tab:blue", alpha=0.35,
                label="50 % interval")
ax.plot(grid[:, 0], grid_mean, color="tab:blue", lw=2, label="mixture mean")
ax.scatter(draw_x, draws, s=5, color="tab:red", label="draws from p(y | x)")
ax.set(xlabel="x1", ylabel="y", title="Mixture of experts: predictive distribution")
ax.legend(loc="upper left")

ax_width.plot(grid[:, 0], np.diff(bands[0.9], axis=1)[:, 0], color="tab:blue", lw=2,
              label="mixture of experts")
ax_width.axhline(2 * z90 * sigmas["CART (min_samples_leaf=20)"], color="tab:orange", lw=2,
                 ls="--", label="CART + constant Gaussian")
ax_width.plot(grid[:, 0], 2 * z90 * grid_std, color="tab:blue", lw=1, ls=":",
              label="mixture, +-1.645 std")
ax_width.set(xlabel="x1", ylabel="width of the 90 % interval", title="Interval width")
ax_width.legend(loc="lower left")
fig.tight_layout()
plt.show()
