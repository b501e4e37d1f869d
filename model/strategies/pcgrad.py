"""PCGrad: projecting conflicting gradients ("gradient surgery").

Reference:
    Yu, T., Kumar, S., Gupta, A., Levine, S., Hausman, K., Finn, C. "Gradient Surgery for
    Multi-Task Learning." NeurIPS 2020. arXiv:2001.06782.

Algorithm 1 of the paper: for every task ``i`` start from ``g_i``; visit the other tasks ``j`` in
**random order**; whenever the running ``g_i^PC`` conflicts with the original ``g_j`` (negative
inner product), remove its component along ``g_j``::

    g_i^PC <- g_i^PC - (<g_i^PC, g_j> / ||g_j||^2) g_j

The update is the **sum** ``sum_i g_i^PC`` (as in the paper).

Hyperparameters: none but the seed of the task order. The official TF1 code shuffles the losses
and discards the result, so its order is never random; here every task draws a fresh permutation
each step from a stateless RNG keyed by ``(seed, step)``, so a run is random *and* reproducible.

Variable group: ``shared`` (every dense variable several tasks use: experts, gates, PPNet,
shared bottom; see `model.backbones.base`). Per-task gradients are taken on it only; towers and
embedding tables get the plain summed-loss gradient (a tower only sees its own task, so surgery
is the identity there; embedding gradients stay sparse `IndexedSlices`).
"""
import tensorflow as tf

from drgrad.model.strategies import register
from drgrad.model.strategies.base import (GradientStrategy, count_conflicting_pairs,  # noqa: F401
                                   split_by_groups, stack_task_gradients)

_TINY = 1e-20


def random_task_orders(num_tasks, seed, step):
    """One random permutation of ``range(num_tasks)`` per task: int32 ``[K, K]``.

    Args:
        num_tasks: Python int K >= 1.
        seed: Python int.
        step: scalar integer tensor; a new step gives new permutations.
    """
    if num_tasks < 1:
        raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
    key = tf.stack([tf.cast(seed, tf.int64), tf.cast(step, tf.int64)])
    noise = tf.random.stateless_uniform([num_tasks, num_tasks], seed=key)
    return tf.argsort(noise, axis=1, stable=True)


def task_gradients_and_orders(grads, orders=None):
    """Checks ``grads`` is ``[K, d]`` with a static K; returns ``(grads, K, orders)`` where
    ``orders[i]`` is the order task i visits the others in (default ``0 .. K-1``). Shared by the
    projection methods (PCGrad, PCGrad+, GradVac)."""
    grads = tf.convert_to_tensor(grads)
    if grads.shape.rank != 2 or grads.shape[0] is None:
        raise ValueError(f"grads must be [K, d] with a static K, got shape {grads.shape}")
    k = grads.shape[0]
    if orders is None:
        orders = tf.tile(tf.range(k)[tf.newaxis, :], [k, 1])
    return grads, k, tf.cast(orders, tf.int32)


def pcgrad_project(grads, orders=None, margin=0.0):
    """Projects each task gradient against the (original) gradients it conflicts with.

    Args:
        grads: float tensor ``[K, d]`` (static K), one flattened gradient per task.
        orders: optional int tensor ``[K, K]``; row ``i`` is the order in which task ``i`` visits
            the others (the entry equal to ``i`` is skipped). Default ``0 .. K-1`` for all.
        margin: a Python float >= 0; 0 is PCGrad (project onto the normal plane), > 0 projects
            a conflicting pair to ``g_i . g_j = margin |g_i| |g_j|`` (PCGrad+).

    Returns:
        ``[K, d]``: the projected gradients ``g_i^PC``.
    """
    grads, k, orders = task_gradients_and_orders(grads, orders)
    sq_norms = tf.reduce_sum(tf.square(grads), axis=1)
    projected = []
    for i in range(k):
        g = grads[i]
        for p in range(k):
            j = orders[i, p]
            g_j = tf.gather(grads, j)
            dot = tf.reduce_sum(g * g_j)
            conflict = tf.logical_and(tf.not_equal(j, i), dot < 0.0)
            # PCGrad+ projects past the normal plane, to dot = margin * |g| |g_j|.
            target = dot - margin * tf.norm(g) * tf.sqrt(tf.gather(sq_norms, j)) if margin else dot
            coef = tf.where(conflict, target / tf.maximum(tf.gather(sq_norms, j), _TINY), 0.0)
            g = g - coef * g_j
        projected.append(g)
    return tf.stack(projected)


def pcgrad_combine(grads, orders=None):
    """The PCGrad update ``sum_i g_i^PC``, shape ``[d]``."""
    return tf.reduce_sum(pcgrad_project(grads, orders), axis=0)


@register("pcgrad")
class PCGrad(GradientStrategy):
    """PCGrad (Yu et al., NeurIPS 2020) on the backbone's shared dense groups.

    Args:
        seed: seed of the per-step random task order.
        name: module name.
    """

    groups = ("shared",)
    needs_task_gradients = True

    def __init__(self, seed=0, name=None):
        if not isinstance(seed, int) or isinstance(seed, bool):
            raise ValueError(f"seed must be an int, got {seed!r}")
        super().__init__(name=name)
        self.seed = seed

    def stat_names(self, tasks):
        return ("conflicting_pairs",)

    def combine(self, inputs):
        groups = tuple(inputs.variables)
        grads = stack_task_gradients(inputs, groups)
        k = grads.shape[0]
        orders = random_task_orders(k, self.seed, inputs.step)
        combined = pcgrad_combine(grads, orders)
        return split_by_groups(combined, inputs, groups), {
                "conflicting_pairs": count_conflicting_pairs(grads)}

    def get_config(self):
        return {"seed": self.seed}
