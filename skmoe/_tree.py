"""Topology of a balanced gating tree: leaf priors and node targets.

Levels are numbered from the root (level 0). Level d has ``n_nodes[d]`` gates,
each with ``branching[d]`` children; leaves are numbered in mixed radix, so the
ancestor edge of leaf l at level d is ``l // stride[d]`` with
``stride[d] = prod(branching[d+1:])``. A flat mixture of experts is the tree
``branching=(K,)``: one gate, K leaves.
"""

import numpy as np

from ._kernels import cpu as _cpu


class GatingTree:
    """A balanced gating tree.

    Parameters
    ----------
    branching : tuple of int
        Children per gate at each level, root first.
    """

    def __init__(self, branching):
        self.branching = tuple(int(b) for b in branching)
        self.n_levels = len(self.branching)
        self.n_leaves = int(np.prod(self.branching))
        self.n_nodes = [int(np.prod(self.branching[:d])) for d in range(self.n_levels)]
        self.stride = [int(np.prod(self.branching[d + 1 :])) for d in range(self.n_levels)]

    def leaf_log_prior(self, level_log_gates, out, kernels=None):
        """Sum the log gate probabilities along each leaf's path.

        Parameters
        ----------
        level_log_gates : list of arrays of shape (n_samples, n_nodes[d] * branching[d])
        out : array of shape (n_samples, n_leaves)
            Modified in place.
        kernels : module, default=None
            The backend that holds the arrays; None for the CPU.
        """
        return (kernels or _cpu).leaf_log_prior(level_log_gates, out)

    def level_targets(self, resp, d, kernels=None):
        """Posterior targets of the gates of level d.

        Parameters
        ----------
        resp : array of shape (n_samples, n_leaves)
        d : int
        kernels : module, default=None
            The backend that holds ``resp``; None for the CPU.

        Returns
        -------
        targets : array of shape (n_samples, n_nodes[d] * branching[d])
            Responsibility summed over the leaves below each edge.
        mass : array of shape (n_samples, n_nodes[d]) or None
            Responsibility reaching each gate; None at the root, where it is 1.
        """
        return (kernels or _cpu).level_targets(resp, self.n_nodes[d], self.branching[d], d == 0)

    def n_gate_params(self, n_coefs, alive=None):
        """Free gate parameters (one reference child per gate).

        ``alive``: boolean mask of the leaves kept (None: all). A gate then
        counts only its children with a kept leaf below, less one reference.
        """
        if alive is None:
            return sum(nodes * (b - 1) * n_coefs
                       for nodes, b in zip(self.n_nodes, self.branching))
        total = 0
        for d, b in enumerate(self.branching):
            edges = alive.reshape(self.n_nodes[d] * b, self.stride[d]).any(axis=1)
            children = edges.reshape(self.n_nodes[d], b).sum(axis=1)
            total += int(np.maximum(children - 1, 0).sum()) * n_coefs
        return total
