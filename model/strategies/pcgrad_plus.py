"""PCGrad+: GradCraft's magnitude alignment and positive target, with PCGrad's pairwise
projections (the "PCGrad+" column of the GradCraft paper).

Reference:
    Bai, Y., Zhang, Y., Feng, F., Lu, J., Zang, X., Lei, C., Song, Y. "GradCraft: Elevating
    Multi-task Recommendations through Holistic Gradient Crafting." KDD 2024. arXiv:2407.19682
    (the baseline; its released code ``solvers/pc_grad_magnitude_positive.py``). PCGrad: Yu et
    al., NeurIPS 2020 (`drgrad.model.strategies.pcgrad`).

What it isolates: GradCraft's two ingredients without its one-vs-all projection. One step, on
the per-task gradients ``g_1 .. g_K`` of the shared parameters:

1. Magnitude alignment, exactly GradCraft's (`gradcraft.align_magnitudes`, norms optionally
   EMA-smoothed with decay ``b``): ``g^_i = tau (max_j n_j / n_i) g_i + (1 - tau) g_i``.
2. One-vs-one projection to a positive target (PCGrad with ``eps``): every task ``i`` visits
   the other tasks ``j`` in a random order; whenever the running ``g~_i`` conflicts with
   ``g^_j``, it is moved along ``g^_j`` until their inner product is
   ``eps * ||g~_i|| * ||g^_j||`` (``||g~_i||`` taken before this projection, as in the code)::

       g~_i <- g~_i - ((<g~_i, g^_j> - eps ||g~_i|| ||g^_j||) / ||g^_j||^2) g^_j

   The released code writes the ``eps`` term as a scalar added to every coordinate (an
   operator-precedence slip; with its ``eps = 1e-10`` the difference is invisible); this is the
   intended projection, which with ``eps = 0`` is PCGrad's. As in PCGrad's paper a task skips
   itself (the released code visits it too, a no-op while ``<g~_i, g^_i> >= 0``).
3. The update is the **mean** ``(1/K) sum_i g~_i`` (the released code's reduction; PCGrad's
   paper sums).

Hyperparameters (the released code's: the same ``r`` and ``e`` as GradCraft, ``b = 0``):
tau = 0.1, epsilon = 1e-10, norm_decay = 0.0; seed = 0 for the per-step random order
(stateless, keyed by ``(seed, step)`` as in PCGrad).

Variable groups: ``shared`` (experts, gates, PPNet, bottom); towers and embeddings get the plain
summed-loss gradient.
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import (count_conflicting_pairs, split_by_groups,
                                   stack_task_gradients)
from drgrad.model.strategies.gradcraft import GradCraft, align_magnitudes
from drgrad.model.strategies.pcgrad import pcgrad_project, random_task_orders

def project_to_positive(grads, epsilon, orders=None):
    """Step 2 above: ``[K, d] -> [K, d]``; ``orders[i]`` is task i's visiting order (default
    ``0 .. K-1``; the entry equal to ``i`` is skipped): PCGrad's projection with a margin."""
    return pcgrad_project(grads, orders, margin=float(epsilon))


def pcgrad_plus_combine(grads, tau=0.1, epsilon=1e-10, norms=None, orders=None):
    """The PCGrad+ update: mean of the aligned, pairwise-projected gradients, shape ``[d]``."""
    aligned = align_magnitudes(grads, tau, norms)
    return tf.reduce_mean(project_to_positive(aligned, epsilon, orders), axis=0)


@register("pcgrad_plus")
class PCGradPlus(GradCraft):
    """PCGrad+ (the GradCraft paper's baseline) on the backbone's shared dense groups.

    Args:
        tau: magnitude-alignment strength in [0, 1].
        epsilon: target positive cosine after a projection, >= 0.
        norm_decay: EMA decay of the per-task norms in [0, 1); 0 uses the current norms.
        seed: seed of the per-step random task order.
        name: module name.
    """

    def __init__(self, tau=0.1, epsilon=1e-10, norm_decay=0.0, seed=0, name=None):
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"seed must be an int, got {seed!r}")
        super().__init__(tau=tau, epsilon=epsilon, norm_decay=norm_decay, name=name)
        self.seed = seed

    def combine(self, inputs):
        groups = tuple(inputs.variables)
        grads = stack_task_gradients(inputs, groups)
        orders = random_task_orders(grads.shape[0], self.seed, inputs.step)
        combined = pcgrad_plus_combine(grads, self.tau, self.epsilon, self._norms(grads), orders)
        return split_by_groups(combined, inputs, groups), {
                "conflicting_pairs": count_conflicting_pairs(grads)}

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
