"""
=====================================================
Mixture of regressions and mixture of experts in 1-D
=====================================================

Two regression lines cross. Each sample comes from one of them, and which one
is more likely depends on ``x``: the line with positive slope dominates on the
right. We fit two models with two Gaussian linear experts:

* a **mixture of linear regressions**, ``gate_features=[]``: the gate has an
  intercept only, so the mixing weights are the same everywhere (flexmix's
  ``y ~ x | 1``);
* a **mixture of experts** with a softmax gate on ``x``: the mixing weights
  change with ``x``.

Both recover the two lines; only the second also learns where each line
applies, which shows in a higher log-likelihood (and a lower BIC, despite one
more parameter) and in the gate probabilities plotted on the right.
"""

# %%
# Data
# ----
# ``P(line A | x) = sigmoid(2 x)``; line A is ``y = 1 + 1.5 x``, line B is
# ``y = -0.5 - x``, both with noise of standard deviation 0.4.
import matplotlib.pyplot as plt
import numpy as np

from skmoe import MixtureOfExpertsRegressor

rng = np.random.RandomState(0)
n_samples = 500
x = rng.uniform(-2.5, 2.5, size=n_samples)
p_a = 1.0 / (1.0 + np.exp(-2.0 * x))
is_a = rng.uniform(size=n_samples) < p_a
y = np.where(is_a, 1.0 + 1.5 * x, -0.5 - x) + 0.4 * rng.normal(size=n_samples)
X = x[:, None]

# %%
# Fit both models
# ---------------
# Several starts (``n_init=5``) guard against a poor local maximum, to which
# mixtures of regressions are prone when the lines cross.
mix_reg = MixtureOfExpertsRegressor(
    n_experts=2, gate_features=[], n_init=5, random_state=0
).fit(X, y)
moe = MixtureOfExpertsRegressor(n_experts=2, n_init=5, random_state=0).fit(X, y)

print(f"{'model':<28}{'log-likelihood':>16}{'parameters':>12}{'BIC':>10}")
for name, model in [("mixture of regressions", mix_reg), ("mixture of experts", moe)]:
    ll = model.log_likelihood(X, y)
    k = model.n_parameters()
    bic = -2.0 * ll + k * np.log(n_samples)
    print(f"{name:<28}{ll:>16.2f}{k:>12d}{bic:>10.1f}")

# %%
# The fitted lines
# ----------------
# ``expert_intercept_`` and ``expert_coef_`` are in the units of the data; the
# experts come out in an arbitrary order, so we sort them by slope.
for name, model in [("mixture of regressions", mix_reg), ("mixture of experts", moe)]:
    order = np.argsort(model.expert_coef_[:, 0])
    print(name)
    for k in order:
        print(
            f"  y = {model.expert_intercept_[k]:+.2f} {model.expert_coef_[k, 0]:+.2f} x,"
            f" noise sd {np.sqrt(model.expert_variance_[k]):.2f}"
        )

# %%
# Plot: data, expert lines and gate probabilities
# -----------------------------------------------
# Left: the data coloured by the mixture of experts' responsibility of the
# positive-slope expert, ``P(expert | x, y)``, with both models' lines. Right:
# the gate probability of that expert, ``P(expert | x)``, against the truth.
grid = np.linspace(-2.5, 2.5, 200)[:, None]
up_moe = int(np.argmax(moe.expert_coef_[:, 0]))
up_mix = int(np.argmax(mix_reg.expert_coef_[:, 0]))
resp = moe.predict_responsibilities(X, y)[:, up_moe]

fig, (ax_data, ax_gate) = plt.subplots(1, 2, figsize=(11, 4.2))
points = ax_data.scatter(x, y, c=resp, cmap="coolwarm", s=12, vmin=0, vmax=1)
fig.colorbar(points, ax=ax_data, label="responsibility of the rising expert")
for k in range(2):
    ax_data.plot(grid[:, 0], moe.predict_experts(grid)[:, k], color="k", lw=2,
                 label="mixture of experts" if k == 0 else None)
    ax_data.plot(grid[:, 0], mix_reg.predict_experts(grid)[:, k], color="tab:green",
                 lw=1.5, ls="--", label="mixture of regressions" if k == 0 else None)
ax_data.set(xlabel="x", ylabel="y", title="Data and expert lines")
ax_data.legend(loc="upper left")

ax_gate.plot(grid[:, 0], 1.0 / (1.0 + np.exp(-2.0 * grid[:, 0])), color="0.5", lw=4,
             alpha=0.6, label="truth: sigmoid(2x)")
ax_gate.plot(grid[:, 0], moe.predict_gate(grid)[:, up_moe], color="k", lw=2,
             label="mixture of experts")
ax_gate.plot(grid[:, 0], mix_reg.predict_gate(grid)[:, up_mix], color="tab:green",
             lw=1.5, ls="--", label="mixture of regressions")
ax_gate.set(xlabel="x", ylabel="P(rising expert | x)", ylim=(-0.02, 1.02),
            title="Gate probability")
ax_gate.legend(loc="upper left")
fig.tight_layout()
plt.show()
