"""GradVac: gradient vaccine, aligning each task pair to an adaptive target cosine.

Reference:
    Wang, Z., Tsvetkov, Y., Firat, O., Cao, Y. "Gradient Vaccine: Investigating and Improving
    Multi-task Optimization in Massively Multilingual Models." ICLR 2021. arXiv:2010.05874.
    Alg. 2.

PCGrad only acts on a negative cosine; GradVac keeps, for every ordered task pair, an EMA
target ``phi^_ij`` of the cosines it has seen and lifts any lower cosine up to it. For every
task ``i``, visiting the other tasks ``j`` in a random order, with ``phi_ij`` the cosine of the
running ``g'_i`` and the original ``g_j``::

    if phi_ij < phi^_ij:
        g'_i <- g'_i + ||g'_i|| (phi^_ij sqrt(1 - phi_ij^2) - phi_ij sqrt(1 - phi^_ij^2))
                        / (||g_j|| sqrt(1 - phi^_ij^2))  g_j

after which ``cos(g'_i, g_j) = phi^_ij`` exactly. Then ``phi^_ij <- (1 - beta) phi^_ij +
beta phi_ij`` for every visited pair (applied steps only: `after_apply`), and the update is
the **sum** ``sum_i g'_i`` (as PCGrad). Targets start at 0, so early on GradVac is PCGrad.

Hyperparameters (paper): beta = 0.01 (also the GradCraft authors' setting); seed = 0 for the
per-step random order (stateless, keyed by ``(seed, step)`` as in PCGrad).

Variable groups: ``shared`` (experts, gates, PPNet, bottom), as ONE flattened vector; the paper
also reports a per-layer variant (a target per parameter block), not offered here. Towers and
embeddings get the plain summed-loss gradient.
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import (GradientStrategy, count_conflicting_pairs, split_by_groups,
                                   stack_task_gradients)
from drgrad.model.strategies.pcgrad import random_task_orders, task_gradients_and_orders

_TINY = 1e-20


def gradvac_project(grads, targets, orders=None):
    """Alg. 2's inner loop for every task.

    Args:
        grads: ``[K, d]`` (static K).
        targets: ``[K, K]`` target cosines ``phi^`` (row i: task i's targets), each in (-1, 1).
        orders: optional int ``[K, K]`` visiting orders (default ``0 .. K-1``; ``i`` skipped).

    Returns:
        ``([K, d] the vaccinated gradients, [K, K] the cosines phi_ij seen, 0 on the diagonal)``.
    """
    grads, k, orders = task_gradients_and_orders(grads, orders)
    targets = tf.cast(targets, grads.dtype)
    norms = tf.norm(grads, axis=1)
    projected, cosines = [], []
    for i in range(k):
        g = grads[i]
        seen = tf.zeros([k], grads.dtype)
        for p in range(k):
            j = orders[i, p]
            g_j = tf.gather(grads, j)
            norm_j = tf.gather(norms, j)
            norm = tf.norm(g)
            phi = tf.reduce_sum(g * g_j) / tf.maximum(norm * norm_j, _TINY)
            target = tf.gather(targets[i], j)
            other = tf.not_equal(j, i)
            lift = norm * (target * tf.sqrt(tf.maximum(1.0 - phi * phi, 0.0))
                           - phi * tf.sqrt(1.0 - target * target)) / tf.maximum(
                               norm_j * tf.sqrt(1.0 - target * target), _TINY)
            g = g + tf.where(tf.logical_and(other, phi < target), lift, 0.0) * g_j
            seen += tf.where(other, phi, 0.0) * tf.one_hot(j, k, dtype=grads.dtype)
        projected.append(g)
        cosines.append(seen)
    return tf.stack(projected), tf.stack(cosines)


def update_targets(targets, cosines, beta):
    """``(1 - beta) phi^ + beta phi`` off the diagonal (the diagonal stays 0)."""
    k = targets.shape[0]
    off_diagonal = 1.0 - tf.eye(k, dtype=targets.dtype)
    return off_diagonal * ((1.0 - beta) * targets + beta * cosines)


@register("gradvac")
class GradVac(GradientStrategy):
    """GradVac (Wang et al., ICLR 2021) on the backbone's shared dense groups.

    Args:
        beta: EMA rate of the target cosines, in (0, 1].
        seed: seed of the per-step random task order.
        name: module name.
    """

    groups = ("shared",)
    needs_task_gradients = True

    def __init__(self, beta=0.01, seed=0, name=None):
        if not 0.0 < float(beta) <= 1.0:
            raise ValueError(f"beta must be in (0, 1], got {beta}")
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        super().__init__(name=name)
        self.beta = float(beta)
        self.seed = seed
        self._targets = None
        self._cosines = None

    def build(self, model):
        k = len(model.task_names)
        self._targets = self.add_state("target_cosines", shape=(k, k))
        self._cosines = self.add_state("step_cosines", shape=(k, k))  # this step's phi_ij
        super().build(model)

    def stat_names(self, tasks):
        return ("conflicting_pairs", "mean_target_cosine")

    def combine(self, inputs):
        groups = tuple(inputs.variables)
        grads = stack_task_gradients(inputs, groups)
        k = grads.shape[0]
        orders = random_task_orders(k, self.seed, inputs.step)
        projected, cosines = gradvac_project(grads, self._targets, orders)
        self._cosines.assign(cosines)  # committed to the targets by after_apply
        pairs = max(k * (k - 1), 1)
        return split_by_groups(tf.reduce_sum(projected, axis=0), inputs, groups), {
                "conflicting_pairs": count_conflicting_pairs(grads),
                "mean_target_cosine": tf.reduce_sum(self._targets) / pairs}

    def after_apply(self, inputs, grads):
        del inputs, grads
        self._targets.assign(update_targets(self._targets, self._cosines, self.beta))

    def get_config(self):
        return {"beta": self.beta, "seed": self.seed}
